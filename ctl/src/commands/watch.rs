//! `slipctl watch`: follow a deployment, replaying the events already recorded.

use crate::exit::Exit;

use clap::Args;
use futures_util::StreamExt;
use slipway_proto::control::v1::WatchDeploymentRequest;

use super::follow::follow;
use crate::{
    connection::{Connection, rpc},
    output::Output,
};

/// Flags of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Deployment id (from `deploy`, `history`)
    pub deployment_id: String,
    /// Only events after this number (the last one you saw)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub after: u64,
}

/// Prints the deployment's events until it finishes; exits 1 unless it succeeded.
pub async fn run(args: &WatchArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let api = conn.api().await?;
    let request = WatchDeploymentRequest {
        deployment_id: args.deployment_id.clone(),
        after_event: args.after,
    };
    let stream = rpc(api.deployments().watch_deployment(request).await)?;
    let events = stream.map(|item| item.map(|response| response.event));
    follow(
        &api,
        output,
        events,
        Some(args.deployment_id.clone()),
        args.after,
    )
    .await
}
