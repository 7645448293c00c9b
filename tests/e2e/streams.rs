//! The event stream: ordered and complete, resumable after event N, and a
//! client that leaves does not stop the deployment.

use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{DeployRequest, DeploymentStatus, WatchDeploymentRequest},
    identity::Role,
};
use slipway_tests::{
    Cluster,
    cluster::{APP, ENV},
    repo::Change,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_ordered_complete_and_resumable() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (events, deployment) = cluster.deploy("main").await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=deployment.last_event).collect();
    assert_eq!(
        sequences, expected,
        "every event once, in order, none missing"
    );
    let last = events.last().expect("events");
    assert!(last.host.is_empty() && last.status == DeploymentStatus::Succeeded as i32);
    for host in ["web-1", "web-2"] {
        assert!(
            events
                .iter()
                .any(|e| e.host == host && e.stage == "activate"),
            "{host} activate event"
        );
    }

    // Reconnecting with "after event N" yields exactly N+1..=last.
    let n = deployment.last_event / 2;
    let replay: Vec<u64> = cluster
        .deployments(Role::Viewer)
        .await
        .watch_deployment(WatchDeploymentRequest {
            deployment_id: deployment.id.clone(),
            after_event: n,
        })
        .await
        .expect("watch")
        .into_inner()
        .map(|r| r.expect("event").event.expect("set").sequence)
        .collect()
        .await;
    assert_eq!(
        replay,
        ((n + 1)..=deployment.last_event).collect::<Vec<_>>()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_leaves_does_not_stop_the_deployment() {
    let cluster = Cluster::builder().agents(2).start().await;
    let sha = cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let mut client = cluster.deployments(Role::Deployer).await;
    let mut stream = client
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: sha,
            ..Default::default()
        })
        .await
        .expect("deploy")
        .into_inner();
    let first = stream
        .next()
        .await
        .expect("one event")
        .expect("ok")
        .event
        .expect("set");
    assert_eq!(first.sequence, 1);
    drop(stream);
    drop(client);

    // A new client watching from the start sees the deployment to its end.
    let events: Vec<_> = cluster
        .deployments(Role::Viewer)
        .await
        .watch_deployment(WatchDeploymentRequest {
            deployment_id: first.deployment_id.clone(),
            after_event: 0,
        })
        .await
        .expect("watch")
        .into_inner()
        .map(|r| r.expect("event").event.expect("set"))
        .collect()
        .await;
    assert_eq!(events.first().map(|e| e.sequence), Some(1));
    assert_eq!(
        events.last().expect("events").status,
        DeploymentStatus::Succeeded as i32
    );
    let deployment = cluster.deployment(&first.deployment_id).await;
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(deployment.release.as_str()));
    }
    cluster.shutdown().await;
}
