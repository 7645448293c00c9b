//! The real agent process killed with SIGKILL in the middle of a deploy:
//! while it materialises, while a hook runs, and between journaling an
//! outcome and sending it. After a restart `current`
//! is a complete release, nothing half-built is left, the journal records
//! nothing in flight, GetStatus tells the truth, no hook process survives,
//! and the same release deploys cleanly.

use slipway_agent::PAUSE_FINISHED_LINE;
use slipway_tests::assert_succeeded;
use std::time::Duration;

use slipway_proto::{
    agent::v1::ReleaseState,
    control::v1::{Deployment, DeploymentEvent, DeploymentStatus, RolloutPolicy},
};
use slipway_tests::{
    Cluster,
    cluster::AgentHost,
    disk,
    events::wait_for_event,
    process::Probe,
    repo::{Change, assert_tree_matches},
    spec,
};

/// Files in the big release: the agent pauses after half of them.
const BIG: usize = 600;
/// Distinct contents among them: few objects keep the transfer short, while
/// every file is still placed one by one.
const DISTINCT: usize = 60;

/// A short step deadline: a host whose agent is killed and stays down
/// fails once retries no longer fit in it.
fn dead_agent_policy() -> RolloutPolicy {
    RolloutPolicy {
        step_timeout_seconds: 2,
        ..Default::default()
    }
}

/// After a restart: what every crash must leave behind, whatever the
/// moment. Returns the release `current` points to.
async fn assert_recovered(cluster: &Cluster, index: usize) -> Option<String> {
    let host: &AgentHost = &cluster.agents[index];
    // Ask first: recovery may happen when the app is first touched.
    let status = cluster.agent_status(index).await;
    let root = host.app_root();
    let current = host.current();
    assert_eq!(
        status.current_release,
        current.clone().unwrap_or_default(),
        "GetStatus reports the real current"
    );
    assert_eq!(
        status.running_deployment, "",
        "nothing runs after a restart"
    );
    let listed: Vec<String> = status.releases.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        listed,
        disk::releases(&root),
        "GetStatus lists what is on disk"
    );
    for release in &status.releases {
        assert_ne!(
            release.state(),
            ReleaseState::Unfinished,
            "{}: {status:?}",
            release.id
        );
        let active = Some(&release.id) == current.as_ref();
        assert_eq!(
            release.state() == ReleaseState::Active,
            active,
            "{}: only the current release is active: {status:?}",
            release.id
        );
    }
    let leftovers = disk::staging_leftovers(&root);
    assert!(leftovers.is_empty(), "staging leftovers: {leftovers:?}");
    disk::assert_journal_settled(&root);
    current
}

