//! Health over time, apart from how it is sampled or stored: a host's state
//! from its latest sample, one sample as a point, points merged into longer
//! ones (the 5-minute aggregates and any step of a series), and a range's
//! figures: uptime, error rate and response-time percentiles estimated
//! from fixed buckets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pbjson_types::Timestamp;
use slipway_proto::{
    agent::v1::AppHealthState,
    control::v1::{
        AppHealthPoint, HealthPoint, HealthSample, HealthSummary, HostHealthState, MetricRange,
    },
};

/// Length of one stored aggregate.
pub const BUCKET: Duration = Duration::from_secs(300);
/// How long raw samples are kept.
pub const RAW_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long aggregates are kept.
pub const AGGREGATE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Upper bounds of the response-time buckets, in milliseconds; one more
/// bucket counts what is above the last.
pub const RESPONSE_BOUNDS_MS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];
/// A host whose latest sample is older than this many sampling intervals
/// is not known to be in any state.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// Seconds since the Unix epoch of `time` (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch of `time` (0 before it).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch of a timestamp (0 before it, or unset).
pub fn timestamp_millis(ts: Option<&Timestamp>) -> u64 {
    ts.map_or(0, |t| {
        let ms = t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000);
        u64::try_from(ms).unwrap_or(0)
    })
}

