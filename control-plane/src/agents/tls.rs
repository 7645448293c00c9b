//! Real agents over mutual TLS with the control plane's client identity.

use std::sync::Arc;

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{agent_service_client::AgentServiceClient, *},
    control::v1::Host,
    revocation::Revocations,
    tls::{self, Peer, TlsMaterial},
};
use tonic::{Status, transport::Channel};

use super::{AgentApi, AgentClient, Certificates, Dial, DialError, ProgressStream, UploadStream};

/// Dials agents with the control plane's client certificate.
pub(super) struct TlsDial {
    tls: TlsMaterial,
    revocations: Revocations,
    epoch: Arc<str>,
    certificates: Certificates,
}

impl TlsDial {
    pub(super) fn new(
        tls: TlsMaterial,
        revocations: Revocations,
        epoch: String,
        certificates: Certificates,
    ) -> Self {
        Self {
            tls,
            revocations,
            epoch: epoch.into(),
            certificates,
        }
    }
}

#[tonic::async_trait]
impl Dial for TlsDial {
    async fn dial(&self, host: &Host) -> Result<AgentClient, DialError> {
        let peer = Peer::Agent(host.name.clone());
        let channel = async {
            let (certificates, name) = (self.certificates.clone(), host.name.clone());
            tls::endpoint(&host.address, peer, &self.tls)?
                .revocations(&self.revocations)
                .on_peer_certificate(Arc::new(move |der| {
                    if let Some(summary) = tls::summary(der) {
                        certificates.set(&name, summary);
                    }
                }))
                .connect()
                .await
        }
        .await
        .map_err(|err| DialError {
            message: slipway_proto::daemon::chain(&err),
            refused: tls_refused(&err),
        })?;
        let mut client = AgentServiceClient::new(channel)
            .max_decoding_message_size(slipway_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(slipway_proto::MAX_MESSAGE_BYTES);
        send_revocations(&mut client, host, &self.revocations).await?;
        Ok(Arc::new(TlsAgent(client, self.epoch.clone())))
    }
}

/// Sends the revocation list first on every new connection, so an agent
/// that was unreachable when a certificate was revoked learns of it before
/// it is asked anything else. An agent too old for the call is told
/// nothing (and warned about).
async fn send_revocations(
    client: &mut AgentServiceClient<Channel>,
    host: &Host,
    revocations: &Revocations,
) -> Result<(), DialError> {
    let list = revocations.get();
    if list.revision == 0 {
        return Ok(());
    }
    match client.set_revocations(crate::trust::wire(&list)).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::warn!(host = %host.name, "the agent predates revocation lists; upgrade it");
            Ok(())
        }
        Err(status) => Err(DialError {
            message: format!("cannot send the revocation list: {}", status.message()),
            refused: matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ),
        }),
    }
}

/// Whether TLS itself refused the connection: a rustls error anywhere in
/// the chain (tokio-rustls carries it inside an I/O error).
fn tls_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if err.downcast_ref::<rustls::Error>().is_some()
            || inner.is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// One agent's gRPC client (clones share the connection) and the store
/// identity every fenced request carries as its `fencing_epoch`: set here,
/// in the one place every request to a real agent passes.
struct TlsAgent(AgentServiceClient<Channel>, Arc<str>);

impl TlsAgent {
    /// The epoch for a request with `token` (none for an unfenced one).
    fn epoch(&self, token: u64) -> String {
        if token == 0 {
            String::new()
        } else {
            self.1.to_string()
        }
    }
}

/// The events of a response stream, without empty messages.
fn progress<T: Send + 'static>(
    stream: tonic::Streaming<T>,
    event: fn(T) -> Option<ProgressEvent>,
) -> ProgressStream {
    Box::pin(stream.filter_map(move |item| async move { item.map(event).transpose() }))
}

#[tonic::async_trait]
impl AgentApi for TlsAgent {
    async fn get_status(&self, request: GetStatusRequest) -> Result<GetStatusResponse, Status> {
        Ok(self.0.clone().get_status(request).await?.into_inner())
    }

    async fn get_health(&self) -> Result<GetHealthResponse, Status> {
        Ok(self
            .0
            .clone()
            .get_health(GetHealthRequest {})
            .await?
            .into_inner())
    }

    async fn missing_objects(
        &self,
        request: MissingObjectsRequest,
    ) -> Result<MissingObjectsResponse, Status> {
        Ok(self.0.clone().missing_objects(request).await?.into_inner())
    }

