//! A content store in a temp dir for tests: objects put by content, and
//! manifest entries for files and symlinks built from them.

use sha2::{Digest, Sha256};
use slipway_proto::agent::v1::{FileEntry, FileKind};

use crate::{layout::AppRoot, objects::ObjectStore};

/// An app root with its store, deleted when dropped.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) app: AppRoot,
    pub(crate) store: ObjectStore,
}

/// A fresh app root `web` with its directories.
pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    let store = ObjectStore::new(&app);
    Fixture {
        _dir: dir,
        app,
        store,
    }
}

impl Fixture {
    /// Stores `content` and returns its hash.
    pub(crate) fn put(&self, content: &[u8]) -> String {
        let sha = hex::encode(Sha256::digest(content));
        if !self.store.contains(&sha) {
            let mut pending = self.store.begin(&sha, content.len() as u64).unwrap();
            pending.write(content).unwrap();
            pending.finish().unwrap();
        }
        sha
    }

    /// A regular file of the manifest, its content stored.
    pub(crate) fn file(&self, path: &str, mode: u32, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: FileKind::Regular as i32,
            mode,
            size: content.len() as u64,
            sha256: self.put(content),
        }
    }

    /// A symlink of the manifest, its target stored.
    pub(crate) fn link(&self, path: &str, target: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: FileKind::Symlink as i32,
            mode: 0o777,
            size: target.len() as u64,
            sha256: self.put(target.as_bytes()),
        }
    }
}
