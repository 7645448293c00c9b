//! `slipway-bench-events`: how fast a deployment's events are recorded. A
//! before-activate hook on one real agent prints N short lines (1,000,000 by
//! default); each line travels to the control plane, is recorded durably in
//! sled and streamed to the client. Prints the events recorded, the time
//! from the deploy to its final event, and events per second.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-events -- --lines 1000000
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Parser;
use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{ActivationSpec, HookOutputLimits},
    control::v1::{DeploymentStatus, EventKind},
    limits,
};
use slipway_tests::{Cluster, repo::Change, spec};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-events",
    about = "Events recorded per second from a chatty hook"
)]
struct Args {
    /// Lines the hook prints.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let hook = format!("seq 1 {}", args.lines);
    // Every line is recorded: the app raises its hook output bound (10,000
    // lines by default) to the lines printed, within the ceiling an app may
    // set.
    let activation = ActivationSpec {
        output_limits: Some(HookOutputLimits {
            max_lines: args.lines.min(limits::HOOK_OUTPUT_LINES),
            max_bytes: limits::HOOK_OUTPUT_BYTES,
        }),
        ..spec::hooks(vec![spec::before_activate("chatty", &hook)])
    };
    let cluster = Cluster::builder()
        .agents(1)
        .activation(activation)
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let started = Instant::now();
    let mut stream = cluster.deploy_stream("main").await;
    let (mut events, mut lines, mut last) = (0u64, 0u64, None);
    while let Some(item) = stream.next().await {
        let event = item?.event.unwrap_or_default();
        events += 1;
        if event.kind == EventKind::Log as i32 && event.step == "chatty" {
            lines += 1;
        }
        last = Some(event);
    }
    let elapsed = started.elapsed();
    let last = last.unwrap_or_default();
    ensure!(
        last.status == DeploymentStatus::Succeeded as i32,
        "the deployment did not succeed: {}",
        last.message
    );
    println!("| hook lines | events recorded | of them hook lines | seconds | events/s |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {events} | {lines} | {:.2} | {:.0} |",
        args.lines,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    cluster.shutdown().await;
    Ok(())
}
