//! Starting a deployment: the request resolved into an app, an environment,
//! its hosts and a release (cut from git when it names a ref), the record
//! built, and the lock, the record and its first event committed together;
//! then the supervisor runs it on its own task.

use std::sync::Arc;

use slipway_proto::{
    control::v1::{
        App, DeployGates, DeployRequest, Deployment, DeploymentEvent, DeploymentKind,
        DeploymentStatus, Host, LogLevel, Release, RollbackRequest, RolloutPolicy,
    },
    limits,
    validate::{self, InvalidField},
};

use super::{
    Lease, Recorder, approval,
    create::{Draft, NewRecord, create},
    gating, queries, queue, supervisor,
};
use crate::{
    Context,
    auth::Caller,
    catalog,
    domain::{event::deployment_event, manifest::Manifest},
    error::Error,
    locks,
    policy::{self, Policy},
    releases,
    rollout::{Done, Plan},
    store::{self, Store, StoreError, drift},
};

/// What to activate.
pub enum Target {
    /// A release by id.
    Release(String),
    /// Cut or reuse a release from this ref.
    Ref(String),
    /// The release before the current one.
    Previous,
}

/// What an operator asked to start.
pub struct Start {
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// App name.
    pub app: String,
    /// Environment name.
    pub environment: String,
    /// Release to activate.
    pub target: Target,
    /// Operator's message.
    pub message: String,
    /// Replaces the environment's rollout policy.
    pub policy: Option<RolloutPolicy>,
    /// Wait in the queue while another deployment holds the lock.
    pub queue: bool,
    /// Start at this time rather than now.
    pub run_at: Option<std::time::SystemTime>,
    /// Deploy outside the windows or inside a freeze (an admin).
    pub force: bool,
}

/// Longest operator message recorded with a deployment.
const MAX_MESSAGE: usize = limits::MESSAGE;

/// The app and environment names are within their bound; whether they
/// exist is for the store to say (NOT_FOUND).
fn names(app: &str, environment: &str) -> Result<(), InvalidField> {
    validate::bounded("app", app, limits::NAME)?;
    validate::bounded("environment", environment, limits::NAME)
}

impl TryFrom<DeployRequest> for Start {
    type Error = InvalidField;

    fn try_from(req: DeployRequest) -> Result<Self, InvalidField> {
        names(&req.app, &req.environment)?;
        validate::bounded("git_ref", &req.git_ref, limits::GIT_REF)?;
        validate::bounded("message", &req.message, MAX_MESSAGE)?;
        let target = if req.release_id.is_empty() {
            Target::Ref(req.git_ref)
        } else {
            validate::release_id("release_id", &req.release_id)?;
            Target::Release(req.release_id)
        };
        Ok(Start {
            kind: DeploymentKind::Deploy,
            app: req.app,
            environment: req.environment,
            target,
            message: req.message,
            policy: req.policy,
            queue: req.queue,
            run_at: gating::run_at(req.run_at.as_ref())?,
            force: req.force,
        })
    }
}

impl TryFrom<RollbackRequest> for Start {
    type Error = InvalidField;

    fn try_from(req: RollbackRequest) -> Result<Self, InvalidField> {
        names(&req.app, &req.environment)?;
        validate::bounded("message", &req.message, MAX_MESSAGE)?;
        let target = if req.release_id.is_empty() {
            Target::Previous
        } else {
            validate::release_id("release_id", &req.release_id)?;
            Target::Release(req.release_id)
        };
        Ok(Start {
            kind: DeploymentKind::Rollback,
            app: req.app,
            environment: req.environment,
            target,
            message: req.message,
            policy: req.policy,
            queue: req.queue,
            run_at: None,
            force: false,
        })
    }
}

/// Everything a deployment needs, resolved and checked; nothing recorded.
#[derive(Clone)]
pub struct Resolved {
    /// The app.
    pub app: App,
    /// The environment's name.
    pub environment: String,
    /// Its hosts.
    pub hosts: Vec<Host>,
    /// The release to activate.
    pub release: Release,
    /// Its files.
    pub manifest: Arc<Manifest>,
    /// The last good release and its files, for deltas.
    pub base: Option<(String, Arc<Manifest>)>,
    /// The last good release's id, or empty.
    pub current: String,
    /// The policy it runs with.
    pub policy: Policy,
    /// What deployments to the environment wait for.
    pub gates: DeployGates,
}