/// The timestamp of `seconds` since the Unix epoch.
pub fn at_seconds(seconds: u64) -> Timestamp {
    slipway_proto::timestamp(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// A host's state from its latest sample, taken `interval` apart: unknown
/// without one, or when it is stale at `now`.
pub fn state(
    latest: Option<&HealthSample>,
    now: SystemTime,
    interval: Duration,
) -> HostHealthState {
    let Some(sample) = latest else {
        return HostHealthState::Unknown;
    };
    let stale = interval.saturating_mul(STALE_AFTER_INTERVALS);
    let age = unix_millis(now).saturating_sub(timestamp_millis(sample.time.as_ref()));
    if u128::from(age) > stale.as_millis() {
        HostHealthState::Unknown
    } else {
        state_of(sample)
    }
}

/// What one sample says of its host.
pub fn state_of(sample: &HealthSample) -> HostHealthState {
    let failing = |app: &slipway_proto::control::v1::AppHealthSample| {
        app.state == AppHealthState::Failing as i32
    };
    if !sample.reachable {
        HostHealthState::Down
    } else if sample.apps.iter().any(failing) {
        HostHealthState::Degraded
    } else {
        HostHealthState::Healthy
    }
}

/// A range of one value.
fn single(value: f64) -> Option<MetricRange> {
    Some(MetricRange {
        min: value,
        avg: value,
        max: value,
    })
}

/// One sample as a point of its own, starting at `start` (seconds).
pub fn point(sample: &HealthSample, start: u64) -> HealthPoint {
    let facts = |value: f64| {
        if sample.reachable {
            single(value)
        } else {
            None
        }
    };
    let apps = sample
        .apps
        .iter()
        .filter_map(|app| {
            let state = AppHealthState::try_from(app.state).ok()?;
            let ok = state == AppHealthState::Healthy;
            if !ok && state != AppHealthState::Failing {
                return None;
            }
            let mut buckets = vec![0; RESPONSE_BOUNDS_MS.len() + 1];
            if ok {
                buckets[bucket(app.response_ms)] = 1;
            }
            Some(AppHealthPoint {
                app: app.app.clone(),
                ok: u32::from(ok),
                errors: u32::from(!ok),
                response_ms: if ok { single(app.response_ms) } else { None },
                response_buckets: buckets,
            })
        })
        .collect();
    HealthPoint {
        time: Some(at_seconds(start)),
        samples: 1,
        reachable: u32::from(sample.reachable),
        load_average: facts(sample.load_average),
        memory_available_bytes: facts(sample.memory_available_bytes as f64),
        disk_free_bytes: facts(sample.disk_free_bytes as f64),
        apps,
    }
}

/// The bucket of a response time.
fn bucket(ms: f64) -> usize {
    RESPONSE_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(RESPONSE_BOUNDS_MS.len())
}

/// Two ranges as one, `a` over `wa` values and `b` over `wb`.
fn merge_range(
    a: Option<MetricRange>,
    wa: u32,
    b: Option<&MetricRange>,
    wb: u32,
) -> Option<MetricRange> {
    match (a, b) {
        (None, b) => b.cloned(),
        (a, None) => a,
        (Some(a), Some(b)) => {
            let (wa, wb) = (f64::from(wa.max(1)), f64::from(wb.max(1)));
            Some(MetricRange {
                min: a.min.min(b.min),
                avg: (a.avg * wa + b.avg * wb) / (wa + wb),
                max: a.max.max(b.max),
            })
        }
    }
}

/// Adds `other` to `into` (whose start stays).
pub fn merge(into: &mut HealthPoint, other: &HealthPoint) {
    let (wa, wb) = (into.reachable, other.reachable);
    into.load_average = merge_range(
        into.load_average.take(),
        wa,
        other.load_average.as_ref(),
        wb,
    );
    into.memory_available_bytes = merge_range(
        into.memory_available_bytes.take(),
        wa,
        other.memory_available_bytes.as_ref(),
        wb,
    );
    into.disk_free_bytes = merge_range(
        into.disk_free_bytes.take(),
        wa,
        other.disk_free_bytes.as_ref(),
        wb,
    );
    into.samples = into.samples.saturating_add(other.samples);
    into.reachable = into.reachable.saturating_add(other.reachable);
    for app in &other.apps {
        match into.apps.iter_mut().find(|a| a.app == app.app) {
            Some(mine) => merge_app(mine, app),
            None => into.apps.push(app.clone()),
        }
    }
    into.apps.sort_by(|a, b| a.app.cmp(&b.app));
}

fn merge_app(into: &mut AppHealthPoint, other: &AppHealthPoint) {
    let response = into.response_ms.take();
    into.response_ms = merge_range(response, into.ok, other.response_ms.as_ref(), other.ok);
    into.ok = into.ok.saturating_add(other.ok);
    into.errors = into.errors.saturating_add(other.errors);
    into.response_buckets
        .resize(RESPONSE_BOUNDS_MS.len() + 1, 0);
    for (mine, theirs) in into
        .response_buckets
        .iter_mut()
        .zip(&other.response_buckets)
    {
        *mine = mine.saturating_add(*theirs);
    }
}

/// Points merged into steps of `step` seconds aligned on the epoch, oldest
/// first; `points` each carry their start.
pub fn steps(points: impl IntoIterator<Item = HealthPoint>, step: u64) -> Vec<HealthPoint> {
    let mut merged: std::collections::BTreeMap<u64, HealthPoint> = Default::default();
    for point in points {
        let start = timestamp_millis(point.time.as_ref()) / 1000;
        let start = start - start % step.max(1);
        match merged.get_mut(&start) {
            Some(into) => merge(into, &point),
            None => {
                let mut first = point;
                first.time = Some(at_seconds(start));
                merged.insert(start, first);
            }
        }
    }
    merged.into_values().collect()
}

/// The figures of a whole range.
pub fn summary(points: &[HealthPoint]) -> HealthSummary {
    let mut total = HealthPoint::default();
    for point in points {
        merge(&mut total, point);
    }
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            100.0 * part as f64 / whole as f64
        }
    };
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut buckets = vec![0u64; RESPONSE_BOUNDS_MS.len() + 1];
    let mut range: Option<MetricRange> = None;
    for app in &total.apps {
        ok += u64::from(app.ok);
        errors += u64::from(app.errors);
        for (sum, n) in buckets.iter_mut().zip(&app.response_buckets) {
            *sum += u64::from(*n);
        }
        range = merge_range(range, 1, app.response_ms.as_ref(), 1);
    }
    let (low, high) = range.map_or((0.0, 0.0), |r| (r.min, r.max));
    HealthSummary {
        samples: total.samples,
        uptime_percent: percent(total.reachable.into(), total.samples.into()),
        probes: ok + errors,
        error_rate_percent: percent(errors, ok + errors),
        response_p50_ms: percentile(&buckets, 0.50, low, high),
        response_p95_ms: percentile(&buckets, 0.95, low, high),
    }
}

/// The `q` quantile of the counts in `buckets`, interpolated within its
/// bucket and kept within the observed `low` and `high`; 0 without counts.
pub fn percentile(buckets: &[u64], q: f64, low: f64, high: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let from = if i == 0 {
                0.0
            } else {
                RESPONSE_BOUNDS_MS[i - 1]
            };
            let to = RESPONSE_BOUNDS_MS.get(i).copied().unwrap_or(high.max(from));
            let within = ((rank - below as f64) / *n as f64).clamp(0.0, 1.0);
            return (from + (to - from) * within).clamp(low, high);
        }
        below += n;
    }
    high
}

#[cfg(test)]
mod tests;
