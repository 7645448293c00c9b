//! One operation per app at a time: the running and recently finished
//! operations, their event logs and cancel switches, attaching to or
//! replaying an operation by its deployment id, and the run id of each
//! run (a new run gets a new one; attaching or replaying in this process
//! keeps it).

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use slipway_proto::agent::v1::{LogLevel, OperationResult, ProgressEvent, Stage};
use tokio::sync::watch;

pub use crate::event_log::{Event, EventLog};
use crate::{cancel::Cancel, layout::AppRoot, metrics::Metrics, run_id::RunIds};

/// Finished operations remembered in memory for replay; the app's journal
/// remembers the last ones across restarts.
const REMEMBERED: usize = 256;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Materialise and activate a release.
    Deploy,
    /// Switch to a release already on disk (Rollback); with the deployment
    /// id of a prepare, the second phase of a two-phase deploy (an
    /// ActivateRelease, or a Rollback from an older control plane).
    /// Journaled as "rollback" either way.
    Rollback,
    /// Materialise a release and run its before-activate hooks, without
    /// switching (PrepareRelease, or a Deploy with `prepare_only`).
    Prepare,
}

impl Kind {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deploy => "deploy",
            Kind::Rollback => "rollback",
            Kind::Prepare => "prepare",
        }
    }

    // A prepare before the switch that shares its deployment id: a request
    // refused for reusing the id is told about the prepare (the deployment
    // as it began), not about its activation.
    const ALL: [Kind; 3] = [Kind::Deploy, Kind::Prepare, Kind::Rollback];
}

/// Identifies an operation; a repeated deployment id must repeat all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Deployment id from the control plane.
    pub deployment_id: String,
    /// Deploy or rollback.
    pub kind: Kind,
    /// App name.
    pub app: String,
    /// App root; the lock is per root, the resource actually changed.
    pub root: PathBuf,
    /// Target release.
    pub release_id: String,
}

impl Spec {
    /// The operation `kind` of `deployment_id` on `app` with `release_id`.
    pub fn of(kind: Kind, app: &AppRoot, deployment_id: &str, release_id: &str) -> Self {
        Spec {
            deployment_id: deployment_id.to_owned(),
            kind,
            app: app.name().to_owned(),
            root: app.root().to_owned(),
            release_id: release_id.to_owned(),
        }
    }

    /// Whether `self` and `other` may share a deployment id: a prepare and
    /// the rollback that activates the release it prepared.
    pub fn pairs_with(&self, other: &Spec) -> bool {
        let kinds = (self.kind, other.kind);
        matches!(
            kinds,
            (Kind::Prepare, Kind::Rollback) | (Kind::Rollback, Kind::Prepare)
        ) && self.release_id == other.release_id
            && self.root == other.root
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, prep) = match self.kind {
            Kind::Deploy => ("a deploy", "of"),
            Kind::Rollback => ("a rollback", "to"),
            Kind::Prepare => ("a prepare-only deploy", "of"),
        };
        write!(
            f,
            "{what} {prep} release {} for app {}",
            self.release_id, self.app
        )
    }
}

/// Why an operation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Another deployment holds the app.
    #[error("deployment {running} is already running for app {app}")]
    Busy {
        /// The deployment id running now.
        running: String,
        /// The app.
        app: String,
    },
    /// The deployment id was used for a different operation.
    #[error(
        "deployment {deployment_id} already names {existing} on this host; use a new deployment id"
    )]
    Reused {
        /// The repeated id.
        deployment_id: String,
        /// What it named.
        existing: String,
    },
    /// A rollback with the deployment id of a prepare that did not leave
    /// its release ready.
    #[error(
        "deployment {deployment_id} did not prepare release {release_id} on this host \
         ({why}); it cannot be activated: deploy it under a new deployment id"
    )]
    NotPrepared {
        /// The deployment id.
        deployment_id: String,
        /// The release.
        release_id: String,
        /// What became of the prepare.
        why: String,
    },
    /// The agent is being upgraded and starts nothing new until it is back.
    #[error("the agent is being upgraded; try again in {retry_after_ms} ms")]
    Upgrading {
        /// When to try again.
        retry_after_ms: u64,
    },
}

/// The result of [`Operations::begin`].
#[derive(Debug)]
pub enum Begin {
    /// The same deployment id is running or finished: follow its events.
    Existing(Arc<EventLog>),
    /// A new operation holding the app; run it with the guard.
    New(OperationGuard),
}

#[derive(Debug)]
struct Recorded {
    spec: Spec,
    log: Arc<EventLog>,
    cancel: Cancel,
}

