//! Trends: success rate, mean and p95 duration, rollbacks and their mean
//! time to recovery per app and environment, for a whole range or per day
//! or week. Reads the deployments index newest first and stops at the
//! first deployment older than the range.

use std::collections::BTreeMap;

use pbjson_types::Timestamp;
use slipway_proto::{
    control::v1::{
        Deployment, DeploymentKind, DeploymentStats, DeploymentStatus, GetDeploymentStatsRequest,
        StatsPeriod,
    },
    validate::InvalidField,
};

use crate::{
    audit::within,
    catalog,
    domain::event::is_final_status,
    error::Error,
    store::{
        Store,
        deployments::{self, Scope},
    },
};

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// 1970-01-05, the first Monday after the epoch.
const FIRST_MONDAY: i64 = 4 * DAY;

/// One group being counted: the counts, every duration, and the recoveries.
#[derive(Default)]
struct Group {
    stats: DeploymentStats,
    durations: Vec<u64>,
    recovery_ms: u64,
}

/// The start (seconds) of the period `seconds` falls in.
fn period_start(period: StatsPeriod, seconds: i64) -> Option<i64> {
    match period {
        StatsPeriod::Unspecified => None,
        StatsPeriod::Day => Some(seconds.div_euclid(DAY) * DAY),
        StatsPeriod::Week => Some((seconds - FIRST_MONDAY).div_euclid(WEEK) * WEEK + FIRST_MONDAY),
    }
}

/// The nearest-rank 95th percentile of `values`, sorted in place.
fn p95(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (values.len() * 95).div_ceil(100);
    values[rank.max(1) - 1]
}

/// The statistics of the finished deployments the request selects, by app,
/// environment and period.
pub fn stats(
    store: &Store,
    req: &GetDeploymentStatsRequest,
) -> Result<Vec<DeploymentStats>, Error> {
    let period = StatsPeriod::try_from(req.by)
        .map_err(|_| InvalidField::new("by", format!("{} is not a period", req.by)))?;
    if !req.app.is_empty() {
        catalog::app(store, &req.app)?;
    }
    if !req.environment.is_empty() {
        catalog::environment(store, &req.environment)?;
    }
    let (since, until) = (req.since.as_ref(), req.until.as_ref());
    let mut groups: BTreeMap<(String, String, Option<i64>), Group> = BTreeMap::new();
    let scope = Scope::of(&req.app, &req.environment, "");
    for d in deployments::newest_first(store, scope, None) {
        let d = d?;
        // Newest first: once one started before `since`, so did the rest.
        if since.is_some() && !within(d.started_at.as_ref(), since, None) {
            break;
        }
        let counted = is_final_status(d.status())
            && (req.app.is_empty() || d.app == req.app)
            && (req.environment.is_empty() || d.environment == req.environment)
            && within(d.started_at.as_ref(), since, until);
        if !counted {
            continue;
        }
        let start = d
            .started_at
            .as_ref()
            .and_then(|t| period_start(period, t.seconds));
        let group = groups
            .entry((d.app.clone(), d.environment.clone(), start))
            .or_default();
        count(store, group, &d)?;
    }
    Ok(groups
        .into_iter()
        .map(|((app, environment, start), mut g)| {
            let s = &mut g.stats;
            s.app = app;
            s.environment = environment;
            s.period_start = start.map(|seconds| Timestamp { seconds, nanos: 0 });
            s.success_rate = s.succeeded as f64 / s.total as f64;
            s.mean_duration_ms = g.durations.iter().sum::<u64>() / s.total;
            s.p95_duration_ms = p95(&mut g.durations);
            s.mean_time_to_recovery_ms = g.recovery_ms.checked_div(s.recoveries).unwrap_or(0);
            g.stats
        })
        .collect())
}

fn count(store: &Store, group: &mut Group, d: &Deployment) -> Result<(), Error> {
    let s = &mut group.stats;
    s.total += 1;
    match d.status() {
        DeploymentStatus::Succeeded => s.succeeded += 1,
        DeploymentStatus::Cancelled => s.cancelled += 1,
        _ => s.failed += 1,
    }
    group.durations.push(d.duration_ms);
    if d.kind() == DeploymentKind::Rollback {
        s.rollbacks += 1;
        if let Some(recovery) = super::time_to_recovery(store, d)? {
            s.recoveries += 1;
            group.recovery_ms += u64::try_from(recovery.as_millis()).unwrap_or(u64::MAX);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_midnight_and_on_mondays() {
        // 2026-11-29T13:00:00Z, a Sunday.
        let sunday = 1_795_957_200;
        assert_eq!(period_start(StatsPeriod::Day, sunday), Some(1_795_910_400));
        // The Monday before: 2026-11-23T00:00:00Z.
        assert_eq!(period_start(StatsPeriod::Week, sunday), Some(1_795_392_000));
        assert_eq!(
            period_start(StatsPeriod::Week, 1_795_392_000),
            Some(1_795_392_000)
        );
        assert_eq!(period_start(StatsPeriod::Unspecified, sunday), None);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        assert_eq!(p95(&mut []), 0);
        assert_eq!(p95(&mut [7]), 7);
        let mut hundred: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(p95(&mut hundred), 95);
        let mut twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(p95(&mut twenty), 19);
    }
}
