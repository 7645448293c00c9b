//! Copying a whole store into another backend (sled to etcd, or back): the
//! target must hold no record; every tree is copied in batches within the
//! target's operations per transaction and a byte budget under etcd's
//! request size; then both sides are read back and compared, tree by tree,
//! by count and content hash. The store id in [`Tree::Meta`] is copied with
//! the rest, so agents keep the epoch of the control plane's fencing tokens.

mod digest;

pub use digest::{Difference, StoreDigest, TreeDigest, compare, digest};

use super::{Backend, Op, StoreError, Tree};
use slipway_proto::limits::thousands;

/// Operations per batch at most, whatever the target takes.
pub const MAX_BATCH_OPS: usize = 4_096;
/// Bytes of keys and values per batch at most: under etcd's default
/// `--max-request-bytes` (1.5 MiB) with the key prefixes and framing.
pub const MAX_BATCH_BYTES: usize = 1_000_000;
/// Bytes counted per entry besides its key and value: the tree's key
/// prefix on etcd and the request framing.
const ENTRY_OVERHEAD: usize = 96;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds records; nothing was written.
    #[error(
        "the target already holds records (tree {tree} is not empty); migrate into an empty store or another prefix; nothing was written"
    )]
    TargetNotEmpty {
        /// The first tree found not empty.
        tree: &'static str,
    },
    /// Reading or writing a store failed.
    #[error("{action} failed")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The copy does not match its source.
    #[error("the target does not match the source after copying")]
    Mismatch(#[source] Difference),
}

/// What was copied.
#[derive(Clone, Debug)]
pub struct Migrated {
    /// Both sides, as read back.
    pub digest: StoreDigest,
    /// Batches committed to the target.
    pub batches: u64,
}

impl Migrated {
    /// The line the command prints.
    pub fn summary(&self) -> String {
        format!(
            "migrated {} records in {} trees (sha256 {}) — counts and content hash match",
            thousands(self.digest.records()),
            self.digest.trees.len(),
            self.digest.hex()
        )
    }
}

/// Copies every tree of `from` into `to`, which must hold no record, then
/// checks the copy.
pub fn migrate(from: &dyn Backend, to: &dyn Backend) -> Result<Migrated, MigrateError> {
    ensure_empty(to)?;
    let limits = Limits {
        ops: to.max_batch_ops().clamp(1, MAX_BATCH_OPS),
        bytes: MAX_BATCH_BYTES,
    };
    let batches = copy(from, to, limits)?;
    verify(from, to).map(|digest| Migrated { digest, batches })
}

/// Refuses a target with any record in any tree.
pub fn ensure_empty(to: &dyn Backend) -> Result<(), MigrateError> {
    let reading = |source| MigrateError::Store {
        action: "reading the target",
        source,
    };
    for tree in Tree::ALL {
        let empty = to.get(tree, b"").map_err(reading)?.is_none()
            && to
                .scan_after(tree, b"", b"", 1)
                .map_err(reading)?
                .is_empty();
        if !empty {
            return Err(MigrateError::TargetNotEmpty { tree: tree.name() });
        }
    }
    Ok(())
}

/// Reads both stores back and compares them.
pub fn verify(from: &dyn Backend, to: &dyn Backend) -> Result<StoreDigest, MigrateError> {
    let source = digest(from).map_err(|source| MigrateError::Store {
        action: "reading the source back",
        source,
    })?;
    let target = digest(to).map_err(|source| MigrateError::Store {
        action: "reading the target back",
        source,
    })?;
    compare(&source, &target).map_err(MigrateError::Mismatch)?;
    Ok(source)
}

/// How large one batch may grow.
#[derive(Clone, Copy, Debug)]
struct Limits {
    ops: usize,
    bytes: usize,
}

/// Writes every entry of `from` into `to` in batches within `limits`;
/// returns the batches committed.
fn copy(from: &dyn Backend, to: &dyn Backend, limits: Limits) -> Result<u64, MigrateError> {
    let mut batch = Batch::new(to, limits);
    for tree in Tree::ALL {
        digest::for_each_page(from, tree, |page| {
            for (key, value) in page {
                batch.put(tree, key, value)?;
            }
            Ok(())
        })
        .map_err(|source| MigrateError::Store {
            action: "copying",
            source,
        })?;
    }
    batch.flush().map_err(|source| MigrateError::Store {
        action: "copying",
        source,
    })?;
    Ok(batch.committed)
}

/// Puts gathered until the next would pass a limit.
struct Batch<'a> {
    to: &'a dyn Backend,
    limits: Limits,
    ops: Vec<Op>,
    bytes: usize,
    committed: u64,
}

impl<'a> Batch<'a> {
    fn new(to: &'a dyn Backend, limits: Limits) -> Self {
        Self {
            to,
            limits,
            ops: Vec::new(),
            bytes: 0,
            committed: 0,
        }
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let size = key.len() + value.len() + ENTRY_OVERHEAD;
        if !self.ops.is_empty()
            && (self.ops.len() >= self.limits.ops || self.bytes + size > self.limits.bytes)
        {
            self.flush()?;
        }
        self.ops.push(Op::Put(tree, key.to_vec(), value.to_vec()));
        self.bytes += size;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        self.to.commit(&std::mem::take(&mut self.ops))?;
        self.bytes = 0;
        self.committed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
