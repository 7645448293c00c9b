//! `slipctl agent upgrade`: stage a new agent binary on the control plane
//! and upgrade an environment's agents to it, batch by batch, following the
//! upgrade's events.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    AgentUpgradeEvent, AgentUpgradeStatus, StageAgentBinaryRequest, UpgradeAgentsRequest,
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
    let AgentCommand::Upgrade(args) = command;
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
