//! Reading the `journal.json` of an older agent (one JSON document holding
//! every operation's events) into the record log: each operation's events
//! move to its event log, the rest becomes records, then the old file goes.
//! A crash before the removal leaves both; the log wins on the next open.

use std::{io, path::Path};

use super::{
    JournalData, JournalError, VERSION, op_events, records::RecordLog, remove_synced, stored,
};
use crate::layout::AppRoot;

/// The migrated content and its new log; None when there is no old file.
/// Blocking.
pub fn from_json(app: &AppRoot) -> Result<Option<(JournalData, RecordLog)>, JournalError> {
    let path = app.legacy_journal();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(JournalError::Io {
                action: "read",
                path,
                source,
            });
        }
    };
    let mut data = decode(&path, &bytes)?;
    drop(bytes);
    for (seq, op) in (1..).zip(data.operations.iter_mut()) {
        op.seq = seq;
        if op.events.len() > 1 {
            let events = std::mem::take(&mut op.events);
            if let Err(err) = op_events::save(app, &op.deployment_id, op.kind, &events) {
                tracing::warn!(error = %slipway_proto::daemon::chain(&err), "cannot keep the events");
            }
            op.events = events.into_iter().last().into_iter().collect();
        }
    }
    let log = RecordLog::create(&app.journal(), &stored::to_records(&data)).map_err(|source| {
        JournalError::Io {
            action: "write",
            path: app.journal(),
            source,
        }
    })?;
    remove_synced(&path)?;
    tracing::info!(journal = %app.journal().display(), "migrated journal.json to the record log");
    Ok(Some((data, log)))
}

/// The content of a `journal.json` read from `path`, of this agent's version.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<JournalData, JournalError> {
    let data: JournalData =
        serde_json::from_slice(bytes).map_err(|source| JournalError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
    if data.version != VERSION {
        return Err(JournalError::Version {
            path: path.to_owned(),
            version: data.version,
        });
    }
    Ok(data)
}
