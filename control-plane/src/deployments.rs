//! Deployments: starting one under the (app, environment) lock, recording its
//! events durably, reading history, and reconciling after a restart.

use std::{collections::HashMap, sync::Arc};

use slipway_proto::{
    control::v1::{
        App, Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, EventKind, Host,
        HostProgress, Lock, LogLevel, Release, ReleaseMark, RolloutPolicy, RolloutStrategy,
    },
    validate,
};

use crate::{
    Context,
    auth::Caller,
    catalog,
    error::Error,
    events::{is_final, is_final_status},
    locks,
    policy::{self, Policy},
    releases, rollout,
    store::{Op, Store, StoreError, Tree, encode_proto, event_key, key2},
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
}

/// Everything a deployment needs, resolved and checked; nothing recorded.
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
    pub manifest: Arc<crate::git::Manifest>,
    /// The last good release and its files, for deltas.
    pub base: Option<(String, Arc<crate::git::Manifest>)>,
    /// The last good release's id, or empty.
    pub current: String,
    /// The policy it runs with.
    pub policy: Policy,
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
            Some(releases::create(store, &start.app, git_ref).await?.0)
        }
        _ => None,
    };
    resolve(store, start, release)
}

/// Cancels a running deployment and returns it once it has stopped (or as
/// it is, when it already finished).
pub async fn cancel(
    ctx: &Context,
    caller: &Caller,
    id: &str,
    reason: &str,
    grace_seconds: u32,
) -> Result<Deployment, Error> {
    let deployment = get(&ctx.store, id)?;
    if is_final_status(deployment.status) {
        return Ok(deployment);
    }
    let request = crate::running::StopRequest {
        by: caller.principal(),
        reason: if reason.is_empty() {
            "cancelled by an operator".into()
        } else {
            reason.to_owned()
        },
        grace_seconds: if grace_seconds == 0 {
            10
        } else {
            grace_seconds.min(3600)
        },
    };
    if !ctx.running.stop(id, request).await {
        // It finished between the read and the stop.
        let now = get(&ctx.store, id)?;
        if !is_final_status(now.status) {
            return Err(Error::Precondition(format!(
                "deployment {id} is not running on this control plane"
            )));
        }
        return Ok(now);
    }
    get(&ctx.store, id)
}

