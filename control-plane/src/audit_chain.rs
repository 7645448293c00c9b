//! The audit trail's hash chain: every entry carries the SHA-256 of the
//! previous entry's canonical bytes (its protobuf encoding), so an entry
//! changed or removed in the store after it was written breaks the link of
//! the entry after it. Entries written before the trail was chained carry no
//! hash; the chain starts at the first entry that does.
//!
//! The newest entry has no successor to vouch for it: an edit of the very
//! last entry is found once the next call is recorded.

use prost::Message;
use sha2::{Digest, Sha256};
use slipway_proto::control::v1::AuditEvent;

use crate::{
    error::Error,
    store::{Store, audit as trail},
};

/// Entries read from the store at once while verifying.
const SCAN: usize = 256;

/// The link a new entry carries to `previous` (the hash of nothing when the
/// trail is empty).
pub fn link(previous: Option<&AuditEvent>) -> String {
    let bytes = previous.map(Message::encode_to_vec).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The outcome of walking the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Entries whose link was checked and holds.
    pub verified: u64,
    /// Sequence of the first chained entry; 0 when none is.
    pub first_sequence: u64,
    /// The first broken link: the entry's sequence and what is wrong.
    pub broken: Option<(u64, String)>,
}

impl Verified {
    fn break_at(&mut self, sequence: u64, problem: String) {
        // Walking newest first: the lowest sequence is the first break.
        if self.broken.as_ref().is_none_or(|(at, _)| sequence <= *at) {
            self.broken = Some((sequence, problem));
        }
    }
}

/// Walks the whole trail, newest first (memory stays at one page), and
/// reports the first broken link by sequence.
pub fn verify(store: &Store) -> Result<Verified, Error> {
    let mut out = Verified::default();
    let mut newer: Option<AuditEvent> = None;
    let mut below = None;
    loop {
        let page = trail::newest_first(store, below, SCAN)?;
        let done = page.len() < SCAN;
        if let Some(last) = page.last() {
            below = Some(last.sequence);
        }
        for older in page {
            if let Some(newer) = &newer {
                check_link(&mut out, newer, &older);
            }
            newer = Some(older);
        }
        if done {
            break;
        }
    }
    if let Some(oldest) = newer.filter(|e| !e.previous_sha256.is_empty()) {
        out.first_sequence = oldest.sequence;
        if oldest.sequence == 1 {
            if oldest.previous_sha256 == link(None) {
                out.verified += 1;
            } else {
                out.break_at(1, "entry 1 does not start the chain".into());
            }
        } else {
            let problem = format!("entries before {} are missing", oldest.sequence);
            out.break_at(oldest.sequence, problem);
        }
    }
    Ok(out)
}

/// Checks the link from `newer` back to `older`, the entry stored before it.
fn check_link(out: &mut Verified, newer: &AuditEvent, older: &AuditEvent) {
    if newer.previous_sha256.is_empty() {
        if !older.previous_sha256.is_empty() {
            let problem = format!(
                "entry {} carries no hash although entry {} before it does",
                newer.sequence, older.sequence
            );
            out.break_at(newer.sequence, problem);
        }
        return;
    }
    out.first_sequence = newer.sequence;
    if newer.sequence != older.sequence + 1 {
        let problem = format!(
            "entries {} to {} are missing",
            older.sequence + 1,
            newer.sequence - 1
        );
        out.break_at(older.sequence + 1, problem);
    } else if newer.previous_sha256 != link(Some(older)) {
        let problem = format!(
            "entry {} does not match the hash entry {} carries: it was changed after it was written",
            older.sequence, newer.sequence
        );
        out.break_at(older.sequence, problem);
    } else {
        out.verified += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tonic::Code;

    use super::*;
    use crate::{
        audit::{Actor, record},
        store::SledBackend,
    };

    fn store(dir: &std::path::Path) -> Store {
        Store::new(Arc::new(SledBackend::open(dir, 8 << 20).unwrap()))
    }

    async fn trail(s: &Store, entries: usize) {
        let actor = Actor {
            principal: "admin/alice".into(),
            role: "admin".into(),
            certificate_sha256: String::new(),
        };
        for i in 0..entries {
            record(s, &actor, "X/Y", &format!("app a{i}"), Code::Ok, "")
                .await
                .unwrap();
        }
    }

    async fn put(s: &Store, entry: &AuditEvent) {
        s.commit(vec![trail::overwrite(entry)]).await.unwrap();
    }

    #[tokio::test]
    async fn an_intact_trail_verifies_and_an_edit_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        assert_eq!(verify(&s).unwrap(), Verified::default());
        trail(&s, 600).await;
        let ok = verify(&s).unwrap();
        assert_eq!((ok.verified, ok.first_sequence, ok.broken), (600, 1, None));

        let mut edited = trail::get(&s, 300).unwrap().unwrap();
        edited.outcome = "PermissionDenied".into();
        put(&s, &edited).await;
        let found = verify(&s).unwrap();
        let (at, problem) = found.broken.unwrap();
        assert_eq!(at, 300, "{problem}");
        assert!(problem.contains("entry 301"), "{problem}");
    }

    #[tokio::test]
    async fn old_unchained_entries_are_skipped_and_a_gap_is_a_break() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for sequence in 1..=3 {
            let old = AuditEvent {
                sequence,
                method: "old".into(),
                ..Default::default()
            };
            put(&s, &old).await;
        }
        trail(&s, 4).await;
        let ok = verify(&s).unwrap();
        assert_eq!((ok.verified, ok.first_sequence, ok.broken), (4, 4, None));

        s.commit(vec![trail::erase(5)]).await.unwrap();
        let (at, problem) = verify(&s).unwrap().broken.unwrap();
        assert_eq!(at, 5, "{problem}");
        assert!(problem.contains("missing"), "{problem}");
    }
}
