//! One operation per app per host, idempotent per deployment id: a repeated
//! Deploy replays the outcome without redoing work, also after the agent was
//! killed and restarted; another deployment id is refused while one runs.

use futures_util::StreamExt;
use slipway_proto::agent::v1::{
    OperationResult, ProgressEvent, RollbackRequest, agent_service_client::AgentServiceClient,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster, cluster::ENV, direct::app_target, disk, events::wait_for_event, repo::Change, spec,
};
use tonic::{Code, transport::Channel};

/// Runs an agent Deploy to its end; returns every event and the result.
async fn run_deploy(
    agent: &mut AgentServiceClient<Channel>,
    request: slipway_proto::agent::v1::DeployRequest,
) -> (Vec<ProgressEvent>, OperationResult) {
    let events: Vec<ProgressEvent> = agent
        .deploy(request)
        .await
        .expect("deploy")
        .into_inner()
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await;
    let result = events
        .last()
        .and_then(|e| e.result.clone())
        .unwrap_or_else(|| panic!("the last event has the result: {events:?}"));
    (events, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_deployment_id_replays_without_redoing_work() {
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(spec::hooks(vec![spec::after_activate(
            "count",
            r#"echo "$SLIPWAY_DEPLOYMENT_ID" >> "$SLIPWAY_RELEASE_DIR/../../count.log""#,
        )]))
        .start()
        .await;
    let counter = cluster.agents[0].app_root().join("count.log");
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    assert_eq!(disk::lines(&counter), [d1.id.as_str()]);

    // The control plane's deployment id again, straight to the agent, with
    // the token it ran under.
    let mut request = cluster.agent_deploy_request(&d1.id, &d1.release).await;
    request.fencing_token = cluster.holder_token(0).await;
    let (_, replayed) = run_deploy(&mut cluster.agent_client(0), request.clone()).await;
    assert!(replayed.success, "{replayed:?}");
    assert_eq!(replayed.current_release, d1.release);
    assert_eq!(disk::lines(&counter), [d1.id.as_str()], "the hook ran once");

    // The outcome is durable: a restarted agent replays it too.
    let agent = cluster.agents[0].process();
    agent.kill_9();
    agent.restart().await;
    let (_, after_restart) = run_deploy(&mut cluster.agent_client(0), request).await;
    assert_eq!(after_restart, replayed, "the same outcome after a restart");
    assert_eq!(disk::lines(&counter), [d1.id.as_str()], "the hook ran once");
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(d1.release.as_str())
    );
    let status = cluster.agent_status(0).await;
    assert_eq!(status.current_release, d1.release);
    assert_eq!(status.running_deployment, "");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_operation_on_a_busy_app_is_refused_naming_the_running_one() {
    let gate = tempfile::tempdir().expect("temp dir");
    let go = gate.path().join("go");
    let cluster = Cluster::builder()
        .agents(1)
        .activation(spec::hooks(vec![spec::before_activate(
            "hold",
            &format!(
                "echo \"holding-$SLIPWAY_APP\"; {}",
                spec::wait_for_file(&go, 30)
            ),
        )]))
        .start()
        .await;
    std::fs::write(&go, b"").expect("open the gate");
    cluster
        .repo
        .commit("zero", &[Change::File("a.txt", b"0\n")]);
    let (_, d0) = cluster.deploy("main").await;
    assert_succeeded(&d0);

    std::fs::remove_file(&go).expect("close the gate");
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "the hook holds the deploy", |e| {
        e.host == "web-1" && e.stage == "hook" && e.message.contains("holding-web")
    })
    .await;
    let running = seen[0].deployment_id.clone();
    let status = cluster.agent_status(0).await;
    assert_eq!(status.running_deployment, running);

    let mut agent = cluster.agent_client(0);
    // The lock holder's own token: refused for the running operation, not
    // as stale, and without fencing out the running deployment's calls.
    let token = cluster.holder_token(0).await;
    let mut request = cluster
        .agent_deploy_request("dep-intruder", &d0.release)
        .await;
    request.fencing_token = token;
    let refused = agent
        .deploy(request)
        .await
        .expect_err("a second deploy while one runs");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&running),
        "names the running deployment: {}",
        refused.message()
    );
    let refused = agent
        .rollback(RollbackRequest {
            deployment_id: "dep-intruder-2".into(),
            app: Some(app_target()),
            release_id: d0.release.clone(),
            spec: None,
            environment: ENV.into(),
            fencing_token: token,
            fencing_epoch: String::new(),
            secrets: Vec::new(),
        })
        .await
        .expect_err("a rollback while a deploy runs");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&running),
        "{}",
        refused.message()
    );
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(d0.release.as_str())
    );

    std::fs::write(&go, b"").expect("open the gate");
    let (_, d1) = cluster.finish(seen, stream).await;
    assert_succeeded(&d1);
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(d1.release.as_str())
    );
    assert_eq!(cluster.agent_status(0).await.running_deployment, "");
    cluster.shutdown().await;
}
