//! Running a hook (or a health check command): `sh -c` in its own process
//! group, stdout and stderr streamed line by line as events, and past its
//! timeout or on a cancel the whole group is terminated, then killed.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use slipway_proto::{
    agent::v1::{LogLevel, Stage},
    daemon::chain,
};

use crate::{
    cancel::Cancel,
    hook_output::{Collected, Line, OutputBudget, Reader},
    journal::{HookProcess, Journal},
    operations::{Event, EventLog, Kind},
};

/// The variable naming a hook's operation.
pub const DEPLOYMENT_VAR: &str = "SLIPWAY_DEPLOYMENT_ID";
/// The variable naming the agent instance that started a hook.
pub const INSTANCE_VAR: &str = "SLIPWAY_AGENT_INSTANCE";
/// Time between SIGTERM and SIGKILL for a hook past its timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output still in the pipes is read after the hook exits. A
/// background process it started may keep them open; it is not waited for.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// A command to run.
#[derive(Clone, Debug)]
pub struct Command {
    /// For messages, e.g. `before-activate hook "migrate"`.
    pub what: String,
    /// Passed to `sh -c`.
    pub command: String,
    /// Working directory.
    pub dir: PathBuf,
    /// Its whole environment (see [`crate::hook_env`]): nothing of the
    /// agent's own is passed on.
    pub env: Vec<(String, String)>,
    /// Terminated with its process group after this long.
    pub timeout: Duration,
}

/// Where the events of a command go.
#[derive(Clone, Debug)]
pub struct Output {
    /// The operation's events.
    pub log: Arc<EventLog>,
    /// Stage of every event.
    pub stage: Stage,
    /// Percent of every event.
    pub percent: u32,
    /// Step of every event: the hook's name.
    pub step: String,
    /// How much output the operation still records as events.
    pub budget: Arc<OutputBudget>,
}

impl Output {
    fn say(&self, level: LogLevel, message: String, output: &str) {
        self.log.push_event(Event {
            stage: self.stage,
            percent: self.percent,
            level,
            message,
            step: self.step.clone(),
            output: output.to_owned(),
        });
    }
}

/// A command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `sh` could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// The command.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("{what} failed ({status})")]
    Failed {
        /// The command.
        what: String,
        /// e.g. "exit status: 3".
        status: String,
        /// Its last lines of output.
        output: String,
    },
    /// It ran past its timeout.
    #[error(
        "{what} timed out after {} s and was killed with its process group",
        timeout.as_secs_f32()
    )]
    TimedOut {
        /// The command.
        what: String,
        /// The timeout.
        timeout: Duration,
        /// Its last lines of output.
        output: String,
    },
    /// The operation was cancelled while it ran (or before it started).
    #[error("{what} was cancelled and stopped with its process group")]
    Cancelled {
        /// The command.
        what: String,
        /// Its last lines of output.
        output: String,
    },
}

impl HookError {
    /// The last lines of output, for the operation's error.
    pub fn output(&self) -> Option<&str> {
        match self {
            HookError::Failed { output, .. }
            | HookError::TimedOut { output, .. }
            | HookError::Cancelled { output, .. } => {
                Some(output).filter(|o| !o.is_empty()).map(String::as_str)
            }
            HookError::Spawn { .. } => None,
        }
    }
}

/// Records the running hook's process group in the operation's journal
/// entry, so an agent restarted after a crash can kill what is left of it.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// The app's journal.
    pub journal: Arc<Journal>,
    /// The operation.
    pub deployment_id: String,
    /// Its kind (a prepare and its activation share the deployment id).
    pub kind: Kind,
}

impl Tracker {
    async fn set(&self, hook: Option<HookProcess>) {
        let (id, kind) = (self.deployment_id.clone(), self.kind);
        let written = self
            .journal
            .change(move |data| {
                if let Some(op) = data.operation_mut(&id, kind) {
                    op.hook = hook;
                }
            })
            .await;
        if let Err(err) = written {
            tracing::warn!(error = %chain(&err), "cannot record the hook's process group");
        }
    }
}

