//! Rollouts under faults, with a TCP killer between the control plane and
//! the agents: retries that repeat no step, and an agent that vanishes
//! failing within its deadline. (A control plane SIGKILLed mid-rollout:
//! `resume.rs`.)

use std::time::{Duration, Instant};

use slipway_proto::control::v1::{DeploymentEvent, DeploymentStatus, EventKind, RolloutPolicy};
use slipway_tests::{Cluster, assert_succeeded, disk, events::wait_for_event, spec};

fn hook_lines<'a>(events: &'a [DeploymentEvent], text: &str) -> Vec<&'a DeploymentEvent> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Log as i32 && e.message == text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_after_the_agent_took_deploy_is_retried_without_repeating_a_step() {
    let cluster = Cluster::builder().agents(1).fault_proxies().start().await;
    let host = &cluster.agents[0];
    let gate = host.apps_dir.join("gate");
    let runs = host.apps_dir.join("runs");
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate(
                "migrate",
                &format!(
                    "echo run >> '{}'; echo step-one; {}; echo step-two",
                    runs.display(),
                    spec::wait_for_file(&gate, 120)
                ),
            )]));
        })
        .await;
    cluster.commit_text("v1");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    // The agent took the Deploy and runs its hook; its reply stream is open.
    wait_for_event(&mut stream, &mut seen, "the hook's first line", |e| {
        e.message == "step-one"
    })
    .await;
    let cut = cluster.proxy(0).cut().await;
    assert!(cut >= 1, "a live connection was cut");
    std::fs::write(&gate, b"go").unwrap();
    let (events, deployment) = cluster.finish(seen, stream).await;
    assert_succeeded(&deployment);

    assert_eq!(disk::lines(&runs), ["run"], "the hook ran once");
    assert_eq!(hook_lines(&events, "step-one").len(), 1, "no duplicate");
    assert_eq!(hook_lines(&events, "step-two").len(), 1, "no gap");
    let retried = events.iter().any(|e| {
        e.level == slipway_proto::control::v1::LogLevel::Warn as i32
            && e.message.contains("attempt 2 of")
    });
    assert!(retried, "the control plane retried the step");
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(
        sequences, expected,
        "the event log has no gap and no duplicate"
    );
    assert_eq!(host.current().as_deref(), Some(deployment.release.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_answering_fails_its_step_within_its_deadline() {
    let cluster = Cluster::builder().agents(2).fault_proxy(1).start().await;
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    cluster.commit_text("v2");
    cluster.proxy(1).blackhole(true);
    let policy = RolloutPolicy {
        step_timeout_seconds: 2,
        retry_attempts: 2,
        ..Default::default()
    };
    let started = Instant::now();
    let (_, deployment) = cluster.deploy_with("main", policy).await;
    let elapsed = started.elapsed();
    assert_eq!(
        deployment.status,
        DeploymentStatus::Failed as i32,
        "{deployment:?}"
    );
    let silent = deployment.hosts.iter().find(|h| h.host == "web-2").unwrap();
    assert_eq!(silent.status, DeploymentStatus::Failed as i32);
    assert!(
        silent.error.contains("longer than 2 s") || silent.error.contains("within 2 s"),
        "{}",
        silent.error
    );
    // Two attempts of a 2 s step plus one backoff (at most 10 s): bounded.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // The host that answered was prepared but, the budget spent, not switched.
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(good.release.as_str())
    );
    cluster.proxy(1).blackhole(false);
}
