//! Fencing that cannot be poisoned, at a real agent behind a real control
//! plane: a forged token on a request that does nothing is not recorded;
//! tokens carry the control plane's store identity, so a token of another
//! epoch does not lock the app out; and an admin's audited ResetFencing
//! clears what remains.

use slipway_proto::{
    agent::v1::{
        CancelOperationRequest, PinReleaseRequest, agent_service_client::AgentServiceClient,
    },
    control::v1::{ListAuditEventsRequest, ResetFencingRequest},
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, cluster::APP, direct::app_target, repo::Change};
use tonic::{Code, transport::Channel};

/// A pin (which really proceeds, so records its token) carrying a forged
/// token just below the highest, of `epoch`.
async fn pin(agent: &mut AgentServiceClient<Channel>, release: &str, epoch: &str) {
    agent
        .pin_release(PinReleaseRequest {
            app: Some(app_target()),
            release_id: release.into(),
            pinned: false,
            fencing_token: u64::MAX - 1,
            fencing_epoch: epoch.into(),
        })
        .await
        .expect("a pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_cannot_lock_an_app_out() {
    let cluster = Cluster::builder().agents(1).start().await;
    let host = cluster.agents[0].name.clone();
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let before = cluster.agent_status(0).await;
    assert!(before.fencing_token > 0);
    let epoch = before.fencing_epoch.clone();
    assert_eq!(epoch.len(), 32, "the store's identity: {before:?}");

    // The attack: a cancel of a deployment that does not exist, carrying
    // the highest token there is. It cancels nothing and records nothing.
    let mut agent = cluster.agent_client(0);
    let answer = agent
        .cancel_operation(CancelOperationRequest {
            app: Some(app_target()),
            deployment_id: "dep-9999999999".into(),
            grace_seconds: 0,
            fencing_token: u64::MAX,
            fencing_epoch: epoch.clone(),
        })
        .await
        .expect("a cancel of nothing")
        .into_inner();
    assert!(!answer.cancelled);
    let after = cluster.agent_status(0).await;
    assert_eq!(after.fencing_token, before.fencing_token, "not recorded");
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);

    // A token of another store (a replaced control plane) starts its epoch;
    // this control plane's next deploy starts its own again instead of
    // failing "stale fencing token" forever.
    pin(&mut agent, &d2.release, "another-store").await;
    assert_eq!(cluster.agent_status(0).await.fencing_epoch, "another-store");
    cluster
        .repo
        .commit("three", &[Change::File("a.txt", b"3\n")]);
    let (_, d3) = cluster.deploy("main").await;
    assert_succeeded(&d3);
    let now = cluster.agent_status(0).await;
    assert_eq!(now.fencing_epoch, epoch);

    // Poisoned within this control plane's own epoch (a pin really proceeds
    // and records its token): deploys are refused until an admin resets it.
    pin(&mut agent, &d3.release, &epoch).await;
    cluster
        .repo
        .commit("four", &[Change::File("a.txt", b"4\n")]);
    let (_, refused) = cluster.deploy("main").await;
    assert!(refused.error.contains("stale fencing token"), "{refused:?}");

    let request = ResetFencingRequest {
        host: host.clone(),
        app: APP.into(),
    };
    let denied = cluster
        .hosts(Role::Deployer)
        .await
        .reset_fencing(request.clone())
        .await
        .expect_err("a deployer may not reset fencing");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let reset = cluster
        .hosts(Role::Admin)
        .await
        .reset_fencing(request)
        .await
        .expect("an admin resets fencing")
        .into_inner();
    assert_eq!(reset.previous_token, u64::MAX - 1);
    assert_eq!(reset.previous_epoch, epoch);
    assert_eq!(cluster.agent_status(0).await.fencing_token, 0);
    let (_, d5) = cluster.deploy("main").await;
    assert_succeeded(&d5);

    let audit = cluster
        .audit()
        .await
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .expect("audit")
        .into_inner();
    let entry = audit
        .events
        .iter()
        .find(|e| e.method.ends_with("HostService/ResetFencing") && e.outcome == "OK")
        .unwrap_or_else(|| panic!("the reset is audited: {:#?}", audit.events));
    assert_eq!(entry.target, format!("app {APP} on host {host}"));
    assert!(
        audit
            .events
            .iter()
            .any(|e| e.method.ends_with("HostService/ResetFencing")
                && e.outcome == "PermissionDenied"),
        "the refused reset is audited too"
    );
    cluster.shutdown().await;
}
