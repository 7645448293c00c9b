//! Approvals: an environment that requires N approvals holds each
//! deployment awaiting approval until operators other than its requester
//! approve it; the requester cannot; a rejection or an expired request ends
//! it cancelled; an admin may override. Every decision is in the record, an
//! event and the audit trail.

use futures_util::StreamExt;
use slipway_proto::control::v1::{
    ApproveDeploymentRequest, DeployGates, DeployResponse, DeploymentEvent, DeploymentStatus,
    RejectDeploymentRequest, approval_service_client::ApprovalServiceClient,
};
use slipway_proto::identity::Role;
use slipway_tests::{Cluster, assert_succeeded, gates};
use tonic::{Code, Streaming, transport::Channel};

async fn require(cluster: &Cluster, approvals_required: u32, approval_expiry_seconds: u32) {
    let gates = DeployGates {
        approvals_required,
        approval_expiry_seconds,
        ..Default::default()
    };
    gates::set_gates(cluster, gates).await;
}

async fn request(cluster: &Cluster) -> (Streaming<DeployResponse>, DeploymentEvent) {
    gates::request_deploy(cluster).await
}

async fn approvals(cluster: &Cluster, role: Role) -> ApprovalServiceClient<Channel> {
    ApprovalServiceClient::new(cluster.channel(role).await)
}

fn approve(id: &str, admin_override: bool) -> ApproveDeploymentRequest {
    ApproveDeploymentRequest {
        deployment_id: id.into(),
        message: "looks good".into(),
        admin_override,
    }
}

/// Reads the rest of a stream: every event.
async fn rest(stream: Streaming<DeployResponse>) -> Vec<DeploymentEvent> {
    stream
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_operator_approves_the_requester_cannot_and_decisions_are_audited() {
    let cluster = Cluster::builder().agents(2).start().await;
    require(&cluster, 1, 0).await;
    let (stream, first) = request(&cluster).await;
    assert_eq!(first.status(), DeploymentStatus::AwaitingApproval);
    assert!(
        first.message.contains("awaits 1 approvals"),
        "{}",
        first.message
    );
    let id = first.deployment_id.clone();
    let waiting = cluster.deployment(&id).await;
    assert_eq!(waiting.status(), DeploymentStatus::AwaitingApproval);
    assert!(waiting.approval_expires_at.is_some());
    assert!(cluster.lock().await.is_none(), "no lock while it waits");

    let own = approvals(&cluster, Role::Deployer)
        .await
        .approve_deployment(approve(&id, false))
        .await
        .expect_err("the requester cannot approve");
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    let viewer = approvals(&cluster, Role::Viewer)
        .await
        .approve_deployment(approve(&id, false))
        .await
        .expect_err("a viewer cannot approve");
    assert_eq!(viewer.code(), Code::PermissionDenied);
    let deployer_override = approvals(&cluster, Role::Deployer)
        .await
        .approve_deployment(approve(&id, true))
        .await
        .expect_err("only an admin overrides");
    assert_eq!(deployer_override.code(), Code::PermissionDenied);
    let unknown = approvals(&cluster, Role::Admin)
        .await
        .approve_deployment(approve("dep-0000009999", false))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let oversize = ApproveDeploymentRequest {
        message: "x".repeat(100_000),
        ..approve(&id, false)
    };
    let oversize = approvals(&cluster, Role::Admin)
        .await
        .approve_deployment(oversize)
        .await
        .expect_err("bounded");
    assert_eq!(oversize.code(), Code::InvalidArgument);
    assert!(
        cluster.deployment(&id).await.approvals.is_empty(),
        "refusals change nothing"
    );

    let approved = approvals(&cluster, Role::Admin)
        .await
        .approve_deployment(approve(&id, false))
        .await
        .expect("approve")
        .into_inner()
        .deployment
        .expect("deployment");
    assert_eq!(approved.approvals.len(), 1);
    assert_eq!(approved.approvals[0].by, "admin/admin");
    let events = rest(stream).await;
    let d = cluster.deployment(&id).await;
    assert_succeeded(&d);
    assert!(
        events.iter().any(|e| e
            .message
            .starts_with("approved by admin/admin (1 of 1): looks good")),
        "{events:?}"
    );
    let again = approvals(&cluster, Role::Admin)
        .await
        .approve_deployment(approve(&id, false))
        .await
        .expect_err("no longer pending");
    assert_eq!(again.code(), Code::FailedPrecondition);

    let audit = cluster.audit_trail().await;
    let decisions: Vec<_> = audit
        .iter()
        .filter(|e| e.method.ends_with("ApprovalService/ApproveDeployment"))
        .collect();
    assert!(
        decisions
            .iter()
            .any(|e| e.outcome == "OK" && e.actor.contains("admin")),
        "{decisions:?}"
    );
    assert!(decisions.len() >= 5, "refusals audited too: {decisions:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_and_an_expired_request_end_it_cancelled() {
    let cluster = Cluster::builder().agents(1).start().await;
    require(&cluster, 1, 0).await;
    let (stream, first) = request(&cluster).await;
    let id = first.deployment_id;
    let empty = approvals(&cluster, Role::Admin)
        .await
        .reject_deployment(RejectDeploymentRequest {
            deployment_id: id.clone(),
            message: " ".into(),
        })
        .await
        .expect_err("a reason is required");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let rejected = approvals(&cluster, Role::Admin)
        .await
        .reject_deployment(RejectDeploymentRequest {
            deployment_id: id.clone(),
            message: "not during the sale".into(),
        })
        .await
        .expect("reject")
        .into_inner()
        .deployment
        .expect("deployment");
    assert_eq!(rejected.status(), DeploymentStatus::Cancelled);
    assert_eq!(rejected.cancelled_by, "admin/admin");
    assert_eq!(rejected.approvals.len(), 1);
    assert_eq!(rest(stream).await.last().expect("event").stage, "rejected");

    // A request open for one second ends by itself: the stream shows it.
    require(&cluster, 1, 1).await;
    let (stream, first) = request(&cluster).await;
    let events = rest(stream).await;
    let last = events.last().expect("event");
    assert_eq!(last.stage, "expired", "{events:?}");
    let d = cluster.deployment(&first.deployment_id).await;
    assert_eq!(d.status(), DeploymentStatus::Cancelled);
    assert!(
        d.reason.contains("expired with 0 of 1 approvals"),
        "{}",
        d.reason
    );
    assert!(cluster.agents[0].current().is_none(), "no host touched");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_override_releases_it_and_is_audited() {
    let cluster = Cluster::builder().agents(1).start().await;
    require(&cluster, 2, 0).await;
    let (stream, first) = request(&cluster).await;
    let id = first.deployment_id;
    let approved = approvals(&cluster, Role::Admin)
        .await
        .approve_deployment(approve(&id, true))
        .await
        .expect("override")
        .into_inner()
        .deployment
        .expect("deployment");
    assert!(approved.approvals[0].admin_override);
    let events = rest(stream).await;
    assert!(
        events.iter().any(|e| e
            .message
            .starts_with("approval overridden by admin/admin (0 of 2 approvals)")),
        "{events:?}"
    );
    assert_succeeded(&cluster.deployment(&id).await);
    let audit = cluster.audit_trail().await;
    assert!(
        audit
            .iter()
            .any(|e| e.method.ends_with("ApprovalService/ApproveDeployment")
                && e.target.contains("admin override")
                && e.outcome == "OK"),
        "{audit:?}"
    );
    cluster.shutdown().await;
}
