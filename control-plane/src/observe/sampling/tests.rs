//! Sampling rounds over simulated hosts: samples stored, states derived,
//! changes sent out once, metrics exported.

use std::time::UNIX_EPOCH;

use slipway_proto::control::v1::Environment;

use super::*;
use crate::{agents::simulated::Fleet, store::tests::scratch};
use slipway_proto::control::v1::FeedKind;

async fn sampler(fleet: &Arc<Fleet>) -> (tempfile::TempDir, Sampler) {
    let (dir, store) = scratch();
    let env = Environment {
        name: "prod".into(),
        ..Default::default()
    };
    catalog::create_environment(&store, env.try_into().unwrap())
        .await
        .unwrap();
    for i in 1..=3 {
        let host = Host {
            name: format!("web-{i}"),
            address: format!("10.0.0.{i}:7444"),
            environment: "prod".into(),
            ..Default::default()
        };
        catalog::add_host(&store, host.try_into().unwrap())
            .await
            .unwrap();
    }
    let sampler = Sampler {
        store,
        agents: Agents::with(Arc::new(fleet.clone())),
        metrics: Arc::default(),
        health: Arc::default(),
        feed: Feed::default(),
    };
    (dir, sampler)
}

fn metrics_text(metrics: &Metrics) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
    text
}

#[tokio::test]
async fn each_host_is_sampled_and_each_change_goes_out_once() {
    let fleet = Fleet::new();
    fleet.host("web-1").set_health("web", true, 3.0);
    fleet.host("web-2").set_health("web", false, 12.0);
    fleet.host("web-3").set_down(true);
    let (_dir, sampler) = sampler(&fleet).await;
    let mut changes = sampler.health.subscribe();

    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let round = sampler.round(at).await.unwrap();
    assert_eq!((round.hosts, round.reachable), (3, 2));
    let states: Vec<(String, HostHealthState)> = round
        .changes
        .iter()
        .map(|c| (c.host.clone(), c.to))
        .collect();
    assert_eq!(
        states,
        [
            ("web-1".to_owned(), HostHealthState::Healthy),
            ("web-2".to_owned(), HostHealthState::Degraded),
            ("web-3".to_owned(), HostHealthState::Down),
        ]
    );
    assert_eq!(changes.recv().await.unwrap().host, "web-1");
    // Each change is in the live feed too, with the samples.
    let items = crate::store::feed::after(&sampler.store, 0, 10).unwrap();
    let messages: Vec<&str> = items.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "web-1 is healthy (was unknown)",
            "web-2 is degraded: app web failing: failing (simulated)",
            "web-3 is down: 10.0.0.3:7444: connection refused (simulated)",
        ]
    );
    assert_eq!(
        (items[1].kind(), items[1].app.as_str()),
        (FeedKind::Health, "web")
    );
    let stored = crate::store::health::latest(&sampler.store, "web-3")
        .unwrap()
        .unwrap();
    assert!(!stored.reachable);
    assert!(
        stored.error.contains("connection refused"),
        "{}",
        stored.error
    );
    assert_eq!(stored.time, Some(slipway_proto::timestamp(at)));
    assert_eq!(sampler.agents.contacts().get("web-3"), Some(false));

    let text = metrics_text(&sampler.metrics);
    for line in [
        "slipway_app_health{app=\"web\",environment=\"prod\",host=\"web-1\"} 1",
        "slipway_app_health{app=\"web\",environment=\"prod\",host=\"web-2\"} 0",
        "slipway_app_response_time_seconds{app=\"web\",environment=\"prod\",host=\"web-2\"} 0.012",
        "slipway_hosts_by_health{environment=\"prod\",state=\"degraded\"} 1",
        "slipway_hosts_by_health{environment=\"prod\",state=\"unknown\"} 0",
        "slipway_health_sampling_duration_seconds_count 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }

    // The failing app recovers; the rest stays as it was.
    fleet.host("web-2").set_health("web", true, 4.0);
    let round = sampler.round(at + Duration::from_secs(30)).await.unwrap();
    assert_eq!(round.changes.len(), 1);
    let change = &round.changes[0];
    assert_eq!(
        (change.host.as_str(), change.from, change.to),
        ("web-2", HostHealthState::Degraded, HostHealthState::Healthy)
    );
}
