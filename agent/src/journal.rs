//! The per-app journal `<root>/.slipway/journal.json`: release states and
//! pins, the previous good release, the highest fencing token seen, and the
//! recent operations with their events. The only code that reads or writes that file; every change is
//! written temp + fsync + rename + fsync of the directory, so a crash leaves
//! either the old or the new journal.

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use slipway_proto::agent::v1::{ProgressEvent, ReleaseState};

use crate::{fsutil, layout::AppRoot, operations::Kind};

const VERSION: u32 = 1;
/// Finished operations kept per app, for replays after a restart.
pub const OPERATIONS_KEPT: usize = 64;

/// A failure reading or writing a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A filesystem call failed.
    #[error("cannot {action} the journal {}", path.display())]
    Io {
        /// What the agent was doing.
        action: &'static str,
        /// The journal file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Not valid JSON for this journal.
    #[error(
        "the journal {} is corrupt; move it away and the agent starts a new one \
         (release states and pins are rebuilt from disk)", path.display()
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Written by a newer agent.
    #[error("the journal {} has version {version}; this agent reads version {VERSION}", path.display())]
    Version {
        /// The journal file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The blocking task of [`Journal::change`] panicked or was cancelled
    /// (a bug).
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// State of a release on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Being built, or its before-activate hooks have not passed.
    Unfinished,
    /// Complete, not current.
    Ready,
    /// `current` points to it.
    Active,
    /// A hook or the health check failed for it.
    Failed,
}

impl State {
    /// The wire enum.
    pub fn to_wire(self) -> ReleaseState {
        match self {
            State::Unfinished => ReleaseState::Unfinished,
            State::Ready => ReleaseState::Ready,
            State::Active => ReleaseState::Active,
            State::Failed => ReleaseState::Failed,
        }
    }
}

/// What the journal knows about one release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its state.
    pub state: State,
    /// Protected from retention.
    #[serde(default)]
    pub pinned: bool,
    /// The deployment that last changed its state.
    #[serde(default)]
    pub deployment_id: String,
    /// When the journal first saw it (Unix seconds).
    pub created_unix: u64,
    /// When its record last changed (Unix seconds).
    pub updated_unix: u64,
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In flight (or the agent died during it, until the next start).
    Running,
    /// Finished with the recorded events; a repeat replays them.
    Finished,
    /// The agent restarted during it; a repeat runs it again.
    Interrupted,
}

/// A hook process group the agent is waiting on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProcess {
    /// The hook's step name.
    pub step: String,
    /// Its process group id (= the pid of `sh`).
    pub pgid: i32,
    /// `/proc/sys/kernel/random/boot_id` when it started: after a reboot
    /// the id may name someone else's group.
    pub boot_id: String,
}

/// One deploy, prepare-only deploy or rollback. A deployment id names one
/// operation, or a prepare and the rollback that activates the prepared
/// release: records are keyed by deployment id and kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Deployment id.
    pub deployment_id: String,
    /// Deploy or rollback.
    pub kind: Kind,
    /// Target release.
    pub release_id: String,
    /// What `current` pointed to when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// Unix seconds.
    pub started_unix: u64,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_unix: Option<u64>,
    /// The hook running now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookProcess>,
    /// For a prepare-only deploy: the releases to keep, applied when the
    /// release is activated (the activating Rollback does not carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_releases: Option<usize>,
    /// The run that produced `events` (empty while running, and in records
    /// from before run ids). A replay in the same agent process keeps it;
    /// a later process replays the events as a run of its own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// Every event, the final one last (empty while running). Kept without
    /// their run id, which `run_id` holds once: an agent from before run
    /// ids can still read the journal.
    #[serde(default)]
    pub events: Vec<ProgressEvent>,
}

/// The journal's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalData {
    /// Format version.
    pub version: u32,
    /// The release that was active and healthy before the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_good: Option<String>,
    /// The highest fencing token a request for this app carried (0: none
    /// yet). Journals from before fencing have none and load as 0.
    #[serde(default)]
    pub fencing_token: u64,
    /// By release id.
    #[serde(default)]
    pub releases: BTreeMap<String, ReleaseRecord>,
    /// Oldest first; at most [`OPERATIONS_KEPT`] besides a running one.
    #[serde(default)]
    pub operations: Vec<OperationRecord>,
}

