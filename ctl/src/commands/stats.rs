//! `slipctl stats`: success rate and mean duration of finished deployments
//! per app and environment.

use clap::Args;
use pbjson_types::Timestamp;
use slipway_proto::control::v1::GetDeploymentStatsRequest;

use super::times;
use crate::{
    cli::Output,
    connection::{Connection, rpc},
    output,
};

/// Flags of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this app
    pub app: Option<String>,
    /// Only this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only deployments started at or after this time: RFC 3339, a date, or
    /// an age such as 2h or 3d
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub since: Option<Timestamp>,
}

/// Prints one row per app and environment.
pub async fn run(args: &StatsArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = GetDeploymentStatsRequest {
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
        since: args.since,
    };
    let response = rpc(conn
        .api()
        .await?
        .deployments()
        .get_deployment_stats(request)
        .await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::stats(&response.stats))?),
    }
}
