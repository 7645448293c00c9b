//! Runs the subcommand a command line names: each subcommand's `run`,
//! with the exit code of those that decide one (see [`crate::exit`]).

use clap::CommandFactory;

use crate::exit::Exit;

use crate::{
    cli::{Cli, Command},
    commands::*,
    connection::Connection,
};

/// Runs the command `cli` names over `conn` (the flags resolved with the
/// context in use). `Ok` carries the exit code of a command that decides it
/// ([`Exit`]).
pub async fn run(cli: &Cli, conn: &Connection) -> anyhow::Result<Exit> {
    let output = cli.output;
    match &cli.command {
        Command::Context(command) => {
            context::run(command, &cli.conn, output).map(|()| Exit::Success)
        }
        Command::Pki(command) => pki::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::App(command) => app::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Env(command) => env::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Host(command) => host::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Release(command) => release::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Deploy(args) => deploy::run(args, conn, output).await,
        Command::Rollback(args) => rollback::run(args, conn, output).await,
        Command::Watch(args) => watch::run(args, conn, output).await,
        Command::Drift(args) => drift::run(args, conn, output).await,
        Command::Status(args) => status::run(args, conn, output).await,
        Command::Health(args) => health::run(args, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::History(args) => history::run(args, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Deployment(command) => deployment::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Rollbacks(args) => rollbacks::run(args, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Stats(args) => stats::run(args, conn, output).await.map(|()| Exit::Success),
        Command::Audit(args) => audit::run(args, conn, output).await,
        Command::Cancel(args) => cancel::run(args, conn, output).await,
        Command::Lock(command) => lock::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Agent(command) => agent::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Events(args) => events::run(args, conn, output).await,
        Command::Approve(args) => approve::approve(args, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Reject(args) => approve::reject(args, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Cluster(command) => cluster::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Queue(args) => queue::run(args, conn, output).await.map(|()| Exit::Success),
        Command::Secret(command) => secret::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Notify(command) => notify::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Webhook(command) => webhook::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Dashboard(command) => dashboard::run(command, conn, output)
            .await
            .map(|()| Exit::Success),
        Command::Source(command) => source::run(command, conn, output)
            .await
            .map(Exit::success_if),
        Command::Completions(args) => {
            completions::run(args, Cli::command()).map(|()| Exit::Success)
        }
        Command::Man(args) => man::run(args, Cli::command()).map(|()| Exit::Success),
    }
}
