//! `slipway.control.v1.DeployKeyService`: each app's SSH deploy key and the
//! pinned host key of its server.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, catalog};

/// `slipway.control.v1.DeployKeyService`.
pub struct DeployKeys(pub Context);

#[tonic::async_trait]
impl deploy_key_service_server::DeployKeyService for DeployKeys {
    async fn create_deploy_key(
        &self,
        request: Request<CreateDeployKeyRequest>,
    ) -> Reply<CreateDeployKeyResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            catalog::app(&ctx.store, &req.app)?;
            let key = ctx.sources.create_key(&req.app, false, &req.known_host)?;
            let message = format!("created deploy key {}", key.fingerprint);
            Ok((CreateDeployKeyResponse { key: Some(key) }, message))
        })
        .await
    }

    async fn get_deploy_key(
        &self,
        request: Request<GetDeployKeyRequest>,
    ) -> Reply<GetDeployKeyResponse> {
        require(&request, Role::Viewer)?;
        let app = catalog::app(&self.0.store, &request.get_ref().app)?;
        let (key, known_host) = self.0.sources.key(&app.name)?;
        Ok(Response::new(GetDeployKeyResponse {
            key: Some(key),
            known_host,
        }))
    }

    async fn test_deploy_key(
        &self,
        request: Request<TestDeployKeyRequest>,
    ) -> Reply<TestDeployKeyResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let app = catalog::app(&ctx.store, &req.app)?;
            let tested = ctx.sources.test_key(&app, &req.known_host).await?;
            let message = if tested.ok {
                format!("listed {} refs", tested.refs)
            } else {
                format!("failed: {}", tested.error)
            };
            Ok((tested, message))
        })
        .await
    }

    async fn rotate_deploy_key(
        &self,
        request: Request<RotateDeployKeyRequest>,
    ) -> Reply<RotateDeployKeyResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            catalog::app(&ctx.store, &req.app)?;
            ctx.sources.key(&req.app)?;
            let key = ctx.sources.create_key(&req.app, true, "")?;
            let message = format!("rotated to deploy key {}", key.fingerprint);
            Ok((RotateDeployKeyResponse { key: Some(key) }, message))
        })
        .await
    }

    async fn revoke_deploy_key(
        &self,
        request: Request<RevokeDeployKeyRequest>,
    ) -> Reply<RevokeDeployKeyResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            catalog::app(&ctx.store, &req.app)?;
            ctx.sources.revoke_key(&req.app)?;
            Ok((RevokeDeployKeyResponse {}, "revoked".into()))
        })
        .await
    }
}
