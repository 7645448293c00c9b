//! Series over samples and aggregates of a real store, and the requests
//! refused.

use std::time::UNIX_EPOCH;

use slipway_proto::control::v1::{Environment, HealthSample, HostHealthState};

use super::*;
use crate::{observe::maintenance::maintain, store::tests::scratch};

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Hosts web-1 (prod) and db-1 (test); web-1 sampled every 30 s for an
/// hour from T0, up but for its last sample.
async fn fixture() -> (tempfile::TempDir, Store) {
    let (dir, store) = scratch();
    for env in ["prod", "test"] {
        let env = Environment {
            name: env.into(),
            ..Default::default()
        };
        catalog::create_environment(&store, env.try_into().unwrap())
            .await
            .unwrap();
    }
    for (name, env) in [("web-1", "prod"), ("db-1", "test")] {
        let host = Host {
            name: name.into(),
            address: "127.0.0.1:1".into(),
            environment: env.into(),
            ..Default::default()
        };
        catalog::add_host(&store, host.try_into().unwrap())
            .await
            .unwrap();
    }
    let ops = (0..120)
        .map(|i| {
            let sample = HealthSample {
                time: Some(at_seconds(T0 + i * 30)),
                reachable: i != 119,
                load_average: i as f64,
                ..Default::default()
            };
            store::health::put_sample("web-1", &sample)
        })
        .collect();
    store.commit(ops).await.unwrap();
    (dir, store)
}

fn request(host: &str, env: &str, from: u64, to: u64, step: u32) -> GetHealthSeriesRequest {
    GetHealthSeriesRequest {
        host: host.into(),
        environment: env.into(),
        from: Some(at_seconds(from)),
        to: Some(at_seconds(to)),
        step_seconds: step,
    }
}

#[tokio::test]
async fn points_come_from_raw_samples_and_aggregates_alike() {
    let (_dir, store) = fixture().await;
    let health = Health::new(Duration::from_secs(30));
    let now = at(T0 + 3600);
    let minutes = series(
        &store,
        &health,
        &request("", "prod", T0, T0 + 3600, 60),
        now,
    )
    .unwrap();
    assert_eq!(minutes.hosts.len(), 1);
    let web = &minutes.hosts[0];
    assert_eq!(web.host, "web-1");
    assert_eq!(web.state(), HostHealthState::Down, "its latest sample");
    assert_eq!(web.points.len(), 60);
    assert_eq!(web.points[0].samples, 2);
    let summary = web.summary.as_ref().unwrap();
    assert_eq!(summary.samples, 120);
    assert!((summary.uptime_percent - 100.0 * 119.0 / 120.0).abs() < 1e-9);

    // Aggregated, then read by the 5-minute step: the same samples.
    maintain(&store, at(T0 + 3600 + 600)).await.unwrap();
    let later = at(T0 + 3600 + 600);
    let buckets = series(
        &store,
        &health,
        &request("web-1", "", T0, T0 + 3600, 300),
        later,
    )
    .unwrap();
    let web = &buckets.hosts[0];
    assert_eq!(web.points.len(), 12);
    assert_eq!(web.points[0].samples, 10);
    let load = web.points[0].load_average.as_ref().unwrap();
    assert_eq!((load.min, load.avg, load.max), (0.0, 4.5, 9.0));
    assert_eq!(web.summary.as_ref().unwrap().samples, 120);
    assert_eq!(web.state(), HostHealthState::Unknown, "20 intervals since");
    assert_eq!(buckets.sample_interval_ms, 30_000);

    // Every host; db-1 has no samples.
    let all = series(&store, &health, &request("", "", T0, T0 + 3600, 300), later).unwrap();
    let names: Vec<&str> = all.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(names, ["db-1", "web-1"]);
    assert!(all.hosts[0].points.is_empty() && all.hosts[0].latest.is_none());
}

#[tokio::test]
async fn a_range_is_widened_to_whole_steps_and_defaults_to_a_day() {
    let (_dir, store) = fixture().await;
    let health = Health::default();
    let odd = series(
        &store,
        &health,
        &request("web-1", "", T0 + 7, T0 + 601, 300),
        at(T0),
    )
    .unwrap();
    assert_eq!(odd.from, Some(at_seconds(T0)));
    assert_eq!(odd.to, Some(at_seconds(T0 + 900)));
    let default = GetHealthSeriesRequest {
        host: "web-1".into(),
        ..Default::default()
    };
    let day = series(&store, &health, &default, at(T0 + 86_400)).unwrap();
    assert_eq!(day.step_seconds, 1440);
    assert_eq!(day.hosts[0].summary.as_ref().unwrap().samples, 120);
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_field() {
    let (_dir, store) = fixture().await;
    let health = Health::default();
    let now = at(T0);
    let refused = |req: GetHealthSeriesRequest| {
        let err = series(&store, &health, &req, now).unwrap_err();
        tonic::Status::from(err)
    };
    let status = refused(request("web-1", "", T0, T0, 60));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("from"), "{}", status.message());
    let status = refused(request("web-1", "", T0, T0 + 86_400, 1));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("per host"),
        "{}",
        status.message()
    );
    let status = refused(request("web-9", "", T0, T0 + 60, 60));
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = refused(request("", "staging", T0, T0 + 60, 60));
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = refused(request("web-1", "test", T0, T0 + 60, 60));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("is in environment prod"));
    let status = refused(request("Web 1", "", T0, T0 + 60, 60));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let before_1970 = GetHealthSeriesRequest {
        from: Some(Timestamp {
            seconds: -5,
            nanos: 0,
        }),
        ..request("web-1", "", T0, T0 + 60, 60)
    };
    assert_eq!(refused(before_1970).code(), tonic::Code::InvalidArgument);
}
