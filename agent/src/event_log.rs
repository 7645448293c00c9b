//! The events of one run of an operation: numbered and stamped with the
//! run's id as they are recorded, readable from the first by any number of
//! subscribers while more arrive, sealed while the final event is made
//! durable.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use slipway_proto::agent::v1::{LogLevel, OperationResult, ProgressEvent, Stage};
use tokio::sync::watch;

/// The events of one run of an operation: recorded in order, readable from
/// the start by any number of subscribers while more arrive.
#[derive(Debug)]
pub struct EventLog {
    // Every event of the log carries it, replayed ones included.
    run_id: String,
    events: Mutex<Events>,
    // Carries the event count; subscribers wait on it for new events.
    changed: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Events {
    list: Vec<ProgressEvent>,
    // Set while the final event is being made durable: later events (a
    // detached hook's output) would be missing from the journal.
    sealed: bool,
}

/// The fields of an event that the caller chooses.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// Stage.
    pub stage: Stage,
    /// 0-100.
    pub percent: u32,
    /// Severity.
    pub level: LogLevel,
    /// For a person.
    pub message: String,
    /// Hook or check name.
    pub step: String,
    /// "stdout" or "stderr" for a line of output.
    pub output: String,
}

impl EventLog {
    /// An empty log of the run `run_id`.
    pub(crate) fn new(run_id: String) -> Arc<Self> {
        Arc::new(Self {
            run_id,
            events: Mutex::new(Events::default()),
            changed: watch::Sender::new(0),
        })
    }

    /// A finished log holding recorded events, to replay them as the run
    /// `run_id` (whatever run id they were recorded with).
    pub fn replay(run_id: String, mut events: Vec<ProgressEvent>) -> Arc<Self> {
        for event in &mut events {
            event.run_id.clone_from(&run_id);
        }
        let count = events.len();
        Arc::new(Self {
            run_id,
            events: Mutex::new(Events {
                list: events,
                sealed: true,
            }),
            changed: watch::Sender::new(count),
        })
    }

    /// The run whose events these are.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn events(&self) -> MutexGuard<'_, Events> {
        // A panic while pushing cannot leave the Vec inconsistent.
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an event, numbering it and stamping the time. Events after
    /// the final one (with a result) are dropped.
    pub fn push(
        &self,
        stage: Stage,
        percent: u32,
        level: LogLevel,
        message: impl Into<String>,
        result: Option<OperationResult>,
    ) {
        let event = Event {
            stage,
            percent,
            level,
            message: message.into(),
            ..Event::default()
        };
        self.append(event, result, false);
    }

    /// Appends an event with a step and an output stream.
    pub fn push_event(&self, event: Event) {
        self.append(event, None, false);
    }

    pub(crate) fn append(&self, event: Event, result: Option<OperationResult>, final_ok: bool) {
        let mut events = self.events();
        if events.list.last().is_some_and(|e| e.result.is_some()) || (events.sealed && !final_ok) {
            return;
        }
        let sequence = events.list.len() as u64 + 1;
        events.list.push(ProgressEvent {
            sequence,
            time: Some(slipway_proto::now()),
            stage: event.stage as i32,
            percent: event.percent,
            message: event.message,
            level: event.level as i32,
            result,
            step: event.step,
            output: event.output,
            run_id: self.run_id.clone(),
        });
        let count = events.list.len();
        self.changed.send_replace(count);
    }

    /// Stops accepting events other than the final one and returns every
    /// event so far followed by `last`, numbered and stamped, as it will be
    /// published by [`EventLog::publish_final`].
    pub(crate) fn seal(&self, last: Event, result: OperationResult) -> Vec<ProgressEvent> {
        let mut events = self.events();
        events.sealed = true;
        let mut all = events.list.clone();
        all.push(ProgressEvent {
            sequence: all.len() as u64 + 1,
            time: Some(slipway_proto::now()),
            stage: last.stage as i32,
            percent: last.percent,
            message: last.message,
            level: last.level as i32,
            result: Some(result),
            step: last.step,
            output: last.output,
            run_id: self.run_id.clone(),
        });
        all
    }

    pub(crate) fn publish_final(&self, last: ProgressEvent) {
        let mut events = self.events();
        if events.list.last().is_some_and(|e| e.result.is_some()) {
            return;
        }
        events.list.push(last);
        let count = events.list.len();
        self.changed.send_replace(count);
    }

    /// Whether the final event has been recorded.
    pub fn is_finished(&self) -> bool {
        self.events()
            .list
            .last()
            .is_some_and(|e| e.result.is_some())
    }

    /// Resolves with the final event once it is published: the operation's
    /// app is free by then and nothing of it runs any more.
    pub async fn finished(&self) -> ProgressEvent {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(last) = self.last().filter(|e| e.result.is_some()) {
                return last;
            }
            // The sender lives in `self`: this cannot fail while it waits.
            let _ = rx.changed().await;
        }
    }

    /// The latest event, if any.
    pub fn last(&self) -> Option<ProgressEvent> {
        self.events().list.last().cloned()
    }

    /// Every event from the first, then live ones, ending after the final
    /// event. Dropping the stream (the client left) affects nothing else.
    pub fn subscribe(self: &Arc<Self>) -> impl Stream<Item = ProgressEvent> + Send + 'static {
        let rx = self.changed.subscribe();
        futures_util::stream::unfold((self.clone(), 0, rx), |(log, next, mut rx)| async move {
            loop {
                // Mark the count seen before reading, so a push after the
                // read wakes `changed()` below.
                rx.borrow_and_update();
                let (event, finished) = {
                    let events = log.events();
                    let finished = events.list.last().is_some_and(|e| e.result.is_some());
                    (events.list.get(next).cloned(), finished)
                };
                if let Some(event) = event {
                    return Some((event, (log, next + 1, rx)));
                }
                if finished || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn event(message: &str) -> Event {
        Event {
            stage: Stage::Hook,
            percent: 86,
            level: LogLevel::Info,
            message: message.into(),
            step: "migrate".into(),
            output: "stdout".into(),
        }
    }

    #[tokio::test]
    async fn a_sealed_log_takes_only_its_final_event() {
        let log = EventLog::new("b007-1".into());
        log.push_event(event("one"));
        let all = log.seal(event("done"), OperationResult::default());
        log.push_event(event("late output of a detached hook"));
        log.publish_final(all.last().cloned().unwrap());
        let seen: Vec<ProgressEvent> = log.subscribe().collect().await;
        assert_eq!(seen, all);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (seen[0].step.as_str(), seen[0].output.as_str()),
            ("migrate", "stdout")
        );
        assert_eq!(seen[1].sequence, 2);
        assert!(seen.iter().all(|e| e.run_id == "b007-1"), "{seen:#?}");
    }

    #[tokio::test]
    async fn a_replayed_log_streams_the_recorded_events_as_its_own_run() {
        let log = EventLog::new("b007-1".into());
        log.push_event(event("one"));
        let all = log.seal(event("done"), OperationResult::default());
        let replay = EventLog::replay("cafe-3".into(), all.clone());
        assert!(replay.is_finished());
        assert_eq!(replay.run_id(), "cafe-3");
        let replayed = replay.subscribe().collect::<Vec<_>>().await;
        let renamed: Vec<_> = all
            .into_iter()
            .map(|e| ProgressEvent {
                run_id: "cafe-3".into(),
                ..e
            })
            .collect();
        assert_eq!(
            replayed, renamed,
            "the same events and sequences, another run"
        );
    }
}
