//! One operation per app at a time: the running and recently finished
//! operations, their event logs and cancel switches, and attaching to or
//! replaying an operation by its deployment id.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use slipway_proto::agent::v1::{LogLevel, OperationResult, ProgressEvent, Stage};
use tokio::sync::watch;

use crate::cancel::Cancel;
pub use crate::event_log::{Event, EventLog};

/// Finished operations remembered in memory for replay; the app's journal
/// remembers the last ones across restarts.
const REMEMBERED: usize = 256;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Materialise and activate a release.
    Deploy,
    /// Activate a release already on disk; with the deployment id of a
    /// prepare, the second phase of a two-phase deploy.
    Rollback,
    /// Materialise a release and run its before-activate hooks, without
    /// switching (a Deploy with `prepare_only`).
    Prepare,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Deploy, Kind::Rollback, Kind::Prepare];
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
    running: HashMap<PathBuf, Recorded>,
    finished: HashMap<Key, Recorded>,
    order: VecDeque<Key>,
}

impl State {
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
}

impl Operations {
    /// No operations yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            running: watch::Sender::new(0),
        })
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
        let log = EventLog::new();
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
        }))
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
            state.finished.insert(key.clone(), recorded);
            state.order.push_back(key);
            while state.order.len() > REMEMBERED {
                if let Some(old) = state.order.pop_front() {
                    state.finished.remove(&old);
                }
            }
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
        let events = self.log.seal(last, result);
        let final_event = events.last().cloned().expect("seal adds the final event");
        record(events).await;
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
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn spec(id: &str, root: &str) -> Spec {
        Spec {
            deployment_id: id.into(),
            kind: Kind::Deploy,
            app: "web".into(),
            root: root.into(),
            release_id: "r1".into(),
        }
    }

    async fn done(guard: OperationGuard) -> Vec<ProgressEvent> {
        let result = OperationResult {
            success: true,
            ..Default::default()
        };
        let last = Event {
            stage: Stage::Done,
            percent: 100,
            level: LogLevel::Info,
            message: "done".into(),
            ..Event::default()
        };
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let sink = recorded.clone();
        guard
            .finish(last, result, |events| async move {
                *sink.lock().unwrap() = events;
            })
            .await;
        recorded.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn one_operation_per_app_with_attach_and_replay() {
        let ops = Operations::new();
        let Begin::New(guard) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
            panic!("expected a new operation");
        };
        guard
            .log()
            .push(Stage::Prepare, 0, LogLevel::Info, "one", None);

        let busy = ops.begin(spec("d2", "/srv/web")).unwrap_err();
        assert_eq!(
            busy.to_string(),
            "deployment d1 is already running for app web"
        );
        assert!(matches!(
            ops.begin(spec("d2", "/srv/api")).unwrap(),
            Begin::New(_)
        ));
        let mut other = spec("d1", "/srv/web");
        other.release_id = "r2".into();
        assert!(matches!(
            ops.begin(other),
            Err(OperationError::Reused { .. })
        ));
        assert_eq!(ops.running_on("/srv/web".as_ref()).as_deref(), Some("d1"));

        let Begin::Existing(attached) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
            panic!("expected to attach");
        };
        let follower = tokio::spawn(attached.subscribe().collect::<Vec<_>>());
        let recorded = done(guard).await;
        let events = follower.await.unwrap();
        assert_eq!(
            recorded, events,
            "the journal gets exactly what is streamed"
        );
        assert_eq!(
            events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(events[1].result.as_ref().unwrap().success);

        let Begin::Existing(replayed) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
            panic!("expected a replay");
        };
        assert_eq!(replayed.subscribe().collect::<Vec<_>>().await, events);
        assert!(matches!(
            ops.begin(spec("d3", "/srv/web")).unwrap(),
            Begin::New(_)
        ));
        ops.wait_idle().await;
    }

    #[tokio::test]
    async fn a_dropped_guard_records_a_failure() {
        let ops = Operations::new();
        let Begin::New(guard) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
            panic!("expected a new operation");
        };
        let log = guard.log().clone();
        drop(guard);
        let events = log.subscribe().collect::<Vec<_>>().await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].level(), LogLevel::Error);
        assert!(!events[0].result.as_ref().unwrap().success);
        assert_eq!(ops.running_on("/srv/web".as_ref()), None);
    }
}
