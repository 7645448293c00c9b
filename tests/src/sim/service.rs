//! The `slipway.agent.v1.AgentService` of a simulated fleet: each call goes
//! to the agent whose port it came to, is checked as a real agent checks it
//! (only the control plane, not revoked; valid fields; fencing), waits the
//! configured latency, then is answered by the agent's in-memory host.

use std::{collections::HashMap, sync::Arc};

use futures_util::{StreamExt, future::BoxFuture};
use slipway_control_plane::agents::{ProgressStream, UploadStream};
use slipway_proto::{
    agent::v1::{ProgressEvent, UploadObjectsRequest, agent_service_server::AgentService, *},
    identity::Identity,
    revocation::RevocationList,
    validate,
};
use tonic::{Request, Response, Status, Streaming};

use super::{
    fields::FencedRequest,
    node::{Node, agent_status, app_name},
    stages::{self, ACTIVATE, PREPARE, Step},
    upload,
};

/// Files a prepare may list.
const MAX_FILES: usize = 1_000_000;

/// What an operation asks of the agent's in-memory host.
type Run<R> = fn(Arc<Node>, R) -> BoxFuture<'static, Result<ProgressStream, Status>>;

/// A stream of responses as tonic wants it.
type Responses<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

/// Routes calls to the agents by local port.
pub(super) struct SimService {
    nodes: HashMap<u16, Arc<Node>>,
}

impl SimService {
    pub(super) fn new(nodes: HashMap<u16, Arc<Node>>) -> Self {
        Self { nodes }
    }

    /// The agent a call came to, once the caller passed a real agent's
    /// checks, after the configured latency.
    async fn node<T>(&self, request: &Request<T>) -> Result<Arc<Node>, Status> {
        let node = request
            .local_addr()
            .and_then(|addr| self.nodes.get(&addr.port()))
            .ok_or_else(|| Status::internal("no simulated agent serves this port"))?;
        slipway_agent::authorize(Identity::from_request(request))?;
        let leaf = request.peer_certs().and_then(|c| c.first().cloned());
        if let Some(why) = leaf.and_then(|der| node.revocations.check(&der)) {
            return Err(Status::unauthenticated(why));
        }
        node.delay().await;
        Ok(node.clone())
    }

    /// An operation (prepare, activate, rollback, ...): checked and fenced
    /// like a real agent's, run by `run`, its token recorded once it went
    /// ahead, its events streamed through `steps`.
    async fn operation<R, T>(
        &self,
        request: Request<R>,
        steps: &'static [Step],
        run: Run<R>,
        wrap: fn(ProgressEvent) -> T,
    ) -> Result<Response<Responses<T>>, Status>
    where
        R: FencedRequest + Send + 'static,
        T: Send + 'static,
    {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        let fenced = node.check(&request, false)?;
        let stream = run(node.clone(), request).await?;
        node.record(&fenced)?;
        let events = stages::staged(stream, steps);
        Ok(Response::new(Box::pin(
            events.map(move |item| item.map(wrap)),
        )))
    }
}

