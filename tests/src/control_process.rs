//! The real `slipway-control-plane` binary as a child process, so a test can
//! SIGKILL it at any point and start it again on the same address, sled
//! directory and PKI, waiting until it answers the gRPC health check.
//!
//! ```ignore
//! let mut cluster = Cluster::builder().process_control_plane().start().await;
//! cluster.kill_control_plane();
//! cluster.restart_control_plane().await; // same address: clients reconnect
//! ```

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use slipway_proto::{
    identity::Role,
    tls::{self, Peer, TlsMaterial},
};
use tonic::{Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    TestPki,
    process::{MetricsLine, strip_ansi},
};

/// How long the control plane may take from spawn to answering health checks.
const STARTUP: Duration = Duration::from_secs(60);

/// How long a SIGTERM'd control plane may take to drain and exit.
const DRAIN: Duration = Duration::from_secs(40);

/// The service whose health is checked: the one rollout tests use most.
const HEALTH_SERVICE: &str = "slipway.control.v1.DeploymentService";

/// The `slipway-control-plane` executable of this build, built on first use
/// (`SLIPWAY_CONTROL_PLANE_BIN` names a prebuilt one instead). See
/// [`crate::process::agent_binary`] for why the fixture runs cargo.
pub fn control_plane_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var_os("SLIPWAY_CONTROL_PLANE_BIN").map_or_else(
            || cargo_build("slipway-control-plane", "slipway-control-plane"),
            PathBuf::from,
        )
    })
}

/// Clears from `command` the variables cargo sets for a running test, for
/// a command that runs cargo: they are not the build's. ring's build script
/// tracks CARGO_MANIFEST_DIR, so passing them on would rebuild the TLS stack
/// (and every crate above it) whenever a plain `cargo build` ran in between,
/// holding the build lock other tests' fixtures wait on.
pub fn without_test_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
            ]
            .contains(&name.as_ref())
            || name.starts_with("CARGO_BIN_")
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "CARGO_TARGET_TMPDIR"
        {
            command.env_remove(name.as_ref());
        }
    }
}

/// Builds binary `bin` of `package` with cargo, into the target directory and
/// profile the running executable was built with; returns its path.
pub fn cargo_build(package: &str, bin: &str) -> PathBuf {
    // A test executable is `<target>/<profile>/deps/<name>-<hash>`, a binary
    // (the soak test) `<target>/<profile>/<name>`.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("profile dir")
    } else {
        dir
    };
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile dir name");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    without_test_env(&mut build);
    build
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let started = Instant::now();
    let status = build
        .status()
        .unwrap_or_else(|err| panic!("cannot run {cargo:?} to build {bin}: {err}"));
    assert!(
        status.success(),
        "building {bin} failed ({status}); its code must compile, see cargo's errors above"
    );
    eprintln!(
        "{bin} binary ready in {:.1?} (cargo build)",
        started.elapsed()
    );
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The address in the control plane's "control plane serving addr=<ip:port>"
/// line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    crate::process::addr_in_line(line, "control plane serving")
}

/// A `slipway-control-plane` child process, restartable on the same address
/// with the same sled directory and certificates. Killed (SIGKILL) when
/// dropped.
pub struct ControlPlaneProcess {
    /// Where it listens; the same across restarts.
    pub addr: SocketAddr,
    /// Where it serves metrics (an ephemeral port, new at each start).
    pub metrics: Option<SocketAddr>,
    /// Its sled directory.
    pub data_dir: PathBuf,
    pki_dir: PathBuf,
    /// An operator identity for health checks.
    probe: TlsMaterial,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
}

impl ControlPlaneProcess {
    /// Starts the control plane on an ephemeral loopback port with the
    /// certificates of `pki` and waits until it answers health checks.
    pub async fn start(pki: &TestPki, data_dir: PathBuf) -> Self {
        Self::start_with(pki, data_dir, Vec::new()).await
    }

    /// [`start`](Self::start) with these variables in its environment, on
    /// every (re)start.
    pub async fn start_with(pki: &TestPki, data_dir: PathBuf, env: Vec<(String, String)>) -> Self {
        let mut cp = Self {
            addr: "127.0.0.1:0".parse().expect("addr"),
            metrics: None,
            data_dir,
            pki_dir: pki.dir().to_owned(),
            probe: TestPki::material(&pki.operator(Role::Viewer)),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            env,
        };
        cp.spawn().await;
        cp
    }

