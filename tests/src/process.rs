//! The real `slipway-agent` binary as a child process, so a test can SIGKILL
//! it at any point and start it again on the same address and directories;
//! and a probe for processes the agent starts (hooks) that outlive it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc},
    time::{Duration, Instant},
};

use slipway_agent::PAUSE_VAR;
use slipway_proto::tls::TlsPaths;

/// Sends SIGTERM to `child` and waits up to `limit` for it to exit; the
/// child back with its exit status, or `None` when it still runs.
pub async fn sigterm_and_wait(
    mut child: Child,
    limit: Duration,
) -> (Child, Option<std::process::ExitStatus>) {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return (child, Some(status)),
                Ok(None) if Instant::now() < deadline => {
                    // No event to wait on with a deadline for a child in
                    // std; short steps bound the wait.
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return (child, None),
            }
        }
    })
    .await
    .expect("join")
}

/// How long an agent may take from spawn to its "listening" line.
const STARTUP: Duration = Duration::from_secs(60);

/// The `slipway-agent` executable of this build, built on first use.
///
/// `cargo test`/`cargo nextest run --workspace` build the agent's binary only
/// as a unit-test harness, never `<target>/<profile>/slipway-agent`, so the
/// fixture asks cargo for it (a no-op when it is fresh). That also keeps it
/// from being stale while the agent's code changes under the tests.
/// `SLIPWAY_AGENT_BIN` names a prebuilt binary instead.
pub fn agent_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SLIPWAY_AGENT_BIN") {
            return PathBuf::from(bin);
        }
        crate::control_process::cargo_build("slipway-agent", "slipway-agent")
    })
}

/// Removes ANSI escape sequences (colours, styles) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The `addr=<ip:port>` of a daemon's log line that contains `marker`
/// ("slipway-agent listening", "control plane serving").
pub(crate) fn addr_in_line(line: &str, marker: &str) -> Option<SocketAddr> {
    if !line.contains(marker) {
        return None;
    }
    if let Some((_, rest)) = line.split_once("\"addr\":\"") {
        // A JSON line.
        return rest.split('"').next()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .and_then(|addr| addr.trim_matches('"').parse().ok())
}

/// The address in an agent's "slipway-agent listening ... addr=<ip:port>" line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    addr_in_line(line, "slipway-agent listening")
}

