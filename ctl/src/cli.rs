//! The command line: global flags and the tree of subcommands. Each
//! subcommand's own flags live next to its code under `commands/`.

use clap::{Parser, Subcommand};

use crate::{
    commands::{
        agent, app, approve, audit, cancel, cluster, completions, context, dashboard, deploy,
        deployment, drift, env, events, health, history, host, lock, man, notify, pki, queue,
        release, rollback, rollbacks, secret, source, stats, status, watch, webhook,
    },
    connection::ConnectionFlags,
    output::{ColorChoice, Output},
};

/// slipctl: ship releases to your fleet with Slipway and roll them back.
///
/// Every command except `pki` and `context` talks to the control plane over
/// mutual TLS with your operator certificate (see --pki-dir and --context).
#[derive(Debug, Parser)]
#[command(
    name = "slipctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// How to reach the control plane.
    #[command(flatten, next_help_heading = "Connection")]
    pub conn: ConnectionFlags,

    /// Output format: aligned text for people, JSON for scripts (one object
    /// per line for event streams).
    #[arg(
        short = 'o',
        long,
        global = true,
        env = "SLIPWAY_OUTPUT",
        value_enum,
        default_value_t = Output::Text,
        help_heading = "Output"
    )]
    pub output: Output,

    /// When to colour the output: auto (on a terminal, unless NO_COLOR is
    /// set; CLICOLOR_FORCE=1 forces it), always or never.
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_COLOR",
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN",
        help_heading = "Output"
    )]
    pub color: ColorChoice,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Named control planes with your certificates for each: add, use,
    /// list, show, remove.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Make and inspect certificates: the CA, agents, operators.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Register and inspect applications.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Register and inspect environments (test, prod, ...).
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// Add, remove and list target hosts.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Cut releases from git and inspect them.
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Deploy a release of an app to an environment and follow it live.
    Deploy(deploy::DeployArgs),
    /// Switch an environment back to an earlier release and follow it live.
    Rollback(rollback::RollbackArgs),
    /// Follow a running deployment (or replay a finished one).
    Watch(watch::WatchArgs),
    /// Ask every agent for its live state: health and current releases.
    Status(status::StatusArgs),
    /// Hosts' health over time as the control plane sampled it: state,
    /// uptime, response time and error rate of the apps' health probes, and
    /// a sparkline per metric.
    Health(health::HealthArgs),
    /// Check an environment's hosts for drift now: `current` not the
    /// recorded release, its files edited, deleted or added by hand,
    /// releases the control plane does not know. Exits 1 when any drifted.
    Drift(drift::DriftArgs),
    /// List past and running deployments, newest first.
    History(history::HistoryArgs),
    /// Inspect one deployment.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// List the rollbacks of an app in an environment: why, what they
    /// undid, and the time to recovery.
    Rollbacks(rollbacks::RollbacksArgs),
    /// Success rate and mean duration of finished deployments per app and
    /// environment.
    Stats(stats::StatsArgs),
    /// Read the audit trail of every mutating call, newest first (admin).
    Audit(audit::AuditArgs),
    /// Stop a running deployment: no new step starts, running hooks are
    /// terminated, and it ends cancelled once nothing runs any more.
    Cancel(cancel::CancelArgs),
    /// Approve a deployment that awaits approval (not your own); with
    /// --override (admin), release it whatever approvals are missing.
    Approve(approve::ApproveArgs),
    /// Reject a deployment that awaits approval: it ends cancelled.
    Reject(approve::RejectArgs),
    /// An environment's secrets: set (value from stdin or a file), list
    /// (never values), unset.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// The deployments that wait before they start: queued behind the lock
    /// of their app and environment. `slipctl cancel ID` cancels one.
    Queue(queue::QueueArgs),
    /// The control plane's replicas, which one leads, and the store's
    /// health.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Show deployment locks, or free one whose holder is gone.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// The agents on the hosts: upgrade an environment's agents in batches.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// The feed of deployment and host state changes across the fleet;
    /// `--follow` keeps watching and resumes after a dropped connection.
    Events(events::EventsArgs),
    /// Webhook notifications of deployment, host and drift events: add,
    /// list, remove, test, deliveries.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// The webhook git servers and CI call on a push, and the branch each
    /// environment auto-deploys: enable, disable, auto-deploy, show.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Apps' git sources: status against each environment, fetch now.
    #[command(subcommand)]
    Source(source::SourceCommand),
    /// The browser dashboard: a one-time login link, the open sessions.
    #[command(subcommand)]
    Dashboard(dashboard::DashboardCommand),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Write man pages: slipctl.1 and one page per subcommand.
    Man(man::ManArgs),
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};
    use slipway_proto::identity::Role;

    use super::*;
    use crate::commands::{history::StatusArg, pki::IssueCommand};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("slipctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deploy_takes_global_flags_anywhere() {
        let cli = parse(&[
            "deploy",
            "web",
            "--env",
            "prod",
            "--ref",
            "main",
            "-m",
            "fix login",
            "-o",
            "json",
            "--endpoint",
            "https://cp:7443",
            "--pki-dir",
            "/pki",
        ])
        .unwrap();
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.conn.endpoint.as_deref(), Some("https://cp:7443"));
        assert_eq!(
            cli.conn.pki_dir.as_deref(),
            Some(std::path::Path::new("/pki"))
        );
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.app.as_deref(), Some("web"));
        assert_eq!(args.env, "prod");
        assert_eq!(args.git_ref.as_deref(), Some("main"));
        assert_eq!(args.release, None);
        assert_eq!(args.message.as_deref(), Some("fix login"));
    }

    #[test]
    fn ref_and_release_exclude_each_other() {
        let err = parse(&[
            "deploy",
            "web",
            "--env",
            "prod",
            "--ref",
            "main",
            "--release",
            "r1",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["deploy", "web"][..],
            &["rollback", "web"],
            &["watch"],
            &["history", "--status", "exploded"],
            &[
                "host",
                "add",
                "web-1",
                "--address",
                "a:1",
                "--env",
                "prod",
                "--label",
                "nokey",
            ],
            &[
                "pki", "issue", "operator", "alice", "--role", "root", "--dir", "/pki",
            ],
            &["pki", "init", "--dir", "/pki", "--days", "0"],
            &["-o", "yaml", "app", "list"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn subcommands_parse() {
        let cli = parse(&[
            "pki", "issue", "operator", "alice", "--role", "deployer", "--dir", "/pki",
        ])
        .unwrap();
        let Command::Pki(pki::PkiCommand::Issue(IssueCommand::Operator(args))) = cli.command else {
            panic!("not pki issue operator")
        };
        assert_eq!(Role::from(args.role), Role::Deployer);
        assert_eq!(args.days, crate::pki::DEFAULT_VALIDITY_DAYS);

        let cli = parse(&[
            "host",
            "add",
            "web-1",
            "--address",
            "10.0.0.5:7444",
            "--env",
            "prod",
            "--label",
            "zone=a",
            "--label",
            "role=web=1",
        ])
        .unwrap();
        let Command::Host(host::HostCommand::Add(args)) = cli.command else {
            panic!("not host add")
        };
        assert_eq!(
            args.labels,
            [
                ("zone".to_owned(), "a".to_owned()),
                ("role".to_owned(), "web=1".to_owned())
            ]
        );

        let cli = parse(&["history", "--status", "failed", "--limit", "5"]).unwrap();
        let Command::History(args) = cli.command else {
            panic!("not history")
        };
        assert_eq!(args.status, Some(StatusArg::Failed));
        assert_eq!(args.limit, Some(5));

        let cli = parse(&["watch", "dep-0000000003", "--after", "12"]).unwrap();
        let Command::Watch(args) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(
            (args.deployment_id.as_str(), args.after),
            ("dep-0000000003", 12)
        );

        let cli = parse(&["release", "show", "web", "r1", "--manifest"]).unwrap();
        let Command::Release(release::ReleaseCommand::Show(args)) = cli.command else {
            panic!("not release show")
        };
        assert!(args.manifest);

        let cli = parse(&["rollback", "web", "--env", "prod", "--to", "r0"]).unwrap();
        let Command::Rollback(args) = cli.command else {
            panic!("not rollback")
        };
        assert_eq!(args.to.as_deref(), Some("r0"));
    }
}
