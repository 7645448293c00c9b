//! `slipctl history`: past and running deployments, newest first.

use clap::{Args, ValueEnum};
use pbjson_types::Timestamp;
use slipway_proto::control::v1::{DeploymentKind, DeploymentStatus, ListDeploymentsRequest};

use super::times;
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
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
    /// Only deploys or only rollbacks
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Only deployments by this operator (`alice` or `deployer/alice`)
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// Only deployments whose commit, ref, release id or message contains
    /// this (ignoring case)
    #[arg(long, visible_alias = "text", value_name = "TEXT")]
    pub grep: Option<String>,
    /// Only deployments started at or after this time: RFC 3339, a date, or
    /// an age such as 2h or 3d
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub since: Option<Timestamp>,
    /// Only deployments started before this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub until: Option<Timestamp>,
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

/// A deployment kind on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A new release shipped and activated
    Deploy,
    /// An earlier release activated again
    Rollback,
}

impl From<KindArg> for DeploymentKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Deploy => DeploymentKind::Deploy,
            KindArg::Rollback => DeploymentKind::Rollback,
        }
    }
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
        author: args.author.clone().unwrap_or_default(),
        text: args.grep.clone().unwrap_or_default(),
        since: args.since,
        until: args.until,
        kind: args.kind.map_or(DeploymentKind::Unspecified, Into::into) as i32,
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
    for (flag, value) in [
        ("--app", &args.app),
        ("--env", &args.env),
        ("--author", &args.author),
    ] {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {}", shell_word(value)));
        }
    }
    if let Some(status) = args.status {
        command.push_str(&format!(" --status {}", value_name(status)));
    }
    if let Some(kind) = args.kind {
        command.push_str(&format!(" --kind {}", value_name(kind)));
    }
    if let Some(text) = &args.grep {
        command.push_str(&format!(" --grep {}", shell_word(text)));
    }
    // Absolute, so that an age such as 2h means the same on every page.
    for (flag, value) in [("--since", &args.since), ("--until", &args.until)] {
        if let Some(at) = value {
            command.push_str(&format!(" {flag} {}", times::format(at)));
        }
    }
    if let Some(limit) = args.limit {
        command.push_str(&format!(" --limit {limit}"));
    }
    command.push_str(&format!(" --page-token {token}"));
    command
}

/// A flag value as clap spells it.
pub(crate) fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// `value` quoted for a POSIX shell when it needs it.
pub(crate) fn shell_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
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
            kind: None,
            author: None,
            grep: None,
            since: None,
            until: None,
            limit: Some(10),
            page_token: Some("old".into()),
        };
        assert_eq!(
            next_page_command(&args, "dep-0000000040"),
            "slipctl history --app web --status failed --limit 10 --page-token dep-0000000040"
        );
        let args = HistoryArgs {
            kind: Some(KindArg::Rollback),
            author: Some("alice".into()),
            grep: Some("fix it's".into()),
            since: Some(Timestamp {
                seconds: 1_795_443_840,
                nanos: 0,
            }),
            status: None,
            limit: None,
            ..args
        };
        assert_eq!(
            next_page_command(&args, "dep-0000000040"),
            "slipctl history --app web --author alice --kind rollback --grep 'fix it'\\''s' \
             --since 2026-11-23T14:24:00Z --page-token dep-0000000040"
        );
    }
}
