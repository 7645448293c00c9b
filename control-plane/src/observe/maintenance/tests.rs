//! Downsampling and retention on a real store with a clock that runs
//! ahead: two hours of samples of two hosts, then a day, then a month.

use std::time::UNIX_EPOCH;

use slipway_proto::{
    agent::v1::AppHealthState,
    control::v1::{AppHealthSample, HealthSample},
};

use super::*;
use crate::{domain::health::at_seconds, store::tests::scratch};

/// A made-up start, on a bucket boundary.
const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Every 30 s for `hours` from T0: web-1 always up with its app answering
/// in 3 or 5 ms; web-2 down every fourth sample.
async fn two_hosts(store: &Store, hours: u64) {
    let mut ops = Vec::new();
    for i in 0..hours * 120 {
        let time = Some(at_seconds(T0 + i * 30));
        let web = AppHealthSample {
            app: "web".into(),
            state: AppHealthState::Healthy as i32,
            response_ms: if i % 2 == 0 { 3.0 } else { 5.0 },
            ..Default::default()
        };
        let up = HealthSample {
            time,
            reachable: true,
            load_average: 1.0,
            apps: vec![web],
            ..Default::default()
        };
        ops.push(health::put_sample("web-1", &up));
        let sometimes = HealthSample {
            reachable: i % 4 != 0,
            apps: Vec::new(),
            ..up
        };
        ops.push(health::put_sample("web-2", &sometimes));
    }
    store.commit(ops).await.unwrap();
}

#[tokio::test]
async fn raw_samples_become_5_minute_aggregates_and_both_expire() {
    let (_dir, store) = scratch();
    two_hosts(&store, 2).await;

    // Two hours on: every bucket closed a minute ago is aggregated.
    let done = maintain(&store, at(T0 + 7200)).await.unwrap();
    assert_eq!(
        done.until,
        T0 + 7200 - 300,
        "the last bucket is in its grace"
    );
    assert_eq!(done.aggregated, 2 * 23);
    assert_eq!((done.expired_samples, done.expired_aggregates), (0, 0));
    let points = health::aggregates(&store, "web-1", (T0, T0 + 7200), 100).unwrap();
    assert_eq!(points.len(), 23);
    let first = &points[0];
    assert_eq!((first.samples, first.reachable), (10, 10));
    let web = &first.apps[0];
    assert_eq!((web.ok, web.errors), (10, 0));
    let response = web.response_ms.as_ref().unwrap();
    assert_eq!((response.min, response.avg, response.max), (3.0, 4.0, 5.0));
    let down = health::aggregates(&store, "web-2", (T0, T0 + 300), 10).unwrap();
    assert_eq!((down[0].samples, down[0].reachable), (10, 7));

    // Again at once: nothing new.
    let again = maintain(&store, at(T0 + 7200)).await.unwrap();
    assert_eq!(again.aggregated, 0);

    // A day later: the last bucket is aggregated before its raw samples go.
    let day = maintain(&store, at(T0 + 7200 + 86_400)).await.unwrap();
    assert_eq!(day.aggregated, 2);
    assert_eq!(day.expired_samples, 2 * 240);
    assert!(
        health::samples(&store, "web-1", (0, u64::MAX), 10)
            .unwrap()
            .is_empty()
    );
    let kept = health::aggregates(&store, "web-1", (0, u64::MAX), 100).unwrap();
    assert_eq!(kept.len(), 24);

    // A month later the aggregates are gone too.
    let month = maintain(&store, at(T0 + 31 * 86_400)).await.unwrap();
    assert_eq!(month.expired_aggregates, 2 * 24);
    assert_eq!(
        health::footprint(&store, Series::Aggregates).unwrap(),
        (0, 0)
    );
    assert_eq!(health::aggregated_until(&store).unwrap(), Some(month.until));
}
