//! One host's part of one phase: its session with its agent (a connection
//! kept from preparation to switch, redialled after a failure), the step
//! deadline on every call, retries of transient failures with capped,
//! jittered backoff, and the host's status events.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use slipway_proto::{
    agent::v1::{
        ActivateReleaseRequest, AppTarget, ApplySecretsRequest, CancelOperationRequest,
        GetStatusRequest, ReleaseState, RollbackRequest,
    },
    control::v1::{DeploymentEvent, DeploymentKind, DeploymentStatus, Host, LogLevel},
};
use tokio::sync::mpsc;

pub(super) use super::failure::Failure;
use super::{Plan, Update};
use crate::{
    agents::{AgentClient, Agents},
    blobs::BlobCache,
    domain::event::{host_log, host_status},
    policy,
    running::Control,
};

/// Share of a host's progress bar given to preparation.
pub(super) const PREPARE_SHARE: u32 = 50;

/// How long an agent may take to confirm a cancel.
const CANCEL_ANSWER: Duration = Duration::from_secs(30);

/// Grace between SIGTERM and SIGKILL when a cancel names none.
const DEFAULT_GRACE_SECONDS: u32 = 10;

/// The two phases of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Contents sent, release materialised, before-activate hooks run.
    Prepare,
    /// `current` switched, after-activate hooks and health check run.
    Activate,
}

impl Phase {
    /// The stage name of the phase's events.
    pub(super) fn stage(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Activate => "switch",
        }
    }
}

/// What every host task of one rollout shares.
pub(super) struct Shared {
    pub(super) agents: Agents,
    pub(super) plan: Arc<Plan>,
    pub(super) control: Arc<Control>,
    pub(super) tx: mpsc::Sender<Update>,
    pub(super) blobs: Arc<BlobCache>,
}

/// How one host's phase ended. Messages are for a person.
#[derive(Debug)]
pub(super) enum HostResult {
    /// Done: prepared, or switched.
    Done,
    /// Not done.
    Failed(String),
    /// The connection died during the switch and the agent did not answer
    /// again in time: whether it switched is not known.
    Unknown(String),
}

/// Per operation run of the agent, the sequence of the last event relayed.
/// A run's events are numbered from 1; a retry that attaches to a run (or
/// a replay of a finished one) repeats them, and only the unseen ones are
/// relayed. A new run (the operation started again, after an agent
/// restart) is relayed in full.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) runs: HashMap<String, u64>,
}

/// What to do after a failed attempt.
enum Next {
    /// Try again.
    Again,
    /// Stop: the failure is final, or the run was cancelled.
    Stop(String),
    /// Transient failures used up the attempts.
    Exhausted(String),
}

/// One host's part of one phase.
pub(super) struct HostRun {
    pub(super) shared: Arc<Shared>,
    pub(super) host: Host,
    /// Set after a failed attempt: the next one dials a new connection.
    pub(super) redial: AtomicBool,
    batch: u32,
}

impl HostRun {
    pub(super) fn new(shared: Arc<Shared>, host: Host, batch: u32) -> Self {
        Self {
            shared,
            host,
            redial: AtomicBool::new(false),
            batch,
        }
    }

    pub(super) fn into_host(self) -> Host {
        self.host
    }

    pub(super) fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    pub(super) fn control(&self) -> &Control {
        &self.shared.control
    }

    pub(super) async fn emit(&self, mut event: DeploymentEvent) {
        event.batch = self.batch;
        let _ = self.shared.tx.send(Update::Event(event)).await;
    }

    pub(super) fn target(&self) -> AppTarget {
        AppTarget {
            name: self.plan().app.name.clone(),
            deploy_root: self.plan().app.deploy_root.clone(),
        }
    }

    pub(super) fn step_timeout(&self) -> Duration {
        self.plan().policy.step_timeout
    }

