//! The per-app content store `<root>/.slipway/objects/<2 hex>/<sha256>`:
//! lookups, verified writes of new objects, and executable variants.

use std::{
    collections::{HashMap, HashSet},
    fs::{File, Permissions},
    io::{self, Read, Write},
    os::{fd::OwnedFd, unix::fs::PermissionsExt},
    path::{Path, PathBuf},
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::{fsutil, layout::AppRoot};

/// Mode of a stored object. Read-only because releases hard-link it: a
/// write through any release would corrupt every release sharing it.
const OBJECT_MODE: u32 = 0o444;
/// Mode of the executable variant `<sha256>.x`.
const EXECUTABLE_MODE: u32 = 0o555;

/// A failure of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A filesystem call failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What the agent was doing, e.g. "write".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The received bytes do not hash to the announced SHA-256.
    #[error("object {sha256}: content does not match its hash")]
    HashMismatch {
        /// The announced hash.
        sha256: String,
    },
    /// An object's bytes do not fit the upload protocol.
    #[error("object {sha256}: {problem}")]
    Protocol {
        /// The object being received.
        sha256: String,
        /// What is wrong, for a person.
        problem: String,
    },
}

impl From<fsutil::FsError> for ObjectError {
    fn from(err: fsutil::FsError) -> Self {
        ObjectError::Io {
            action: err.action,
            path: err.path,
            source: err.source,
        }
    }
}

impl ObjectError {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| ObjectError::Io {
            action,
            path,
            source,
        }
    }
}

/// The most objects remembered per store by [`KnownObjects`].
pub const KNOWN_PER_STORE: usize = 1 << 16;

/// The objects each app's store was seen to hold, so that a deploy looks on
/// disk only for those it has not seen there before: a store never loses
/// an object but through a drift check discarding a corrupted one, which
/// [`KnownObjects::forget`]s it. At most [`KNOWN_PER_STORE`] a store; past
/// that its set starts anew.
#[derive(Debug, Default)]
pub struct KnownObjects {
    stores: std::sync::Mutex<HashMap<PathBuf, HashSet<[u8; 32]>>>,
}

impl KnownObjects {
    fn stores(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, HashSet<[u8; 32]>>> {
        // A panic while inserting leaves a set of true facts.
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hashes of `wanted` that `store` lacks, in the given order; those
    /// it holds are remembered. Blocking.
    pub fn missing(&self, store: &ObjectStore, wanted: &[String]) -> Vec<String> {
        let unseen: Vec<String> = match self.stores().get(&store.objects) {
            Some(seen) => wanted
                .iter()
                .filter(|sha| !key(sha).is_some_and(|k| seen.contains(&k)))
                .cloned()
                .collect(),
            None => wanted.to_vec(),
        };
        if unseen.is_empty() {
            return Vec::new();
        }
        let missing = store.missing(&unseen);
        let absent: HashSet<&str> = missing.iter().map(String::as_str).collect();
        let mut stores = self.stores();
        let seen = stores.entry(store.objects.clone()).or_default();
        if seen.len() + unseen.len() > KNOWN_PER_STORE {
            seen.clear();
        }
        if unseen.len() <= KNOWN_PER_STORE {
            let held = unseen.iter().filter(|sha| !absent.contains(sha.as_str()));
            seen.extend(held.filter_map(|sha| key(sha)));
        }
        missing
    }

    /// Forgets that `store` held `sha256` (it was removed).
    pub fn forget(&self, store: &ObjectStore, sha256: &str) {
        if let (Some(seen), Some(k)) = (self.stores().get_mut(&store.objects), key(sha256)) {
            seen.remove(&k);
        }
    }
}

/// A hex SHA-256 as bytes; None when it is not one.
fn key(sha256: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(sha256, &mut bytes).ok()?;
    Some(bytes)
}

/// The content store of one app.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    objects: PathBuf,
    tmp: PathBuf,
}

impl ObjectStore {
    /// The store inside `app`'s root.
    pub fn new(app: &AppRoot) -> Self {
        Self {
            objects: app.objects(),
            tmp: app.tmp(),
        }
    }

    /// Path of object `sha256` (validated by the caller), or of its
    /// executable variant.
    pub fn path(&self, sha256: &str, executable: bool) -> PathBuf {
        let name = if executable {
            format!("{sha256}.x")
        } else {
            sha256.to_owned()
        };
        self.objects.join(&sha256[..2]).join(name)
    }

