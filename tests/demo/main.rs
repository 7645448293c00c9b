//! `slipway-demo`: the whole product on one machine. Mints a PKI in a temp
//! dir, starts a control plane and three agents on loopback, generates a git
//! repository, then drives them with slipctl's own commands: deploy commit 1,
//! deploy commit 2, roll back, and show every host's final state.
//!
//! ```sh
//! cargo run -p slipway-tests --bin slipway-demo
//! cargo run -p slipway-tests --bin slipway-demo -- --keep   # keep the PKI, repository and hosts' files
//! cargo run -p slipway-tests --bin slipway-demo -- --serve  # then keep serving the dashboard
//! ```
//!
//! It lives in the tests crate, not in slipctl, so that the operator CLI
//! depends on the contract alone and not on the servers it talks to.

#![forbid(unsafe_code)]

mod repo;
mod shell;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use slipctl::{Cli, pki};
use slipway_proto::tls::TlsPaths;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::repo::DemoRepo;

/// Run the whole product on this machine: a temporary PKI, a control plane
/// and three agents on loopback, a generated git repository; deploy commit 1,
/// deploy commit 2, roll back, and show every host's state.
#[derive(Debug, Parser)]
#[command(name = "slipway-demo")]
struct Args {
    /// Keep the temporary directory (PKI, repository, hosts' files) afterwards.
    #[arg(long)]
    keep: bool,
    /// Keep serving afterwards (the dashboard on https://127.0.0.1:7480)
    /// until Ctrl-C.
    #[arg(long)]
    serve: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    slipway_proto::daemon::install_crypto_provider();
    match run(args.keep, args.serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", slipctl::error_line(&err));
            ExitCode::FAILURE
        }
    }
}

const HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];

