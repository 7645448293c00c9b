//! `slipway-bench-hook-output`: the agent's memory while a hook prints a
//! lot. For each size (50 MB and 1 GB by default) a fresh cluster with one
//! real agent process deploys a release whose before-activate hook prints
//! that many bytes in 100-byte lines. The agent's RSS is sampled from
//! `/proc/<pid>/status` while it runs; printed: the RSS when idle, the peak
//! (VmHWM, and the highest VmRSS sampled) above idle, the events the
//! deployment recorded and the time from the deploy to its final event.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-hook-output -- --mb 50 --mb 1000
//! ```

#![forbid(unsafe_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use futures_util::StreamExt;
use slipway_proto::control::v1::DeploymentStatus;
use slipway_tests::{Cluster, repo::Change, spec};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-hook-output",
    about = "Agent memory while a hook prints a lot"
)]
struct Args {
    /// Megabytes (10^6 bytes) the hook prints; repeat for several runs.
    #[arg(long = "mb", default_values_t = [50u64, 1000])]
    sizes: Vec<u64>,
}

/// One field of `/proc/<pid>/status` in kB.
fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

struct Run {
    mb: u64,
    idle_kb: u64,
    hwm_kb: u64,
    sampled_kb: u64,
    events: u64,
    seconds: f64,
}

async fn run(mb: u64) -> Result<Run> {
    // 100-byte lines: 99 characters and a newline.
    let hook = format!(
        "yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -c {}",
        mb * 1_000_000
    );
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(spec::hooks(vec![spec::before_activate("chatty", &hook)]))
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let pid = cluster.agents[0].process().pid();
    // Idle: started, registered and polled by the control plane.
    let idle_kb = status_kb(pid, "VmHWM")?;

    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !done.load(Ordering::SeqCst) {
                tick.tick().await;
                if let Ok(kb) = status_kb(pid, "VmRSS") {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
            }
        })
    };
    let started = Instant::now();
    let mut stream = cluster.deploy_stream("main").await;
    let (mut events, mut last) = (0u64, None);
    while let Some(item) = stream.next().await {
        events += 1;
        last = item?.event;
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    sampler.await?;
    let last = last.unwrap_or_default();
    ensure!(
        last.status == DeploymentStatus::Succeeded as i32,
        "the deployment did not succeed: {}",
        last.message
    );
    let hwm_kb = status_kb(pid, "VmHWM")?;
    cluster.shutdown().await;
    Ok(Run {
        mb,
        idle_kb,
        hwm_kb,
        sampled_kb: peak.load(Ordering::SeqCst),
        events,
        seconds,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for mb in args.sizes {
        runs.push(run(mb).await?);
    }
    println!(
        "| hook output | agent RSS idle | peak (VmHWM) above idle | highest sampled VmRSS above idle | events | seconds to record |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mb = |kb: u64| kb as f64 / 1024.0;
    for run in runs {
        println!(
            "| {} MB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {:.2} |",
            run.mb,
            mb(run.idle_kb),
            mb(run.hwm_kb.saturating_sub(run.idle_kb)),
            mb(run.sampled_kb.saturating_sub(run.idle_kb)),
            run.events,
            run.seconds
        );
    }
    Ok(())
}