impl Resolved {
    /// The pending record of deployment `id` of this: every host pending
    /// in its batch.
    pub(super) fn record(
        &self,
        kind: DeploymentKind,
        author: String,
        message: String,
        id: &str,
    ) -> Deployment {
        let batches = self.policy.batches(self.hosts.clone());
        NewRecord {
            kind,
            app: &self.app.name,
            environment: &self.environment,
            release: &self.release,
            previous_release: &self.current,
            author,
            message,
            batches: &batches,
            policy: self.policy.spec,
            fencing_token: locks::fencing_token(id),
            rollback_of: "",
            reason: "",
        }
        .build(id)
    }
}

/// Resolves a start request, cutting the release from git if it names a
/// ref (cutting is idempotent). Nothing else is recorded.
pub async fn resolve_start(ctx: &Context, start: &Start) -> Result<Resolved, Error> {
    let store = &ctx.store;
    let release = match &start.target {
        Target::Ref(git_ref) => {
            // Checked first, so a bad name never cuts a release.
            catalog::app(store, &start.app)?;
            catalog::environment(store, &start.environment)?;
            Some(
                releases::create(store, &ctx.sources, &start.app, git_ref)
                    .await?
                    .0,
            )
        }
        _ => None,
    };
    resolve(store, start, release)
}

pub(super) fn resolve(
    store: &Store,
    start: &Start,
    release: Option<Release>,
) -> Result<Resolved, Error> {
    let app = catalog::app(store, &start.app)?;
    let env = catalog::environment(store, &start.environment)?;
    let hosts = catalog::hosts(store, &env.name)?;
    if hosts.is_empty() {
        return Err(Error::Precondition(format!(
            "environment {} has no hosts; add one with `slipctl host add`",
            env.name
        )));
    }
    let spec = match &start.policy {
        Some(policy) => {
            policy::validate("policy", policy)?;
            *policy
        }
        None => env.rollout_policy.unwrap_or_default(),
    };
    let current = queries::last_succeeded(store, &app.name, &env.name)?.unwrap_or_default();
    let release = match (release, &start.target) {
        (Some(release), _) => release,
        (None, Target::Release(id)) => {
            validate::release_id("release_id", id)?;
            releases::get(store, &app.name, id)?
        }
        (None, Target::Ref(_)) => unreachable!("refs are cut before resolving"),
        (None, Target::Previous) => {
            let previous = queries::previous_good(store, &app.name, &env.name, &current)?
                .ok_or_else(|| {
                    Error::Precondition(format!(
                        "app {} has no earlier good release in {} to roll back to; name one with --to",
                        app.name, env.name
                    ))
                })?;
            releases::get(store, &app.name, &previous)?
        }
    };
    let manifest = Arc::new(releases::manifest(store, &app.name, &release.id)?);
    // Hosts that took the last good release get only the difference.
    let base = if current.is_empty() || current == release.id {
        None
    } else {
        releases::manifest(store, &app.name, &current)
            .ok()
            .map(|m| (current.clone(), Arc::new(m)))
    };
    Ok(Resolved {
        app,
        environment: env.name,
        hosts,
        release,
        manifest,
        base,
        current,
        policy: Policy::new(spec),
        gates: env.gates.unwrap_or_default(),
    })
}

/// Starts a deployment and returns its id; the rollout runs on its own
/// task. Asked to queue (or by the environment's gates), it waits in the
/// queue while the lock is held or others wait ahead of it.
pub async fn start(ctx: &Context, caller: &Caller, start: Start) -> Result<String, Error> {
    let resolved = resolve_start(ctx, &start).await?;
    let gates = resolved.gates.clone();
    let asked = (start.kind, start.run_at, start.force);
    let forced = gating::windows(caller, asked, &gates)?;
    let how = Launch {
        kind: start.kind,
        message: start.message,
        repair: false,
        forced,
    };
    let approvals = gates.approvals_required > 0;
    if !start.queue && !gates.queue && !approvals && start.run_at.is_none() {
        return launch(ctx, caller, resolved, how).await;
    }
    let _gate = ctx.waiting.gate().await;
    let (app, env) = (resolved.app.name.clone(), resolved.environment.clone());
    let free = store::queue::of_target(&ctx.store, &app, &env)?.is_empty()
        && locks::get_raw(&ctx.store, &app, &env)?.is_none();
    if free && !approvals && start.run_at.is_none() {
        match launch(ctx, caller, resolved.clone(), how.clone()).await {
            Err(Error::Locked { .. }) => {}
            started => return started,
        }
    }
    let r = &resolved;
    let build = |id: &str| {
        let mut d = r.record(how.kind, caller.principal(), how.message.clone(), id);
        d.run_at = start.run_at.map(slipway_proto::timestamp);
        d.forced = how.forced.is_some();
        d
    };
    let wait = if approvals {
        queue::Wait::Approval {
            required: gates.approvals_required,
            expires: approval::expires(&gates),
        }
    } else if let Some(at) = start.run_at {
        queue::Wait::Schedule { at }
    } else {
        queue::Wait::Lock {
            latest_wins: gates.latest_wins,
        }
    };
    queue::enqueue(ctx, (&app, &env), build, wait).await
}