/// The deployment's event log has no gap and no duplicate, and the host
/// runs its release.
fn assert_whole_and_live(cluster: &Cluster, events: &[DeploymentEvent], deployment: &Deployment) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected, "no gap and no duplicate");
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(deployment.release.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_materialising_leaves_a_complete_current() {
    let mut cluster = Cluster::builder().agents(1).process_agents().start().await;
    let small = cluster
        .repo
        .commit("small", &[Change::File("index.html", b"small\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    let contents: Vec<(String, Vec<u8>)> = (0..BIG)
        .map(|i| {
            (
                format!("assets/{:02}/file-{i:04}.txt", i % 60),
                format!("content {}\n", i % DISTINCT).into_bytes(),
            )
        })
        .collect();
    let changes: Vec<Change<'_>> = contents
        .iter()
        .map(|(path, data)| Change::File(path, data))
        .collect();
    let big = cluster.repo.commit("big", &changes);
    // The agent stops for good half-way through placing the files: the kill
    // lands there, never before or after.
    let agent = cluster.agents[0].process();
    agent.kill_9();
    agent.pause_at(Some("materialise:50"));
    agent.restart().await;
    let mut stream = cluster
        .try_deploy_stream("main", Some(dead_agent_policy()))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "the agent pauses", |e| {
        e.host == "web-1" && e.stage == "materialise" && e.message.starts_with("paused at ")
    })
    .await;
    let release = cluster.deployment(&seen[0].deployment_id).await.release;
    let host_release = cluster.agents[0].release_dir(&release);
    cluster.agents[0].process().kill_9();
    assert!(!host_release.exists(), "the release is not published yet");

    let (_, d2) = cluster.finish(seen, stream).await;
    assert_eq!(d2.status, DeploymentStatus::Failed as i32, "the host died");
    let agent = cluster.agents[0].process();
    agent.pause_at(None);
    agent.restart().await;
    let current = assert_recovered(&cluster, 0).await;
    assert_eq!(current.as_deref(), Some(d1.release.as_str()));
    let host = &cluster.agents[0];
    assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &small);
    assert!(!host_release.exists(), "no partial release after recovery");

    // The restarted agent finishes the job on a new deployment.
    let (_, d3) = cluster.deploy("main").await;
    assert_succeeded(&d3);
    assert_eq!(d3.release, release);
    assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &big);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_hook_then_restart_ends_the_hook_and_keeps_current() {
    let gate = tempfile::tempdir().expect("temp dir");
    let go = gate.path().join("go");
    let pidfile = gate.path().join("hook.pid");
    let hold = format!(
        "echo $$ > '{}'; echo \"holding-$SLIPWAY_APP\"; {}",
        pidfile.display(),
        spec::wait_for_file(&go, 30)
    );
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(spec::hooks(vec![spec::before_activate("hold", &hold)]))
        .start()
        .await;
    std::fs::write(&go, b"").expect("open the gate");
    let c1 = cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    std::fs::remove_file(&go).expect("close the gate");
    std::fs::remove_file(&pidfile).expect("forget the first run's pid");
    let c2 = cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let mut stream = cluster
        .try_deploy_stream("main", Some(dead_agent_policy()))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "the hook runs", |e| {
        e.host == "web-1" && e.stage == "hook" && e.message.contains("holding-web")
    })
    .await;
    // Written before the line that was just seen.
    let hook = Probe::from_pidfile(&pidfile).expect("the hook is running");
    cluster.agents[0].process().kill_9();
    let (_, d2) = cluster.finish(seen, stream).await;
    assert_eq!(d2.status, DeploymentStatus::Failed as i32, "the host died");

    cluster.agents[0].process().restart().await;
    let current = assert_recovered(&cluster, 0).await;
    let host = &cluster.agents[0];
    assert_eq!(current.as_deref(), Some(d1.release.as_str()));
    assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c1);
    assert!(
        hook.wait_gone(Duration::from_secs(5)),
        "hook process {} survived the agent's restart",
        hook.pid
    );

    std::fs::write(&go, b"").expect("open the gate");
    let (_, d3) = cluster.deploy("main").await;
    assert_succeeded(&d3);
    assert_eq!(d3.release, d2.release);
    assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_hook_and_restarted_within_the_deadline_finishes_its_host() {
    let gate = tempfile::tempdir().expect("temp dir");
    let go = gate.path().join("go");
    let hold = format!("echo before; {}; echo after", spec::wait_for_file(&go, 60));
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(spec::hooks(vec![spec::before_activate("hold", &hold)]))
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    // Retries wide enough to outlast an agent restart.
    let policy = RolloutPolicy {
        retry_attempts: 10,
        ..Default::default()
    };
    let mut stream = cluster
        .try_deploy_stream("main", Some(policy))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "the hook runs", |e| {
        e.host == "web-1" && e.message == "before"
    })
    .await;
    cluster.agents[0].process().kill_9();
    cluster.agents[0].process().restart().await;
    // The retry reaches the new agent, which runs the operation again from
    // the start: its hook prints "before" again, then waits for the gate.
    wait_for_event(&mut stream, &mut seen, "the hook runs again", |e| {
        e.host == "web-1" && e.message == "before"
    })
    .await;
    std::fs::write(&go, b"").expect("open the gate");
    let (events, deployment) = cluster.finish(seen, stream).await;
    assert_succeeded(&deployment);
    let lines = |text: &str| events.iter().filter(|e| e.message == text).count();
    assert_eq!(lines("before"), 2, "each run's line, once");
    assert_eq!(lines("after"), 1, "the new run's events arrived");
    assert_whole_and_live(&cluster, &events, &deployment);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_after_journaling_an_outcome_replays_it_without_a_duplicate() {
    let mut cluster = Cluster::builder().agents(1).process_agents().start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    // The agent journals the prepare's outcome, then holds before its final
    // event: the kill lands between the record and the reply.
    let agent = cluster.agents[0].process();
    agent.kill_9();
    agent.pause_at(Some("finished"));
    agent.restart().await;
    let policy = RolloutPolicy {
        retry_attempts: 10,
        ..Default::default()
    };
    let stream = cluster
        .try_deploy_stream("main", Some(policy))
        .await
        .expect("deploy");
    let agent = cluster.agents[0].process();
    agent
        .wait_for_log(PAUSE_FINISHED_LINE, Duration::from_secs(60))
        .await;
    agent.kill_9();
    agent.pause_at(None);
    agent.restart().await;

    // The retry reaches the new agent, which replays the journaled run under
    // its own id: the control plane relays none of it twice.
    let (events, deployment) = cluster.finish(Vec::new(), stream).await;
    assert_succeeded(&deployment);
    let relayed: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| !e.agent_run_id.is_empty())
        .map(|e| (e.agent_run_id.as_str(), e.agent_sequence))
        .collect();
    let unique: std::collections::HashSet<_> = relayed.iter().collect();
    assert_eq!(unique.len(), relayed.len(), "relayed twice: {relayed:?}");
    let materialising = events
        .iter()
        .filter(|e| e.message.starts_with("materialising release"))
        .count();
    assert_eq!(materialising, 1, "the prepare ran once and was told once");
    assert_whole_and_live(&cluster, &events, &deployment);
    cluster.shutdown().await;
}
