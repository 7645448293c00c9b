//! The health repository: each host's raw samples, keyed by host and time
//! in milliseconds, its 5-minute aggregates, keyed by host and start
//! second, and how far raw samples have been aggregated. Reads are
//! bounded; writes are returned as ops for one batch.

use prost::Message;
use slipway_proto::control::v1::{HealthPoint, HealthSample};

use super::{Entries, Op, Store, StoreError, Tree, decode_proto, encode_proto, key2};

/// The key in [`Tree::Meta`]: the end (Unix seconds) of the last 5-minute
/// bucket aggregated.
const WATERMARK: &[u8] = b"health-aggregated-until";
/// Entries read per scan.
const PAGE: usize = 1024;

/// Which of a host's series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// Raw samples, by time in milliseconds.
    Raw,
    /// 5-minute aggregates, by start in seconds.
    Aggregates,
}

impl Series {
    fn tree(self) -> Tree {
        match self {
            Series::Raw => Tree::HealthSamples,
            Series::Aggregates => Tree::HealthAggregates,
        }
    }
}

/// `host \0 be64(n)`.
fn key(host: &str, n: u64) -> Vec<u8> {
    let mut key = key2(host, "");
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// The number at the end of a key.
fn number(key: &[u8]) -> u64 {
    let tail: [u8; 8] = key
        .get(key.len().saturating_sub(8)..)
        .and_then(|t| t.try_into().ok())
        .unwrap_or_default();
    u64::from_be_bytes(tail)
}

/// The write that records `sample` of `host` at its time.
pub fn put_sample(host: &str, sample: &HealthSample) -> Op {
    let at = crate::domain::health::timestamp_millis(sample.time.as_ref());
    Op::Put(Tree::HealthSamples, key(host, at), encode_proto(sample))
}

/// The write that records the aggregate `point` of `host` at its start.
pub fn put_aggregate(host: &str, point: &HealthPoint) -> Op {
    let start = crate::domain::health::timestamp_millis(point.time.as_ref()) / 1000;
    Op::Put(
        Tree::HealthAggregates,
        key(host, start),
        encode_proto(point),
    )
}

/// The write that records raw samples as aggregated up to `seconds`.
pub fn set_aggregated_until(seconds: u64) -> Op {
    Op::Put(
        Tree::Meta,
        WATERMARK.to_vec(),
        seconds.to_be_bytes().to_vec(),
    )
}

/// Up to when (Unix seconds) raw samples are aggregated; None before the
/// first aggregation.
pub fn aggregated_until(store: &Store) -> Result<Option<u64>, StoreError> {
    let Some(raw) = store.get_raw(Tree::Meta, WATERMARK)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = raw
        .as_slice()
        .try_into()
        .map_err(|_| super::corrupt(Tree::Meta, WATERMARK))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// The latest raw sample of `host`.
pub fn latest(store: &Store, host: &str) -> Result<Option<HealthSample>, StoreError> {
    let prefix = key2(host, "");
    let tree = Tree::HealthSamples;
    store
        .scan_rev_raw(tree, &prefix, None, 1)?
        .into_iter()
        .next()
        .map(|(k, v)| decode_proto(tree, &k, &v))
        .transpose()
}

/// Entries of `host` in `series` numbered from `from` up to (not
/// including) `to`, oldest first, at most `limit`.
fn range(
    store: &Store,
    series: Series,
    host: &str,
    (from, to): (u64, u64),
    limit: usize,
) -> Result<Entries, StoreError> {
    let (tree, prefix) = (series.tree(), key2(host, ""));
    let mut after = match from.checked_sub(1) {
        Some(before) => key(host, before),
        None => prefix.clone(),
    };
    let mut found = Entries::new();
    while found.len() < limit {
        let page = store.backend.scan_after(tree, &prefix, &after, PAGE)?;
        let full = page.len() == PAGE;
        for (k, v) in page {
            if number(&k) >= to || found.len() == limit {
                return Ok(found);
            }
            after.clone_from(&k);
            found.push((k, v));
        }
        if !full {
            break;
        }
    }
    Ok(found)
}

/// Raw samples of `host` from `from` up to `to` (Unix milliseconds), at
/// most `limit`.
pub fn samples(
    store: &Store,
    host: &str,
    (from, to): (u64, u64),
    limit: usize,
) -> Result<Vec<HealthSample>, StoreError> {
    decode_all(
        Series::Raw,
        range(store, Series::Raw, host, (from, to), limit)?,
    )
}

/// Aggregates of `host` starting from `from` up to `to` (Unix seconds), at
/// most `limit`.
pub fn aggregates(
    store: &Store,
    host: &str,
    (from, to): (u64, u64),
    limit: usize,
) -> Result<Vec<HealthPoint>, StoreError> {
    let found = range(store, Series::Aggregates, host, (from, to), limit)?;
    decode_all(Series::Aggregates, found)
}

fn decode_all<M: Message + Default>(
    series: Series,
    entries: Entries,
) -> Result<Vec<M>, StoreError> {
    let tree = series.tree();
    entries
        .into_iter()
        .map(|(k, v)| decode_proto(tree, &k, &v))
        .collect()
}

/// Every host with entries in `series`, by name (removed hosts included).
pub fn hosts(store: &Store, series: Series) -> Result<Vec<String>, StoreError> {
    let tree = series.tree();
    let mut hosts = Vec::new();
    let mut after = Vec::new();
    // One scan per host: past every key of a host is its name then 0x01.
    while let Some((k, _)) = store.backend.scan_after(tree, b"", &after, 1)?.pop() {
        let name = k.split(|b| *b == 0).next().unwrap_or_default();
        let host = String::from_utf8(name.to_vec()).map_err(|_| super::corrupt(tree, &k))?;
        after = [name, &[1u8][..]].concat();
        hosts.push(host);
    }
    Ok(hosts)
}

/// The writes that remove the entries of `host` in `series` numbered
/// before `before`, at most `limit` of them.
pub fn expire(
    store: &Store,
    series: Series,
    host: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<Op>, StoreError> {
    let found = range(store, series, host, (0, before), limit)?;
    let tree = series.tree();
    Ok(found
        .into_iter()
        .map(|(k, _)| Op::Delete(tree, k))
        .collect())
}

/// Entries and bytes (keys and values) held in `series`, for benchmarks.
pub fn footprint(store: &Store, series: Series) -> Result<(u64, u64), StoreError> {
    let (mut entries, mut bytes, mut after) = (0, 0, Vec::new());
    loop {
        let page = store.backend.scan_after(series.tree(), b"", &after, PAGE)?;
        for (k, v) in &page {
            entries += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        match page.into_iter().last() {
            Some((k, _)) => after = k,
            None => return Ok((entries, bytes)),
        }
    }
}

#[cfg(test)]
mod tests;
