//! `slipctl deployment`: one deployment in detail.

use clap::Subcommand;
use slipway_proto::control::v1::GetDeploymentRequest;

use crate::{
    cli::Output,
    connection::{Connection, rpc},
    output,
};

/// Deployments.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Show a deployment: status, releases, author, timing and every host.
    Show {
        /// Deployment id
        id: String,
    },
}

/// Runs a `deployment` subcommand.
pub async fn run(
    command: &DeploymentCommand,
    conn: &Connection,
    output: Output,
) -> anyhow::Result<()> {
    match command {
        DeploymentCommand::Show { id } => {
            let request = GetDeploymentRequest {
                deployment_id: id.clone(),
            };
            let response = rpc(conn
                .api()
                .await?
                .deployments()
                .get_deployment(request)
                .await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::deployment(
                    &response.deployment.unwrap_or_default(),
                ))?),
            }
        }
    }
}
