//! Agent upgrades with real agent processes, each running from its own copy
//! of the binary: a fleet upgraded in batches to the same build with another
//! version stamped in, while a deployment runs; and a binary that passes the
//! trial run but cannot start, rolled back on its host.

use std::time::Duration;

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{AgentUpgradeState, GetStatusRequest, HostInfo},
    control::v1::{
        AgentUpgradeEvent, AgentUpgradeStatus, StageAgentBinaryRequest, UpgradeAgentsRequest,
        agent_upgrade_service_client::AgentUpgradeServiceClient,
    },
    identity::Role,
};
use slipway_tests::{Cluster, agent_binary, assert_succeeded, slipctl, spec};
use tonic::{Code, Streaming, transport::Channel};

const NEW_VERSION: &str = "9.9.9-upgraded";

async fn client(cluster: &Cluster, role: Role) -> AgentUpgradeServiceClient<Channel> {
    AgentUpgradeServiceClient::new(cluster.channel(role).await)
}

/// Stages `binary` as admin; its SHA-256.
async fn stage(cluster: &Cluster, binary: &std::path::Path) -> String {
    let bytes = std::fs::read(binary).expect("read binary");
    let size = bytes.len() as u64;
    let chunks: Vec<StageAgentBinaryRequest> = bytes
        .chunks(512 << 10)
        .enumerate()
        .map(|(i, data)| StageAgentBinaryRequest {
            size: if i == 0 { size } else { 0 },
            data: data.to_vec(),
        })
        .collect();
    let answer = client(cluster, Role::Admin)
        .await
        .stage_agent_binary(tokio_stream::iter(chunks))
        .await
        .expect("stage")
        .into_inner();
    assert_eq!(answer.size, size);
    answer.sha256
}

async fn upgrade(
    cluster: &Cluster,
    sha256: &str,
    batch_size: u32,
    deadline_seconds: u32,
) -> Streaming<slipway_proto::control::v1::UpgradeAgentsResponse> {
    client(cluster, Role::Admin)
        .await
        .upgrade_agents(UpgradeAgentsRequest {
            environment: "prod".into(),
            sha256: sha256.into(),
            version: NEW_VERSION.into(),
            batch_size,
            deadline_seconds,
        })
        .await
        .expect("upgrade starts")
        .into_inner()
}

async fn events(
    stream: Streaming<slipway_proto::control::v1::UpgradeAgentsResponse>,
) -> Vec<AgentUpgradeEvent> {
    stream
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await
}

async fn host_info(cluster: &Cluster, index: usize) -> HostInfo {
    let answer = cluster
        .agent_client(index)
        .get_status(GetStatusRequest::default())
        .await
        .expect("status");
    answer.into_inner().host.expect("host")
}

