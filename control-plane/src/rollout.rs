//! The rollout of one deployment under its policy: the hosts in batches,
//! each batch in two phases (every host prepared, then every prepared host
//! switched), transient agent failures retried with backoff, every step
//! under a deadline, a canary gate and a failure budget between batches,
//! cancel, and an automatic rollback of the hosts already switched. The
//! owner task is the only writer of the deployment's record.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use slipway_proto::{
    agent::v1::{
        self as agent, AppTarget, CancelOperationRequest, DeployRequest, FileEntry, FileKind,
        GetStatusRequest, MissingObjectsRequest, ProgressEvent, ReleaseState, RollbackRequest,
        UploadObjectsRequest,
    },
    control::v1::{
        App, DeploymentEvent, DeploymentKind, DeploymentStatus, EventKind, Host, LogLevel, Release,
        ReleaseMark,
    },
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use crate::{
    Context,
    agents::AgentClient,
    blobs::{self, BlobCache},
    deployments::{self, Recorder, deployment_event},
    git::{self, Manifest},
    locks,
    policy::{self, Policy},
    running::Control,
    store::StoreError,
};

/// Hosts worked on at once within a batch.
const PARALLEL_HOSTS: usize = 32;

/// Share of a host's progress bar given to preparation.
const PREPARE_SHARE: u32 = 50;

/// How long an agent may take to confirm a cancel.
const CANCEL_ANSWER: Duration = Duration::from_secs(30);

/// Grace between SIGTERM and SIGKILL when a cancel names none.
const DEFAULT_GRACE_SECONDS: u32 = 10;

/// What one deployment activates.
pub struct Plan {
    /// Deployment id, sent to agents for idempotency.
    pub deployment_id: String,
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// The app.
    pub app: App,
    /// The environment's name.
    pub environment: String,
    /// The release.
    pub release: Release,
    /// Its files.
    pub manifest: Arc<Manifest>,
    /// The release the hosts should have (the last good one) and its files,
    /// to send only the difference against it.
    pub base: Option<(String, Arc<Manifest>)>,
    /// How it rolls out.
    pub policy: Policy,
    /// The lock's fencing token, sent with every agent call.
    pub fencing_token: u64,
}

/// What differs between a base manifest and a new one.
pub(crate) struct Delta<'a> {
    /// Entries of the new manifest that are new or differ from the base.
    pub(crate) changed: Vec<&'a git::ManifestFile>,
    /// Paths of the base that the new manifest does not have.
    pub(crate) removed: Vec<String>,
}

impl<'a> Delta<'a> {
    pub(crate) fn between(base: &Manifest, new: &'a Manifest) -> Self {
        let old: HashMap<&str, &git::ManifestFile> =
            base.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let now: HashSet<&str> = new.files.iter().map(|f| f.path.as_str()).collect();
        let changed = new
            .files
            .iter()
            .filter(|f| {
                old.get(f.path.as_str()).is_none_or(|o| {
                    (o.sha256.as_str(), o.mode, o.symlink) != (f.sha256.as_str(), f.mode, f.symlink)
                })
            })
            .collect();
        let removed = base
            .files
            .iter()
            .filter(|f| !now.contains(f.path.as_str()))
            .map(|f| f.path.clone())
            .collect();
        Self { changed, removed }
    }
}

/// Messages from the engine and its host tasks to the owner.
enum Update {
    Event(DeploymentEvent),
    Transfer {
        host: String,
        objects: u64,
        bytes: u64,
    },
}

/// How the rollout ended, before any automatic rollback.
struct Outcome {
    status: DeploymentStatus,
    message: String,
    /// Hosts that took the release.
    switched: Vec<Host>,
}

/// Runs the rollout to completion and records the final status.
pub async fn run(
    ctx: Context,
    plan: Plan,
    hosts: Vec<Host>,
    mut recorder: Recorder,
    control: Arc<Control>,
) {
    let id = plan.deployment_id.clone();
    if let Err(err) = drive(&ctx, plan, hosts, &mut recorder, control).await {
        // The store failed: nothing more can be recorded. A restart marks the
        // deployment interrupted and frees its lock.
        tracing::error!(deployment = %id, error = ?err, "recording the deployment failed");
    }
    ctx.running.finish(&id);
}

