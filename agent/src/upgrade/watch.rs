//! The watchdog of an upgrade: a process of the previous binary
//! (`slipway-agent upgrade-watch`) that waits for the new one to confirm
//! itself. When the deadline passes first, or the agent's process died, it
//! kills what is left of the new agent, puts the previous binary back,
//! records the rollback and starts the agent again: by re-executing itself
//! as the agent, or, under systemd, by exiting with a failure so that
//! `Restart=` starts the restored binary (the unit needs `KillMode=process`
//! so the watchdog outlives a failed main process).

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::{
    files::{self, Outcome, Pending},
    restart,
};
use crate::fsutil::FsError;

/// How often the watchdog looks.
const POLL: Duration = Duration::from_millis(100);

/// Starts the watchdog from `previous` (the binary that is known to run).
pub fn spawn(previous: &Path, data_dir: &Path) -> Result<(), FsError> {
    Command::new(previous)
        .arg("upgrade-watch")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(crate::fsutil::io_err(
            "start the upgrade watchdog",
            previous,
        ))
}

/// Watches the pending upgrade under `data_dir`; returns an error message
/// when it had to give up. Blocking; returns only when nothing is left to
/// do (or after restoring under systemd); otherwise it becomes the agent.
pub fn watch(data_dir: &Path) -> Result<(), String> {
    loop {
        let Some(pending) = files::read_pending(data_dir) else {
            return Ok(()); // Confirmed (or undone).
        };
        let late = files::unix_ms() >= pending.deadline_unix_ms;
        let dead = !alive(pending.pid);
        if late || dead {
            let why = if dead {
                format!(
                    "the new agent {} exited before it confirmed itself",
                    pending.expected_version
                )
            } else {
                format!(
                    "the new agent {} did not confirm itself before the deadline",
                    pending.expected_version
                )
            };
            return roll_back(data_dir, &pending, why);
        }
        std::thread::sleep(POLL);
    }
}

fn roll_back(data_dir: &Path, pending: &Pending, why: String) -> Result<(), String> {
    eprintln!(
        "slipway-agent upgrade-watch: {why}; restoring {}",
        pending.previous_version
    );
    if let Some(pid) = rustix::process::Pid::from_raw(pending.pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    files::undo(pending, data_dir)
        .map_err(|e| format!("cannot restore the previous binary: {e}"))?;
    let outcome = Outcome {
        sha256: pending.sha256.clone(),
        expected_version: pending.expected_version.clone(),
        confirmed: false,
        message: format!("{why}; {} restored", pending.previous_version),
    };
    files::settle_outcome(data_dir, &outcome).map_err(|e| e.to_string())?;
    if restart::under_systemd() {
        return Err(format!(
            "{why}; exiting so that systemd starts the restored binary"
        ));
    }
    let mut command = Command::new(&pending.exe);
    command.args(pending.argv.iter().skip(1));
    if let Some(listen) = &pending.listen {
        command.env("SLIPWAY_AGENT_LISTEN", listen);
    }
    Err(format!(
        "cannot start the restored agent: {}",
        command.exec()
    ))
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
