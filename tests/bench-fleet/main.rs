//! `slipway-bench-fleet`: the control plane against a large fleet of
//! simulated agents (in memory, answering at once), so what is timed is the
//! control plane alone: cutting the release, the lock, the rollout engine,
//! each host's session and every event recorded durably in sled. A 200-file
//! app goes to N hosts (300 by default) all at once: a cold deploy, a deploy
//! of one changed file, and a rollback.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-fleet -- --hosts 300
//! ```

#![forbid(unsafe_code)]

use std::{sync::Arc, time::Instant};

use anyhow::{Result, ensure};
use clap::Parser;
use futures_util::StreamExt;
use slipway_control_plane::{
    Context,
    agents::{Agents, simulated::Fleet},
    auth::Caller,
    catalog,
    deployment::{self, Start, Target},
    events::EventHub,
    running::Running,
    store::{SledBackend, Store},
};
use slipway_proto::{
    control::v1::{App, Deployment, DeploymentKind, DeploymentStatus, Environment, Host},
    identity::Role,
};
use slipway_tests::repo::{Change, SampleRepo};

#[derive(Parser, Debug)]
#[command(name = "slipway-bench-fleet", about = "Deploys to N simulated agents")]
struct Args {
    /// Simulated hosts.
    #[arg(long, default_value_t = 300)]
    hosts: usize,
    /// Files in the app.
    #[arg(long, default_value_t = 200)]
    files: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let store = Store::new(Arc::new(SledBackend::open(dir.path(), 64 << 20)?));
    let fleet = Fleet::new();
    let ctx = Context {
        store: store.clone(),
        events: EventHub::default(),
        agents: Agents::with(Arc::new(fleet)),
        running: Running::default(),
        revocations: Default::default(),
        signer: None,
        sources: slipway_control_plane::sources::Sources::new(
            Default::default(),
            dir.path(),
            Default::default(),
        )?,
        metrics: Default::default(),
        health: Default::default(),
        notifiers: Default::default(),
        waiting: Default::default(),
        agent_binaries: Default::default(),
        secret_keys: Default::default(),
        cluster: Default::default(),
    };
    let repo = SampleRepo::new();
    let contents: Vec<(String, Vec<u8>)> = (0..args.files)
        .map(|i| {
            (
                format!("app/{:02}/file-{i}.txt", i % 20),
                format!("file {i}\n").repeat(40).into_bytes(),
            )
        })
        .collect();
    let changes: Vec<Change<'_>> = contents.iter().map(|(p, d)| Change::File(p, d)).collect();
    repo.commit("first", &changes);
    register(&ctx, &repo, args.hosts).await?;

    println!("| step | hosts | files | seconds | events | ms per host |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let cold = timed(&ctx, "cold deploy", DeploymentKind::Deploy, &args).await?;
    repo.commit("second", &[Change::File("app/00/file-0.txt", b"changed\n")]);
    let one = timed(&ctx, "1 file changed", DeploymentKind::Deploy, &args).await?;
    timed(&ctx, "rollback", DeploymentKind::Rollback, &args).await?;
    ensure!(cold.release != one.release, "two releases");
    Ok(())
}

async fn register(ctx: &Context, repo: &SampleRepo, hosts: usize) -> Result<()> {
    let app = App {
        name: "web".into(),
        repository: repo.path().display().to_string(),
        default_branch: "main".into(),
        ..Default::default()
    };
    catalog::create_app(&ctx.store, &ctx.sources, app.try_into()?).await?;
    let env = Environment {
        name: "prod".into(),
        ..Default::default()
    };
    catalog::create_environment(&ctx.store, env.try_into()?).await?;
    for i in 0..hosts {
        let host = Host {
            name: format!("web-{i:04}"),
            address: format!("10.{}.{}.{}:7444", i / 65536, i / 256 % 256, i % 256),
            environment: "prod".into(),
            ..Default::default()
        };
        catalog::add_host(&ctx.store, host.try_into()?).await?;
    }
    Ok(())
}

/// Runs one deployment to its final event and prints its row.
async fn timed(ctx: &Context, step: &str, kind: DeploymentKind, args: &Args) -> Result<Deployment> {
    let caller = Caller::operator("bench", Role::Deployer);
    let target = match kind {
        DeploymentKind::Rollback => Target::Previous,
        _ => Target::Ref("main".into()),
    };
    let start = Start {
        kind,
        app: "web".into(),
        environment: "prod".into(),
        target,
        message: step.into(),
        policy: None,
        queue: false,
        run_at: None,
        force: false,
    };
    let started = Instant::now();
    let id = deployment::start(ctx, &caller, start).await?;
    let mut events = ctx.events.stream(ctx.store.clone(), id.clone(), 0, |e| e);
    while let Some(event) = events.next().await {
        event?;
    }
    let elapsed = started.elapsed();
    let d = deployment::get(&ctx.store, &id)?;
    ensure!(
        d.status == DeploymentStatus::Succeeded as i32,
        "{step} did not succeed: {}",
        d.error
    );
    println!(
        "| {step} | {} | {} | {:.3} | {} | {:.2} |",
        args.hosts,
        args.files,
        elapsed.as_secs_f64(),
        d.last_event,
        elapsed.as_secs_f64() * 1000.0 / args.hosts as f64
    );
    Ok(d)
}