/// Finished operations are keyed by deployment id and kind: a prepare and
/// its activating rollback share the id.
type Key = (String, Kind);

#[derive(Debug, Default)]
struct State {
    // Set while an upgrade waits for the agent to be idle: new operations
    // are refused, with this hint (milliseconds) for trying again.
    closed: Option<u64>,
    running: HashMap<PathBuf, Recorded>,
    finished: HashMap<Key, Recorded>,
    order: VecDeque<Key>,
}

impl State {
    /// Remembers a finished run, forgetting the oldest beyond the bound.
    fn remember(&mut self, key: Key, recorded: Recorded) {
        if self.finished.insert(key.clone(), recorded).is_some() {
            self.order.retain(|k| *k != key);
        }
        self.order.push_back(key);
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    fn lookup(&self, spec: &Spec) -> Result<Option<Arc<EventLog>>, OperationError> {
        let finished = Kind::ALL
            .iter()
            .filter_map(|kind| self.finished.get(&(spec.deployment_id.clone(), *kind)));
        let running = self
            .running
            .values()
            .filter(|r| r.spec.deployment_id == spec.deployment_id);
        let mut same = None;
        for recorded in finished.chain(running) {
            if recorded.spec == *spec {
                same.get_or_insert_with(|| recorded.log.clone());
            } else if !recorded.spec.pairs_with(spec) {
                return Err(OperationError::Reused {
                    deployment_id: spec.deployment_id.clone(),
                    existing: recorded.spec.to_string(),
                });
            }
        }
        if same.is_some() {
            return Ok(same);
        }
        match self.running.get(&spec.root) {
            Some(other) => Err(OperationError::Busy {
                running: other.spec.deployment_id.clone(),
                app: spec.app.clone(),
            }),
            None => Ok(None),
        }
    }
}

/// The operations of this agent.
#[derive(Debug)]
pub struct Operations {
    state: Mutex<State>,
    running: watch::Sender<usize>,
    run_ids: RunIds,
    metrics: Arc<Metrics>,
}

impl Operations {
    /// No operations yet; run ids under a new boot id; counted nowhere.
    #[cfg(test)]
    pub fn new() -> Arc<Self> {
        Self::observed(Arc::default())
    }

    /// No operations yet; run ids under a new boot id; counts operations, hooks and health
    /// checks in `metrics`.
    pub fn observed(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            running: watch::Sender::new(0),
            run_ids: RunIds::new(),
            metrics,
        })
    }

    /// Where operations are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of the operation `spec` names if it is running or finished;
    /// an error if the app is busy with another one.
    pub fn find(&self, spec: &Spec) -> Result<Option<Arc<EventLog>>, OperationError> {
        self.state().lookup(spec)
    }

    /// Like [`Operations::find`], but takes the app when it is free.
    pub fn begin(self: &Arc<Self>, spec: Spec) -> Result<Begin, OperationError> {
        let mut state = self.state();
        if let Some(log) = state.lookup(&spec)? {
            return Ok(Begin::Existing(log));
        }
        if let Some(retry_after_ms) = state.closed {
            return Err(OperationError::Upgrading { retry_after_ms });
        }
        let log = EventLog::new(self.run_ids.next());
        let cancel = Cancel::default();
        let recorded = Recorded {
            spec: spec.clone(),
            log: log.clone(),
            cancel: cancel.clone(),
        };
        state.running.insert(spec.root.clone(), recorded);
        self.running.send_replace(state.running.len());
        Ok(Begin::New(OperationGuard {
            operations: self.clone(),
            spec,
            log,
            cancel,
            started: Instant::now(),
        }))
    }

    /// The log replaying a finished operation from the events its app's
    /// journal recorded (the in-memory one was forgotten, or the agent
    /// restarted). It is remembered like a finished run, so asking again in
    /// this process replays the same run. It keeps `recorded_run`, whichever
    /// process made that run, with the events' own sequences: a client that
    /// followed the run before an agent restart skips what it has seen by
    /// (run id, sequence), and gets the rest. A run recorded without an id
    /// (by an older agent) is replayed under a new one.
    pub fn replay(
        &self,
        spec: &Spec,
        recorded_run: &str,
        events: Vec<ProgressEvent>,
    ) -> Arc<EventLog> {
        let mut state = self.state();
        let key = (spec.deployment_id.clone(), spec.kind);
        if let Some(known) = state.finished.get(&key).filter(|r| r.spec == *spec) {
            return known.log.clone();
        }
        let run_id = if recorded_run.is_empty() {
            self.run_ids.next()
        } else {
            recorded_run.to_owned()
        };
        let log = EventLog::replay(run_id, events);
        let recorded = Recorded {
            spec: spec.clone(),
            log: log.clone(),
            cancel: Cancel::default(),
        };
        state.remember(key, recorded);
        log
    }

    /// Cancels the operation of `deployment_id` running on `root` and
    /// returns its log (to wait for its end); None when none runs.
    pub fn cancel(
        &self,
        root: &std::path::Path,
        deployment_id: &str,
        grace: std::time::Duration,
    ) -> Option<Arc<EventLog>> {
        let state = self.state();
        let recorded = state
            .running
            .get(root)
            .filter(|r| r.spec.deployment_id == deployment_id)?;
        recorded.cancel.cancel(grace);
        Some(recorded.log.clone())
    }

    /// Deployment id of the operation running on `root`, if any.
    pub fn running_on(&self, root: &std::path::Path) -> Option<String> {
        self.state()
            .running
            .get(root)
            .map(|r| r.spec.deployment_id.clone())
    }

    /// Refuses new operations from now on (an upgrade), telling callers to
    /// try again after `retry_after_ms`; [`Operations::reopen`] ends it.
    pub fn close(&self, retry_after_ms: u64) {
        self.state().closed = Some(retry_after_ms.max(1));
    }

    /// Accepts new operations again.
    pub fn reopen(&self) {
        self.state().closed = None;
    }

    /// Resolves once no operation is running.
    pub async fn wait_idle(&self) {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|running| *running == 0).await;
    }

    fn release(&self, spec: &Spec, remember: bool) {
        let mut state = self.state();
        if let Some(recorded) = state.running.remove(&spec.root)
            && remember
        {
            let key = (spec.deployment_id.clone(), spec.kind);
            state.remember(key, recorded);
        }
        self.running.send_replace(state.running.len());
    }
}