async fn drive(
    ctx: &Context,
    plan: Plan,
    hosts: Vec<Host>,
    recorder: &mut Recorder,
    control: Arc<Control>,
) -> Result<(), StoreError> {
    let plan = Arc::new(plan);
    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let engine = Engine {
        ctx: ctx.clone(),
        plan: plan.clone(),
        control: control.clone(),
        tx,
        blobs: Arc::new(BlobCache::new(blobs::DEFAULT_BUDGET)),
        clients: Clients::default(),
    };
    let mut engine = tokio::spawn(engine.run(hosts));
    let mut renew = tokio::time::interval(locks::RENEW_EVERY);
    renew.tick().await;
    // Record every update until the engine and its host tasks are done.
    loop {
        let update = tokio::select! {
            update = rx.recv() => update,
            _ = renew.tick() => {
                recorder.renew_lease().await?;
                continue;
            }
        };
        let Some(update) = update else { break };
        match update {
            Update::Event(event) => recorder.record(event).await?,
            Update::Transfer {
                host,
                objects,
                bytes,
            } => {
                let event = host_log(
                    &host,
                    "transfer",
                    LogLevel::Info,
                    format!("sent {objects} objects, {bytes} bytes"),
                );
                recorder
                    .record_transfer(&host, objects, bytes, event)
                    .await?;
            }
        }
    }
    let outcome = match (&mut engine).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome {
            status: DeploymentStatus::Failed,
            message: format!("the rollout task failed: {err}"),
            switched: Vec::new(),
        },
    };
    let mut message = outcome.message;
    if outcome.status != DeploymentStatus::Succeeded
        && plan.kind == DeploymentKind::Deploy
        && plan.policy.spec.auto_rollback
        && !outcome.switched.is_empty()
    {
        message = auto_rollback(ctx, recorder, &plan, outcome.switched, message).await?;
    }
    let level = if outcome.status == DeploymentStatus::Succeeded {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    let stage = match outcome.status {
        DeploymentStatus::Succeeded => "done",
        DeploymentStatus::Cancelled => "cancelled",
        _ => "failed",
    };
    if let Some(stop) = control.stop_request() {
        recorder.note_cancel(&stop.by, &stop.reason);
    }
    if outcome.status == DeploymentStatus::Succeeded && plan.kind == DeploymentKind::Rollback {
        // The release rolled back from is skipped when a later rollback
        // resolves "previous"; `slipctl release mark --good` undoes it.
        let from = recorder.deployment().previous_release.clone();
        if !from.is_empty() && from != plan.release.id {
            let reason = format!("rolled back from by {}", plan.deployment_id);
            if let Err(err) =
                crate::releases::mark(&ctx.store, &plan.app.name, &from, ReleaseMark::Bad, &reason)
                    .await
            {
                tracing::warn!(release = %from, error = %err, "marking the release bad failed");
            }
        }
    }
    recorder
        .record(deployment_event(outcome.status, stage, level, message))
        .await
}

/// Switches the hosts that took the failed deployment's release back to the
/// release before it, as a rollback deployment linked to this one. Returns
/// the failed deployment's final message.
async fn auto_rollback(
    ctx: &Context,
    recorder: &mut Recorder,
    plan: &Plan,
    switched: Vec<Host>,
    message: String,
) -> Result<String, StoreError> {
    let previous = recorder.deployment().previous_release.clone();
    if previous.is_empty() {
        recorder
            .record(deployment_event(
                DeploymentStatus::Running,
                "auto-rollback",
                LogLevel::Warn,
                format!(
                    "auto-rollback skipped: there is no earlier release; {} hosts stay on {}",
                    switched.len(),
                    plan.release.id
                ),
            ))
            .await?;
        return Ok(message);
    }
    recorder
        .record(deployment_event(
            DeploymentStatus::Running,
            "auto-rollback",
            LogLevel::Warn,
            format!(
                "auto-rollback: switching {} hosts back to {previous}",
                switched.len()
            ),
        ))
        .await?;
    let parent = recorder.deployment().clone();
    match Box::pin(deployments::start_auto_rollback(
        ctx, &parent, &message, switched,
    ))
    .await
    {
        Ok((id, status)) => {
            recorder.note_rolled_back_by(&id);
            let outcome = DeploymentStatus::try_from(status)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("DEPLOYMENT_STATUS_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            Ok(format!("{message}; rolled back by {id} ({outcome})"))
        }
        Err(err) => Ok(format!(
            "{message}; the automatic rollback could not start: {err}"
        )),
    }
}

/// The rollout itself; it only talks to the owner through `tx`.
struct Engine {
    ctx: Context,
    plan: Arc<Plan>,
    control: Arc<Control>,
    tx: mpsc::Sender<Update>,
    blobs: Arc<BlobCache>,
    clients: Clients,
}

/// Each host's connection, kept from one phase to the next; a retry dials
/// afresh.
type Clients = Arc<std::sync::Mutex<HashMap<String, AgentClient>>>;

/// The two phases of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Contents sent, release materialised, before-activate hooks run.
    Prepare,
    /// `current` switched, after-activate hooks and health check run.
    Activate,
}

