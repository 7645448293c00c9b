//! `slipctl rollbacks`: the rollbacks of an app in an environment, newest
//! first, with their reason and time to recovery.

use clap::Args;
use slipway_proto::control::v1::GetRollbackTimelineRequest;

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `rollbacks`.
#[derive(Debug, Args)]
pub struct RollbacksArgs {
    /// App name
    pub app: String,
    /// Environment name
    #[arg(long, value_name = "ENV")]
    pub env: String,
}

/// Prints the rollback timeline.
pub async fn run(args: &RollbacksArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = GetRollbackTimelineRequest {
        app: args.app.clone(),
        environment: args.env.clone(),
    };
    let response = rpc(conn
        .api()
        .await?
        .deployments()
        .get_rollback_timeline(request)
        .await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::rollbacks(&response.rollbacks))?),
    }
}
