//! The slipway-agent binary: configuration from a file, the environment and
//! flags, validated before anything is bound; then serve until a signal;
//! SIGHUP reloads what can change live.

use std::{
    path::{Path, PathBuf},
    pin::pin,
    process::ExitCode,
};

use clap::{ArgMatches, Parser};
use slipway_agent::{Config, config::KEYS};
use slipway_proto::{
    config::{ConfigError, Layered, args, start},
    daemon::{self, DRAIN_TIMEOUT, EXIT_CONFIG, chain},
};

/// Slipway agent: materialises releases and switches `current` on this host.
/// Only the control plane may call it (mutual TLS). Every setting below can
/// also be set in the --config file and by its environment variable; a flag
/// wins over the variable, the variable over the file.
#[derive(Debug, Parser)]
#[command(version = slipway_agent::stamp::version())]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, env = "SLIPWAY_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration with the source of every value and
    /// exit (0 when it is usable).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Get this host's certificate from the control plane with a one-time
    /// join token (`slipctl host add HOST --enroll` prints the command); the
    /// key is made here and never leaves the host.
    Enroll(EnrollArgs),
    /// Watch a pending upgrade of this host's agent (started by the agent
    /// itself from its previous binary): restore that binary and start it
    /// when the new one does not confirm itself in time.
    #[command(hide = true)]
    UpgradeWatch(UpgradeWatchArgs),
}

/// Flags of `upgrade-watch`.
#[derive(Debug, clap::Args)]
struct UpgradeWatchArgs {
    /// The agent's data directory, holding the pending-upgrade marker.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Flags of `enroll`.
#[derive(Debug, clap::Args)]
struct EnrollArgs {
    /// The control plane's enrollment address (host:port, port 7445 by default there)
    #[arg(long, value_name = "ADDR")]
    control_plane: String,
    /// Fingerprint of the control plane's CA (SHA256:...), as `slipctl host add --enroll` printed it
    #[arg(long, value_name = "SHA256")]
    ca_fingerprint: String,
    /// The join token
    #[arg(
        long,
        env = "SLIPWAY_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// This host's name, as added [default: --host-name]
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Directory for ca.crt, agent.crt and agent.key (created 0700)
    #[arg(long, value_name = "DIR", default_value = "/etc/slipway")]
    dir: PathBuf,
}

async fn enroll(args: EnrollArgs, host_name: Option<String>) -> ExitCode {
    let Some(host) = args.host.or(host_name) else {
        eprintln!("error: give --host (the name the host was added as)");
        return ExitCode::from(EXIT_CONFIG as u8);
    };
    let opts = slipway_agent::enroll::EnrollOptions {
        control_plane: args.control_plane,
        ca_fingerprint: args.ca_fingerprint,
        token: args.token,
        host,
        dir: args.dir,
    };
    match slipway_agent::enroll::enroll(&opts).await {
        Ok(paths) => {
            println!(
                "enrolled {}: wrote {}, {} and {}
start the agent with --ca {} --cert {} --key {}",
                opts.host,
                paths.ca.display(),
                paths.cert.display(),
                paths.key.display(),
                paths.ca.display(),
                paths.cert.display(),
                paths.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn load(file: Option<&Path>, matches: &ArgMatches) -> Result<(Layered, Config), ConfigError> {
    let layered = Layered::resolve(KEYS, file, args::given(KEYS, matches)?)?;
    slipway_agent::config::load(layered)
}

#[tokio::main]
async fn main() -> ExitCode {
    daemon::install_crypto_provider();
    let (mut args, matches) = match start::parse::<Args>(KEYS) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match args.command.take() {
        Some(Command::Enroll(enroll_args)) => {
            let host_name = matches.get_one::<String>("host_name").cloned();
            return enroll(enroll_args, host_name).await;
        }
        Some(Command::UpgradeWatch(watch)) => {
            return match slipway_agent::upgrade::watch::watch(&watch.data_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    slipway_agent::upgrade::enable();
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

    let (signalled, on_signal) = tokio::sync::oneshot::channel();
    let signal = daemon::shutdown_signal();
    let shutdown = async move {
        signal.await;
        let _ = signalled.send(());
    };
    let mut server = pin!(slipway_agent::run(config, shutdown));
    let result = tokio::select! {
        result = &mut server => result,
        Ok(()) = on_signal => match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "drain timed out; exiting with calls in flight");
                return ExitCode::SUCCESS;
            }
        },
    };
    match result {
        Ok(()) => match slipway_agent::upgrade::take_restart() {
            Some(restart) => {
                let err = restart.exec();
                tracing::error!(%err, "cannot restart into the new agent binary");
                eprintln!("error: cannot restart into the new agent binary: {err}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        },
        Err(err) => {
            tracing::error!(error = %chain(&err), "slipway-agent failed");
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}