#[tonic::async_trait]
impl AgentService for SimService {
    type DeployStream = Responses<DeployResponse>;
    type RollbackStream = Responses<RollbackResponse>;
    type PrepareReleaseStream = Responses<PrepareReleaseResponse>;
    type ActivateReleaseStream = Responses<ActivateReleaseResponse>;
    type RepairReleaseStream = Responses<RepairReleaseResponse>;
    type ApplySecretsStream = Responses<ApplySecretsResponse>;

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        for app in &request.apps {
            app_name(Some(app))?;
        }
        Ok(Response::new(node.client.get_status(request).await?))
    }

    async fn get_health(
        &self,
        request: Request<GetHealthRequest>,
    ) -> Result<Response<GetHealthResponse>, Status> {
        let node = self.node(&request).await?;
        Ok(Response::new(node.client.get_health().await?))
    }

    async fn missing_objects(
        &self,
        request: Request<MissingObjectsRequest>,
    ) -> Result<Response<MissingObjectsResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        app_name(request.app.as_ref())?;
        for (i, sha) in request.sha256.iter().enumerate() {
            validate::sha256(&format!("sha256[{i}]"), sha).map_err(agent_status)?;
        }
        Ok(Response::new(node.client.missing_objects(request).await?))
    }

    async fn upload_objects(
        &self,
        request: Request<Streaming<UploadObjectsRequest>>,
    ) -> Result<Response<UploadObjectsResponse>, Status> {
        let node = self.node(&request).await?;
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            agent_status(validate::InvalidField::new(
                "app",
                "is required: the stream was empty",
            ))
        })?;
        let fenced = node.check(&first, false)?;
        node.record(&fenced)?;
        let received = upload::receive(first, stream).await?;
        let objects = received
            .objects
            .into_iter()
            .map(|sha256| UploadObjectsRequest {
                sha256,
                ..Default::default()
            });
        let chunks: UploadStream =
            Box::pin(futures_util::stream::iter(objects.collect::<Vec<_>>()));
        let stored = node.client.upload_objects(chunks).await?;
        Ok(Response::new(UploadObjectsResponse {
            objects: stored.objects,
            bytes: received.bytes,
        }))
    }

    async fn deploy(
        &self,
        _request: Request<DeployRequest>,
    ) -> Result<Response<Self::DeployStream>, Status> {
        Err(Status::unimplemented(
            "a simulated agent takes PrepareRelease and ActivateRelease (contract 2 and later)",
        ))
    }

    async fn prepare_release(
        &self,
        request: Request<PrepareReleaseRequest>,
    ) -> Result<Response<Self::PrepareReleaseStream>, Status> {
        let run: Run<_> = |node, request| {
            Box::pin(async move {
                files(&request)?;
                node.maybe_fail();
                node.client.prepare(request).await
            })
        };
        self.operation(request, PREPARE, run, |event| PrepareReleaseResponse {
            event: Some(event),
        })
        .await
    }

    async fn repair_release(
        &self,
        request: Request<RepairReleaseRequest>,
    ) -> Result<Response<Self::RepairReleaseStream>, Status> {
        if request.get_ref().release.is_none() {
            let missing = validate::InvalidField::new("release", "is required");
            return Err(agent_status(missing));
        }
        let run: Run<_> =
            |node, request| Box::pin(async move { node.client.repair_release(request).await });
        self.operation(request, PREPARE, run, |event| RepairReleaseResponse {
            event: Some(event),
        })
        .await
    }

    async fn activate_release(
        &self,
        request: Request<ActivateReleaseRequest>,
    ) -> Result<Response<Self::ActivateReleaseStream>, Status> {
        let run: Run<_> =
            |node, request| Box::pin(async move { node.client.activate(request).await });
        self.operation(request, ACTIVATE, run, |event| ActivateReleaseResponse {
            event: Some(event),
        })
        .await
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let run: Run<_> =
            |node, request| Box::pin(async move { node.client.roll_back(request).await });
        self.operation(request, ACTIVATE, run, |event| RollbackResponse {
            event: Some(event),
        })
        .await
    }

    async fn apply_secrets(
        &self,
        request: Request<ApplySecretsRequest>,
    ) -> Result<Response<Self::ApplySecretsStream>, Status> {
        let run: Run<_> =
            |node, request| Box::pin(async move { node.client.apply_secrets(request).await });
        self.operation(request, ACTIVATE, run, |event| ApplySecretsResponse {
            event: Some(event),
        })
        .await
    }

    async fn pin_release(
        &self,
        request: Request<PinReleaseRequest>,
    ) -> Result<Response<PinReleaseResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        validate::release_id("release_id", &request.release_id).map_err(agent_status)?;
        let fenced = node.check(&request, true)?;
        let answer = node.client.pin_release(request).await?;
        node.record(&fenced)?;
        Ok(Response::new(answer))
    }

    async fn cancel_operation(
        &self,
        request: Request<CancelOperationRequest>,
    ) -> Result<Response<CancelOperationResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        validate::release_id("deployment_id", &request.deployment_id).map_err(agent_status)?;
        node.check(&request, false)?;
        Ok(Response::new(node.client.cancel_operation(request).await?))
    }

    async fn set_revocations(
        &self,
        request: Request<SetRevocationsRequest>,
    ) -> Result<Response<SetRevocationsResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        let list = RevocationList::from_wire(request.revision, &request.revoked);
        node.revocations.set(list);
        Ok(Response::new(SetRevocationsResponse {
            revision: request.revision,
        }))
    }

    async fn prepare_certificate(
        &self,
        _request: Request<PrepareCertificateRequest>,
    ) -> Result<Response<PrepareCertificateResponse>, Status> {
        Err(Status::failed_precondition(
            "a simulated agent keeps its certificate for its life",
        ))
    }

    async fn install_certificate(
        &self,
        _request: Request<InstallCertificateRequest>,
    ) -> Result<Response<InstallCertificateResponse>, Status> {
        Err(Status::failed_precondition(
            "a simulated agent keeps its certificate for its life",
        ))
    }

    async fn reset_fencing(
        &self,
        request: Request<ResetFencingRequest>,
    ) -> Result<Response<ResetFencingResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        let app = app_name(request.app.as_ref())?;
        node.client.reset_fencing(request).await?;
        let (previous_token, previous_epoch) = node.reset(&app);
        Ok(Response::new(ResetFencingResponse {
            previous_token,
            previous_epoch,
        }))
    }

    async fn check_drift(
        &self,
        request: Request<CheckDriftRequest>,
    ) -> Result<Response<CheckDriftResponse>, Status> {
        let node = self.node(&request).await?;
        let request = request.into_inner();
        let fenced = node.check(&request, !request.discard_corrupt_objects)?;
        let answer = node.client.check_drift(request).await?;
        node.record(&fenced)?;
        Ok(Response::new(answer))
    }

    async fn upload_agent_binary(
        &self,
        _request: Request<Streaming<UploadAgentBinaryRequest>>,
    ) -> Result<Response<UploadAgentBinaryResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent cannot be upgraded",
        ))
    }

    async fn upgrade_agent(
        &self,
        _request: Request<UpgradeAgentRequest>,
    ) -> Result<Response<UpgradeAgentResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent cannot be upgraded",
        ))
    }
}

/// The files of a prepare: at most as many as a real agent takes.
fn files(request: &PrepareReleaseRequest) -> Result<(), Status> {
    validate::count("files", request.files.len(), MAX_FILES).map_err(agent_status)
}
