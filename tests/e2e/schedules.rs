//! Schedules, deploy windows and freezes: a deploy scheduled a few seconds
//! ahead runs then (after a restart of the control plane too) and can be
//! cancelled before; a time in the past is refused; a deploy outside the
//! windows or inside a freeze is refused unless an admin forces it, which
//! is recorded and audited.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{
        DeployFreeze, DeployGates, DeployRequest, DeployResponse, DeployWindow, DeploymentEvent,
        DeploymentStatus,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    gates, slipctl,
};
use tonic::{Code, Streaming};

fn request(run_at: Option<SystemTime>, force: bool) -> DeployRequest {
    DeployRequest {
        app: APP.into(),
        environment: ENV.into(),
        git_ref: "main".into(),
        run_at: run_at.map(slipway_proto::timestamp),
        force,
        ..Default::default()
    }
}

async fn deploy(
    cluster: &Cluster,
    role: Role,
    request: DeployRequest,
) -> Result<(Streaming<DeployResponse>, DeploymentEvent), tonic::Status> {
    let mut stream = cluster
        .deployments(role)
        .await
        .deploy(request)
        .await?
        .into_inner();
    let first = stream.next().await.expect("an event")?;
    Ok((stream, first.event.expect("event set")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_scheduled_three_seconds_ahead_runs_then() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let past = deploy(
        &cluster,
        Role::Deployer,
        request(Some(SystemTime::now() - Duration::from_secs(60)), false),
    )
    .await
    .expect_err("a past time");
    assert_eq!(past.code(), Code::InvalidArgument, "{past:?}");
    assert!(cluster.history().await.is_empty(), "nothing recorded");

    let at = SystemTime::now() + Duration::from_secs(3);
    let (stream, first) = deploy(&cluster, Role::Deployer, request(Some(at), false))
        .await
        .expect("scheduled");
    assert_eq!(first.status(), DeploymentStatus::Scheduled);
    assert!(first.message.contains("scheduled for"), "{}", first.message);
    let id = first.deployment_id;
    let waiting = cluster.deployment(&id).await;
    assert_eq!(waiting.status(), DeploymentStatus::Scheduled);
    assert!(cluster.agents[0].current().is_none(), "not before its time");
    let events: Vec<DeploymentEvent> = stream
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await;
    assert!(
        events.iter().any(|e| e.message.contains("scheduled time")),
        "{events:?}"
    );
    let d = cluster.deployment(&id).await;
    assert_succeeded(&d);
    let started = d.started_at.expect("started").seconds;
    let planned = slipway_proto::timestamp(at).seconds;
    assert!(started >= planned, "started {started}, planned {planned}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_deploy_is_listed_and_cancelled_from_slipctl() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let at = at.format("%Y-%m-%dT%H:%MZ").to_string();
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        let args = ["deploy", "web", "--env", "prod", "--at", &at, "--detach"];
        slipctl::run(&cluster, Role::Deployer, &args)
    });
    assert!(ok, "{stderr}");
    let id = stdout.trim().to_owned();
    let (ok, table, stderr) =
        tokio::task::block_in_place(|| slipctl::run(&cluster, Role::Viewer, &["queue"]));
    assert!(ok, "{stderr}");
    assert!(
        table.contains(&id) && table.contains("scheduled"),
        "{table}"
    );
    let (ok, _, stderr) = tokio::task::block_in_place(|| {
        let args = ["cancel", id.as_str(), "--reason", "moved", "--yes"];
        slipctl::run(&cluster, Role::Deployer, &args)
    });
    assert!(ok, "{stderr}");
    let cancelled = cluster.deployment(&id).await;
    assert_eq!(cancelled.status(), DeploymentStatus::Cancelled);
    assert!(cancelled.reason.contains("moved"), "{cancelled:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_scheduled_before_a_restart_runs_after_it() {
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .start()
        .await;
    cluster.commit_text("v1");
    let at = SystemTime::now() + Duration::from_secs(2);
    let (_, first) = deploy(&cluster, Role::Deployer, request(Some(at), false))
        .await
        .expect("scheduled");
    cluster.kill_control_plane();
    cluster.restart_control_plane().await;
    let (events, d) = cluster.watch(&first.deployment_id).await;
    assert_succeeded(&d);
    assert_eq!(events[0].status(), DeploymentStatus::Scheduled);
    assert_eq!(
        cluster.agents[0].current().as_deref(),
        Some(d.release.as_str())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_window_or_inside_a_freeze_only_an_admin_forces_a_deploy() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    // A window on another day of the week than today.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%a")
        .to_string()
        .to_lowercase();
    let window = DeployWindow {
        days: vec![tomorrow],
        start: "00:00".into(),
        end: "23:59".into(),
    };
    let mut g = DeployGates {
        windows: vec![window],
        ..Default::default()
    };
    gates::set_gates(&cluster, g.clone()).await;
    let outside = deploy(&cluster, Role::Deployer, request(None, false))
        .await
        .expect_err("outside the window");
    assert_eq!(outside.code(), Code::FailedPrecondition);
    assert!(
        outside.message().contains("outside the deploy windows"),
        "{outside:?}"
    );

    let now = SystemTime::now();
    g.windows.clear();
    g.freezes.push(DeployFreeze {
        from: Some(slipway_proto::timestamp(now - Duration::from_secs(3600))),
        until: Some(slipway_proto::timestamp(now + Duration::from_secs(3600))),
        reason: "year-end close".into(),
    });
    gates::set_gates(&cluster, g).await;
    let frozen = deploy(&cluster, Role::Deployer, request(None, false))
        .await
        .expect_err("frozen");
    assert_eq!(frozen.code(), Code::FailedPrecondition);
    assert!(frozen.message().contains("year-end close"), "{frozen:?}");
    let not_admin = deploy(&cluster, Role::Deployer, request(None, true))
        .await
        .expect_err("only an admin forces");
    assert_eq!(not_admin.code(), Code::PermissionDenied);
    assert!(
        cluster.history().await.is_empty(),
        "refusals record nothing"
    );

    let (stream, first) = deploy(&cluster, Role::Admin, request(None, true))
        .await
        .expect("forced");
    assert!(
        first.message.contains("forced by admin/admin"),
        "{}",
        first.message
    );
    drop(stream);
    let (_, d) = cluster.watch(&first.deployment_id).await;
    assert_succeeded(&d);
    assert!(d.forced);
    let audit = cluster.audit_trail().await;
    assert!(
        audit
            .iter()
            .any(|e| e.method.ends_with("DeploymentService/Deploy")
                && e.target.contains("forced")
                && e.outcome == "OK"),
        "{audit:?}"
    );
    cluster.shutdown().await;
}
