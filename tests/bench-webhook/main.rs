//! `slipway-bench-webhook`: from a push to `current` switched on every
//! host, through the webhook. A control plane and N real agents (16 by
//! default) in this process on loopback, a 2,000-file app deployed once;
//! then, each round, one file changes in a new commit, a GitHub-signed push
//! goes to the web listener over HTTPS, and the clock stops when every
//! host's `current` points to the new release (read from the filesystem
//! every millisecond).
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-webhook -- --agents 16 --rounds 5
//! ```

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;
use slipway_control_plane::triggers::sender::github_signature;
use slipway_proto::{
    control::v1::{
        RotateWebhookSecretRequest, SetAutoDeployRequest,
        trigger_service_client::TriggerServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster,
    cluster::{APP, ENV},
    https::WebClient,
    repo::Change,
};

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-webhook",
    about = "Push to switched, through the webhook"
)]
struct Args {
    /// Agents (hosts).
    #[arg(long, default_value_t = 16)]
    agents: usize,
    /// Pushes timed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Files in the app.
    #[arg(long, default_value_t = 2000)]
    files: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cluster = Cluster::builder().agents(args.agents).start().await;
    let contents: Vec<(String, Vec<u8>)> = (0..args.files)
        .map(|i| {
            (
                format!("app/{:02}/file-{i}.txt", i % 40),
                format!("file {i}\n").repeat(100).into_bytes(),
            )
        })
        .collect();
    let changes: Vec<Change<'_>> = contents.iter().map(|(p, d)| Change::File(p, d)).collect();
    let first = cluster.repo.commit("all files", &changes);
    let mut triggers = TriggerServiceClient::new(cluster.channel(Role::Admin).await);
    let secret = triggers
        .rotate_webhook_secret(RotateWebhookSecretRequest { app: APP.into() })
        .await?
        .into_inner()
        .secret;
    triggers
        .set_auto_deploy(SetAutoDeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            branch: "main".into(),
        })
        .await?;
    let web = WebClient::new(cluster.web_addr(), &cluster.pki.dir().join("ca.crt"));

    println!(
        "{} agents, {} files; one file changed per push\n",
        args.agents, args.files
    );
    println!("| push | answered (ms) | current switched on every host (ms) |");
    println!("| --- | ---: | ---: |");
    let (answered, switched) = push(&cluster, &web, &secret, &first, "cold").await?;
    println!("| first deploy (every file) | {answered:.1} | {switched:.1} |");
    let mut times = Vec::new();
    for round in 1..=args.rounds {
        let path = &contents[round % contents.len()].0;
        let commit = cluster.repo.commit(
            &format!("change {round}"),
            &[Change::File(path, format!("changed {round}\n").as_bytes())],
        );
        let delivery = format!("r-{round}");
        let (answered, switched) = push(&cluster, &web, &secret, &commit, &delivery).await?;
        println!("| 1 file, round {round} | {answered:.1} | {switched:.1} |");
        times.push(switched);
    }
    times.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        println!(
            "\n1-file change, push to switched on {} hosts: min {min:.1} ms, median {median:.1} ms, max {max:.1} ms",
            args.agents
        );
    }
    cluster.shutdown().await;
    Ok(())
}

/// Pushes `commit` to `main` through the webhook; returns the milliseconds
/// until the answer and until every host switched to the new release.
async fn push(
    cluster: &Cluster,
    web: &WebClient,
    secret: &str,
    commit: &str,
    delivery: &str,
) -> Result<(f64, f64)> {
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "after": commit,
        "head_commit": {"id": commit, "message": "bench"},
    })
    .to_string()
    .into_bytes();
    let signature = github_signature(secret.as_bytes(), &body);
    let headers = [
        ("x-github-event", "push"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let started = Instant::now();
    let answer = web.post(&format!("/hooks/{APP}"), &headers, &body).await;
    let answered = started.elapsed();
    ensure!(answer.status == 202, "the webhook answered {answer:?}");
    let id = answer.body["deployment_ids"][0]
        .as_str()
        .context("a deployment id")?;
    let deployment = cluster.deployment(id).await;
    let release = deployment.release;
    loop {
        if cluster
            .agents
            .iter()
            .all(|a| a.current().as_deref() == Some(release.as_str()))
        {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not switched in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let switched = started.elapsed();
    let (_, finished) = cluster.watch(id).await;
    ensure!(
        finished.status() == slipway_proto::control::v1::DeploymentStatus::Succeeded,
        "deployment {id}: {finished:?}"
    );
    Ok((ms(answered), ms(switched)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
