//! The slipway-agent binary: configuration from a file, the environment and
//! flags, validated before anything is bound; then serve until a signal.

use std::{net::SocketAddr, path::PathBuf, pin::pin, process::ExitCode};

use clap::Parser;
use slipway_agent::{Config, ConfigError, ConfigFile};
use slipway_proto::{
    daemon::{self, DRAIN_TIMEOUT, EXIT_CONFIG, chain},
    observe::MetricsListen,
};

/// Slipway agent: materialises releases and switches `current` on this host.
/// Only the control plane may call it (mutual TLS).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML); flags and environment variables override its keys.
    #[arg(long, env = "SLIPWAY_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:7444].
    #[arg(long, env = "SLIPWAY_AGENT_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// This host's name as registered in the control plane (a DNS name).
    #[arg(long, env = "SLIPWAY_AGENT_HOST_NAME", value_name = "NAME")]
    host_name: Option<String>,
    /// Directory of default app roots `<apps-dir>/<app>` [default: /srv].
    #[arg(long, env = "SLIPWAY_AGENT_APPS_DIR", value_name = "DIR")]
    apps_dir: Option<PathBuf>,
    /// Directory for the agent's state [default: /var/lib/slipway-agent].
    #[arg(long, env = "SLIPWAY_AGENT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A further directory app roots may lie under; repeat for more. Replaces
    /// the file's list.
    #[arg(
        long = "allowed-root",
        env = "SLIPWAY_AGENT_ALLOWED_ROOT",
        value_name = "DIR",
        value_delimiter = ','
    )]
    allowed_roots: Vec<PathBuf>,
    /// CA certificate (PEM) that signed the control plane's certificate.
    #[arg(long, env = "SLIPWAY_AGENT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// This agent's certificate (PEM).
    #[arg(long, env = "SLIPWAY_AGENT_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// This agent's private key (PEM).
    #[arg(long, env = "SLIPWAY_AGENT_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Log one JSON object per line.
    #[arg(long, env = "SLIPWAY_AGENT_LOG_JSON")]
    log_json: bool,
    /// Address of the metrics listener (/metrics, /healthz, /readyz over
    /// plain HTTP), or `off` [default: 127.0.0.1:9481].
    #[arg(long, env = "SLIPWAY_AGENT_METRICS_LISTEN", value_name = "ADDR|off")]
    metrics_listen: Option<MetricsListen>,
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

impl Args {
    /// The file's settings with every given flag or variable on top.
    fn into_config(self) -> Result<Config, ConfigError> {
        let mut file = match &self.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let set = |slot: &mut Option<_>, value: Option<_>| {
            if value.is_some() {
                *slot = value;
            }
        };
        file.listen = self.listen.or(file.listen);
        file.metrics_listen = self.metrics_listen.or(file.metrics_listen);
        file.host_name = self.host_name.or(file.host_name);
        set(&mut file.apps_dir, self.apps_dir);
        set(&mut file.data_dir, self.data_dir);
        set(&mut file.tls.ca, self.ca);
        set(&mut file.tls.cert, self.cert);
        set(&mut file.tls.key, self.key);
        if !self.allowed_roots.is_empty() {
            file.allowed_roots = Some(self.allowed_roots);
        }
        if self.log_json {
            file.log_json = Some(true);
        }
        let checked = file
            .into_config()
            .and_then(|config| config.validate().map(|()| config));
        // Name the file when there is one: the problem is most likely in it.
        checked.map_err(|source| match self.config {
            Some(path) => ConfigError::InFile {
                path,
                source: Box::new(source),
            },
            None => source,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    daemon::install_crypto_provider();
    // Packaging: the man page (hidden; the package and the tarball ship it).
    if daemon::man_requested() {
        return daemon::print_man(<Args as clap::CommandFactory>::command());
    }
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EXIT_CONFIG as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut args = args;
    if let Some(Command::Enroll(enroll_args)) = args.command.take() {
        return enroll(enroll_args, args.host_name).await;
    }
    let config = match args.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    daemon::init_tracing(config.log_json);

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
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %chain(&err), "slipway-agent failed");
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}