/// This boot's id; process group ids mean nothing across reboots.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Runs `cmd` to the end, streaming its output to `out`. Returns how long
/// it ran. When `cancel` fires, the command's process group gets SIGTERM,
/// then SIGKILL after the cancel's grace; a cancelled command is not started.
pub async fn run(
    cmd: &Command,
    out: &Output,
    tracker: Option<&Tracker>,
    cancel: &Cancel,
) -> Result<Duration, HookError> {
    if cancel.is_cancelled() {
        return Err(HookError::Cancelled {
            what: cmd.what.clone(),
            output: String::new(),
        });
    }
    out.say(
        LogLevel::Info,
        format!("running {}: {}", cmd.what, cmd.command),
        "",
    );
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd.command)
        .current_dir(&cmd.dir)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a timeout or a cancel stops everything it started.
        .process_group(0)
        .spawn()
        .map_err(|source| HookError::Spawn {
            what: cmd.what.clone(),
            source,
        })?;
    let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
    // The group is journaled before any output is read, so whoever sees the
    // hook's first line can rely on a restarted agent finding the group.
    if let (Some(tracker), Some(pgid)) = (tracker, pgid) {
        let hook = HookProcess {
            step: out.step.clone(),
            pgid: pgid.as_raw_nonzero().get(),
            boot_id: boot_id(),
        };
        tracker.set(Some(hook)).await;
    }
    let collected = Arc::new(Mutex::new(Collected::default()));
    let detached = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        let reader = reader(out, "stdout", LogLevel::Info, &collected, &detached);
        readers.push(tokio::spawn(reader.read(pipe)));
    }
    if let Some(pipe) = child.stderr.take() {
        let reader = reader(out, "stderr", LogLevel::Warn, &collected, &detached);
        readers.push(tokio::spawn(reader.read(pipe)));
    }
    let remaining = cmd.timeout.saturating_sub(started.elapsed());
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status),
        () = tokio::time::sleep(remaining) => Ended::TimedOut,
        () = cancel.cancelled() => Ended::Cancelled,
    };
    match &ended {
        Ended::Exited(_) => {}
        Ended::TimedOut => {
            let _ = terminate(pgid, &mut child, KILL_GRACE).await;
        }
        Ended::Cancelled => {
            let grace = cancel.grace();
            let message = format!(
                "cancelled: stopping {} (SIGTERM to its process group, SIGKILL after {} s)",
                cmd.what,
                grace.as_secs_f32()
            );
            out.say(LogLevel::Warn, message, "");
            let _ = terminate(pgid, &mut child, grace).await;
        }
    }
    // Output still in the pipes comes before the verdict.
    let drained = futures_util::future::join_all(readers);
    if tokio::time::timeout(OUTPUT_GRACE, drained).await.is_err() {
        // The readers go on draining, silently, so a process the hook left
        // running does not die of SIGPIPE.
        detached.store(true, Ordering::SeqCst);
    }
    report_overflow(out, &collected);
    if let Some(tracker) = tracker {
        tracker.set(None).await;
    }
    let elapsed = started.elapsed();
    let output = || {
        let collected = collected.lock().unwrap_or_else(|e| e.into_inner());
        collected.error_output()
    };
    let err = match ended {
        Ended::Exited(Ok(status)) if status.success() => {
            let message = format!("{} succeeded in {:.1} s", cmd.what, elapsed.as_secs_f32());
            out.say(LogLevel::Info, message, "");
            return Ok(elapsed);
        }
        Ended::Exited(Ok(status)) => HookError::Failed {
            what: cmd.what.clone(),
            status: status.to_string(),
            output: output(),
        },
        Ended::Exited(Err(err)) => HookError::Failed {
            what: cmd.what.clone(),
            status: format!("cannot wait for it: {err}"),
            output: output(),
        },
        Ended::TimedOut => HookError::TimedOut {
            what: cmd.what.clone(),
            timeout: cmd.timeout,
            output: output(),
        },
        Ended::Cancelled => HookError::Cancelled {
            what: cmd.what.clone(),
            output: output(),
        },
    };
    out.say(LogLevel::Error, err.to_string(), "");
    Err(err)
}

