//! `slipway.control.v1.EnvironmentService`: environments and their rollout
//! policies.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Reply, audited};
use crate::{Context, auth::require, catalog, observe::summary};

/// `slipway.control.v1.EnvironmentService`.
pub struct Environments(pub Context);

#[tonic::async_trait]
impl environment_service_server::EnvironmentService for Environments {
    async fn create_environment(
        &self,
        request: Request<CreateEnvironmentRequest>,
    ) -> Reply<CreateEnvironmentResponse> {
        audited(&self.0, request, |ctx, _, env| async move {
            let environment = Some(catalog::create_environment(&ctx.store, env).await?);
            Ok((CreateEnvironmentResponse { environment }, "created".into()))
        })
        .await
    }

    async fn update_environment(
        &self,
        request: Request<UpdateEnvironmentRequest>,
    ) -> Reply<UpdateEnvironmentResponse> {
        audited(&self.0, request, |ctx, _, env| async move {
            let environment = Some(catalog::update_environment(&ctx.store, env).await?);
            Ok((UpdateEnvironmentResponse { environment }, "updated".into()))
        })
        .await
    }

    async fn get_environment(
        &self,
        request: Request<GetEnvironmentRequest>,
    ) -> Reply<GetEnvironmentResponse> {
        require(&request, Role::Viewer)?;
        let name = &request.get_ref().name;
        let environment = Some(catalog::environment(&self.0.store, name)?);
        let hosts = catalog::hosts(&self.0.store, name)?;
        Ok(Response::new(GetEnvironmentResponse { environment, hosts }))
    }

    async fn get_environment_status(
        &self,
        request: Request<GetEnvironmentStatusRequest>,
    ) -> Reply<GetEnvironmentStatusResponse> {
        require(&request, Role::Viewer)?;
        let name = &request.get_ref().name;
        Ok(Response::new(summary::environment(&self.0, name).await?))
    }

    async fn list_environments(
        &self,
        request: Request<ListEnvironmentsRequest>,
    ) -> Reply<ListEnvironmentsResponse> {
        require(&request, Role::Viewer)?;
        let environments = catalog::environments(&self.0.store)?;
        Ok(Response::new(ListEnvironmentsResponse { environments }))
    }
}