    /// Runs the phase with retries and reports the host's result as an event.
    pub(super) async fn phase(&self, phase: Phase) -> HostResult {
        let release = &self.plan().release.id;
        let (percent, message) = match phase {
            Phase::Prepare => (1, format!("preparing {release} via {}", self.host.address)),
            Phase::Activate => (PREPARE_SHARE + 1, format!("switching to {release}")),
        };
        self.emit(host_status(
            &self.host.name,
            DeploymentStatus::Running,
            phase.stage(),
            percent,
            LogLevel::Info,
            message,
        ))
        .await;
        let mut seen = Seen {
            runs: self
                .plan()
                .done
                .relayed
                .get(&self.host.name)
                .cloned()
                .unwrap_or_default(),
        };
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        let result = loop {
            let step = match phase {
                Phase::Prepare => self.prepare(&mut seen).await,
                Phase::Activate => self.activate(&mut seen).await,
            };
            let Err(failure) = step else {
                break HostResult::Done;
            };
            match self.retry(failure, &mut attempt, phase, started).await {
                Next::Again => {}
                Next::Stop(message) => break HostResult::Failed(message),
                // The switch may have happened: ask before saying anything.
                Next::Exhausted(message) if phase == Phase::Activate => {
                    break self.settle(message, &mut seen).await;
                }
                Next::Exhausted(message) => break HostResult::Failed(message),
            }
        };
        self.emit(self.result_event(phase, &result)).await;
        result
    }

    fn result_event(&self, phase: Phase, result: &HostResult) -> DeploymentEvent {
        let (host, release) = (&self.host.name, &self.plan().release.id);
        match (result, phase) {
            (HostResult::Unknown(message), _) => host_status(
                host,
                DeploymentStatus::Unknown,
                "unknown",
                0,
                LogLevel::Warn,
                message.clone(),
            ),
            (HostResult::Done, Phase::Prepare) => host_status(
                host,
                DeploymentStatus::Running,
                "prepared",
                PREPARE_SHARE,
                LogLevel::Info,
                format!("{release} is ready"),
            ),
            (HostResult::Done, Phase::Activate) => host_status(
                host,
                DeploymentStatus::Succeeded,
                "done",
                100,
                LogLevel::Info,
                format!("{release} is current"),
            ),
            (HostResult::Failed(message), _) if self.control().is_cancelled() => host_status(
                host,
                DeploymentStatus::Cancelled,
                "cancelled",
                0,
                LogLevel::Warn,
                message.clone(),
            ),
            (HostResult::Failed(message), _) => host_status(
                host,
                DeploymentStatus::Failed,
                "failed",
                0,
                LogLevel::Error,
                message.clone(),
            ),
        }
    }

    /// After a failed attempt: waits a capped, jittered backoff when the
    /// failure is transient and another attempt fits in the step's deadline
    /// (counted from `started`) and in the policy's attempts, if it sets any.
    async fn retry(
        &self,
        failure: Failure,
        attempt: &mut u32,
        phase: Phase,
        started: tokio::time::Instant,
    ) -> Next {
        let policy = &self.plan().policy;
        let (wait, hinted) = match &failure {
            Failure::Later(_, after) => (*after, true),
            _ => (policy::backoff(*attempt + 1), false),
        };
        let in_time = started.elapsed() + wait < policy.step_timeout;
        let allowed = hinted || policy.attempts.is_none_or(|attempts| *attempt < attempts);
        match failure {
            Failure::Transient(message) | Failure::Later(message, _)
                if in_time && allowed && !self.control().is_cancelled() =>
            {
                *attempt += 1;
                self.redial.store(true, Ordering::Relaxed);
                let of = match policy.attempts {
                    Some(attempts) => attempts.to_string(),
                    None => format!(
                        "as many as the step's {} s allow,",
                        policy.step_timeout.as_secs()
                    ),
                };
                self.emit(host_log(
                    &self.host.name,
                    phase.stage(),
                    LogLevel::Warn,
                    format!(
                        "{message}; attempt {attempt} of {of} in {} ms",
                        wait.as_millis()
                    ),
                ))
                .await;
                tokio::select! {
                    () = tokio::time::sleep(wait) => Next::Again,
                    () = self.control().token().cancelled() => Next::Stop("cancelled".into()),
                }
            }
            Failure::Transient(message) | Failure::Later(message, _)
                if !self.control().is_cancelled() =>
            {
                Next::Exhausted(message)
            }
            failure => Next::Stop(failure.message()),
        }
    }

