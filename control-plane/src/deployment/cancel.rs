//! Cancelling a running deployment on an operator's request.

use slipway_proto::control::v1::Deployment;

use super::queries::get;
use crate::{
    Context, auth::Caller, domain::event::is_final_status, error::Error, running::StopRequest,
};

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
    if is_final_status(deployment.status()) {
        return Ok(deployment);
    }
    if super::queue::is_waiting(deployment.status()) {
        let reason = if reason.is_empty() {
            "cancelled by an operator"
        } else {
            reason
        };
        if let Some(ended) = super::queue::cancel(ctx, &caller.principal(), id, reason).await? {
            return Ok(ended);
        }
    }
    let request = StopRequest {
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
        if !is_final_status(now.status()) {
            return Err(Error::Precondition(format!(
                "deployment {id} is not running on this control plane"
            )));
        }
        return Ok(now);
    }
    get(&ctx.store, id)
}
