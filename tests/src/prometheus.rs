//! A real Prometheus server (the Debian package `prometheus`) scraping
//! given targets every half second, on a free loopback port with its data
//! in a temporary directory; queried through its HTTP API. Killed when
//! dropped.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

use crate::scrape::get;

/// How long Prometheus may take to start, and a query to find its answer.
const DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two polls of Prometheus's API.
const POLL: Duration = Duration::from_millis(200);

/// A running Prometheus server.
pub struct Prometheus {
    /// Its HTTP API.
    pub addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

/// The `prometheus` executable: `SLIPWAY_PROMETHEUS_BIN`, or the one on
/// `PATH`. Panics, naming the package to install, when there is none: CI
/// installs it, and a test that needs it must not pass without it.
pub fn binary() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("SLIPWAY_PROMETHEUS_BIN") {
        Some(bin) => vec![PathBuf::from(bin)],
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("prometheus"))
            .collect(),
    };
    candidates
        .into_iter()
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `prometheus` executable (SLIPWAY_PROMETHEUS_BIN or PATH): install the \
                 Debian package `prometheus` (apt-get install -y prometheus)"
            )
        })
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, address)` and waits until it
    /// is ready.
    pub async fn scraping(targets: &[(&str, SocketAddr)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(targets)).expect("write prometheus.yml");
        // Prometheus cannot report a port it chose: take a free one.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Self {
            addr,
            child,
            _dir: dir,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if self.answers("/-/ready").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus is not ready after {DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn answers(&self, path: &str) -> bool {
        // Not listening yet: nothing to ask.
        if tokio::net::TcpStream::connect(self.addr).await.is_err() {
            return false;
        }
        get(self.addr, path).await.status == 200
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result vector of an instant query (`/api/v1/query`).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer = get(self.addr, &format!("/api/v1/query?query={expr}")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let json: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(json["status"], "success", "{json}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `expr` until `found` accepts its result (scrapes come every
    /// half second); panics after a deadline.
    pub async fn wait_for(&self, expr: &str, found: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let result = self.query(expr).await;
            if found(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} is still {result:?} after {DEADLINE:?}; prometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration with one job per target, scraped every half second.
fn scrape_config(targets: &[(&str, SocketAddr)]) -> String {
    let mut yaml = String::from(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n",
    );
    for (job, addr) in targets {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
        ));
    }
    yaml
}
