//! The gRPC handlers: validate and convert each request, call the agent,
//! turn its errors into statuses. No filesystem work happens here.

use std::sync::Arc;

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{
        ActivateReleaseRequest, ActivateReleaseResponse, AppTarget, ApplySecretsRequest,
        ApplySecretsResponse, CancelOperationRequest, CancelOperationResponse, CheckDriftRequest,
        CheckDriftResponse, DeployRequest, DeployResponse, GetHealthRequest, GetHealthResponse,
        GetStatusRequest, GetStatusResponse, InstallCertificateRequest, InstallCertificateResponse,
        MissingObjectsRequest, MissingObjectsResponse, PinReleaseRequest, PinReleaseResponse,
        PrepareCertificateRequest, PrepareCertificateResponse, PrepareReleaseRequest,
        PrepareReleaseResponse, RepairReleaseRequest, RepairReleaseResponse, ResetFencingRequest,
        ResetFencingResponse, RollbackRequest, RollbackResponse, SetRevocationsRequest,
        SetRevocationsResponse, UpgradeAgentRequest, UpgradeAgentResponse,
        UploadAgentBinaryRequest, UploadAgentBinaryResponse, UploadObjectsRequest,
        UploadObjectsResponse, agent_service_server::AgentService,
    },
    validate::{self, InvalidField},
};
use tonic::{Request, Response, Status, Streaming};

use self::requests::{
    activation_switch, caller, certificate_status, chunk, environment, prepare_only_deploy,
    secrets_switch,
};
use crate::{
    activation::Activation,
    agent::Agent,
    cancel::DEFAULT_GRACE,
    deploy::{DeployPlan, RollbackPlan},
    error::Error,
    fencing::{self, Fence},
    layout::AppRoot,
    manifest::Manifest,
    release::DEFAULT_KEEP,
    trust::Trust,
    upload::Chunk,
};

mod requests;
mod upgrade;

/// Chunks of an upload waiting for its writer thread.
const UPLOAD_QUEUE: usize = 16;

/// A stream of responses as tonic wants it.
pub type ResponseStream<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

/// The AgentService implementation.
#[derive(Debug)]
pub struct AgentApi {
    agent: Arc<Agent>,
    trust: Option<Arc<Trust>>,
}

impl AgentApi {
    /// Serves `agent`.
    pub fn new(agent: Arc<Agent>) -> Self {
        Self { agent, trust: None }
    }

    fn trust(&self) -> Result<&Trust, Status> {
        self.trust
            .as_deref()
            .ok_or_else(|| Status::failed_precondition("this agent keeps no trust state"))
    }

    /// Keeps the revocation lists the control plane sends in `trust`.
    pub fn with_trust(mut self, trust: Arc<Trust>) -> Self {
        self.trust = Some(trust);
        self
    }

    fn resolve(&self, field: &str, app: Option<&AppTarget>) -> Result<AppRoot, Error> {
        let app = app.ok_or_else(|| InvalidField::new(field, "is required"))?;
        Ok(self
            .agent
            .roots()
            .resolve(field, &app.name, &app.deploy_root)?)
    }

    fn deploy_plan(&self, request: DeployRequest) -> Result<DeployPlan, Error> {
        // Same rule as the control plane uses when it makes the id.
        validate::release_id("deployment_id", &request.deployment_id)?;
        let app = self.resolve("app", request.app.as_ref())?;
        validate::release_id("release_id", &request.release_id)?;
        let files = if request.base_release.is_empty() {
            request.files
        } else {
            crate::manifests::merge_with_base(
                &app,
                &request.base_release,
                request.files,
                &request.removed_paths,
            )?
            .ok_or_else(|| Error::UnknownBase {
                release_id: request.base_release.clone(),
            })?
        };
        let manifest = Manifest::from_wire(files)?;
        let keep = match request.keep_releases {
            0 => DEFAULT_KEEP,
            n => n as usize,
        };
        let activation = Activation::with_secrets(request.spec, request.secrets)?;
        environment(&request.environment)?;
        // Last: a request that is wrong anyway is told about its fields.
        let fencing_token = fencing::required("fencing_token", request.fencing_token)?;
        let fencing_epoch = fencing::epoch("fencing_epoch", &request.fencing_epoch)?;
        // PrepareRelease arrives here as a prepare-only Deploy.
        #[allow(deprecated)]
        let prepare_only = request.prepare_only;
        Ok(DeployPlan {
            app,
            deployment_id: request.deployment_id,
            release_id: request.release_id,
            manifest,
            keep,
            activation,
            environment: request.environment,
            prepare_only,
            rebuild: false,
            fencing_token,
            fencing_epoch,
        })
    }

