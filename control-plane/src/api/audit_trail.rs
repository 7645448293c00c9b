//! `slipway.control.v1.AuditService`: the audit trail, for admins.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::Reply;
use crate::{Context, audit, auth::require};

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
}
