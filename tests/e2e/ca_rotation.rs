//! Rotating the CA under a running cluster with `slipctl pki rotate-ca`:
//! the bundle everywhere, every certificate reissued, the old CA dropped,
//! each step picked up on SIGHUP with deploys succeeding throughout.

use std::time::{Duration, Instant};

use slipway_proto::{
    control::v1::{ListAppsRequest, app_service_client::AppServiceClient},
    identity::Role,
    tls::{Peer, TlsPaths},
};
use slipway_tests::{Cluster, assert_succeeded, pki::serial_of};

use crate::{
    refusals::assert_refused_by_transport,
    trust::{hangup, wait_serving},
};

const RELOADED: &str = "reloaded TLS certificates";

/// How many of a daemon's reloads named `material` (any when empty).
fn reloads(log: &str, material: &str) -> usize {
    log.lines()
        .filter(|line| line.contains(RELOADED) && line.contains(material))
        .count()
}

/// Waits until `done` holds, failing with `what` after a deadline.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        // Polling a condition with a deadline: the reload is asynchronous.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reload counts of the control plane (listener, agents) then every agent.
fn counts(cluster: &mut Cluster) -> Vec<usize> {
    let log = cluster.control_plane_process().log();
    let mut counts = vec![reloads(&log, "listener"), reloads(&log, "agents")];
    for agent in &mut cluster.agents {
        counts.push(reloads(&agent.process().log(), ""));
    }
    counts
}

/// SIGHUPs every daemon and waits until each has reloaded the CA file.
async fn hangup_all_and_wait(cluster: &mut Cluster) {
    let before = counts(cluster);
    hangup(cluster.control_plane_process().pid());
    for agent in &mut cluster.agents {
        hangup(agent.process().pid());
    }
    wait_until("every daemon reloads the CA file", || {
        let now = counts(cluster);
        now.iter().zip(&before).all(|(now, before)| now > before)
    })
    .await;
}

async fn deploy(cluster: &Cluster, text: &str) {
    cluster.commit_text(text);
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
}

async fn list_apps(cluster: &Cluster, paths: &TlsPaths) -> Result<(), tonic::Status> {
    AppServiceClient::new(cluster.channel_with(paths).await)
        .list_apps(ListAppsRequest {})
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_under_a_running_cluster_and_the_old_ca_is_refused_after() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_agents()
        .process_control_plane()
        .start()
        .await;
    deploy(&cluster, "v1").await;
    let dir = cluster.pki.dir().to_owned();
    let hosts: Vec<String> = cluster.agents.iter().map(|a| a.name.clone()).collect();
    // The old CA's admin certificate, kept outside the PKI directory.
    let old = tempfile::tempdir().expect("temp dir");
    let admin = cluster.pki.operator(Role::Admin);
    let old_admin = TlsPaths {
        ca: admin.ca.clone(),
        cert: old.path().join("admin.crt"),
        key: old.path().join("admin.key"),
    };
    std::fs::copy(&admin.cert, &old_admin.cert).expect("copy");
    std::fs::copy(&admin.key, &old_admin.key).expect("copy");

    // 1. The bundle everywhere: the old certificates keep working.
    slipctl::pki::rotate_ca(&dir).expect("rotate-ca");
    hangup_all_and_wait(&mut cluster).await;
    deploy(&cluster, "v2").await;

    // 2. Every certificate reissued by the new CA.
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let serials = cluster.pki.renew(&host_refs);
    let refused = slipctl::pki::finish_rotation(&dir).expect_err("an operator is left");
    assert!(
        refused.to_string().contains("operator-admin.crt"),
        "{refused:#}"
    );
    let opts = slipctl::pki::IssueOptions {
        validity_days: 2,
        force: true,
    };
    for cert in slipctl::pki::list(&dir).expect("list") {
        let Some(name) = cert.file.strip_prefix("operator-") else {
            continue;
        };
        let role = match cert.role.as_deref() {
            Some("admin") => Role::Admin,
            Some("deployer") => Role::Deployer,
            _ => Role::Viewer,
        };
        let name = name.trim_end_matches(".crt");
        slipctl::pki::issue_operator_with(&dir, name, role, &opts).expect("issue operator");
    }
    let client_serial = serial_of(&cluster.pki.control_plane_client().cert);
    hangup(cluster.control_plane_process().pid());
    for agent in &mut cluster.agents {
        hangup(agent.process().pid());
    }
    wait_serving(&cluster.addr(), Peer::ControlPlane, &admin, &serials[0]).await;
    let cp_client = cluster.pki.control_plane_client();
    for (agent, serial) in cluster.agents.iter().zip(&serials[1..]) {
        let peer = Peer::Agent(agent.name.clone());
        wait_serving(&agent.addr().to_string(), peer, &cp_client, serial).await;
    }
    wait_until(
        "the control plane dials with its new client certificate",
        || {
            cluster
                .control_plane_process()
                .log()
                .lines()
                .any(|line| line.contains(RELOADED) && line.contains(&client_serial))
        },
    )
    .await;
    deploy(&cluster, "v3").await;
    list_apps(&cluster, &old_admin)
        .await
        .expect("the old CA is trusted until the rotation ends");

    // 3. The old CA dropped: the new certificates alone are trusted.
    slipctl::pki::finish_rotation(&dir).expect("finish");
    hangup_all_and_wait(&mut cluster).await;
    deploy(&cluster, "v4").await;
    list_apps(&cluster, &admin).await.expect("the new admin");
    assert_refused_by_transport(
        list_apps(&cluster, &old_admin).await,
        "an operator certificate of the old CA",
    );
    cluster.shutdown().await;
}