/// An agent's stderr lines across restarts, with a way to wait for one.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Log {
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        self.lines().push(line);
        self.added.notify_all();
    }

    /// Blocks until a line from index `from` on contains `needle`, for at
    /// most `limit`; returns whether one did.
    fn wait_for(&self, from: usize, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut lines = self.lines();
        loop {
            if lines.iter().skip(from).any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            lines = self
                .added
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Where a daemon's metrics listener is, from its stderr lines as they
/// pass: a daemon logs "metrics listening addr=..." before it reports
/// serving, so the address is known by then.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetricsLine(Arc<Mutex<Option<SocketAddr>>>);

impl MetricsLine {
    /// Notes the address if `line` reports it.
    pub(crate) fn scan(&self, line: &str) {
        if let Some(addr) = addr_in_line(line, "metrics listening") {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        }
    }

    /// The address last reported.
    pub(crate) fn get(&self) -> Option<SocketAddr> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A `slipway-agent` child process with its directories, restartable on the
/// same address. Killed (SIGKILL) when dropped.
pub struct AgentProcess {
    /// Where it listens; the same across restarts.
    pub addr: SocketAddr,
    /// Where it serves metrics (an ephemeral port, new at each start).
    pub metrics: Option<SocketAddr>,
    host_name: String,
    tls: TlsPaths,
    apps_dir: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    log: Arc<Log>,
    pause_at: Option<String>,
    env: Vec<(String, String)>,
    /// Index of the first log line of the running process.
    started_at_line: usize,
    /// The executable started.
    binary: PathBuf,
}

impl AgentProcess {
    /// Starts the agent on an ephemeral loopback port and waits until it
    /// listens.
    pub async fn start(
        host_name: &str,
        tls: TlsPaths,
        apps_dir: PathBuf,
        data_dir: PathBuf,
    ) -> Self {
        Self::start_with(host_name, tls, apps_dir, data_dir, Vec::new()).await
    }

    /// [`start`](Self::start) with these variables in its environment, on
    /// every (re)start.
    pub async fn start_with(
        host_name: &str,
        tls: TlsPaths,
        apps_dir: PathBuf,
        data_dir: PathBuf,
        env: Vec<(String, String)>,
    ) -> Self {
        let binary = agent_binary().to_owned();
        Self::start_from(binary, host_name, tls, apps_dir, data_dir, env).await
    }

    /// [`start_with`](Self::start_with) from the executable `binary` (a
    /// copy of its own, which an upgrade may replace).
    pub async fn start_from(
        binary: PathBuf,
        host_name: &str,
        tls: TlsPaths,
        apps_dir: PathBuf,
        data_dir: PathBuf,
        env: Vec<(String, String)>,
    ) -> Self {
        let mut agent = Self {
            binary,
            addr: "127.0.0.1:0".parse().expect("addr"),
            metrics: None,
            host_name: host_name.to_owned(),
            tls,
            apps_dir,
            data_dir,
            child: None,
            log: Arc::default(),
            pause_at: None,
            env,
            started_at_line: 0,
        };
        agent.spawn().await;
        agent
    }

    /// Process id of the running agent.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Everything the agent wrote to stderr so far (across restarts), without
    /// colours: for assertion messages.
    pub fn log(&self) -> String {
        self.log.lines().join("\n")
    }

    /// Waits until the running agent process (since its last start) logs a
    /// line containing `needle`, e.g. the line it logs at a pause point.
    /// Panics with the log after `limit`.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let (log, needle_owned) = (self.log.clone(), needle.to_owned());
        let from = self.started_at_line;
        let found = tokio::task::spawn_blocking(move || log.wait_for(from, &needle_owned, limit))
            .await
            .expect("join");
        assert!(
            found,
            "slipway-agent {} did not log {needle:?} within {limit:?}; its log:\n{}",
            self.host_name,
            self.log()
        );
    }

    /// Kills the agent with SIGKILL (no drain, no cleanup) and reaps it.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("agent running");
        child.kill().expect("SIGKILL the agent");
        child.wait().expect("reap the agent");
        self.note("--- killed with SIGKILL ---");
    }

    /// Stops it with SIGTERM and waits (bounded) for it to exit; panics if
    /// it does not or exits with a failure.
    pub async fn terminate(&mut self) {
        let child = self.child.take().expect("agent running");
        match sigterm_and_wait(child, STARTUP).await {
            (_, Some(status)) if status.success() => self.note("--- stopped with SIGTERM ---"),
            (_, status) => panic!(
                "slipway-agent did not stop cleanly after SIGTERM ({status:?}); its log:\n{}",
                self.log()
            ),
        }
    }

    /// Starts the agent again on the same address with the same directories
    /// and certificate; waits until it listens.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the agent before restarting it");
        self.note("--- restarted ---");
        self.spawn().await;
    }

    /// From the next (re)start on, the agent stops for good at `point` (for
    /// example `materialise:50`), so a test can kill it at a known step.
    pub fn pause_at(&mut self, point: Option<&str>) {
        self.pause_at = point.map(str::to_owned);
    }

    /// From the next (re)start on, the agent process runs with this
    /// variable in its environment.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Panics (with the agent's log) if the process has exited by itself.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("agent running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "slipway-agent {} exited unexpectedly ({status}); its log:\n{}",
                self.host_name,
                self.log()
            );
        }
    }

    fn note(&self, line: &str) {
        self.log.push(line.to_owned());
    }

    async fn spawn(&mut self) {
        self.started_at_line = self.log.lines().len();
        let mut command = Command::new(&self.binary);
        match &self.pause_at {
            Some(point) => command.env(PAUSE_VAR, point),
            None => command.env_remove(PAUSE_VAR),
        };
        let mut child = command
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--host-name", &self.host_name])
            .arg("--apps-dir")
            .arg(&self.apps_dir)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--ca")
            .arg(&self.tls.ca)
            .arg("--cert")
            .arg(&self.tls.cert)
            .arg("--key")
            .arg(&self.tls.key)
            // The test's own environment must not configure the agent.
            .env_remove("SLIPWAY_AGENT_CONFIG")
            .env_remove("SLIPWAY_AGENT_ALLOWED_ROOT")
            .env_remove("SLIPWAY_AGENT_LOG_JSON")
            .env_remove("SLIPWAY_AGENT_METRICS_LISTEN")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.binary.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, listening) = mpsc::channel();
        let log = self.log.clone();
        let metrics = MetricsLine::default();
        let metrics_seen = metrics.clone();
        // Drains stderr for the agent's whole life so the pipe never fills.
        // Not joined: a leftover hook may hold the pipe open after the agent
        // died.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                metrics_seen.scan(&line);
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(addr);
                }
                log.push(line);
            }
        });
        let addr = tokio::task::spawn_blocking(move || listening.recv_timeout(STARTUP))
            .await
            .expect("join");
        match addr {
            Ok(addr) => {
                self.addr = addr;
                self.metrics = metrics.get();
                self.child = Some(child);
            }
            Err(err) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "slipway-agent {} did not report listening ({err}; {status:?}); its log:\n{}",
                    self.host_name,
                    self.log()
                );
            }
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::agent_binary::kill_successor(&self.data_dir);
    }
}

