//! `slipway-bench-health`: what health over time costs the control plane.
//!
//! 1. The sampler against `--fleet` simulated agents (1,000 by default; in
//!    memory, answering at once, each with one app whose probe passes in a
//!    few milliseconds), every sample stored durably in sled: CPU time and
//!    wall time per round, the CPU share that makes at one round every 30 s,
//!    and the process's resident memory. Rounds run back to back on a clock
//!    that advances 30 s per round (aggregation and retention every 10
//!    rounds, as every 5 minutes), so the figure is the work alone.
//! 2. The store that 30 days of samples of `--hosts` hosts (100 by default)
//!    leave: the same sampler and maintenance, fast-forwarded one round per
//!    30 s of clock for `--days` days (7 by default), with the samples,
//!    aggregates, their bytes and the store's size on disk after each day;
//!    then the 30 days computed from that run: a day of raw samples (what
//!    retention keeps from the first day on) and 30 days of aggregates at
//!    the bytes each took.
//!
//! ```sh
//! cargo run --release -p slipway-tests --bin slipway-bench-health -- --fleet 1000 --hosts 100 --days 7
//! ```

#![forbid(unsafe_code)]

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use clap::Parser;
use slipway_control_plane::{
    agents::{Agents, simulated::Fleet},
    catalog,
    feed::Feed,
    observe::{health::Health, maintenance::maintain, sampling::Sampler},
    store::{
        SledBackend, Store,
        health::{Series, footprint},
    },
};
use slipway_proto::control::v1::{Environment, Host};

/// Rounds between two maintenance runs: 5 minutes of a 30 s interval.
const MAINTAIN_EVERY: u64 = 10;
/// The sampling interval the figures are for.
const INTERVAL: Duration = Duration::from_secs(30);
/// A made-up start of the clock, on a bucket boundary.
const T0: u64 = 1_800_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench-health",
    about = "Health sampling cost and store size"
)]
struct Args {
    /// Simulated hosts for the CPU and memory figures.
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Rounds sampled for the CPU and memory figures.
    #[arg(long, default_value_t = 40)]
    rounds: u64,
    /// Simulated hosts for the store size.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Days fast-forwarded for the store size (30 days are computed from
    /// them; at least 2).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(2..))]
    days: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    cost(&args).await?;
    size(&args).await
}

/// A sampler over `hosts` simulated hosts in a new store in `dir`.
async fn sampler(dir: &std::path::Path, hosts: usize) -> Result<(Sampler, Arc<Fleet>)> {
    let store = Store::new(Arc::new(SledBackend::open(dir, 64 << 20)?));
    let env = Environment {
        name: "prod".into(),
        ..Default::default()
    };
    catalog::create_environment(&store, env.try_into()?).await?;
    let fleet = Fleet::new();
    for i in 0..hosts {
        let name = format!("web-{i:04}");
        let host = Host {
            name: name.clone(),
            address: format!("10.{}.{}.{}:7444", i / 65536, i / 256 % 256, i % 256),
            environment: "prod".into(),
            ..Default::default()
        };
        catalog::add_host(&store, host.try_into()?).await?;
        fleet.host(&name).set_health("web", true, 3.0);
    }
    let sampler = Sampler {
        store,
        agents: Agents::with(Arc::new(fleet.clone())),
        metrics: Default::default(),
        health: Arc::new(Health::new(INTERVAL)),
        feed: Feed::default(),
    };
    Ok((sampler, fleet))
}

/// Gives each host's app a response time for round `round` (2 to 12 ms).
fn vary(fleet: &Fleet, hosts: usize, round: u64) {
    for i in 0..hosts {
        let ms = 2.0 + ((round as usize * 7 + i * 13) % 100) as f64 / 10.0;
        fleet
            .host(&format!("web-{i:04}"))
            .set_health("web", true, ms);
    }
}

fn clock(round: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + INTERVAL * round as u32
}

/// Runs round `round`, and maintenance every [`MAINTAIN_EVERY`] rounds.
async fn tick(sampler: &Sampler, round: u64) -> Result<()> {
    let sampled = sampler.round(clock(round)).await?;
    anyhow::ensure!(sampled.reachable == sampled.hosts, "every host answers");
    if round % MAINTAIN_EVERY == MAINTAIN_EVERY - 1 {
        maintain(&sampler.store, clock(round)).await?;
    }
    Ok(())
}

