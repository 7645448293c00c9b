//! Downsampling and retention of health samples, at a time given by the
//! caller (the sampler's clock, or a test's or a benchmark's that runs
//! ahead): raw samples of each closed 5-minute bucket become one aggregate
//! per host (min / avg / max, counts, response-time buckets), raw samples
//! older than 24 hours and aggregates older than 30 days are removed.

use std::time::{Duration, SystemTime};

use slipway_proto::control::v1::HealthPoint;

use crate::{
    domain::health::{
        AGGREGATE_RETENTION, BUCKET, RAW_RETENTION, point, steps, timestamp_millis, unix_millis,
        unix_seconds,
    },
    store::{
        Op, Store, StoreError,
        health::{self, Series},
    },
};

/// A bucket is aggregated once this long has passed since its end: a round
/// stamped before the end may still be storing its samples (a round takes
/// at most the sampling timeout).
pub const GRACE: Duration = Duration::from_secs(60);
/// Raw samples read at once: one hour of a host's.
const WINDOW: u64 = 3600;
/// Samples of one host read per window at most (one every 36 ms).
const MAX_PER_WINDOW: usize = 100_000;
/// Writes per batch.
const BATCH: usize = 4096;

/// What one maintenance run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Aggregates written.
    pub aggregated: usize,
    /// Raw samples removed.
    pub expired_samples: usize,
    /// Aggregates removed.
    pub expired_aggregates: usize,
    /// Raw samples are aggregated up to here (Unix seconds).
    pub until: u64,
}

/// Aggregates every closed bucket not aggregated yet and removes what is
/// past retention, as of `now`.
pub async fn maintain(store: &Store, now: SystemTime) -> Result<Maintained, StoreError> {
    let mut done = Maintained::default();
    let bucket = BUCKET.as_secs();
    let until = unix_seconds(now).saturating_sub(GRACE.as_secs()) / bucket * bucket;
    let oldest = unix_seconds(now).saturating_sub(RAW_RETENTION.as_secs()) / bucket * bucket;
    // Samples past retention but not aggregated yet are aggregated before
    // they go.
    let from = health::aggregated_until(store)?.unwrap_or(oldest);
    done.until = until.max(from);
    if until > from {
        let mut ops = Vec::new();
        for host in blocking(store, |s| health::hosts(s, Series::Raw)).await? {
            // From the bucket of the host's first sample not aggregated yet:
            // a long gap costs no empty reads.
            let (name, range) = (host.clone(), (from * 1000, until * 1000));
            let first = blocking(store, move |s| health::samples(s, &name, range, 1)).await?;
            let Some(first) = first.first() else {
                continue;
            };
            let first = timestamp_millis(first.time.as_ref()) / 1000;
            let mut start = from.max(first / bucket * bucket);
            while start < until {
                // Windows are whole buckets: none straddles two.
                let end = (start + WINDOW).min(until);
                let (name, range) = (host.clone(), (start * 1000, end * 1000));
                let samples = blocking(store, move |s| {
                    health::samples(s, &name, range, MAX_PER_WINDOW)
                })
                .await?;
                for aggregate in aggregate(&samples) {
                    ops.push(health::put_aggregate(&host, &aggregate));
                    done.aggregated += 1;
                }
                ops = flush(store, ops, BATCH.min(store.max_batch_ops() / 2)).await?;
                start = end;
            }
        }
        ops.push(health::set_aggregated_until(until));
        flush(store, ops, 0).await?;
    }
    let raw_before = unix_millis(now.checked_sub(RAW_RETENTION).unwrap_or(now));
    done.expired_samples = expire(store, Series::Raw, raw_before).await?;
    let kept_from = now.checked_sub(AGGREGATE_RETENTION).unwrap_or(now);
    done.expired_aggregates = expire(store, Series::Aggregates, unix_seconds(kept_from)).await?;
    Ok(done)
}

/// Samples as one aggregate per bucket.
fn aggregate(samples: &[slipway_proto::control::v1::HealthSample]) -> Vec<HealthPoint> {
    let points = samples
        .iter()
        .map(|s| point(s, timestamp_millis(s.time.as_ref()) / 1000));
    steps(points, BUCKET.as_secs())
}

/// Removes every entry of `series` numbered before `before`, a batch at a
/// time; returns how many.
async fn expire(store: &Store, series: Series, before: u64) -> Result<usize, StoreError> {
    let mut removed = 0;
    for host in blocking(store, move |s| health::hosts(s, series)).await? {
        loop {
            let host = host.clone();
            let ops = blocking(store, move |s| {
                health::expire(s, series, &host, before, BATCH.min(s.max_batch_ops()))
            })
            .await?;
            if ops.is_empty() {
                break;
            }
            removed += ops.len();
            store.commit(ops).await?;
        }
    }
    Ok(removed)
}

/// Commits `ops` once there are more than `above`; returns what is left.
async fn flush(store: &Store, ops: Vec<Op>, above: usize) -> Result<Vec<Op>, StoreError> {
    if ops.len() > above {
        store.commit(ops).await?;
        return Ok(Vec::new());
    }
    Ok(ops)
}

/// Runs a read of the store off the async runtime.
async fn blocking<T: Send + 'static>(
    store: &Store,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(crate::store::backend_err)?
}

#[cfg(test)]
mod tests;