    /// The host's connection: the one kept for it across deployments, or a
    /// new one after a failed attempt.
    pub(super) async fn connect(&self) -> Result<AgentClient, Failure> {
        let agents = &self.shared.agents;
        if self.redial.swap(false, Ordering::Relaxed) {
            agents.forget(&self.host);
        }
        let deadline = self.step_timeout();
        match tokio::time::timeout(deadline, agents.connect_once(&self.host)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(err)) if err.refused => Err(Failure::Final(err.message)),
            Ok(Err(err)) => Err(Failure::Transient(err.message)),
            Err(_) => Err(Failure::Transient(format!(
                "connecting to {} took longer than {} s",
                self.host.address,
                deadline.as_secs()
            ))),
        }
    }

    /// A unary agent call under the step deadline.
    pub(super) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, Failure> {
        let deadline = self.step_timeout();
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(Failure::from_status(&status)),
            Err(_) => Err(Failure::Transient(format!(
                "the agent did not answer {what} within {} s",
                deadline.as_secs()
            ))),
        }
    }

    /// Phase one: the release ready on the host, not switched.
    async fn prepare(&self, seen: &mut Seen) -> Result<(), Failure> {
        let client = self.connect().await?;
        self.require_contract(&client).await?;
        if self.plan().repair {
            return self.prepare_repair(&client, seen).await;
        }
        if self.plan().kind == DeploymentKind::Rollback {
            if self.has_release(&client).await? {
                return Ok(());
            }
            self.emit(host_log(
                &self.host.name,
                "transfer",
                LogLevel::Info,
                format!(
                    "{} is not on this host (pruned); shipping it again",
                    self.plan().release.id
                ),
            ))
            .await;
        }
        let stream = self.ship_with_fallback(&client).await?;
        self.follow(&client, stream, Phase::Prepare, seen).await
    }

    /// Whether the host has the release ready (or active) on disk.
    async fn has_release(&self, client: &AgentClient) -> Result<bool, Failure> {
        let request = GetStatusRequest {
            apps: vec![self.target()],
            omit_sizes: true,
        };
        let status = self.call("GetStatus", client.get_status(request)).await?;
        let release = &self.plan().release.id;
        let usable = [ReleaseState::Ready as i32, ReleaseState::Active as i32];
        Ok(status
            .apps
            .iter()
            .flat_map(|a| &a.releases)
            .any(|r| &r.id == release && usable.contains(&r.state)))
    }

    /// Phase two: `current` switched to the prepared release.
    pub(super) async fn activate(&self, seen: &mut Seen) -> Result<(), Failure> {
        let client = self.connect().await?;
        self.require_contract(&client).await?;
        let plan = self.plan();
        let (deployment_id, app, release_id) = (
            plan.deployment_id.clone(),
            Some(self.target()),
            plan.release.id.clone(),
        );
        let (spec, environment, fencing_token, secrets) = (
            plan.app.activation.clone(),
            plan.environment.clone(),
            plan.fencing_token,
            plan.secrets.secrets.clone(),
        );
        // A deploy activates what it prepared; a rollback goes back to a
        // release on disk (or one it shipped again).
        let stream = match plan.kind {
            DeploymentKind::Rollback => {
                let request = RollbackRequest {
                    deployment_id,
                    app,
                    release_id,
                    spec,
                    environment,
                    fencing_token,
                    fencing_epoch: String::new(),
                    secrets,
                };
                self.call("Rollback", client.roll_back(request)).await?
            }
            DeploymentKind::Secrets => {
                let request = ApplySecretsRequest {
                    deployment_id,
                    app,
                    release_id,
                    spec,
                    environment,
                    fencing_token,
                    fencing_epoch: String::new(),
                    secrets,
                };
                self.call("ApplySecrets", client.apply_secrets(request))
                    .await?
            }
            _ => {
                let request = ActivateReleaseRequest {
                    deployment_id,
                    app,
                    release_id,
                    spec,
                    environment,
                    fencing_token,
                    fencing_epoch: String::new(),
                    secrets,
                };
                self.call("ActivateRelease", client.activate(request))
                    .await?
            }
        };
        self.follow(&client, stream, Phase::Activate, seen).await
    }

    /// Asks the agent to stop this deployment's operation (hooks get
    /// SIGTERM, then SIGKILL); the operation's stream then ends with its
    /// result.
    pub(super) fn cancel_on_agent(&self, client: AgentClient) {
        let grace = self
            .control()
            .stop_request()
            .map_or(DEFAULT_GRACE_SECONDS, |r| r.grace_seconds);
        let request = CancelOperationRequest {
            app: Some(self.target()),
            deployment_id: self.plan().deployment_id.clone(),
            grace_seconds: grace,
            fencing_token: self.plan().fencing_token,
            fencing_epoch: String::new(),
        };
        let host = self.host.name.clone();
        tokio::spawn(async move {
            let answer =
                tokio::time::timeout(CANCEL_ANSWER, client.cancel_operation(request)).await;
            if !matches!(answer, Ok(Ok(_))) {
                tracing::warn!(%host, ?answer, "the agent did not confirm the cancel");
            }
        });
    }
}