async fn cost(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (sampler, fleet) = sampler(dir.path(), args.fleet).await?;
    let rss_before = status_kb("VmRSS")?;
    let (mut wall, mut slowest) = (Duration::ZERO, Duration::ZERO);
    let cpu_before = cpu_seconds()?;
    for round in 0..args.rounds {
        vary(&fleet, args.fleet, round);
        let started = Instant::now();
        tick(&sampler, round).await?;
        let took = started.elapsed();
        wall += took;
        slowest = slowest.max(took);
    }
    let cpu = cpu_seconds()? - cpu_before;
    let rounds = args.rounds as f64;
    let per_round = cpu / rounds;
    println!(
        "Sampling {} simulated hosts, {} rounds:\n",
        args.fleet, args.rounds
    );
    println!(
        "| hosts | CPU per round | CPU at one round per 30 s | wall per round (mean / max) | RSS before | RSS after | peak RSS |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {:.1} ms | {:.2}% of a core | {:.1} / {:.1} ms | {} MiB | {} MiB | {} MiB |\n",
        args.fleet,
        per_round * 1000.0,
        per_round / INTERVAL.as_secs_f64() * 100.0,
        wall.as_secs_f64() * 1000.0 / rounds,
        slowest.as_secs_f64() * 1000.0,
        rss_before / 1024,
        status_kb("VmRSS")? / 1024,
        status_kb("VmHWM")? / 1024,
    );
    Ok(())
}

async fn size(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (sampler, fleet) = sampler(dir.path(), args.hosts).await?;
    let rounds_per_day = 86_400 / INTERVAL.as_secs();
    println!(
        "Store of {} hosts sampled every 30 s, fast-forwarded {} days:\n",
        args.hosts, args.days
    );
    println!(
        "| days | raw samples | their bytes | 5-minute aggregates | their bytes | store on disk | seconds to run |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let started = Instant::now();
    let mut last = Footprint::default();
    for round in 0..rounds_per_day * args.days {
        vary(&fleet, args.hosts, round);
        tick(&sampler, round).await?;
        if (round + 1) % rounds_per_day == 0 {
            last = Footprint::of(&sampler.store)?;
            println!(
                "| {} | {} | {:.1} MiB | {} | {:.1} MiB | {:.1} MiB | {:.0} |",
                (round + 1) / rounds_per_day,
                last.raw.0,
                mib(last.raw.1),
                last.aggregates.0,
                mib(last.aggregates.1),
                mib(last.disk),
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Retention keeps a day of raw samples from the first day on; an
    // aggregate takes about the same bytes whatever its day.
    let per_aggregate = last.aggregates.1 as f64 / last.aggregates.0.max(1) as f64;
    let aggregates = args.hosts as u64 * (86_400 / 300) * 30;
    let bytes = last.raw.1 as f64 + aggregates as f64 * per_aggregate;
    println!(
        "| 30, computed | {} | {:.1} MiB | {aggregates} | {:.1} MiB | {:.1} MiB of samples and aggregates | |",
        last.raw.0,
        mib(last.raw.1),
        mib((aggregates as f64 * per_aggregate) as u64),
        mib(bytes as u64),
    );
    Ok(())
}

/// What the health trees hold and the store takes on disk.
#[derive(Default)]
struct Footprint {
    raw: (u64, u64),
    aggregates: (u64, u64),
    disk: u64,
}

impl Footprint {
    fn of(store: &Store) -> Result<Self> {
        Ok(Self {
            raw: footprint(store, Series::Raw)?,
            aggregates: footprint(store, Series::Aggregates)?,
            disk: store.size_on_disk().unwrap_or(0),
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// User and system CPU seconds of this process so far (`/proc/self/stat`,
/// in clock ticks of 1/100 s).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no command")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; the state (field 3) is first.
    let ticks =
        |i: usize| -> Result<f64> { Ok(fields.get(i - 3).context("short stat")?.parse::<f64>()?) };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}
