//! History retention: a deployment that finished longer ago than the
//! retention keeps its record (the summary: who, what, when, how it ended,
//! each host's outcome) and loses its event log, in bounded batches. A
//! cursor in the store remembers how far it got, so each run reads only
//! what is new; each run that compacted something leaves an audit entry.

use std::time::{Duration, SystemTime};

use slipway_proto::control::v1::Deployment;
use tonic::Code;

use crate::{
    audit::{self, Actor},
    domain::event::is_final_status,
    error::Error,
    store::{Store, StoreError, deployments, events, retention},
};

/// Deployments read at once.
const PAGE: usize = 256;
/// Event deletions per commit.
const BATCH: usize = 4096;
/// The default retention.
pub const DEFAULT_DAYS: u64 = 90;

/// What one run compacted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Deployments whose event logs were dropped.
    pub deployments: u64,
    /// Events dropped.
    pub events: u64,
}

/// Whether `d` finished before `cutoff` (seconds since the epoch).
fn expired(d: &Deployment, cutoff: i64) -> bool {
    is_final_status(d.status()) && d.finished_at.as_ref().is_some_and(|t| t.seconds < cutoff)
}

/// Drops the event logs of deployments that finished before `cutoff`,
/// oldest first, and stops at the first one still inside the retention
/// (or still running): deployment numbers follow their start.
pub async fn compact(store: &Store, cutoff: SystemTime) -> Result<Compacted, StoreError> {
    let cutoff = cutoff
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut done = Compacted::default();
    let mut cursor = retention::cursor(store)?;
    loop {
        let page = retention::oldest_after(store, cursor, PAGE)?;
        if page.is_empty() {
            return Ok(done);
        }
        for mut d in page {
            if !expired(&d, cutoff) {
                return Ok(done);
            }
            loop {
                let ops = events::removal(store, &d.id, BATCH.min(store.max_batch_ops()))?;
                if ops.is_empty() {
                    break;
                }
                done.events += ops.len() as u64;
                store.commit(ops).await?;
            }
            cursor = deployments::number(&d.id);
            let mut ops = vec![retention::set_cursor(cursor)];
            if !d.events_compacted {
                d.events_compacted = true;
                done.deployments += 1;
                ops.push(deployments::put(&d));
            }
            store.commit(ops).await?;
        }
    }
}

/// Compacts what is older than `retention` every `every`, for good.
pub async fn run(store: Store, retention: Duration, every: Duration) {
    let system = Actor {
        principal: "control-plane".into(),
        role: "system".into(),
        certificate_sha256: String::new(),
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let cutoff = SystemTime::now() - retention;
        match compact(&store, cutoff).await {
            Ok(done) if done.deployments > 0 => {
                let days = retention.as_secs() / 86_400;
                let message = format!(
                    "dropped the event logs of {} deployments ({} events) that finished more than {days} days ago",
                    done.deployments, done.events
                );
                tracing::info!(
                    deployments = done.deployments,
                    events = done.events,
                    "history retention: {message}"
                );
                if let Err(err) = audit_run(&store, &system, &message).await {
                    tracing::warn!(error = %err, "cannot audit the history retention run");
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "history retention failed; it runs again later")
            }
        }
    }
}

async fn audit_run(store: &Store, system: &Actor, message: &str) -> Result<(), Error> {
    audit::record(
        store,
        system,
        "HistoryRetention",
        "deployments",
        Code::Ok,
        message,
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests;
