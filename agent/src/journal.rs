//! The per-app journal `<root>/.slipway/journal.log`: release states and
//! pins, the previous good release, the highest fencing token seen, and the
//! recent operations with their outcome. The only code that reads or writes
//! it: an append-only log of small records, one fdatasynced line per change
//! (see [`records`]), compacted on open and past a size, so a crash leaves
//! the journal before or after the change; a change that needs no sync of
//! its own is deferred to the next line (see [`Journal::defer`]). Each
//! finished operation's events (hook output, bounded by the hook output
//! limits) live in their own file beside it (see [`op_events`]), never in
//! the journal, whose size (and the cost of each change) therefore does not
//! follow what operations print. A `journal.json` of an older agent is
//! migrated on open (see [`migrate`]).

mod file;
pub(crate) mod migrate;
mod op_events;
pub(crate) mod records;
pub(crate) mod stored;

pub use self::file::Journal;

use std::{
    collections::{BTreeMap, HashMap},
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use slipway_proto::agent::v1::{ProgressEvent, ReleaseState};

use self::records::Records;
use crate::{layout::AppRoot, operations::Kind};

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
    /// The final event (empty while running), without its run id, which
    /// `run_id` holds. Every event of the run is in the operation's event
    /// log (see [`Journal::events`]); journals of older agents held them all
    /// here.
    #[serde(default)]
    pub events: Vec<ProgressEvent>,
    /// Order of the records: higher is newer.
    #[serde(default)]
    pub seq: u64,
}

#[cfg(test)]
impl OperationRecord {
    /// A running deploy of `release_id` started at Unix second 1, for tests.
    pub fn running(deployment_id: &str, release_id: &str) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            kind: Kind::Deploy,
            release_id: release_id.into(),
            previous_release: None,
            status: Status::Running,
            started_unix: 1,
            finished_unix: None,
            hook: None,
            keep_releases: None,
            run_id: String::new(),
            events: Vec::new(),
            seq: 0,
        }
    }
}

/// The health check of an app's live release, kept so its continuous
/// probes go on after a restart: recorded when a switch passes its check,
/// with that check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// The URL to GET (empty for a command).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http_url: String,
    /// The shell command (empty for a URL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// Bound of one probe, in milliseconds.
    pub timeout_ms: u64,
    /// Pause between probes, in milliseconds.
    pub interval_ms: u64,
    /// The environment name a command probe sees.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// The app's variables a command probe sees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<(String, String)>,
    /// The release whose switch passed the check.
    #[serde(default)]
    pub release_id: String,
    /// When the check at the switch passed (Unix milliseconds).
    pub passed_unix_ms: u64,
    /// How long its passing attempt took, in milliseconds.
    pub response_ms: f64,
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
    /// The control plane store identity `fencing_token` belongs to (empty:
    /// none yet, or an older control plane's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fencing_epoch: String,
    /// By release id.
    #[serde(default)]
    pub releases: BTreeMap<String, ReleaseRecord>,
    /// Oldest first; at most [`OPERATIONS_KEPT`] besides a running one.
    #[serde(default)]
    pub operations: Vec<OperationRecord>,
    /// The live release's health check, for its continuous probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeRecord>,
}

impl Default for JournalData {
    fn default() -> Self {
        Self {
            version: VERSION,
            previous_good: None,
            fencing_token: 0,
            fencing_epoch: String::new(),
            releases: BTreeMap::new(),
            operations: Vec::new(),
            probe: None,
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
    pub fn begin_operation(&mut self, mut record: OperationRecord) {
        self.operations
            .retain(|o| !(o.deployment_id == record.deployment_id && o.kind == record.kind));
        record.seq = self.operations.iter().map(|o| o.seq + 1).max().unwrap_or(1);
        self.operations.push(record);
        let mut excess = self.operations.len().saturating_sub(OPERATIONS_KEPT);
        self.operations.retain(|o| {
            let drop = excess > 0 && o.status != Status::Running;
            excess -= usize::from(drop);
            !drop
        });
    }

    /// Records the outcome of an operation: its final event (the others
    /// live in its event log, see [`Journal::finish`]), its run id kept in
    /// the record.
    pub fn finish_operation(
        &mut self,
        deployment_id: &str,
        kind: Kind,
        events: Vec<ProgressEvent>,
    ) {
        if let Some(op) = self.operation_mut(deployment_id, kind) {
            op.status = Status::Finished;
            op.finished_unix = Some(now_unix());
            op.hook = None;
            op.run_id = events.first().map(|e| e.run_id.clone()).unwrap_or_default();
            op.events = events.into_iter().last().into_iter().collect();
            for event in &mut op.events {
                event.run_id.clear();
            }
        }
    }
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

/// Removes `path` and syncs its directory.
pub(crate) fn remove_synced(path: &std::path::Path) -> Result<(), JournalError> {
    let removed = std::fs::remove_file(path).and_then(|()| {
        crate::fsutil::sync_dir(path.parent().expect("the journal lives in .slipway"))
    });
    removed.map_err(|source| JournalError::Io {
        action: "remove",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