impl Default for JournalData {
    fn default() -> Self {
        Self {
            version: VERSION,
            previous_good: None,
            fencing_token: 0,
            releases: BTreeMap::new(),
            operations: Vec::new(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JournalData {
    /// The state of `id`, if journaled.
    pub fn state(&self, id: &str) -> Option<State> {
        self.releases.get(id).map(|r| r.state)
    }

    /// Sets the state of `id`, creating its record.
    pub fn set_state(&mut self, id: &str, state: State, deployment_id: &str) {
        let now = now_unix();
        let record = self
            .releases
            .entry(id.to_owned())
            .or_insert_with(|| ReleaseRecord {
                state,
                pinned: false,
                deployment_id: String::new(),
                created_unix: now,
                updated_unix: now,
            });
        record.state = state;
        record.updated_unix = now;
        if !deployment_id.is_empty() {
            record.deployment_id = deployment_id.to_owned();
        }
    }

    /// The operation of this kind with this deployment id.
    pub fn operation(&self, deployment_id: &str, kind: Kind) -> Option<&OperationRecord> {
        self.operations
            .iter()
            .find(|o| o.deployment_id == deployment_id && o.kind == kind)
    }

    /// The operation of this kind with this deployment id, to change it.
    pub fn operation_mut(
        &mut self,
        deployment_id: &str,
        kind: Kind,
    ) -> Option<&mut OperationRecord> {
        self.operations
            .iter_mut()
            .find(|o| o.deployment_id == deployment_id && o.kind == kind)
    }

    /// Every operation with this deployment id (at most a prepare and its
    /// activating rollback, or one other).
    pub fn operations_of<'a>(
        &'a self,
        deployment_id: &'a str,
    ) -> impl Iterator<Item = &'a OperationRecord> + 'a {
        self.operations
            .iter()
            .filter(move |o| o.deployment_id == deployment_id)
    }

    /// Records a new run of an operation, replacing an earlier record of the
    /// same id and kind, and forgets the oldest finished ones beyond the
    /// bound.
    pub fn begin_operation(&mut self, record: OperationRecord) {
        self.operations
            .retain(|o| !(o.deployment_id == record.deployment_id && o.kind == record.kind));
        self.operations.push(record);
        let mut excess = self.operations.len().saturating_sub(OPERATIONS_KEPT);
        self.operations.retain(|o| {
            let drop = excess > 0 && o.status != Status::Running;
            excess -= usize::from(drop);
            !drop
        });
    }

    /// Records the outcome of an operation with all its events (of one
    /// run), their run id kept once in the record.
    pub fn finish_operation(
        &mut self,
        deployment_id: &str,
        kind: Kind,
        mut events: Vec<ProgressEvent>,
    ) {
        if let Some(op) = self.operation_mut(deployment_id, kind) {
            op.status = Status::Finished;
            op.finished_unix = Some(now_unix());
            op.hook = None;
            op.run_id = events.first().map(|e| e.run_id.clone()).unwrap_or_default();
            for event in &mut events {
                event.run_id.clear();
            }
            op.events = events;
        }
    }
}

/// One app's journal: the content in memory, written through on change.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    data: Mutex<JournalData>,
}

impl Journal {
    /// Reads the journal of `app`; a missing file is an empty journal.
    /// Blocking.
    pub fn open(app: &AppRoot) -> Result<Self, JournalError> {
        let path = app.journal();
        let data = match std::fs::read(&path) {
            Ok(bytes) => {
                let data: JournalData =
                    serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if data.version != VERSION {
                    return Err(JournalError::Version {
                        path,
                        version: data.version,
                    });
                }
                data
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => JournalData::default(),
            Err(source) => {
                return Err(JournalError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        Ok(Self {
            path,
            data: Mutex::new(data),
        })
    }

    fn locked(&self) -> MutexGuard<'_, JournalData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the content.
    pub fn read<R>(&self, f: impl FnOnce(&JournalData) -> R) -> R {
        f(&self.locked())
    }

    /// Changes the content and writes it. `f` runs under the journal's lock,
    /// so a decision made in it (which releases to prune, whether one is on
    /// disk) cannot race another change. When `f` or the write fails the
    /// content stays as it was. Blocking.
    pub fn update<R, E: From<JournalError>>(
        &self,
        f: impl FnOnce(&mut JournalData) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut data = self.locked();
        let mut next = data.clone();
        let out = f(&mut next)?;
        if next != *data {
            write(&self.path, &next)?;
            *data = next;
        }
        Ok(out)
    }

    /// [`Journal::update`] off the async workers, for a change that cannot
    /// fail by itself.
    pub async fn change<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut JournalData) -> R + Send + 'static,
    ) -> Result<R, JournalError> {
        let journal = self.clone();
        tokio::task::spawn_blocking(move || journal.update(|data| Ok(f(data)))).await?
    }
}

fn write(path: &Path, data: &JournalData) -> Result<(), JournalError> {
    let bytes = serde_json::to_vec_pretty(data).expect("the journal serialises");
    let dir = path.parent().expect("the journal lives in .slipway");
    let tmp = dir.join(format!(".journal.json.{:016x}", rand::random::<u64>()));
    let write = || -> io::Result<()> {
        fsutil::create_dir_synced(dir)?;
        let mut file = std::fs::File::create_new(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        fsutil::sync_dir(dir)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        JournalError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

/// The journals of every app root used so far, opened on first use.
#[derive(Debug, Default)]
pub struct Journals {
    open: Mutex<HashMap<PathBuf, Arc<Journal>>>,
}

impl Journals {
    /// The journal of `app`. A journal that cannot be read is not cached,
    /// so moving a corrupt file away fixes the app without a restart.
    /// Blocking.
    pub fn get(&self, app: &AppRoot) -> Result<Arc<Journal>, JournalError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(journal) = open.get(app.root()) {
            return Ok(journal.clone());
        }
        let journal = Arc::new(Journal::open(app)?);
        open.insert(app.root().to_owned(), journal.clone());
        Ok(journal)
    }
}

#[cfg(test)]
mod tests;
