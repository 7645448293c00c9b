//! `slipctl cancel`: stop a running deployment.

use crate::exit::Exit;

use clap::Args;
use slipway_proto::control::v1::{CancelDeploymentRequest, DeploymentStatus, GetDeploymentRequest};

use crate::{
    confirm::confirm,
    connection::{Api, Connection, rpc},
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
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Asks the control plane to stop the deployment and waits until nothing
/// of it runs any more; exits 1 unless it ended cancelled.
pub async fn run(args: &CancelArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let api = conn.api().await?;
    let action = describe(&api, &args.deployment).await?;
    confirm(&action, &[], args.yes).await?;
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

/// `cancel dep-… (deploy of web to prod, release r2, running)`; a
/// deployment that does not exist is refused here, before any question.
async fn describe(api: &Api, deployment_id: &str) -> anyhow::Result<String> {
    let deployment = rpc(api
        .deployments()
        .get_deployment(GetDeploymentRequest {
            deployment_id: deployment_id.to_owned(),
        })
        .await)?
    .deployment
    .unwrap_or_default();
    Ok(format!(
        "cancel {deployment_id} ({} of {} to {}, release {}, {})",
        output::kind_name(deployment.kind()),
        deployment.app,
        deployment.environment,
        output::or_dash(&deployment.release),
        output::status_name(deployment.status()),
    ))
}
