//! `slipway.control.v1.TriggerService`: an app's webhook secret and the
//! branches its environments auto-deploy. An admin changes them; a viewer
//! reads them and the latest deliveries (never the secret).

use slipway_proto::{control::v1::*, identity::Role, validate};
use tonic::{Request, Response};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, triggers};

/// `slipway.control.v1.TriggerService`.
pub struct Triggers(pub Context);

#[tonic::async_trait]
impl trigger_service_server::TriggerService for Triggers {
    async fn rotate_webhook_secret(
        &self,
        request: Request<RotateWebhookSecretRequest>,
    ) -> Reply<RotateWebhookSecretResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let (triggers, secret) = triggers::rotate_secret(&ctx.store, &req.app).await?;
            let message = "a new webhook secret is in force".to_owned();
            let triggers = Some(triggers);
            Ok((RotateWebhookSecretResponse { triggers, secret }, message))
        })
        .await
    }

    async fn disable_webhook(
        &self,
        request: Request<DisableWebhookRequest>,
    ) -> Reply<DisableWebhookResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let triggers = Some(triggers::disable(&ctx.store, &req.app).await?);
            let message = "webhook disabled".to_owned();
            Ok((DisableWebhookResponse { triggers }, message))
        })
        .await
    }

    async fn set_auto_deploy(
        &self,
        request: Request<SetAutoDeployRequest>,
    ) -> Reply<SetAutoDeployResponse> {
        audited(&self.0, request, |ctx, _, Checked(req)| async move {
            let (app, env, branch) = (&req.app, &req.environment, &req.branch);
            let triggers = Some(triggers::set_auto_deploy(&ctx.store, app, env, branch).await?);
            let message = match branch.as_str() {
                "" => format!("{env} no longer auto-deploys"),
                branch => format!("{env} auto-deploys branch {branch}"),
            };
            Ok((SetAutoDeployResponse { triggers }, message))
        })
        .await
    }

    async fn get_triggers(
        &self,
        request: Request<GetTriggersRequest>,
    ) -> Reply<GetTriggersResponse> {
        require(&request, Role::Viewer)?;
        validate::name("app", &request.get_ref().app)?;
        let (triggers, deliveries) = triggers::get(&self.0.store, &request.get_ref().app)?;
        Ok(Response::new(GetTriggersResponse {
            triggers: Some(triggers),
            deliveries,
        }))
    }
}
