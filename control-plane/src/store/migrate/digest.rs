//! What a store holds, in a form two stores can be compared by: the number
//! of records of every tree and a SHA-256 over (tree name, key, value) in
//! key order, per tree and over the whole store. Trees are read in pages,
//! so memory stays bounded whatever the store holds.

use sha2::{Digest as _, Sha256};

use super::super::{Backend, Entries, StoreError, Tree};

/// Entries read at once.
const PAGE: usize = 1_000;

/// One tree's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeDigest {
    /// The tree.
    pub tree: Tree,
    /// Its records.
    pub count: u64,
    /// SHA-256 over its (tree name, key, value) triples in key order.
    pub sha256: [u8; 32],
}

/// A whole store's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDigest {
    /// Every tree, in [`Tree::ALL`] order.
    pub trees: Vec<TreeDigest>,
    /// SHA-256 over every tree's triples, the trees in [`Tree::ALL`] order.
    pub sha256: [u8; 32],
}

impl StoreDigest {
    /// Records in every tree.
    pub fn records(&self) -> u64 {
        self.trees.iter().map(|t| t.count).sum()
    }

    /// The whole store's hash as hex.
    pub fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// How the target differs from the source, tree by tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Difference {
    /// A tree holds another number of records.
    #[error(
        "tree {tree} differs: {source_count} records in the source, {target_count} in the target"
    )]
    Count {
        /// The tree's name.
        tree: &'static str,
        /// Records in the source.
        source_count: u64,
        /// Records in the target.
        target_count: u64,
    },
    /// A tree holds as many records, with other keys or values.
    #[error("tree {tree} differs: {count} records on both sides but their content hashes differ")]
    Content {
        /// The tree's name.
        tree: &'static str,
        /// Records on each side.
        count: u64,
    },
}

/// Reads every tree of `backend` and hashes it.
pub fn digest(backend: &dyn Backend) -> Result<StoreDigest, StoreError> {
    let mut whole = Sha256::new();
    let mut trees = Vec::with_capacity(Tree::ALL.len());
    for tree in Tree::ALL {
        let mut one = Sha256::new();
        let mut count = 0;
        for_each_page(backend, tree, |page| {
            for (key, value) in page {
                feed(&mut one, tree, key, value);
                feed(&mut whole, tree, key, value);
                count += 1;
            }
            Ok(())
        })?;
        trees.push(TreeDigest {
            tree,
            count,
            sha256: one.finalize().into(),
        });
    }
    Ok(StoreDigest {
        trees,
        sha256: whole.finalize().into(),
    })
}

/// The first tree where `target` differs from `source`, if any.
pub fn compare(source: &StoreDigest, target: &StoreDigest) -> Result<(), Difference> {
    for (s, t) in source.trees.iter().zip(&target.trees) {
        if s.count != t.count {
            return Err(Difference::Count {
                tree: s.tree.name(),
                source_count: s.count,
                target_count: t.count,
            });
        }
        if s.sha256 != t.sha256 {
            return Err(Difference::Content {
                tree: s.tree.name(),
                count: s.count,
            });
        }
    }
    Ok(())
}

/// Calls `each` with every entry of `tree` in key order, a page at a time.
pub(super) fn for_each_page(
    backend: &dyn Backend,
    tree: Tree,
    mut each: impl FnMut(&Entries) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // `scan_after` starts after a key, so the empty key is asked for alone.
    if let Some(value) = backend.get(tree, b"")? {
        each(&vec![(Vec::new(), value)])?;
    }
    let mut after = Vec::new();
    loop {
        let page = backend.scan_after(tree, b"", &after, PAGE)?;
        if page.is_empty() {
            return Ok(());
        }
        each(&page)?;
        if page.len() < PAGE {
            return Ok(());
        }
        after = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
    }
}

/// One triple, each part length-prefixed so no two triples hash alike.
fn feed(hasher: &mut Sha256, tree: Tree, key: &[u8], value: &[u8]) {
    for part in [tree.name().as_bytes(), key, value] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
}
