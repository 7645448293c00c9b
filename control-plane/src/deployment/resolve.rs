//! What a deployment request resolves into: an app, an environment, its
//! hosts, the policy and gates, and a release (cut from git when it names a
//! ref, or left to be made by the deployment itself); nothing recorded.

use std::sync::Arc;

use slipway_proto::{
    control::v1::{
        App, DeployGates, DeployRequest, Deployment, DeploymentKind, Host, Release,
        RollbackRequest, RolloutPolicy,
    },
    limits,
    validate::{self, InvalidField},
};

use super::{create::NewRecord, gating, queries};
use crate::{
    Context, catalog,
    domain::manifest::Manifest,
    error::Error,
    locks,
    policy::{self, Policy},
    releases,
    store::Store,
};

/// What to activate.
pub enum Target {
    /// A release by id.
    Release(String),
    /// Cut or reuse a release from this ref.
    Ref(String),
    /// The release before the current one.
    Previous,
    /// The current release (`deploy --secrets-only`).
    Current,
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
        validate::bounded("message", &req.message, limits::live().message_bytes)?;
        if req.secrets_only && !(req.git_ref.is_empty() && req.release_id.is_empty()) {
            return Err(InvalidField::new(
                "secrets_only",
                "applies the secrets to the current release: leave git_ref and release_id empty",
            ));
        }
        let target = if req.secrets_only {
            Target::Current
        } else if req.release_id.is_empty() {
            Target::Ref(req.git_ref)
        } else {
            validate::release_id("release_id", &req.release_id)?;
            Target::Release(req.release_id)
        };
        Ok(Start {
            kind: if req.secrets_only {
                DeploymentKind::Secrets
            } else {
                DeploymentKind::Deploy
            },
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
        validate::bounded("message", &req.message, limits::live().message_bytes)?;
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
        term: u64,
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
            fencing_token: locks::fencing_token(term, id),
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
            let progress = crate::progress::Progress::none();
            Some(
                releases::create(store, &ctx.sources, &start.app, git_ref, &progress)
                    .await?
                    .release,
            )
        }
        _ => None,
    };
    resolve(store, start, release)
}

/// Resolves a start request as [`resolve_start`] would, without recording
/// anything: a ref with no release yet resolves to the release a cut would
/// make (empty id) with its manifest when `measure` (see
/// [`releases::preview`]).
pub async fn resolve_preview(
    ctx: &Context,
    start: &Start,
    measure: bool,
) -> Result<Resolved, Error> {
    let Target::Ref(git_ref) = &start.target else {
        return resolve(&ctx.store, start, None);
    };
    catalog::app(&ctx.store, &start.app)?;
    catalog::environment(&ctx.store, &start.environment)?;
    let preview = releases::preview(&ctx.store, &ctx.sources, &start.app, git_ref, measure).await?;
    let mut resolved = resolve(&ctx.store, start, Some(preview.release))?;
    resolved.manifest = Arc::new(preview.manifest);
    Ok(resolved)
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
        // Made on the deployment's own task ([`super::prepare`]).
        (None, Target::Ref(git_ref)) => Release {
            app: app.name.clone(),
            git_ref: if git_ref.is_empty() {
                app.default_branch.clone()
            } else {
                git_ref.clone()
            },
            ..Release::default()
        },
        (None, Target::Current) => {
            if current.is_empty() {
                return Err(Error::Precondition(format!(
                    "app {} has no release in {} yet: deploy one first; it takes the secrets",
                    app.name, env.name
                )));
            }
            releases::get(store, &app.name, &current)?
        }
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
    let manifest = if release.id.is_empty() {
        Arc::default()
    } else {
        Arc::new(releases::manifest(store, &app.name, &release.id)?)
    };
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
