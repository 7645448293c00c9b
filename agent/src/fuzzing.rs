//! Entry points for the fuzz targets in `agent/fuzz/` (and the property
//! tests that run the same code on stable Rust): each takes bytes as they
//! come from the wire or the disk, must return rather than panic, and checks
//! what must hold of whatever it accepts. Not part of the agent's API.

use std::path::Path;

use prost::Message;
use slipway_proto::{agent::v1::ReleaseManifest, validate};

use crate::{
    journal::{migrate, records::RecordLog, stored},
    manifest::{self, EntryKind, Manifest},
};

/// Decodes `bytes` as a `ReleaseManifest` (a deploy's files on the wire, a
/// kept manifest on disk) and validates it as a deploy does, then checks
/// each symlink entry's path as a target. Returns whether it was accepted.
pub fn manifest(bytes: &[u8]) -> bool {
    let Ok(decoded) = ReleaseManifest::decode(bytes) else {
        return false;
    };
    let Ok(manifest) = Manifest::from_wire(decoded.files) else {
        return false;
    };
    for entry in manifest.entries() {
        assert!(
            validate::relative_path("path", &entry.path).is_ok(),
            "an accepted path is clean: {:?}",
            entry.path
        );
        if entry.kind == EntryKind::Symlink {
            let _ = manifest::check_symlink_target(entry, entry.path.as_bytes());
        }
    }
    for dir in manifest.dirs() {
        assert!(
            manifest.entries().iter().all(|e| e.path != dir),
            "{dir:?} is both a directory and an entry"
        );
    }
    let _ = manifest.hashes();
    true
}

/// Reads `bytes` as the record log `journal.log` and builds the journal's
/// content from its records, as opening a journal does. Whatever it
/// accepts must store as records that read back the same. Returns whether
/// it was accepted.
pub fn journal_log(bytes: &[u8]) -> bool {
    let Ok(records) = RecordLog::read(bytes) else {
        return false;
    };
    let Ok(data) = stored::from_records(&records) else {
        return false;
    };
    check_stored(&data);
    true
}

/// Reads `bytes` as an older agent's `journal.json`, as the migration
/// does; whatever it accepts must store as records that read back the
/// same. Returns whether it was accepted.
pub fn journal_json(bytes: &[u8]) -> bool {
    let Ok(mut data) = migrate::decode(Path::new("journal.json"), bytes) else {
        return false;
    };
    for (seq, op) in (1..).zip(data.operations.iter_mut()) {
        op.seq = seq;
    }
    check_stored(&data);
    true
}

/// The records of `data`, read back and stored again, are the same records.
fn check_stored(data: &crate::journal::JournalData) {
    let records = stored::to_records(data);
    let read = stored::from_records(&records).expect("stored records read back");
    assert_eq!(
        stored::to_records(&read),
        records,
        "records change on a round trip"
    );
}
