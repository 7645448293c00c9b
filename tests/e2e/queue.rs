//! The deploy queue: a deploy to a busy app and environment waits in a FIFO
//! queue (with `queue`, or the environment's gates) instead of being
//! refused; it shows its place in its events, is listed, can be cancelled,
//! survives a restart of the control plane, and under "latest wins" a newer
//! queued deploy skips the older ones.

use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{
        CancelDeploymentRequest, DeployGates, DeployRequest, DeployResponse, DeploymentEvent,
        DeploymentStatus, ListQueueRequest, queue_service_client::QueueServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    events::wait_for_event,
    gates, slipctl, spec,
};
use tonic::Streaming;

/// Starts a deploy of `main` as a deployer, asking to queue when `queue`.
async fn try_deploy(
    cluster: &Cluster,
    queue: bool,
) -> Result<Streaming<DeployResponse>, tonic::Status> {
    let request = DeployRequest {
        app: APP.into(),
        environment: ENV.into(),
        git_ref: "main".into(),
        queue,
        ..Default::default()
    };
    let mut client = cluster.deployments(Role::Deployer).await;
    client
        .deploy(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn deploy(cluster: &Cluster, queue: bool) -> Streaming<DeployResponse> {
    try_deploy(cluster, queue).await.expect("deploy")
}

/// The first event of a stream.
async fn first(stream: &mut Streaming<DeployResponse>) -> DeploymentEvent {
    let item = stream.next().await.expect("an event").expect("event");
    item.event.expect("event set")
}

/// A first deployment that holds in web-2's hook until the returned gate
/// exists; its stream and id.
async fn held(cluster: &Cluster) -> (std::path::PathBuf, String) {
    cluster.commit_text("v1");
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "web-2 holds", |e| {
        e.host == "web-2" && e.message == "holding"
    })
    .await;
    (gate, seen[0].deployment_id.clone())
}

async fn queued(cluster: &Cluster) -> Vec<slipway_proto::control::v1::Deployment> {
    QueueServiceClient::new(cluster.channel(Role::Viewer).await)
        .list_queue(ListQueueRequest::default())
        .await
        .expect("list queue")
        .into_inner()
        .deployments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_deploys_wait_in_order_show_their_place_and_one_is_cancelled() {
    let cluster = Cluster::builder().agents(2).start().await;
    let (gate, holder) = held(&cluster).await;

    // Without `queue`, refused as before.
    let refused = try_deploy(&cluster, false)
        .await
        .expect_err("refused while locked");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    cluster.commit_text("v2");
    let mut second = deploy(&cluster, true).await;
    let event = first(&mut second).await;
    assert_eq!(event.status(), DeploymentStatus::Queued);
    assert!(
        event.message.contains("queued, position 1"),
        "{}",
        event.message
    );
    assert!(event.message.contains(&holder), "{}", event.message);
    let second_id = event.deployment_id.clone();
    cluster.commit_text("v3");
    let mut third = deploy(&cluster, true).await;
    let third_id = first(&mut third).await.deployment_id;
    cluster.commit_text("v4");
    let mut fourth = deploy(&cluster, true).await;
    let event = first(&mut fourth).await;
    assert!(event.message.contains("position 3"), "{}", event.message);
    let fourth_id = event.deployment_id.clone();

    let listed: Vec<(String, u32)> = queued(&cluster)
        .await
        .into_iter()
        .map(|d| (d.id, d.queue_position))
        .collect();
    let expected = [
        (second_id.clone(), 1),
        (third_id.clone(), 2),
        (fourth_id.clone(), 3),
    ];
    assert_eq!(listed, expected);
    let record = cluster.deployment(&third_id).await;
    assert_eq!(record.status(), DeploymentStatus::Queued, "a real record");
    assert!(
        cluster.history().await.iter().any(|d| d.id == third_id),
        "in the history"
    );
    let (ok, table, stderr) = tokio::task::block_in_place(|| {
        slipctl::run(&cluster, Role::Viewer, &["queue", "--env", "prod"])
    });
    assert!(ok, "{stderr}");
    assert!(
        table.contains("POS") && table.contains(&fourth_id),
        "{table}"
    );

    // Cancel the middle one: it ends cancelled, never having held the
    // lock, and the last one moves up.
    let cancelled = cluster
        .deployments(Role::Deployer)
        .await
        .cancel_deployment(CancelDeploymentRequest {
            deployment_id: third_id.clone(),
            reason: "not this one".into(),
            grace_seconds: 0,
        })
        .await
        .expect("cancel")
        .into_inner()
        .deployment
        .expect("deployment");
    assert_eq!(cancelled.status(), DeploymentStatus::Cancelled);
    assert!(cancelled.cancelled_by.contains("deployer"), "{cancelled:?}");
    let mut seen = Vec::new();
    wait_for_event(&mut fourth, &mut seen, "position 2", |e| {
        e.message == "queued, position 2"
    })
    .await;

    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, d2) = cluster.watch(&second_id).await;
    assert_succeeded(&d2);
    let (events, d4) = cluster.watch(&fourth_id).await;
    assert_succeeded(&d4);
    assert_eq!(
        d4.previous_release, d2.release,
        "resolved again when it started"
    );
    assert!(events.iter().any(|e| e.message == "queued, position 1"));
    assert!(d4.queued_at.is_some());
    assert!(queued(&cluster).await.is_empty());
    assert!(cluster.lock().await.is_none());
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d4.release.as_str()));
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_wins_skips_the_older_queued_deploy() {
    let cluster = Cluster::builder().agents(2).start().await;
    gates::set_gates(
        &cluster,
        DeployGates {
            queue: true,
            latest_wins: true,
            ..Default::default()
        },
    )
    .await;
    let (gate, _) = held(&cluster).await;
    cluster.commit_text("v2");
    // The environment's gates queue it: no flag needed.
    let older = first(&mut deploy(&cluster, false).await)
        .await
        .deployment_id;
    cluster.commit_text("v3");
    let newer = first(&mut deploy(&cluster, false).await)
        .await
        .deployment_id;
    let (events, skipped) = cluster.watch(&older).await;
    assert_eq!(skipped.status(), DeploymentStatus::Cancelled);
    assert!(
        skipped.reason.contains(&format!("superseded by {newer}")),
        "{skipped:?}"
    );
    assert_eq!(events.last().expect("events").stage, "skipped");
    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, d) = cluster.watch(&newer).await;
    assert_succeeded(&d);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_deploy_survives_a_restart_and_runs_after_it() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    let (gate, holder) = held(&cluster).await;
    cluster.commit_text("v2");
    let queued_id = first(&mut deploy(&cluster, true).await).await.deployment_id;
    cluster.kill_control_plane();
    cluster.restart_control_plane().await;
    let listed = queued(&cluster).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, queued_id);
    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, d1) = cluster.watch(&holder).await;
    assert_succeeded(&d1);
    let (events, d2) = cluster.watch(&queued_id).await;
    assert_succeeded(&d2);
    assert_eq!(d2.previous_release, d1.release);
    assert_eq!(events[0].status(), DeploymentStatus::Queued);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d2.release.as_str()));
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_awaiting_approval_keeps_waiting_for_it_when_it_moves_up() {
    let cluster = Cluster::builder().agents(2).start().await;
    let (gate, holder) = held(&cluster).await;
    cluster.commit_text("v2");
    let queued_id = first(&mut deploy(&cluster, true).await).await.deployment_id;
    let approvals = DeployGates {
        approvals_required: 1,
        ..Default::default()
    };
    gates::set_gates(&cluster, approvals).await;
    let mut awaiting = deploy(&cluster, false).await;
    let event = first(&mut awaiting).await;
    assert_eq!(event.status(), DeploymentStatus::AwaitingApproval);
    let id = event.deployment_id;
    cluster
        .deployments(Role::Deployer)
        .await
        .cancel_deployment(CancelDeploymentRequest {
            deployment_id: queued_id,
            reason: "not this one".into(),
            grace_seconds: 0,
        })
        .await
        .expect("cancel");
    let mut seen = Vec::new();
    let moved = wait_for_event(&mut awaiting, &mut seen, "position 1", |e| {
        e.message.ends_with("position 1")
    })
    .await;
    assert_eq!(
        moved.status(),
        DeploymentStatus::AwaitingApproval,
        "{moved:?}"
    );
    std::fs::write(&gate, b"go").expect("open the gate");
    assert_succeeded(&cluster.watch(&holder).await.1);
    let approve = slipway_proto::control::v1::ApproveDeploymentRequest {
        deployment_id: id.clone(),
        ..Default::default()
    };
    slipway_proto::control::v1::approval_service_client::ApprovalServiceClient::new(
        cluster.channel(Role::Admin).await,
    )
    .approve_deployment(approve)
    .await
    .expect("approve: it still awaited approval");
    let (events, d) = cluster.watch(&id).await;
    assert_succeeded(&d);
    let approved_at = events
        .iter()
        .position(|e| e.message.starts_with("approved by"))
        .expect("approved");
    assert!(
        events[..approved_at]
            .iter()
            .all(|e| e.status() == DeploymentStatus::AwaitingApproval),
        "{events:?}"
    );
    cluster.shutdown().await;
}
