//! `slipway-sim-agents`: N simulated agents in one process, each on its own
//! loopback port with its own certificate from the CA of a `slipctl pki`
//! directory, speaking the real agent contract (see `slipway_tests::sim`).
//! Prints each host's name and address (or writes them to a file), its own
//! memory per 1,000 agents, and serves until interrupted.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-sim-agents -- \
//!     --agents 1000 --pki-dir pki --hosts-file hosts.txt --latency-ms 5 --jitter-ms 5
//! ```

#![forbid(unsafe_code)]

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Parser;
use slipway_control_plane::agents::simulated::Behaviour;
use slipway_proto::{
    control::v1::host_service_client::HostServiceClient,
    tls::{self, Peer, TlsMaterial, TlsPaths},
};
use slipway_tests::sim::{SimAgents, SimOptions};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-sim-agents",
    about = "Serves N simulated Slipway agents"
)]
struct Args {
    /// Agents to serve.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// PKI directory made by `slipctl pki init` (its CA signs the agents'
    /// certificates).
    #[arg(long)]
    pki_dir: PathBuf,
    /// Host names: this prefix and a 4-digit number from 1.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Milliseconds every call waits before it is answered.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many more milliseconds, drawn per call.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Chance (0-1) that a prepare fails.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Seed of the latency and failure draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The next prepare of this host fails (repeatable).
    #[arg(long, value_name = "HOST")]
    fail_prepare: Vec<String>,
    /// The next activation of this host fails (repeatable).
    #[arg(long, value_name = "HOST")]
    fail_activate: Vec<String>,
    /// Write `<name> <address>` lines here instead of to stdout.
    #[arg(long)]
    hosts_file: Option<PathBuf>,
    /// Add every host to this environment of the control plane at
    /// `--register` (as operator-admin of the PKI directory).
    #[arg(long, requires = "register")]
    environment: Option<String>,
    /// The control plane's address, for `--environment`.
    #[arg(long, requires = "environment")]
    register: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.fail_rate) {
        bail!("--fail-rate must be between 0 and 1");
    }
    let options = SimOptions {
        agents: args.agents,
        prefix: args.prefix.clone(),
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        fail_rate: args.fail_rate,
        seed: args.seed,
        validity_days: 30,
    };
    let sims = SimAgents::start(&args.pki_dir, options).await?;
    script(&sims, &args)?;
    match &args.hosts_file {
        Some(path) => std::fs::write(path, sims.hosts_file())
            .with_context(|| format!("write {}", path.display()))?,
        None => print!("{}", sims.hosts_file()),
    }
    if let (Some(addr), Some(env)) = (&args.register, &args.environment) {
        let admin = TlsMaterial::load(&TlsPaths {
            ca: args.pki_dir.join("ca.crt"),
            cert: args.pki_dir.join("operator-admin.crt"),
            key: args.pki_dir.join("operator-admin.key"),
        })?;
        let channel = tls::endpoint(addr, Peer::ControlPlane, &admin)?.connect_lazy();
        sims.register(&HostServiceClient::new(channel), env).await?;
    }
    let rss = slipway_tests::procfs::status_kib(std::process::id(), "VmRSS")? as f64 / 1024.0;
    eprintln!(
        "serving {} simulated agents; RSS {rss:.1} MB ({:.1} MB per 1,000 agents)",
        args.agents,
        rss * 1000.0 / args.agents.max(1) as f64
    );
    slipway_proto::daemon::shutdown_signal().await;
    sims.shutdown().await
}

/// Queues the scripted failures.
fn script(sims: &SimAgents, args: &Args) -> Result<()> {
    for (hosts, activate) in [(&args.fail_prepare, false), (&args.fail_activate, true)] {
        for name in hosts {
            let node = sims
                .node(name)
                .with_context(|| format!("no simulated agent {name}"))?;
            let failure = Behaviour::Fail("scripted failure (simulated)".into());
            if activate {
                node.host.on_activate(failure);
            } else {
                node.host.on_prepare(failure);
            }
        }
    }
    Ok(())
}
