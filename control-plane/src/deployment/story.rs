//! A deployment's story in the control plane's log: its start, batch
//! boundaries, each host's status changes, warnings and errors, and its end,
//! one line each, every line carrying the deployment's id, app, environment,
//! kind and release, so `grep dep-0000000042` across the daemons' logs tells
//! the whole deployment. Progress and hook output stay in the event log
//! (and at `debug`).

use slipway_proto::control::v1::{Deployment, DeploymentEvent, EventKind, LogLevel};

/// Stages whose log events mark the rollout's shape.
const SHAPE: [&str; 3] = ["rollout", "batch", "rollback"];

/// Logs `event`, just recorded in `deployment`.
pub fn tell(deployment: &Deployment, event: &DeploymentEvent) {
    let status = event
        .status()
        .as_str_name()
        .trim_start_matches("DEPLOYMENT_STATUS_");
    let kind = deployment
        .kind()
        .as_str_name()
        .trim_start_matches("DEPLOYMENT_KIND_");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                deployment_id = %deployment.id,
                app = %deployment.app,
                environment = %deployment.environment,
                kind,
                release = %deployment.release,
                host = %event.host,
                status,
                stage = %event.stage,
                sequence = event.sequence,
                "{}",
                event.message
            )
        };
    }
    let notable = event.kind() == EventKind::Status || SHAPE.contains(&event.stage.as_str());
    match event.level() {
        LogLevel::Error => line!(error),
        LogLevel::Warn => line!(warn),
        _ if notable => line!(info),
        _ => line!(debug),
    }
}
