//! `slipway-bench-events`: how fast a deployment's events are recorded. A
//! before-activate hook on one real agent prints N short lines (1,000,000 by
//! default); each line travels to the control plane, is recorded durably in
//! the store and streamed to the client. Prints the events recorded, the
//! time from the deploy to its final event, and events per second, for a
//! control plane process on sled and one on etcd (a local single-member
//! cluster with mutual TLS, started by the benchmark) in the same run.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-events -- --lines 1000000 --store both
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{Result, ensure};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{ActivationSpec, HookOutputLimits},
    control::v1::{DeploymentStatus, EventKind},
    limits,
};
use slipway_tests::{Cluster, etcd::EtcdCluster, repo::Change, spec};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-events",
    about = "Events recorded per second from a chatty hook"
)]
struct Args {
    /// Lines the hook prints.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// The store(s) to record in.
    #[arg(long, value_enum, default_value_t = Stores::Both)]
    store: Stores,
}

/// Which stores a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Stores {
    Sled,
    Etcd,
    Both,
}

/// One measured deployment.
struct Row {
    events: u64,
    lines: u64,
    seconds: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("| store | hook lines | events recorded | of them hook lines | seconds | events/s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    if args.store != Stores::Etcd {
        let row = measure(args.lines, None).await?;
        print_row("sled", args.lines, &row);
    }
    if args.store != Stores::Sled {
        let etcd = EtcdCluster::start(1);
        let row = measure(args.lines, Some(&etcd)).await?;
        print_row("etcd (1 member)", args.lines, &row);
    }
    Ok(())
}

fn print_row(store: &str, hook_lines: u64, row: &Row) {
    println!(
        "| {store} | {hook_lines} | {} | {} | {:.2} | {:.0} |",
        row.events,
        row.lines,
        row.seconds,
        row.events as f64 / row.seconds
    );
}

/// One deployment whose hook prints `lines` lines, recorded by a control
/// plane process on sled, or on `etcd` when given.
async fn measure(lines: u64, etcd: Option<&EtcdCluster>) -> Result<Row> {
    let hook = format!("seq 1 {lines}");
    // Every line is recorded: the app raises its hook output bound (10,000
    // lines by default) to the lines printed, within the ceiling an app may
    // set.
    let activation = ActivationSpec {
        output_limits: Some(HookOutputLimits {
            max_lines: lines.min(limits::HOOK_OUTPUT_LINES),
            max_bytes: limits::HOOK_OUTPUT_BYTES,
        }),
        ..spec::hooks(vec![spec::before_activate("chatty", &hook)])
    };
    let mut builder = Cluster::builder()
        .agents(1)
        .activation(activation)
        .process_control_plane();
    for (key, value) in etcd
        .map(|e| e.control_plane_env("bench"))
        .unwrap_or_default()
    {
        builder = builder.control_plane_env(key, &value);
    }
    let cluster = builder.start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let started = Instant::now();
    let mut stream = cluster.deploy_stream("main").await;
    let (mut events, mut hook_lines, mut last) = (0u64, 0u64, None);
    while let Some(item) = stream.next().await {
        let event = item?.event.unwrap_or_default();
        events += 1;
        if event.kind == EventKind::Log as i32 && event.step == "chatty" {
            hook_lines += 1;
        }
        last = Some(event);
    }
    let seconds = started.elapsed().as_secs_f64();
    let last = last.unwrap_or_default();
    ensure!(
        last.status == DeploymentStatus::Succeeded as i32,
        "the deployment did not succeed: {}",
        last.message
    );
    cluster.shutdown().await;
    Ok(Row {
        events,
        lines: hook_lines,
        seconds,
    })
}
