//! `slipway.control.v1.ApprovalService`: approving and rejecting
//! deployments that await approval, each decision audited.

use slipway_proto::control::v1::*;
use tonic::Request;

use super::{Checked, Reply, audited};
use crate::{Context, deployment};

/// `slipway.control.v1.ApprovalService`.
pub struct Approvals(pub Context);

#[tonic::async_trait]
impl approval_service_server::ApprovalService for Approvals {
    async fn approve_deployment(
        &self,
        request: Request<ApproveDeploymentRequest>,
    ) -> Reply<ApproveDeploymentResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let (id, message) = (&req.deployment_id, &req.message);
            let d = deployment::approve(&ctx, &caller, id, message, req.admin_override).await?;
            let decided = if req.admin_override {
                "overrode the approvals of"
            } else {
                "approved"
            };
            let status = d
                .status()
                .as_str_name()
                .trim_start_matches("DEPLOYMENT_STATUS_");
            let note = format!("{decided} {id}; now {}", status.to_lowercase());
            let deployment = Some(d);
            Ok((ApproveDeploymentResponse { deployment }, note))
        })
        .await
    }

    async fn reject_deployment(
        &self,
        request: Request<RejectDeploymentRequest>,
    ) -> Reply<RejectDeploymentResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let (id, message) = (&req.deployment_id, &req.message);
            let d = deployment::reject(&ctx, &caller, id, message).await?;
            let note = format!("rejected {id}: {message}");
            let deployment = Some(d);
            Ok((RejectDeploymentResponse { deployment }, note))
        })
        .await
    }
}
