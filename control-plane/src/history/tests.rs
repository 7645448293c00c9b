//! History reads over a store filled directly: text search, the rollback
//! timeline and statistics.
use std::sync::Arc;

use pbjson_types::Timestamp;
use slipway_proto::control::v1::{App, Environment, GetDeploymentStatsRequest};

use super::*;
use crate::store::SledBackend;

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) store: Store,
}

pub(super) async fn fixture(deployments: Vec<Deployment>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(Arc::new(SledBackend::open(dir.path(), 8 << 20).unwrap()));
    let mut ops = vec![
        store::catalog::put(&App {
            name: "web".into(),
            ..Default::default()
        }),
        store::catalog::put(&Environment {
            name: "prod".into(),
            ..Default::default()
        }),
        store::releases::put(&Release {
            app: "web".into(),
            id: "r1".into(),
            commit: "abc123".into(),
            git_ref: "main".into(),
            ..Default::default()
        }),
    ];
    ops.extend(deployments.iter().map(store::deployments::put));
    store.commit(ops).await.unwrap();
    deployments::ensure_indexes(&store).await.unwrap();
    ensure_text_index(&store).await.unwrap();
    Fixture { _dir: dir, store }
}

pub(super) fn dep(
    n: u32,
    kind: DeploymentKind,
    status: DeploymentStatus,
    release: &str,
) -> Deployment {
    Deployment {
        id: format!("dep-{n:010}"),
        kind: kind as i32,
        app: "web".into(),
        environment: "prod".into(),
        release: release.into(),
        author: "admin/alice".into(),
        status: status as i32,
        started_at: at(i64::from(n) * 100),
        finished_at: at(i64::from(n) * 100 + 10),
        duration_ms: 10_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn text_matches_the_commit_of_the_release() {
    let f = fixture(vec![
        dep(1, DeploymentKind::Deploy, DeploymentStatus::Succeeded, "r1"),
        dep(2, DeploymentKind::Deploy, DeploymentStatus::Succeeded, "r2"),
    ])
    .await;
    let req = ListDeploymentsRequest {
        text: "ABC1".into(),
        ..Default::default()
    };
    let (page, next) = list(&f.store, &req).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0].commit.as_str(), page[0].git_ref.as_str()),
        ("abc123", "main")
    );
    assert!(next.is_empty());
}

#[tokio::test]
async fn timeline_and_stats() {
    let mut d3 = dep(3, DeploymentKind::Deploy, DeploymentStatus::Failed, "r3");
    d3.error = "health check failed".into();
    d3.rolled_back_by = "dep-0000000004".into();
    let mut auto = dep(
        4,
        DeploymentKind::Rollback,
        DeploymentStatus::Succeeded,
        "r2",
    );
    auto.rollback_of = d3.id.clone();
    auto.previous_release = "r3".into();
    let mut manual = dep(
        5,
        DeploymentKind::Rollback,
        DeploymentStatus::Succeeded,
        "r1",
    );
    manual.previous_release = "r2".into();
    manual.message = "slow pages".into();
    let f = fixture(vec![
        dep(1, DeploymentKind::Deploy, DeploymentStatus::Succeeded, "r1"),
        dep(2, DeploymentKind::Deploy, DeploymentStatus::Succeeded, "r2"),
        d3,
        auto,
        manual,
        dep(6, DeploymentKind::Deploy, DeploymentStatus::Cancelled, "r4"),
    ])
    .await;
    let timeline = rollback_timeline(&f.store, "web", "prod").unwrap();
    assert_eq!(timeline.len(), 2);
    let (m, a) = (&timeline[0], &timeline[1]);
    assert!(!m.automatic);
    assert_eq!(
        (m.reason.as_str(), m.from_release.as_str()),
        ("slow pages", "r2")
    );
    // r2 came back with the automatic rollback at 410s; recovered at 510s.
    assert_eq!(m.undone_deployment, "dep-0000000004");
    assert_eq!(m.time_to_recovery_ms, 100_000);
    assert!(a.automatic);
    assert_eq!(a.reason, "health check failed");
    assert_eq!(
        (a.from_release.as_str(), a.to_release.as_str()),
        ("r3", "r2")
    );
    assert_eq!(a.undone_deployment, "dep-0000000003");
    // From the start of the deployment it undid (300s) to its end (410s).
    assert_eq!(a.time_to_recovery_ms, 110_000);

    let stats = stats(&f.store, &GetDeploymentStatsRequest::default()).unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(
        (s.total, s.succeeded, s.failed, s.cancelled, s.rollbacks),
        (6, 4, 1, 1, 2)
    );
    assert!((s.success_rate - 4.0 / 6.0).abs() < 1e-9);
    assert_eq!(s.mean_duration_ms, 10_000);
    let since = GetDeploymentStatsRequest {
        since: at(450),
        ..Default::default()
    };
    let s = &super::stats(&f.store, &since).unwrap()[0];
    assert_eq!((s.total, s.succeeded, s.cancelled), (2, 1, 1));
}
