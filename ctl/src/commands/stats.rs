//! `slipctl stats`: success rate and mean duration of finished deployments
//! per app and environment.

use clap::{Args, ValueEnum};
use pbjson_types::Timestamp;
use slipway_proto::control::v1::{GetDeploymentStatsRequest, StatsPeriod};

use super::times;
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Flags of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this app
    pub app: Option<String>,
    /// Only this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only deployments started at or after this time: RFC 3339, a date, or
    /// an age such as 2h or 3d
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub since: Option<Timestamp>,
    /// Only deployments started before this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = times::parse)]
    pub until: Option<Timestamp>,
    /// One row per day or week (UTC; weeks start on Monday)
    #[arg(long, value_enum)]
    pub by: Option<PeriodArg>,
}

/// A period of `stats --by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PeriodArg {
    /// Per UTC day
    Day,
    /// Per week, Monday to Sunday
    Week,
}

impl From<PeriodArg> for StatsPeriod {
    fn from(period: PeriodArg) -> Self {
        match period {
            PeriodArg::Day => StatsPeriod::Day,
            PeriodArg::Week => StatsPeriod::Week,
        }
    }
}

/// Prints one row per app and environment.
pub async fn run(args: &StatsArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = GetDeploymentStatsRequest {
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
        since: args.since,
        by: args.by.map_or(StatsPeriod::Unspecified, StatsPeriod::from) as i32,
        until: args.until,
    };
    let response = rpc(conn
        .api()
        .await?
        .deployments()
        .get_deployment_stats(request)
        .await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&output::stats(&response.stats))?),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{
        Cli, Command,
        commands::{audit, deployment, history, release},
    };

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("slipctl").chain(args.iter().copied()))
    }

    #[test]
    fn record_commands_parse() {
        let cli = parse(&["stats", "web", "--env", "prod", "--since", "3d"]).unwrap();
        let Command::Stats(args) = cli.command else {
            panic!("not stats")
        };
        assert_eq!(args.app.as_deref(), Some("web"));
        assert!(args.since.is_some());
        let cli = parse(&["stats", "--since", "30d", "--by", "day"]).unwrap();
        let Command::Stats(args) = cli.command else {
            panic!("not stats")
        };
        assert_eq!(args.by, Some(super::PeriodArg::Day));

        let cli = parse(&[
            "audit",
            "--actor",
            "alice",
            "--since",
            "2026-11-23T14:24:00Z",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Audit(audit::AuditArgs { since, limit, .. }) = cli.command else {
            panic!("not audit")
        };
        assert_eq!(since.map(|t| t.seconds), Some(1_795_443_840));
        assert_eq!(limit, Some(5));

        let cli = parse(&[
            "deployment",
            "logs",
            "dep-1",
            "--level",
            "warn",
            "--grep",
            "x",
        ])
        .unwrap();
        let Command::Deployment(deployment::DeploymentCommand::Events(args)) = cli.command else {
            panic!("not deployment events")
        };
        assert_eq!(args.level, Some(deployment::LevelArg::Warn));

        let cli = parse(&[
            "history", "--kind", "rollback", "--text", "abc", "--author", "bob",
        ])
        .unwrap();
        let Command::History(args) = cli.command else {
            panic!("not history")
        };
        assert_eq!(args.kind, Some(history::KindArg::Rollback));
        assert_eq!(args.grep.as_deref(), Some("abc"));

        let cli = parse(&["release", "mark", "web", "r1", "--bad", "--reason", "slow"]).unwrap();
        let Command::Release(release::ReleaseCommand::Mark(args)) = cli.command else {
            panic!("not release mark")
        };
        assert_eq!(args.mark(), slipway_proto::control::v1::ReleaseMark::Bad);
    }

    #[test]
    fn record_usage_errors_exit_2() {
        for args in [
            &["rollbacks", "web"][..],
            &["release", "mark", "web", "r1"],
            &["release", "mark", "web", "r1", "--bad", "--good"],
            &["history", "--since", "yesterday"],
            &["audit", "--until", "2x"],
            &["deployment", "events", "dep-1", "--level", "loud"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }
}
