//! Samples and aggregates of several hosts in a real sled store: ranges,
//! the latest sample, the hosts listed, expiry and the watermark.

use super::*;
use crate::{domain::health::at_seconds, store::tests::scratch};

fn sample(ms: u64) -> HealthSample {
    HealthSample {
        time: Some(slipway_proto::timestamp(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )),
        reachable: true,
        load_average: ms as f64,
        ..Default::default()
    }
}

fn loads(samples: &[HealthSample]) -> Vec<u64> {
    samples.iter().map(|s| s.load_average as u64).collect()
}

#[tokio::test]
async fn samples_are_read_by_host_and_range_and_expire_in_order() {
    let (_dir, s) = scratch();
    let mut ops = Vec::new();
    // "web-1" and "web-10": one name a prefix of the other.
    for host in ["web-1", "web-10", "db"] {
        for ms in [1_000, 2_000, 2_500, 9_000] {
            ops.push(put_sample(host, &sample(ms)));
        }
    }
    s.commit(ops).await.unwrap();
    let read = samples(&s, "web-1", (2_000, 9_000), 100).unwrap();
    assert_eq!(loads(&read), [2_000, 2_500]);
    let read = samples(&s, "web-1", (0, u64::MAX), 3).unwrap();
    assert_eq!(loads(&read), [1_000, 2_000, 2_500]);
    assert_eq!(latest(&s, "web-1").unwrap().unwrap().load_average, 9_000.0);
    assert!(latest(&s, "web-2").unwrap().is_none());
    assert_eq!(hosts(&s, Series::Raw).unwrap(), ["db", "web-1", "web-10"]);

    let gone = expire(&s, Series::Raw, "web-1", 2_500, 1_000).unwrap();
    assert_eq!(gone.len(), 2);
    s.commit(gone).await.unwrap();
    let left = samples(&s, "web-1", (0, u64::MAX), 100).unwrap();
    assert_eq!(loads(&left), [2_500, 9_000]);
    assert_eq!(samples(&s, "web-10", (0, u64::MAX), 100).unwrap().len(), 4);
    assert_eq!(footprint(&s, Series::Raw).unwrap().0, 10);
}

#[tokio::test]
async fn aggregates_and_the_watermark() {
    let (_dir, s) = scratch();
    assert_eq!(aggregated_until(&s).unwrap(), None);
    let point = |start: u64| HealthPoint {
        time: Some(at_seconds(start)),
        samples: 10,
        ..Default::default()
    };
    let ops = vec![
        put_aggregate("web-1", &point(0)),
        put_aggregate("web-1", &point(300)),
        put_aggregate("web-1", &point(600)),
        set_aggregated_until(900),
    ];
    s.commit(ops).await.unwrap();
    assert_eq!(aggregated_until(&s).unwrap(), Some(900));
    let read = aggregates(&s, "web-1", (300, 900), 100).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].time, Some(at_seconds(300)));
    assert_eq!(hosts(&s, Series::Aggregates).unwrap(), ["web-1"]);
    assert!(hosts(&s, Series::Raw).unwrap().is_empty());
}