impl Engine {
    async fn emit(&self, event: DeploymentEvent) {
        let _ = self.tx.send(Update::Event(event)).await;
    }

    fn cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    async fn run(self, hosts: Vec<Host>) -> Outcome {
        let plan = self.plan.clone();
        let policy = &plan.policy;
        let total = hosts.len();
        let batches = policy.batches(hosts);
        let count = batches.len();
        self.emit(deployment_event(
            DeploymentStatus::Running,
            "rollout",
            LogLevel::Info,
            format!(
                "rolling out {} to {total} hosts in {count} batch{}: {}",
                plan.release.id,
                if count == 1 { "" } else { "es" },
                policy.describe(total)
            ),
        ))
        .await;

        let mut failed: Vec<String> = Vec::new();
        let mut switched: Vec<Host> = Vec::new();
        let mut stop: Option<String> = None;
        let max_failed = policy.spec.max_failed_hosts as usize;
        let mut unusable: HashSet<String> = HashSet::new();

        if plan.kind == DeploymentKind::Rollback {
            // The target is the same everywhere and checked (or shipped
            // again) on every host before any host switches.
            let all: Vec<Host> = batches.concat();
            for (host, result) in self.on_hosts(&all, Phase::Prepare, 0).await {
                if let Err(message) = result {
                    failed.push(format!("{}: {message}", host.name));
                    unusable.insert(host.name);
                }
            }
            if failed.len() > max_failed {
                stop = Some(format!(
                    "{} is not usable on {} hosts, more than the {max_failed} tolerated; no host switched",
                    plan.release.id,
                    failed.len()
                ));
            }
        }

        let mut reached = 0;
        for (index, batch) in batches.iter().enumerate() {
            if stop.is_some() || self.cancelled() {
                break;
            }
            let number = index as u32 + 1;
            if index > 0 && !policy.pause.is_zero() {
                self.emit(batch_event(
                    number,
                    format!("pausing {} s before batch {number}", policy.pause.as_secs()),
                ))
                .await;
                tokio::select! {
                    _ = tokio::time::sleep(policy.pause) => {}
                    _ = self.control.token().cancelled() => break,
                }
            }
            reached = index + 1;
            let names: Vec<&str> = batch.iter().map(|h| h.name.as_str()).collect();
            self.emit(batch_event(
                number,
                format!(
                    "batch {number} of {count}{}: {}",
                    if policy.spec.canary && index == 0 {
                        " (canary)"
                    } else {
                        ""
                    },
                    names.join(", ")
                ),
            ))
            .await;
            let mut batch_failed = 0;
            let prepared: Vec<Host> = if plan.kind == DeploymentKind::Deploy {
                let mut ready = Vec::new();
                for (host, result) in self.on_hosts(batch, Phase::Prepare, number).await {
                    match result {
                        Ok(()) => ready.push(host),
                        Err(message) => {
                            failed.push(format!("{}: {message}", host.name));
                            batch_failed += 1;
                        }
                    }
                }
                ready
            } else {
                batch
                    .iter()
                    .filter(|h| !unusable.contains(&h.name))
                    .cloned()
                    .collect()
            };
            if self.cancelled() {
                break;
            }
            if let Some(why) = budget_spent(policy, index, batch_failed, batch.len(), failed.len())
            {
                stop = Some(format!("{why}; batch {number} did not switch"));
                break;
            }
            for (host, result) in self.on_hosts(&prepared, Phase::Activate, number).await {
                match result {
                    Ok(()) => switched.push(host),
                    Err(message) => {
                        failed.push(format!("{}: {message}", host.name));
                        batch_failed += 1;
                    }
                }
            }
            stop = budget_spent(policy, index, batch_failed, batch.len(), failed.len());
        }

        // Hosts of batches never started are recorded as skipped, so no host
        // is left pending.
        let why = match (&stop, self.control.stop_request()) {
            (_, Some(request)) => format!("cancelled: {}", request.reason),
            (Some(stop), None) => stop.clone(),
            (None, None) => String::new(),
        };
        for batch in batches.iter().skip(reached) {
            for host in batch {
                if !unusable.contains(&host.name) {
                    self.emit(host_status(
                        &host.name,
                        DeploymentStatus::Cancelled,
                        "skipped",
                        0,
                        LogLevel::Warn,
                        format!("not deployed: {why}"),
                    ))
                    .await;
                }
            }
        }

        failed.sort();
        let release = &plan.release.id;
        let (status, message) = if let Some(request) = self.control.stop_request() {
            (
                DeploymentStatus::Cancelled,
                format!(
                    "cancelled by {}: {}; {} of {total} hosts on {release}",
                    request.by,
                    request.reason,
                    switched.len()
                ),
            )
        } else if let Some(stop) = stop {
            (
                DeploymentStatus::Failed,
                format!("{stop}: {}", failed.join("; ")),
            )
        } else if failed.is_empty() {
            (
                DeploymentStatus::Succeeded,
                format!("{release} is current on all {total} hosts"),
            )
        } else {
            (
                DeploymentStatus::Succeeded,
                format!(
                    "{release} is current on {} of {total} hosts; {} failed (at most {max_failed} tolerated): {}",
                    switched.len(),
                    failed.len(),
                    failed.join("; ")
                ),
            )
        };
        Outcome {
            status,
            message,
            switched,
        }
    }

