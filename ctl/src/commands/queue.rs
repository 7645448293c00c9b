//! `slipctl queue`: the deployments that wait before they start, by app
//! and environment, then place.

use clap::Args;
use slipway_proto::control::v1::ListQueueRequest;

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Only this app's deployments
    #[arg(long)]
    pub app: Option<String>,
    /// Only this environment's deployments
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

/// Prints the waiting deployments.
pub async fn run(args: &QueueArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = ListQueueRequest {
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
    };
    let response = rpc(conn.api().await?.queue().list_queue(request).await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::queue(&response.deployments))?),
    }
}
