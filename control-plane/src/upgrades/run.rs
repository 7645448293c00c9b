//! One upgrade's run: batch by batch, the hosts of a batch at once; the
//! upgrade stops when more hosts failed than the budget tolerates. Every
//! event is appended to the record (bounded) and sent on to the caller,
//! who may leave without stopping it; the record is written at each host's
//! outcome and at the end.

use slipway_proto::control::v1::{AgentUpgrade, AgentUpgradeEvent, AgentUpgradeStatus};
use tokio::{sync::mpsc, task::JoinSet};

use super::{Plan, host};
use crate::{Context, error::Error, store::agent_upgrades};

/// Events kept in a record at most.
const MAX_EVENTS: usize = 10_000;

/// Milliseconds since the Unix epoch, for ids.
pub fn millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The record and the caller's channel.
pub(super) struct Log {
    ctx: Context,
    record: AgentUpgrade,
    tx: mpsc::Sender<AgentUpgradeEvent>,
}

impl Log {
    /// Appends an event about `host` (empty: the upgrade) and sends it on.
    pub(super) async fn emit(
        &mut self,
        host: &str,
        status: AgentUpgradeStatus,
        version: &str,
        message: String,
    ) {
        let event = AgentUpgradeEvent {
            upgrade_id: self.record.id.clone(),
            sequence: self.record.events.len() as u64 + 1,
            time: Some(slipway_proto::now()),
            host: host.to_owned(),
            message,
            status: status.into(),
            agent_version: version.to_owned(),
        };
        if !version.is_empty() && !host.is_empty() {
            (self.record.host_versions).insert(host.to_owned(), version.to_owned());
        }
        if self.record.events.len() < MAX_EVENTS {
            self.record.events.push(event.clone());
        }
        // A caller that left stops getting events; the upgrade goes on.
        let _ = self.tx.send(event).await;
    }

    /// Writes the record.
    pub(super) async fn save(&self) -> Result<(), Error> {
        let op = agent_upgrades::put(&self.record);
        Ok(self.ctx.store.commit(vec![op]).await?)
    }
}

/// Records the upgrade and runs it in its own task.
pub(super) async fn spawn(
    ctx: Context,
    plan: Plan,
) -> Result<mpsc::Receiver<AgentUpgradeEvent>, Error> {
    let (tx, rx) = mpsc::channel(256);
    let record = AgentUpgrade {
        id: plan.id.clone(),
        environment: plan.environment.clone(),
        sha256: plan.sha256.clone(),
        version: plan.version.clone(),
        author: plan.author.clone(),
        status: AgentUpgradeStatus::Running.into(),
        events: Vec::new(),
        host_versions: Default::default(),
    };
    let mut log = Log { ctx, record, tx };
    log.save().await?;
    tokio::spawn(async move {
        let status = run(&mut log, &plan).await;
        log.record.status = status.into();
        if let Err(err) = log.save().await {
            tracing::error!(%err, upgrade = %plan.id, "cannot record the agent upgrade");
        }
    });
    Ok(rx)
}

async fn run(log: &mut Log, plan: &Plan) -> AgentUpgradeStatus {
    let hosts: usize = plan.batches.iter().map(Vec::len).sum();
    log.emit(
        "",
        AgentUpgradeStatus::Running,
        "",
        format!(
            "upgrade {} of {} hosts in environment {} to agent {} ({} batches, {} failed hosts tolerated)",
            plan.id,
            hosts,
            plan.environment,
            plan.version,
            plan.batches.len(),
            plan.max_failed_hosts
        ),
    )
    .await;
    let mut failed = Vec::new();
    for (number, batch) in plan.batches.iter().enumerate() {
        if failed.len() > plan.max_failed_hosts as usize {
            for host in batch {
                let why = "not tried: the upgrade stopped".to_owned();
                log.emit(&host.name, AgentUpgradeStatus::Skipped, "", why)
                    .await;
            }
            continue;
        }
        let names: Vec<&str> = batch.iter().map(|h| h.name.as_str()).collect();
        let note = format!(
            "batch {} of {}: {}",
            number + 1,
            plan.batches.len(),
            names.join(", ")
        );
        log.emit("", AgentUpgradeStatus::Running, "", note).await;
        let mut tasks = JoinSet::new();
        let (events, mut incoming) = mpsc::channel(64);
        for host in batch.clone() {
            let (ctx, plan, events) = (log.ctx.clone(), plan.clone(), events.clone());
            tasks.spawn(async move { host::upgrade(&ctx, &plan, &host, events).await });
        }
        drop(events);
        while let Some(event) = incoming.recv().await {
            let host::Note {
                host,
                status,
                version,
                message,
            } = event;
            if status == AgentUpgradeStatus::Failed {
                failed.push(host.clone());
            }
            log.emit(&host, status, &version, message).await;
        }
        while tasks.join_next().await.is_some() {}
        if let Err(err) = log.save().await {
            tracing::error!(%err, "cannot record the agent upgrade");
        }
    }
    let (status, message) = if failed.is_empty() {
        (
            AgentUpgradeStatus::Succeeded,
            format!("every host runs agent {}", plan.version),
        )
    } else if failed.len() > plan.max_failed_hosts as usize {
        (
            AgentUpgradeStatus::Failed,
            format!(
                "stopped: {} hosts failed ({}), more than the {} tolerated",
                failed.len(),
                failed.join(", "),
                plan.max_failed_hosts
            ),
        )
    } else {
        (
            AgentUpgradeStatus::Failed,
            format!(
                "{} hosts failed ({}), within the budget",
                failed.len(),
                failed.join(", ")
            ),
        )
    };
    let versions: Vec<String> = log
        .record
        .host_versions
        .iter()
        .map(|(h, v)| format!("{h}={v}"))
        .collect();
    let message = format!("{message}; versions: {}", versions.join(", "));
    log.emit("", status, "", message).await;
    status
}
