//! Release contents read from git once per deployment and shared by every
//! host's upload: hosts ask for the same objects in the same (hash) order,
//! so without it each blob would be found, inflated and hash-checked once
//! per host. Only small blobs are cached, within a byte budget; a large one
//! is streamed from git in chunks for each host and never held whole.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use git2::Repository;

use git2::Oid;

use crate::{git::GitError, git_blob};

/// Bytes of blob content a deployment keeps in memory at most.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

/// One blob, read by whichever host asked first while the others wait.
type Slot = Arc<OnceLock<Option<Arc<[u8]>>>>;

/// Blob contents shared by the hosts of one deployment, oldest evicted
/// first once they exceed a byte budget.
#[derive(Debug)]
pub struct BlobCache {
    budget: u64,
    inner: Mutex<Inner>,
    /// Held by the host reading missing contents for the cache, so that
    /// the others wait for it instead of each taking a blocking thread.
    reading: tokio::sync::Mutex<()>,
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
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// Calls `each` with the content of `blob` (of `size` bytes) in `repo`
    /// in chunks of at most `chunk` bytes, until it ends or `each` returns
    /// false. A small blob is read at most once while it stays cached; a
    /// large one is streamed from git. Blocking.
    pub fn for_each_chunk(
        &self,
        repo: &Repository,
        blob: &str,
        size: u64,
        chunk: usize,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), GitError> {
        let oid = Oid::from_str(blob)?;
        if size > git_blob::IN_MEMORY || size > self.budget {
            return git_blob::for_each_chunk(repo, oid, chunk, each).map(drop);
        }
        let content = self.read_small(repo, oid, blob, size)?;
        for part in chunks(&content, chunk) {
            if !each(part) {
                break;
            }
        }
        Ok(())
    }

    /// Whether blobs of these sizes can all be held at once: each small
    /// enough to be read whole, and together within the budget.
    pub fn fits(&self, mut sizes: impl Iterator<Item = u64>) -> bool {
        let mut total = 0u64;
        sizes.all(|size| {
            total = total.saturating_add(size);
            size <= git_blob::IN_MEMORY && total <= self.budget
        })
    }

    /// The contents of `blobs` if they are all cached already, in order.
    pub fn cached<'a>(&self, mut blobs: impl Iterator<Item = &'a str>) -> Option<Vec<Arc<[u8]>>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        blobs.try_fold(Vec::new(), |mut contents, blob| {
            contents.push(inner.slots.get(blob)?.get()?.clone()?);
            Some(contents)
        })
    }

    /// Waits until no other host is reading contents for the cache.
    pub async fn reading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reading.lock().await
    }

    /// Reads `blobs` (git blob id and size, each small) from the repository
    /// at `source` through the cache, in order. Blocking.
    pub fn read_all(
        &self,
        source: &str,
        blobs: &[(String, u64)],
    ) -> Result<Vec<Arc<[u8]>>, GitError> {
        let repo = crate::git::open(source)?;
        blobs
            .iter()
            .map(|(blob, size)| self.read_small(&repo, Oid::from_str(blob)?, blob, *size))
            .collect()
    }

    fn read_small(
        &self,
        repo: &Repository,
        oid: Oid,
        blob: &str,
        size: u64,
    ) -> Result<Arc<[u8]>, GitError> {
        let read =
            || -> Result<Arc<[u8]>, GitError> { Ok(Arc::from(repo.odb()?.read(oid)?.data())) };
        let slot = self.slot(blob, size);
        match slot.get_or_init(|| read().ok()) {
            Some(content) => Ok(content.clone()),
            // Reading failed: read again for the error itself.
            None => read(),
        }
    }

    /// The slot of `blob`, cached when there is room: contents that an
    /// upload still holds are never evicted, so the cache and everything
    /// uploads hold from it stay within the budget. Without room, a slot of
    /// its own: the content is read for this caller alone.
    fn slot(&self, blob: &str, size: u64) -> Slot {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = inner.slots.get(blob) {
            return slot.clone();
        }
        let slot = Slot::default();
        if !inner.make_room(size, self.budget) {
            return slot;
        }
        inner.slots.insert(blob.to_owned(), slot.clone());
        inner.order.push_back((blob.to_owned(), size));
        inner.bytes += size;
        slot
    }
}

impl Inner {
    /// Evicts the oldest contents no upload holds until `size` more bytes
    /// fit in `budget`; whether they do.
    fn make_room(&mut self, size: u64, budget: u64) -> bool {
        let mut held = Vec::new();
        while self.bytes + size > budget {
            let Some((old, old_size)) = self.order.pop_front() else {
                break;
            };
            if self.slots.get(&old).is_some_and(in_use) {
                held.push((old, old_size));
                continue;
            }
            self.slots.remove(&old);
            self.bytes -= old_size;
        }
        for entry in held.into_iter().rev() {
            self.order.push_front(entry);
        }
        self.bytes + size <= budget
    }
}

/// Whether someone besides the cache holds the content of `slot`.
fn in_use(slot: &Slot) -> bool {
    slot.get()
        .and_then(Option::as_ref)
        .is_some_and(|content| Arc::strong_count(content) > 1)
}

