//! The events of each finished operation, one file per operation in
//! `<root>/.slipway/events/<deployment>.<kind>.json` (0600), outside the
//! journal: the journal keeps only the outcome, so its size does not follow
//! what hooks print. Bounded by the hook output limits when written and by
//! [`MAX_FILE`] when read. Removed with the operation's record. Blocking.
//!
//! A file is written (temp, rename) just before the outcome's journal line
//! and not synced on its own: it is a replay for a control plane that
//! reconnects (which, following the operation, recorded each event as it
//! came), while the outcome is in the synced journal. A process crash keeps
//! the file; a power cut may leave it missing or empty, and a replay then
//! shows the final event only (a file's last event must match the record's,
//! see [`super::Journal::events`]).

use std::{
    fs,
    io::{self, Read},
    path::PathBuf,
};

use slipway_proto::agent::v1::ProgressEvent;

use crate::{
    fsutil::{self, FsError, io_err},
    layout::AppRoot,
    operations::Kind,
};

/// A larger file is not read (it is not one this agent wrote).
const MAX_FILE: u64 = 256 * 1024 * 1024;

fn path(app: &AppRoot, deployment_id: &str, kind: Kind) -> PathBuf {
    let kind = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    app.event_logs()
        .join(format!("{deployment_id}.{kind}.json"))
}

/// Writes the events of an operation: temp file, rename; not synced.
pub fn save(
    app: &AppRoot,
    deployment_id: &str,
    kind: Kind,
    events: &[ProgressEvent],
) -> Result<(), FsError> {
    let target = path(app, deployment_id, kind);
    let dir = app.event_logs();
    fsutil::create_private_dir(&dir).map_err(io_err("create", &dir))?;
    let tmp = dir.join(format!(".{:016x}", rand::random::<u64>()));
    let write = || -> io::Result<()> {
        let mut file = io::BufWriter::new(fsutil::create_private_file(&tmp)?);
        serde_json::to_writer(&mut file, events)?;
        file.into_inner().map_err(|e| e.into_error())?;
        fs::rename(&tmp, &target)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        FsError {
            action: "write the events",
            path: target,
            source,
        }
    })
}

/// The events of an operation; None when they are missing or unreadable.
pub fn load(app: &AppRoot, deployment_id: &str, kind: Kind) -> Option<Vec<ProgressEvent>> {
    let file = fs::File::open(path(app, deployment_id, kind)).ok()?;
    if file.metadata().ok()?.len() > MAX_FILE {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Forgets the events of an operation.
pub fn remove(app: &AppRoot, deployment_id: &str, kind: Kind) {
    let _ = fs::remove_file(path(app, deployment_id, kind));
}
