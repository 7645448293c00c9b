//! `slipway-bench-memory`: the control plane's memory while it cuts and
//! deploys a release holding one large file (300 MB of zeros by default,
//! about 0.3 MB in git). A real control-plane process and one agent; after a
//! warm-up deploy the process's peak RSS is reset (`/proc/<pid>/clear_refs`)
//! and its idle RSS read, then the large release is cut and deployed and the
//! peak (`VmHWM`) read again. `--packed` repacks the repository first, so
//! the blob is read from a pack rather than as a loose object.
//!
//! ```sh
//! cargo run -p slipway-tests --bin slipway-bench-memory -- --mb 300
//! cargo run -p slipway-tests --bin slipway-bench-memory -- --mb 300 --packed
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use slipway_proto::control::v1::DeploymentStatus;
use slipway_tests::{Cluster, repo::Change};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-memory",
    about = "Control-plane peak RSS deploying a release with one large file"
)]
struct Args {
    /// Size of the file of zeros, in MB.
    #[arg(long, default_value_t = 300)]
    mb: usize,
    /// Repack the repository so the large blob is packed.
    #[arg(long)]
    packed: bool,
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?;
    Ok(kb * 1024)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .start()
        .await;
    cluster
        .repo
        .commit("small", &[Change::File("a.txt", b"a\n")]);
    let (_, warm) = cluster.deploy("main").await;
    ensure!(
        warm.status == DeploymentStatus::Succeeded as i32,
        "warm-up failed"
    );

    let content = vec![0u8; args.mb << 20];
    cluster
        .repo
        .commit("large", &[Change::File("large.bin", &content)]);
    drop(content);
    if args.packed {
        let repacked = std::process::Command::new("git")
            .arg("-C")
            .arg(cluster.repo.path())
            .args(["repack", "-a", "-d", "-q"])
            .status()?;
        ensure!(repacked.success(), "git repack failed");
    }

    let pid = cluster.control_plane_process().pid();
    // Resets VmHWM to the current RSS, so the peak below is this deploy's.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    let idle = status_bytes(pid, "VmRSS:")?;
    let started = Instant::now();
    let (_, deployment) = cluster.deploy("main").await;
    let elapsed = started.elapsed();
    ensure!(
        deployment.status == DeploymentStatus::Succeeded as i32,
        "the deployment did not succeed: {}",
        deployment.error
    );
    let peak = status_bytes(pid, "VmHWM:")?;
    println!("| file | stored as | idle RSS MB | peak RSS MB | above idle MB | cut + deploy s |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    println!(
        "| {} MB of zeros | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        args.mb,
        if args.packed { "pack" } else { "loose object" },
        mb(idle),
        mb(peak),
        mb(peak.saturating_sub(idle)),
        elapsed.as_secs_f64()
    );
    cluster.shutdown().await;
    Ok(())
}
