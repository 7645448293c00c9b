//! `slipctl approve` and `slipctl reject`: decide on a deployment that
//! awaits the approvals its environment requires.

use clap::Args;
use slipway_proto::control::v1::{ApproveDeploymentRequest, RejectDeploymentRequest};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Deployment id
    pub deployment: String,
    /// Why, recorded with the approval
    #[arg(short, long)]
    pub message: Option<String>,
    /// Release it whatever approvals are missing (admin; audited)
    #[arg(long = "override")]
    pub admin_override: bool,
}

/// Flags of `reject`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Deployment id
    pub deployment: String,
    /// Why (required), recorded with the rejection
    #[arg(short, long)]
    pub message: String,
}

/// Approves the deployment and prints it.
pub async fn approve(args: &ApproveArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = ApproveDeploymentRequest {
        deployment_id: args.deployment.clone(),
        message: args.message.clone().unwrap_or_default(),
        admin_override: args.admin_override,
    };
    let response = rpc(conn
        .api()
        .await?
        .approvals()
        .approve_deployment(request)
        .await)?;
    print(&response, response.deployment.as_ref(), output)
}

/// Rejects the deployment and prints it.
pub async fn reject(args: &RejectArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = RejectDeploymentRequest {
        deployment_id: args.deployment.clone(),
        message: args.message.clone(),
    };
    let response = rpc(conn
        .api()
        .await?
        .approvals()
        .reject_deployment(request)
        .await)?;
    print(&response, response.deployment.as_ref(), output)
}

fn print<T: serde::Serialize>(
    response: &T,
    deployment: Option<&slipway_proto::control::v1::Deployment>,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json => output::json(response),
        Output::Text => Ok(output::emit(&output::deployment(
            &deployment.cloned().unwrap_or_default(),
        ))?),
    }
}
