//! Enrollment without copying keys, and renewal by the control plane: a
//! host starts from an empty directory, gets its certificate with a
//! one-time join token, takes a deploy; later the control plane renews its
//! certificate in place.

use std::path::Path;

use slipway_proto::{
    control::v1::{AddHostRequest, Host, RenewAgentCertificateRequest},
    identity::Role,
    tls::{Peer, TlsPaths},
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    pki::{serial_of, served_serial},
    process::agent_binary,
    server,
};
use tonic::Code;

/// Runs `slipway-agent enroll`; returns its exit status and output.
fn enroll(cp: &str, fingerprint: &str, token: &str, host: &str, dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(agent_binary())
        .args([
            "enroll",
            "--control-plane",
            cp,
            "--ca-fingerprint",
            fingerprint,
        ])
        .args(["--token", token, "--host", host, "--dir"])
        .arg(dir)
        .output()
        .expect("run slipway-agent enroll");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_enrolls_from_an_empty_directory_and_takes_a_deploy() {
    let cluster = Cluster::builder().agents(1).enrollment().start().await;
    let enroll_addr = cluster
        .enroll_addr
        .expect("enrollment listener")
        .to_string();
    cluster.commit_text("v1");
    let work = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();

    let mut hosts = cluster.hosts(Role::Admin).await;
    let added = hosts
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web-9".into(),
                address: address.clone(),
                environment: ENV.into(),
                ..Default::default()
            }),
            enroll: true,
        })
        .await
        .expect("add host")
        .into_inner();
    assert!(added.join_token.starts_with("sjt_"), "{added:?}");
    let fingerprint = added.ca_fingerprint.clone();

    // A wrong CA fingerprint: the agent does not trust this control plane.
    let (ok, text) = enroll(
        &enroll_addr,
        &format!("SHA256:{}", "0".repeat(64)),
        &added.join_token,
        "web-9",
        &work.path().join("wrong-ca"),
    );
    assert!(
        !ok && text.contains("holds no CA with fingerprint"),
        "{text}"
    );
    // A token bound to web-9 does not enroll web-8.
    let (ok, text) = enroll(
        &enroll_addr,
        &fingerprint,
        &added.join_token,
        "web-8",
        &work.path().join("other"),
    );
    assert!(!ok && text.contains("host \"web-8\" not found"), "{text}");

    let tls_dir = work.path().join("tls");
    let (ok, text) = enroll(
        &enroll_addr,
        &fingerprint,
        &added.join_token,
        "web-9",
        &tls_dir,
    );
    assert!(ok, "{text}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tls_dir.join("agent.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    // The token is used up.
    let (ok, text) = enroll(
        &enroll_addr,
        &fingerprint,
        &added.join_token,
        "web-9",
        &work.path().join("again"),
    );
    assert!(!ok && text.contains("unknown or already used"), "{text}");

    let paths = TlsPaths {
        ca: tls_dir.join("ca.crt"),
        cert: tls_dir.join("agent.crt"),
        key: tls_dir.join("agent.key"),
    };
    let apps_dir = work.path().join("srv");
    let data_dir = work.path().join("state");
    std::fs::create_dir_all(&apps_dir).expect("mkdir");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let agent =
        server::agent_on(listener, "web-9", paths.clone(), apps_dir.clone(), data_dir).await;

    let (_, d) = cluster.deploy("main").await;
    assert_succeeded(&d);
    let current = std::fs::read_link(apps_dir.join(APP).join("current")).expect("current");
    assert!(
        current.to_string_lossy().contains(&d.release),
        "{current:?}"
    );

    // Every attempt is in the audit trail: one success, three refusals.
    let trail = cluster.audit_trail().await;
    let attempts: Vec<_> = trail
        .iter()
        .filter(|e| e.method.ends_with("EnrollmentService/EnrollAgent"))
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(
        attempts.iter().filter(|o| **o == "OK").count(),
        1,
        "{attempts:?}"
    );

    // Renewal: a new key made on the host, signed, installed and served.
    let old = serial_of(&paths.cert);
    let renewed = hosts
        .renew_agent_certificate(RenewAgentCertificateRequest {
            host: "web-9".into(),
        })
        .await
        .expect("renew")
        .into_inner();
    assert_ne!(renewed.serial, old);
    assert_eq!(serial_of(&paths.cert), renewed.serial, "on disk");
    let cp_client = cluster.pki.control_plane_client();
    let served = served_serial(&address, Peer::Agent("web-9".into()), &cp_client).await;
    assert_eq!(served, renewed.serial, "served from the next handshake");
    cluster.commit_text("v2");
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let fleet = cluster.fleet_status().await;
    let web9 = fleet
        .iter()
        .find(|h| h.host.as_ref().is_some_and(|h| h.name == "web-9"))
        .expect("web-9");
    assert_eq!(web9.certificate_serial, renewed.serial);
    assert!(web9.certificate_expires_at.is_some());

    // A host added without enrollment on a control plane that holds the CA
    // key is fine; renewal of a host that is not there is NOT_FOUND.
    let missing = hosts
        .renew_agent_certificate(RenewAgentCertificateRequest {
            host: "web-404".into(),
        })
        .await
        .expect_err("no such host");
    assert_eq!(missing.code(), Code::NotFound);
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_key_enrollment_is_refused_and_nothing_is_added() {
    let cluster = Cluster::builder().agents(1).start().await;
    let status = cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web-9".into(),
                address: "127.0.0.1:9".into(),
                environment: ENV.into(),
                ..Default::default()
            }),
            enroll: true,
        })
        .await
        .expect_err("no CA key");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("holds no CA key"), "{status:?}");
    let listed = cluster
        .hosts(Role::Viewer)
        .await
        .list_hosts(slipway_proto::control::v1::ListHostsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .hosts;
    assert!(listed.iter().all(|h| h.name != "web-9"), "nothing added");
    cluster.shutdown().await;
}