/// `content` in parts of at most `chunk` bytes; an empty content is one
/// empty part, so that its object is still sent.
pub fn chunks(content: &[u8], chunk: usize) -> impl Iterator<Item = &[u8]> {
    let empty = content.is_empty().then_some(content);
    empty.into_iter().chain(content.chunks(chunk.max(1)))
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

    fn read(
        cache: &BlobCache,
        repo: &Repository,
        blob: &str,
        size: u64,
    ) -> Result<Arc<[u8]>, GitError> {
        cache.read_small(repo, Oid::from_str(blob)?, blob, size)
    }

    fn chunks(cache: &BlobCache, repo: &Repository, blob: &str, size: u64) -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        cache
            .for_each_chunk(repo, blob, size, 3, |part| {
                parts.push(part.to_vec());
                true
            })
            .unwrap();
        parts
    }

    #[test]
    fn a_blob_is_read_once_and_shared() {
        let (_dir, repo, ids) = repo_with(&[b"hello", b"world"]);
        let cache = BlobCache::new(1 << 20);
        let first = read(&cache, &repo, &ids[0], 5).unwrap();
        let again = read(&cache, &repo, &ids[0], 5).unwrap();
        assert_eq!(&*first, b"hello");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            chunks(&cache, &repo, &ids[1], 5),
            [b"wor".to_vec(), b"ld".to_vec()]
        );
    }

    #[test]
    fn contents_read_together_are_then_served_from_memory() {
        let (dir, _repo, ids) = repo_with(&[b"hello", b"", b"world"]);
        let cache = BlobCache::new(1 << 20);
        let wanted = || ids.iter().map(String::as_str);
        assert!(cache.cached(wanted()).is_none());
        let blobs: Vec<_> = ids.iter().map(|id| (id.clone(), 5)).collect();
        let read = cache
            .read_all(dir.path().to_str().unwrap(), &blobs)
            .unwrap();
        let cached = cache.cached(wanted()).unwrap();
        assert_eq!(cached.len(), 3);
        assert!(read.iter().zip(&cached).all(|(a, b)| Arc::ptr_eq(a, b)));
        assert_eq!(&*cached[2], b"world");
        let parts: Vec<_> = super::chunks(&cached[1], 3).collect();
        assert_eq!(
            parts,
            [b"".as_slice()],
            "an empty content is one empty part"
        );
    }

    #[test]
    fn contents_fit_when_each_is_small_and_all_within_the_budget() {
        let cache = BlobCache::new(10);
        assert!(cache.fits([4, 6].into_iter()));
        assert!(!cache.fits([4, 7].into_iter()));
        let large = BlobCache::new(u64::MAX);
        assert!(!large.fits([git_blob::IN_MEMORY + 1].into_iter()));
    }

    #[test]
    fn the_oldest_blobs_leave_past_the_budget() {
        let (_dir, repo, ids) = repo_with(&[b"hello", b"world"]);
        let cache = BlobCache::new(8);
        read(&cache, &repo, &ids[0], 5).unwrap();
        read(&cache, &repo, &ids[1], 5).unwrap();
        assert!(cache.cached([ids[0].as_str()].into_iter()).is_none());
        assert!(cache.cached([ids[1].as_str()].into_iter()).is_some());
        let reread = read(&cache, &repo, &ids[0], 5).unwrap();
        assert_eq!(&*reread, b"hello");
    }

    #[test]
    fn a_content_being_sent_stays_and_a_new_one_is_read_uncached() {
        let (_dir, repo, ids) = repo_with(&[b"hello", b"world"]);
        let cache = BlobCache::new(8);
        let sending = read(&cache, &repo, &ids[0], 5).unwrap();
        let other = read(&cache, &repo, &ids[1], 5).unwrap();
        assert_eq!(&*other, b"world");
        assert!(cache.cached([ids[1].as_str()].into_iter()).is_none());
        let cached = cache.cached([ids[0].as_str()].into_iter()).unwrap();
        assert!(Arc::ptr_eq(&cached[0], &sending));
    }

    #[test]
    fn a_blob_past_the_budget_streams_in_chunks() {
        let (_dir, repo, ids) = repo_with(&[b"hello world"]);
        let cache = BlobCache::new(4);
        let parts = chunks(&cache, &repo, &ids[0], 11);
        assert_eq!(parts.concat(), b"hello world");
        assert!(parts.iter().all(|p| p.len() <= 3), "{parts:?}");
    }

    #[test]
    fn an_unknown_blob_is_an_error_every_time() {
        let (_dir, repo, _) = repo_with(&[]);
        let cache = BlobCache::new(1 << 20);
        let missing = "0123456789abcdef0123456789abcdef01234567";
        assert!(read(&cache, &repo, missing, 5).is_err());
        assert!(
            cache
                .for_each_chunk(&repo, missing, 5, 3, |_| true)
                .is_err()
        );
        assert!(
            cache
                .for_each_chunk(&repo, missing, 5 << 20, 3, |_| true)
                .is_err()
        );
    }
}
