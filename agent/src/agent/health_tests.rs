//! GetHealth below gRPC: a live release's check goes on as its continuous
//! probes, from the switch that passed it, across a failed deploy and a
//! restart, and stops with a release that has no check.

use std::time::Duration;

use slipway_proto::agent::v1::AppHealthState;

use super::tests::{fixture, result};
use crate::activation::{Activation, HealthCheck, Probe};

/// A command check whose continuous probes are an hour apart: only the
/// switch-time outcome shows during a test.
fn checked(command: &str) -> Activation {
    Activation {
        health: Some(HealthCheck {
            probe: Probe::Command(command.into()),
            attempts: 1,
            interval: Duration::from_millis(10),
            deadline: Duration::from_secs(30),
            probe_interval: Duration::from_secs(3600),
        }),
        ..Activation::default()
    }
}

#[tokio::test]
async fn the_live_release_is_probed_from_its_switch_on() {
    let mut f = fixture().await;
    let none = f.agent.health().await.unwrap();
    assert!(none.apps.is_empty());
    assert_eq!(none.host.unwrap().host_name, "web-1");

    let events = f.deploy_with("d1", "r1", checked("true"), 5).await;
    assert!(result(&events).success);
    let health = f.agent.health().await.unwrap();
    let app = &health.apps[0];
    assert_eq!((app.name.as_str(), app.release_id.as_str()), ("web", "r1"));
    assert_eq!(app.state(), AppHealthState::Healthy);
    assert_eq!((app.interval_seconds, app.recent.len()), (3600, 1));

    // A release that fails its check is switched back: r1 stays probed.
    let events = f.deploy_with("d2", "r2", checked("exit 1"), 5).await;
    assert!(!result(&events).success);
    let app = f.agent.health().await.unwrap().apps.remove(0);
    assert_eq!((app.release_id.as_str(), app.recent.len()), ("r1", 1));

    f.restart().await;
    let app = f.agent.health().await.unwrap().apps.remove(0);
    assert_eq!(app.state(), AppHealthState::Healthy);
    assert_eq!(app.release_id, "r1", "the check is journaled");

    let events = f.deploy_with("d3", "r3", Activation::default(), 5).await;
    assert!(result(&events).success);
    assert!(f.agent.health().await.unwrap().apps.is_empty());
    f.restart().await;
    assert!(f.agent.health().await.unwrap().apps.is_empty());
}
