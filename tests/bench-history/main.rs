//! `slipway-bench-history`: reading the deployment history as it grows. For
//! 1,000, 10,000 and 100,000 recorded deployments in a real sled store it
//! times a history page of 50 (unfiltered, and for one app in one
//! environment) and the "previous good release" lookup a rollback makes,
//! each through the index trees and, in the same run, by a full scan of the
//! records (how they were read before the indexes).
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-history
//! ```

#![forbid(unsafe_code)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;
use slipway_control_plane::{
    deployment, history,
    store::{SledBackend, Store, deployments},
};
use slipway_proto::control::v1::{Deployment, DeploymentStatus, ListDeploymentsRequest};
use slipway_tests::seed;

/// Timed repetitions of each read.
const RUNS: usize = 200;

#[tokio::main]
async fn main() -> Result<()> {
    println!("| deployments | read | indexed p50 | indexed p99 | full scan p50 | full scan p99 |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for size in [1_000u64, 10_000, 100_000] {
        let dir = tempfile::tempdir()?;
        let store = Store::new(Arc::new(SledBackend::open(dir.path(), 256 << 20)?));
        seed::deployments(&store, size).await?;
        measure(&store, size)?;
    }
    Ok(())
}

fn measure(store: &Store, size: u64) -> Result<()> {
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
    let rows: [(&str, Timing, Timing); 3] = [
        (
            "history page of 50",
            time(|| Ok(history::list(store, &page)?.0.len()))?,
            time(|| scan_page(store, "", ""))?,
        ),
        (
            "page of 50, one app in one environment",
            time(|| Ok(history::list(store, &target)?.0.len()))?,
            time(|| scan_page(store, "web", "prod"))?,
        ),
        (
            "previous good release",
            time(|| Ok(previous(store)?.len()))?,
            time(|| Ok(scan_previous(store)?.len()))?,
        ),
    ];
    for (read, indexed, scan) in rows {
        println!(
            "| {size} | {read} | {} | {} | {} | {} |",
            ms(indexed.p50),
            ms(indexed.p99),
            ms(scan.p50),
            ms(scan.p99)
        );
    }
    Ok(())
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
