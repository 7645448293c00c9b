//! `slipctl audit`: the trail of every mutating call, newest first, and
//! `slipctl audit verify`, which checks its hash chain (admin).

use crate::exit::Exit;

use clap::{Args, Subcommand};
use pbjson_types::Timestamp;
use slipway_proto::control::v1::{ListAuditEventsRequest, VerifyAuditTrailRequest};

use super::{history::shell_word, times};
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// What else to do with the trail
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only calls by this operator (`alice` or `admin/alice`)
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only methods containing this, e.g. `Deploy` or `HostService/`
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Only calls at or after this time: RFC 3339, a date, or an age such as
    /// 2h or 3d
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub since: Option<Timestamp>,
    /// Only calls before this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub until: Option<Timestamp>,
    /// At most this many (default 100)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue from a previous page
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// Subcommands of `audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the trail's hash chain: prints "N entries verified", or the
    /// first broken link (the entry and what is wrong) and exits 1.
    Verify,
}

/// Runs `audit` or `audit verify`.
pub async fn run(args: &AuditArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    match args.command {
        Some(AuditCommand::Verify) => verify(conn, output).await,
        None => list(args, conn, output).await.map(|()| Exit::Success),
    }
}

async fn verify(conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let request = VerifyAuditTrailRequest {};
    let response = rpc(conn.api().await?.audit().verify_audit_trail(request).await)?;
    match output {
        Output::Json => output::json(&response)?,
        Output::Text if response.broken_sequence == 0 => output::emit(&format!(
            "{} entries verified (the chain starts at entry {})",
            response.verified, response.first_sequence
        ))?,
        Output::Text => output::emit(&format!(
            "broken link at entry {}: {}",
            response.broken_sequence, response.problem
        ))?,
    }
    Ok(if response.broken_sequence == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Prints one page of the trail and, when there is more, how to get it.
async fn list(args: &AuditArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = ListAuditEventsRequest {
        actor: args.actor.clone().unwrap_or_default(),
        method: args.method.clone().unwrap_or_default(),
        since: args.since,
        until: args.until,
        page_size: args.limit.unwrap_or_default(),
        page_token: args.page_token.clone().unwrap_or_default(),
    };
    let response = rpc(conn.api().await?.audit().list_audit_events(request).await)?;
    match output {
        Output::Json => output::json(&response)?,
        Output::Text => {
            output::emit(&output::audit_events(&response.events))?;
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

fn next_page_command(args: &AuditArgs, token: &str) -> String {
    let mut command = "slipctl audit".to_owned();
    for (flag, value) in [("--actor", &args.actor), ("--method", &args.method)] {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {}", shell_word(value)));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_keeps_the_filters() {
        let args = AuditArgs {
            command: None,
            actor: Some("alice".into()),
            method: Some("Deploy".into()),
            since: Some(Timestamp {
                seconds: 1_795_443_840,
                nanos: 0,
            }),
            until: None,
            limit: Some(20),
            page_token: None,
        };
        assert_eq!(
            next_page_command(&args, "41"),
            "slipctl audit --actor alice --method Deploy --since 2026-11-23T14:24:00Z \
             --limit 20 --page-token 41"
        );
    }
}
