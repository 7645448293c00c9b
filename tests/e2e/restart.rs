//! A control plane restarted on the same sled directory keeps everything.

use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{
        GetAppRequest, ListDeploymentsRequest, ListReleasesRequest, WatchDeploymentRequest,
    },
    identity::Role,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{Cluster, cluster::APP, repo::Change};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_apps_releases_deployments_and_events() {
    let mut cluster = Cluster::builder().agents(2).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (events1, d1) = cluster.deploy("main").await;
    cluster.repo.commit("two", &[Change::File("a.txt", b"b\n")]);
    let (_, d2) = cluster.deploy("main").await;

    cluster.restart_control_plane().await;

    let app = cluster
        .apps(Role::Viewer)
        .await
        .get_app(GetAppRequest { name: APP.into() })
        .await
        .expect("app")
        .into_inner();
    assert_eq!(app.app.expect("app").name, APP);
    let releases = cluster
        .releases(Role::Viewer)
        .await
        .list_releases(ListReleasesRequest {
            app: APP.into(),
            limit: 0,
        })
        .await
        .expect("releases")
        .into_inner()
        .releases;
    let ids: Vec<&str> = releases.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [d2.release.as_str(), d1.release.as_str()]);
    let deployments = cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("history")
        .into_inner()
        .deployments;
    assert_eq!(
        deployments,
        vec![d2.clone(), d1.clone()],
        "records identical after restart"
    );

    let replay: Vec<_> = cluster
        .deployments(Role::Viewer)
        .await
        .watch_deployment(WatchDeploymentRequest {
            deployment_id: d1.id.clone(),
            after_event: 0,
        })
        .await
        .expect("watch")
        .into_inner()
        .map(|r| r.expect("event").event.expect("set"))
        .collect()
        .await;
    assert_eq!(replay, events1, "the event log survived byte for byte");

    // The restarted control plane still knows what to roll back to.
    let (_, d3) = cluster.rollback("").await;
    assert_succeeded(&d3);
    assert_eq!(d3.release, d1.release);
    // Deployment numbers are dense across the restart (and they are the
    // fencing tokens agents compare).
    assert_eq!(
        [&d1.id, &d2.id, &d3.id],
        ["dep-0000000001", "dep-0000000002", "dep-0000000003"]
    );
    assert_eq!(d3.fencing_token, 3);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
    }
    cluster.shutdown().await;
}