/// How a command's wait ended.
enum Ended {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// SIGTERM to the group, SIGKILL after `grace` to whatever is left of it,
/// then reaps the hook's `sh`.
async fn terminate(
    pgid: Option<Pid>,
    child: &mut tokio::process::Child,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    // Pid 1 as a group would mean every process the agent may signal.
    let group = pgid.filter(|p| p.as_raw_nonzero().get() > 1);
    let alive = || group.is_some_and(running);
    if let Some(group) = group {
        let _ = kill_process_group(group, Signal::TERM);
    }
    let until = Instant::now() + grace;
    let reaped = tokio::time::timeout(grace, child.wait()).await;
    while alive() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(group) = group.filter(|_| alive()) {
        let _ = kill_process_group(group, Signal::KILL);
        // kill(2) only queues the signal: return once the group is gone, so
        // nothing of the hook runs after it is reported dead.
        let until = Instant::now() + Duration::from_secs(1);
        while alive() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    match reaped {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// Whether any process of the group still runs. Zombies do not count: a
/// grandchild reparented to init stays one until init reaps it, which may
/// take a while and does not concern the hook.
fn running(group: Pid) -> bool {
    members(group.as_raw_nonzero().get())
        .map_or_else(|| test_kill_process_group(group).is_ok(), |m| !m.is_empty())
}

/// The live (not zombie) processes of group `pgid`; None when /proc cannot
/// be read.
fn members(pgid: i32) -> Option<Vec<u32>> {
    Some(
        live_processes()?
            .filter(|&(_, group)| group == pgid)
            .map(|(pid, _)| pid)
            .collect(),
    )
}

/// Every live (not zombie) process with its process group, from /proc.
fn live_processes() -> Option<impl Iterator<Item = (u32, i32)>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // After the command name in parentheses: state, ppid, pgrp.
                let rest = stat.rsplit_once(')')?.1.to_owned();
                let mut fields = rest.split_whitespace();
                let state = fields.next()?;
                let pgrp = fields.nth(1)?.parse::<i32>().ok()?;
                (!matches!(state, "Z" | "X")).then_some((pid, pgrp))
            }),
    )
}

/// Whether process `pid` was started by a hook of `deployment_id` run by
/// this agent instance: its environment carries that id and the instance's
/// id and, when `app_root` is given, a release directory of that app
/// (deployment ids of different control planes, or of apps of one host, may
/// be equal; another agent in the same PID namespace has another instance).
fn started_by(pid: u32, deployment_id: &str, instance: &str, app_root: Option<&Path>) -> bool {
    let marker = format!("{DEPLOYMENT_VAR}={deployment_id}");
    let agent = format!("{INSTANCE_VAR}={instance}");
    let release_dir = app_root.map(|root| format!("SLIPWAY_RELEASE_DIR={}/", root.display()));
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        let id = vars.contains(&marker.as_bytes()) && vars.contains(&agent.as_bytes());
        let dir = release_dir
            .as_ref()
            .is_none_or(|dir| vars.iter().any(|var| var.starts_with(dir.as_bytes())));
        id && dir
    })
}

/// When this host booted (`btime` in /proc/stat), in Unix seconds.
pub fn boot_time_unix() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|t| t.trim().parse().ok())
}

/// Process groups with a live member whose environment marks it as started
/// by this agent instance's hook of `deployment_id` in a release of the app at `app_root`: what
/// an agent killed between spawning a hook and journaling its group leaves
/// behind.
pub fn groups_of(deployment_id: &str, instance: &str, app_root: &Path) -> Vec<i32> {
    let Some(processes) = live_processes() else {
        return Vec::new();
    };
    let mut groups: Vec<i32> = processes
        .filter(|&(pid, group)| {
            group > 1 && started_by(pid, deployment_id, instance, Some(app_root))
        })
        .map(|(_, group)| group)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Whether group `pgid` is what is left of a hook of `deployment_id`: one
/// of its processes carries that id in its environment. Guards against a
/// group id reused by someone else after the hook ended. When /proc cannot
/// tell, the journal's word is taken.
pub fn is_hook_group(pgid: i32, deployment_id: &str, instance: &str) -> bool {
    let Some(members) = members(pgid) else {
        return true;
    };
    members
        .iter()
        .any(|&pid| started_by(pid, deployment_id, instance, None))
}

/// A reader of one of the command's pipes whose lines become events of
/// `out` while the operation's budget lasts.
fn reader(
    out: &Output,
    stream: &'static str,
    level: LogLevel,
    collected: &Arc<Mutex<Collected>>,
    detached: &Arc<AtomicBool>,
) -> Reader<impl Fn(&Line) + Send + 'static> {
    let target = out.clone();
    Reader {
        stream,
        level,
        budget: out.budget.clone(),
        collected: collected.clone(),
        detached: detached.clone(),
        record: move |line: &Line| target.say(line.level, line.text.clone(), line.stream),
    }
}

/// After output past the operation's bound: one summary event, then the
/// last lines that were not recorded.
fn report_overflow(out: &Output, collected: &Mutex<Collected>) {
    let overflow = collected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .overflow();
    if let Some((summary, tail)) = overflow {
        out.say(LogLevel::Warn, summary, "");
        for line in tail {
            out.say(line.level, line.text, line.stream);
        }
    }
}

#[cfg(test)]
mod tests;
