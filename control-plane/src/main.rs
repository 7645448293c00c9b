//! `slipway-control-plane`: resolves its configuration (file, environment,
//! flags), then serves until a signal; SIGHUP reloads what can change live.
//! `migrate` copies a store between backends instead.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use slipway_control_plane::{
    config::{self, KEYS},
    migrate_command::{self, MigrateArgs},
};
use slipway_proto::{
    config::{ConfigError, Layered, args, start},
    daemon,
};

/// The Slipway control plane: operator gRPC API, state in sled, rollouts to agents.
/// Every setting below can also be set in the --config file and by its
/// environment variable; a flag wins over the variable, the variable over
/// the file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "SLIPWAY_CP_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration with the source of every value and
    /// exit (0 when it is usable).
    #[arg(long)]
    check_config: bool,
    /// With no command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Copy the store into another backend (sled to etcd, or back) and
    /// check the copy.
    ///
    /// Every record of every tree is copied into a store that holds none,
    /// then both sides are read back and compared: per-tree counts and a
    /// SHA-256 over every tree's keys and values. Stop the control plane
    /// that uses the source first.
    Migrate(MigrateArgs),
}

fn load(
    file: Option<&std::path::Path>,
    matches: &clap::ArgMatches,
) -> Result<(Layered, slipway_control_plane::Config), ConfigError> {
    let layered = Layered::resolve(KEYS, file, args::given(KEYS, matches)?)?;
    config::load(layered)
}

#[tokio::main]
async fn main() -> ExitCode {
    daemon::install_crypto_provider();
    let (args, matches) = match start::parse::<Args>(KEYS) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if let Some(Command::Migrate(migrate)) = args.command {
        return migrate_store(migrate).await;
    }
    let file = args.config.clone();
    let loaded = start::start(
        args.check_config,
        move || load(file.as_deref(), &matches),
        |config| config.log_json,
    );
    let config = match loaded {
        Ok(config) => config,
        Err(code) => return code,
    };
    let shutdown = daemon::shutdown_signal();
    match slipway_control_plane::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", daemon::chain(&err));
            eprintln!("error: {}", daemon::chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Runs `migrate` off the async runtime (the store calls block) and
/// prints its lines; a failure exits 1 with the whole chain.
async fn migrate_store(args: MigrateArgs) -> ExitCode {
    let done = tokio::task::spawn_blocking(move || migrate_command::run(&args)).await;
    match done {
        Ok(Ok(lines)) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            eprintln!("error: {}", daemon::chain(&err));
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: the migration stopped: {err}");
            ExitCode::FAILURE
        }
    }
}
