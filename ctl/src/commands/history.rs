//! `slipctl history`: past and running deployments, newest first.

use clap::{Args, ValueEnum};
use slipway_proto::control::v1::{DeploymentStatus, ListDeploymentsRequest};

use crate::{
    cli::Output,
    connection::{Connection, rpc},
    output,
};

/// Flags of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this app
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only deployments with this status
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// At most this many (default 50)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue from a previous page
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// A deployment status on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Recorded, not started
    Pending,
    /// In progress
    Running,
    /// Every host switched
    Succeeded,
    /// At least one host failed
    Failed,
    /// Stopped by an operator
    Cancelled,
    /// The control plane stopped while it ran
    Interrupted,
}

impl From<StatusArg> for DeploymentStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Pending => DeploymentStatus::Pending,
            StatusArg::Running => DeploymentStatus::Running,
            StatusArg::Succeeded => DeploymentStatus::Succeeded,
            StatusArg::Failed => DeploymentStatus::Failed,
            StatusArg::Cancelled => DeploymentStatus::Cancelled,
            StatusArg::Interrupted => DeploymentStatus::Interrupted,
        }
    }
}

/// Prints one page of deployments and, when there is more, how to get it.
pub async fn run(args: &HistoryArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = ListDeploymentsRequest {
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
        status: args
            .status
            .map_or(DeploymentStatus::Unspecified, Into::into) as i32,
        page_size: args.limit.unwrap_or_default(),
        page_token: args.page_token.clone().unwrap_or_default(),
        ..Default::default()
    };
    let response = rpc(conn
        .api()
        .await?
        .deployments()
        .list_deployments(request)
        .await)?;
    match output {
        Output::Json => output::json(&response)?,
        Output::Text => {
            output::emit(&output::deployments(&response.deployments))?;
            if !response.next_page_token.is_empty() {
                // On stderr, so that stdout stays the table.
                eprintln!(
                    "more: {}",
                    next_page_command(args, &response.next_page_token)
                );
            }
        }
    }
    Ok(())
}

fn next_page_command(args: &HistoryArgs, token: &str) -> String {
    let mut command = "slipctl history".to_owned();
    for (flag, value) in [("--app", &args.app), ("--env", &args.env)] {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {value}"));
        }
    }
    if let Some(status) = args.status {
        let name = status
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        command.push_str(&format!(" --status {name}"));
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
        let args = HistoryArgs {
            app: Some("web".into()),
            env: None,
            status: Some(StatusArg::Failed),
            limit: Some(10),
            page_token: Some("old".into()),
        };
        assert_eq!(
            next_page_command(&args, "dep-0000000040"),
            "slipctl history --app web --status failed --limit 10 --page-token dep-0000000040"
        );
    }
}
