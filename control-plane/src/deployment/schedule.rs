//! Scheduled deployments: recorded with status scheduled (in their queue,
//! so they survive a restart) until their time, then queued to start.

use std::time::{Duration, SystemTime};

use slipway_proto::control::v1::{DeploymentStatus, LogLevel};

use super::{Recorder, queue};
use crate::{Context, domain::event::deployment_event, error::Error};

/// Queues every scheduled deployment whose time came; returns when the next
/// one's comes.
pub(super) async fn release(ctx: &Context) -> Result<Option<SystemTime>, Error> {
    let _gate = ctx.waiting.gate().await;
    let now = SystemTime::now();
    let mut next: Option<SystemTime> = None;
    for d in queue::list(ctx, "", "")? {
        if d.status() != DeploymentStatus::Scheduled {
            continue;
        }
        let at = d.run_at.unwrap_or_default();
        let when = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(at.seconds).unwrap_or(0),
                at.nanos.max(0) as u32,
            );
        if when > now {
            next = Some(next.map_or(when, |n| n.min(when)));
            continue;
        }
        let message = format!(
            "its scheduled time {} came; queued to start",
            queue::rfc3339(when)
        );
        let event = deployment_event(DeploymentStatus::Queued, "queued", LogLevel::Info, message);
        Recorder::open(ctx, d).record(event).await?;
    }
    Ok(next)
}
