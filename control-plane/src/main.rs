//! `slipway-control-plane`: parses its configuration and runs the server.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use slipway_control_plane::config::{ConfigError, FileConfig, SigningFiles, TlsFiles};
use slipway_proto::{daemon, observe::MetricsListen};

/// The Slipway control plane: operator gRPC API, state in sled, rollouts to agents.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "SLIPWAY_CP_CONFIG")]
    config: Option<PathBuf>,
    /// Operator API address.
    #[arg(long, env = "SLIPWAY_CP_LISTEN")]
    listen: Option<SocketAddr>,
    /// sled data directory.
    #[arg(long, env = "SLIPWAY_CP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Directory with ca.crt, control-plane.{crt,key} and control-plane-client.{crt,key}
    /// as written by `slipctl pki init`; fills every TLS path not given otherwise.
    #[arg(long, env = "SLIPWAY_CP_PKI_DIR")]
    pki_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "SLIPWAY_CP_LOG_JSON")]
    log_json: bool,
    /// Seconds between checks of hosts whose outcome is unknown (default 30).
    #[arg(long, env = "SLIPWAY_CP_RECHECK_EVERY_SECONDS")]
    recheck_every_seconds: Option<u64>,
    /// Seconds between two health samples of every host (default 30).
    #[arg(long, env = "SLIPWAY_CP_HEALTH_SAMPLE_EVERY_SECONDS")]
    health_sample_every_seconds: Option<u64>,
    /// Seconds between drift checks of every environment; 0 turns the
    /// check on an interval off (default 600).
    #[arg(long, env = "SLIPWAY_CP_DRIFT_EVERY_SECONDS")]
    drift_every_seconds: Option<u64>,
    /// Days a finished deployment keeps its event log; 0 keeps every log
    /// (default 90). Records are always kept.
    #[arg(long, env = "SLIPWAY_CP_HISTORY_RETENTION_DAYS")]
    history_retention_days: Option<u64>,
    /// A directory apps' git repositories may lie in (repeatable; default:
    /// any absolute path).
    #[arg(
        long = "source-root",
        env = "SLIPWAY_CP_SOURCE_ROOTS",
        value_delimiter = ','
    )]
    source_roots: Vec<PathBuf>,
    /// Seconds between fetches of every remote git source (default 300;
    /// 0: only before a release cut and on demand).
    #[arg(long, env = "SLIPWAY_CP_SOURCE_POLL_SECONDS")]
    source_poll_seconds: Option<u64>,
    /// PEM file of extra CA certificates trusted for https git sources,
    /// besides the system's.
    #[arg(long, env = "SLIPWAY_CP_SOURCE_HTTPS_CA_FILE")]
    source_https_ca_file: Option<PathBuf>,
    /// Address of the enrollment listener, where new agents get their
    /// certificate with a join token, e.g. 0.0.0.0:7445 (off by default;
    /// needs the CA's key, e.g. ca.key in --pki-dir).
    #[arg(long, env = "SLIPWAY_CP_ENROLL_LISTEN")]
    enroll_listen: Option<SocketAddr>,
    /// Address of the metrics listener (/metrics, /healthz, /readyz over
    /// plain HTTP), or `off` (default 127.0.0.1:9480).
    #[arg(long, env = "SLIPWAY_CP_METRICS_LISTEN")]
    metrics_listen: Option<MetricsListen>,
    /// Address of the web listener: HTTPS with the server certificate, for
    /// the webhooks of git servers and CI (`/hooks/<app>`), e.g.
    /// 0.0.0.0:7480 (off by default).
    #[arg(long, env = "SLIPWAY_CP_WEB_LISTEN")]
    web_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    daemon::install_crypto_provider();
    // Packaging: the man page (hidden; the package and the tarball ship it).
    if daemon::man_requested() {
        return daemon::print_man(<Args as clap::CommandFactory>::command());
    }
    let args = Args::parse();
    let config = match load(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {}", daemon::chain(&err));
            return ExitCode::from(daemon::EXIT_CONFIG as u8);
        }
    };
    daemon::init_tracing(config.log_json);
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

fn load(args: &Args) -> Result<slipway_control_plane::Config, ConfigError> {
    let mut file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    file.listen = args.listen.or(file.listen);
    file.data_dir = args.data_dir.clone().or(file.data_dir);
    file.log_json = Some(args.log_json || file.log_json.unwrap_or(false));
    file.recheck_every_seconds = args.recheck_every_seconds.or(file.recheck_every_seconds);
    file.health_sample_every_seconds = args
        .health_sample_every_seconds
        .or(file.health_sample_every_seconds);
    file.drift_every_seconds = args.drift_every_seconds.or(file.drift_every_seconds);
    file.history_retention_days = args.history_retention_days.or(file.history_retention_days);
    file.enroll_listen = args.enroll_listen.or(file.enroll_listen);
    file.metrics_listen = args.metrics_listen.or(file.metrics_listen);
    file.web_listen = args.web_listen.or(file.web_listen);
    if !args.source_roots.is_empty() {
        file.source_roots = Some(args.source_roots.clone());
    }
    let sources = file.sources.get_or_insert_with(Default::default);
    sources.poll_seconds = args.source_poll_seconds.or(sources.poll_seconds);
    sources.https_ca_file = args
        .source_https_ca_file
        .clone()
        .or(sources.https_ca_file.take());
    if let Some(dir) = &args.pki_dir {
        let files = |name: &str| TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        file.tls = file.tls.or_else(|| Some(files("control-plane")));
        file.agent_tls = file
            .agent_tls
            .or_else(|| Some(files("control-plane-client")));
        // A PKI directory with the CA's key: this control plane signs
        // agents' certificates (enrollment, renewal).
        if file.signing.is_none() && dir.join("ca.key").is_file() {
            file.signing = Some(SigningFiles {
                ca_cert: dir.join("ca.crt"),
                ca_key: dir.join("ca.key"),
            });
        }
    }
    // Errors of settings name the file they may come from.
    file.finish().map_err(|err| match &args.config {
        Some(path) => ConfigError::InFile {
            path: path.clone(),
            source: Box::new(err),
        },
        None => err,
    })
}
