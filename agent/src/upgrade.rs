//! Agent upgrades on this host: the stored binary is trial-run, renamed over
//! the executable the agent runs from (the previous one kept next to it as
//! `<exe>.previous`), a pending-upgrade marker records what must happen,
//! and the agent re-executes itself in place (same pid, same arguments, the
//! listen address it had bound). The new process confirms itself once it
//! serves; a watchdog started from the previous binary puts that binary
//! back and starts it when no confirmation comes before the deadline (or
//! the new process died). The outcome is kept for GetStatus.

mod files;
mod restart;
pub mod watch;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use slipway_proto::agent::v1::AgentUpgradeOutcome;
use tokio_util::sync::CancellationToken;

pub use self::{
    files::{Outcome, Pending},
    restart::{Restart, how as restart_how, take_restart},
};
use crate::{binaries::Binaries, fsutil::FsError, stamp};

/// How long the trial run of a new binary may take.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an upgrade was refused or failed before the restart.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The agent does not run as its own executable (a library embedding).
    #[error("this agent does not run from its own executable, so it cannot replace it")]
    NotEnabled,
    /// The binary was not uploaded.
    #[error("agent binary {sha256} is not on this host; upload it first")]
    Missing {
        /// Its hash.
        sha256: String,
    },
    /// Another upgrade is going on.
    #[error("an upgrade of this agent is already going on")]
    InProgress,
    /// The trial run failed.
    #[error("the new binary failed its trial run (`--version`): {why}")]
    Trial {
        /// What happened.
        why: String,
    },
    /// Operations kept running.
    #[error("operations still ran after {seconds} s; nothing was changed, try again later")]
    Busy {
        /// The wait.
        seconds: u32,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] FsError),
}

/// The executable and arguments this process was started with; set by the
/// binary's `main` ([`enable`]), never by an embedding.
#[derive(Clone, Debug)]
struct Launch {
    exe: PathBuf,
    argv: Vec<String>,
}

static LAUNCH: OnceLock<Launch> = OnceLock::new();

/// Lets this process replace its executable: called by the binary's `main`
/// with its arguments. Without it UpgradeAgent is refused.
pub fn enable() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let Some(argv) = std::env::args_os()
        .map(|a| a.into_string().ok())
        .collect::<Option<Vec<String>>>()
    else {
        return;
    };
    let _ = LAUNCH.set(Launch { exe, argv });
}

/// What an UpgradeAgent asks for, checked.
#[derive(Clone, Debug)]
pub struct UpgradePlan {
    /// The stored binary.
    pub sha256: String,
    /// What it must report.
    pub expected_version: String,
    /// How long the new binary has to confirm itself.
    pub deadline: Duration,
    /// How long to wait for running operations.
    pub idle_timeout: Duration,
}

/// The upgrade state of this agent.
#[derive(Debug)]
pub struct Upgrades {
    data_dir: PathBuf,
    binaries: Binaries,
    listen: Mutex<Option<SocketAddr>>,
    restart: CancellationToken,
    busy: Mutex<bool>,
}

/// A new binary that passed its trial run, next to the executable.
#[derive(Debug)]
pub struct Staged {
    plan: UpgradePlan,
    launch: Launch,
    new: PathBuf,
}

impl Upgrades {
    /// The upgrade state kept under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            binaries: Binaries::new(data_dir),
            listen: Mutex::new(None),
            restart: CancellationToken::new(),
            busy: Mutex::new(false),
        }
    }

    /// The store of binaries.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Notes the address the API listener bound (a restart binds it again).
    pub fn set_listen(&self, addr: SocketAddr) {
        *self.listen.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }

    /// Resolves when an upgrade wants the server stopped for its restart.
    pub fn restart_requested(&self) -> CancellationToken {
        self.restart.clone()
    }

    /// Takes the one upgrade slot; false when an upgrade goes on.
    pub fn begin(&self) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        !std::mem::replace(&mut *busy, true)
    }

    /// Gives the slot back after an upgrade that did not restart.
    pub fn end(&self) {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// The last upgrade's outcome, for GetStatus. Blocking.
    pub fn outcome(&self) -> Option<AgentUpgradeOutcome> {
        files::read_outcome(&self.data_dir).map(Outcome::into_proto)
    }

    /// At startup, once serving: confirms a pending upgrade to this
    /// version (the watchdog then exits). Blocking.
    pub fn confirm(&self) {
        files::confirm(&self.data_dir, stamp::version());
    }

    /// Copies the stored binary next to the executable and trial-runs it.
    pub async fn stage(&self, plan: UpgradePlan) -> Result<Staged, UpgradeError> {
        let launch = LAUNCH.get().cloned().ok_or(UpgradeError::NotEnabled)?;
        if !self.binaries.has(&plan.sha256) {
            return Err(UpgradeError::Missing {
                sha256: plan.sha256,
            });
        }
        let new = files::sibling(&launch.exe, "new");
        let stored = self.binaries.path(&plan.sha256);
        let copied = new.clone();
        tokio::task::spawn_blocking(move || files::copy_executable(&stored, &copied))
            .await
            .map_err(|e| UpgradeError::Trial { why: e.to_string() })??;
        trial(&new, &plan.expected_version).await?;
        Ok(Staged { plan, launch, new })
    }

    /// Swaps the staged binary in, arms the watchdog and asks for the
    /// restart. Blocking.
    pub fn swap(&self, staged: Staged) -> Result<(), UpgradeError> {
        let listen = *self.listen.lock().unwrap_or_else(|e| e.into_inner());
        let argv = restart::argv_with_listen(&staged.launch.argv, listen);
        let previous = files::sibling(&staged.launch.exe, "previous");
        files::keep_previous(&staged.launch.exe, &previous)?;
        files::replace(&staged.new, &staged.launch.exe)?;
        let pending = Pending {
            sha256: staged.plan.sha256.clone(),
            expected_version: staged.plan.expected_version.clone(),
            previous_version: stamp::version().to_owned(),
            deadline_unix_ms: files::unix_ms() + staged.plan.deadline.as_millis() as u64,
            exe: staged.launch.exe.clone(),
            previous: previous.clone(),
            argv: argv.clone(),
            listen: listen.map(|a| a.to_string()),
            pid: std::process::id(),
        };
        files::write_pending(&self.data_dir, &pending)?;
        if let Err(err) = watch::spawn(&previous, &self.data_dir) {
            // Without a watchdog nothing could put the old binary back.
            let _ = files::undo(&pending, &self.data_dir);
            return Err(err.into());
        }
        restart::request(Restart {
            exe: staged.launch.exe,
            argv,
            listen: pending.listen,
        });
        self.restart.cancel();
        Ok(())
    }
}

/// Runs `<new> --version` and checks it prints `expected` as its last word.
async fn trial(new: &Path, expected: &str) -> Result<(), UpgradeError> {
    let run = tokio::process::Command::new(new)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(TRIAL_TIMEOUT, run).await {
        Err(_) => Err(format!("no answer in {} s", TRIAL_TIMEOUT.as_secs())),
        Ok(Err(err)) => Err(format!("cannot run it: {err}")),
        Ok(Ok(output)) if !output.status.success() => {
            Err(format!("it exited with {}", output.status))
        }
        Ok(Ok(output)) => {
            let text = String::from_utf8_lossy(&output.stdout);
            let reported = text.split_whitespace().last().unwrap_or("").to_owned();
            if reported == expected {
                Ok(())
            } else {
                Err(format!("it reports version {reported:?}, not {expected:?}"))
            }
        }
    };
    output.map_err(|why| {
        let _ = std::fs::remove_file(new);
        UpgradeError::Trial { why }
    })
}
