//! `slipctl deploy`: ship a release to an environment and follow it live.

use std::process::ExitCode;

use clap::Args;
use futures_util::StreamExt;
use slipway_proto::control::v1::DeployRequest;

use super::follow::follow;
use crate::{
    cli::Output,
    connection::{Connection, rpc},
};

/// Flags of `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// App to deploy
    pub app: String,
    /// Environment to deploy to
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Branch, tag or commit to cut (or reuse) a release from (default: the app's branch)
    #[arg(long = "ref", value_name = "REF", conflicts_with = "release")]
    pub git_ref: Option<String>,
    /// An existing release to deploy
    #[arg(long, value_name = "ID")]
    pub release: Option<String>,
    /// Why, recorded with the deployment
    #[arg(short, long)]
    pub message: Option<String>,
}

/// Starts the deployment and prints its events until it finishes; exits 1
/// unless it succeeded.
pub async fn run(args: &DeployArgs, conn: &Connection, output: Output) -> anyhow::Result<ExitCode> {
    let api = conn.api().await?;
    let request = DeployRequest {
        app: args.app.clone(),
        environment: args.env.clone(),
        git_ref: args.git_ref.clone().unwrap_or_default(),
        release_id: args.release.clone().unwrap_or_default(),
        message: args.message.clone().unwrap_or_default(),
        policy: None,
    };
    let stream = rpc(api.deployments().deploy(request).await)?;
    let events = stream.map(|item| item.map(|response| response.event));
    follow(&api, output, events, None, 0).await
}
