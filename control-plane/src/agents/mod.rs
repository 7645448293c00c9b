//! Reaching agents. The calls the control plane makes of an agent are one
//! small trait, [`AgentApi`]; [`Dial`] makes a connection: over mutual TLS
//! to a real agent ([`tls`]), or to an in-memory one ([`simulated`]) for the
//! engine's unit tests and large-fleet benchmarks. [`Agents`] dials with
//! capped, jittered backoff.

pub mod simulated;
mod tls;

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
};

use slipway_proto::{
    agent::v1::{
        ActivateReleaseRequest, ApplySecretsRequest, CancelOperationRequest,
        CancelOperationResponse, CheckDriftRequest, CheckDriftResponse, GetHealthResponse,
        GetStatusRequest, GetStatusResponse, MissingObjectsRequest, MissingObjectsResponse,
        PinReleaseRequest, PinReleaseResponse, PrepareReleaseRequest, ProgressEvent,
        RepairReleaseRequest, ResetFencingRequest, ResetFencingResponse, RollbackRequest,
        UpgradeAgentRequest, UpgradeAgentResponse, UploadAgentBinaryRequest,
        UploadAgentBinaryResponse, UploadObjectsRequest, UploadObjectsResponse,
    },
    control::v1::Host,
    revocation::Revocations,
    tls::{CertSummary, TlsMaterial},
};
use tokio_stream::Stream;
use tonic::Status;

/// Attempts per call before a transient failure is final.
pub const ATTEMPTS: u32 = 3;

/// An agent operation's progress, ending with the event that carries its
/// result.
pub type ProgressStream = Pin<Box<dyn Stream<Item = Result<ProgressEvent, Status>> + Send>>;

/// Contents sent to an agent, chunk by chunk.
pub type UploadStream = Pin<Box<dyn Stream<Item = UploadObjectsRequest> + Send + Sync>>;

/// What the control plane asks of an agent.
#[tonic::async_trait]
pub trait AgentApi: Send + Sync {
    /// The host's facts and each app's releases.
    async fn get_status(&self, request: GetStatusRequest) -> Result<GetStatusResponse, Status>;
    /// The host's facts and each app's latest health probe.
    async fn get_health(&self) -> Result<GetHealthResponse, Status>;
    /// Which contents the host lacks.
    async fn missing_objects(
        &self,
        request: MissingObjectsRequest,
    ) -> Result<MissingObjectsResponse, Status>;
    /// Stores contents, verified by hash.
    async fn upload_objects(&self, chunks: UploadStream) -> Result<UploadObjectsResponse, Status>;
    /// Phase one: the release materialised and prepared, not switched.
    async fn prepare(&self, request: PrepareReleaseRequest) -> Result<ProgressStream, Status>;
    /// Phase two: `current` switched to the release this deployment prepared.
    async fn activate(&self, request: ActivateReleaseRequest) -> Result<ProgressStream, Status>;
    /// A rollback: `current` switched to an earlier release on disk.
    async fn roll_back(&self, request: RollbackRequest) -> Result<ProgressStream, Status>;
    /// The current release's secrets written again and its after-activate
    /// hooks run (contract 5).
    async fn apply_secrets(&self, request: ApplySecretsRequest) -> Result<ProgressStream, Status>;
    /// Stops a deployment's operation.
    async fn cancel_operation(
        &self,
        request: CancelOperationRequest,
    ) -> Result<CancelOperationResponse, Status>;
    /// Protects a release from retention, or stops protecting it.
    async fn pin_release(&self, request: PinReleaseRequest) -> Result<PinReleaseResponse, Status>;
    /// Forgets an app's fencing token and epoch on the host.
    async fn reset_fencing(
        &self,
        request: ResetFencingRequest,
    ) -> Result<ResetFencingResponse, Status>;
    /// Has the agent make a new key and return a request for its
    /// certificate.
    async fn prepare_certificate(&self) -> Result<String, Status>;
    /// Installs the certificate signed for that key; returns its serial.
    async fn install_certificate(&self, certificate_pem: String) -> Result<String, Status>;
    /// How a release on disk compares with its manifest; with a fencing
    /// token, also discards the stored contents a hand edit reached.
    async fn check_drift(&self, request: CheckDriftRequest) -> Result<CheckDriftResponse, Status>;
    /// Phase one of a drift repair: the release built afresh and swapped
    /// in for the copy on disk, not switched to.
    async fn repair_release(&self, request: RepairReleaseRequest)
    -> Result<ProgressStream, Status>;
    /// Stores an agent binary on the host (contract 5); the first chunk
    /// carries hash and size. An agent that holds it answers at once.
    async fn upload_agent_binary(
        &self,
        _chunks: tokio::sync::mpsc::Receiver<UploadAgentBinaryRequest>,
    ) -> Result<UploadAgentBinaryResponse, Status> {
        Err(Status::unimplemented("this agent cannot be upgraded"))
    }
    /// Has the agent replace itself with a stored binary (contract 5).
    async fn upgrade_agent(
        &self,
        _request: UpgradeAgentRequest,
    ) -> Result<UpgradeAgentResponse, Status> {
        Err(Status::unimplemented("this agent cannot be upgraded"))
    }
}

