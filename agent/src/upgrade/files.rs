//! The files of an upgrade: the pending marker and the outcome under the
//! data dir, and the binaries next to the executable (`.<name>.new` while
//! staged, `<name>.previous` kept). Blocking.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use slipway_proto::agent::v1::{AgentUpgradeOutcome, AgentUpgradeState};

use crate::fsutil::{self, FsError, io_err};

const PENDING: &str = "upgrade-pending.json";
const OUTCOME: &str = "upgrade-outcome.json";

/// An upgrade whose new binary has not confirmed itself yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    /// The binary installed.
    pub sha256: String,
    /// What it must report.
    pub expected_version: String,
    /// What ran before.
    pub previous_version: String,
    /// When the watchdog puts the previous binary back.
    pub deadline_unix_ms: u64,
    /// The executable path.
    pub exe: PathBuf,
    /// Where the previous binary is kept.
    pub previous: PathBuf,
    /// The arguments to start the agent with.
    pub argv: Vec<String>,
    /// The listen address bound before the restart.
    pub listen: Option<String>,
    /// The agent's process id.
    pub pid: u32,
}

/// How the last upgrade ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The binary installed.
    pub sha256: String,
    /// What it had to report.
    pub expected_version: String,
    /// Whether it runs.
    pub confirmed: bool,
    /// Why it was rolled back.
    pub message: String,
}

impl Outcome {
    /// As GetStatus reports it.
    pub fn into_proto(self) -> AgentUpgradeOutcome {
        let state = if self.confirmed {
            AgentUpgradeState::Confirmed
        } else {
            AgentUpgradeState::RolledBack
        };
        AgentUpgradeOutcome {
            sha256: self.sha256,
            expected_version: self.expected_version,
            state: state.into(),
            message: self.message,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `<dir>/<name>.previous`, or `<dir>/.<name>.new` for "new".
pub fn sibling(exe: &Path, what: &str) -> PathBuf {
    let name = exe.file_name().map_or_else(
        || "slipway-agent".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let file = match what {
        "new" => format!(".{name}.new"),
        other => format!("{name}.{other}"),
    };
    exe.with_file_name(file)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FsError> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    let _ = fs::remove_file(&tmp);
    let mut file = fsutil::create_private_file(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(&text).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
    if let Some(dir) = path.parent() {
        fsutil::sync_dir(dir).map_err(io_err("sync", dir))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text)
        .inspect_err(|err| tracing::warn!(%err, path = %path.display(), "unreadable upgrade file"))
        .ok()
}

/// Records a pending upgrade.
pub fn write_pending(data_dir: &Path, pending: &Pending) -> Result<(), FsError> {
    write_json(&data_dir.join(PENDING), pending)
}

/// The pending upgrade, if any.
pub fn read_pending(data_dir: &Path) -> Option<Pending> {
    read_json(&data_dir.join(PENDING))
}

/// The last outcome, if any.
pub fn read_outcome(data_dir: &Path) -> Option<Outcome> {
    read_json(&data_dir.join(OUTCOME))
}

/// Records `outcome` and removes the pending marker, in that order: an
/// outcome is never lost to a crash in between.
pub fn settle(data_dir: &Path, outcome: &Outcome) -> Result<(), FsError> {
    write_json(&data_dir.join(OUTCOME), outcome)?;
    let pending = data_dir.join(PENDING);
    fs::remove_file(&pending).map_err(io_err("remove", &pending))?;
    fsutil::sync_dir(data_dir).map_err(io_err("sync", data_dir))
}

/// Confirms a pending upgrade when this process runs its expected version.
pub fn confirm(data_dir: &Path, version: &str) {
    let Some(pending) = read_pending(data_dir) else {
        return;
    };
    if pending.expected_version != version {
        tracing::warn!(
            expected = %pending.expected_version,
            running = version,
            "a pending upgrade expects another version; the watchdog will restore the previous binary"
        );
        return;
    }
    let outcome = Outcome {
        sha256: pending.sha256,
        expected_version: pending.expected_version,
        confirmed: true,
        message: String::new(),
    };
    match settle(data_dir, &outcome) {
        Ok(()) => tracing::info!(
            version,
            previous = %pending.previous_version,
            "agent upgrade confirmed"
        ),
        Err(err) => tracing::error!(%err, "cannot confirm the agent upgrade"),
    }
}

/// Copies `from` to `to` as an executable (0755), synced.
pub fn copy_executable(from: &Path, to: &Path) -> Result<(), FsError> {
    let _ = fs::remove_file(to);
    fs::copy(from, to).map_err(io_err("copy the new binary to", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", to))?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", to))
}

/// Keeps the running binary as `previous` (a hard link, renamed into place).
pub fn keep_previous(exe: &Path, previous: &Path) -> Result<(), FsError> {
    let tmp = previous.with_extension("linking");
    let _ = fs::remove_file(&tmp);
    fs::hard_link(exe, &tmp).map_err(io_err("link the running binary as", &tmp))?;
    fs::rename(&tmp, previous).map_err(io_err("rename", &tmp))
}

/// Renames `new` over `exe` in one step, synced.
pub fn replace(new: &Path, exe: &Path) -> Result<(), FsError> {
    fs::rename(new, exe).map_err(io_err("rename the new binary over", exe))?;
    match exe.parent() {
        Some(dir) => fsutil::sync_dir(dir).map_err(io_err("sync", dir)),
        None => Ok(()),
    }
}

/// Puts the previous binary back and forgets the pending upgrade.
pub fn undo(pending: &Pending, data_dir: &Path) -> Result<(), FsError> {
    let kept = pending.previous.with_extension("restoring");
    let _ = fs::remove_file(&kept);
    // The previous binary stays where it is kept, for the next time.
    fs::hard_link(&pending.previous, &kept).map_err(io_err("link", &kept))?;
    replace(&kept, &pending.exe)?;
    let marker = data_dir.join(PENDING);
    fs::remove_file(&marker).map_err(io_err("remove", &marker))
}

/// Records `outcome` (the marker is gone already).
pub fn settle_outcome(data_dir: &Path, outcome: &Outcome) -> Result<(), FsError> {
    write_json(&data_dir.join(OUTCOME), outcome)
}
