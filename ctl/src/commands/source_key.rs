//! `slipctl source key`: an app's SSH deploy key, generated and held by the
//! control plane; its public half is printed to paste into the git server.

use clap::Subcommand;
use slipway_proto::control::v1::{
    CreateDeployKeyRequest, DeployKey, DeployKeyProblem, GetDeployKeyRequest,
    RevokeDeployKeyRequest, RotateDeployKeyRequest, TestDeployKeyRequest,
    deploy_key_service_client::DeployKeyServiceClient,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Deploy keys.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate the app's ed25519 key pair (admin) and print the public
    /// key to add to the git server.
    Create {
        /// App name
        app: String,
        /// The ssh server's host key to pin ("ssh-ed25519 AAAA...", as
        /// ssh-keyscan prints it); default: the first connection pins it
        #[arg(long, value_name = "KEY")]
        known_host: Option<String>,
    },
    /// Print the app's public key, its fingerprint, when it was last used
    /// and the pinned host key.
    Show {
        /// App name
        app: String,
    },
    /// Connect to the app's remote with the key and list its refs (admin);
    /// exits 1 on failure, saying whether authentication, the host key or
    /// the network failed.
    Test {
        /// App name
        app: String,
        /// Pin this host key first, in place of the pinned one (after the
        /// server's key was replaced)
        #[arg(long, value_name = "KEY")]
        known_host: Option<String>,
    },
    /// Replace the app's key pair with a new one (admin).
    Rotate {
        /// App name
        app: String,
    },
    /// Delete the app's key pair (admin).
    Revoke {
        /// App name
        app: String,
    },
}

/// Runs a `source key` subcommand; Ok(false) when a test failed.
pub async fn run(command: &KeyCommand, conn: &Connection, output: Output) -> anyhow::Result<bool> {
    let mut keys = DeployKeyServiceClient::new(conn.channel().await?);
    match command {
        KeyCommand::Create { app, known_host } => {
            let request = CreateDeployKeyRequest {
                app: app.clone(),
                known_host: known_host.clone().unwrap_or_default(),
            };
            let response = rpc(keys.create_deploy_key(request).await)?;
            print_key(output, &response, response.key.as_ref())?;
        }
        KeyCommand::Show { app } => {
            let request = GetDeployKeyRequest { app: app.clone() };
            let response = rpc(keys.get_deploy_key(request).await)?;
            print_key(output, &response, response.key.as_ref())?;
            if let (Output::Text, Some(host)) = (output, &response.known_host) {
                output::emit(&output::fields(&[(
                    "known host",
                    format!("{} {}", host.algorithm, host.fingerprint),
                )]))?;
            }
        }
        KeyCommand::Test { app, known_host } => {
            let request = TestDeployKeyRequest {
                app: app.clone(),
                known_host: known_host.clone().unwrap_or_default(),
            };
            let response = rpc(keys.test_deploy_key(request).await)?;
            match output {
                Output::Json => output::json(&response)?,
                Output::Text if response.ok => {
                    output::emit(&format!("ok: the remote listed {} refs", response.refs))?
                }
                Output::Text => {
                    let problem = DeployKeyProblem::try_from(response.problem)
                        .unwrap_or(DeployKeyProblem::Other);
                    output::emit(&format!(
                        "failed ({}): {}",
                        problem_name(problem),
                        response.error
                    ))?
                }
            }
            return Ok(response.ok);
        }
        KeyCommand::Rotate { app } => {
            let request = RotateDeployKeyRequest { app: app.clone() };
            let response = rpc(keys.rotate_deploy_key(request).await)?;
            print_key(output, &response, response.key.as_ref())?;
        }
        KeyCommand::Revoke { app } => {
            let request = RevokeDeployKeyRequest { app: app.clone() };
            let response = rpc(keys.revoke_deploy_key(request).await)?;
            match output {
                Output::Json => output::json(&response)?,
                Output::Text => output::emit(&format!("revoked the deploy key of {app}"))?,
            }
        }
    }
    Ok(true)
}

fn print_key<T: serde::Serialize>(
    output: Output,
    response: &T,
    key: Option<&DeployKey>,
) -> anyhow::Result<()> {
    let key = key.cloned().unwrap_or_default();
    match output {
        Output::Json => output::json(response),
        Output::Text => Ok(output::emit(&format!(
            "{}\n{}",
            key.public_key,
            output::fields(&[
                ("fingerprint", key.fingerprint.clone()),
                ("created", output::time(key.created_at.as_ref())),
                (
                    "last used",
                    key.last_used_at
                        .as_ref()
                        .map_or_else(|| "never".to_owned(), |t| output::time(Some(t))),
                ),
            ])
        ))?),
    }
}

fn problem_name(problem: DeployKeyProblem) -> &'static str {
    match problem {
        DeployKeyProblem::Auth => "authentication",
        DeployKeyProblem::HostKeyChanged => "host key changed",
        DeployKeyProblem::UnknownHost => "unknown host",
        DeployKeyProblem::Network => "network",
        DeployKeyProblem::Other | DeployKeyProblem::Unspecified => "error",
    }
}
