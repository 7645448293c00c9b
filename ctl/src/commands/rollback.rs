//! `slipctl rollback`: switch an environment back to an earlier release.

use crate::exit::Exit;

use clap::Args;
use futures_util::StreamExt;
use slipway_proto::control::v1::RollbackRequest;

use super::follow::{detach, follow};
use crate::{
    confirm::confirm,
    connection::{Connection, rpc},
    output::Output,
};

/// Flags of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// App to roll back
    pub app: String,
    /// Environment to roll back
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Release to go back to (default: the one current before the last
    /// successful deployment)
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Why, recorded with the rollback
    #[arg(short, long)]
    pub message: Option<String>,
    /// Print the rollback's id (with `-o json`: its record) and exit 0 at
    /// once; it goes on (follow it with `slipctl watch ID`)
    #[arg(long)]
    pub detach: bool,
    /// While another deployment holds the lock, wait in the queue instead of
    /// being refused (`slipctl queue` lists it, `slipctl cancel ID` cancels it)
    #[arg(long)]
    pub queue: bool,
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Policy for this rollback (default: the environment's)
    #[command(flatten)]
    pub policy: super::policy::PolicyArgs,
}

/// Starts the rollback and prints its events until it finishes; exits 1
/// unless it succeeded.
pub async fn run(args: &RollbackArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let target = match &args.to {
        Some(release) => format!("release {release}"),
        None => "the previous good release".to_owned(),
    };
    let action = format!("roll back {} in {} to {target}", args.app, args.env);
    confirm(&action, &[], args.yes).await?;
    let api = conn.api().await?;
    let request = RollbackRequest {
        app: args.app.clone(),
        environment: args.env.clone(),
        release_id: args.to.clone().unwrap_or_default(),
        message: args.message.clone().unwrap_or_default(),
        policy: super::deploy::policy_override(&api, &args.env, &args.policy).await?,
        queue: args.queue,
    };
    let stream = rpc(api.deployments().rollback(request).await)?;
    let events = stream.map(|item| item.map(|response| response.event));
    if args.detach {
        return detach(&api, output, events).await;
    }
    follow(&api, output, events, None, 0).await
}
