//! `slipctl lock`: show deployment locks, and free one whose holder is gone.

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{GetLockRequest, ListLocksRequest, ReleaseLockRequest};

use crate::{
    confirm::confirm,
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Deployment locks.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show the lock of an app in an environment, or every held lock.
    Show(ShowArgs),
    /// Free a lock by force (admin); recorded in the audit trail.
    Release(ReleaseArgs),
}

/// Flags of `lock show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// App (all held locks when left out)
    pub app: Option<String>,
    /// Environment
    #[arg(long, value_name = "ENV", requires = "app")]
    pub env: Option<String>,
}

/// Flags of `lock release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// App
    pub app: String,
    /// Environment
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Required: freeing a lock overrides its holder
    #[arg(long)]
    pub force: bool,
    /// Why, recorded in the audit trail
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Runs a `lock` subcommand.
pub async fn run(command: &LockCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut locks = conn.api().await?.locks();
    match command {
        LockCommand::Show(args) => {
            let held = match (&args.app, &args.env) {
                (Some(app), Some(env)) => rpc(locks
                    .get_lock(GetLockRequest {
                        app: app.clone(),
                        environment: env.clone(),
                    })
                    .await)?
                .lock
                .into_iter()
                .collect(),
                (Some(app), None) => rpc(locks.list_locks(ListLocksRequest {}).await)?
                    .locks
                    .into_iter()
                    .filter(|l| &l.app == app)
                    .collect(),
                _ => rpc(locks.list_locks(ListLocksRequest {}).await)?.locks,
            };
            match output {
                Output::Json => {
                    output::json(&slipway_proto::control::v1::ListLocksResponse { locks: held })
                }
                Output::Text => Ok(output::emit(&output::locks(&held))?),
            }
        }
        LockCommand::Release(args) => {
            if !args.force {
                anyhow::bail!(
                    "freeing a lock overrides its holder; run again with --force if the holder is gone"
                );
            }
            let action = format!("free the lock of {} in {} by force", args.app, args.env);
            confirm(&action, &[], args.yes).await?;
            let response = rpc(locks
                .release_lock(ReleaseLockRequest {
                    app: args.app.clone(),
                    environment: args.env.clone(),
                    force: true,
                    reason: args.reason.clone().unwrap_or_default(),
                })
                .await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let lock = response.lock.unwrap_or_default();
                    Ok(output::emit(&format!(
                        "freed the lock of {} in {} held by {} ({}); its fencing token {} is now stale on the agents\n",
                        lock.app,
                        lock.environment,
                        lock.deployment_id,
                        output::or_dash(&lock.holder),
                        lock.fencing_token
                    ))?)
                }
            }
        }
    }
}
