//! Agent binaries for upgrade tests: a copy of this build's `slipway-agent`
//! per agent (so an upgrade swaps the copy, never the build's), the same
//! binary with another version stamped into it (a real, different binary),
//! and a "binary" that passes the trial run but cannot serve.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::process::agent_binary;

fn executable(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Copies this build's agent into `dir` (created) as `slipway-agent`.
pub fn copy_to(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join("slipway-agent");
    std::fs::copy(agent_binary(), &path).expect("copy the agent binary");
    path
}

/// This build's agent with `version` stamped into it, at `path`.
pub fn stamped(path: &Path, version: &str) -> PathBuf {
    let mut bytes = std::fs::read(agent_binary()).expect("read the agent binary");
    slipway_agent::stamp::stamp(&mut bytes, version).expect("stamp the version");
    executable(path, &bytes);
    path.to_owned()
}

/// A script at `path` that answers `--version` with `version` like the
/// agent does, and otherwise exits 1 at once: it passes the trial run and
/// fails to start.
pub fn failing(path: &Path, version: &str) -> PathBuf {
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"slipway-agent {version}\"; exit 0; fi\n\
         echo 'this agent cannot start' >&2\nexit 1\n"
    );
    executable(path, script.as_bytes());
    path.to_owned()
}

/// Kills the agent an upgrade's watchdog started again under another pid
/// (it writes `<data_dir>/agent.pid`), when that process is still the
/// agent of `data_dir`.
pub(crate) fn kill_successor(data_dir: &Path) {
    let pid = std::fs::read_to_string(data_dir.join("agent.pid")).ok();
    let Some(pid) = pid.and_then(|p| p.trim().parse::<u32>().ok()) else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains(&*data_dir.to_string_lossy()) {
        drop(crate::process::Probe::of(pid)); // Killed on drop.
    }
}
