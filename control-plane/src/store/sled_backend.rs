//! sled 0.34, the embedded default backend: one sled tree per store tree,
//! every batch one multi-tree transaction flushed before it returns.

use std::path::Path;

use super::{Backend, Entries, Op, StoreError, Tree, backend_err};

/// sled 0.34, the embedded default.
pub struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

/// Opening the data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sled reported corruption.
    #[error(
        "the store in {path} is corrupt; restore the directory from a backup, or move it aside to start empty"
    )]
    Corrupt {
        /// Data directory.
        path: String,
        /// The cause.
        #[source]
        source: sled::Error,
    },
    /// Anything else, most often another process holding the directory.
    #[error("cannot open the store in {path} (is another control plane using it?)")]
    Io {
        /// Data directory.
        path: String,
        /// The cause.
        #[source]
        source: sled::Error,
    },
}

impl SledBackend {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, OpenError> {
        let path = dir.display().to_string();
        let classify = |source: sled::Error| match source {
            sled::Error::Corruption { .. } => OpenError::Corrupt {
                path: path.clone(),
                source,
            },
            source => OpenError::Io {
                path: path.clone(),
                source,
            },
        };
        private(dir).map_err(|source| OpenError::Io {
            path: path.clone(),
            source: sled::Error::Io(source),
        })?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        let db = open_when_free(&config).map_err(classify)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        // The files sled made with the process's umask: owner only too.
        let _ = restrict(dir);
        Ok(Self { db, trees })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }
}

/// Creates `dir` if needed and makes it the owner's only (0700): the store
/// holds the audit trail, join tokens and every deployment record.
fn private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Directories 0700 and files 0600 under `dir`.
fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            restrict(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

fn pairs(
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
) -> Result<Entries, StoreError> {
    iter.map(|r| {
        r.map(|(k, v)| (k.to_vec(), v.to_vec()))
            .map_err(backend_err)
    })
    .collect()
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(backend_err)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        pairs(self.tree(tree).scan_prefix(prefix))
    }

    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        use std::ops::Bound;
        let range = self
            .tree(tree)
            .range::<&[u8], _>((Bound::Excluded(after), Bound::Unbounded))
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit);
        pairs(range)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        use sled::{
            Transactional,
            transaction::{ConflictableTransactionError, TransactionError},
        };
        // Only the transactional handles are used inside the closure: a plain
        // tree or db call there deadlocks. The closure may re-run on conflict,
        // so it has no side effects.
        let result = self.trees.as_slice().transaction(|trees| {
            for op in ops {
                match op {
                    Op::Put(tree, key, value) => {
                        trees[tree.index()].insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Create(tree, key, value) => {
                        let t = &trees[tree.index()];
                        if t.get(key.as_slice())?.is_some() {
                            return Err(ConflictableTransactionError::Abort(Abort::exists(
                                *tree, key,
                            )));
                        }
                        t.insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::DeleteIf(tree, key, expected) => {
                        let t = &trees[tree.index()];
                        if t.get(key.as_slice())?.as_deref() == Some(expected.as_slice()) {
                            t.remove(key.as_slice())?;
                        }
                    }
                    Op::Delete(tree, key) => {
                        trees[tree.index()].remove(key.as_slice())?;
                    }
                    Op::Expect(tree, key, expected) => {
                        let found = trees[tree.index()].get(key.as_slice())?;
                        if found.as_deref() != expected.as_deref() {
                            return Err(ConflictableTransactionError::Abort(Abort::conflict(
                                *tree, key,
                            )));
                        }
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(abort)) => return Err(abort.into_error()),
            Err(TransactionError::Storage(err)) => return Err(backend_err(err)),
        }
        // Durable before anyone is told.
        self.db.flush().map_err(backend_err)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }

    fn scan_rev(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        use std::ops::Bound;
        let end = super::prefix_end(prefix);
        let upper = match (before, end.as_deref()) {
            (Some(before), Some(end)) => Bound::Excluded(before.min(end)),
            (Some(bound), None) | (None, Some(bound)) => Bound::Excluded(bound),
            (None, None) => Bound::Unbounded,
        };
        let range = self
            .tree(tree)
            .range::<&[u8], _>((Bound::Included(prefix), upper))
            .rev()
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit);
        pairs(range)
    }
}

/// How long opening waits for the directory's lock: a store just closed
/// (a restart in the same process, a previous process exiting) is let go
/// of by sled's background threads a moment after its last handle drops.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the store, waiting up to [`LOCK_WAIT`] while another handle still
/// holds its lock.
fn open_when_free(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            // sled reports a held lock only as text in an `Other` I/O error.
            Err(sled::Error::Io(err))
                if err.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// Why a transaction gave up, carried out of sled's closure.
enum Abort {
    Exists(Tree, String),
    Conflict(Tree, String),
}

impl Abort {
    fn exists(tree: Tree, key: &[u8]) -> Self {
        Abort::Exists(tree, String::from_utf8_lossy(key).into_owned())
    }

    fn conflict(tree: Tree, key: &[u8]) -> Self {
        Abort::Conflict(tree, String::from_utf8_lossy(key).into_owned())
    }

    fn into_error(self) -> StoreError {
        match self {
            Abort::Exists(tree, key) => StoreError::Exists { tree, key },
            Abort::Conflict(tree, key) => StoreError::Conflict { tree, key },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_store_is_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("store");
        let backend = SledBackend::open(&data, 1 << 20).unwrap();
        drop(backend);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
}
