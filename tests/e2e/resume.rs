//! The control-plane process SIGKILLed at each phase boundary of a rollout,
//! at a known moment (a hook on one host holds until the test opens its
//! gate), then restarted: the deployment resumes under the same lock and
//! fencing token and ends as if nothing happened, with every event once, or
//! it is rolled back per its policy. Its record matches every host's
//! `current`, and no lock is left.

use slipway_proto::control::v1::{
    Deployment, DeploymentEvent, DeploymentStatus, RolloutPolicy, RolloutStrategy,
};
use slipway_tests::{Cluster, assert_succeeded, events::wait_for_event, spec};

fn count(events: &[DeploymentEvent], text: &str) -> usize {
    events.iter().filter(|e| e.message == text).count()
}

/// What every resumed deployment must show: numbered events without gap or
/// repeat, one "resumed" event, a record that matches every host, no lock.
async fn assert_resumed(cluster: &Cluster, events: &[DeploymentEvent], d: &Deployment) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected, "no gap and no duplicate");
    let resumed: Vec<_> = events.iter().filter(|e| e.stage == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(
        resumed[0]
            .message
            .contains(&format!("fencing token {}", d.fencing_token)),
        "{}",
        resumed[0].message
    );
    for host in &cluster.agents {
        let record = d.hosts.iter().find(|h| h.host == host.name).expect("host");
        let on_release = host.current().as_deref() == Some(d.release.as_str());
        assert_eq!(record.switched, on_release, "{}: {record:?}", host.name);
    }
    assert!(cluster.lock().await.is_none(), "no lock left");
}

async fn kill_and_restart(cluster: &mut Cluster) {
    cluster.kill_control_plane();
    cluster.restart_control_plane().await;
}

/// Kills the control plane while deployment `id` holds in a hook, restarts
/// it, opens the hook's gate, and checks the resumed deployment succeeded on
/// every host with the held hook's line relayed once.
async fn kill_resume_and_finish(cluster: &mut Cluster, id: &str, gate: &std::path::Path) {
    kill_and_restart(cluster).await;
    std::fs::write(gate, b"go").expect("open the gate");
    let (events, d) = cluster.watch(id).await;
    assert_succeeded(&d);
    assert_eq!(
        count(&events, "holding"),
        1,
        "relayed once across the restart"
    );
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d.release.as_str()));
    }
    assert_resumed(cluster, &events, &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_batches_it_resumes_with_the_remaining_batches() {
    let mut cluster = Cluster::builder()
        .agents(4)
        .process_control_plane()
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    let gate = cluster.hold_in_hook(2, spec::before_activate).await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_size: 1,
        ..Default::default()
    };
    let mut stream = cluster
        .try_deploy_stream("main", Some(policy))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    // Batches 1 and 2 are done; batch 3 (web-3) holds in its hook.
    wait_for_event(&mut stream, &mut seen, "web-3's hook", |e| {
        e.host == "web-3" && e.message == "holding"
    })
    .await;
    let id = seen[0].deployment_id.clone();
    drop(stream);
    kill_resume_and_finish(&mut cluster, &id, &gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_host_prepared_it_resumes_and_switches_every_host() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    cluster.commit_text("v1");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "web-1 prepared", |e| {
        e.host == "web-1" && e.stage == "prepared"
    })
    .await;
    if !seen
        .iter()
        .any(|e| e.host == "web-2" && e.message == "holding")
    {
        wait_for_event(&mut stream, &mut seen, "web-2 holds", |e| {
            e.host == "web-2" && e.message == "holding"
        })
        .await;
    }
    let id = seen[0].deployment_id.clone();
    drop(stream);
    kill_resume_and_finish(&mut cluster, &id, &gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_switch_it_follows_the_switch_to_its_end() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    let gate = cluster.hold_in_hook(1, spec::after_activate).await;
    cluster.commit_text("v1");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    // web-2 has switched and holds in its after-activate hook.
    wait_for_event(&mut stream, &mut seen, "web-2 holds", |e| {
        e.host == "web-2" && e.message == "holding"
    })
    .await;
    let id = seen[0].deployment_id.clone();
    drop(stream);
    kill_resume_and_finish(&mut cluster, &id, &gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_automatic_rollback_it_rolls_back_again() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    // Going to v2, web-2's after-activate hook fails (so the deployment
    // fails); the rollback of web-1 to v1 then holds in its hook.
    let gate = cluster.agents[0].apps_dir.join("gate");
    let hook = format!(
        "if [ \"$SLIPWAY_RELEASE_ID\" = '{}' ]; then {}; else case \"$SLIPWAY_RELEASE_DIR\" in '{}'/*) echo failing; exit 1;; esac; fi",
        good.release,
        spec::hold_on(&cluster.agents[0].apps_dir, "holding", &gate),
        cluster.agents[1].apps_dir.display(),
    );
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::after_activate("check", &hook)]));
        })
        .await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        auto_rollback: true,
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
        "the automatic rollback starts",
        |e| e.stage == "auto-rollback",
    )
    .await;
    let id = seen[0].deployment_id.clone();
    drop(stream);
    // The rollback of web-1 holds in its hook: that is where the kill lands.
    let first_child = loop {
        let history = cluster.history().await;
        if let Some(child) = history.into_iter().find(|d| d.rollback_of == id) {
            break child;
        }
        tokio::task::yield_now().await;
    };
    let mut child_stream = cluster
        .deployments(slipway_proto::identity::Role::Viewer)
        .await
        .watch_deployment(slipway_proto::control::v1::WatchDeploymentRequest {
            deployment_id: first_child.id.clone(),
            after_event: 0,
        })
        .await
        .expect("watch the rollback")
        .into_inner();
    loop {
        let event = child_stream
            .message()
            .await
            .expect("event")
            .and_then(|r| r.event)
            .expect("the rollback holds before it ends");
        if event.host == "web-1" && event.message == "holding" {
            break;
        }
    }
    drop(child_stream);
    kill_and_restart(&mut cluster).await;
    std::fs::write(&gate, b"go").expect("open the gate");

    let (events, parent) = cluster.watch(&id).await;
    assert_eq!(
        parent.status,
        DeploymentStatus::Failed as i32,
        "{}",
        parent.error
    );
    let interrupted = cluster.deployment(&first_child.id).await;
    assert_eq!(
        interrupted.status,
        DeploymentStatus::Interrupted as i32,
        "{interrupted:?}"
    );
    assert!(
        interrupted.reason.contains("decides again"),
        "{}",
        interrupted.reason
    );
    assert!(!parent.rolled_back_by.is_empty());
    assert_ne!(parent.rolled_back_by, first_child.id, "rolled back again");
    let (_, again) = cluster.watch(&parent.rolled_back_by).await;
    assert_succeeded(&again);
    for host in &cluster.agents {
        assert_eq!(
            host.current().as_deref(),
            Some(good.release.as_str()),
            "{}",
            host.name
        );
    }
    let resumed = events.iter().filter(|e| e.stage == "resumed").count();
    assert_eq!(resumed, 1);
    assert!(cluster.lock().await.is_none(), "no lock left");
}