fn describe(events: &[AgentUpgradeEvent]) -> String {
    events
        .iter()
        .map(|e| format!("{:?} {}: {}", e.status(), e.host, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_agents_upgrade_in_batches_of_two_while_a_deploy_waits_for_them() {
    let mut cluster = Cluster::builder()
        .agents(4)
        .process_agents_with_own_binaries()
        .start()
        .await;
    let old_version = host_info(&cluster, 0).await.agent_version;
    assert_ne!(old_version, NEW_VERSION);
    let work = tempfile::tempdir().expect("temp dir");
    let new = agent_binary::stamped(&work.path().join("slipway-agent"), NEW_VERSION);
    let sha256 = stage(&cluster, &new).await;

    // Refusals first: a deployer may not upgrade; an unknown binary is not found.
    let refused = client(&cluster, Role::Deployer)
        .await
        .upgrade_agents(UpgradeAgentsRequest {
            environment: "prod".into(),
            sha256: sha256.clone(),
            version: NEW_VERSION.into(),
            ..Default::default()
        })
        .await
        .expect_err("a deployer is refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = client(&cluster, Role::Admin)
        .await
        .upgrade_agents(UpgradeAgentsRequest {
            environment: "prod".into(),
            sha256: "0".repeat(64),
            version: NEW_VERSION.into(),
            ..Default::default()
        })
        .await
        .expect_err("an unstaged binary is refused");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // A deployment holds in web-1's hook before its switch.
    let gate = cluster.hold_in_hook(0, spec::before_activate).await;
    cluster.commit_text("v2");
    let mut deploy = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    while let Some(event) = deploy.next().await {
        let event = event.expect("event").event.expect("event set");
        let holding = event.message.contains("holding");
        seen.push(event);
        if holding {
            break;
        }
    }

    // The upgrade starts; web-1 refuses new operations and waits for the
    // one that holds.
    let upgrading = upgrade(&cluster, &sha256, 2, 60).await;
    let web1 = cluster.agents[0].process();
    web1.wait_for_log("new operations refused", Duration::from_secs(60))
        .await;
    assert_eq!(host_info(&cluster, 0).await.agent_version, old_version);
    std::fs::write(&gate, b"go").expect("open the gate");

    let (deploy_events, deployment) = cluster.finish(seen, deploy).await;
    let upgrade_events = events(upgrading).await;
    assert_succeeded(&deployment);
    let last = upgrade_events.last().expect("events");
    assert_eq!(
        last.status(),
        AgentUpgradeStatus::Succeeded,
        "{}",
        describe(&upgrade_events)
    );
    assert!(
        last.message.contains(&format!("web-4={NEW_VERSION}")),
        "{}",
        last.message
    );
    // Batches of two, in host-name order.
    let batches: Vec<&str> = upgrade_events
        .iter()
        .filter(|e| e.message.starts_with("batch "))
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        batches,
        ["batch 1 of 2: web-1, web-2", "batch 2 of 2: web-3, web-4"]
    );
    // The record, as a viewer reads it with slipctl; an unknown id is not found.
    let id = last.upgrade_id.as_str();
    let (ok, out, err) = slipctl::run(&cluster, Role::Viewer, &["agent", "show", id]);
    assert!(ok, "{out}{err}");
    for expected in [id, "succeeded", &sha256, "batch 2 of 2: web-3, web-4"] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }
    let web4 = out
        .lines()
        .find(|l| l.starts_with("web-4 "))
        .unwrap_or_default();
    assert!(web4.ends_with(NEW_VERSION), "{out}");
    let (ok, out, err) = slipctl::run(&cluster, Role::Viewer, &["agent", "show", "u-999"]);
    assert!(!ok && err.contains("u-999"), "{out}{err}");
    for (i, agent) in cluster.agents.iter().enumerate() {
        let info = host_info(&cluster, i).await;
        assert_eq!(info.agent_version, NEW_VERSION, "{}", agent.name);
        let outcome = info.last_upgrade.expect("outcome");
        assert_eq!(outcome.state(), AgentUpgradeState::Confirmed);
        assert_eq!(outcome.sha256, sha256);
        assert_eq!(
            agent.current().as_deref(),
            Some(deployment.release.as_str())
        );
    }
    // The deployment went on through the agents' restarts.
    assert!(!deploy_events.is_empty());
    // The binary each agent runs from is the new one, the old kept beside it.
    let bin = cluster.agents[2]
        .data_dir
        .parent()
        .expect("host dir")
        .join("bin");
    let running = std::fs::read(bin.join("slipway-agent")).expect("read");
    assert_eq!(running, std::fs::read(&new).expect("read new"));
    assert!(bin.join("slipway-agent.previous").is_file());

    // Again with the same binary: every host holds it and is not sent it again.
    let again = events(upgrade(&cluster, &sha256, 4, 60).await).await;
    assert_eq!(
        again.last().expect("events").status(),
        AgentUpgradeStatus::Succeeded,
        "{}",
        describe(&again)
    );
    let not_sent = again
        .iter()
        .filter(|e| e.message.contains("holds the binary already"))
        .count();
    assert_eq!(not_sent, 4, "{}", describe(&again));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_that_cannot_start_is_rolled_back_and_the_rollout_stops() {
    let cluster = Cluster::builder()
        .agents(2)
        .process_agents_with_own_binaries()
        .start()
        .await;
    let old_version = host_info(&cluster, 0).await.agent_version;
    let work = tempfile::tempdir().expect("temp dir");
    let broken = agent_binary::failing(&work.path().join("slipway-agent"), NEW_VERSION);
    let sha256 = stage(&cluster, &broken).await;

    let upgrade_events = events(upgrade(&cluster, &sha256, 1, 20).await).await;
    let text = describe(&upgrade_events);
    let last = upgrade_events.last().expect("events");
    assert_eq!(last.status(), AgentUpgradeStatus::Failed, "{text}");
    assert!(last.message.contains("more than the 0 tolerated"), "{text}");
    let web1 = upgrade_events
        .iter()
        .rfind(|e| e.host == "web-1")
        .expect("web-1 events");
    assert_eq!(web1.status(), AgentUpgradeStatus::Failed, "{text}");
    assert!(web1.message.contains("rolled back"), "{text}");
    assert_eq!(web1.agent_version, old_version, "{text}");
    let web2 = upgrade_events
        .iter()
        .rfind(|e| e.host == "web-2")
        .expect("web-2 events");
    assert_eq!(web2.status(), AgentUpgradeStatus::Skipped, "{text}");

    // web-1 runs its old binary again and serves.
    let info = host_info(&cluster, 0).await;
    assert_eq!(info.agent_version, old_version);
    let outcome = info.last_upgrade.expect("outcome");
    assert_eq!(outcome.state(), AgentUpgradeState::RolledBack);
    let bin = cluster.agents[0]
        .data_dir
        .parent()
        .expect("host dir")
        .join("bin");
    let running = std::fs::read(bin.join("slipway-agent")).expect("read");
    assert_eq!(
        running,
        std::fs::read(slipway_tests::process::agent_binary()).expect("read")
    );
    assert!(host_info(&cluster, 1).await.last_upgrade.is_none());
    cluster.commit_text("after");
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    // web-1's agent now runs under its watchdog's pid, not the fixture's
    // child: dropping the cluster kills it through its pid file.
    drop(cluster);
}
