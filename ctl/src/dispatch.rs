//! Runs the subcommand a command line names: each subcommand's `run`,
//! with the exit code of those that decide one (a deployment that did not
//! succeed exits 1).

use std::process::ExitCode;

use crate::{
    cli::{Cli, Command},
    commands::*,
};

/// Runs the command `cli` names. `Ok` carries the exit code of a command
/// that decides it (a deployment that did not succeed exits 1).
pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let conn = &cli.conn;
    let output = cli.output;
    match &cli.command {
        Command::Pki(command) => pki::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::App(command) => app::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Env(command) => env::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Host(command) => host::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Release(command) => release::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Deploy(args) => deploy::run(args, conn, output).await,
        Command::Rollback(args) => rollback::run(args, conn, output).await,
        Command::Watch(args) => watch::run(args, conn, output).await,
        Command::Drift(args) => drift::run(args, conn, output).await,
        Command::Status(args) => status::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Health(args) => health::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::History(args) => history::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Deployment(command) => deployment::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Rollbacks(args) => rollbacks::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Stats(args) => stats::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Audit(args) => audit::run(args, conn, output).await,
        Command::Cancel(args) => cancel::run(args, conn, output).await,
        Command::Lock(command) => lock::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Events(args) => events::run(args, conn, output).await,
        Command::Approve(args) => approve::approve(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Reject(args) => approve::reject(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Queue(args) => queue::run(args, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Notify(command) => notify::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Webhook(command) => webhook::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Dashboard(command) => dashboard::run(command, conn, output)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Source(command) => source::run(command, conn, output).await.map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
    }
}
