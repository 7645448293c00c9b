//! `slipway.control.v1.DashboardService`: one-time login links into the
//! browser dashboard, and the sessions they opened (admin).

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{
    Context,
    auth::require,
    error::Error,
    sessions::{self, timestamp},
    store::dashboard::DashboardSession as Record,
};

/// `slipway.control.v1.DashboardService`.
pub struct Dashboard(pub Context);

fn session(record: Record) -> DashboardSession {
    DashboardSession {
        id: record.id,
        principal: format!("{}/{}", record.role, record.name),
        role: record.role,
        created_at: Some(timestamp(record.created_unix)),
        expires_at: Some(timestamp(record.expires_unix)),
        certificate_sha256: record.certificate_sha256,
    }
}

#[tonic::async_trait]
impl dashboard_service_server::DashboardService for Dashboard {
    async fn create_login_link(
        &self,
        request: Request<CreateLoginLinkRequest>,
    ) -> Reply<CreateLoginLinkResponse> {
        let certificate = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
            .unwrap_or_default();
        audited(&self.0, request, |ctx, caller, Checked(_)| async move {
            let (token, expires) = sessions::create_link(&ctx.store, &caller, &certificate).await?;
            let answer = CreateLoginLinkResponse {
                path: format!("/login/{token}"),
                expires_at: Some(timestamp(expires)),
            };
            Ok((answer, "a login link was issued".to_owned()))
        })
        .await
    }

    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Reply<ListSessionsResponse> {
        require(&request, Role::Admin)?;
        let sessions = sessions::list(&self.0.store).map_err(Error::from)?;
        Ok(Response::new(ListSessionsResponse {
            sessions: sessions.into_iter().map(session).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<RevokeSessionRequest>,
    ) -> Reply<RevokeSessionResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let revoked = sessions::revoke(&ctx.store, &req.id).await?;
            let message = format!("session of {}/{} revoked", revoked.role, revoked.name);
            let answer = RevokeSessionResponse {
                session: Some(session(revoked)),
            };
            Ok((answer, message))
        })
        .await
    }
}
