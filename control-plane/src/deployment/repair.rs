//! Starting a drift repair: the release of the app's last succeeded
//! deployment in an environment, deployed again to the hosts that drifted
//! from it, under the lock like any deployment, and recorded as a repair so
//! that each host builds the release afresh (see `rollout::repair`), after
//! a restart of the control plane too. An automatic rollback never applies:
//! the release before is the same one.

use slipway_proto::control::v1::{DeploymentKind, Host, RolloutPolicy};

use super::{
    resolve::{Start, Target, resolve_start},
    run::Launch,
    start::launch,
};
use crate::{Context, auth::Caller, error::Error, policy::Policy};

/// What a repair redeploys, and where.
pub struct Repair {
    /// App name.
    pub app: String,
    /// Environment name.
    pub environment: String,
    /// The release the drift check compared the hosts with.
    pub release: String,
    /// The hosts that drifted.
    pub hosts: Vec<Host>,
    /// The record's message: what drifted, and the operator's words.
    pub message: String,
    /// Replaces the environment's rollout policy.
    pub policy: Option<RolloutPolicy>,
}

/// Starts the repair and returns its deployment id. Refused when the
/// recorded release changed since the check (a deployment finished
/// meanwhile).
pub async fn repair(ctx: &Context, caller: &Caller, repair: Repair) -> Result<String, Error> {
    let start = Start {
        kind: DeploymentKind::Deploy,
        app: repair.app,
        environment: repair.environment,
        target: Target::Release(repair.release.clone()),
        message: String::new(),
        policy: repair.policy,
        queue: false,
        run_at: None,
        force: false,
    };
    let mut resolved = resolve_start(ctx, &start).await?;
    if resolved.current != repair.release {
        return Err(Error::Precondition(format!(
            "the recorded release of {} in {} changed from {} to {} during the drift check; \
             check again",
            start.app, start.environment, repair.release, resolved.current
        )));
    }
    let mut spec = resolved.policy.spec;
    spec.auto_rollback = false;
    resolved.policy = Policy::new(spec);
    resolved.hosts = repair.hosts;
    resolved.base = None;
    let how = Launch {
        kind: DeploymentKind::Deploy,
        message: repair.message,
        repair: true,
        forced: None,
    };
    launch(ctx, caller, resolved, how).await
}