    fn rollback_plan(&self, request: RollbackRequest) -> Result<RollbackPlan, Error> {
        validate::release_id("deployment_id", &request.deployment_id)?;
        let app = self.resolve("app", request.app.as_ref())?;
        validate::release_id("release_id", &request.release_id)?;
        let activation = Activation::with_secrets(request.spec, request.secrets)?;
        environment(&request.environment)?;
        let fencing_token = fencing::required("fencing_token", request.fencing_token)?;
        let fencing_epoch = fencing::epoch("fencing_epoch", &request.fencing_epoch)?;
        Ok(RollbackPlan {
            app,
            deployment_id: request.deployment_id,
            release_id: request.release_id,
            activation,
            environment: request.environment,
            fencing_token,
            fencing_epoch,
            prepared_keep: None,
            secrets_only: false,
        })
    }

    async fn upload(
        &self,
        mut stream: Streaming<UploadObjectsRequest>,
    ) -> Result<UploadObjectsResponse, Error> {
        let first = stream
            .message()
            .await
            .map_err(Error::Client)?
            .ok_or_else(|| InvalidField::new("app", "is required: the stream was empty"))?;
        let app = self.resolve("app", first.app.as_ref())?;
        let fence = Fence {
            token: fencing::required("fencing_token", first.fencing_token)?,
            epoch: fencing::epoch("fencing_epoch", &first.fencing_epoch)?,
        };
        let mut upload = self.agent.upload(app, fence).await?;
        // Every file operation of the upload runs on one blocking thread;
        // the bounded channel is the backpressure on the stream.
        let (chunks, mut received) = tokio::sync::mpsc::channel::<Chunk>(UPLOAD_QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(next) = received.blocking_recv() {
                upload.push(next)?;
            }
            upload.finish()
        });
        let mut next = Some(first);
        while let Some(message) = next {
            if chunks.send(chunk(message)).await.is_err() {
                break; // The writer failed; its error is the answer.
            }
            next = match stream.message().await {
                Ok(next) => next,
                Err(status) => {
                    // Dropping the writer's queue abandons the upload.
                    drop(chunks);
                    let _ = writer.await;
                    return Err(Error::Client(status));
                }
            };
        }
        drop(chunks);
        let summary = writer.await??;
        (self.agent.metrics()).received(summary.objects, summary.bytes);
        Ok(UploadObjectsResponse {
            objects: summary.objects,
            bytes: summary.bytes,
        })
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type DeployStream = ResponseStream<DeployResponse>;
    type RollbackStream = ResponseStream<RollbackResponse>;
    type PrepareReleaseStream = ResponseStream<PrepareReleaseResponse>;
    type ActivateReleaseStream = ResponseStream<ActivateReleaseResponse>;
    type RepairReleaseStream = ResponseStream<RepairReleaseResponse>;
    type ApplySecretsStream = ResponseStream<ApplySecretsResponse>;

    async fn prepare_certificate(
        &self,
        request: Request<PrepareCertificateRequest>,
    ) -> Result<Response<PrepareCertificateResponse>, Status> {
        let caller = caller(&request);
        let trust = self.trust()?;
        let csr_pem = trust.prepare_certificate().map_err(certificate_status)?;
        tracing::info!(%caller, "made a new key for a certificate renewal");
        Ok(Response::new(PrepareCertificateResponse { csr_pem }))
    }

