//! Running a recorded deployment that holds its lock: its plan handed to
//! the supervisor on a task of its own.

use std::sync::Arc;

use slipway_proto::control::v1::DeploymentKind;

use super::{Lease, Recorder, resolve::Resolved, supervisor};
use crate::{
    Context,
    rollout::{Done, Plan},
};

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

/// Runs a recorded deployment that holds its lock on its own task.
pub(super) fn run(ctx: &Context, recorder: Recorder, lease: Lease, r: Resolved, how: &Launch) {
    let control = ctx.running.register(&recorder.deployment().id);
    run_with(ctx, recorder, lease, r, how, control);
}

/// [`run`] for a deployment registered as running with `control`.
pub(super) fn run_with(
    ctx: &Context,
    recorder: Recorder,
    lease: Lease,
    r: Resolved,
    how: &Launch,
    control: Arc<crate::running::Control>,
) {
    let id = recorder.deployment().id.clone();
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
        secrets: Default::default(),
    };
    let supervise = supervisor::supervise(ctx.clone(), plan, r.hosts, recorder, lease, control);
    tokio::spawn(supervise);
}