    /// The objects directory.
    pub fn dir(&self) -> &Path {
        &self.objects
    }

    /// Object `sha256` (or its executable variant) relative to the objects
    /// directory ([`ObjectStore::open_dir`]): `ab/abcd...`.
    pub fn relative(sha256: &str, executable: bool) -> String {
        let suffix = if executable { ".x" } else { "" };
        format!("{}/{sha256}{suffix}", &sha256[..2])
    }

    /// The objects directory, open to resolve [`ObjectStore::relative`]
    /// names from: two path components a lookup instead of the whole path.
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(rustix::fs::open(&self.objects, flags, Mode::empty())?)
    }

    /// Whether the store holds `sha256`. Blocking.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256, false).is_file()
    }

    /// The hashes of `wanted` the store lacks, in the given order. Blocking.
    pub fn missing(&self, wanted: &[String]) -> Vec<String> {
        let Ok(dir) = self.open_dir() else {
            // No objects directory yet (or no descriptor to spare).
            return wanted
                .iter()
                .filter(|sha| !self.contains(sha))
                .cloned()
                .collect();
        };
        let regular = |sha: &str| {
            rustix::fs::statat(&dir, Self::relative(sha, false), AtFlags::empty())
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
        };
        wanted.iter().filter(|sha| !regular(sha)).cloned().collect()
    }

    /// Removes object `sha256` and its executable variant when either no
    /// longer holds content hashing to `sha256` with the store's mode: an
    /// edit or a chmod through a release's hard link reaches the object, so
    /// every later release linking it would carry the edit. Returns how many
    /// were removed; [`ObjectStore::missing`] then reports the hash.
    /// Blocking.
    pub fn discard_if_corrupt(&self, sha256: &str) -> Result<u32, ObjectError> {
        let mut removed = 0;
        for (executable, mode) in [(false, OBJECT_MODE), (true, EXECUTABLE_MODE)] {
            let path = self.path(sha256, executable);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(ObjectError::io("inspect", &path)(err)),
            };
            let intact = meta.is_file()
                && meta.permissions().mode() & 0o777 == mode
                && fsutil::hash_file(&path).is_ok_and(|(hash, _)| hash == sha256);
            if intact {
                continue;
            }
            std::fs::remove_file(&path).map_err(ObjectError::io("remove", &path))?;
            let dir = path.parent().expect("object paths have a parent");
            fsutil::sync_dir(dir).map_err(ObjectError::io("sync", dir))?;
            tracing::warn!(object = %path.display(), "removed a stored object whose content or mode no longer matched");
            removed += 1;
        }
        Ok(removed)
    }

    /// Reads a small object (a symlink target), refusing more than `limit`
    /// bytes. Blocking.
    pub fn read_small(&self, sha256: &str, limit: u64) -> Result<Vec<u8>, ObjectError> {
        let path = self.path(sha256, false);
        let mut content = Vec::new();
        File::open(&path)
            .and_then(|file| file.take(limit + 1).read_to_end(&mut content))
            .map_err(ObjectError::io("read", &path))?;
        if content.len() as u64 > limit {
            return Err(ObjectError::Protocol {
                sha256: sha256.to_owned(),
                problem: format!("is longer than {limit} bytes"),
            });
        }
        Ok(content)
    }

    /// The executable variant of `sha256`, made on first use by copying the
    /// object (a hard link would share the read-only mode). Blocking.
    pub fn executable(&self, sha256: &str) -> Result<PathBuf, ObjectError> {
        let target = self.path(sha256, true);
        if target.is_file() {
            return Ok(target);
        }
        let source = self.path(sha256, false);
        let tmp = self.temp_path(&format!("{sha256}.x"));
        let result = (|| {
            std::fs::copy(&source, &tmp).map_err(ObjectError::io("copy", &source))?;
            std::fs::set_permissions(&tmp, Permissions::from_mode(EXECUTABLE_MODE))
                .map_err(ObjectError::io("set the mode of", &tmp))?;
            File::open(&tmp)
                .and_then(|file| file.sync_all())
                .map_err(ObjectError::io("sync", &tmp))?;
            self.commit(&tmp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| target)
    }

    /// Starts receiving object `sha256` of `size` bytes into a temp file.
    /// Blocking.
    pub fn begin(&self, sha256: &str, size: u64) -> Result<PendingObject, ObjectError> {
        let tmp = self.temp_path(sha256);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(ObjectError::io("create", &tmp))?;
        Ok(PendingObject {
            store: self.clone(),
            sha256: sha256.to_owned(),
            size,
            received: 0,
            hasher: Sha256::new(),
            file: Some(file),
            tmp,
        })
    }

    fn temp_path(&self, name: &str) -> PathBuf {
        self.tmp
            .join(format!("{name}.{:016x}", rand::random::<u64>()))
    }

    /// Renames a finished temp file into the store and syncs the directory.
    fn commit(&self, tmp: &Path, target: &Path) -> Result<(), ObjectError> {
        let dir = target.parent().expect("object paths have a parent");
        fsutil::create_private_dir(dir).map_err(ObjectError::io("create", dir))?;
        std::fs::rename(tmp, target).map_err(ObjectError::io("rename into", target))?;
        fsutil::sync_dir(dir).map_err(ObjectError::io("sync", dir))
    }
}

/// An object being received: written to a temp file and hashed as it
/// arrives. Dropping it before [`PendingObject::finish`] deletes the temp
/// file, so a broken upload never leaves anything behind.
#[derive(Debug)]
pub struct PendingObject {
    store: ObjectStore,
    sha256: String,
    size: u64,
    received: u64,
    hasher: Sha256,
    file: Option<File>,
    tmp: PathBuf,
}

impl PendingObject {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Appends `data`. Blocking.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ObjectError> {
        let file = self.file.as_mut().expect("file is open until finish");
        file.write_all(data)
            .map_err(ObjectError::io("write", &self.tmp))?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }

    /// [`verify`](Self::verify) and commit at once, for tests that store
    /// one object. Blocking.
    #[cfg(test)]
    pub fn finish(self) -> Result<(), ObjectError> {
        let store = self.store.clone();
        store.commit_batch(vec![self.verify()?])
    }

    /// Checks size and hash and makes the file read-only, leaving it in the
    /// temp directory: [`ObjectStore::commit_batch`] makes a whole upload's
    /// objects durable with two syncs instead of two per object. A mismatch
    /// deletes the temp file. Blocking.
    pub fn verify(mut self) -> Result<Verified, ObjectError> {
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if self.received != self.size || digest != self.sha256 {
            return Err(ObjectError::HashMismatch {
                sha256: self.sha256.clone(),
            });
        }
        drop(self.file.take());
        std::fs::set_permissions(&self.tmp, Permissions::from_mode(OBJECT_MODE))
            .map_err(ObjectError::io("set the mode of", &self.tmp))?;
        let target = self.store.path(&self.sha256, false);
        // Handed over: nothing left for Drop to delete.
        let tmp = std::mem::take(&mut self.tmp);
        Ok(Verified { tmp, target })
    }
}

/// A received object whose content matched its hash, waiting in the temp
/// directory to be committed. Dropped uncommitted, its file is deleted.
#[derive(Debug)]
pub struct Verified {
    tmp: PathBuf,
    target: PathBuf,
}

impl Drop for Verified {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl ObjectStore {
    /// Moves verified objects into the store durably. A crash at any point
    /// leaves each object either absent or complete under its hash. A few
    /// objects are synced one by one (file, rename, directory); a large
    /// upload gets one `syncfs` so that every content is on disk before any
    /// object gets its final name, then the renames and a second `syncfs`:
    /// two syncs instead of two per object, while a `syncfs` costs whatever
    /// else is dirty on the filesystem, too much for a one-file change.
    /// Blocking.
    pub fn commit_batch(&self, mut objects: Vec<Verified>) -> Result<(), ObjectError> {
        if objects.is_empty() {
            return Ok(());
        }
        if objects.len() <= fsutil::SYNC_EACH_UP_TO {
            // Each object's content is durable before its name, and its
            // name before the upload ends; the syncs of each step run
            // together, so the batch waits for two commits, not two an
            // object.
            let tmps: Vec<&Path> = objects.iter().map(|o| o.tmp.as_path()).collect();
            fsutil::sync_together(&tmps).map_err(ObjectError::from)?;
            let mut dirs = std::collections::BTreeSet::new();
            for object in &mut objects {
                let dir = object.target.parent().expect("object paths have a parent");
                fsutil::create_private_dir(dir).map_err(ObjectError::io("create", dir))?;
                std::fs::rename(&object.tmp, &object.target)
                    .map_err(ObjectError::io("rename into", &object.target))?;
                object.tmp = PathBuf::new();
                dirs.insert(dir.to_owned());
            }
            let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            return fsutil::sync_together(&dirs).map_err(ObjectError::from);
        }
        let sync = |path: &Path| -> Result<(), ObjectError> {
            fsutil::sync_filesystem(path).map_err(ObjectError::io("sync the filesystem of", path))
        };
        sync(&self.tmp)?;
        for object in &mut objects {
            let dir = object.target.parent().expect("object paths have a parent");
            if !dir.is_dir() {
                std::fs::create_dir_all(dir).map_err(ObjectError::io("create", dir))?;
            }
            std::fs::rename(&object.tmp, &object.target)
                .map_err(ObjectError::io("rename into", &object.target))?;
            object.tmp = PathBuf::new();
        }
        sync(&self.tmp)
    }
}

impl Drop for PendingObject {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn store() -> (tempfile::TempDir, ObjectStore) {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        (dir, ObjectStore::new(&app))
    }

    fn tmp_is_empty(store: &ObjectStore) -> bool {
        std::fs::read_dir(&store.tmp).unwrap().next().is_none()
    }

    #[test]
    fn verified_objects_enter_the_store_read_only() {
        let (_dir, store) = store();
        let hash = sha(b"hello world");
        let mut pending = store.begin(&hash, 11).unwrap();
        pending.write(b"hello ").unwrap();
        pending.write(b"world").unwrap();
        pending.finish().unwrap();
        assert!(store.contains(&hash));
        let meta = std::fs::metadata(store.path(&hash, false)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert!(tmp_is_empty(&store));
        assert_eq!(store.missing(&[hash.clone(), sha(b"x")]), vec![sha(b"x")]);

        let exec = store.executable(&hash).unwrap();
        assert_eq!(std::fs::read(&exec).unwrap(), b"hello world");
        let meta = std::fs::metadata(exec).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o555);
    }

    #[test]
    fn objects_seen_in_a_store_are_not_looked_for_again_until_forgotten() {
        let (_dir, store) = store();
        let (held, absent) = (sha(b"held"), sha(b"absent"));
        let mut pending = store.begin(&held, 4).unwrap();
        pending.write(b"held").unwrap();
        pending.finish().unwrap();
        let known = KnownObjects::default();
        let both = [held.clone(), absent.clone()];
        assert_eq!(known.missing(&store, &both), vec![absent.clone()]);
        // Gone behind its back (a disk error): the store's word is trusted.
        let path = store.path(&held, false);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(known.missing(&store, &both), vec![absent.clone()]);
        // As a drift check's discard does it: forgotten, looked for again.
        known.forget(&store, &held);
        assert_eq!(known.missing(&store, &both), both.to_vec());
        // Another store shares nothing with this one.
        let (_other_dir, other) = self::store();
        assert_eq!(
            known.missing(&other, std::slice::from_ref(&held)),
            vec![held]
        );
    }

    #[test]
    fn what_is_remembered_of_a_store_is_bounded() {
        let (_dir, store) = store();
        let known = KnownObjects::default();
        let mut pending = store.begin(&sha(b"a"), 1).unwrap();
        pending.write(b"a").unwrap();
        pending.finish().unwrap();
        known.missing(&store, &[sha(b"a")]);
        assert_eq!(known.stores()[&store.objects].len(), 1);
        // More hashes than the bound: the set starts anew and keeps none.
        let many: Vec<String> = (0..=KNOWN_PER_STORE as u32)
            .map(|i| sha(&i.to_le_bytes()))
            .collect();
        assert_eq!(known.missing(&store, &many).len(), many.len());
        assert!(known.stores()[&store.objects].is_empty());
    }

    #[test]
    fn corrupt_or_truncated_objects_never_enter_the_store() {
        let (_dir, store) = store();
        let hash = sha(b"hello world");
        let mut corrupt = store.begin(&hash, 11).unwrap();
        corrupt.write(b"hello w0rld").unwrap();
        let err = corrupt.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("object {hash}: content does not match its hash")
        );
        let mut truncated = store.begin(&hash, 11).unwrap();
        truncated.write(b"hello").unwrap();
        assert!(truncated.finish().is_err());
        let mut abandoned = store.begin(&hash, 11).unwrap();
        abandoned.write(b"hello").unwrap();
        drop(abandoned);
        assert!(!store.contains(&hash));
        assert!(tmp_is_empty(&store));
    }
}
