//! Simulated agents over the real agent contract against a real
//! control-plane process: 50 of them, each on its own port with its own
//! certificate, deployed to all at once with a failure scripted on two
//! hosts. The record says exactly what the simulated hosts did, and a
//! simulated agent refuses a stale fencing token and a caller that is not
//! the control plane, as a real agent does.

use slipway_control_plane::agents::simulated::Behaviour;
use slipway_proto::{
    agent::v1::{ActivateReleaseRequest, agent_service_client::AgentServiceClient},
    control::v1::{DeploymentStatus, RolloutPolicy},
    identity::Role,
    reason::{self, Reason},
    tls::{self, Peer},
};
use slipway_tests::{
    Cluster, TestPki,
    cluster::ENV,
    direct::app_target,
    sim::{SimAgents, SimOptions},
};
use tonic::Code;

const AGENTS: usize = 50;
/// Its next prepare fails.
const FAILS_PREPARE: &str = "sim-0003";
/// Its next activation fails.
const FAILS_ACTIVATE: &str = "sim-0041";

#[tokio::test]
async fn fifty_simulated_agents_deploy_all_at_once_and_the_record_matches_them() {
    let cluster = Cluster::builder()
        .agents(0)
        .process_control_plane()
        .start()
        .await;
    let sims = SimAgents::start(cluster.pki.dir(), SimOptions::new(AGENTS))
        .await
        .expect("start simulated agents");
    sims.register(&cluster.hosts(Role::Admin).await, ENV)
        .await
        .expect("register");
    let failure = |what: &str| Behaviour::Fail(format!("{what} failed (scripted)"));
    sims.host(FAILS_PREPARE).on_prepare(failure("prepare"));
    sims.host(FAILS_ACTIVATE).on_activate(failure("activate"));
    cluster.commit_text("v1");

    let policy = RolloutPolicy {
        max_failed_hosts: 2,
        ..Default::default()
    };
    let (events, deployment) = cluster.deploy_with("main", policy).await;

    assert_eq!(deployment.hosts.len(), AGENTS, "{deployment:?}");
    assert!(events.len() > AGENTS * 4, "{} events", events.len());
    for host in &deployment.hosts {
        let current = sims.host(&host.host).current();
        let switched = current == deployment.release;
        assert_eq!(
            host.switched, switched,
            "{}: current {current:?}",
            host.host
        );
        let failed = [FAILS_PREPARE, FAILS_ACTIVATE].contains(&host.host.as_str());
        let status = if failed {
            DeploymentStatus::Failed
        } else {
            DeploymentStatus::Succeeded
        };
        assert_eq!(host.status, status as i32, "{}: {}", host.host, host.error);
        assert_eq!(switched, !failed, "{}", host.host);
    }
    let calls = sims.host(FAILS_PREPARE).calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("activate")),
        "a host whose prepare failed is not activated: {calls:?}"
    );
    assert!(sims.host(FAILS_ACTIVATE).current().is_empty());

    // A second deployment carries a higher token; a call with a lower one
    // than it is refused and changes nothing.
    cluster.commit_text("v2");
    let (_, deployment) = cluster.deploy("main").await;
    slipway_tests::assert_succeeded(&deployment);
    let node = sims.node("sim-0001").expect("node");
    let token = node.token(slipway_tests::cluster::APP);
    assert!(token > 1, "the deployments' tokens were recorded: {token}");
    let client_identity = TestPki::material(&cluster.pki.control_plane_client());
    let channel = tls::endpoint(
        &node.addr.to_string(),
        Peer::Agent(node.name.clone()),
        &client_identity,
    )
    .expect("endpoint")
    .connect_lazy();
    let stale = ActivateReleaseRequest {
        deployment_id: "20260101T000000Z-stale".into(),
        app: Some(app_target()),
        release_id: deployment.release.clone(),
        fencing_token: token - 1,
        ..Default::default()
    };
    let status = AgentServiceClient::new(channel)
        .activate_release(stale.clone())
        .await
        .expect_err("a stale token is refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason::reason(&status), Some(Reason::StaleFencingToken));
    assert_eq!(node.token(slipway_tests::cluster::APP), token);
    assert_eq!(node.host.current(), deployment.release);

    // Only the control plane may call an agent: TLS refuses another
    // identity.
    let operator = TestPki::material(&cluster.pki.operator(Role::Admin));
    let channel = tls::endpoint(
        &node.addr.to_string(),
        Peer::Agent(node.name.clone()),
        &operator,
    )
    .expect("endpoint")
    .connect_lazy();
    AgentServiceClient::new(channel)
        .activate_release(stale)
        .await
        .expect_err("an operator is refused");
    assert_eq!(node.host.current(), deployment.release);

    sims.shutdown().await.expect("shut down");
}
