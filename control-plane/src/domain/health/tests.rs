//! Points, merges, steps, percentiles and states on made-up samples.

use slipway_proto::control::v1::AppHealthSample;

use super::*;

fn sample(seconds: u64, reachable: bool, apps: &[(&str, AppHealthState, f64)]) -> HealthSample {
    HealthSample {
        time: Some(at_seconds(seconds)),
        reachable,
        load_average: 1.0 + seconds as f64 / 100.0,
        memory_available_bytes: 1000,
        disk_free_bytes: 5000 - seconds,
        apps: apps
            .iter()
            .map(|(app, state, ms)| AppHealthSample {
                app: (*app).into(),
                state: *state as i32,
                response_ms: *ms,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

const OK: AppHealthState = AppHealthState::Healthy;
const FAILING: AppHealthState = AppHealthState::Failing;

#[test]
fn a_hosts_state_comes_from_its_latest_fresh_sample() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let every = Duration::from_secs(30);
    assert_eq!(state(None, now, every), HostHealthState::Unknown);
    let up = sample(990, true, &[("web", OK, 3.0)]);
    assert_eq!(state(Some(&up), now, every), HostHealthState::Healthy);
    let failing = sample(990, true, &[("web", OK, 3.0), ("api", FAILING, 1.0)]);
    assert_eq!(state(Some(&failing), now, every), HostHealthState::Degraded);
    let down = sample(990, false, &[]);
    assert_eq!(state(Some(&down), now, every), HostHealthState::Down);
    let old = sample(800, true, &[]);
    assert_eq!(state(Some(&old), now, every), HostHealthState::Unknown);
    let unknown_app = sample(990, true, &[("web", AppHealthState::Unknown, 0.0)]);
    assert_eq!(state_of(&unknown_app), HostHealthState::Healthy);
}

#[test]
fn samples_merge_into_steps_with_weighted_means() {
    let samples = [
        sample(0, true, &[("web", OK, 2.0)]),
        sample(30, true, &[("web", OK, 4.0)]),
        sample(60, false, &[]),
        sample(90, true, &[("web", FAILING, 9000.0)]),
        sample(310, true, &[("web", OK, 30.0)]),
    ];
    let points: Vec<HealthPoint> = samples
        .iter()
        .map(|s| point(s, timestamp_millis(s.time.as_ref()) / 1000))
        .collect();
    let steps = steps(points, 300);
    assert_eq!(steps.len(), 2);
    let first = &steps[0];
    assert_eq!((first.samples, first.reachable), (4, 3));
    assert_eq!(timestamp_millis(first.time.as_ref()), 0);
    let load = first.load_average.as_ref().unwrap();
    assert_eq!((load.min, load.max), (1.0, 1.9));
    assert!((load.avg - (1.0 + 1.3 + 1.9) / 3.0).abs() < 1e-9);
    let web = &first.apps[0];
    assert_eq!((web.ok, web.errors), (2, 1));
    let response = web.response_ms.as_ref().unwrap();
    assert_eq!((response.min, response.avg, response.max), (2.0, 3.0, 4.0));
    assert_eq!(web.response_buckets[1], 1, "2 ms is at most 2");
    assert_eq!(web.response_buckets[2], 1, "4 ms is at most 5");
    assert_eq!(timestamp_millis(steps[1].time.as_ref()), 300_000);

    let summary = summary(&steps);
    assert_eq!(summary.samples, 5);
    assert_eq!(summary.uptime_percent, 80.0);
    assert_eq!(summary.probes, 4);
    assert_eq!(summary.error_rate_percent, 25.0);
    assert!(summary.response_p50_ms >= 2.0 && summary.response_p50_ms <= 5.0);
    assert!(summary.response_p95_ms > 20.0 && summary.response_p95_ms <= 30.0);
}

#[test]
fn percentiles_stay_within_what_was_observed() {
    let mut buckets = vec![0; RESPONSE_BOUNDS_MS.len() + 1];
    assert_eq!(percentile(&buckets, 0.5, 0.0, 0.0), 0.0);
    buckets[2] = 100; // all in (2, 5]
    assert_eq!(percentile(&buckets, 0.5, 3.0, 3.0), 3.0);
    let p50 = percentile(&buckets, 0.5, 2.1, 4.9);
    assert!((p50 - 3.5).abs() < 1e-9, "{p50}");
    buckets[13] = 100; // above 10 s
    // Above the last bound: up to the greatest seen.
    assert_eq!(percentile(&buckets, 0.95, 2.1, 40_000.0), 37_000.0);
}
