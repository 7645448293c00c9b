//! GetHealthSeries: the selected hosts' samples over a range, in points of
//! a step, with each host's state now and the range's figures. Steps of 5
//! minutes or more read the aggregates up to where raw samples are
//! aggregated and raw samples after; shorter steps read raw samples for
//! the last 24 hours and aggregates before. Blocking (reads the store).

use std::time::{Duration, SystemTime};

use pbjson_types::Timestamp;
use slipway_proto::{
    control::v1::{GetHealthSeriesRequest, GetHealthSeriesResponse, Host, HostHealthSeries},
    validate::{self, InvalidField},
};

use super::health::Health;
use crate::{
    catalog,
    domain::health::{self, BUCKET, RAW_RETENTION, at_seconds, point, timestamp_millis},
    error::Error,
    store::{self, Store},
};

/// Points of one host at most.
pub const MAX_POINTS_PER_HOST: u64 = 1440;
/// Points of one answer at most.
pub const MAX_POINTS: u64 = 200_000;
/// The range when the request gives no start.
const DEFAULT_RANGE: Duration = Duration::from_secs(24 * 3600);
/// Points per host when the request gives no step.
const DEFAULT_POINTS: u64 = 60;
/// Raw samples of one host read at most.
const MAX_SAMPLES: usize = 500_000;

/// The series of the hosts `request` selects, as of `now`.
pub fn series(
    store: &Store,
    health: &Health,
    request: &GetHealthSeriesRequest,
    now: SystemTime,
) -> Result<GetHealthSeriesResponse, Error> {
    let hosts = selected(store, request)?;
    let (from, to, step) = window(request, now)?;
    let points = (to - from) / step;
    if points * (hosts.len() as u64) > MAX_POINTS {
        return Err(InvalidField::new(
            "step_seconds",
            format!(
                "{} hosts of {points} points each is more than {MAX_POINTS} points: \
                 narrow the range, widen the step or select fewer hosts",
                hosts.len()
            ),
        )
        .into());
    }
    // Where raw samples take over from aggregates.
    let raw_from = if step >= BUCKET.as_secs() {
        store::health::aggregated_until(store)?.unwrap_or(from)
    } else {
        health::unix_seconds(now.checked_sub(RAW_RETENTION).unwrap_or(now))
    }
    .clamp(from, to);
    let mut answer = GetHealthSeriesResponse {
        from: Some(at_seconds(from)),
        to: Some(at_seconds(to)),
        step_seconds: u32::try_from(step).unwrap_or(u32::MAX),
        sample_interval_ms: u32::try_from(health.every().as_millis()).unwrap_or(u32::MAX),
        hosts: Vec::with_capacity(hosts.len()),
    };
    for host in hosts {
        let limit = usize::try_from(raw_from.saturating_sub(from) / BUCKET.as_secs() + 1)
            .unwrap_or(usize::MAX);
        let mut found = store::health::aggregates(store, &host.name, (from, raw_from), limit)?;
        let raw = (raw_from * 1000, to * 1000);
        let samples = store::health::samples(store, &host.name, raw, MAX_SAMPLES)?;
        found.extend(
            samples
                .iter()
                .map(|s| point(s, timestamp_millis(s.time.as_ref()) / 1000)),
        );
        let points = health::steps(found, step);
        let latest = store::health::latest(store, &host.name)?;
        answer.hosts.push(HostHealthSeries {
            state: health::state(latest.as_ref(), now, health.every()) as i32,
            summary: Some(health::summary(&points)),
            host: host.name,
            environment: host.environment,
            latest,
            points,
        });
    }
    Ok(answer)
}

/// The hosts the request names: one host, an environment's, or all.
fn selected(store: &Store, request: &GetHealthSeriesRequest) -> Result<Vec<Host>, Error> {
    if !request.environment.is_empty() {
        validate::name("environment", &request.environment)?;
    }
    if request.host.is_empty() {
        return catalog::hosts(store, &request.environment);
    }
    validate::host_name("host", &request.host)?;
    let host = catalog::host(store, &request.host)?;
    if !request.environment.is_empty() && host.environment != request.environment {
        return Err(InvalidField::new(
            "host",
            format!(
                "host {} is in environment {}, not {}",
                host.name, host.environment, request.environment
            ),
        )
        .into());
    }
    Ok(vec![host])
}

/// The range widened to whole steps, and the step, in Unix seconds.
fn window(request: &GetHealthSeriesRequest, now: SystemTime) -> Result<(u64, u64, u64), Error> {
    let seconds = |field: &str, ts: &Timestamp| {
        u64::try_from(ts.seconds)
            .map_err(|_| InvalidField::new(field, "is before 1970"))
            .map(|s| s + u64::from(ts.nanos > 0))
    };
    let to = match &request.to {
        Some(ts) => seconds("to", ts)?,
        None => health::unix_seconds(now),
    };
    let from = match &request.from {
        Some(ts) => {
            u64::try_from(ts.seconds).map_err(|_| InvalidField::new("from", "is before 1970"))?
        }
        None => to.saturating_sub(DEFAULT_RANGE.as_secs()),
    };
    if from >= to {
        return Err(InvalidField::new("from", "must be before to").into());
    }
    let step = match u64::from(request.step_seconds) {
        0 => (to - from).div_ceil(DEFAULT_POINTS).max(1),
        step => step,
    };
    let (from, to) = (from - from % step, to.div_ceil(step).saturating_mul(step));
    if (to - from) / step > MAX_POINTS_PER_HOST {
        return Err(InvalidField::new(
            "step_seconds",
            format!(
                "{} points is more than {MAX_POINTS_PER_HOST} per host: narrow the range or widen the step",
                (to - from) / step
            ),
        )
        .into());
    }
    Ok((from, to, step))
}

#[cfg(test)]
mod tests;
