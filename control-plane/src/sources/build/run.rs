//! Running a build's command: `sh -c` in the checkout, in a process group
//! of its own, as the build user, with only the declared environment (and
//! a minimal PATH and HOME); every line of its output goes to the
//! deployment's events (each line and the total bounded) and the last ones
//! are kept as the log tail; at the deadline, on cancel, and once the shell
//! exits, the whole group is killed, so nothing it started lives on.

use std::{collections::VecDeque, path::Path, process::Stdio, time::Instant};

use slipway_proto::control::v1::{BuildSpec, LogLevel};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    sync::mpsc,
};

use super::BuildUser;
use crate::progress::{Note, Progress};

/// Longest line recorded; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 1024;
/// Most bytes of output recorded as events; beyond it only the tail is kept.
pub const MAX_EVENT_BYTES: usize = 256 << 10;
/// Bytes of output kept as the build's log tail.
pub const TAIL_BYTES: usize = 16 << 10;
/// The PATH a build runs with.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How the command ended.
pub struct Ran {
    /// None when it exited 0; else why it failed.
    pub failure: Option<String>,
    /// The last lines of its output.
    pub tail: String,
    /// How long it ran.
    pub duration_ms: u64,
}

/// Runs `spec`'s command in `dir` as `user` (None: as this process).
pub async fn run(
    spec: &BuildSpec,
    timeout: std::time::Duration,
    dir: &Path,
    user: Option<&BuildUser>,
    progress: &Progress,
) -> Ran {
    let started = Instant::now();
    let mut log = Log::default();
    let failure = match spawn(spec, dir, user) {
        Ok(child) => supervise(child, timeout, progress, &mut log).await,
        Err(err) => Some(format!(
            "the build could not start in {} as {}: {err}; the build user must be able to \
             reach build_dir (search permission on every parent directory)",
            dir.display(),
            user.map_or("this user", |u| u.name.as_str())
        )),
    };
    Ran {
        failure,
        tail: log.tail(),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn spawn(
    spec: &BuildSpec,
    dir: &Path,
    user: Option<&BuildUser>,
) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&spec.command)
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", dir)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    command.spawn()
}

/// Follows the child to its end (or kills its group at the deadline or on
/// cancel); None when it exited 0.
async fn supervise(
    mut child: tokio::process::Child,
    timeout: std::time::Duration,
    progress: &Progress,
    log: &mut Log,
) -> Option<String> {
    let group = child.id();
    let (tx, mut rx) = mpsc::channel(64);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, "stdout", tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, "stderr", tx.clone()));
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut exited = None;
    let mut failure = None;
    let mut open = true;
    while open || exited.is_none() {
        tokio::select! {
            line = rx.recv(), if open => match line {
                Some((output, line)) => log.line(progress, output, line).await,
                None => open = false,
            },
            status = child.wait(), if exited.is_none() => {
                // Whatever it left running goes with it; its pipes close.
                kill_group(group);
                exited = Some(status);
            }
            () = tokio::time::sleep_until(deadline), if failure.is_none() => {
                kill_group(group);
                failure = Some(format!(
                    "the build ran longer than its timeout of {} s and was killed with every process it started",
                    timeout.as_secs()
                ));
            }
            () = progress.cancel().cancelled(), if failure.is_none() => {
                kill_group(group);
                failure = Some("the build was cancelled".to_owned());
            }
        }
    }
    if failure.is_some() {
        return failure;
    }
    match exited {
        Some(Ok(status)) if status.success() => None,
        Some(Ok(status)) => Some(format!("the build command failed ({status})")),
        Some(Err(err)) => Some(format!("waiting for the build failed: {err}")),
        None => Some("the build ended without an exit status".to_owned()),
    }
}

/// SIGKILL to every process of the group (none left is fine).
fn kill_group(group: Option<u32>) {
    let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Sends each line of `reader` (at most [`MAX_LINE`] bytes of it).
async fn pump(
    reader: impl AsyncRead + Unpin,
    output: &'static str,
    tx: mpsc::Sender<(&'static str, String)>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (taken, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        let piece = &chunk[..taken - usize::from(end)];
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        reader.consume(taken);
        if end && tx.send((output, take_line(&mut line))).await.is_err() {
            return;
        }
    }
    if !line.is_empty() {
        let _ = tx.send((output, take_line(&mut line))).await;
    }
}

fn take_line(line: &mut Vec<u8>) -> String {
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    text
}

/// The output seen so far: what was recorded as events, and the tail.
#[derive(Default)]
struct Log {
    recorded: usize,
    truncated: bool,
    tail: VecDeque<String>,
    tail_bytes: usize,
}

impl Log {
    async fn line(&mut self, progress: &Progress, output: &'static str, line: String) {
        self.keep(&line);
        if self.recorded + line.len() > MAX_EVENT_BYTES {
            if !self.truncated {
                self.truncated = true;
                let message = format!(
                    "build output beyond {MAX_EVENT_BYTES} bytes is not recorded as events; its last {TAIL_BYTES} bytes are kept with the build"
                );
                progress.note(Note::info("build", message)).await;
            }
            return;
        }
        self.recorded += line.len();
        let level = if output == "stderr" {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        let note = Note {
            stage: "build",
            level,
            message: line,
            output,
        };
        progress.note(note).await;
    }

    fn keep(&mut self, line: &str) {
        self.tail.push_back(line.to_owned());
        self.tail_bytes += line.len() + 1;
        while self.tail_bytes > TAIL_BYTES {
            match self.tail.pop_front() {
                Some(old) => self.tail_bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    fn tail(&self) -> String {
        let mut text = String::with_capacity(self.tail_bytes);
        for line in &self.tail {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}
