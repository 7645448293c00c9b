//! `slipway.control.v1.AppService`: apps and what each host does around a
//! switch.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::Request;

use super::{Reply, audited};
use crate::{Context, auth::require, catalog};

/// `slipway.control.v1.AppService`.
pub struct Apps(pub Context);

#[tonic::async_trait]
impl app_service_server::AppService for Apps {
    async fn create_app(&self, request: Request<CreateAppRequest>) -> Reply<CreateAppResponse> {
        audited(&self.0, request, |ctx, _, app| async move {
            let app = catalog::create_app(&ctx.store, &ctx.sources, app).await?;
            Ok((CreateAppResponse { app: Some(app) }, "created".into()))
        })
        .await
    }

    async fn update_app(&self, request: Request<UpdateAppRequest>) -> Reply<UpdateAppResponse> {
        audited(&self.0, request, |ctx, _, app| async move {
            let app = catalog::update_app(&ctx.store, &ctx.sources, app).await?;
            Ok((UpdateAppResponse { app: Some(app) }, "updated".into()))
        })
        .await
    }

    async fn get_app(&self, request: Request<GetAppRequest>) -> Reply<GetAppResponse> {
        require(&request, Role::Viewer)?;
        let app = catalog::app(&self.0.store, &request.get_ref().name)?;
        Ok(tonic::Response::new(GetAppResponse { app: Some(app) }))
    }

    async fn list_apps(&self, request: Request<ListAppsRequest>) -> Reply<ListAppsResponse> {
        require(&request, Role::Viewer)?;
        let apps = catalog::apps(&self.0.store)?;
        Ok(tonic::Response::new(ListAppsResponse { apps }))
    }
}
