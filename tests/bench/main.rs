//! `slipway-bench`: Slipway's transfer benchmark against the hand-rolled
//! baseline (rsync --link-dest over ssh + an atomic `mv -T` symlink switch).
//!
//! ```sh
//! apt-get update && apt-get install -y openssh-server rsync   # once, for the baseline
//! cargo run --release -p slipway-tests --bin slipway-bench -- --agents 16
//! ```
//!
//! It generates a git repository of 2,000 files (~25 MB), starts a control
//! plane and N agents on loopback (each behind a byte-counting proxy), a
//! private sshd on loopback with N target directories, and measures four
//! steps on both: a cold deploy, a deploy of a commit changing one small
//! file, a deploy of a commit adding 20 files and changing 5, and a rollback
//! to a release still on disk. All traffic stays on 127.0.0.1; everything
//! lives in temporary directories removed at the end.

#![forbid(unsafe_code)]

mod baseline;
mod floor;
mod proxy;
mod repo;
mod slipway;

use std::{
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;
use slipway_proto::control::v1::EventKind;

use crate::{baseline::Baseline, floor::Durability, proxy::Traffic, repo::Plan, slipway::Slipway};

/// Progress on stderr, with the seconds since the start.
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[{:6.1} s] {}", START.get_or_init(Instant::now).elapsed().as_secs_f64(), format!($($arg)*))
    };
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The target of "sending no more than the changed file plus 10 KB".
const ONE_FILE_SLACK: u64 = 10 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "slipway-bench",
    about = "Slipway deploy/rollback vs rsync --link-dest over ssh, on N loopback hosts"
)]
struct Args {
    /// Number of agents (and of rsync targets).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    agents: u16,
    /// Seed of the generated repository's content.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Measure Slipway only (no sshd/rsync needed).
    #[arg(long)]
    no_baseline: bool,
    /// Exit with status 1 when a target is missed.
    #[arg(long)]
    strict: bool,
    /// Also print every event of the one-file deploy and of the rollback,
    /// with its time from the call.
    #[arg(long)]
    timeline: bool,
}

