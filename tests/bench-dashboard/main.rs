//! `slipway-bench-dashboard`: the dashboard's server time and live latency.
//! With 100,000 deployments in a real sled store behind a real control
//! plane, it times the overview and history pages over HTTPS (the server's
//! own `Server-Timing`, and the whole request on loopback); then, with 3
//! real agents, the time from an event being recorded to its arrival at a
//! server-sent-events client, over a number of held deployments. The text
//! search is also timed in-process, as a scan of every record and through
//! the text index, on the same store.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-dashboard -- --deployments 100000 --rounds 10
//! ```

#![forbid(unsafe_code)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use clap::Parser;
use slipway_control_plane::{
    history,
    store::{SledBackend, Store, deployments},
};
use slipway_proto::control::v1::ListDeploymentsRequest;
use slipway_proto::identity::Role;
use slipway_tests::{Cluster, dashboard::Browser, pki::TestPki, seed, server::control_plane, spec};

#[derive(Debug, Parser)]
struct Args {
    /// Deployments in the history.
    #[arg(long, default_value_t = 100_000)]
    deployments: u64,
    /// Timed requests of each page.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// Held deployments whose live events are timed.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    slipway_proto::daemon::install_crypto_provider();
    pages(&args).await?;
    latency(&args).await
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:.1} ms | {:.1} ms",
        percentile(&values, 0.5),
        percentile(&values, 0.99)
    )
}

async fn pages(args: &Args) -> Result<()> {
    let pki = TestPki::new();
    let dir = tempfile::tempdir()?;
    {
        let store = Store::new(std::sync::Arc::new(SledBackend::open(
            dir.path(),
            256 << 20,
        )?));
        seed::deployments(&store, args.deployments).await?;
        text_search(&store, args.requests)?;
    }
    let cp = control_plane(
        pki.control_plane(),
        pki.control_plane_client(),
        dir.path().to_owned(),
    )
    .await;
    let web = cp.web.context("a web listener")?;
    let mut browser = Browser::new(web, &pki.operator(Role::Viewer).ca);
    let channel = slipway_proto::tls::endpoint(
        &cp.addr.to_string(),
        slipway_proto::tls::Peer::ControlPlane,
        &TestPki::material(&pki.operator(Role::Viewer)),
    )?
    .connect_lazy();
    let link =
        slipway_proto::control::v1::dashboard_service_client::DashboardServiceClient::new(channel)
            .create_login_link(slipway_proto::control::v1::CreateLoginLinkRequest {})
            .await?
            .into_inner()
            .path;
    browser.login(&link).await;
    println!(
        "| page ({} deployments) | server p50 | server p99 | request p50 | request p99 |",
        args.deployments
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let paths = [
        ("overview", "/"),
        ("history, first page", "/history"),
        (
            "history, one app and environment",
            "/history?app=web&env=prod",
        ),
        ("history, text search", "/history?text=number+99999"),
    ];
    for (name, path) in paths {
        let (mut server, mut total) = (Vec::new(), Vec::new());
        for _ in 0..args.requests {
            let started = Instant::now();
            let page = browser.get(path).await;
            anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
            total.push(started.elapsed().as_secs_f64() * 1000.0);
            server.push(page.server_ms.unwrap_or_default());
        }
        println!("| {name} | {} | {} |", summary(server), summary(total));
    }
    cp.shutdown().await;
    Ok(())
}

/// The text search in-process on the seeded store, before the control
/// plane opens it: a scan of the records newest first (how a search ran
/// before the text index) against the listing that reads the index.
fn text_search(store: &Store, requests: usize) -> Result<()> {
    const NEEDLE: &str = "number 99999";
    let request = ListDeploymentsRequest {
        text: NEEDLE.into(),
        ..Default::default()
    };
    let (mut scan, mut index) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        let started = Instant::now();
        let mut found = Vec::new();
        for d in deployments::newest_first(store, deployments::Scope::All, None) {
            let d = d?;
            let fields = [&d.commit, &d.git_ref, &d.release, &d.message];
            if fields.iter().any(|f| f.to_lowercase().contains(NEEDLE)) {
                found.push(d.id);
            }
            if found.len() > 50 {
                break;
            }
        }
        scan.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let (page, _) = history::list(store, &request)?;
        index.push(started.elapsed().as_secs_f64() * 1000.0);
        let ids: Vec<String> = page.into_iter().map(|d| d.id).collect();
        anyhow::ensure!(ids == found, "the index and the scan disagree");
    }
    println!("| text search \"{NEEDLE}\", in-process | p50 | p99 |");
    println!("| --- | ---: | ---: |");
    println!("| scan of every record | {} |", summary(scan));
    println!("| text index | {} |", summary(index));
    println!();
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads server-sent events from `response` until the `end` event; the
/// latency of every event recorded after `connected_ms`.
async fn live_latencies(mut response: reqwest::Response, connected_ms: i64) -> Result<Vec<f64>> {
    let mut buffer = String::new();
    let mut latencies = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let received = now_ms();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.contains("event: end") {
                return Ok(latencies);
            }
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(data)?;
            let recorded = event["time_ms"].as_i64().unwrap_or_default();
            if recorded >= connected_ms {
                latencies.push((received - recorded) as f64);
            }
        }
    }
    Ok(latencies)
}

async fn latency(args: &Args) -> Result<()> {
    let cluster = Cluster::builder().agents(3).start().await;
    cluster.commit_text("v0");
    let browser = Browser::logged_in(&cluster, Role::Viewer).await;
    let mut all = Vec::new();
    for round in 0..args.rounds {
        cluster.commit_text(&format!("v{}", round + 1));
        let gate = cluster.hold_in_hook(1, spec::before_activate).await;
        let _ = std::fs::remove_file(&gate);
        let mut stream = cluster.deploy_stream("main").await;
        let first = stream.message().await?.context("a first event")?;
        let id = first.event.context("an event")?.deployment_id;
        let response = browser.stream(&format!("/deployments/{id}/events")).await;
        let connected = now_ms();
        let reader = tokio::spawn(live_latencies(response, connected));
        // The stream follows live events from its answer on: let the held
        // host go.
        std::fs::write(&gate, b"")?;
        all.extend(reader.await??);
        while stream.message().await?.is_some() {}
    }
    println!();
    println!(
        "| live events ({} deployments to 3 agents) | p50 | p99 |",
        args.rounds
    );
    println!("| --- | ---: | ---: |");
    println!(
        "| recorded -> received by an SSE client ({} events) | {} |",
        all.len(),
        summary(all)
    );
    cluster.shutdown().await;
    Ok(())
}
