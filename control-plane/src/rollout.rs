//! The rollout of one deployment: every host in parallel (bounded), each one
//! told what it lacks, sent only that, then asked to activate; the owner task
//! records every step in the deployment's event log.

use std::{collections::HashMap, sync::Arc};

use slipway_proto::{
    agent::v1::{
        self as agent, AppTarget, DeployRequest, FileEntry, FileKind, MissingObjectsRequest,
        ProgressEvent, RollbackRequest, UploadObjectsRequest,
    },
    control::v1::{
        App, DeploymentEvent, DeploymentKind, DeploymentStatus, EventKind, Host, LogLevel, Release,
    },
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;

use crate::{
    Context,
    agents::AgentClient,
    blobs::{self, BlobCache},
    deployments::{Recorder, deployment_event},
    git::{self, Manifest},
};

/// Hosts worked on at once.
const PARALLEL_HOSTS: usize = 32;

/// Share of a host's progress bar given to the transfer.
const TRANSFER_SHARE: u32 = 40;

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
}

/// What differs between a base manifest and a new one.
struct Delta<'a> {
    /// Entries of the new manifest that are new or differ from the base.
    changed: Vec<&'a git::ManifestFile>,
    /// Paths of the base that the new manifest does not have.
    removed: Vec<String>,
}

impl<'a> Delta<'a> {
    fn between(base: &Manifest, new: &'a Manifest) -> Self {
        let old: HashMap<&str, &git::ManifestFile> =
            base.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let now: std::collections::HashSet<&str> =
            new.files.iter().map(|f| f.path.as_str()).collect();
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

/// Messages from host tasks to the owner.
enum Update {
    Event(DeploymentEvent),
    Transfer {
        host: String,
        objects: u64,
        bytes: u64,
    },
}

/// Runs the rollout to completion and records the final status.
pub async fn run(ctx: Context, plan: Plan, hosts: Vec<Host>, mut recorder: Recorder) {
    let id = plan.deployment_id.clone();
    if let Err(err) = drive(&ctx, plan, hosts, &mut recorder).await {
        // The store failed: nothing more can be recorded. A restart marks the
        // deployment interrupted and frees its lock.
        tracing::error!(deployment = %id, error = ?err, "recording the deployment failed");
    }
}

async fn drive(
    ctx: &Context,
    plan: Plan,
    hosts: Vec<Host>,
    recorder: &mut Recorder,
) -> Result<(), crate::store::StoreError> {
    let plan = Arc::new(plan);
    let total = hosts.len();
    recorder
        .record(deployment_event(
            DeploymentStatus::Running,
            "rollout",
            LogLevel::Info,
            format!("rolling out {} to {total} hosts", plan.release.id),
        ))
        .await?;

    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let limit = Arc::new(Semaphore::new(PARALLEL_HOSTS));
    let blobs = Arc::new(BlobCache::new(blobs::DEFAULT_BUDGET));
    let mut tasks = JoinSet::new();
    for host in hosts {
        let (ctx, plan, tx, limit) = (ctx.clone(), plan.clone(), tx.clone(), limit.clone());
        let blobs = blobs.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let name = host.name.clone();
            let result = HostRun {
                ctx: &ctx,
                plan: &plan,
                host: &host,
                tx: &tx,
                blobs: &blobs,
            }
            .run()
            .await;
            let event = match &result {
                Ok(()) => host_status(
                    &name,
                    DeploymentStatus::Succeeded,
                    "done",
                    100,
                    LogLevel::Info,
                    format!("{} is current", plan.release.id),
                ),
                Err(message) => host_status(
                    &name,
                    DeploymentStatus::Failed,
                    "failed",
                    0,
                    LogLevel::Error,
                    message.clone(),
                ),
            };
            let _ = tx.send(Update::Event(event)).await;
            (name, result)
        });
    }
    drop(tx);
    while let Some(update) = rx.recv().await {
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
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((host, Err(message))) => failures.push(format!("{host}: {message}")),
            Err(err) => failures.push(format!("a host task panicked: {err}")),
        }
    }
    failures.sort();
    let final_event = if failures.is_empty() {
        deployment_event(
            DeploymentStatus::Succeeded,
            "done",
            LogLevel::Info,
            format!("{} is current on all {total} hosts", plan.release.id),
        )
    } else {
        deployment_event(
            DeploymentStatus::Failed,
            "failed",
            LogLevel::Error,
            format!(
                "{} of {total} hosts failed: {}",
                failures.len(),
                failures.join("; ")
            ),
        )
    };
    recorder.record(final_event).await
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

/// One host's part of the rollout. Errors are messages for a person.
struct HostRun<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    host: &'a Host,
    tx: &'a mpsc::Sender<Update>,
    blobs: &'a Arc<BlobCache>,
}

