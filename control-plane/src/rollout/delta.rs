//! What differs between the files of a base release and a new one: what a
//! host that has the base must be sent.

use std::collections::{HashMap, HashSet};

use crate::domain::manifest::{Manifest, ManifestFile};

/// What differs between a base manifest and a new one.
pub struct Delta<'a> {
    /// Entries of the new manifest that are new or differ from the base.
    pub changed: Vec<&'a ManifestFile>,
    /// Paths of the base that the new manifest does not have.
    pub removed: Vec<String>,
}

impl<'a> Delta<'a> {
    /// The difference from `base` to `new`.
    pub fn between(base: &Manifest, new: &'a Manifest) -> Self {
        let old: HashMap<&str, &ManifestFile> =
            base.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let now: HashSet<&str> = new.files.iter().map(|f| f.path.as_str()).collect();
        let changed = new
            .files
            .iter()
            .filter(|f| {
                old.get(f.path.as_str()).is_none_or(|o| {
                    (o.sha256.as_str(), o.mode, o.symlink) != (f.sha256.as_str(), f.mode, f.symlink)
                })
            })
            .collect();
        let removed = base
            .files
            .iter()
            .filter(|f| !now.contains(f.path.as_str()))
            .map(|f| f.path.clone())
            .collect();
        Self { changed, removed }
    }
}
