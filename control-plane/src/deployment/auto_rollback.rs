//! The automatic rollback of a failed deployment's switched hosts: a
//! rollback deployment of its own, linked to the one it undoes, that runs
//! to the release before it on every switched host at once, under the
//! parent's lock and fencing token.

use std::sync::Arc;

use slipway_proto::control::v1::{
    Deployment, DeploymentKind, DeploymentStatus, Host, LogLevel, RolloutPolicy, RolloutStrategy,
};

use super::{
    Recorder,
    create::{Draft, NewRecord, create},
};
use crate::{
    Context, catalog, domain::event::deployment_event, error::Error, policy::Policy, releases,
    rollout::Plan,
};

/// A recorded automatic rollback, ready to run.
pub(super) struct Child {
    pub plan: Plan,
    pub hosts: Vec<Host>,
    pub recorder: Recorder,
}

/// Records the automatic rollback of `parent` on `hosts` with its first
/// event.
pub(super) async fn begin(
    ctx: &Context,
    parent: &Deployment,
    reason: &str,
    hosts: Vec<Host>,
) -> Result<Child, Error> {
    let store = &ctx.store;
    let app = catalog::app(store, &parent.app)?;
    let release = releases::get(store, &app.name, &parent.previous_release)?;
    let manifest = Arc::new(releases::manifest(store, &app.name, &release.id)?);
    // Recovery goes to every switched host at once, tolerating none failing
    // silently: each host's outcome is recorded.
    let spec = RolloutPolicy {
        strategy: RolloutStrategy::AllAtOnce as i32,
        canary: false,
        auto_rollback: false,
        pause_seconds: 0,
        max_failed_hosts: hosts.len() as u32,
        ..parent.policy.unwrap_or_default()
    };
    let draft = |id: &str| {
        let deployment = NewRecord {
            kind: DeploymentKind::Rollback,
            app: &app.name,
            environment: &parent.environment,
            release: &release,
            previous_release: &parent.release,
            author: "slipway (auto-rollback)".into(),
            message: format!("automatic rollback of {}", parent.id),
            batches: std::slice::from_ref(&hosts),
            policy: spec,
            fencing_token: parent.fencing_token,
            rollback_of: &parent.id,
            reason,
        }
        .build(id);
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
        Draft {
            deployment,
            first,
            ops: Vec::new(),
            keep: (),
        }
    };
    let (recorder, ()) = create(ctx, draft).await?;
    let id = recorder.deployment().id.clone();
    let plan = Plan {
        deployment_id: id,
        kind: DeploymentKind::Rollback,
        app,
        environment: parent.environment.clone(),
        release,
        manifest,
        base: None,
        policy: Policy::new(spec),
        fencing_token: parent.fencing_token,
    };
    Ok(Child {
        plan,
        hosts,
        recorder,
    })
}
