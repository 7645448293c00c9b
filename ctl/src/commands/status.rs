//! `slipctl status`: the fleet's live state, asked of every agent.

use clap::Args;
use slipway_proto::control::v1::GetFleetStatusRequest;

use crate::{
    cli::Output,
    connection::{Connection, rpc},
    output,
};

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only the hosts of this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only this app in each host's report
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
}

/// Prints one row per host (reachable, agent version, load, memory, disk)
/// and one per app on each host (current release, releases on disk).
pub async fn run(args: &StatusArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = GetFleetStatusRequest {
        environment: args.env.clone().unwrap_or_default(),
        app: args.app.clone().unwrap_or_default(),
    };
    let response = rpc(conn.api().await?.hosts().get_fleet_status(request).await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::fleet(&response.hosts))?),
    }
}
