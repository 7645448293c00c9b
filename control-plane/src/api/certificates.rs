//! `slipway.control.v1.CertificateService`: the revocation list.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Reply, audited};
use crate::{Context, auth::require, trust};

/// `slipway.control.v1.CertificateService`.
pub struct Certificates(pub Context);

#[tonic::async_trait]
impl certificate_service_server::CertificateService for Certificates {
    async fn revoke_certificate(
        &self,
        request: Request<RevokeCertificateRequest>,
    ) -> Reply<RevokeCertificateResponse> {
        audited(&self.0, request, |ctx, caller, req| async move {
            let answer = trust::revoke(&ctx, req.0, &caller.principal()).await?;
            let message = format!(
                "revoked; {} agents hold the new list, {} unreachable",
                answer.agents_updated,
                answer.agents_unreachable.len()
            );
            Ok((answer, message))
        })
        .await
    }

    async fn list_revocations(
        &self,
        request: Request<ListRevocationsRequest>,
    ) -> Reply<ListRevocationsResponse> {
        require(&request, Role::Viewer)?;
        let revocations = trust::list(&self.0.store)?;
        Ok(Response::new(ListRevocationsResponse { revocations }))
    }
}