    /// Runs one phase on `hosts` in parallel (bounded) and reports each
    /// host's result, in host order.
    async fn on_hosts(
        &self,
        hosts: &[Host],
        phase: Phase,
        batch: u32,
    ) -> Vec<(Host, Result<(), String>)> {
        let limit = Arc::new(Semaphore::new(PARALLEL_HOSTS));
        let mut tasks = JoinSet::new();
        for (index, host) in hosts.iter().enumerate() {
            let run = HostRun {
                ctx: self.ctx.clone(),
                plan: self.plan.clone(),
                control: self.control.clone(),
                host: host.clone(),
                tx: self.tx.clone(),
                blobs: self.blobs.clone(),
                clients: self.clients.clone(),
                redial: std::sync::atomic::AtomicBool::new(false),
                batch,
            };
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = run.phase(phase).await;
                (index, run.host, result)
            });
        }
        let mut results = Vec::with_capacity(hosts.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => results.push(result),
                Err(err) => tracing::error!(error = %err, "a host task panicked"),
            }
        }
        results.sort_by_key(|(index, _, _)| *index);
        results
            .into_iter()
            .map(|(_, host, result)| (host, result))
            .collect()
    }
}

/// Why the rollout stops after a phase of batch `index`, if it does: a
/// failure in the canary batch, or more failed hosts than the policy
/// tolerates.
fn budget_spent(
    policy: &Policy,
    index: usize,
    batch_failed: usize,
    batch_len: usize,
    failed: usize,
) -> Option<String> {
    let max_failed = policy.spec.max_failed_hosts as usize;
    if policy.spec.canary && index == 0 && batch_failed > 0 {
        Some(format!(
            "the canary batch failed on {batch_failed} of {batch_len} hosts"
        ))
    } else if failed > max_failed {
        Some(format!(
            "{failed} hosts failed, more than the {max_failed} tolerated"
        ))
    } else {
        None
    }
}

fn batch_event(batch: u32, message: String) -> DeploymentEvent {
    DeploymentEvent {
        batch,
        ..deployment_event(DeploymentStatus::Running, "batch", LogLevel::Info, message)
    }
}

fn host_status(
    host: &str,
    status: DeploymentStatus,
    stage: &str,
    percent: u32,
    level: LogLevel,
    message: String,
) -> DeploymentEvent {
    DeploymentEvent {
        kind: EventKind::Status as i32,
        host: host.into(),
        status: status as i32,
        stage: stage.into(),
        percent,
        level: level as i32,
        message,
        ..Default::default()
    }
}

fn host_log(host: &str, stage: &str, level: LogLevel, message: String) -> DeploymentEvent {
    DeploymentEvent {
        kind: EventKind::Log as i32,
        host: host.into(),
        stage: stage.into(),
        level: level as i32,
        message,
        ..Default::default()
    }
}

/// Why a step failed, and whether trying again may help.
#[derive(Debug)]
enum Failure {
    /// The agent or the network was unavailable, slow or broke the
    /// connection.
    Transient(String),
    /// The agent refused or the operation failed.
    Final(String),
    /// The agent does not have the base release of a delta.
    NoBase(String),
}

