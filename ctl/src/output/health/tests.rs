//! The health table and sparklines of a made-up answer, as printed.

use slipway_proto::control::v1::{
    AppHealthPoint, AppHealthSample, HealthSample, HealthSummary, MetricRange,
};

use super::*;

fn at(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds, nanos: 0 }
}

fn range(v: f64) -> Option<MetricRange> {
    Some(MetricRange {
        min: v,
        avg: v,
        max: v,
    })
}

/// One point a minute from T: the app answering in `ms`, failing `errors`
/// of 2 samples (a failed probe has no response time).
fn point(minute: i64, ms: f64, errors: u32, load: f64) -> HealthPoint {
    HealthPoint {
        time: Some(at(T + minute * 60)),
        samples: 2,
        reachable: 2,
        load_average: range(load),
        memory_available_bytes: range(2.0 * 1024.0 * 1024.0 * 1024.0),
        disk_free_bytes: range(40.0 * 1024.0 * 1024.0 * 1024.0),
        apps: vec![AppHealthPoint {
            app: "web".into(),
            ok: 2 - errors,
            errors,
            response_ms: range(ms),
            response_buckets: Vec::new(),
        }],
    }
}

const T: i64 = 1_795_443_840;

fn answer() -> GetHealthSeriesResponse {
    let web = HostHealthSeries {
        host: "web-1".into(),
        environment: "prod".into(),
        state: HostHealthState::Degraded as i32,
        latest: Some(HealthSample {
            reachable: true,
            apps: vec![AppHealthSample {
                app: "web".into(),
                state: AppHealthState::Failing as i32,
                error: "answered HTTP/1.1 500 Internal Server Error".into(),
                release_id: "r2".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        points: vec![
            point(0, 2.0, 0, 0.5),
            point(1, 4.0, 0, 1.0),
            // Minute 2 was not sampled.
            point(3, 9.0, 2, 1.5),
        ],
        summary: Some(HealthSummary {
            samples: 6,
            uptime_percent: 100.0,
            probes: 6,
            error_rate_percent: 33.3,
            response_p50_ms: 3.0,
            response_p95_ms: 8.5,
        }),
    };
    let quiet = HostHealthSeries {
        host: "web-2".into(),
        environment: "prod".into(),
        state: HostHealthState::Unknown as i32,
        summary: Some(HealthSummary::default()),
        ..Default::default()
    };
    GetHealthSeriesResponse {
        hosts: vec![web, quiet],
        from: Some(at(T)),
        to: Some(at(T + 240)),
        step_seconds: 60,
        sample_interval_ms: 30_000,
    }
}

#[test]
fn a_row_per_host_then_sparklines_with_gaps() {
    let text = health(&answer());
    let expected = "\
HOST   ENV   STATE     UPTIME  P50     P95     ERRORS  SAMPLES
web-1  prod  degraded  100.0%  3.0 ms  8.5 ms  33.3%   6
web-2  prod  unknown   -       -       -       -       0

2026-11-23T14:24:00Z .. 2026-11-23T14:28:00Z, 1m00s per character, sampled every 30.0s

web-1 (degraded)
  uptime     ██ █  100.0%
  response   ▁█    2.0 ms .. 4.0 ms
  errors     ▁▁ █  0.0% .. 100.0%
  load       ▁▅ █  0.50 .. 1.50
  mem avail  ▅▅ ▅  2.0 GiB
  disk free  ▅▅ ▅  40.0 GiB
  app web: failing: answered HTTP/1.1 500 Internal Server Error (release r2)

web-2 (unknown)
";
    assert_eq!(text, expected);
}

#[test]
fn sparklines_scale_between_their_bounds() {
    let slots = [Some(0.0), Some(50.0), None, Some(100.0), Some(-5.0)];
    assert_eq!(sparkline(&slots, (0.0, 100.0)), "▁▅ █▁");
    assert_eq!(sparkline(&[Some(3.0), Some(3.0)], (3.0, 3.0)), "▅▅");
    assert_eq!(sparkline(&[], (0.0, 1.0)), "");
    assert_eq!(
        health(&GetHealthSeriesResponse::default()),
        "no hosts match\n"
    );
}
