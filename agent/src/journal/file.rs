//! One app's journal: its content in memory, opened from the record log (or
//! migrated from an older agent's `journal.json`), each change appended as
//! the few records it changed, and each finished operation's events kept in
//! their own file.

use std::sync::{Arc, Mutex, MutexGuard};

use slipway_proto::agent::v1::ProgressEvent;

use super::{
    JournalData, JournalError, OperationRecord, VERSION, migrate, op_events,
    records::{self, LoadError, RecordLog, Records},
    stored,
};
use crate::{layout::AppRoot, operations::Kind};

/// One app's journal: the content in memory, each change appended to the
/// record log (see [`records`]).
#[derive(Debug)]
pub struct Journal {
    app: AppRoot,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    data: JournalData,
    // The records `data` is stored as, to write only what a change changed.
    records: Records,
    // Opened on the first change: an app never changed has no journal file.
    log: Option<RecordLog>,
    // `data` holds deferred changes `records` does not (see `defer`).
    deferred: bool,
}

impl Journal {
    /// Reads the journal of `app` (a `journal.json` of an older agent is
    /// migrated); a missing one is an empty journal. Blocking.
    pub fn open(app: &AppRoot) -> Result<Self, JournalError> {
        let path = app.journal();
        let corrupt = |source| JournalError::Corrupt {
            path: path.clone(),
            source,
        };
        let loaded = RecordLog::load(&path).map_err(|err| match err {
            LoadError::Io(source) => JournalError::Io {
                action: "read",
                path: path.clone(),
                source,
            },
            LoadError::Corrupt { source, .. } => corrupt(source),
        })?;
        let (data, log) = match loaded {
            Some(records) => {
                let data = stored::from_records(&records).map_err(corrupt)?;
                if data.version != VERSION {
                    return Err(JournalError::Version {
                        path,
                        version: data.version,
                    });
                }
                // Compacted on open: also drops a torn last line for good.
                let log =
                    RecordLog::create(&path, &records).map_err(|source| JournalError::Io {
                        action: "compact",
                        path: path.clone(),
                        source,
                    })?;
                let legacy = app.legacy_journal();
                if legacy.exists() {
                    // A migration that stopped before removing the old file.
                    super::remove_synced(&legacy)?;
                }
                (data, Some(log))
            }
            None => match migrate::from_json(app)? {
                Some((data, log)) => (data, Some(log)),
                None => (JournalData::default(), None),
            },
        };
        Ok(Self {
            app: app.clone(),
            inner: Mutex::new(Inner {
                records: stored::to_records(&data),
                data,
                log,
                deferred: false,
            }),
        })
    }

    fn locked(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the content.
    pub fn read<R>(&self, f: impl FnOnce(&JournalData) -> R) -> R {
        f(&self.locked().data)
    }

    /// Changes the content and appends what changed to the log, with any
    /// deferred change, as one line. `f` runs under the journal's lock, so a
    /// decision made in it (which releases to prune, whether one is on disk)
    /// cannot race another change. When `f` or the write fails the content
    /// stays as it was. Blocking.
    pub fn update<R, E: From<JournalError>>(
        &self,
        f: impl FnOnce(&mut JournalData) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut inner = self.locked();
        let mut next = inner.data.clone();
        let out = f(&mut next)?;
        if next == inner.data && !inner.deferred {
            return Ok(out);
        }
        let records = stored::to_records(&next);
        let (put, del) = records::diff(&inner.records, &records);
        let path = self.app.journal();
        let io = |action| {
            let path = path.clone();
            move |source| JournalError::Io {
                action,
                path,
                source,
            }
        };
        match inner.log.as_mut() {
            Some(log) if log.wants_compaction() => {
                inner.log = Some(RecordLog::create(&path, &records).map_err(io("compact"))?);
            }
            Some(log) => log.append(put, del.clone()).map_err(io("append to"))?,
            None => inner.log = Some(RecordLog::create(&path, &records).map_err(io("write"))?),
        }
        inner.data = next;
        inner.records = records;
        inner.deferred = false;
        drop(inner);
        // Event logs of operations no longer on record.
        for key in &del {
            if let Some((id, kind)) = stored::operation_key(key) {
                op_events::remove(&self.app, &id, kind);
            }
        }
        Ok(out)
    }

    /// Changes the content now, and the log with the next
    /// [`Journal::update`], in the same line as that change: a crash before
    /// then loses it, nothing else. Only for what needs no sync of its own:
    /// what recovery rebuilds from the disk (the states of releases once
    /// `current` is switched and synced, see [`crate::recovery`]), or what
    /// must reach the disk with the change that follows it (a fencing token
    /// with the operation it admits). When `f` fails the content stays as it
    /// was. Does not block.
    pub fn defer<R, E>(&self, f: impl FnOnce(&mut JournalData) -> Result<R, E>) -> Result<R, E> {
        let mut inner = self.locked();
        let mut next = inner.data.clone();
        let out = f(&mut next)?;
        if next != inner.data {
            inner.data = next;
            inner.deferred = true;
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

    /// Records the outcome of an operation: all its events in its own event
    /// log file first (not synced, see [`op_events`]), then the record with
    /// its final event, synced.
    pub async fn finish(
        self: &Arc<Self>,
        deployment_id: String,
        kind: Kind,
        events: Vec<ProgressEvent>,
    ) -> Result<(), JournalError> {
        let journal = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = op_events::save(&journal.app, &deployment_id, kind, &events) {
                // The record still holds the outcome; a replay shows only it.
                tracing::warn!(error = %slipway_proto::daemon::chain(&err), "cannot keep the events");
            }
            journal.update(|data| {
                data.finish_operation(&deployment_id, kind, events);
                Ok(())
            })
        })
        .await?
    }

    /// Every event of a finished operation, or only its final one when its
    /// event log is gone. Blocking.
    pub fn events(&self, op: &OperationRecord) -> Vec<ProgressEvent> {
        op_events::load(&self.app, &op.deployment_id, op.kind)
            // The file of this run: its last event is the record's.
            .filter(|events| {
                let key = |e: &ProgressEvent| (e.sequence, e.time);
                events.last().map(key) == op.events.last().map(key)
            })
            .unwrap_or_else(|| op.events.clone())
    }
}
