//! `slipctl deployment`: one deployment in detail, and its events.

use clap::{Args, Subcommand, ValueEnum};
use slipway_proto::control::v1::{GetDeploymentRequest, ListDeploymentEventsRequest, LogLevel};

use super::history::{shell_word, value_name};
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Deployments.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Show a deployment: status, releases, author, timing and every host.
    Show {
        /// Deployment id
        id: String,
    },
    /// Page through a deployment's events and hook output, in order,
    /// filtered by host, level, step and text.
    #[command(visible_alias = "logs")]
    Events(EventsArgs),
}

/// Flags of `deployment events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Deployment id
    pub id: String,
    /// Only events of this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only events at this level or above
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
    /// Only events of this step (a hook's name, health-check, ...)
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    /// Only events whose message contains this (ignoring case)
    #[arg(long, visible_alias = "text", value_name = "TEXT")]
    pub grep: Option<String>,
    /// At most this many (default 200)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue from a previous page
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// A minimum event level on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    /// Everything
    Debug,
    /// Normal progress and above
    Info,
    /// Warnings and errors
    Warn,
    /// Errors only
    Error,
}

impl From<LevelArg> for LogLevel {
    fn from(level: LevelArg) -> Self {
        match level {
            LevelArg::Debug => LogLevel::Debug,
            LevelArg::Info => LogLevel::Info,
            LevelArg::Warn => LogLevel::Warn,
            LevelArg::Error => LogLevel::Error,
        }
    }
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
        DeploymentCommand::Events(args) => events(args, conn, output).await,
    }
}

/// Prints one page of events and, when there is more, how to get it.
async fn events(args: &EventsArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = ListDeploymentEventsRequest {
        deployment_id: args.id.clone(),
        host: args.host.clone().unwrap_or_default(),
        min_level: args.level.map_or(LogLevel::Unspecified, Into::into) as i32,
        step: args.step.clone().unwrap_or_default(),
        text: args.grep.clone().unwrap_or_default(),
        page_size: args.limit.unwrap_or_default(),
        page_token: args.page_token.clone().unwrap_or_default(),
    };
    let response = rpc(conn
        .api()
        .await?
        .deployments()
        .list_deployment_events(request)
        .await)?;
    match output {
        Output::Json => output::json(&response)?,
        Output::Text => {
            output::emit(&output::event_lines(&response.events))?;
            if !response.next_page_token.is_empty() {
                eprintln!(
                    "more: {}",
                    next_page_command(args, &response.next_page_token)
                );
            }
        }
    }
    Ok(())
}

fn next_page_command(args: &EventsArgs, token: &str) -> String {
    let mut command = format!("slipctl deployment events {}", args.id);
    for (flag, value) in [("--host", &args.host), ("--step", &args.step)] {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {}", shell_word(value)));
        }
    }
    if let Some(level) = args.level {
        command.push_str(&format!(" --level {}", value_name(level)));
    }
    if let Some(text) = &args.grep {
        command.push_str(&format!(" --grep {}", shell_word(text)));
    }
    if let Some(limit) = args.limit {
        command.push_str(&format!(" --limit {limit}"));
    }
    command.push_str(&format!(" --page-token {token}"));
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_keeps_the_filters() {
        let args = EventsArgs {
            id: "dep-0000000003".into(),
            host: Some("web-1".into()),
            level: Some(LevelArg::Warn),
            step: None,
            grep: Some("disk full".into()),
            limit: Some(50),
            page_token: None,
        };
        assert_eq!(
            next_page_command(&args, "120"),
            "slipctl deployment events dep-0000000003 --host web-1 --level warn \
             --grep 'disk full' --limit 50 --page-token 120"
        );
    }
}