/// A process the test did not start (a hook, its child), identified by pid
/// and start time so a reused pid is not mistaken for it. Killed with
/// SIGKILL on drop if it is still alive, so a failing test leaves nothing.
#[derive(Debug)]
pub struct Probe {
    /// Its process id.
    pub pid: u32,
    start_time: String,
}

impl Probe {
    /// The process whose pid a hook wrote to `pidfile`; None if that process
    /// is already gone.
    pub fn from_pidfile(pidfile: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(pidfile)
            .unwrap_or_else(|err| panic!("read {}: {err}", pidfile.display()));
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|err| panic!("pid {text:?} in {}: {err}", pidfile.display()));
        Self::of(pid)
    }

    /// The live process `pid`, if there is one.
    pub fn of(pid: u32) -> Option<Self> {
        let (state, start_time) = stat(pid)?;
        (state != 'Z').then_some(Self { pid, start_time })
    }

    /// Whether it still runs. A zombie is dead: only its parent's `wait` is
    /// missing, and the orphan's new parent reaps when it pleases.
    pub fn is_alive(&self) -> bool {
        match stat(self.pid) {
            Some((state, start)) => state != 'Z' && start == self.start_time,
            None => false,
        }
    }

    /// Waits (bounded) for the process to die. The kernel delivers a kill
    /// asynchronously, so this polls `/proc` in short steps: there is no
    /// event to wait on for a process that is not our child.
    pub fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_alive() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.is_alive() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// State letter and start time (field 22) from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start = fields.get(22 - 3)?.to_string();
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_a_coloured_line() {
        let line = "\u{1b}[2m2026-11-23T14:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \
                    \u{1b}[2mslipway_agent\u{1b}[0m\u{1b}[2m:\u{1b}[0m slipway-agent listening \
                    \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:40123 \u{1b}[3mhost\u{1b}[0m\u{1b}[2m=\u{1b}[0mweb-1";
        assert_eq!(
            listening_addr(&strip_ansi(line)),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listening_addr("INFO something else addr=1.2.3.4:5"), None);
    }
}
