//! The admission task: whenever a lock may have been freed or a waiting
//! deployment changed (and on a slow tick besides), it starts the oldest
//! queued deployment of each (app, environment) whose lock is free, and
//! renumbers the rest of that queue.

use std::{collections::BTreeMap, time::Duration};

use slipway_proto::control::v1::DeploymentStatus;
use tokio_util::sync::CancellationToken;

use super::{queries::get, queue, start};
use crate::{Context, error::Error, locks, store};

/// A pass at least this often, whatever wakes it.
const TICK: Duration = Duration::from_secs(5);

/// Runs until `stop`.
pub async fn run(ctx: Context, stop: CancellationToken) {
    loop {
        if let Err(err) = pass(&ctx).await {
            tracing::error!(error = ?err, "admitting queued deployments failed");
        }
        tokio::select! {
            () = ctx.waiting.woken() => {}
            () = tokio::time::sleep(TICK) => {}
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
                let status = DeploymentStatus::Failed;
                queue::end(ctx, &id, status, "failed", &why, None).await?;
                continue;
            }
            break;
        }
        queue::renumber(ctx, &app, &environment).await?;
    }
    Ok(())
}
