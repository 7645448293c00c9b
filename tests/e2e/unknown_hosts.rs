//! A host cut off by the network right after it switched, with automatic
//! rollback: its outcome is recorded as unknown (not failed), the hosts that
//! reported are rolled back, and once the network heals the control plane
//! asks the host again, records what it found, and rolls it back too.

use std::time::Duration;

use slipway_proto::control::v1::{Deployment, DeploymentStatus, RolloutPolicy};
use slipway_tests::{Cluster, assert_succeeded, events::wait_for_event, spec};

/// How long the test waits for the control plane to settle the host.
const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_partitioned_after_its_switch_is_unknown_then_reconciled_and_rolled_back() {
    let cluster = Cluster::builder().agents(3).fault_proxy(2).start().await;
    cluster.commit_text("v1");
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    // web-3 holds in its after-activate hook, so the test cuts it off at a
    // known moment: after its switch, before it reports.
    let cut_off = &cluster.agents[2];
    let gate = cut_off.apps_dir.join("gate");
    let hold = spec::hold_on(&cut_off.apps_dir, "holding", &gate);
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::after_activate("hold", &hold)]));
        })
        .await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        auto_rollback: true,
        max_failed_hosts: 0,
        retry_attempts: 2,
        step_timeout_seconds: 2,
        ..Default::default()
    };
    let mut stream = cluster
        .try_deploy_stream("main", Some(policy))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    wait_for_event(
        &mut stream,
        &mut seen,
        "web-3 holds after its switch",
        |e| e.host == "web-3" && e.message == "holding",
    )
    .await;
    let proxy = cluster.proxy(2);
    proxy.refuse(true);
    proxy.cut().await;
    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, d2) = cluster.finish(seen, stream).await;

    assert_eq!(d2.status, DeploymentStatus::Failed as i32, "{}", d2.error);
    assert!(
        !d2.rolled_back_by.is_empty(),
        "the reporting hosts were rolled back"
    );
    let host = |d: &Deployment, name: &str| {
        d.hosts
            .iter()
            .find(|h| h.host == name)
            .cloned()
            .expect("host in the record")
    };
    let web3 = host(&d2, "web-3");
    assert_eq!(web3.status, DeploymentStatus::Unknown as i32, "{web3:?}");
    assert!(!web3.switched, "the record claims nothing it did not see");
    assert_eq!(
        cut_off.current().as_deref(),
        Some(d2.release.as_str()),
        "it did switch"
    );
    for agent in &cluster.agents[..2] {
        assert_eq!(agent.current().as_deref(), Some(d1.release.as_str()));
    }

    // The network heals: the control plane asks web-3 again and records it.
    proxy.refuse(false);
    let settled = tokio::time::timeout(SETTLE, async {
        loop {
            let now = cluster.deployment(&d2.id).await;
            if host(&now, "web-3").status != DeploymentStatus::Unknown as i32 {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("web-3 settled after the network healed");
    let web3 = host(&settled, "web-3");
    assert_eq!(
        web3.status,
        DeploymentStatus::Succeeded as i32,
        "it took v2: {web3:?}"
    );
    assert!(web3.switched);
    let listed = cluster.history().await;
    let undo = listed
        .iter()
        .find(|d| d.rollback_of == d2.id && d.hosts.iter().all(|h| h.host == "web-3"))
        .expect("a rollback of web-3 alone");
    let (events, _) = cluster.watch(&undo.id).await;
    assert_eq!(
        events.last().map(|e| e.status),
        Some(DeploymentStatus::Succeeded as i32),
        "{events:?}"
    );
    assert_eq!(
        cut_off.current().as_deref(),
        Some(d1.release.as_str()),
        "web-3 is back on v1"
    );
    assert!(
        web3.error.is_empty() || web3.error.contains("answered again"),
        "{web3:?}"
    );
    assert!(cluster.lock().await.is_none(), "no lock left");
    cluster.shutdown().await;
}
