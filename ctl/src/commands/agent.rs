//! `slipctl agent upgrade`: stage a new agent binary on the control plane
//! and upgrade an environment's agents to it, batch by batch, following the
//! upgrade's events; `slipctl agent show`: a recorded upgrade.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    AgentUpgrade, AgentUpgradeEvent, AgentUpgradeStatus, GetAgentUpgradeRequest,
    StageAgentBinaryRequest, UpgradeAgentsRequest,
    agent_upgrade_service_client::AgentUpgradeServiceClient,
};
use tokio::io::AsyncReadExt;

use crate::{
    connection::{Connection, RpcError, rpc},
    output::{self, Output},
};

/// Largest binary the control plane accepts.
const MAX_BINARY_BYTES: u64 = 256 << 20;
/// Bytes per chunk sent (the operator API decodes messages of at most 1 MiB).
const CHUNK: usize = 512 << 10;

/// The agents on the hosts.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Upgrade every agent of an environment to a new binary (admin): the
    /// binary is uploaded to the control plane, shipped to each host that
    /// lacks it, and each agent swaps itself for it once no operation runs,
    /// restarts and must report --version within the deadline, or its
    /// previous binary is put back. Stops per the environment's
    /// max_failed_hosts.
    #[command(disable_version_flag = true)]
    Upgrade(UpgradeArgs),
    /// Show a recorded upgrade: its binary, who asked, how it ended, the
    /// version each host reported last and its events (viewer).
    Show {
        /// The upgrade's id, as `agent upgrade` prints it (u-1)
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// Flags of `agent upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Environment whose hosts are upgraded
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The new slipway-agent binary (at most 256 MiB)
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,
    /// The version the binary reports (`--version`) [default: asked of the binary]
    #[arg(long, value_name = "X")]
    pub version: Option<String>,
    /// Hosts per batch [default: the environment's policy]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    /// Seconds each host has to come back with the new version
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub deadline: u32,
}

/// Runs an `agent` subcommand.
pub async fn run(command: &AgentCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    match command {
        AgentCommand::Upgrade(args) => upgrade(args, conn, output).await,
        AgentCommand::Show { id } => show(id, conn, output).await,
    }
}

/// Prints a recorded upgrade.
async fn show(id: &str, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut client = AgentUpgradeServiceClient::new(conn.channel().await?);
    let request = GetAgentUpgradeRequest { id: id.to_owned() };
    let answer = rpc(client.get_agent_upgrade(request).await)?;
    let upgrade = answer
        .upgrade
        .context("the control plane answered without the upgrade")?;
    match output {
        Output::Json => output::json(&upgrade),
        Output::Text => Ok(output::emit(&render(&upgrade))?),
    }
}

/// A recorded upgrade for a person: its fields, each host's version, then
/// its events as `agent upgrade` printed them.
fn render(upgrade: &AgentUpgrade) -> String {
    let status = match upgrade.status() {
        AgentUpgradeStatus::Running => "running",
        AgentUpgradeStatus::Succeeded => "succeeded",
        AgentUpgradeStatus::Failed => "failed",
        AgentUpgradeStatus::Skipped => "skipped",
        AgentUpgradeStatus::Unspecified => "-",
    };
    let mut out = output::fields(&[
        ("upgrade", upgrade.id.clone()),
        ("environment", upgrade.environment.clone()),
        ("version", upgrade.version.clone()),
        ("sha256", upgrade.sha256.clone()),
        ("author", upgrade.author.clone()),
        ("status", status.to_owned()),
    ]);
    let mut hosts = output::Table::new(&["HOST", "VERSION"]);
    let mut versions: Vec<_> = upgrade.host_versions.iter().collect();
    versions.sort();
    for (host, version) in versions {
        hosts.row(vec![host.clone(), output::or_dash(version)]);
    }
    if !hosts.is_empty() {
        out.push('\n');
        out.push_str(&hosts.render());
    }
    if !upgrade.events.is_empty() {
        out.push('\n');
    }
    for event in &upgrade.events {
        out.push_str(&line(event));
        out.push('\n');
    }
    out
}

