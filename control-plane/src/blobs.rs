//! Release contents read from git once per deployment and shared by every
//! host's upload: hosts ask for the same objects in the same (hash) order,
//! so without it each blob would be found, inflated and hash-checked once
//! per host.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use git2::Repository;

use crate::git::{self, GitError};

/// Bytes of blob content a deployment keeps in memory at most.
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// One blob, read by whichever host asked first while the others wait.
type Slot = Arc<OnceLock<Option<Arc<[u8]>>>>;

/// Blob contents shared by the hosts of one deployment, oldest evicted
/// first once they exceed a byte budget.
#[derive(Debug)]
pub struct BlobCache {
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Blob ids and sizes in insertion order.
    order: VecDeque<(String, u64)>,
    bytes: u64,
}

impl BlobCache {
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The content of `blob` (of `size` bytes) in `repo`, read at most once
    /// while it stays cached. Blocking.
    pub fn read(&self, repo: &Repository, blob: &str, size: u64) -> Result<Arc<[u8]>, GitError> {
        if size > self.budget {
            return git::read_blob(repo, blob).map(Arc::from);
        }
        let slot = self.slot(blob, size);
        match slot.get_or_init(|| git::read_blob(repo, blob).ok().map(Arc::from)) {
            Some(content) => Ok(content.clone()),
            // Reading failed: read again for the error itself.
            None => git::read_blob(repo, blob).map(Arc::from),
        }
    }

    fn slot(&self, blob: &str, size: u64) -> Slot {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = inner.slots.get(blob) {
            return slot.clone();
        }
        let slot = Slot::default();
        inner.slots.insert(blob.to_owned(), slot.clone());
        inner.order.push_back((blob.to_owned(), size));
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((old, old_size)) = inner.order.pop_front() else {
                break;
            };
            inner.slots.remove(&old);
            inner.bytes -= old_size;
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(contents: &[&[u8]]) -> (tempfile::TempDir, Repository, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let ids = contents
            .iter()
            .map(|c| repo.blob(c).unwrap().to_string())
            .collect();
        (dir, repo, ids)
    }

    #[test]
    fn a_blob_is_read_once_and_shared() {
        let (_dir, repo, ids) = repo_with(&[b"hello", b"world"]);
        let cache = BlobCache::new(1 << 20);
        let first = cache.read(&repo, &ids[0], 5).unwrap();
        let again = cache.read(&repo, &ids[0], 5).unwrap();
        assert_eq!(&*first, b"hello");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(&*cache.read(&repo, &ids[1], 5).unwrap(), b"world");
    }

    #[test]
    fn the_oldest_blobs_leave_past_the_budget() {
        let (_dir, repo, ids) = repo_with(&[b"hello", b"world"]);
        let cache = BlobCache::new(8);
        let first = cache.read(&repo, &ids[0], 5).unwrap();
        cache.read(&repo, &ids[1], 5).unwrap();
        let reread = cache.read(&repo, &ids[0], 5).unwrap();
        assert_eq!(&*reread, b"hello");
        assert!(!Arc::ptr_eq(&first, &reread));
    }

    #[test]
    fn an_unknown_blob_is_an_error_every_time() {
        let (_dir, repo, _) = repo_with(&[]);
        let cache = BlobCache::new(1 << 20);
        let missing = "0123456789abcdef0123456789abcdef01234567";
        assert!(cache.read(&repo, missing, 5).is_err());
        assert!(cache.read(&repo, missing, 5).is_err());
    }
}
