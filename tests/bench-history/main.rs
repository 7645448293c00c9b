//! `slipway-bench-history`: reading the deployment history as it grows. For
//! 1,000, 10,000 and 100,000 recorded deployments in a real sled store it
//! times a history page of 50 (unfiltered, and for one app in one
//! environment) and the "previous good release" lookup a rollback makes,
//! each through the index trees and, in the same run, by a full scan of the
//! records (how they were read before the indexes). A deep page (the page
//! token of the 1,000th page of 50) is timed too. With `--store etcd` it
//! seeds 100,000 deployments into a local single-member etcd cluster
//! (mutual TLS, started by the benchmark) and times the same indexed reads
//! there.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-history [-- --store etcd]
//! ```

#![forbid(unsafe_code)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;
use clap::{Parser, ValueEnum};
use slipway_control_plane::{
    deployment, history,
    store::{EtcdBackend, SledBackend, Store, deployments},
};
use slipway_proto::control::v1::{Deployment, DeploymentStatus, ListDeploymentsRequest};
use slipway_tests::{etcd::EtcdCluster, seed};

/// Timed repetitions of each read.
const RUNS: usize = 200;

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-history",
    about = "History reads as the deployment history grows"
)]
struct Args {
    /// The store to seed and read.
    #[arg(long, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sled,
    Etcd,
}

/// Deployments seeded into etcd.
const ETCD_SIZE: u64 = 100_000;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "| store | deployments | read | indexed p50 | indexed p99 | full scan p50 | full scan p99 |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    if args.store == StoreKind::Etcd {
        slipway_proto::daemon::install_crypto_provider();
        let etcd = EtcdCluster::start(1);
        let store = Store::new(Arc::new(EtcdBackend::open(&etcd.settings())?));
        let started = Instant::now();
        seed::deployments(&store, ETCD_SIZE).await?;
        eprintln!(
            "seeded {ETCD_SIZE} deployments into etcd in {:.1?}",
            started.elapsed()
        );
        return measure(&store, ETCD_SIZE, "etcd (1 member)", false);
    }
    for size in [1_000u64, 10_000, 100_000] {
        let dir = tempfile::tempdir()?;
        let store = Store::new(Arc::new(SledBackend::open(dir.path(), 256 << 20)?));
        seed::deployments(&store, size).await?;
        measure(&store, size, "sled", true)?;
    }
    Ok(())
}

/// Times the reads on `store` (and the full scans when `scans`).
fn measure(store: &Store, size: u64, name: &str, scans: bool) -> Result<()> {
    let page = ListDeploymentsRequest {
        page_size: 50,
        ..Default::default()
    };
    let target = ListDeploymentsRequest {
        app: "web".into(),
        environment: "prod".into(),
        page_size: 50,
        ..Default::default()
    };
    let deep = ListDeploymentsRequest {
        page_token: deep_token(store, &page, DEEP_PAGE.min(size / 50 / 2))?,
        ..page.clone()
    };
    let scan = |read: fn(&Store) -> Result<usize>| {
        if scans {
            time(|| read(store)).map(Some)
        } else {
            Ok(None)
        }
    };
    let rows: [(&str, Timing, Option<Timing>); 4] = [
        (
            "history page of 50",
            time(|| Ok(history::list(store, &page)?.0.len()))?,
            scan(|s| scan_page(s, "", ""))?,
        ),
        (
            "deep page of 50 (by page token)",
            time(|| Ok(history::list(store, &deep)?.0.len()))?,
            None,
        ),
        (
            "page of 50, one app in one environment",
            time(|| Ok(history::list(store, &target)?.0.len()))?,
            scan(|s| scan_page(s, "web", "prod"))?,
        ),
        (
            "previous good release",
            time(|| Ok(previous(store)?.len()))?,
            scan(|s| Ok(scan_previous(s)?.len()))?,
        ),
    ];
    for (read, indexed, scan) in rows {
        let (p50, p99) = scan.map_or(("-".into(), "-".into()), |s| (ms(s.p50), ms(s.p99)));
        println!(
            "| {name} | {size} | {read} | {} | {} | {p50} | {p99} |",
            ms(indexed.p50),
            ms(indexed.p99),
        );
    }
    Ok(())
}

/// Pages walked (untimed) before the deep page.
const DEEP_PAGE: u64 = 1_000;

/// The page token of page `pages + 1` of `first`, by walking the pages.
fn deep_token(store: &Store, first: &ListDeploymentsRequest, pages: u64) -> Result<String> {
    let mut req = first.clone();
    for _ in 0..pages {
        let (_, next) = history::list(store, &req)?;
        if next.is_empty() {
            break;
        }
        req.page_token = next;
    }
    Ok(req.page_token)
}

fn previous(store: &Store) -> Result<String> {
    let current = deployment::last_succeeded(store, "web", "prod")?.unwrap_or_default();
    Ok(deployment::previous_good(store, "web", "prod", &current)?.unwrap_or_default())
}

/// A page as read before the indexes: every record, newest first, filtered.
fn scan_page(store: &Store, app: &str, environment: &str) -> Result<usize> {
    let mut all = deployments::every(store)?;
    all.reverse();
    Ok(all
        .into_iter()
        .filter(|d| app.is_empty() || (d.app == app && d.environment == environment))
        .take(51)
        .count())
}

/// The previous good release as found before the indexes: a full scan for
/// the last success, then another for the one before it.
fn scan_previous(store: &Store) -> Result<String> {
    let mut all = deployments::every(store)?;
    all.reverse();
    let succeeded = |d: &&Deployment| {
        d.app == "web" && d.environment == "prod" && d.status == DeploymentStatus::Succeeded as i32
    };
    let current = all
        .iter()
        .find(succeeded)
        .map(|d| d.release.clone())
        .unwrap_or_default();
    let mut all = deployments::every(store)?;
    all.reverse();
    Ok(all
        .iter()
        .filter(succeeded)
        .find(|d| d.release != current)
        .map(|d| d.release.clone())
        .unwrap_or_default())
}

struct Timing {
    p50: Duration,
    p99: Duration,
}

/// Runs `read` (fewer times when one run is slow) and takes percentiles.
fn time<T>(mut read: impl FnMut() -> Result<T>) -> Result<Timing> {
    let mut samples = Vec::with_capacity(RUNS);
    let budget = Instant::now();
    for _ in 0..RUNS {
        let start = Instant::now();
        std::hint::black_box(read()?);
        samples.push(start.elapsed());
        if budget.elapsed() > Duration::from_secs(20) && samples.len() >= 10 {
            break;
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(Timing {
        p50: at(0.5),
        p99: at(0.99),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