/// Runs the demo; `keep` leaves the temporary directory in place, `serve`
/// keeps the servers up until Ctrl-C.
async fn run(keep: bool, serve: bool) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("slipway-demo-").tempdir()?;
    let root = tmp.path().to_owned();
    println!("# Slipway demo in {}", root.display());

    let pki_dir = root.join("pki");
    pki::init(
        &pki_dir,
        &pki::InitOptions {
            control_plane_name: "main".into(),
            sans: Vec::new(),
            validity_days: 1,
            force: false,
        },
    )?;
    for host in HOSTS {
        pki::issue_agent(&pki_dir, host, &["127.0.0.1".to_owned()], 1)?;
    }
    println!(
        "# minted a CA, control-plane, agent and admin certificates in {}",
        pki_dir.display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = JoinSet::new();
    let mut agents = Vec::new();
    for host in HOSTS {
        let apps_dir = root.join("hosts").join(host);
        std::fs::create_dir_all(&apps_dir)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = slipway_agent::Config {
            listen: addr,
            host_name: host.to_owned(),
            apps_dir: apps_dir.clone(),
            allowed_roots: Vec::new(),
            data_dir: root.join("agent-state").join(host),
            tls: paths(&pki_dir, &format!("agent-{host}")),
            log_json: false,
            prestage: true,
            prestage_idle: std::time::Duration::from_secs(1),
            hooks: slipway_agent::config::HookConfig::default(),
            metrics_listen: None,
        };
        std::fs::create_dir_all(&config.data_dir)?;
        let stop = stopped(stop_rx.clone());
        servers.spawn(async move {
            slipway_agent::serve(config, listener, stop)
                .await
                .map_err(anyhow::Error::from)
        });
        agents.push((host, addr, apps_dir));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let cp_addr = listener.local_addr()?;
    let config = slipway_control_plane::Config {
        listen: cp_addr,
        data_dir: root.join("control-plane"),
        etcd: None,
        tls: paths(&pki_dir, "control-plane"),
        agent_tls: paths(&pki_dir, "control-plane-client"),
        cache_capacity_bytes: 16 << 20,
        log_json: false,
        recheck_every: std::time::Duration::from_secs(30),
        health_sample_every: std::time::Duration::from_secs(30),
        drift_every: None,
        history_retention: Some(std::time::Duration::from_secs(90 * 86_400)),
        notify_retry_max: slipway_control_plane::notify::DEFAULT_RETRY_MAX,
        source_roots: Default::default(),
        sources: Default::default(),
        signing: None,
        enroll_listen: None,
        metrics_listen: None,
        web_listen: None,
        builds: Default::default(),
        secrets_key_file: None,
        secrets_previous_key_file: None,
        cluster: Default::default(),
    };
    let metrics = TcpListener::bind("127.0.0.1:0").await?;
    let metrics_addr = metrics.local_addr()?;
    // The dashboard on its usual port, or any free one when 7480 is taken.
    let web = match TcpListener::bind("127.0.0.1:7480").await {
        Ok(listener) => listener,
        Err(_) => TcpListener::bind("127.0.0.1:0").await?,
    };
    let dashboard = format!("https://127.0.0.1:{}", web.local_addr()?.port());
    let listeners = slipway_control_plane::server::Listeners {
        api: listener,
        enroll: None,
        metrics: Some(metrics),
        web: Some(web),
    };
    let stop = stopped(stop_rx.clone());
    servers.spawn(async move {
        slipway_control_plane::server::serve_with(config, listeners, stop)
            .await
            .map_err(anyhow::Error::from)
    });
    println!("# control plane metrics: curl http://{metrics_addr}/metrics");
    println!("# dashboard: {dashboard} (slipctl dashboard login prints a link)");
    println!(
        "# control plane on {cp_addr}; agents {}",
        agents
            .iter()
            .map(|(h, a, _)| format!("{h}={a}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let repo_dir = root.join("repo");
    let repo = DemoRepo::create(&repo_dir)?;
    let first = repo.commit(
        "Initial release",
        &[
            (
                "index.html",
                b"<h1>Hello from release 1</h1>\n".as_slice(),
                false,
            ),
            (
                "bin/start",
                b"#!/bin/sh\nexec python3 -m http.server\n",
                true,
            ),
            ("config/app.toml", b"workers = 2\n", false),
        ],
    )?;
    println!("# git repository {} at {}", repo_dir.display(), &first[..7]);

    let result = script(&cp_addr, &pki_dir, &repo_dir, &repo, &agents, &dashboard).await;
    if serve && result.is_ok() {
        println!("\n# serving the dashboard on {dashboard}; Ctrl-C stops");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    while let Some(joined) = servers.join_next().await {
        joined.context("server task")??;
    }
    if keep {
        let kept = tmp.keep();
        println!("# kept {}", kept.display());
    }
    result
}

async fn script(
    cp: &SocketAddr,
    pki_dir: &Path,
    repo_dir: &Path,
    repo: &DemoRepo,
    agents: &[(&str, SocketAddr, PathBuf)],
    dashboard: &str,
) -> Result<()> {
    let ctl = |args: &[&str]| {
        let mut argv = vec![
            "slipctl".to_owned(),
            "--endpoint".into(),
            cp.to_string(),
            "--pki-dir".into(),
            pki_dir.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    };
    let repo_path = repo_dir.display().to_string();
    let mut steps: Vec<Vec<String>> = vec![
        ctl(&[
            "app", "create", "web", "--repo", &repo_path, "--branch", "main", "--keep", "3",
        ]),
        ctl(&["env", "create", "prod", "--description", "production"]),
    ];
    for (host, addr, _) in agents {
        steps.push(ctl(&[
            "host",
            "add",
            host,
            "--address",
            &addr.to_string(),
            "--env",
            "prod",
        ]));
    }
    steps.push(ctl(&[
        "deploy",
        "web",
        "--env",
        "prod",
        "--ref",
        "main",
        "-m",
        "first deploy",
    ]));
    for argv in steps {
        step(argv).await?;
    }

    let second = repo.commit(
        "Release 2: new page and more workers",
        &[
            (
                "index.html",
                b"<h1>Hello from release 2</h1>\n".as_slice(),
                false,
            ),
            ("about.html", b"<p>About</p>\n", false),
            ("config/app.toml", b"workers = 4\n", false),
        ],
    )?;
    println!("\n# committed {} to main", &second[..7]);
    for argv in [
        ctl(&["release", "create", "web", "--ref", "main"]),
        ctl(&[
            "deploy",
            "web",
            "--env",
            "prod",
            "--ref",
            "main",
            "-m",
            "second deploy",
        ]),
        ctl(&[
            "rollback",
            "web",
            "--env",
            "prod",
            "-m",
            "roll back to release 1",
            "--yes",
        ]),
        ctl(&["status", "--env", "prod", "--app", "web"]),
        ctl(&["history", "--app", "web"]),
        ctl(&["dashboard", "login", "--url", dashboard]),
    ] {
        step(argv).await?;
    }

    println!("\n# every host's final state");
    for (host, _, apps_dir) in agents {
        let root = apps_dir.join("web");
        let current = std::fs::read_link(root.join("current"))?;
        let index = std::fs::read_to_string(root.join("current/index.html"))?;
        let mut releases: Vec<String> = std::fs::read_dir(root.join("releases"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        releases.sort();
        println!(
            "{host}: current -> {}  index.html: {}  releases on disk: {}",
            current.display(),
            index.trim(),
            releases.join(", ")
        );
    }
    Ok(())
}

async fn step(argv: Vec<String>) -> Result<()> {
    // Not shown: the program name and the connection flags every step shares.
    let shown = shell::command_line(argv.iter().skip(5).map(String::as_str));
    println!("\n$ slipctl {shown}");
    let cli = Cli::try_parse_from(&argv).context("demo command line")?;
    // The CLI's own entry point, so the demo shows exactly what an operator sees.
    let code = slipctl::run(cli).await;
    if code != ExitCode::SUCCESS {
        bail!("`slipctl {shown}` failed");
    }
    Ok(())
}

fn paths(dir: &Path, name: &str) -> TlsPaths {
    TlsPaths {
        ca: dir.join("ca.crt"),
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