impl HostRun<'_> {
    async fn emit(&self, event: DeploymentEvent) {
        let _ = self.tx.send(Update::Event(event)).await;
    }

    fn target(&self) -> AppTarget {
        AppTarget {
            name: self.plan.app.name.clone(),
            deploy_root: self.plan.app.deploy_root.clone(),
        }
    }

    async fn run(self) -> Result<(), String> {
        let host = &self.host.name;
        self.emit(host_status(
            host,
            DeploymentStatus::Running,
            "connect",
            1,
            LogLevel::Info,
            format!("connecting to {}", self.host.address),
        ))
        .await;
        let mut client = self
            .ctx
            .agents
            .connect(self.host)
            .await
            .map_err(|err| anyhow_chain(&err))?;
        if self.plan.kind == DeploymentKind::Rollback {
            let request = RollbackRequest {
                deployment_id: self.plan.deployment_id.clone(),
                app: Some(self.target()),
                release_id: self.plan.release.id.clone(),
                spec: self.plan.app.activation.clone(),
                environment: self.plan.environment.clone(),
                fencing_token: 0,
            };
            match client.rollback(request).await {
                Ok(stream) => {
                    let events = stream.into_inner().map(|r| r.map(|m| m.event));
                    return self.follow(events).await;
                }
                Err(status)
                    if status.code() == Code::FailedPrecondition
                        && status.message().contains("not on this host") =>
                {
                    self.emit(host_log(
                        host,
                        "transfer",
                        LogLevel::Info,
                        format!(
                            "{} was pruned here; shipping it again",
                            self.plan.release.id
                        ),
                    ))
                    .await;
                }
                Err(status) => return Err(agent_error(&status)),
            }
        }
        let base = self.plan.base.as_ref();
        let stream = match self.ship(&mut client, base).await {
            Err(status) if base.is_some() && status.code() == Code::FailedPrecondition => {
                // The host does not have the base release (pruned, or a new
                // host): send everything it lacks against nothing.
                self.emit(host_log(
                    host,
                    "transfer",
                    LogLevel::Info,
                    format!("{}; shipping the whole release", status.message()),
                ))
                .await;
                self.ship(&mut client, None).await
            }
            other => other,
        }
        .map_err(|s| agent_error(&s))?;
        self.follow(stream.into_inner().map(|r| r.map(|m| m.event)))
            .await
    }

    /// Sends what the host lacks, then asks it to deploy. With a base, only
    /// the entries that differ from the base travel, and only their hashes
    /// are asked about.
    async fn ship(
        &self,
        client: &mut AgentClient,
        base: Option<&(String, Arc<Manifest>)>,
    ) -> Result<tonic::Response<tonic::Streaming<agent::DeployResponse>>, tonic::Status> {
        let delta =
            base.map(|(id, manifest)| (id.clone(), Delta::between(manifest, &self.plan.manifest)));
        let files: Vec<&git::ManifestFile> = match &delta {
            Some((_, delta)) => delta.changed.clone(),
            None => self.plan.manifest.files.iter().collect(),
        };
        self.transfer(client, &files)
            .await
            .map_err(tonic::Status::unavailable)?;
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
            prepare_only: false,
            fencing_token: 0,
        };
        client.deploy(request).await
    }

    async fn transfer(
        &self,
        client: &mut AgentClient,
        files: &[&git::ManifestFile],
    ) -> Result<(), String> {
        let host = &self.host.name;
        let mut by_hash: HashMap<&str, (&str, u64)> = HashMap::new();
        for f in files {
            by_hash.entry(&f.sha256).or_insert((&f.blob, f.size));
        }
        let mut hashes: Vec<String> = by_hash.keys().map(|h| h.to_string()).collect();
        hashes.sort();
        let missing = client
            .missing_objects(MissingObjectsRequest {
                app: Some(self.target()),
                sha256: hashes,
            })
            .await
            .map_err(|s| agent_error(&s))?
            .into_inner()
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
            let (chunks_tx, chunks_rx) = mpsc::channel(8);
            let source = self.plan.app.repository.clone();
            let (target, blobs) = (self.target(), self.blobs.clone());
            // git2 blocks: read blobs on a blocking thread; the bounded channel
            // is the backpressure.
            let producer = tokio::task::spawn_blocking(move || {
                produce_chunks(&source, &blobs, target, wanted, chunks_tx)
            });
            let upload = client.upload_objects(ReceiverStream::new(chunks_rx)).await;
            let produced = producer.await.map_err(|e| e.to_string())?;
            produced.map_err(|e| format!("reading release contents from git failed: {e}"))?;
            upload.map_err(|s| agent_error(&s))?;
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

    /// Relays the agent's progress until its final result.
    async fn follow(
        &self,
        mut events: impl tokio_stream::Stream<Item = Result<Option<ProgressEvent>, tonic::Status>>
        + Unpin,
    ) -> Result<(), String> {
        let host = &self.host.name;
        while let Some(item) = events.next().await {
            let Some(event) = item.map_err(|s| agent_error(&s))? else {
                continue;
            };
            let stage = agent::Stage::try_from(event.stage)
                .map(|s| s.as_str_name().trim_start_matches("STAGE_").to_lowercase())
                .unwrap_or_default();
            let percent = TRANSFER_SHARE + event.percent.min(100) * (100 - TRANSFER_SHARE) / 100;
            if let Some(result) = event.result {
                return if result.success {
                    Ok(())
                } else {
                    Err(if result.error.is_empty() {
                        event.message
                    } else {
                        result.error
                    })
                };
            }
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
        Err("the agent's stream ended without a result".into())
    }
}

fn produce_chunks(
    source: &str,
    blobs: &BlobCache,
    target: AppTarget,
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
                fencing_token: 0,
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

fn agent_error(status: &tonic::Status) -> String {
    format!("agent: {} ({:?})", status.message(), status.code())
}

/// Joins an error and its sources into one line.
fn anyhow_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