/// Holds an app for one operation. [`OperationGuard::finish`] records the
/// final event; dropping the guard without it (a panic) records a failure,
/// so subscribers never wait forever.
#[derive(Debug)]
pub struct OperationGuard {
    operations: Arc<Operations>,
    spec: Spec,
    log: Arc<EventLog>,
    cancel: Cancel,
    started: Instant,
}

impl OperationGuard {
    /// The operation.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Its event log.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// Its cancel switch.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Where its hooks and health check are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.operations.metrics
    }

    fn count(&self, succeeded: bool) {
        let took = self.started.elapsed();
        let kind = self.spec.kind.name();
        (self.operations.metrics).operation_finished(kind, succeeded, took);
    }

    /// Gives the app back without the operation having run: it is not
    /// remembered, so the same deployment id may start it later. Whoever
    /// attached meanwhile sees it end with `error`.
    pub fn abandon(self, error: String) {
        self.operations.release(&self.spec, false);
        let event = Event {
            stage: Stage::Prepare,
            percent: 0,
            level: LogLevel::Error,
            message: error.clone(),
            ..Event::default()
        };
        let result = OperationResult {
            success: false,
            error,
            ..OperationResult::default()
        };
        self.log.append(event, Some(result), true);
    }

    /// Records the final event: first hands every event, the final one
    /// last, to `record` (which makes them durable), then frees the app,
    /// then publishes the final event to subscribers.
    pub async fn finish<F, Fut>(self, last: Event, result: OperationResult, record: F)
    where
        F: FnOnce(Vec<ProgressEvent>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.count(result.success);
        let events = self.log.seal(last, result);
        let final_event = events.last().cloned().expect("seal adds the final event");
        record(events).await;
        crate::pause::at_finish(&self.spec.deployment_id).await;
        // Free the app before publishing: a client that reads the final
        // event and at once starts the next deployment must not find the
        // app busy.
        self.operations.release(&self.spec, true);
        self.log.publish_final(final_event);
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        if !self.log.is_finished() {
            self.count(false);
            self.operations.release(&self.spec, true);
            let last = self.log.last();
            let error = "the operation stopped unexpectedly; see the agent log".to_owned();
            let event = Event {
                stage: last.as_ref().map_or(Stage::Prepare, |e| e.stage()),
                percent: last.map_or(0, |e| e.percent),
                level: LogLevel::Error,
                message: error.clone(),
                ..Event::default()
            };
            let result = OperationResult {
                success: false,
                error,
                ..OperationResult::default()
            };
            self.log.append(event, Some(result), true);
        }
    }
}

#[cfg(test)]
mod tests;
