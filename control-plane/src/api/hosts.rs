//! `slipway.control.v1.HostService`: hosts and the fleet's live status.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, catalog, fleet, observe::series::series};

/// `slipway.control.v1.HostService`.
pub struct Hosts(pub Context);

#[tonic::async_trait]
impl host_service_server::HostService for Hosts {
    async fn add_host(&self, request: Request<AddHostRequest>) -> Reply<AddHostResponse> {
        audited(&self.0, request, |ctx, _, new| async move {
            // Refused before anything is written when no CA key is held.
            let signer = match (new.enroll, &ctx.signer) {
                (true, None) => {
                    return Err(crate::error::Error::Precondition(
                        "this control plane holds no CA key, so it cannot enroll agents; \
                         issue the host's certificate with `slipctl pki issue agent`"
                            .into(),
                    )
                    .into());
                }
                (_, signer) => signer.clone(),
            };
            let host = catalog::add_host(&ctx.store, new.host).await?;
            let mut answer = AddHostResponse {
                host: Some(host),
                ..Default::default()
            };
            let mut message = "added".to_owned();
            if let (true, Some(signer)) = (new.enroll, signer) {
                let name = &answer.host.as_ref().expect("just added").name;
                let (token, expires) = crate::enrollment::issue(&ctx.store, name)
                    .await
                    .map_err(crate::error::Error::from)?;
                answer.join_token = token;
                answer.join_token_expires_at = Some(slipway_proto::timestamp(expires));
                answer.ca_fingerprint = signer.ca_fingerprint().to_owned();
                message.push_str("; join token issued");
            }
            Ok((answer, message))
        })
        .await
    }

    async fn renew_agent_certificate(
        &self,
        request: Request<RenewAgentCertificateRequest>,
    ) -> Reply<RenewAgentCertificateResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let answer = crate::renewal::renew(&ctx, &req.host).await?;
            let message = format!("the agent serves certificate {}", answer.serial);
            Ok((answer, message))
        })
        .await
    }

    async fn remove_host(&self, request: Request<RemoveHostRequest>) -> Reply<RemoveHostResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let host = catalog::remove_host(&ctx.store, &req.name).await?;
            crate::trust::load(&ctx).map_err(crate::error::Error::from)?;
            let message = format!(
                "removed from environment {}; certificates of agent/{} revoked",
                host.environment, host.name
            );
            Ok((RemoveHostResponse { host: Some(host) }, message))
        })
        .await
    }

    async fn reset_fencing(
        &self,
        request: Request<ResetFencingRequest>,
    ) -> Reply<ResetFencingResponse> {
        audited(&self.0, request, |ctx, _, req| async move {
            let (previous_token, previous_epoch) =
                fleet::reset_fencing(&ctx, &req.0.host, &req.0.app).await?;
            let message = format!(
                "fencing reset (was token {previous_token}, epoch {})",
                if previous_epoch.is_empty() {
                    "none"
                } else {
                    &previous_epoch
                }
            );
            let response = ResetFencingResponse {
                previous_token,
                previous_epoch,
            };
            Ok((response, message))
        })
        .await
    }

    async fn get_host(&self, request: Request<GetHostRequest>) -> Reply<GetHostResponse> {
        require(&request, Role::Viewer)?;
        let host = catalog::host(&self.0.store, &request.get_ref().name)?;
        Ok(Response::new(GetHostResponse { host: Some(host) }))
    }

    async fn list_hosts(&self, request: Request<ListHostsRequest>) -> Reply<ListHostsResponse> {
        require(&request, Role::Viewer)?;
        let hosts = catalog::hosts(&self.0.store, &request.get_ref().environment)?;
        Ok(Response::new(ListHostsResponse { hosts }))
    }

    async fn get_health_series(
        &self,
        request: Request<GetHealthSeriesRequest>,
    ) -> Reply<GetHealthSeriesResponse> {
        require(&request, Role::Viewer)?;
        let (store, health) = (self.0.store.clone(), self.0.health.clone());
        let request = request.into_inner();
        let series = tokio::task::spawn_blocking(move || {
            series(&store, &health, &request, std::time::SystemTime::now())
        })
        .await
        .map_err(|_| tonic::Status::internal("the health series task failed"))??;
        Ok(Response::new(series))
    }

    async fn get_fleet_status(
        &self,
        request: Request<GetFleetStatusRequest>,
    ) -> Reply<GetFleetStatusResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let hosts = fleet::status(&self.0, &req.environment, &req.app).await?;
        Ok(Response::new(GetFleetStatusResponse { hosts }))
    }
}
