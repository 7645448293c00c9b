//! Approvals: a deployment to an environment whose gates require N
//! approvals is recorded awaiting approval (in its queue, so it survives a
//! restart) until N operators other than its requester approve it, an
//! admin overrides, someone rejects it, or the request expires. Each
//! decision is kept in the record and is an event; the API audits it.

use std::time::{Duration, SystemTime};

use slipway_proto::{
    control::v1::{
        Approval, ApprovalDecision, DeployGates, Deployment, DeploymentStatus, LogLevel,
    },
    identity::Role,
};

use super::{
    Recorder,
    queries::get,
    queue::{self, Ending},
};
use crate::{Context, auth::Caller, domain::event::deployment_event, error::Error};

/// How long a request for approval stays open unless the environment says.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Approvals an environment may require at most.
pub const MAX_REQUIRED: u32 = 10;
/// The longest expiry an environment may set.
pub const MAX_EXPIRY_SECONDS: u32 = 30 * 86_400;

/// When a request for approval made now expires under `gates`.
pub(super) fn expires(gates: &DeployGates) -> SystemTime {
    let expiry = match gates.approval_expiry_seconds {
        0 => DEFAULT_EXPIRY,
        s => Duration::from_secs(u64::from(s)),
    };
    SystemTime::now() + expiry
}

/// The name part of a principal: `deployer/alice` is `alice`.
fn identity(principal: &str) -> &str {
    principal.rsplit('/').next().unwrap_or(principal)
}

fn approvals(d: &Deployment) -> usize {
    d.approvals
        .iter()
        .filter(|a| a.decision() == ApprovalDecision::Approved && !a.admin_override)
        .count()
}

/// A deployment awaiting approval, or why not.
fn pending(ctx: &Context, id: &str) -> Result<Deployment, Error> {
    let d = get(&ctx.store, id)?;
    if d.status() != DeploymentStatus::AwaitingApproval {
        let status = d
            .status()
            .as_str_name()
            .trim_start_matches("DEPLOYMENT_STATUS_");
        return Err(Error::Precondition(format!(
            "deployment {id} is not awaiting approval (it is {})",
            status.to_lowercase()
        )));
    }
    Ok(d)
}

/// Records `caller`'s approval of deployment `id`; once it has the
/// approvals it needs (or an admin overrides), it is queued to start.
pub async fn approve(
    ctx: &Context,
    caller: &Caller,
    id: &str,
    message: &str,
    admin_override: bool,
) -> Result<Deployment, Error> {
    let _gate = ctx.waiting.gate().await;
    let d = pending(ctx, id)?;
    let by = caller.principal();
    if admin_override && caller.role < Role::Admin {
        return Err(Error::Denied(format!(
            "only an admin may override approvals; {by} is not one"
        )));
    }
    if !admin_override && identity(&by) == identity(&d.author) {
        return Err(Error::Denied(format!(
            "{by} requested deployment {id} and cannot approve it; another deployer or admin must"
        )));
    }
    if !admin_override
        && d.approvals
            .iter()
            .any(|a| identity(&a.by) == identity(&by) && !a.admin_override)
    {
        return Err(Error::Precondition(format!(
            "{by} already approved deployment {id}; another operator must"
        )));
    }
    let approval = Approval {
        by: by.clone(),
        decision: ApprovalDecision::Approved as i32,
        message: message.to_owned(),
        at: Some(slipway_proto::now()),
        admin_override,
    };
    let mut recorder = Recorder::open(ctx, d);
    recorder.amend(|d| d.approvals.push(approval));
    let d = recorder.deployment();
    let (have, need) = (approvals(d), d.approvals_required as usize);
    let why = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    // Approved, it waits for its time if it has one still to come.
    let now = slipway_proto::now().seconds;
    let (next, stage, then) = match d.run_at.filter(|at| at.seconds > now) {
        Some(_) => (
            DeploymentStatus::Scheduled,
            "scheduled",
            "scheduled to start at its time",
        ),
        None => (DeploymentStatus::Queued, "queued", "queued to start"),
    };
    let event = if admin_override {
        let text = format!("approval overridden by {by} ({have} of {need} approvals){why}; {then}");
        deployment_event(next, stage, LogLevel::Warn, text)
    } else if have >= need {
        let text = format!("approved by {by} ({have} of {need}){why}; {then}");
        deployment_event(next, stage, LogLevel::Info, text)
    } else {
        let text = format!("approved by {by} ({have} of {need}){why}");
        deployment_event(
            DeploymentStatus::AwaitingApproval,
            "approval",
            LogLevel::Info,
            text,
        )
    };
    if event.status() != DeploymentStatus::AwaitingApproval {
        recorder.amend(|d| d.approval_expires_at = None);
    }
    recorder.record(event).await?;
    ctx.waiting.wake();
    Ok(recorder.deployment().clone())
}

/// Records `caller`'s rejection of deployment `id`: it ends cancelled.
pub async fn reject(
    ctx: &Context,
    caller: &Caller,
    id: &str,
    message: &str,
) -> Result<Deployment, Error> {
    let _gate = ctx.waiting.gate().await;
    let d = pending(ctx, id)?;
    let by = caller.principal();
    let why = format!("rejected by {by}: {message}");
    let rejection = Approval {
        by: by.clone(),
        decision: ApprovalDecision::Rejected as i32,
        message: message.to_owned(),
        at: Some(slipway_proto::now()),
        admin_override: false,
    };
    let mut ending = Ending::new(DeploymentStatus::Cancelled, "rejected", why);
    ending.by = Some(by);
    ending.decision = Some(rejection);
    let ended = queue::end(ctx, &d.id, ending).await?;
    queue::renumber(ctx, &d.app, &d.environment).await?;
    ended.ok_or_else(|| {
        Error::Precondition(format!("deployment {id} is no longer awaiting approval"))
    })
}

/// Ends every request for approval that expired; returns when the next
/// one expires.
pub(super) async fn expire(ctx: &Context) -> Result<Option<SystemTime>, Error> {
    let _gate = ctx.waiting.gate().await;
    let now = slipway_proto::now();
    let mut next: Option<SystemTime> = None;
    for d in queue::list(ctx, "", "")? {
        if d.status() != DeploymentStatus::AwaitingApproval {
            continue;
        }
        let Some(at) = d.approval_expires_at else {
            continue;
        };
        if at.seconds > now.seconds || (at.seconds == now.seconds && at.nanos > now.nanos) {
            let when = SystemTime::UNIX_EPOCH
                + Duration::new(at.seconds.max(0) as u64, at.nanos.max(0) as u32);
            next = Some(next.map_or(when, |n| n.min(when)));
            continue;
        }
        let why = format!(
            "the request for approval expired with {} of {} approvals",
            approvals(&d),
            d.approvals_required
        );
        let ending = Ending::new(DeploymentStatus::Cancelled, "expired", why);
        queue::end(ctx, &d.id, ending).await?;
        queue::renumber(ctx, &d.app, &d.environment).await?;
    }
    Ok(next)
}