/// What kind of deployment a launch records.
#[derive(Clone)]
pub(super) struct Launch {
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// The message recorded with it.
    pub message: String,
    /// A drift repair: recorded as one, and each host builds the release
    /// afresh.
    pub repair: bool,
    /// Why an admin's --force was needed (outside the windows, in a
    /// freeze), when it was.
    pub forced: Option<String>,
}

/// Records a resolved deployment (number, lock, record and first event in
/// one transaction) and runs it on its own task; returns its id.
pub(super) async fn launch(
    ctx: &Context,
    caller: &Caller,
    r: Resolved,
    how: Launch,
) -> Result<String, Error> {
    let created = create(ctx, |id| {
        let lock = locks::new_lock(&r.app.name, &r.environment, id, &caller.principal());
        let mut deployment = r.record(how.kind, caller.principal(), how.message.clone(), id);
        deployment.forced = how.forced.is_some();
        let mut first = first_event(&deployment, r.hosts.len(), how.repair);
        if let Some(why) = &how.forced {
            first
                .message
                .push_str(&format!("; forced by {}: {why}", caller.principal()));
        }
        let lease = Lease::new(&ctx.store, lock);
        let mut ops = vec![lease.take()];
        if how.repair {
            ops.push(drift::mark_repair(id));
        }
        Draft {
            deployment,
            first,
            ops,
            keep: lease,
        }
    });
    let (recorder, lease) = match created.await {
        Ok(created) => created,
        Err(StoreError::Exists { .. }) => {
            return Err(locked(&ctx.store, &r.app.name, &r.environment)?);
        }
        Err(err) => return Err(err.into()),
    };
    let id = recorder.deployment().id.clone();
    run(ctx, recorder, lease, r, &how);
    Ok(id)
}

/// Runs a recorded deployment that holds its lock on its own task.
pub(super) fn run(ctx: &Context, recorder: Recorder, lease: Lease, r: Resolved, how: &Launch) {
    let id = recorder.deployment().id.clone();
    let control = ctx.running.register(&id);
    let plan = Plan {
        deployment_id: id.clone(),
        kind: how.kind,
        app: r.app,
        environment: r.environment,
        release: r.release,
        manifest: r.manifest,
        base: r.base,
        policy: r.policy,
        fencing_token: lease.lock().fencing_token,
        done: Done::default(),
        repair: how.repair,
    };
    let supervise = supervisor::supervise(ctx.clone(), plan, r.hosts, recorder, lease, control);
    tokio::spawn(supervise);
}

/// "deploy <release> of <app> to <environment> (<n> hosts) by <author>, fencing token <n>"
pub(super) fn first_event(d: &Deployment, hosts: usize, repair: bool) -> DeploymentEvent {
    let kind = match (repair, d.kind()) {
        (true, _) => "drift repair: deploy",
        (false, DeploymentKind::Rollback) => "rollback",
        (false, _) => "deploy",
    };
    deployment_event(
        DeploymentStatus::Pending,
        "pending",
        LogLevel::Info,
        format!(
            "{kind} {} of {} to {} ({hosts} hosts) by {}, fencing token {}",
            d.release, d.app, d.environment, d.author, d.fencing_token
        ),
    )
}

/// The error for a start refused because another deployment holds the lock.
fn locked(store: &Store, app: &str, environment: &str) -> Result<Error, Error> {
    let holder = locks::get_raw(store, app, environment)?
        .map(|(l, _)| {
            if l.holder.is_empty() {
                l.deployment_id
            } else {
                format!("{} (started by {})", l.deployment_id, l.holder)
            }
        })
        .unwrap_or_else(|| "(just finished)".into());
    Ok(Error::Locked {
        app: app.to_owned(),
        environment: environment.to_owned(),
        holder,
    })
}