    async fn install_certificate(
        &self,
        request: Request<InstallCertificateRequest>,
    ) -> Result<Response<InstallCertificateResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        if request.certificate_pem.len() > 64 << 10 {
            return Err(Status::invalid_argument(
                "certificate_pem: longer than 64 KiB",
            ));
        }
        let trust = self.trust()?;
        let serial = trust
            .install_certificate(request.certificate_pem.as_bytes())
            .map_err(certificate_status)?;
        tracing::info!(%caller, serial, "installed a renewed certificate: new connections use it");
        Ok(Response::new(InstallCertificateResponse { serial }))
    }

    async fn set_revocations(
        &self,
        request: Request<SetRevocationsRequest>,
    ) -> Result<Response<SetRevocationsResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let trust = self
            .trust
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("this agent keeps no revocation list"))?;
        let revision = trust.set(&request).map_err(Error::from)?;
        tracing::info!(
            %caller,
            revision,
            entries = request.revoked.len(),
            "revocation list updated"
        );
        Ok(Response::new(SetRevocationsResponse { revision }))
    }

    async fn cancel_operation(
        &self,
        request: Request<CancelOperationRequest>,
    ) -> Result<Response<CancelOperationResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        validate::release_id("deployment_id", &request.deployment_id).map_err(Error::from)?;
        let fence = Fence {
            token: fencing::required("fencing_token", request.fencing_token)
                .map_err(Error::from)?,
            epoch: fencing::epoch("fencing_epoch", &request.fencing_epoch).map_err(Error::from)?,
        };
        let app = self.resolve("app", request.app.as_ref())?;
        let grace = match request.grace_seconds {
            0 => DEFAULT_GRACE,
            s => std::time::Duration::from_secs(s.into()),
        };
        tracing::info!(%caller, deployment = %request.deployment_id, app = app.name(), "cancel requested");
        let (cancelled, current) = self
            .agent
            .cancel(app, request.deployment_id, grace, fence)
            .await?;
        Ok(Response::new(CancelOperationResponse {
            cancelled,
            current_release: current.unwrap_or_default(),
        }))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let request = request.into_inner();
        let apps = request
            .apps
            .iter()
            .enumerate()
            .map(|(i, app)| self.resolve(&format!("apps[{i}]"), Some(app)))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes = !request.omit_sizes;
        Ok(Response::new(self.agent.status(apps, sizes).await?))
    }

    async fn get_health(
        &self,
        _request: Request<GetHealthRequest>,
    ) -> Result<Response<GetHealthResponse>, Status> {
        Ok(Response::new(self.agent.health().await?))
    }

    async fn missing_objects(
        &self,
        request: Request<MissingObjectsRequest>,
    ) -> Result<Response<MissingObjectsResponse>, Status> {
        let request = request.into_inner();
        let app = self.resolve("app", request.app.as_ref())?;
        for (i, sha) in request.sha256.iter().enumerate() {
            validate::sha256(&format!("sha256[{i}]"), sha).map_err(Error::from)?;
        }
        let sha256 = self.agent.missing_objects(app, request.sha256).await?;
        Ok(Response::new(MissingObjectsResponse { sha256 }))
    }

    async fn upload_objects(
        &self,
        request: Request<Streaming<UploadObjectsRequest>>,
    ) -> Result<Response<UploadObjectsResponse>, Status> {
        Ok(Response::new(self.upload(request.into_inner()).await?))
    }

    async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<Self::DeployStream>, Status> {
        let caller = caller(&request);
        let plan = self.deploy_plan(request.into_inner())?;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, files = plan.manifest.len(), "deploy requested");
        let events = self.agent.deploy(plan).await?;
        let stream = events.map(|event| Ok(DeployResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn pin_release(
        &self,
        request: Request<PinReleaseRequest>,
    ) -> Result<Response<PinReleaseResponse>, Status> {
        let caller = caller(&request);
        let request = request.into_inner();
        let app = self.resolve("app", request.app.as_ref())?;
        validate::release_id("release_id", &request.release_id).map_err(Error::from)?;
        let fence = Fence {
            token: request.fencing_token,
            epoch: fencing::epoch("fencing_epoch", &request.fencing_epoch).map_err(Error::from)?,
        };
        tracing::info!(%caller, app = app.name(), release = %request.release_id, pinned = request.pinned, "pin requested");
        let release = self
            .agent
            .pin(app, request.release_id, request.pinned, fence)
            .await?;
        Ok(Response::new(PinReleaseResponse {
            release: Some(release),
        }))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let caller = caller(&request);
        let plan = self.rollback_plan(request.into_inner())?;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, "rollback requested");
        let events = self.agent.rollback(plan).await?;
        let stream = events.map(|event| Ok(RollbackResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn prepare_release(
        &self,
        request: Request<PrepareReleaseRequest>,
    ) -> Result<Response<Self::PrepareReleaseStream>, Status> {
        let caller = caller(&request);
        let plan = self.deploy_plan(prepare_only_deploy(request.into_inner()))?;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, files = plan.manifest.len(), "prepare requested");
        let events = self.agent.deploy(plan).await?;
        let stream = events.map(|event| Ok(PrepareReleaseResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn reset_fencing(
        &self,
        request: Request<ResetFencingRequest>,
    ) -> Result<Response<ResetFencingResponse>, Status> {
        let caller = caller(&request);
        let app = self.resolve("app", request.into_inner().app.as_ref())?;
        tracing::warn!(%caller, app = app.name(), "fencing reset requested");
        let (previous_token, previous_epoch) = self.agent.reset_fencing(app).await?;
        Ok(Response::new(ResetFencingResponse {
            previous_token,
            previous_epoch,
        }))
    }

    async fn activate_release(
        &self,
        request: Request<ActivateReleaseRequest>,
    ) -> Result<Response<Self::ActivateReleaseStream>, Status> {
        let caller = caller(&request);
        let plan = self.rollback_plan(activation_switch(request.into_inner()))?;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, "activate requested");
        let events = self.agent.activate(plan).await?;
        let stream = events.map(|event| Ok(ActivateReleaseResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn check_drift(
        &self,
        request: Request<CheckDriftRequest>,
    ) -> Result<Response<CheckDriftResponse>, Status> {
        let caller = caller(&request);
        let question = self.drift_question(request.into_inner())?;
        if question.discard.is_some() {
            tracing::info!(%caller, app = question.app.name(), "drift check discarding corrupted objects requested");
        }
        Ok(Response::new(self.agent.check_drift(question).await?))
    }

    async fn repair_release(
        &self,
        request: Request<RepairReleaseRequest>,
    ) -> Result<Response<Self::RepairReleaseStream>, Status> {
        let caller = caller(&request);
        let release = request
            .into_inner()
            .release
            .ok_or_else(|| Error::from(InvalidField::new("release", "is required")))?;
        let mut plan = self.deploy_plan(prepare_only_deploy(release))?;
        plan.rebuild = true;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, files = plan.manifest.len(), "repair requested");
        let events = self.agent.deploy(plan).await?;
        let stream = events.map(|event| Ok(RepairReleaseResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn upload_agent_binary(
        &self,
        request: Request<Streaming<UploadAgentBinaryRequest>>,
    ) -> Result<Response<UploadAgentBinaryResponse>, Status> {
        let upgrades = self.agent.upgrades();
        let answer = upgrade::upload_binary(upgrades, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn upgrade_agent(
        &self,
        request: Request<UpgradeAgentRequest>,
    ) -> Result<Response<UpgradeAgentResponse>, Status> {
        let caller = caller(&request);
        let plan = upgrade::upgrade_plan(request.into_inner()).map_err(Error::from)?;
        tracing::warn!(%caller, version = %plan.expected_version, "agent upgrade requested");
        Ok(Response::new(self.agent.upgrade(plan).await?))
    }

    async fn apply_secrets(
        &self,
        request: Request<ApplySecretsRequest>,
    ) -> Result<Response<Self::ApplySecretsStream>, Status> {
        let caller = caller(&request);
        let plan = self.rollback_plan(secrets_switch(request.into_inner()))?;
        let secrets = &plan.activation.secrets;
        tracing::info!(%caller, deployment = %plan.deployment_id, app = plan.app.name(), release = %plan.release_id, ?secrets, "secrets requested");
        let events = self.agent.apply_secrets(plan).await?;
        let stream = events.map(|event| Ok(ApplySecretsResponse { event: Some(event) }));
        Ok(Response::new(Box::pin(stream)))
    }
}
