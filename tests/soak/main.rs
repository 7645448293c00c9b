//! `slipway-soak`: deploy/rollback cycles against real agent and control
//! plane processes, SIGKILLing one of them at a random moment of every
//! cycle, then checking the invariants Slipway promises.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-soak -- --cycles 200 --agents 4
//! ```
//!
//! After every cycle it checks, and at the end prints:
//! - hosts whose `current` pointed at a missing or partial release (every
//!   file of the release's manifest present with its size, mode kind and
//!   symlink target);
//! - lost deployment records (a deployment the soak started that the
//!   control plane no longer has, or that never finished);
//! - stuck locks (a lock held once its deployment has finished).
//!
//! All three must be zero; the exit status is 1 otherwise.

#![forbid(unsafe_code)]

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{
        DeploymentStatus, GetReleaseRequest, ListLocksRequest, ManifestEntry, RollbackRequest,
        RolloutPolicy, RolloutStrategy, lock_service_client::LockServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster,
    cluster::{APP, ENV},
    control_process,
    repo::Change,
};
use tonic::Code;

#[derive(Parser, Debug)]
#[command(
    name = "slipway-soak",
    about = "deploy/rollback cycles with a random SIGKILL of an agent or the control plane in each"
)]
struct Args {
    /// Cycles of a deploy and a rollback.
    #[arg(long, default_value_t = 200)]
    cycles: u32,
    /// Agents (separate processes).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    agents: u16,
    /// Seed of the random kills.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// How long a cycle's deployment may take to finish after its kill.
const SETTLE: Duration = Duration::from_secs(180);

#[derive(Debug, Default)]
struct Counts {
    deploys: u32,
    rollbacks: u32,
    refused: u32,
    agent_kills: u32,
    control_plane_kills: u32,
    outcomes: HashMap<&'static str, u32>,
    bad_current: u32,
    lost_records: u32,
    stuck_locks: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("slipway-soak: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<bool> {
    if std::env::var_os("SLIPWAY_AGENT_BIN").is_none()
        || std::env::var_os("SLIPWAY_CONTROL_PLANE_BIN").is_none()
    {
        // The fixtures read the daemons' paths from the environment: build
        // them (same profile), then run this program again with the paths.
        let agent = control_process::cargo_build("slipway-agent", "slipway-agent");
        let control_plane =
            control_process::cargo_build("slipway-control-plane", "slipway-control-plane");
        let status = Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("SLIPWAY_AGENT_BIN", agent)
            .env("SLIPWAY_CONTROL_PLANE_BIN", control_plane)
            .status()?;
        return Ok(status.success());
    }
    slipway_proto::daemon::install_crypto_provider();
    let started = Instant::now();
    let mut rng = Rng(args.seed | 1);
    let mut cluster = Cluster::builder()
        .agents(usize::from(args.agents))
        .process_agents()
        .process_control_plane()
        .start()
        .await;
    let policy = RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_percent: 50,
        step_timeout_seconds: 10,
        ..Default::default()
    };
    let mut counts = Counts::default();
    let mut started_ids: Vec<String> = Vec::new();
    let mut manifests: HashMap<String, Vec<ManifestEntry>> = HashMap::new();
    let mut kill_during_deploy = true;
    // A cycle is a deploy of a new commit, then a rollback; one of the two
    // gets the cycle's kill.
    for (cycle, deploy) in (1..=args.cycles).flat_map(|c| [(c, true), (c, false)]) {
        if deploy {
            kill_during_deploy = rng.below(2) == 0;
        }
        let kill = deploy == kill_during_deploy;
        let stream = if deploy {
            counts.deploys += 1;
            cluster.repo.commit(
                &format!("cycle {cycle}"),
                &[
                    Change::File("index.html", format!("cycle {cycle}\n").as_bytes()),
                    Change::File(
                        &format!("assets/cycle-{}.txt", cycle % 7),
                        format!("{cycle}").repeat(100).as_bytes(),
                    ),
                ],
            );
            cluster
                .try_deploy_stream("main", Some(policy))
                .await
                .map(|r| r.map(|e| e.map(|e| e.event)).boxed())
        } else {
            counts.rollbacks += 1;
            cluster
                .deployments(Role::Admin)
                .await
                .rollback(RollbackRequest {
                    app: APP.into(),
                    environment: ENV.into(),
                    message: format!("soak cycle {cycle}"),
                    policy: Some(policy),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().map(|e| e.map(|e| e.event)).boxed())
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(status)
                if status.code() == Code::FailedPrecondition
                    && !status.message().contains("is running") =>
            {
                // Nothing to roll back to (every earlier release was rolled
                // back from): a refusal, not a failure.
                counts.refused += 1;
                continue;
            }
            Err(status) => {
                if status.message().contains("is running") {
                    counts.stuck_locks += 1;
                }
                eprintln!("cycle {cycle}: refused: {status}");
                counts.refused += 1;
                continue;
            }
        };
        // Read a random number of events, then kill a random victim.
        let kill_after = if kill { 1 + rng.below(30) as usize } else { 1 };
        let mut id = String::new();
        let mut read = 0;
        while read < kill_after {
            match stream.next().await {
                Some(Ok(Some(event))) => {
                    if id.is_empty() {
                        id = event.deployment_id.clone();
                    }
                    read += 1;
                }
                _ => break,
            }
        }
        drop(stream);
        if id.is_empty() {
            bail!("cycle {cycle}: the deployment sent no event");
        }
        started_ids.push(id.clone());
        if kill {
            let victim = rng.below(u64::from(args.agents) + 1) as usize;
            if victim == usize::from(args.agents) {
                counts.control_plane_kills += 1;
                cluster.kill_control_plane();
                cluster.restart_control_plane().await;
            } else {
                counts.agent_kills += 1;
                let agent = cluster.agents[victim].process();
                agent.kill_9();
                agent.restart().await;
            }
        }
        let status = settle(&cluster, &id).await?;
        let name = DeploymentStatus::try_from(status)
            .map(|s| s.as_str_name().trim_start_matches("DEPLOYMENT_STATUS_"))
            .unwrap_or("UNKNOWN");
        *counts.outcomes.entry(name).or_default() += 1;

        counts.bad_current += check_hosts(&cluster, &mut manifests).await?;
        let locks = LockServiceClient::new(cluster.channel(Role::Admin).await)
            .list_locks(ListLocksRequest {})
            .await?
            .into_inner()
            .locks;
        if !locks.is_empty() {
            eprintln!("cycle {cycle}: locks held after {id} finished: {locks:?}");
            counts.stuck_locks += locks.len() as u32;
        }
        if !deploy && (cycle % 10 == 0 || cycle == args.cycles) {
            eprintln!(
                "[{:6.1} s] cycle {cycle}/{}: {name}; so far {:?}",
                started.elapsed().as_secs_f64(),
                args.cycles,
                counts.outcomes
            );
        }
    }
    counts.lost_records = lost_records(&cluster, &started_ids).await?;
    print(&counts, args, started.elapsed());
    Ok(counts.bad_current == 0 && counts.lost_records == 0 && counts.stuck_locks == 0)
}

/// Waits until deployment `id` is final; returns its status.
async fn settle(cluster: &Cluster, id: &str) -> Result<i32> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let deployment = cluster.deployment(id).await;
        let final_status = [
            DeploymentStatus::Succeeded,
            DeploymentStatus::Failed,
            DeploymentStatus::Cancelled,
            DeploymentStatus::Interrupted,
        ]
        .iter()
        .any(|s| *s as i32 == deployment.status);
        if final_status {
            return Ok(deployment.status);
        }
        if Instant::now() > deadline {
            bail!("deployment {id} did not finish within {SETTLE:?}: {deployment:?}");
        }
        // Polling a soak harness, not synchronising a test: the deployment
        // runs on its own in the control plane.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hosts whose `current` is missing, dangling or points at a release that
/// lacks a file of its manifest (or has one of the wrong size or kind).
async fn check_hosts(
    cluster: &Cluster,
    manifests: &mut HashMap<String, Vec<ManifestEntry>>,
) -> Result<u32> {
    let mut bad = 0;
    for host in &cluster.agents {
        let Some(current) = host.current() else {
            continue; // Nothing deployed there yet.
        };
        let dir = host.release_dir(&current);
        if !manifests.contains_key(&current) {
            let release = cluster
                .releases(Role::Viewer)
                .await
                .get_release(GetReleaseRequest {
                    app: APP.into(),
                    id: current.clone(),
                    include_manifest: true,
                })
                .await?
                .into_inner()
                .release
                .context("release")?;
            manifests.insert(current.clone(), release.manifest);
        }
        let problems = incomplete(&dir, &manifests[&current]);
        if !problems.is_empty() {
            eprintln!(
                "{}: current {current} is partial: {}",
                host.name,
                problems.join("; ")
            );
            bad += 1;
        }
    }
    Ok(bad)
}

/// What of `manifest` is missing or wrong under `dir`.
fn incomplete(dir: &Path, manifest: &[ManifestEntry]) -> Vec<String> {
    if !dir.is_dir() {
        return vec![format!("{} is not a directory", dir.display())];
    }
    let mut problems = Vec::new();
    for entry in manifest {
        let path = dir.join(&entry.path);
        let is_link = entry.mode & 0o170000 == 0o120000;
        match std::fs::symlink_metadata(&path) {
            Err(_) => problems.push(format!("{} is missing", entry.path)),
            Ok(meta) if is_link && !meta.file_type().is_symlink() => {
                problems.push(format!("{} is not a symlink", entry.path));
            }
            Ok(meta) if !is_link && meta.len() != entry.size => problems.push(format!(
                "{} has {} bytes, not {}",
                entry.path,
                meta.len(),
                entry.size
            )),
            Ok(meta)
                if !is_link
                    && (meta.permissions().mode() & 0o111 != 0) != (entry.mode & 0o111 != 0) =>
            {
                problems.push(format!("{} has the wrong exec bit", entry.path));
            }
            Ok(_) => {}
        }
    }
    problems
}

/// Deployments the soak started that the control plane no longer has, or
/// that did not finish.
async fn lost_records(cluster: &Cluster, ids: &[String]) -> Result<u32> {
    let mut client = cluster.deployments(Role::Viewer).await;
    let mut lost = 0;
    for id in ids {
        let found = client
            .get_deployment(slipway_proto::control::v1::GetDeploymentRequest {
                deployment_id: id.clone(),
            })
            .await;
        match found {
            Ok(response) => {
                let status = response.into_inner().deployment.map_or(0, |d| d.status);
                if status == DeploymentStatus::Pending as i32
                    || status == DeploymentStatus::Running as i32
                {
                    eprintln!("{id} never finished");
                    lost += 1;
                }
            }
            Err(status) => {
                eprintln!("{id} is lost: {status}");
                lost += 1;
            }
        }
    }
    Ok(lost)
}

fn print(counts: &Counts, args: &Args, elapsed: Duration) {
    let mut outcomes: Vec<_> = counts.outcomes.iter().collect();
    outcomes.sort();
    println!(
        "\nslipway-soak: {} cycles against {} agents in {:.0} s (seed {})\n",
        args.cycles,
        args.agents,
        elapsed.as_secs_f64(),
        args.seed
    );
    println!("| | count |\n|---|---:|");
    println!("| deploys started | {} |", counts.deploys);
    println!("| rollbacks started | {} |", counts.rollbacks);
    println!(
        "| refused at start (nothing to roll back to) | {} |",
        counts.refused
    );
    println!("| agents killed (SIGKILL) | {} |", counts.agent_kills);
    println!(
        "| control plane killed (SIGKILL) | {} |",
        counts.control_plane_kills
    );
    for (name, n) in outcomes {
        println!("| ended {} | {n} |", name.to_lowercase());
    }
    println!(
        "| **hosts whose current was a missing or partial release** | **{}** |",
        counts.bad_current
    );
    println!(
        "| **lost deployment records** | **{}** |",
        counts.lost_records
    );
    println!("| **stuck locks** | **{}** |", counts.stuck_locks);
}

/// xorshift64*: reproducible kills from a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
