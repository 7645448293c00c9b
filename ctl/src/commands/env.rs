//! `slipctl env`: register and inspect environments.

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    CreateEnvironmentRequest, Environment, GetEnvironmentRequest, GetEnvironmentStatusRequest,
    ListEnvironmentsRequest, UpdateEnvironmentRequest,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Environments.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Register an environment (admin).
    Create(CreateArgs),
    /// Change an environment's description or rollout policy (admin).
    Update(CreateArgs),
    /// List the environments.
    List,
    /// Show one environment with its hosts.
    Show {
        /// Environment name
        name: String,
    },
    /// Summarise an environment per app: the release it runs and on how
    /// many hosts, who deployed it and when, the last deployment, health,
    /// releases not deployed yet.
    Status {
        /// Environment name
        name: String,
    },
}

/// Flags of `env create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Environment name: lowercase letters, digits and '-', starting with a letter
    pub name: String,
    /// Free text shown in listings
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// How deployments to it roll out
    #[command(flatten)]
    pub policy: super::policy::PolicyArgs,
    /// What a deployment waits for before it starts
    #[command(flatten)]
    pub gates: super::gates::GatesArgs,
}

/// Runs an `env` subcommand.
pub async fn run(command: &EnvCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut envs = conn.api().await?.environments();
    match command {
        EnvCommand::Create(args) => {
            let environment = Environment {
                name: args.name.clone(),
                description: args.description.clone().unwrap_or_default(),
                created_at: None,
                rollout_policy: Some(args.policy.apply(Default::default())),
                gates: Some(args.gates.apply(Default::default())),
            };
            let request = CreateEnvironmentRequest {
                environment: Some(environment),
            };
            let response = rpc(envs.create_environment(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let env = response.environment.unwrap_or_default();
                    let text = format!(
                        "created environment {}\n{}",
                        env.name,
                        output::environment(&env, &[])
                    );
                    Ok(output::emit(&text)?)
                }
            }
        }
        EnvCommand::Update(args) => {
            let current = rpc(envs
                .get_environment(GetEnvironmentRequest {
                    name: args.name.clone(),
                })
                .await)?
            .environment
            .unwrap_or_default();
            let environment = Environment {
                description: args.description.clone().unwrap_or(current.description),
                rollout_policy: Some(
                    args.policy
                        .apply(current.rollout_policy.unwrap_or_default()),
                ),
                gates: Some(args.gates.apply(current.gates.unwrap_or_default())),
                ..current
            };
            let request = UpdateEnvironmentRequest {
                environment: Some(environment),
            };
            let response = rpc(envs.update_environment(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let env = response.environment.unwrap_or_default();
                    let text = format!(
                        "updated environment {}\n{}",
                        env.name,
                        output::environment(&env, &[])
                    );
                    Ok(output::emit(&text)?)
                }
            }
        }
        EnvCommand::List => {
            let response = rpc(envs.list_environments(ListEnvironmentsRequest {}).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::environments(&response.environments))?),
            }
        }
        EnvCommand::Show { name } => {
            let request = GetEnvironmentRequest { name: name.clone() };
            let response = rpc(envs.get_environment(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let env = response.environment.clone().unwrap_or_default();
                    Ok(output::emit(&output::environment(&env, &response.hosts))?)
                }
            }
        }
        EnvCommand::Status { name } => {
            let request = GetEnvironmentStatusRequest { name: name.clone() };
            let response = rpc(envs.get_environment_status(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::environment_status(&response))?),
            }
        }
    }
}
