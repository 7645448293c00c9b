//! `slipway.control.v1.AuditService`: the audit trail, for admins.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::Reply;
use crate::{Context, audit, audit_chain, auth::require};

/// `slipway.control.v1.AuditService`.
pub struct AuditTrail(pub Context);

#[tonic::async_trait]
impl audit_service_server::AuditService for AuditTrail {
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Reply<ListAuditEventsResponse> {
        require(&request, Role::Admin)?;
        let (events, next_page_token) = audit::list(&self.0.store, request.get_ref())?;
        Ok(Response::new(ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn verify_audit_trail(
        &self,
        request: Request<VerifyAuditTrailRequest>,
    ) -> Reply<VerifyAuditTrailResponse> {
        require(&request, Role::Admin)?;
        let store = self.0.store.clone();
        let verified = tokio::task::spawn_blocking(move || audit_chain::verify(&store))
            .await
            .map_err(|_| {
                tonic::Status::unavailable("verifying the audit trail was interrupted")
            })??;
        let (broken_sequence, problem) = verified.broken.unwrap_or_default();
        Ok(Response::new(VerifyAuditTrailResponse {
            verified: verified.verified,
            first_sequence: verified.first_sequence,
            broken_sequence,
            problem,
        }))
    }
}
