//! `slipway.control.v1.SecretService`: an environment's secrets. A deployer
//! sets and unsets them; a viewer lists names and versions. No answer,
//! audit entry or error ever holds a value.

use slipway_proto::{
    control::v1::*,
    identity::Role,
    limits, secrets,
    validate::{self, InvalidField},
};
use tonic::{Request, Response};

use super::{Audited, Checked, Reply, audited};
use crate::{Context, audit::app_env, auth::require};

/// `slipway.control.v1.SecretService`.
pub struct Secrets(pub Context);

fn names(app: &str, environment: &str, name: &str) -> Result<(), InvalidField> {
    validate::bounded("app", app, limits::NAME)?;
    validate::bounded("environment", environment, limits::NAME)?;
    secrets::name("name", name)
}

impl Audited for SetSecretRequest {
    const METHOD: &'static str = "SecretService/SetSecret";
    const ROLE: Role = Role::Deployer;
    type Domain = Checked<SetSecretRequest>;
    fn target(&self) -> String {
        let name = limits::cut(&self.name, limits::NAME);
        format!("{}, secret {name}", app_env(&self.app, &self.environment))
    }
}

impl TryFrom<SetSecretRequest> for Checked<SetSecretRequest> {
    type Error = InvalidField;
    fn try_from(r: SetSecretRequest) -> Result<Self, InvalidField> {
        names(&r.app, &r.environment, &r.name)?;
        secrets::value("value", &r.value)?;
        Ok(Checked(r))
    }
}

impl Audited for UnsetSecretRequest {
    const METHOD: &'static str = "SecretService/UnsetSecret";
    const ROLE: Role = Role::Deployer;
    type Domain = Checked<UnsetSecretRequest>;
    fn target(&self) -> String {
        let name = limits::cut(&self.name, limits::NAME);
        format!("{}, secret {name}", app_env(&self.app, &self.environment))
    }
}

impl TryFrom<UnsetSecretRequest> for Checked<UnsetSecretRequest> {
    type Error = InvalidField;
    fn try_from(r: UnsetSecretRequest) -> Result<Self, InvalidField> {
        names(&r.app, &r.environment, &r.name)?;
        Ok(Checked(r))
    }
}

#[tonic::async_trait]
impl secret_service_server::SecretService for Secrets {
    async fn set_secret(&self, request: Request<SetSecretRequest>) -> Reply<SetSecretResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let target = (req.app.as_str(), req.environment.as_str());
            let by = caller.principal();
            let set = crate::secrets::set(
                &ctx.store,
                &ctx.secret_keys,
                target,
                &req.name,
                &req.value,
                by,
            );
            let secret = set.await?;
            let message = format!("secret {} is at version {}", secret.name, secret.version);
            let secret = Some(secret);
            Ok((SetSecretResponse { secret }, message))
        })
        .await
    }

    async fn list_secrets(
        &self,
        request: Request<ListSecretsRequest>,
    ) -> Reply<ListSecretsResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        validate::bounded("app", &req.app, limits::NAME)?;
        validate::bounded("environment", &req.environment, limits::NAME)?;
        let secrets = crate::secrets::list(
            &self.0.store,
            &self.0.secret_keys,
            &req.app,
            &req.environment,
        )?;
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    async fn unset_secret(
        &self,
        request: Request<UnsetSecretRequest>,
    ) -> Reply<UnsetSecretResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            let target = (req.app.as_str(), req.environment.as_str());
            let unset = crate::secrets::unset(
                &ctx.store,
                &ctx.secret_keys,
                target,
                &req.name,
                caller.principal(),
            );
            let version = unset.await?;
            let message = format!("secret {} (version {version}) unset", req.name);
            Ok((UnsetSecretResponse { version }, message))
        })
        .await
    }
}
