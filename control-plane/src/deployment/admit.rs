//! The admission task: whenever a lock may have been freed or a waiting
//! deployment changed (and when the next request for approval expires, or
//! on a slow tick besides), it ends the expired requests for approval,
//! starts the oldest queued deployment of each (app, environment) whose
//! lock is free, and renumbers the rest of that queue.

use std::{collections::BTreeMap, time::Duration};

use slipway_proto::control::v1::DeploymentStatus;
use tokio_util::sync::CancellationToken;

use slipway_proto::control::v1::Deployment;

use super::{
    Lease, Recorder, approval,
    queries::get,
    queue,
    resolve::{Start, resolve},
    run::{self, Launch},
    schedule,
    start::first_event,
};
use crate::{
    Context,
    error::Error,
    locks,
    store::{self, StoreError},
};

/// A pass at least this often, whatever wakes it.
const TICK: Duration = Duration::from_secs(5);

/// Runs until `stop`.
pub async fn run(ctx: Context, stop: CancellationToken) {
    loop {
        let expiry = approval::expire(&ctx).await.unwrap_or_else(|err| {
            tracing::error!(error = ?err, "ending expired requests for approval failed");
            None
        });
        let scheduled = schedule::release(&ctx).await.unwrap_or_else(|err| {
            tracing::error!(error = ?err, "queueing scheduled deployments failed");
            None
        });
        let next = match (expiry, scheduled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Err(err) = pass(&ctx).await {
            tracing::error!(error = ?err, "admitting queued deployments failed");
        }
        // Until the next expiry, at most a tick.
        let wait = next
            .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
            .map_or(TICK, |left| left.min(TICK));
        tokio::select! {
            () = ctx.waiting.woken() => {}
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One pass over every queue.
async fn pass(ctx: &Context) -> Result<(), Error> {
    let _gate = ctx.waiting.gate().await;
    let mut targets: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for entry in store::queue::all(&ctx.store)? {
        targets
            .entry((entry.app, entry.environment))
            .or_default()
            .push(entry.deployment_id);
    }
    for ((app, environment), ids) in targets {
        if locks::get_raw(&ctx.store, &app, &environment)?.is_some() {
            continue;
        }
        for id in ids {
            let d = get(&ctx.store, &id)?;
            if d.status() != DeploymentStatus::Queued {
                continue;
            }
            if let Err(err) = admit(ctx, d).await {
                // It cannot start (its release or environment changed):
                // it ends failed, and the next one gets its turn.
                let why = format!("could not start when its turn came: {err}");
                let ending = queue::Ending::new(DeploymentStatus::Failed, "failed", why);
                queue::end(ctx, &id, ending).await?;
                continue;
            }
            break;
        }
        queue::renumber(ctx, &app, &environment).await?;
    }
    Ok(())
}

/// Starts a queued deployment now that its turn came: resolved again (the
/// environment's hosts and current release may have changed while it
/// waited), its record amended, the lock taken and its queue entry removed
/// in the transaction of its next event. False when the lock was taken
/// first, or it no longer waits.
async fn admit(ctx: &Context, d: Deployment) -> Result<bool, Error> {
    let start = Start::again(&d, d.release.clone());
    let r = resolve(&ctx.store, &start, None)?;
    let term = ctx.store.term();
    let lock = locks::new_lock(term, &d.app, &d.environment, &d.id, &d.author);
    let fresh = r.record(term, d.kind(), d.author.clone(), d.message.clone(), &d.id);
    let mut ops = store::queue::remove(&d.app, &d.environment, &d.id);
    let mut recorder = Recorder::open(ctx, d);
    recorder.amend(|d| {
        d.started_at = fresh.started_at;
        d.fencing_token = fresh.fencing_token;
        super::again::refresh(d, fresh);
        d.queue_position = 0;
    });
    let first = first_event(recorder.deployment(), r.hosts.len(), false);
    let lease = Lease::new(&ctx.store, lock);
    ops.push(lease.take());
    match recorder.record_with(first, ops).await {
        Ok(()) => {}
        Err(StoreError::Exists { .. } | StoreError::Conflict { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
    }
    let how = Launch {
        kind: recorder.deployment().kind(),
        message: String::new(),
        repair: false,
        forced: None,
    };
    run::run(ctx, recorder, lease, r, &how);
    Ok(true)
}
