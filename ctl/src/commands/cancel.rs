//! `slipctl cancel`: stop a running deployment.

use crate::exit::Exit;

use clap::Args;
use slipway_proto::control::v1::{CancelDeploymentRequest, DeploymentStatus};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Deployment id
    pub deployment: String,
    /// Why, recorded with the deployment
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Seconds between SIGTERM and SIGKILL of running hooks
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub grace: u32,
}

/// Asks the control plane to stop the deployment and waits until nothing
/// of it runs any more; exits 1 unless it ended cancelled.
pub async fn run(args: &CancelArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let api = conn.api().await?;
    let response = rpc(api
        .deployments()
        .cancel_deployment(CancelDeploymentRequest {
            deployment_id: args.deployment.clone(),
            reason: args.reason.clone().unwrap_or_default(),
            grace_seconds: args.grace,
        })
        .await)?;
    let deployment = response.deployment.clone().unwrap_or_default();
    match output {
        Output::Json => output::json(&response)?,
        Output::Text => output::emit(&output::deployment(&deployment))?,
    }
    Ok(if deployment.status == DeploymentStatus::Cancelled as i32 {
        Exit::Success
    } else {
        Exit::Failure
    })
}
