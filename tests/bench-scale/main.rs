//! `slipway-bench-scale`: a real `slipway-control-plane` process (on sled,
//! or with `--store etcd` on a 3-member etcd cluster started for the run;
//! the build's profile) against N simulated agents speaking the real agent
//! contract over mutual TLS, each on its own port (served by this process,
//! see `slipway_tests::sim`). Registers the hosts, deploys a 1-file app to
//! all of them at once, then a change of that file, and prints each
//! deploy's wall time, events, events per second and the control plane's
//! RSS (VmRSS before, VmHWM during) from `/proc/<pid>/status`.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-scale -- --agents 1000 [--store etcd]
//! ```

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use clap::Parser;
use slipway_proto::{control::v1::DeploymentStatus, identity::Role};
use slipway_tests::{
    Cluster,
    cluster::ENV,
    etcd::EtcdCluster,
    procfs::{reset_peak, status_kib},
    sim::{SimAgents, SimOptions},
};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-scale",
    about = "Deploys to N simulated agents over TLS"
)]
struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Milliseconds every agent call waits.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many more milliseconds, drawn per call.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Deploys of a changed file after the first deploy.
    #[arg(long, default_value_t = 1)]
    changes: usize,
    /// The control plane's store.
    #[arg(long, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// Embedded, in the control plane's data directory.
    Sled,
    /// A 3-member etcd cluster on loopback, started for the run.
    Etcd,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let etcd = (args.store == StoreKind::Etcd).then(|| EtcdCluster::start(3));
    let mut builder = Cluster::builder().agents(0).process_control_plane();
    for (key, value) in etcd.iter().flat_map(|e| e.control_plane_env("bench")) {
        builder = builder.control_plane_env(key, &value);
    }
    let mut cluster = builder.start().await;
    let started = Instant::now();
    let options = SimOptions {
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        ..SimOptions::new(args.agents)
    };
    let sims = SimAgents::start(cluster.pki.dir(), options).await?;
    let sims_rss = mib(status_kib(std::process::id(), "VmRSS")?);
    eprintln!(
        "{} simulated agents started in {:.2?}; this process's RSS {sims_rss:.1} MB",
        args.agents,
        started.elapsed()
    );
    let started = Instant::now();
    sims.register(&cluster.hosts(Role::Admin).await, ENV)
        .await?;
    let registered = started.elapsed();

    println!("Control plane on {:?}:\n", args.store);
    println!("| step | hosts | wall s | events | events/s | CP RSS before MB | CP peak RSS MB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| register hosts | {} | {:.3} | | | | |",
        args.agents,
        registered.as_secs_f64()
    );
    cluster.commit_text("v1");
    deploy(&mut cluster, "1-file app, all at once", args.agents).await?;
    for change in 1..=args.changes {
        cluster.commit_text(&format!("v{}", change + 1));
        let step = match args.changes {
            1 => "1 file changed".to_owned(),
            _ => format!("1 file changed ({change})"),
        };
        deploy(&mut cluster, &step, args.agents).await?;
    }
    println!(
        "\nsimulated agents: {:.1} MB RSS in the bench process ({:.1} MB per 1,000)",
        mib(status_kib(std::process::id(), "VmRSS")?),
        mib(status_kib(std::process::id(), "VmRSS")?) * 1000.0 / args.agents.max(1) as f64
    );
    sims.shutdown().await
}

/// Deploys `main` to every host and prints the row of `step`.
async fn deploy(cluster: &mut Cluster, step: &str, hosts: usize) -> Result<()> {
    let pid = cluster.control_plane_process().pid();
    reset_peak(pid)?;
    let before = mib(status_kib(pid, "VmRSS")?);
    let started = Instant::now();
    let (events, deployment) = cluster.deploy("main").await;
    let wall = started.elapsed().as_secs_f64();
    let peak = mib(status_kib(pid, "VmHWM")?);
    ensure!(
        deployment.status == DeploymentStatus::Succeeded as i32,
        "{step} did not succeed: {}",
        deployment.error
    );
    ensure!(deployment.hosts.len() == hosts, "every host deployed");
    println!(
        "| {step} | {hosts} | {wall:.3} | {} | {:.0} | {before:.1} | {peak:.1} |",
        events.len(),
        events.len() as f64 / wall
    );
    Ok(())
}