/// Stages the binary, upgrades the environment's agents to it and follows
/// the upgrade to its end.
async fn upgrade(args: &UpgradeArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let version = match &args.version {
        Some(version) => version.clone(),
        None => reported_version(&args.binary).await?,
    };
    let mut client = AgentUpgradeServiceClient::new(conn.channel().await?);
    let sha256 = stage(&mut client, &args.binary).await?;
    let request = UpgradeAgentsRequest {
        environment: args.env.clone(),
        sha256,
        version,
        batch_size: args.batch_size.unwrap_or(0),
        deadline_seconds: args.deadline,
    };
    let events = client.upgrade_agents(request).await.map_err(RpcError)?;
    let mut last: Option<AgentUpgradeEvent> = None;
    let mut events = events.into_inner();
    while let Some(message) = events.message().await.map_err(RpcError)? {
        let Some(event) = message.event else { continue };
        match output {
            Output::Json => println!("{}", serde_json::to_string(&event)?),
            Output::Text => output::emit(&format!("{}\n", line(&event)))?,
        }
        last = Some(event);
    }
    match last {
        Some(event) if event.host.is_empty() && event.status() == AgentUpgradeStatus::Succeeded => {
            Ok(())
        }
        Some(event) => bail!(
            "agent upgrade {} failed: {}",
            event.upgrade_id,
            event.message
        ),
        None => bail!("the control plane ended the upgrade's stream without events"),
    }
}

fn line(event: &AgentUpgradeEvent) -> String {
    let status = match event.status() {
        AgentUpgradeStatus::Succeeded => "ok",
        AgentUpgradeStatus::Failed => "FAILED",
        AgentUpgradeStatus::Skipped => "skipped",
        _ => "..",
    };
    match event.host.as_str() {
        "" => format!("[{status}] {}", event.message),
        host => format!("[{status}] {host}: {}", event.message),
    }
}

/// Asks the binary for its version (`--version`, last word).
async fn reported_version(binary: &PathBuf) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run {} --version; give --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.split_whitespace().last() {
        Some(version) if output.status.success() => Ok(version.to_owned()),
        _ => bail!(
            "{} --version printed no version; give --version",
            binary.display()
        ),
    }
}

/// Uploads the binary; returns its SHA-256.
async fn stage(
    client: &mut AgentUpgradeServiceClient<tonic::transport::Channel>,
    binary: &PathBuf,
) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(binary)
        .await
        .with_context(|| format!("cannot open {}", binary.display()))?;
    let size = file.metadata().await?.len();
    if size == 0 || size > MAX_BINARY_BYTES {
        bail!(
            "{} has {size} bytes; an agent binary has 1 byte to 256 MiB",
            binary.display()
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let feed = async move {
        let mut first = true;
        loop {
            let mut data = vec![0; CHUNK];
            let n = file.read(&mut data).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            data.truncate(n);
            let size = if first { size } else { 0 };
            first = false;
            if tx
                .send(StageAgentBinaryRequest { size, data })
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    };
    let call = client.stage_agent_binary(tokio_stream::wrappers::ReceiverStream::new(rx));
    let (answer, fed) = tokio::join!(call, feed);
    fed.with_context(|| format!("cannot read {}", binary.display()))?;
    Ok(rpc(answer)?.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_upgrade_reads_as_fields_hosts_and_events() {
        let event = |host: &str, message: &str, status: AgentUpgradeStatus| AgentUpgradeEvent {
            upgrade_id: "u-3".into(),
            host: host.into(),
            message: message.into(),
            status: status as i32,
            ..AgentUpgradeEvent::default()
        };
        let upgrade = AgentUpgrade {
            id: "u-3".into(),
            environment: "prod".into(),
            sha256: "ab".repeat(32),
            version: "1.2.0".into(),
            author: "alice".into(),
            status: AgentUpgradeStatus::Failed as i32,
            events: vec![
                event(
                    "",
                    "batch 1 of 1: web-1, web-2",
                    AgentUpgradeStatus::Running,
                ),
                event("web-2", "reports 1.1.0", AgentUpgradeStatus::Failed),
            ],
            host_versions: [
                ("web-2".into(), "1.1.0".into()),
                ("web-1".into(), "1.2.0".into()),
            ]
            .into(),
        };
        let text = render(&upgrade);
        assert!(text.contains("status") && text.contains("failed"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let hosts: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with("web-"))
            .copied()
            .collect();
        assert_eq!(hosts.len(), 2, "{text}");
        assert!(
            hosts[0].starts_with("web-1") && hosts[0].ends_with("1.2.0"),
            "{text}"
        );
        assert!(lines.contains(&"[FAILED] web-2: reports 1.1.0"), "{text}");
        assert!(lines.contains(&"[..] batch 1 of 1: web-1, web-2"), "{text}");
    }
}