fn resolve(store: &Store, start: &Start, release: Option<Release>) -> Result<Resolved, Error> {
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
    let current = last_succeeded(store, &app.name, &env.name)?
        .map(|d| d.release)
        .unwrap_or_default();
    let release = match (release, &start.target) {
        (Some(release), _) => release,
        (None, Target::Release(id)) => {
            validate::release_id("release_id", id)?;
            releases::get(store, &app.name, id)?
        }
        (None, Target::Ref(_)) => unreachable!("refs are cut before resolving"),
        (None, Target::Previous) => {
            let previous = previous_good(store, &app.name, &env.name, &current)?.ok_or_else(|| {
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
    })
}

/// The release to roll back to: the newest release that succeeded in the
/// environment before `current`, skipping releases marked bad.
pub fn previous_good(
    store: &Store,
    app: &str,
    environment: &str,
    current: &str,
) -> Result<Option<String>, Error> {
    let mut all: Vec<Deployment> = store.list(Tree::Deployments, b"")?;
    all.reverse();
    for d in all {
        if d.app != app
            || d.environment != environment
            || d.status != DeploymentStatus::Succeeded as i32
            || d.release == current
        {
            continue;
        }
        let bad = releases::get(store, app, &d.release)
            .map(|r| r.mark == ReleaseMark::Bad as i32)
            .unwrap_or(true);
        if !bad {
            return Ok(Some(d.release));
        }
    }
    Ok(None)
}

/// Starts a deployment and returns its id; the rollout runs on its own task.
pub async fn start(ctx: &Context, caller: &Caller, start: Start) -> Result<String, Error> {
    let store = &ctx.store;
    let r = resolve_start(ctx, &start).await?;
    let kind = start.kind;
    let id = format!("dep-{:010}", store.next_id()? + 1);
    let batches = r.policy.batches(r.hosts.clone());
    let batch_of: HashMap<String, u32> = batches
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.iter().map(move |h| (h.name.clone(), i as u32 + 1)))
        .collect();
    let lock = locks::new_lock(&r.app.name, &r.environment, &id, &caller.principal());
    let deployment = Deployment {
        id: id.clone(),
        kind: kind as i32,
        app: r.app.name.clone(),
        environment: r.environment.clone(),
        release: r.release.id.clone(),
        previous_release: r.current.clone(),
        author: caller.principal(),
        message: start.message,
        status: DeploymentStatus::Pending as i32,
        stage: "pending".into(),
        hosts: r
            .hosts
            .iter()
            .map(|h| HostProgress {
                host: h.name.clone(),
                status: DeploymentStatus::Pending as i32,
                stage: "pending".into(),
                batch: batch_of.get(&h.name).copied().unwrap_or(1),
                ..Default::default()
            })
            .collect(),
        started_at: Some(slipway_proto::now()),
        policy: Some(r.policy.spec),
        fencing_token: lock.fencing_token,
        commit: r.release.commit.clone(),
        git_ref: r.release.git_ref.clone(),
        batches: batches.len() as u32,
        ..Default::default()
    };
    let lock_key = key2(&r.app.name, &r.environment);
    ctx.events.open(&id);
    let lock_value = locks::encode(&lock);
    let mut recorder = Recorder {
        store: store.clone(),
        events: ctx.events.clone(),
        deployment,
        lock_key: lock_key.clone(),
        lock: Some((lock.clone(), lock_value.clone())),
    };
    let first = deployment_event(
        DeploymentStatus::Pending,
        "pending",
        LogLevel::Info,
        format!(
            "{} {} of {} to {} ({} hosts) by {}, fencing token {}",
            if kind == DeploymentKind::Rollback {
                "rollback"
            } else {
                "deploy"
            },
            r.release.id,
            r.app.name,
            r.environment,
            r.hosts.len(),
            caller.principal(),
            lock.fencing_token
        ),
    );
    // The lock, the record and its first event land together or not at all.
    let take = Op::Create(Tree::Locks, lock_key.clone(), lock_value);
    if let Err(err) = recorder.record_with(first, vec![take]).await {
        ctx.events.close(&id);
        return Err(match err {
            StoreError::Exists { .. } => {
                let holder = locks::get_raw(store, &r.app.name, &r.environment)?
                    .map(|(l, _)| {
                        if l.holder.is_empty() {
                            l.deployment_id
                        } else {
                            format!("{} (started by {})", l.deployment_id, l.holder)
                        }
                    })
                    .unwrap_or_else(|| "(just finished)".into());
                Error::Locked {
                    app: r.app.name.clone(),
                    environment: r.environment.clone(),
                    holder,
                }
            }
            err => err.into(),
        });
    }
    let control = ctx.running.register(&id);
    let plan = rollout::Plan {
        deployment_id: id.clone(),
        kind,
        app: r.app,
        environment: r.environment,
        release: r.release,
        manifest: r.manifest,
        base: r.base,
        policy: r.policy,
        fencing_token: lock.fencing_token,
    };
    tokio::spawn(rollout::run(ctx.clone(), plan, r.hosts, recorder, control));
    Ok(id)
}

/// Runs the automatic rollback of `parent`'s switched hosts to the release
/// before it, to the end, under `parent`'s lock and fencing token. Returns
/// the rollback's id and final status.
pub async fn start_auto_rollback(
    ctx: &Context,
    parent: &Deployment,
    reason: &str,
    hosts: Vec<Host>,
) -> Result<(String, i32), Error> {
    let store = &ctx.store;
    let app = catalog::app(store, &parent.app)?;
    let release = releases::get(store, &app.name, &parent.previous_release)?;
    let manifest = Arc::new(releases::manifest(store, &app.name, &release.id)?);
    let inherited = parent.policy.unwrap_or_default();
    // Recovery goes to every switched host at once, tolerating none failing
    // silently: each host's outcome is recorded.
    let spec = RolloutPolicy {
        strategy: RolloutStrategy::AllAtOnce as i32,
        canary: false,
        auto_rollback: false,
        pause_seconds: 0,
        max_failed_hosts: hosts.len() as u32,
        ..inherited
    };
    let id = format!("dep-{:010}", store.next_id()? + 1);
    let deployment = Deployment {
        id: id.clone(),
        kind: DeploymentKind::Rollback as i32,
        app: app.name.clone(),
        environment: parent.environment.clone(),
        release: release.id.clone(),
        previous_release: parent.release.clone(),
        author: "slipway (auto-rollback)".into(),
        message: format!("automatic rollback of {}", parent.id),
        status: DeploymentStatus::Pending as i32,
        stage: "pending".into(),
        hosts: hosts
            .iter()
            .map(|h| HostProgress {
                host: h.name.clone(),
                status: DeploymentStatus::Pending as i32,
                stage: "pending".into(),
                batch: 1,
                ..Default::default()
            })
            .collect(),
        started_at: Some(slipway_proto::now()),
        policy: Some(spec),
        fencing_token: parent.fencing_token,
        rollback_of: parent.id.clone(),
        reason: reason.to_owned(),
        commit: release.commit.clone(),
        git_ref: release.git_ref.clone(),
        batches: 1,
        ..Default::default()
    };
    ctx.events.open(&id);
    let mut recorder = Recorder {
        store: store.clone(),
        events: ctx.events.clone(),
        deployment,
        lock_key: key2(&app.name, &parent.environment),
        // The parent holds the lock.
        lock: None,
    };
    let first = deployment_event(
        DeploymentStatus::Pending,
        "pending",
        LogLevel::Warn,
        format!(
            "automatic rollback of {} on {} hosts to {}: {reason}",
            parent.id,
            hosts.len(),
            release.id
        ),
    );
    if let Err(err) = recorder.record(first).await {
        ctx.events.close(&id);
        return Err(err.into());
    }
    let control = ctx.running.register(&id);
    let plan = rollout::Plan {
        deployment_id: id.clone(),
        kind: DeploymentKind::Rollback,
        app,
        environment: parent.environment.clone(),
        release,
        manifest,
        base: None,
        policy: Policy::new(spec),
        fencing_token: parent.fencing_token,
    };
    rollout::run(ctx.clone(), plan, hosts, recorder, control).await;
    let status = get(store, &id)?.status;
    Ok((id, status))
}

/// The most recent succeeded deployment of an app to an environment.
pub fn last_succeeded(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<Deployment>, Error> {
    let mut all: Vec<Deployment> = store.list(Tree::Deployments, b"")?;
    all.reverse();
    Ok(all.into_iter().find(|d| {
        d.app == app
            && d.environment == environment
            && d.status == DeploymentStatus::Succeeded as i32
    }))
}

/// One deployment.
pub fn get(store: &Store, id: &str) -> Result<Deployment, Error> {
    validate::release_id("deployment_id", id)?;
    store
        .get(Tree::Deployments, id.as_bytes())?
        .ok_or_else(|| Error::not_found("deployment", id))
}

/// After a restart: every deployment that was pending or running is
/// reconciled with what its hosts report. An operation of it still running
/// on an agent is cancelled (its hooks stopped), each host's `current` is
/// recorded as that host's outcome, and the deployment ends interrupted,
/// which frees its lock. Returns how many there were.
pub async fn reconcile(ctx: &Context) -> Result<usize, Error> {
    let open: Vec<Deployment> = ctx
        .store
        .list::<Deployment>(Tree::Deployments, b"")?
        .into_iter()
        .filter(|d| !is_final_status(d.status))
        .collect();
    let count = open.len();
    for deployment in open {
        let lock_key = key2(&deployment.app, &deployment.environment);
        // Only its own lock: the stored bytes, if the lock names it.
        let lock = locks::get_raw(&ctx.store, &deployment.app, &deployment.environment)?
            .filter(|(l, _)| l.deployment_id == deployment.id);
        let hosts = reconcile_hosts(ctx, &deployment).await;
        let mut recorder = Recorder {
            store: ctx.store.clone(),
            events: ctx.events.clone(),
            deployment,
            lock_key,
            lock,
        };
        let release = recorder.deployment.release.clone();
        let mut on_release = 0;
        for (host, answer) in hosts {
            let event = match answer {
                Ok(current) if current == release => {
                    on_release += 1;
                    host_event(
                        &host,
                        DeploymentStatus::Succeeded,
                        "reconciled",
                        LogLevel::Info,
                        format!("after the control plane's restart: {release} is current"),
                    )
                }
                Ok(current) => host_event(
                    &host,
                    DeploymentStatus::Failed,
                    "reconciled",
                    LogLevel::Warn,
                    format!(
                        "after the control plane's restart: current is {}",
                        if current.is_empty() {
                            "(none)"
                        } else {
                            &current
                        }
                    ),
                ),
                Err(err) => host_event(
                    &host,
                    DeploymentStatus::Failed,
                    "reconciled",
                    LogLevel::Error,
                    format!("after the control plane's restart the agent did not answer: {err}"),
                ),
            };
            recorder.record(event).await?;
        }
        let total = recorder.deployment.hosts.len();
        recorder.deployment.reason = "the control plane stopped while this deployment ran".into();
        let event = deployment_event(
            DeploymentStatus::Interrupted,
            "interrupted",
            LogLevel::Error,
            format!(
                "the control plane stopped while this deployment ran; {on_release} of {total} hosts are on {release}; check `slipctl status` and deploy again"
            ),
        );
        recorder.record(event).await?;
    }
    Ok(count)
}

/// How long reconciling waits for one agent.
const RECONCILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// Each unfinished host of `deployment` and its `current` release after any
/// operation of the deployment still running there has been stopped.
async fn reconcile_hosts(
    ctx: &Context,
    deployment: &Deployment,
) -> Vec<(String, Result<String, String>)> {
    use slipway_proto::agent::v1::{AppTarget, CancelOperationRequest, GetStatusRequest};
    let app = match catalog::app(&ctx.store, &deployment.app) {
        Ok(app) => app,
        Err(err) => {
            return deployment
                .hosts
                .iter()
                .map(|h| (h.host.clone(), Err(err.to_string())))
                .collect();
        }
    };
    let target = AppTarget {
        name: app.name.clone(),
        deploy_root: app.deploy_root.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for progress in deployment
        .hosts
        .iter()
        .filter(|h| !is_final_status(h.status))
    {
        let (ctx, target, id, token) = (
            ctx.clone(),
            target.clone(),
            deployment.id.clone(),
            deployment.fencing_token,
        );
        let name = progress.host.clone();
        tasks.spawn(async move {
            let answer = async {
                let host = catalog::host(&ctx.store, &name).map_err(|e| e.to_string())?;
                let mut client = ctx.agents.connect(&host).await.map_err(|e| e.to_string())?;
                let status = |mut client: crate::agents::AgentClient| {
                    let request = GetStatusRequest {
                        apps: vec![target.clone()],
                        omit_sizes: true,
                    };
                    async move {
                        client
                            .get_status(request)
                            .await
                            .map(|r| r.into_inner().apps.into_iter().next().unwrap_or_default())
                            .map_err(|s| s.message().to_owned())
                    }
                };
                let app = status(client.clone()).await?;
                if app.running_deployment == id {
                    client
                        .cancel_operation(CancelOperationRequest {
                            app: Some(target.clone()),
                            deployment_id: id.clone(),
                            grace_seconds: 10,
                            fencing_token: token,
                        })
                        .await
                        .map_err(|s| s.message().to_owned())?;
                    return Ok(status(client).await?.current_release);
                }
                Ok(app.current_release)
            };
            let answer = tokio::time::timeout(RECONCILE_DEADLINE, answer)
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()));
            (name, answer)
        });
    }
    let mut hosts = Vec::new();
    while let Some(Ok(result)) = tasks.join_next().await {
        hosts.push(result);
    }
    hosts.sort();
    hosts
}

fn host_event(
    host: &str,
    status: DeploymentStatus,
    stage: &str,
    level: LogLevel,
    message: String,
) -> DeploymentEvent {
    DeploymentEvent {
        host: host.to_owned(),
        ..deployment_event(status, stage, level, message)
    }
}

/// A deployment-level status event.
pub fn deployment_event(
    status: DeploymentStatus,
    stage: &str,
    level: LogLevel,
    message: String,
) -> DeploymentEvent {
    DeploymentEvent {
        kind: EventKind::Status as i32,
        status: status as i32,
        stage: stage.into(),
        level: level as i32,
        message,
        ..Default::default()
    }
}

/// The single writer of one deployment's record and event log.
pub struct Recorder {
    store: Store,
    events: crate::events::EventHub,
    deployment: Deployment,
    lock_key: Vec<u8>,
    /// The lock this deployment holds and its stored bytes; None when it
    /// runs under another deployment's lock (an automatic rollback).
    lock: Option<(Lock, Vec<u8>)>,
}

impl Recorder {
    /// The deployment as recorded so far.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Renews the lease of the lock, if this deployment still holds it.
    pub async fn renew_lease(&mut self) -> Result<(), StoreError> {
        let Some((lock, held)) = &self.lock else {
            return Ok(());
        };
        if self.store.get_raw(Tree::Locks, &self.lock_key)?.as_deref() != Some(held.as_slice()) {
            // Released by force: the next holder's fencing token fences us.
            return Ok(());
        }
        let renewed = locks::renewed(lock);
        let bytes = locks::encode(&renewed);
        let swap = vec![
            Op::DeleteIf(Tree::Locks, self.lock_key.clone(), held.clone()),
            Op::Create(Tree::Locks, self.lock_key.clone(), bytes.clone()),
        ];
        match self.store.commit(swap).await {
            Ok(()) => {
                self.lock = Some((renewed, bytes));
                Ok(())
            }
            // Freed and taken by another deployment meanwhile.
            Err(StoreError::Exists { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Records, with the next event, who cancelled the deployment and why.
    pub fn note_cancel(&mut self, by: &str, reason: &str) {
        self.deployment.cancelled_by = by.to_owned();
        self.deployment.reason = reason.to_owned();
    }

    /// Records, with the next event, the automatic rollback that undid it.
    pub fn note_rolled_back_by(&mut self, id: &str) {
        self.deployment.rolled_back_by = id.to_owned();
    }

    /// Appends an event, updating the record, durably; then wakes the streams.
    pub async fn record(&mut self, event: DeploymentEvent) -> Result<(), StoreError> {
        self.record_with(event, Vec::new()).await
    }

    async fn record_with(
        &mut self,
        mut event: DeploymentEvent,
        mut ops: Vec<Op>,
    ) -> Result<(), StoreError> {
        let mut next = self.deployment.clone();
        next.last_event += 1;
        event.sequence = next.last_event;
        event.deployment_id = next.id.clone();
        event.time = Some(slipway_proto::now());
        apply(&mut next, &event);
        let last = is_final(&event);
        ops.push(Op::Put(
            Tree::Deployments,
            next.id.clone().into_bytes(),
            encode_proto(&next),
        ));
        ops.push(Op::Put(
            Tree::Events,
            event_key(&next.id, event.sequence),
            encode_proto(&event),
        ));
        if let (true, Some((_, held))) = (last, &self.lock) {
            // Only this deployment's own lock is ever released.
            ops.push(Op::DeleteIf(
                Tree::Locks,
                self.lock_key.clone(),
                held.clone(),
            ));
        }
        self.store.commit(ops).await?;
        self.deployment = next;
        self.events.published(&self.deployment.id, event.sequence);
        if last {
            self.events.close(&self.deployment.id);
        }
        Ok(())
    }
}

/// Folds an event into the deployment record.
fn apply(d: &mut Deployment, e: &DeploymentEvent) {
    if e.host.is_empty() {
        if e.kind == EventKind::Status as i32 {
            d.status = e.status;
            if e.status == DeploymentStatus::Failed as i32
                || e.status == DeploymentStatus::Interrupted as i32
            {
                d.error = e.message.clone();
            }
        }
        if !e.stage.is_empty() {
            d.stage = e.stage.clone();
        }
        if e.percent > 0 {
            d.percent = e.percent;
        }
    } else if let Some(h) = d.hosts.iter_mut().find(|h| h.host == e.host) {
        if e.kind == EventKind::Status as i32 {
            h.status = e.status;
            if e.status == DeploymentStatus::Failed as i32 {
                h.error = e.message.clone();
            }
            if e.status == DeploymentStatus::Succeeded as i32 {
                h.switched = true;
            }
        }
        if !e.stage.is_empty() {
            h.stage = e.stage.clone();
        }
        h.percent = h.percent.max(e.percent);
        let total: u32 = d.hosts.iter().map(|h| h.percent).sum();
        d.percent = total / d.hosts.len().max(1) as u32;
    }
    if is_final(e) {
        if e.status == DeploymentStatus::Succeeded as i32 {
            d.percent = 100;
        }
        d.finished_at = e.time;
        if let (Some(start), Some(end)) = (&d.started_at, &e.time) {
            let ms = (end.seconds - start.seconds) * 1000
                + i64::from(end.nanos - start.nanos) / 1_000_000;
            d.duration_ms = ms.max(0) as u64;
        }
    }
}

/// Adds to a host's transfer counters.
pub fn set_host_transfer(d: &mut Deployment, host: &str, objects: u64, bytes: u64) {
    if let Some(h) = d.hosts.iter_mut().find(|h| h.host == host) {
        // Adds up: a host may be sent contents twice (a delta, then everything).
        h.objects_sent += objects;
        h.bytes_sent += bytes;
    }
}

impl Recorder {
    /// Records transfer counters for a host with the next event.
    pub async fn record_transfer(
        &mut self,
        host: &str,
        objects: u64,
        bytes: u64,
        event: DeploymentEvent,
    ) -> Result<(), StoreError> {
        set_host_transfer(&mut self.deployment, host, objects, bytes);
        self.record(event).await
    }
}
