//! The admission task: whenever a lock may have been freed or a waiting
//! deployment changed (and when the next request for approval expires, or
//! on a slow tick besides), it ends the expired requests for approval,
//! starts the oldest queued deployment of each (app, environment) whose
//! lock is free, and renumbers the rest of that queue.

use std::{collections::BTreeMap, time::Duration};

use slipway_proto::control::v1::DeploymentStatus;
use tokio_util::sync::CancellationToken;

use super::{approval, queries::get, queue, start};
use crate::{Context, error::Error, locks, store};

/// A pass at least this often, whatever wakes it.
const TICK: Duration = Duration::from_secs(5);

/// Runs until `stop`.
pub async fn run(ctx: Context, stop: CancellationToken) {
    loop {
        let next = match approval::expire(&ctx).await {
            Ok(next) => next,
            Err(err) => {
                tracing::error!(error = ?err, "ending expired requests for approval failed");
                None
            }
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
            if let Err(err) = start::admit(ctx, d).await {
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
