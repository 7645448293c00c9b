//! Trust on every hop: exact identities, certificates renewed without a
//! restart, revocation.

use std::time::{Duration, Instant};

use slipway_proto::{
    control::v1::{AddHostRequest, DeploymentStatus, Host},
    identity::Role,
    tls::Peer,
};
use slipway_tests::{
    Cluster, assert_succeeded, cluster::ENV, events::wait_for_event, pki::served_serial, server,
    spec,
};

/// Sends SIGHUP to a daemon.
fn hangup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}");
}

/// Waits until the server at `addr` presents the certificate `serial`.
async fn wait_serving(addr: &str, peer: Peer, client: &slipway_proto::tls::TlsPaths, serial: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let served = served_serial(addr, peer.clone(), client).await;
        if served == serial {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still serves {served}, not {serial}"
        );
        // Polling a condition with a deadline: the reload is asynchronous.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_another_hosts_certificate_gets_no_deploy() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    // web-2's registered address serves web-3's (valid, same CA) certificate.
    let rogue_dir = tempfile::tempdir().expect("temp dir");
    let apps_dir = rogue_dir.path().join("srv");
    let data_dir = rogue_dir.path().join("state");
    std::fs::create_dir_all(&apps_dir).expect("mkdir");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let rogue = server::agent(
        "web-2",
        cluster.pki.agent("web-3"),
        apps_dir.clone(),
        data_dir,
    )
    .await;
    cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web-2".into(),
                address: rogue.addr.to_string(),
                environment: ENV.into(),
                ..Default::default()
            }),
        })
        .await
        .expect("add host");

    let (_, d) = cluster.deploy("main").await;
    assert_eq!(d.status, DeploymentStatus::Failed as i32, "{d:?}");
    let web2 = d.hosts.iter().find(|h| h.host == "web-2").expect("web-2");
    assert!(
        web2.error
            .contains("peer certificate names agent/web-3, expected agent/web-2"),
        "{}",
        web2.error
    );
    let entries = std::fs::read_dir(&apps_dir).expect("apps dir").count();
    assert_eq!(entries, 0, "nothing reached the impostor");
    rogue.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_renewed_certificates_under_a_running_deployment() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_agents()
        .process_control_plane()
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    let admin = cluster.pki.operator(Role::Admin);
    let cp_client = cluster.pki.control_plane_client();
    let old_cp = served_serial(&cluster.addr(), Peer::ControlPlane, &admin).await;

    // A deployment holds in web-2's hook while every certificate changes.
    let gate = cluster.agents[1].apps_dir.join("gate");
    let hold = spec::hold_on(&cluster.agents[1].apps_dir, "holding", &gate);
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate("hold", &hold)]));
        })
        .await;
    cluster.commit_text("v2");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "web-2's hook", |e| {
        e.host == "web-2" && e.message == "holding"
    })
    .await;

    let serials = cluster.pki.renew(&["web-1", "web-2"]);
    assert_ne!(serials[0], old_cp);
    hangup(cluster.control_plane_process().pid());
    for agent in &mut cluster.agents {
        hangup(agent.process().pid());
    }
    wait_serving(&cluster.addr(), Peer::ControlPlane, &admin, &serials[0]).await;
    for (agent, serial) in cluster.agents.iter().zip(&serials[1..]) {
        let peer = Peer::Agent(agent.name.clone());
        wait_serving(&agent.addr().to_string(), peer, &cp_client, serial).await;
    }

    // The running deployment and its operator stream carry on.
    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, held) = cluster.finish(seen, stream).await;
    assert_succeeded(&held);
    // The next one dials the agents with the control plane's new client
    // certificate.
    cluster.commit_text("v3");
    let (_, next) = cluster.deploy("main").await;
    assert_succeeded(&next);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(next.release.as_str()));
    }
    assert!(
        cluster
            .control_plane_process()
            .log()
            .contains("reloaded TLS certificates"),
        "the control plane logs the reload"
    );
    cluster.shutdown().await;
}
