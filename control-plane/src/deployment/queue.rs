//! Deployments queued behind the lock of their (app, environment): recorded
//! with status queued and an entry in the queue repository, numbered by
//! their place in the queue (each move is an event), skipped when a newer
//! one supersedes them under "latest wins", and cancelled without ever
//! holding the lock. Every change here happens under the waiting gate.

use slipway_proto::control::v1::{Approval, Deployment, DeploymentStatus, LogLevel};

use super::{
    Recorder,
    create::{Draft, create},
    queries::get,
};
use crate::{
    Context,
    domain::event::deployment_event,
    error::Error,
    store::{self, Op, StoreError},
};

/// Whether a deployment waits before it starts.
pub fn is_waiting(status: DeploymentStatus) -> bool {
    matches!(
        status,
        DeploymentStatus::Queued | DeploymentStatus::AwaitingApproval | DeploymentStatus::Scheduled
    )
}

/// What a deployment waits for.
pub(super) enum Wait {
    /// The lock; with `latest_wins`, it skips the older queued ones.
    Lock {
        /// Skip the older queued deployments.
        latest_wins: bool,
    },
    /// Its time, then the lock.
    Schedule {
        /// When.
        at: std::time::SystemTime,
    },
    /// Approvals, then the lock.
    Approval {
        /// How many.
        required: u32,
        /// When the request expires.
        expires: std::time::SystemTime,
    },
}

/// How a waiting deployment ends.
pub(super) struct Ending {
    /// Its final status.
    pub status: DeploymentStatus,
    /// The stage of its last event (`cancelled`, `skipped`, `rejected`, ...).
    pub stage: &'static str,
    /// Why, for its record and its last event.
    pub why: String,
    /// Who cancelled it, if someone did.
    pub by: Option<String>,
    /// The decision that ended it, kept with its approvals.
    pub decision: Option<Approval>,
}

impl Ending {
    /// Ended with `status` at `stage` for `why`, by nobody in particular.
    pub fn new(status: DeploymentStatus, stage: &'static str, why: String) -> Self {
        Self {
            status,
            stage,
            why,
            by: None,
            decision: None,
        }
    }
}

/// Queues the deployment `build` records under its id; with `latest_wins`,
/// the deployments queued before it for the same app and environment are
/// skipped. Returns its id. The caller holds the waiting gate.
pub(super) async fn enqueue(
    ctx: &Context,
    (app, environment): (&str, &str),
    mut build: impl FnMut(&str) -> Deployment,
    wait: Wait,
) -> Result<String, Error> {
    let latest_wins = matches!(wait, Wait::Lock { latest_wins: true });
    let ahead = store::queue::of_target(&ctx.store, app, environment)?;
    let holder = match store::locks::get(&ctx.store, app, environment)? {
        Some((lock, _)) => format!("{} holds the lock", lock.deployment_id),
        None => format!("{} deployments wait ahead", ahead.len()),
    };
    let position = if latest_wins { 1 } else { ahead.len() + 1 };
    let created = create(ctx, |id| {
        let mut deployment = build(id);
        deployment.queue_position = position as u32;
        deployment.queued_at = deployment.started_at;
        let what = format!(
            "{} {} of {} to {} by {}",
            kind(&deployment),
            deployment.release,
            deployment.app,
            deployment.environment,
            deployment.author
        );
        let first = match &wait {
            Wait::Lock { .. } => deployment_event(
                DeploymentStatus::Queued,
                "queued",
                LogLevel::Info,
                format!("{what} queued, position {position}: {holder}"),
            ),
            Wait::Schedule { at } => deployment_event(
                DeploymentStatus::Scheduled,
                "scheduled",
                LogLevel::Info,
                format!("{what} scheduled for {}", rfc3339(*at)),
            ),
            Wait::Approval { required, expires } => {
                deployment.approvals_required = *required;
                deployment.approval_expires_at = Some(slipway_proto::timestamp(*expires));
                let until = rfc3339(*expires);
                deployment_event(
                    DeploymentStatus::AwaitingApproval,
                    "approval",
                    LogLevel::Info,
                    format!(
                        "{what} awaits {required} approvals from operators other than its requester (`slipctl approve {id}`); the request expires at {until}"
                    ),
                )
            }
        };
        deployment.status = first.status;
        deployment.stage = first.stage.clone();
        Draft {
            ops: vec![store::queue::add(app, environment, id)],
            deployment,
            first,
            keep: (),
        }
    });
    // The recorder is dropped, not closed: streams follow the deployment
    // until it starts and ends.
    let (recorder, ()) = created.await?;
    let id = recorder.deployment().id.clone();
    // The admission task learns of it (and of when its request expires).
    ctx.waiting.wake();
    if latest_wins {
        for older in ahead {
            let why = format!(
                "skipped: superseded by {id}, a newer deployment of the same app and environment (latest wins)"
            );
            let ending = Ending::new(DeploymentStatus::Cancelled, "skipped", why);
            end(ctx, &older, ending).await?;
        }
    }
    Ok(id)
}