/// One row of the table.
struct Row {
    name: &'static str,
    slipway: slipway::StepResult,
    baseline: Option<baseline::StepResult>,
    /// The least any tool must do on the hosts (see `floor.rs`).
    floor: Duration,
    /// The same, made durable.
    durable_floor: Duration,
    /// After a deploy, until every agent had the next deploy's tree
    /// prestaged (untimed: the bench waits for it before the next step).
    prestaged: Option<Duration>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    START.get_or_init(Instant::now);
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if args.strict => ExitCode::FAILURE,
        Ok(false) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("slipway-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; true when every target is met.
async fn run(args: &Args) -> Result<bool> {
    let n = usize::from(args.agents);
    if !args.no_baseline {
        baseline::check_tools()?;
    }
    let load_before = load_average();
    let plan = Plan::generate(args.seed);
    let (files, bytes) = (plan.initial.len(), repo::total_bytes(&plan.initial));
    let changed = &plan.one_file[0];
    let changed_size = changed.1.len() as u64;
    progress!("generated {files} files, {}", human(bytes));
    let fsync = fsync_latency()?;

    progress!("starting a control plane and {n} agents (+ proxies)");
    let sw = Slipway::start(n).await?;
    let bl = if args.no_baseline {
        None
    } else {
        progress!("starting sshd on loopback with {n} targets (+ proxies)");
        let bl = Baseline::start(n).await?;
        progress!("sshd answers; {n} untimed ssh logins done");
        Some(bl)
    };
    let work_tree = sw.repo().path().to_owned();

    let floor = floor::Floor::new(n)?;
    let mut tree = std::collections::BTreeMap::new();
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    let steps: [(&'static str, &str, &repo::Files); 3] = [
        ("cold deploy (c1)", "commit 1: 2,000 files", &plan.initial),
        (
            "1 file changed (c2)",
            "commit 2: one small file",
            &plan.one_file,
        ),
        (
            "20 added + 5 changed (c3)",
            "commit 3: 20 added, 5 changed",
            &plan.twenty_five,
        ),
    ];
    for (k, (name, message, files)) in steps.into_iter().enumerate() {
        let sha = repo::commit(sw.repo(), message, files);
        progress!("{name}: committed; Slipway");
        let s = sw.deploy("main").await?;
        let id = s.deployment.release.clone();
        verify_slipway(&sw, &id, Some(&sha))?;
        // As a deploy after any idle time finds it; nothing else runs
        // meanwhile, so the baseline and the floor have the disk to themselves.
        progress!("{name}: waiting for the agents to prestage the next tree");
        let prestaged = sw.prestaged(&id).await?;
        let b = match &bl {
            Some(bl) => {
                progress!("{name}: rsync baseline");
                let bid = format!("r{}", k + 1);
                let prev = (k > 0).then(|| format!("r{k}"));
                let b = bl.deploy(&work_tree, &bid, prev.as_deref()).await?;
                verify_baseline(bl, n, &bid, &work_tree, &files[0].0)?;
                Some(b)
            }
            None => None,
        };
        progress!("{name}: the floor");
        tree.extend(files.iter().cloned());
        let release = format!("r{}", k + 1);
        let export = floor.export(&release, &tree.clone().into_iter().collect())?;
        let floor_time = |durability, suffix: &str| {
            let release = format!("{release}{suffix}");
            match k {
                0 => floor.cold(&export, &release, durability),
                _ => floor.incremental(
                    &export,
                    &format!("r{k}{suffix}"),
                    &release,
                    files,
                    durability,
                ),
            }
        };
        let (plain, durable) = (
            floor_time(Durability::None, "")?,
            floor_time(Durability::Synced, "-synced")?,
        );
        ids.push(id);
        rows.push(Row {
            name,
            slipway: s,
            baseline: b,
            floor: plain,
            durable_floor: durable,
            prestaged: Some(prestaged),
        });
    }
    progress!("rollback to c2: Slipway");
    let s = sw.rollback().await?;
    ensure!(
        s.deployment.release == ids[1],
        "rolled back to {}, expected {}",
        s.deployment.release,
        ids[1]
    );
    verify_slipway(&sw, &ids[1], None)?;
    let b = match &bl {
        Some(bl) => {
            progress!("rollback to c2: rsync baseline");
            let b = bl.rollback("r2").await?;
            for i in 0..n {
                ensure!(
                    bl.current(i).as_deref() == Some("r2"),
                    "target {i} not on r2"
                );
            }
            Some(b)
        }
        None => None,
    };
    rows.push(Row {
        name: "rollback to c2 (on disk)",
        slipway: s,
        baseline: b,
        floor: floor.rollback("r2", Durability::None)?,
        durable_floor: floor.rollback("r2-synced", Durability::Synced)?,
        prestaged: None,
    });

    let cost = sw.manifest_cost(&rows[1].slipway).await?;
    progress!("stopping sshd and removing the baseline's targets");
    if let Some(bl) = bl {
        bl.stop().await;
    }
    progress!("stopping Slipway and removing its hosts");
    sw.shutdown().await;

    let load = format!("{} before, {} after", load_before, load_average());
    progress!("done");
    print_report(n, files, bytes, changed, fsync, &load, &rows);
    print_floor(n, &rows);
    print_one_file_wire(&rows[1].slipway, &cost);
    if args.timeline {
        print_timeline(&rows[1]);
        print_timeline(rows.last().context("a rollback row")?);
    }
    Ok(print_checks(&rows, changed_size))
}

/// Every agent on `id`, and on web-1 the release matches the commit byte
/// for byte.
fn verify_slipway(sw: &Slipway, id: &str, sha: Option<&str>) -> Result<()> {
    for agent in &sw.cluster.agents {
        ensure!(
            agent.current().as_deref() == Some(id),
            "{}: current is {:?}, expected {id}",
            agent.name,
            agent.current()
        );
    }
    if let Some(sha) = sha {
        let web1 = &sw.cluster.agents[0];
        slipway_tests::repo::assert_tree_matches(&web1.release_dir(id), sw.repo(), sha);
    }
    Ok(())
}

/// Every target on `id`, and a file of the step identical to the source.
fn verify_baseline(bl: &Baseline, n: usize, id: &str, src: &Path, probe: &str) -> Result<()> {
    for i in 0..n {
        ensure!(
            bl.current(i).as_deref() == Some(id),
            "target {i}: current is {:?}, expected {id}",
            bl.current(i)
        );
    }
    let want = std::fs::read(src.join(probe))?;
    let got = std::fs::read(bl.target(n - 1).join("current").join(probe))
        .with_context(|| format!("read {probe} on the last target"))?;
    ensure!(want == got, "target {}: {probe} differs", n - 1);
    Ok(())
}

fn print_report(
    n: usize,
    files: usize,
    bytes: u64,
    changed: &(String, Vec<u8>),
    fsync: Duration,
    load: &str,
    rows: &[Row],
) {
    println!("## slipway-bench: {n} hosts on loopback\n");
    println!(
        "repository: {files} files, {} ({} text files of 1-20 KiB, {} binaries of 1-2 MiB); \
         the one-file commit changes {} ({} B)",
        human(bytes),
        repo::TEXT_FILES,
        repo::BINARY_FILES,
        changed.0,
        changed.1.len()
    );
    println!(
        "machine: {} CPUs, load average (1 min) {load}, fsync of a 4 KiB file + its directory \
         {:.2} ms in {}; Slipway in-process (1 control plane + {n} agents, mTLS, sled), \
         baseline: sshd on 127.0.0.1\n",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        fsync.as_secs_f64() * 1e3,
        std::env::temp_dir().display(),
    );
    println!(
        "| step | Slipway | of which to 1st event | rsync+ssh | baseline ÷ Slipway \
         | Slipway content/host | Slipway wire/host cp→agent | agent→cp \
         | rsync sent/host | baseline wire/host →target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let s = &row.slipway;
        let wire = max_traffic(&s.wire);
        let (b_time, ratio, b_sent, b_wire) = match &row.baseline {
            Some(b) => (
                secs(b.wall),
                format!("{:.2}x", b.wall.as_secs_f64() / s.wall.as_secs_f64()),
                human(b.rsync_sent.iter().copied().max().unwrap_or(0)),
                human(max_traffic(&b.wire).to_upstream),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {b_time} | {ratio} | {} | {} | {} | {b_sent} | {b_wire} |",
            row.name,
            secs(s.wall),
            secs(s.first_event),
            human(s.content_per_host()),
            human(wire.to_upstream),
            human(wire.to_client),
        );
    }
    println!(
        "\nSlipway: from issuing Deploy/Rollback to the final event, including cutting the \
         release from git (inside \"to 1st event\"). Baseline: rsync + ssh switch only; the \
         checkout update is untimed like the git commit. Bytes per host are the maximum over \
         hosts; \"content\" is HostProgress.bytes_sent, \"wire\" counts every byte through a TCP \
         proxy in front of each agent / each ssh target (TLS, HTTP/2, manifest included).\n"
    );
    println!("Where Slipway's time goes (medians over hosts, seconds from the call):\n");
    println!(
        "| step | 1st event | dial+MissingObjects | upload | agent Deploy/Rollback (relayed) \
         | of which materialise | last host switched | final event | events recorded \
         | median gap between events |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let b = breakdown(&row.slipway);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            secs(row.slipway.first_event),
            opt_secs(b.missing),
            opt_secs(b.upload),
            opt_secs(b.agent),
            opt_secs(b.materialise),
            opt_secs(b.last_switch),
            secs(row.slipway.wall),
            row.slipway.deployment.last_event,
            b.event_gap
                .map_or("-".into(), |g| format!("{:.1} ms", g * 1e3)),
        );
    }
    println!(
        "\n(phase times come from the recorded events' timestamps, which are taken when each \
         event is made durable in sled, events that arrive during a flush committed together; \"materialise\" is the release directory's birth time to \
         its rename into releases/ (ctime); \"last host switched\" is the mtime of the newest \
         `current` symlink.)\n"
    );
}

/// Every recorded event of a step, in order, with its time from the call.
fn print_timeline(row: &Row) {
    println!(
        "\nEvents of \"{}\", in milliseconds from the call:\n",
        row.name
    );
    println!("| ms | host | stage | message |");
    println!("|---:|---|---|---|");
    for event in &row.slipway.events {
        let at = row.slipway.at(event).map_or(f64::NAN, |s| s * 1e3);
        let message: String = event.message.chars().take(90).collect();
        let host = if event.host.is_empty() {
            "-"
        } else {
            &event.host
        };
        println!("| {at:.1} | {host} | {} | {message} |", event.stage);
    }
}

/// Slipway against the floor, with the targets.
fn print_floor(n: usize, rows: &[Row]) {
    println!("Against the floor on {n} hosts (the same disk, a thread per host):\n");
    println!(
        "| step | Slipway | floor | Slipway ÷ floor | target | durable floor | Slipway ÷ durable floor | next tree prestaged after (untimed) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let targets = ["≤ 1.5x", "≤ 1.0x", "-", "≤ 0.6x"];
    let ratio = |of: Duration, to: Duration| of.as_secs_f64() / to.as_secs_f64();
    for (row, target) in rows.iter().zip(targets) {
        println!(
            "| {} | {} | {} | {:.2}x | {target} | {} | {:.2}x | {} |",
            row.name,
            secs(row.slipway.wall),
            secs(row.floor),
            ratio(row.slipway.wall, row.floor),
            secs(row.durable_floor),
            ratio(row.slipway.wall, row.durable_floor),
            row.prestaged.map_or("-".to_owned(), secs),
        );
    }
    println!(
        "\nfloor: cold = `cp -a` of the tree; incremental = `cp -al` of the previous release \
         plus a copy of each changed file; rollback = `ln -sfn` + `mv -T` of `current`; each \
         followed by that switch. Nothing is transferred, synced, checked or recorded. \
         durable floor: the same, plus `sync -f` of the release before the switch and \
         `sync` of the host directory after it (a rollback: the latter only), as Slipway \
         makes a release and its switch durable before it reports a host done. \
         next tree prestaged: after a deploy, each agent builds that release's tree again, \
         at the lowest CPU priority, for the next deploy to patch (it links only what \
         differs); the bench waits for every agent to have it before it goes on, as a \
         deploy after any idle time finds it. A deploy that comes sooner builds its tree \
         afresh, as the floor does.\n"
    );
}

/// What the one-file deploy's bytes on the wire (control plane -> agent) are,
/// next to what sending the whole manifest would cost.
fn print_one_file_wire(s: &slipway::StepResult, cost: &slipway::ManifestCost) {
    let wire = max_traffic(&s.wire).to_upstream;
    let content = s.content_per_host();
    println!("The one-file deploy on the wire, control plane → agent, per host (max):\n");
    println!("| part | bytes |");
    println!("|---|---:|");
    println!("| UploadObjects content (HostProgress.bytes_sent) | {content} |");
    println!(
        "| everything else: MissingObjects, Deploy (manifest or delta), TLS handshake and \
         certificates, HTTP/2 and gRPC framing | {} |",
        wire.saturating_sub(content)
    );
    println!("| **total** | **{wire}** |");
    println!(
        "| for reference, a full manifest: MissingObjects with all {} hashes + Deploy with all \
         {} entries | {} + {} |\n",
        cost.files, cost.files, cost.missing_objects, cost.deploy
    );
}

/// Phase medians of one Slipway step, in seconds.
struct Breakdown {
    missing: Option<f64>,
    upload: Option<f64>,
    agent: Option<f64>,
    materialise: Option<f64>,
    last_switch: Option<f64>,
    /// Between consecutive recorded events: each is one sled transaction
    /// and flush by the deployment's single recorder.
    event_gap: Option<f64>,
}

fn breakdown(s: &slipway::StepResult) -> Breakdown {
    let (mut missing, mut upload, mut agent) = (Vec::new(), Vec::new(), Vec::new());
    for host in &s.deployment.hosts {
        let of_host = |pred: &dyn Fn(&slipway_proto::control::v1::DeploymentEvent) -> bool| {
            s.events
                .iter()
                .filter(|e| e.host == host.host && pred(e))
                .find_map(|e| s.at(e))
        };
        let status = EventKind::Status as i32;
        // Preparing starts with the dial.
        let connect = of_host(&|e| e.kind == status && e.stage == "prepare");
        let lacks = of_host(&|e| e.kind == status && e.stage == "transfer");
        let sent = of_host(&|e| e.kind == EventKind::Log as i32 && e.stage == "transfer");
        let done = of_host(&|e| e.kind == status && e.stage == "done");
        if let (Some(c), Some(l)) = (connect, lacks) {
            missing.push(l - c);
        }
        if let (Some(l), Some(t)) = (lacks, sent) {
            upload.push(t - l);
        }
        // Deploy: after the upload (prepare, then switch); rollback: from
        // the dial (check, then switch).
        if let (Some(from), Some(d)) = (sent.or(connect), done) {
            agent.push(d - from);
        }
    }
    let times: Vec<f64> = s.events.iter().filter_map(|e| s.at(e)).collect();
    let gaps = times.windows(2).map(|w| w[1] - w[0]).collect();
    Breakdown {
        event_gap: median(gaps),
        missing: median(missing),
        upload: median(upload),
        agent: median(agent),
        materialise: median(
            s.materialise
                .iter()
                .flatten()
                .map(Duration::as_secs_f64)
                .collect(),
        ),
        last_switch: s.switched.iter().flatten().max().map(Duration::as_secs_f64),
    }
}

fn print_checks(rows: &[Row], changed_size: u64) -> bool {
    let [cold, one, _, rollback] = rows else {
        return false;
    };
    let mut all = true;
    let mut check = |ok: bool, text: String| {
        all &= ok;
        println!("{}  {text}", if ok { "PASS" } else { "FAIL" });
    };
    let ratio = |row: &Row| {
        row.baseline
            .as_ref()
            .map(|b| b.wall.as_secs_f64() / row.slipway.wall.as_secs_f64())
    };
    let timing = |row: &Row| {
        format!(
            "Slipway {} vs baseline {}",
            secs(row.slipway.wall),
            row.baseline.as_ref().map_or("-".into(), |b| secs(b.wall))
        )
    };
    println!("Targets:\n");
    if let Some(r) = ratio(one) {
        check(
            r >= 5.0,
            format!(
                "one-file deploy at least 5x faster than the baseline: {r:.2}x ({})",
                timing(one)
            ),
        );
    }
    let wire = max_traffic(&one.slipway.wire).to_upstream;
    let limit = changed_size + ONE_FILE_SLACK;
    check(
        wire <= limit,
        format!(
            "one-file deploy sends at most the changed file + 10 KiB per host on the wire: \
             {wire} B (limit {changed_size} + {ONE_FILE_SLACK} = {limit} B; content {} B)",
            one.slipway.content_per_host()
        ),
    );
    if let Some(r) = ratio(rollback) {
        check(
            r >= 10.0,
            format!(
                "rollback at least 10x faster than the baseline: {r:.2}x ({})",
                timing(rollback)
            ),
        );
    }
    if let Some(r) = ratio(cold) {
        check(
            r >= 1.0,
            format!(
                "cold deploy no slower than the baseline: {r:.2}x ({})",
                timing(cold)
            ),
        );
    }
    all
}

/// The per-host maximum of each direction.
fn max_traffic(per_host: &[Traffic]) -> Traffic {
    Traffic {
        to_upstream: per_host.iter().map(|t| t.to_upstream).max().unwrap_or(0),
        to_client: per_host.iter().map(|t| t.to_client).max().unwrap_or(0),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.3} s"))
}

fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 10 * 1024 {
        format!("{bytes} B")
    } else if b < 10.0 * KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / KIB / KIB)
    }
}

/// The 1-minute load average, for judging how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Median time of writing+fsyncing a 4 KiB file and fsyncing its directory
/// in the temp dir, where the agents keep their files: what every durable
/// step costs on this disk.
fn fsync_latency() -> Result<Duration> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let mut times = Vec::new();
    for i in 0..40 {
        let start = Instant::now();
        let mut f = std::fs::File::create(dir.path().join(format!("f{i}")))?;
        f.write_all(&[b'x'; 4096])?;
        f.sync_all()?;
        std::fs::File::open(dir.path())?.sync_all()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}