    async fn upload_objects(&self, chunks: UploadStream) -> Result<UploadObjectsResponse, Status> {
        // Handed over through a channel: the client's generic streaming
        // call given the boxed stream itself trips the compiler's
        // higher-ranked lifetime check inside the trait's boxed future.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let epoch = self.1.clone();
        let forward = async move {
            let mut chunks = chunks;
            while let Some(mut chunk) = chunks.next().await {
                if chunk.fencing_token != 0 {
                    chunk.fencing_epoch = epoch.to_string();
                }
                if tx.send(chunk).await.is_err() {
                    break; // The call ended; it reports why.
                }
            }
        };
        let mut client = self.0.clone();
        let call = client.upload_objects(tokio_stream::wrappers::ReceiverStream::new(rx));
        let (answer, ()) = tokio::join!(call, forward);
        Ok(answer?.into_inner())
    }

    async fn upload_agent_binary(
        &self,
        chunks: tokio::sync::mpsc::Receiver<UploadAgentBinaryRequest>,
    ) -> Result<UploadAgentBinaryResponse, Status> {
        let stream = tokio_stream::wrappers::ReceiverStream::new(chunks);
        Ok(self
            .0
            .clone()
            .upload_agent_binary(stream)
            .await?
            .into_inner())
    }

    async fn upgrade_agent(
        &self,
        request: UpgradeAgentRequest,
    ) -> Result<UpgradeAgentResponse, Status> {
        Ok(self.0.clone().upgrade_agent(request).await?.into_inner())
    }

    async fn prepare(&self, mut request: PrepareReleaseRequest) -> Result<ProgressStream, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        let stream = self.0.clone().prepare_release(request).await?.into_inner();
        Ok(progress(stream, |r: PrepareReleaseResponse| r.event))
    }

    async fn activate(
        &self,
        mut request: ActivateReleaseRequest,
    ) -> Result<ProgressStream, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        let stream = self.0.clone().activate_release(request).await?.into_inner();
        Ok(progress(stream, |r: ActivateReleaseResponse| r.event))
    }

    async fn roll_back(&self, mut request: RollbackRequest) -> Result<ProgressStream, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        let stream = self.0.clone().rollback(request).await?.into_inner();
        Ok(progress(stream, |r: RollbackResponse| r.event))
    }

    async fn apply_secrets(
        &self,
        mut request: ApplySecretsRequest,
    ) -> Result<ProgressStream, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        let stream = self.0.clone().apply_secrets(request).await?.into_inner();
        Ok(progress(stream, |r: ApplySecretsResponse| r.event))
    }

    async fn cancel_operation(
        &self,
        mut request: CancelOperationRequest,
    ) -> Result<CancelOperationResponse, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        Ok(self.0.clone().cancel_operation(request).await?.into_inner())
    }

    async fn pin_release(
        &self,
        mut request: PinReleaseRequest,
    ) -> Result<PinReleaseResponse, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        Ok(self.0.clone().pin_release(request).await?.into_inner())
    }

    async fn reset_fencing(
        &self,
        request: ResetFencingRequest,
    ) -> Result<ResetFencingResponse, Status> {
        Ok(self.0.clone().reset_fencing(request).await?.into_inner())
    }

    async fn prepare_certificate(&self) -> Result<String, Status> {
        let request = PrepareCertificateRequest {};
        Ok(self
            .0
            .clone()
            .prepare_certificate(request)
            .await?
            .into_inner()
            .csr_pem)
    }

    async fn install_certificate(&self, certificate_pem: String) -> Result<String, Status> {
        let request = InstallCertificateRequest { certificate_pem };
        Ok(self
            .0
            .clone()
            .install_certificate(request)
            .await?
            .into_inner()
            .serial)
    }

    async fn check_drift(
        &self,
        mut request: CheckDriftRequest,
    ) -> Result<CheckDriftResponse, Status> {
        request.fencing_epoch = self.epoch(request.fencing_token);
        Ok(self.0.clone().check_drift(request).await?.into_inner())
    }

    async fn repair_release(
        &self,
        mut request: RepairReleaseRequest,
    ) -> Result<ProgressStream, Status> {
        if let Some(release) = request.release.as_mut() {
            release.fencing_epoch = self.epoch(release.fencing_token);
        }
        let stream = self.0.clone().repair_release(request).await?.into_inner();
        Ok(progress(stream, |r: RepairReleaseResponse| r.event))
    }
}
