//! Every connection is mutual TLS and the certificate's role decides what it
//! may call. Each refusal has the right code and changes nothing.

use slipway_proto::{
    agent::v1::{GetStatusRequest, agent_service_client::AgentServiceClient},
    control::v1::{
        AddHostRequest, CreateEnvironmentRequest, DeployRequest, DeploymentStatus, Environment,
        Host, ListAppsRequest, ListDeploymentsRequest, ListHostsRequest,
        app_service_client::AppServiceClient,
    },
    identity::Role,
    tls::{self, Peer, TlsMaterial},
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster, TestPki,
    cluster::{APP, ENV},
    repo::Change,
};
use tonic::{Code, transport::Endpoint};

async fn deployments_count(cluster: &Cluster) -> usize {
    cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .deployments
        .len()
}

async fn host_names(cluster: &Cluster) -> Vec<String> {
    cluster
        .hosts(Role::Viewer)
        .await
        .list_hosts(ListHostsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .hosts
        .into_iter()
        .map(|h| h.name)
        .collect()
}

/// A transport-level refusal: the TLS handshake fails, so no handler ever
/// runs. The status is made by the client from the broken connection; which
/// code it carries (UNAVAILABLE, CANCELLED, UNKNOWN, INTERNAL) depends on when
/// the server's alert arrives, so the test checks where it came from.
pub(crate) fn assert_refused_by_transport(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    what: &str,
) {
    let status = result.expect_err(what);
    let from_transport = std::error::Error::source(&status)
        .is_some_and(|source| source.is::<tonic::transport::Error>());
    assert!(
        from_transport,
        "{what}: refused by the transport, not a handler: {status:?}"
    );
    assert_ne!(status.code(), Code::PermissionDenied, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_operator_certificate_are_refused() {
    let cluster = Cluster::builder().agents(1).start().await;
    let addr = cluster.addr();

    // Plaintext HTTP/2 against the TLS port.
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    assert_refused_by_transport(
        AppServiceClient::new(plain)
            .list_apps(ListAppsRequest {})
            .await,
        "plaintext",
    );

    // TLS that trusts the CA but presents no client certificate.
    let ca = std::fs::read(cluster.pki.file("ca.crt")).expect("ca");
    let no_cert = Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
                .domain_name("127.0.0.1"),
        )
        .expect("tls")
        .connect_lazy();
    assert_refused_by_transport(
        AppServiceClient::new(no_cert)
            .list_apps(ListAppsRequest {})
            .await,
        "no client cert",
    );

    // An admin certificate from a foreign CA.
    let foreign = TestPki::new();
    let foreign_admin = foreign.operator(Role::Admin);
    let material = TlsMaterial::from_pem(
        ca.clone(),
        std::fs::read(&foreign_admin.cert).expect("cert"),
        std::fs::read(&foreign_admin.key).expect("key"),
    )
    .expect("PEM");
    let channel = tls::endpoint(&addr, Peer::ControlPlane, &material)
        .expect("endpoint")
        .connect_lazy();
    assert_refused_by_transport(
        AppServiceClient::new(channel)
            .list_apps(ListAppsRequest {})
            .await,
        "foreign CA",
    );

    // An agent certificate is not an operator.
    let agent_cert = cluster.pki.agent("web-1");
    let channel = cluster.channel_with(&agent_cert).await;
    let status = AppServiceClient::new(channel)
        .list_apps(ListAppsRequest {})
        .await
        .expect_err("agent cert");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("agent/web-1"),
        "{}",
        status.message()
    );
    // The refusal is in the audit trail, with the method, the peer's address
    // and the certificate's fingerprint. It is written beside the refusal,
    // so the trail is read until it shows (bounded).
    let fingerprint = slipway_tests::pki::fingerprint_of(&agent_cert.cert);
    let hex = fingerprint.trim_start_matches("SHA256:").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let entry = loop {
        let trail = cluster.audit_trail().await;
        if let Some(entry) = trail.into_iter().find(|e| e.certificate_sha256 == hex) {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal was not audited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(entry.method, "slipway.control.v1.AppService/ListApps");
    assert_eq!(entry.actor, "agent/web-1");
    assert_eq!(entry.outcome, "PermissionDenied");
    assert!(entry.target.starts_with("peer 127.0.0.1:"), "{entry:?}");

    // The agent refuses anyone but the control plane.
    let agent_addr = cluster.agents[0]
        .server
        .as_ref()
        .expect("agent")
        .addr
        .to_string();
    let admin = TestPki::material(&cluster.pki.operator(Role::Admin));
    let channel = tls::endpoint(&agent_addr, Peer::Agent("web-1".into()), &admin)
        .expect("endpoint")
        .connect_lazy();
    assert_refused_by_transport(
        AgentServiceClient::new(channel)
            .get_status(GetStatusRequest::default())
            .await,
        "operator on agent",
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_operators_may_do() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);

    let status = cluster
        .deployments(Role::Viewer)
        .await
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            ..Default::default()
        })
        .await
        .expect_err("viewer deploys");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(deployments_count(&cluster).await, 0);

    let status = cluster
        .hosts(Role::Deployer)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web-9".into(),
                address: "127.0.0.1:1".into(),
                environment: ENV.into(),
                ..Default::default()
            }),
            enroll: false,
        })
        .await
        .expect_err("deployer adds a host");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(host_names(&cluster).await, ["web-1"]);

    // A deployer may deploy.
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_refuses_an_agent_certificate_of_another_host() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    // "imposter" is registered at web-1's address, whose certificate names web-1.
    cluster
        .environments(Role::Admin)
        .await
        .create_environment(CreateEnvironmentRequest {
            environment: Some(Environment {
                name: "staging".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("env");
    let addr = cluster.agents[0]
        .server
        .as_ref()
        .expect("agent")
        .addr
        .to_string();
    cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "imposter".into(),
                address: addr,
                environment: "staging".into(),
                ..Default::default()
            }),
            enroll: false,
        })
        .await
        .expect("add host");
    let mut client = cluster.deployments(Role::Deployer).await;
    let stream = client
        .deploy(DeployRequest {
            app: APP.into(),
            environment: "staging".into(),
            ..Default::default()
        })
        .await
        .expect("deploy starts")
        .into_inner();
    use futures_util::StreamExt;
    let events: Vec<_> = stream
        .map(|r| r.expect("event").event.expect("set"))
        .collect()
        .await;
    let last = events.last().expect("events");
    assert_eq!(last.status, DeploymentStatus::Failed as i32);
    assert!(last.message.contains("imposter"), "{}", last.message);
    assert_eq!(
        cluster.agents[0].current(),
        None,
        "nothing was deployed to web-1"
    );
    cluster.shutdown().await;
}