/// `2026-12-01T02:00:00Z`.
pub(super) fn rfc3339(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn kind(d: &Deployment) -> &'static str {
    match d.kind() {
        slipway_proto::control::v1::DeploymentKind::Rollback => "rollback",
        _ => "deploy",
    }
}

/// Ends a waiting deployment (cancelled by `by`, skipped, failed) with
/// `why` and takes it out of its queue; None when it no longer waits.
pub(super) async fn end(
    ctx: &Context,
    id: &str,
    ending: Ending,
) -> Result<Option<Deployment>, Error> {
    let d = get(&ctx.store, id)?;
    if !is_waiting(d.status()) {
        return Ok(None);
    }
    let remove = store::queue::remove(&d.app, &d.environment, &d.id);
    let mut recorder = Recorder::open(ctx, d);
    match &ending.by {
        Some(by) => recorder.note_cancel(by, &ending.why),
        None => recorder.note_reason(&ending.why),
    }
    recorder.amend(|d| {
        d.queue_position = 0;
        d.approval_expires_at = None;
        d.approvals.extend(ending.decision);
    });
    let level = match ending.status {
        DeploymentStatus::Failed => LogLevel::Error,
        _ => LogLevel::Warn,
    };
    let event = deployment_event(ending.status, ending.stage, level, ending.why);
    match recorder.record_with(event, remove).await {
        Ok(()) => {}
        // Started or ended meanwhile.
        Err(StoreError::Conflict { .. }) => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    ctx.waiting.wake();
    Ok(Some(recorder.deployment().clone()))
}

/// Cancels a waiting deployment on an operator's request; None when it no
/// longer waits (it started meanwhile).
pub(super) async fn cancel(
    ctx: &Context,
    by: &str,
    id: &str,
    reason: &str,
) -> Result<Option<Deployment>, Error> {
    let _gate = ctx.waiting.gate().await;
    let why = format!("cancelled by {by} before it started: {reason}");
    let mut ending = Ending::new(DeploymentStatus::Cancelled, "cancelled", why);
    ending.by = Some(by.to_owned());
    let ended = end(ctx, id, ending).await?;
    if let Some(d) = &ended {
        renumber(ctx, &d.app, &d.environment).await?;
    }
    Ok(ended)
}

/// Records the new place of each deployment of an app's queue in an
/// environment whose place changed ("queued, position 1").
pub(super) async fn renumber(ctx: &Context, app: &str, environment: &str) -> Result<(), Error> {
    let ids = store::queue::of_target(&ctx.store, app, environment)?;
    for (i, id) in ids.iter().enumerate() {
        let position = i as u32 + 1;
        let d = get(&ctx.store, id)?;
        if d.queue_position == position || !is_waiting(d.status()) {
            continue;
        }
        // Its status stays what it is (awaiting approval, scheduled, queued).
        let (status, stage) = (d.status(), d.stage.clone());
        let mut recorder = Recorder::open(ctx, d);
        recorder.amend(|d| d.queue_position = position);
        let message = format!("{}, position {position}", stage_word(status));
        let event = deployment_event(status, &stage, LogLevel::Info, message);
        recorder.record_with(event, Vec::<Op>::new()).await?;
    }
    Ok(())
}

/// How a waiting status reads in a place announcement.
fn stage_word(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::AwaitingApproval => "awaiting approval",
        DeploymentStatus::Scheduled => "scheduled",
        _ => "queued",
    }
}

/// The waiting deployments, optionally of one app and one environment, by
/// app and environment, then place.
pub fn list(ctx: &Context, app: &str, environment: &str) -> Result<Vec<Deployment>, Error> {
    let mut out = Vec::new();
    for entry in store::queue::all(&ctx.store)? {
        if (!app.is_empty() && entry.app != app)
            || (!environment.is_empty() && entry.environment != environment)
        {
            continue;
        }
        out.push(get(&ctx.store, &entry.deployment_id)?);
    }
    Ok(out)
}
