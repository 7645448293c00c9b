//! Deployment events as the engine, the supervisor and reconciliation build
//! them (status changes of the deployment or of one host, log lines, batch
//! markers), and which of them end a deployment.

use slipway_proto::control::v1::{DeploymentEvent, DeploymentStatus, EventKind, LogLevel};

/// The stage name of an agent's stage in the deployment's events:
/// `STAGE_HEALTH_CHECK` is `health_check`.
pub fn agent_stage(stage: slipway_proto::agent::v1::Stage) -> String {
    stage
        .as_str_name()
        .trim_start_matches("STAGE_")
        .to_lowercase()
}

/// Whether an event ends its deployment.
pub fn is_final(event: &DeploymentEvent) -> bool {
    event.kind() == EventKind::Status && event.host.is_empty() && is_final_status(event.status())
}

/// Whether a status is final.
pub fn is_final_status(status: DeploymentStatus) -> bool {
    matches!(
        status,
        DeploymentStatus::Succeeded
            | DeploymentStatus::Failed
            | DeploymentStatus::Cancelled
            | DeploymentStatus::Interrupted
    )
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

/// A status event of one host.
pub fn host_status(
    host: &str,
    status: DeploymentStatus,
    stage: &str,
    percent: u32,
    level: LogLevel,
    message: String,
) -> DeploymentEvent {
    DeploymentEvent {
        host: host.into(),
        percent,
        ..deployment_event(status, stage, level, message)
    }
}

/// A log line of one host.
pub fn host_log(host: &str, stage: &str, level: LogLevel, message: String) -> DeploymentEvent {
    DeploymentEvent {
        kind: EventKind::Log as i32,
        host: host.into(),
        stage: stage.into(),
        level: level as i32,
        message,
        ..Default::default()
    }
}

/// The start of a batch (or a pause before it).
pub fn batch_event(batch: u32, message: String) -> DeploymentEvent {
    DeploymentEvent {
        batch,
        ..deployment_event(DeploymentStatus::Running, "batch", LogLevel::Info, message)
    }
}
