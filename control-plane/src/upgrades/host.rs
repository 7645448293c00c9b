//! One host's upgrade: ship the binary unless the host holds it, ask the
//! agent to swap itself for it, then ask (on new connections) until it
//! reports the outcome: the new version confirmed, or the previous binary
//! restored; silence past the deadline is a failure too.

use std::time::Duration;

use slipway_proto::{
    AGENT_UPGRADE_CONTRACT,
    agent::v1::{
        AgentUpgradeState, GetStatusRequest, HostInfo, UpgradeAgentRequest,
        UploadAgentBinaryRequest,
    },
    control::v1::{AgentUpgradeStatus, Host},
};
use tokio::{io::AsyncReadExt, sync::mpsc};

use super::Plan;
use crate::{Context, agents::AgentClient};

/// Bytes per chunk sent.
const CHUNK: usize = 512 << 10;
/// How long the agent may wait for its running operations.
const IDLE_TIMEOUT_SECONDS: u32 = 300;
/// Between two questions while the host restarts.
const POLL: Duration = Duration::from_millis(200);
/// Beyond the agent's own deadline: the time its watchdog needs to put the
/// previous binary back and start it.
const GRACE: Duration = Duration::from_secs(15);

/// What happened on a host.
pub(super) struct Note {
    pub host: String,
    pub status: AgentUpgradeStatus,
    pub version: String,
    pub message: String,
}

struct Reporter<'a> {
    host: &'a str,
    tx: mpsc::Sender<Note>,
}

impl Reporter<'_> {
    async fn note(&self, status: AgentUpgradeStatus, version: &str, message: String) {
        let note = Note {
            host: self.host.to_owned(),
            status,
            version: version.to_owned(),
            message,
        };
        let _ = self.tx.send(note).await;
    }
}

/// Upgrades `host`; its events go to `tx`, the last one with its outcome.
pub(super) async fn upgrade(ctx: &Context, plan: &Plan, host: &Host, tx: mpsc::Sender<Note>) {
    let report = Reporter {
        host: &host.name,
        tx,
    };
    match steps(ctx, plan, host, &report).await {
        Ok(version) => {
            let message = format!("runs agent {version}");
            report
                .note(AgentUpgradeStatus::Succeeded, &version, message)
                .await;
        }
        Err((version, message)) => {
            report
                .note(AgentUpgradeStatus::Failed, &version, message)
                .await;
        }
    }
}

type Failed = (String, String);

async fn steps(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    report: &Reporter<'_>,
) -> Result<String, Failed> {
    let fail = |message: String| (String::new(), message);
    let client = ctx
        .agents
        .connect(host)
        .await
        .map_err(|e| fail(e.message))?;
    let info = status(&client).await.map_err(fail)?;
    if info.contract_version < AGENT_UPGRADE_CONTRACT {
        return Err((
            info.agent_version.clone(),
            format!(
                "agent {} speaks contract {}; upgrades need {AGENT_UPGRADE_CONTRACT}",
                info.agent_version, info.contract_version
            ),
        ));
    }
    let from = info.agent_version;
    let running = AgentUpgradeStatus::Running;
    report
        .note(
            running,
            &from,
            format!("runs agent {from}; shipping the binary"),
        )
        .await;
    let shipped = ship(ctx, plan, &client)
        .await
        .map_err(|m| (from.clone(), m))?;
    report.note(running, &from, shipped).await;
    let request = UpgradeAgentRequest {
        sha256: plan.sha256.clone(),
        expected_version: plan.version.clone(),
        deadline_seconds: plan.deadline_seconds,
        idle_timeout_seconds: IDLE_TIMEOUT_SECONDS,
    };
    let answer = client
        .upgrade_agent(request)
        .await
        .map_err(|s| (from.clone(), format!("the agent refused: {}", s.message())))?;
    drop(client);
    ctx.agents.forget(host);
    let note = format!(
        "binary swapped after the running operations ended; restarting ({})",
        answer.restart
    );
    report.note(running, &from, note).await;
    verify(ctx, plan, host)
        .await
        .map_err(|(v, m)| (if v.is_empty() { from.clone() } else { v }, m))
}

async fn status(client: &AgentClient) -> Result<HostInfo, String> {
    let answer = client
        .get_status(GetStatusRequest::default())
        .await
        .map_err(|s| s.message().to_owned())?;
    Ok(answer.host.unwrap_or_default())
}

/// Sends the binary; the agent answers at once when it holds it.
async fn ship(ctx: &Context, plan: &Plan, client: &AgentClient) -> Result<String, String> {
    let path = ctx
        .agent_binaries
        .path(&plan.sha256)
        .map_err(|e| e.to_string())?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("cannot read the staged binary: {e}"))?;
    let (tx, rx) = mpsc::channel(2);
    let (sha256, size) = (plan.sha256.clone(), plan.size);
    let feed = async move {
        let mut first = true;
        loop {
            let mut data = vec![0; CHUNK];
            let n = match file.read(&mut data).await {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 && !first {
                return;
            }
            data.truncate(n);
            let chunk = UploadAgentBinaryRequest {
                sha256: if first { sha256.clone() } else { String::new() },
                size: if first { size } else { 0 },
                data,
            };
            first = false;
            if tx.send(chunk).await.is_err() || n == 0 {
                return; // The agent answered (it holds the binary) or failed.
            }
        }
    };
    let (answer, ()) = tokio::join!(client.upload_agent_binary(rx), feed);
    let answer = answer.map_err(|s| format!("cannot ship the binary: {}", s.message()))?;
    Ok(if answer.already_present {
        "the host holds the binary already; nothing sent".to_owned()
    } else {
        format!("binary shipped ({} bytes)", answer.bytes)
    })
}

/// Asks until the host reports this upgrade's outcome, or the deadline.
async fn verify(ctx: &Context, plan: &Plan, host: &Host) -> Result<String, Failed> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(plan.deadline_seconds.into()) + GRACE;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match ctx.agents.connect_once(host).await {
            Ok(client) => match status(&client).await {
                Ok(info) => {
                    if let Some(outcome) = verdict(plan, &info) {
                        return outcome;
                    }
                    last = format!(
                        "it reports agent {} without an outcome yet",
                        info.agent_version
                    );
                }
                Err(message) => last = message,
            },
            Err(err) => last = err.message,
        }
        tokio::time::sleep(POLL).await;
    }
    Err((
        String::new(),
        format!(
            "did not come back within {} s ({last}); its watchdog restores the previous binary",
            plan.deadline_seconds
        ),
    ))
}

/// The outcome a status tells about this upgrade, if it tells one.
fn verdict(plan: &Plan, info: &HostInfo) -> Option<Result<String, Failed>> {
    let outcome = info
        .last_upgrade
        .as_ref()
        .filter(|o| o.sha256 == plan.sha256)?;
    let version = info.agent_version.clone();
    Some(match outcome.state() {
        AgentUpgradeState::Confirmed if version == plan.version => {
            if info.contract_version < AGENT_UPGRADE_CONTRACT {
                Err((version, "the new agent reports an older contract".into()))
            } else {
                Ok(version)
            }
        }
        AgentUpgradeState::Confirmed => Err((
            version.clone(),
            format!(
                "the new agent reports version {version}, not {}",
                plan.version
            ),
        )),
        AgentUpgradeState::RolledBack => {
            Err((version, format!("rolled back: {}", outcome.message)))
        }
        AgentUpgradeState::Unspecified => return None,
    })
}
