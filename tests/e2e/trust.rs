//! Trust on every hop: exact identities, certificates renewed without a
//! restart, revocation.

use std::time::{Duration, Instant};

use slipway_proto::{
    control::v1::{
        AddHostRequest, DeploymentStatus, Host, ListAppsRequest, ListRevocationsRequest,
        RemoveHostRequest, RevokeCertificateRequest, WatchDeploymentRequest,
        app_service_client::AppServiceClient, certificate_service_client::CertificateServiceClient,
        deployment_service_client::DeploymentServiceClient,
    },
    identity::Role,
    tls::Peer,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::ENV,
    events::wait_for_event,
    pki::{fingerprint_of, served_serial},
    server, spec,
};
use tonic::Code;

/// Sends SIGHUP to a daemon.
pub(crate) fn hangup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}");
}

/// Waits until the server at `addr` presents the certificate `serial`.
pub(crate) async fn wait_serving(
    addr: &str,
    peer: Peer,
    client: &slipway_proto::tls::TlsPaths,
    serial: &str,
) {
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
            enroll: false,
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
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
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

fn certificates(
    channel: tonic::transport::Channel,
) -> CertificateServiceClient<tonic::transport::Channel> {
    CertificateServiceClient::new(channel)
}

fn revoke_request(fingerprint: &str, identity: &str, reason: &str) -> RevokeCertificateRequest {
    RevokeCertificateRequest {
        fingerprint: fingerprint.into(),
        identity: identity.into(),
        reason: reason.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_operator_is_refused_on_its_open_connection_and_on_new_ones() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    let (_, d) = cluster.deploy("main").await;
    assert_succeeded(&d);
    let deployer = cluster.pki.operator(Role::Deployer);
    let channel = cluster.channel_with(&deployer).await;
    // An open watch stream on the deployer's connection.
    let mut watch = DeploymentServiceClient::new(channel.clone())
        .watch_deployment(WatchDeploymentRequest {
            deployment_id: d.id.clone(),
            after_event: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    assert!(watch.message().await.expect("event").is_some());

    // A deployer may not revoke; the refusal is audited and changes nothing.
    let fingerprint = fingerprint_of(&deployer.cert);
    let refused = certificates(channel.clone())
        .revoke_certificate(revoke_request(&fingerprint, "", "self"))
        .await
        .expect_err("deployer");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let admin = certificates(cluster.channel(Role::Admin).await);
    let listed = admin
        .clone()
        .list_revocations(ListRevocationsRequest {})
        .await
        .expect("list");
    assert!(listed.into_inner().revocations.is_empty());

    let answer = admin
        .clone()
        .revoke_certificate(revoke_request(&fingerprint, "", "laptop lost"))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(answer.agents_updated, 1);
    // The next call on the open connection fails.
    let status = AppServiceClient::new(channel)
        .list_apps(ListAppsRequest {})
        .await
        .expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("is revoked: laptop lost"),
        "{status:?}"
    );
    // A new connection is refused at the handshake.
    let fresh = cluster.channel_with(&deployer).await;
    let status = AppServiceClient::new(fresh)
        .list_apps(ListAppsRequest {})
        .await
        .expect_err("revoked");
    assert!(status.code() != Code::Ok, "{status:?}");

    // By identity: every viewer certificate of that name issued so far.
    let viewer = cluster.pki.operator(Role::Viewer);
    admin
        .clone()
        .revoke_certificate(revoke_request("", "viewer/viewer-op", "left the team"))
        .await
        .expect("revoke identity");
    let status = AppServiceClient::new(cluster.channel_with(&viewer).await)
        .list_apps(ListAppsRequest {})
        .await
        .expect_err("revoked identity");
    assert!(status.code() != Code::Ok, "{status:?}");
    // The admin still works; both revocations are listed and audited.
    let list = admin
        .clone()
        .list_revocations(ListRevocationsRequest {})
        .await
        .expect("list")
        .into_inner()
        .revocations;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].fingerprint, fingerprint);
    assert_eq!(list[0].revoked_by, "admin/admin");
    assert_eq!(list[1].identity, "viewer/viewer-op");
    let trail = cluster.audit_trail().await;
    let revokes: Vec<_> = trail
        .iter()
        .filter(|e| e.method.ends_with("CertificateService/RevokeCertificate"))
        .collect();
    assert_eq!(
        revokes.len(),
        3,
        "two revocations and one refusal: {revokes:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_refuse_a_revoked_control_plane_certificate_until_it_is_renewed() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    let old_client = fingerprint_of(&cluster.pki.control_plane_client().cert);
    let answer = certificates(cluster.channel(Role::Admin).await)
        .revoke_certificate(revoke_request(&old_client, "", "key rotated"))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(answer.agents_updated, 2, "{answer:?}");
    assert!(answer.agents_unreachable.is_empty());

    // Every agent now refuses the control plane's old client certificate.
    cluster.commit_text("v2");
    let (_, refused) = cluster.deploy("main").await;
    assert_eq!(
        refused.status,
        DeploymentStatus::Failed as i32,
        "{refused:?}"
    );
    for host in &refused.hosts {
        assert!(
            host.error.contains("revoked"),
            "{}: {}",
            host.host,
            host.error
        );
    }
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(first.release.as_str()));
    }

    // A renewed certificate, picked up on SIGHUP, is accepted again.
    let serials = cluster.pki.renew(&[]);
    hangup(cluster.control_plane_process().pid());
    let admin = cluster.pki.operator(Role::Admin);
    wait_serving(&cluster.addr(), Peer::ControlPlane, &admin, &serials[0]).await;
    let (_, renewed) = cluster.deploy("main").await;
    assert_succeeded(&renewed);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_host_revokes_its_agent_certificates() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster
        .hosts(Role::Admin)
        .await
        .remove_host(RemoveHostRequest {
            name: "web-2".into(),
        })
        .await
        .expect("remove");
    let list = certificates(cluster.channel(Role::Admin).await)
        .list_revocations(ListRevocationsRequest {})
        .await
        .expect("list")
        .into_inner()
        .revocations;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].identity, "agent/web-2");
    assert_eq!(list[0].revoked_by, "control-plane");
    // Registered again under the same name, its old certificate is refused.
    cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web-2".into(),
                address: cluster.agents[1].addr().to_string(),
                environment: ENV.into(),
                ..Default::default()
            }),
            enroll: false,
        })
        .await
        .expect("add again");
    cluster.commit_text("v1");
    let (_, d) = cluster.deploy("main").await;
    let web2 = d.hosts.iter().find(|h| h.host == "web-2").expect("web-2");
    assert!(
        web2.error.contains("are revoked: host removed"),
        "{}",
        web2.error
    );
    cluster.shutdown().await;
}