    /// Process id of the running control plane.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("control plane running").id()
    }

    /// Whether a process is running (false after a kill until the restart).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything it wrote to stderr so far (across restarts), without
    /// colours: for assertion messages.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits until its log has a line containing `needle`; panics with
    /// the log after `limit`. Polls the log with a deadline: the daemon
    /// writes asynchronously.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "slipway-control-plane did not log {needle:?} within {limit:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it with SIGKILL (no drain, no flush) and reaps it.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("control plane running");
        child.kill().expect("SIGKILL the control plane");
        child.wait().expect("reap the control plane");
        self.note("--- killed with SIGKILL ---");
    }

    /// Stops it with SIGTERM and waits (bounded) for the drain and exit;
    /// panics if it does not exit or exits with a failure.
    pub async fn terminate(&mut self) {
        let child = self.child.take().expect("control plane running");
        let (child, status) = crate::process::sigterm_and_wait(child, DRAIN).await;
        match status {
            Some(status) if status.success() => self.note("--- stopped with SIGTERM ---"),
            Some(status) => panic!(
                "slipway-control-plane exited with {status} after SIGTERM; its log:\n{}",
                self.log()
            ),
            None => {
                self.child = Some(child);
                panic!(
                    "slipway-control-plane did not exit within {DRAIN:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Starts it again on the same address with the same directory and
    /// certificates; waits until it answers health checks.
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "kill or terminate the control plane before restarting it"
        );
        self.note("--- restarted ---");
        self.spawn().await;
    }

    /// Waits (bounded) until the process exits by itself and returns its
    /// status; panics with its log if it is still running after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("control plane running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.note(&format!("--- exited by itself: {status} ---"));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "slipway-control-plane did not exit within {limit:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Panics (with its log) if the process has exited by itself. A process
    /// the test killed and did not restart passes.
    pub fn assert_running(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "slipway-control-plane exited unexpectedly ({status}); its log:\n{}",
                self.log()
            );
        }
    }

    /// One health check of the control plane's deployment service.
    pub async fn check_health(&self) -> Result<(), Status> {
        let channel = tls::endpoint(&self.addr.to_string(), Peer::ControlPlane, &self.probe)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        match health_check(channel, HEALTH_SERVICE).await? {
            ServingStatus::Serving => Ok(()),
            other => Err(Status::unavailable(format!(
                "{HEALTH_SERVICE} reports health status {other:?}"
            ))),
        }
    }

    fn note(&self, line: &str) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_owned());
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(control_plane_binary())
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--pki-dir")
            .arg(&self.pki_dir)
            // The test's own environment must not configure the control plane.
            .env_remove("SLIPWAY_CP_CONFIG")
            .env_remove("SLIPWAY_CP_LISTEN")
            .env_remove("SLIPWAY_CP_DATA_DIR")
            .env_remove("SLIPWAY_CP_PKI_DIR")
            .env_remove("SLIPWAY_CP_LOG_JSON")
            .env_remove("SLIPWAY_CP_SOURCE_ROOTS")
            .env_remove("SLIPWAY_CP_METRICS_LISTEN")
            .env_remove("SLIPWAY_CP_SOURCE_HTTPS_CA_FILE")
            // Remote sources are fetched where a test asks (its env may
            // turn polling on).
            .env("SLIPWAY_CP_SOURCE_POLL_SECONDS", "0")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            // Health samples only where a test asks for them (its env):
            // they add agent calls and feed items.
            .env("SLIPWAY_CP_HEALTH_SAMPLE_EVERY_SECONDS", "3600")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {}: {err}", control_plane_binary().display())
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, serving) = mpsc::channel();
        let log = self.log.clone();
        let metrics = MetricsLine::default();
        let metrics_seen = metrics.clone();
        // Drains stderr for the process's whole life so the pipe never fills.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                metrics_seen.scan(&line);
                if let Some(addr) = serving_addr(&line)
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(addr);
                }
                log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let started = Instant::now();
        let addr = tokio::task::spawn_blocking(move || serving.recv_timeout(STARTUP))
            .await
            .expect("join");
        let addr = match addr {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "slipway-control-plane did not report serving ({err}; {status:?}); its log:\n{}",
                    self.log()
                );
            }
        };
        self.addr = addr;
        self.metrics = metrics.get();
        self.child = Some(child);
        self.wait_healthy(started + STARTUP).await;
    }

    /// Checks health until it answers SERVING. The "serving" line comes
    /// after the listener is bound, so the first check normally succeeds;
    /// the retry covers the moment between that line and the server loop.
    async fn wait_healthy(&mut self, deadline: Instant) {
        loop {
            let error = match self.check_health().await {
                Ok(()) => return,
                Err(status) => status,
            };
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "slipway-control-plane exited ({status}) before answering health checks; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "slipway-control-plane at {} is not healthy: {error}; its log:\n{}",
                    self.addr,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `grpc.health.v1.Health/Check` for `service`; returns its serving status.
async fn health_check(channel: Channel, service: &str) -> Result<ServingStatus, Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_serving_line() {
        let line = "2026-11-23T14:00:00.000000Z  INFO slipway_control_plane: control plane serving \
                    addr=127.0.0.1:40123 data_dir=/tmp/x/control-plane";
        assert_eq!(serving_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(
            serving_addr("INFO slipway-agent listening addr=1.2.3.4:5"),
            None
        );
    }
}
