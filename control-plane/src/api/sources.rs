//! `slipway.control.v1.SourceService`: where an app's source stands, and a
//! fetch on demand.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, catalog, sources::report};

/// `slipway.control.v1.SourceService`.
pub struct Sources(pub Context);

#[tonic::async_trait]
impl source_service_server::SourceService for Sources {
    async fn get_source_status(
        &self,
        request: Request<GetSourceStatusRequest>,
    ) -> Reply<GetSourceStatusResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        let ctx = &self.0;
        let status = report::status(&ctx.store, &ctx.sources, &req.app, req.max_commits).await?;
        Ok(Response::new(GetSourceStatusResponse {
            status: Some(status),
        }))
    }

    async fn fetch_source(
        &self,
        request: Request<FetchSourceRequest>,
    ) -> Reply<FetchSourceResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let app = catalog::app(&ctx.store, &req.app)?;
            let fetch = ctx.sources.fetch(&app).await?;
            let message = if fetch.ok {
                format!("fetched {} objects, {} bytes", fetch.objects, fetch.bytes)
            } else {
                format!("fetch failed: {}", fetch.error)
            };
            Ok((FetchSourceResponse { fetch: Some(fetch) }, message))
        })
        .await
    }
}