impl Failure {
    fn from_status(status: &tonic::Status) -> Self {
        let message = format!("agent: {} ({:?})", status.message(), status.code());
        if policy::is_transient(status) {
            Failure::Transient(message)
        } else if status.code() == tonic::Code::FailedPrecondition
            && status.message().contains("base release")
        {
            Failure::NoBase(message)
        } else {
            Failure::Final(message)
        }
    }

    fn message(self) -> String {
        match self {
            Failure::Transient(m) | Failure::Final(m) | Failure::NoBase(m) => m,
        }
    }
}

/// One host's part of one phase. Errors are messages for a person.
struct HostRun {
    ctx: Context,
    plan: Arc<Plan>,
    control: Arc<Control>,
    host: Host,
    tx: mpsc::Sender<Update>,
    blobs: Arc<BlobCache>,
    clients: Clients,
    /// Set after a failed attempt: the next one dials a new connection.
    redial: std::sync::atomic::AtomicBool,
    batch: u32,
}

impl HostRun {
    async fn emit(&self, mut event: DeploymentEvent) {
        event.batch = self.batch;
        let _ = self.tx.send(Update::Event(event)).await;
    }

    fn target(&self) -> AppTarget {
        AppTarget {
            name: self.plan.app.name.clone(),
            deploy_root: self.plan.app.deploy_root.clone(),
        }
    }

    fn step_timeout(&self) -> Duration {
        self.plan.policy.step_timeout
    }

    /// How long an agent operation may stay silent: a step's deadline plus
    /// every hook's and the health check's own limits, which the agent
    /// enforces.
    fn operation_silence(&self) -> Duration {
        let spec = self.plan.app.activation.clone().unwrap_or_default();
        let hooks: u64 = spec
            .hooks
            .iter()
            .map(|h| match h.timeout_seconds {
                0 => 300,
                s => u64::from(s),
            })
            .sum();
        let health = spec.health_check.map_or(0, |c| match c.timeout_seconds {
            0 => 60,
            s => u64::from(s),
        });
        self.step_timeout() + Duration::from_secs(hooks + health)
    }

    async fn phase(&self, phase: Phase) -> Result<(), String> {
        let release = &self.plan.release.id;
        let (stage, percent, message) = match phase {
            Phase::Prepare => (
                "prepare",
                1,
                format!("preparing {release} via {}", self.host.address),
            ),
            Phase::Activate => (
                "switch",
                PREPARE_SHARE + 1,
                format!("switching to {release}"),
            ),
        };
        self.emit(host_status(
            &self.host.name,
            DeploymentStatus::Running,
            stage,
            percent,
            LogLevel::Info,
            message,
        ))
        .await;
        let mut last_sequence = 0;
        let mut attempt = 1;
        let result = loop {
            let step = match phase {
                Phase::Prepare => self.prepare(&mut last_sequence).await,
                Phase::Activate => self.activate(&mut last_sequence).await,
            };
            match step {
                Ok(()) => break Ok(()),
                Err(failure) => {
                    if let Err(message) = self.retry(failure, &mut attempt, phase).await {
                        break Err(message);
                    }
                }
            }
        };
        let event = match (&result, phase) {
            (Ok(()), Phase::Prepare) => host_status(
                &self.host.name,
                DeploymentStatus::Running,
                "prepared",
                PREPARE_SHARE,
                LogLevel::Info,
                format!("{release} is ready"),
            ),
            (Ok(()), Phase::Activate) => host_status(
                &self.host.name,
                DeploymentStatus::Succeeded,
                "done",
                100,
                LogLevel::Info,
                format!("{release} is current"),
            ),
            (Err(message), _) if self.control.is_cancelled() => host_status(
                &self.host.name,
                DeploymentStatus::Cancelled,
                "cancelled",
                0,
                LogLevel::Warn,
                message.clone(),
            ),
            (Err(message), _) => host_status(
                &self.host.name,
                DeploymentStatus::Failed,
                "failed",
                0,
                LogLevel::Error,
                message.clone(),
            ),
        };
        self.emit(event).await;
        result
    }

    /// After a failed attempt: waits a capped, jittered backoff and
    /// returns Ok when the failure is transient and attempts remain, or the
    /// failure's message when it is final.
    async fn retry(&self, failure: Failure, attempt: &mut u32, phase: Phase) -> Result<(), String> {
        let attempts = self.plan.policy.attempts;
        match failure {
            Failure::Transient(message) if *attempt < attempts && !self.control.is_cancelled() => {
                *attempt += 1;
                self.redial.store(true, Ordering::Relaxed);
                let wait = policy::backoff(*attempt);
                self.emit(host_log(
                    &self.host.name,
                    if phase == Phase::Prepare {
                        "prepare"
                    } else {
                        "switch"
                    },
                    LogLevel::Warn,
                    format!(
                        "{message}; attempt {attempt} of {attempts} in {} ms",
                        wait.as_millis()
                    ),
                ))
                .await;
                tokio::select! {
                    () = tokio::time::sleep(wait) => Ok(()),
                    () = self.control.token().cancelled() => Err("cancelled".into()),
                }
            }
            failure => Err(failure.message()),
        }
    }