/// A connected agent.
pub type AgentClient = Arc<dyn AgentApi>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DialError {
    /// For a person.
    pub message: String,
    /// The agent answered and TLS refused the connection (a certificate of
    /// another host, an unknown CA, an expired certificate): trying again
    /// cannot help.
    pub refused: bool,
}

impl DialError {
    /// A failure worth another try: the network or the agent not there.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            refused: false,
        }
    }
}

/// Makes connections to agents.
#[tonic::async_trait]
pub trait Dial: Send + Sync {
    /// Connects to the host's agent once.
    async fn dial(&self, host: &Host) -> Result<AgentClient, DialError>;
}

/// Dials agents, over mutual TLS or to simulated ones, and keeps one
/// connection per host for every deployment that reaches it (HTTP/2
/// multiplexes their calls), until a failure makes a caller forget it.
#[derive(Clone)]
pub struct Agents {
    dial: Arc<dyn Dial>,
    /// Host name -> (address, connection).
    kept: Arc<Mutex<HashMap<String, (String, AgentClient)>>>,
    /// Host name -> the certificate its agent served at the last handshake.
    certificates: Certificates,
    /// Host name -> whether the last dial of its agent succeeded.
    contacts: Contacts,
}

/// One value per host name, shared by clones.
#[derive(Clone, Debug)]
pub struct PerHost<T>(Arc<Mutex<HashMap<String, T>>>);

impl<T> Default for PerHost<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> PerHost<T> {
    fn map(&self) -> MutexGuard<'_, HashMap<String, T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `value` for `host`.
    pub fn set(&self, host: &str, value: T) {
        self.map().insert(host.to_owned(), value);
    }

    /// The value of `host`, if one was recorded.
    pub fn get(&self, host: &str) -> Option<T> {
        self.map().get(host).cloned()
    }

    /// Forgets every host for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.map().retain(|host, _| keep(host));
    }
}

/// The certificate each agent served at its last handshake.
pub type Certificates = PerHost<CertSummary>;

/// Whether each agent answered the last time it was dialed (a connection
/// made, or a status asked): what `slipway_agent_up` reports.
pub type Contacts = PerHost<bool>;

impl Agents {
    /// Real agents, dialed with this client identity. The agent's
    /// certificate must carry `spiffe://slipway/agent/<host>` for the host
    /// dialed, and not be revoked, so a certificate of another host is
    /// refused. Every fenced request carries `epoch`, the store's identity.
    pub fn new(tls: TlsMaterial, revocations: Revocations, epoch: String) -> Self {
        let certificates = Certificates::default();
        let dial = tls::TlsDial::new(tls, revocations, epoch, certificates.clone());
        Self {
            certificates,
            ..Self::with(Arc::new(dial))
        }
    }

    /// The certificate `host`'s agent served at its last handshake.
    pub fn certificate(&self, host: &str) -> Option<CertSummary> {
        self.certificates.get(host)
    }

    /// Whether each agent answered when it was last dialed.
    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }

    /// Agents reached through `dial`.
    pub fn with(dial: Arc<dyn Dial>) -> Self {
        Self {
            dial,
            kept: Arc::default(),
            certificates: Certificates::default(),
            contacts: Contacts::default(),
        }
    }

    fn kept(&self) -> MutexGuard<'_, HashMap<String, (String, AgentClient)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every kept connection: after a certificate reload or a
    /// revocation, every later call dials with what is in force.
    pub fn forget_all(&self) {
        self.kept().clear();
    }

    /// Drops the connection kept for `host`: the next call dials afresh.
    pub fn forget(&self, host: &Host) {
        self.kept().remove(&host.name);
    }

    /// The connection kept for `host`, or a new one (kept for later).
    async fn dial(&self, host: &Host) -> Result<AgentClient, DialError> {
        if let Some((address, client)) = self.kept().get(&host.name)
            && *address == host.address
        {
            return Ok(client.clone());
        }
        let dialed = self.dial.dial(host).await;
        self.contacts.set(&host.name, dialed.is_ok());
        let client = dialed?;
        self.kept()
            .insert(host.name.clone(), (host.address.clone(), client.clone()));
        Ok(client)
    }

    /// Connects to the host's agent, retrying transient failures.
    pub async fn connect(&self, host: &Host) -> Result<AgentClient, DialError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.dial(host).await {
                Ok(client) => return Ok(client),
                Err(err) if attempt < ATTEMPTS && !err.refused => {
                    tracing::debug!(host = %host.name, error = %err, attempt, "agent connect failed; retrying");
                    tokio::time::sleep(crate::policy::backoff(attempt + 1)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Dials `host` once: the rollout retries whole steps itself.
    pub async fn connect_once(&self, host: &Host) -> Result<AgentClient, DialError> {
        self.dial(host).await
    }
}