    async fn connect(&self) -> Result<AgentClient, Failure> {
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.host.name)
            .cloned();
        if let (Some(client), false) = (cached, self.redial.load(Ordering::Relaxed)) {
            return Ok(client);
        }
        let deadline = self.step_timeout();
        match tokio::time::timeout(deadline, self.ctx.agents.connect_once(&self.host)).await {
            Ok(Ok(client)) => {
                self.clients
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.host.name.clone(), client.clone());
                Ok(client)
            }
            Ok(Err(err)) => Err(Failure::Transient(slipway_proto::daemon::chain(&err))),
            Err(_) => Err(Failure::Transient(format!(
                "connecting to {} took longer than {} s",
                self.host.address,
                deadline.as_secs()
            ))),
        }
    }

    /// A unary agent call under the step deadline.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Failure> {
        let deadline = self.step_timeout();
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Failure::from_status(&status)),
            Err(_) => Err(Failure::Transient(format!(
                "the agent did not answer {what} within {} s",
                deadline.as_secs()
            ))),
        }
    }

    /// Phase one: the release ready on the host, not switched.
    async fn prepare(&self, last_sequence: &mut u64) -> Result<(), Failure> {
        let mut client = self.connect().await?;
        if self.plan.kind == DeploymentKind::Rollback {
            let status = self
                .call(
                    "GetStatus",
                    client.get_status(GetStatusRequest {
                        apps: vec![self.target()],
                        omit_sizes: true,
                    }),
                )
                .await?;
            let release = &self.plan.release.id;
            let on_disk = status.apps.iter().flat_map(|a| &a.releases).any(|r| {
                &r.id == release
                    && [ReleaseState::Ready, ReleaseState::Active]
                        .iter()
                        .any(|s| *s as i32 == r.state)
            });
            if on_disk {
                return Ok(());
            }
            self.emit(host_log(
                &self.host.name,
                "transfer",
                LogLevel::Info,
                format!("{release} is not on this host (pruned); shipping it again"),
            ))
            .await;
        }
        let base = match self.plan.kind {
            DeploymentKind::Rollback => None,
            _ => self.plan.base.as_ref(),
        };
        let stream = match self.ship(&mut client, base).await {
            Err(Failure::NoBase(message)) if base.is_some() => {
                // The host does not have the base release (pruned, or a new
                // host): send everything it lacks against nothing.
                self.emit(host_log(
                    &self.host.name,
                    "transfer",
                    LogLevel::Info,
                    format!("{message}; shipping the whole release"),
                ))
                .await;
                self.ship(&mut client, None).await
            }
            other => other,
        }?;
        self.follow(
            &client,
            stream.map(|r| r.map(|m| m.event)),
            Phase::Prepare,
            last_sequence,
        )
        .await
    }

    /// Phase two: `current` switched to the prepared release.
    async fn activate(&self, last_sequence: &mut u64) -> Result<(), Failure> {
        let mut client = self.connect().await?;
        let request = RollbackRequest {
            deployment_id: self.plan.deployment_id.clone(),
            app: Some(self.target()),
            release_id: self.plan.release.id.clone(),
            spec: self.plan.app.activation.clone(),
            environment: self.plan.environment.clone(),
            fencing_token: self.plan.fencing_token,
        };
        let stream = self.call("Rollback", client.rollback(request)).await?;
        self.follow(
            &client,
            stream.map(|r| r.map(|m| m.event)),
            Phase::Activate,
            last_sequence,
        )
        .await
    }

    /// Sends what the host lacks, then asks it to prepare the release. With
    /// a base, only the entries that differ from the base travel, and only
    /// their hashes are asked about.
    async fn ship(
        &self,
        client: &mut AgentClient,
        base: Option<&(String, Arc<Manifest>)>,
    ) -> Result<tonic::Streaming<agent::DeployResponse>, Failure> {
        let delta =
            base.map(|(id, manifest)| (id.clone(), Delta::between(manifest, &self.plan.manifest)));
        let files: Vec<&git::ManifestFile> = match &delta {
            Some((_, delta)) => delta.changed.clone(),
            None => self.plan.manifest.files.iter().collect(),
        };
        self.transfer(client, &files).await?;
        let (base_release, removed_paths) = match delta {
            Some((id, delta)) => (id, delta.removed),
            None => (String::new(), Vec::new()),
        };
        let request = DeployRequest {
            deployment_id: self.plan.deployment_id.clone(),
            app: Some(self.target()),
            release_id: self.plan.release.id.clone(),
            files: files.into_iter().map(file_entry).collect(),
            keep_releases: self.plan.app.keep_releases,
            spec: self.plan.app.activation.clone(),
            environment: self.plan.environment.clone(),
            base_release,
            removed_paths,
            prepare_only: true,
            fencing_token: self.plan.fencing_token,
        };
        self.call("Deploy", client.deploy(request)).await
    }

    async fn transfer(
        &self,
        client: &mut AgentClient,
        files: &[&git::ManifestFile],
    ) -> Result<(), Failure> {
        let host = &self.host.name;
        let mut by_hash: HashMap<&str, (&str, u64)> = HashMap::new();
        for f in files {
            by_hash.entry(&f.sha256).or_insert((&f.blob, f.size));
        }
        let mut hashes: Vec<String> = by_hash.keys().map(|h| h.to_string()).collect();
        hashes.sort();
        let missing = self
            .call(
                "MissingObjects",
                client.missing_objects(MissingObjectsRequest {
                    app: Some(self.target()),
                    sha256: hashes,
                }),
            )
            .await?
            .sha256;
        let wanted: Vec<(String, String, u64)> = missing
            .into_iter()
            .filter_map(|sha| {
                by_hash
                    .get(sha.as_str())
                    .map(|(blob, size)| (sha.clone(), blob.to_string(), *size))
            })
            .collect();
        let objects = wanted.len() as u64;
        let bytes: u64 = wanted.iter().map(|w| w.2).sum();
        self.emit(host_status(
            host,
            DeploymentStatus::Running,
            "transfer",
            5,
            LogLevel::Info,
            format!(
                "host lacks {objects} of {} objects ({bytes} bytes)",
                by_hash.len()
            ),
        ))
        .await;
        if objects > 0 {
            self.upload(client, wanted).await?;
        }
        let _ = self
            .tx
            .send(Update::Transfer {
                host: host.clone(),
                objects,
                bytes,
            })
            .await;
        Ok(())
    }

    /// Streams the wanted objects. The deadline is on silence: the upload
    /// fails when no chunk left for a whole step timeout.
    async fn upload(
        &self,
        client: &mut AgentClient,
        wanted: Vec<(String, String, u64)>,
    ) -> Result<(), Failure> {
        let (chunks_tx, chunks_rx) = mpsc::channel(8);
        let source = self.plan.app.repository.clone();
        let (target, blobs, token) = (self.target(), self.blobs.clone(), self.plan.fencing_token);
        // git2 blocks: read blobs on a blocking thread; the bounded channel
        // is the backpressure.
        let producer = tokio::task::spawn_blocking(move || {
            produce_chunks(&source, &blobs, target, token, wanted, chunks_tx)
        });
        let started = Instant::now();
        let last_sent = Arc::new(AtomicU64::new(0));
        let progress = last_sent.clone();
        let chunks = ReceiverStream::new(chunks_rx).map(move |chunk| {
            progress.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            chunk
        });
        let silence = self.step_timeout();
        let watchdog = async {
            loop {
                tokio::time::sleep(silence / 4).await;
                let last = Duration::from_millis(last_sent.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(last) > silence {
                    return;
                }
            }
        };
        let upload = tokio::select! {
            upload = client.upload_objects(chunks) => upload,
            () = watchdog => {
                producer.abort();
                return Err(Failure::Transient(format!(
                    "the upload made no progress for {} s",
                    silence.as_secs()
                )));
            }
            () = self.control.token().cancelled() => {
                producer.abort();
                return Err(Failure::Final("cancelled".into()));
            }
        };
        let produced = producer.await.map_err(|e| Failure::Final(e.to_string()))?;
        produced.map_err(|e| {
            Failure::Final(format!("reading release contents from git failed: {e}"))
        })?;
        upload.map_err(|s| Failure::from_status(&s))?;
        Ok(())
    }

    /// Relays the agent's progress until its final result. Events the
    /// agent replays after a retry (same deployment id) are not relayed
    /// twice. A cancel asks the agent to stop and keeps following until the
    /// agent says the operation ended.
    async fn follow(
        &self,
        client: &AgentClient,
        mut events: impl tokio_stream::Stream<Item = Result<Option<ProgressEvent>, tonic::Status>>
        + Unpin,
        phase: Phase,
        last_sequence: &mut u64,
    ) -> Result<(), Failure> {
        let host = &self.host.name;
        let silence = self.operation_silence();
        let mut cancel_sent = false;
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(silence, events.next()) => next,
                () = self.control.token().cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    self.cancel_on_agent(client.clone());
                    continue;
                }
            };
            let item = match next {
                Ok(Some(item)) => item,
                Ok(None) => {
                    return Err(Failure::Transient(
                        "the agent's stream ended without a result".into(),
                    ));
                }
                Err(_) => {
                    return Err(Failure::Transient(format!(
                        "the agent said nothing for {} s",
                        silence.as_secs()
                    )));
                }
            };
            let Some(event) = item.map_err(|s| Failure::from_status(&s))? else {
                continue;
            };
            if event.sequence != 0 && event.sequence <= *last_sequence {
                continue; // Relayed before this attempt.
            }
            *last_sequence = event.sequence;
            if let Some(result) = event.result {
                return if result.success {
                    Ok(())
                } else {
                    Err(Failure::Final(if result.error.is_empty() {
                        event.message
                    } else {
                        result.error
                    }))
                };
            }
            let stage = agent::Stage::try_from(event.stage)
                .map(|s| s.as_str_name().trim_start_matches("STAGE_").to_lowercase())
                .unwrap_or_default();
            let span = event.percent.min(100) * PREPARE_SHARE / 100;
            let percent = match phase {
                Phase::Prepare => span.max(1),
                Phase::Activate => PREPARE_SHARE + span,
            };
            // A line of hook output is a log line; everything else is progress.
            let kind = if event.output.is_empty() {
                EventKind::Progress
            } else {
                EventKind::Log
            };
            self.emit(DeploymentEvent {
                kind: kind as i32,
                step: event.step,
                output: event.output,
                host: host.clone(),
                status: DeploymentStatus::Running as i32,
                stage,
                percent: percent.min(99),
                level: level_from_agent(event.level) as i32,
                message: event.message,
                ..Default::default()
            })
            .await;
        }
    }

    /// Asks the agent to stop this deployment's operation (hooks get
    /// SIGTERM, then SIGKILL); the operation's stream then ends with its
    /// result.
    fn cancel_on_agent(&self, mut client: AgentClient) {
        let grace = self
            .control
            .stop_request()
            .map_or(DEFAULT_GRACE_SECONDS, |r| r.grace_seconds);
        let request = CancelOperationRequest {
            app: Some(self.target()),
            deployment_id: self.plan.deployment_id.clone(),
            grace_seconds: grace,
            fencing_token: self.plan.fencing_token,
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

fn produce_chunks(
    source: &str,
    blobs: &BlobCache,
    target: AppTarget,
    fencing_token: u64,
    wanted: Vec<(String, String, u64)>,
    tx: mpsc::Sender<UploadObjectsRequest>,
) -> Result<(), git::GitError> {
    let repo = git::open(source)?;
    let mut app = Some(target);
    for (sha, blob, size) in wanted {
        let content = blobs.read(&repo, &blob, size)?;
        let mut offset = 0usize;
        loop {
            let end = (offset + slipway_proto::CHUNK_BYTES).min(content.len());
            let chunk = UploadObjectsRequest {
                app: app.take(),
                sha256: sha.clone(),
                size,
                offset: offset as u64,
                data: content[offset..end].to_vec(),
                fencing_token,
            };
            if tx.blocking_send(chunk).is_err() {
                return Ok(()); // The upload call ended; it reports why.
            }
            offset = end;
            if offset >= content.len() {
                break;
            }
        }
    }
    Ok(())
}

fn file_entry(f: &git::ManifestFile) -> FileEntry {
    FileEntry {
        path: f.path.clone(),
        kind: if f.symlink {
            FileKind::Symlink
        } else {
            FileKind::Regular
        } as i32,
        mode: f.mode,
        size: f.size,
        sha256: f.sha256.clone(),
    }
}

fn level_from_agent(level: i32) -> LogLevel {
    match agent::LogLevel::try_from(level) {
        Ok(agent::LogLevel::Debug) => LogLevel::Debug,
        Ok(agent::LogLevel::Warn) => LogLevel::Warn,
        Ok(agent::LogLevel::Error) => LogLevel::Error,
        _ => LogLevel::Info,
    }
}
