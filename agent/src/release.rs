//! Releases on disk: materialising `releases/<id>/` from the content store
//! through a staging directory (hard links, or private copies), switching
//! `current` atomically, and reading what is there. Every function here is
//! blocking.

use std::{
    fs, io,
    ops::ControlFlow,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use sha2::Digest;
use slipway_proto::{
    daemon::chain,
    validate::{self, InvalidField},
};

use crate::{
    fsutil::{self, FsError, remove_tree},
    layout::{self, AppRoot},
    manifest::{self, EntryKind, Manifest},
    objects::{KnownObjects, ObjectError, ObjectStore},
    shared::SharedError,
};

/// Releases kept when a request says 0.
pub const DEFAULT_KEEP: usize = 5;

/// A failure while building, switching or pruning releases.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A filesystem call failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What the agent was doing, e.g. "create".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The content store failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A symlink's target (read from the store) is not acceptable.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Objects the manifest needs are not in the store.
    #[error("{count} objects are missing; upload them first")]
    ObjectsMissing {
        /// How many distinct objects are missing.
        count: usize,
    },
    /// Secrets can only be applied again to the current release.
    #[error(
        "release {release_id} is not current on this host (current: {current}); deploy it first"
    )]
    NotCurrent {
        /// The requested release.
        release_id: String,
        /// What `current` points to ("nothing" when absent).
        current: String,
    },
    /// A rollback target is not on disk.
    #[error("release {release_id} is not on this host")]
    NotOnHost {
        /// The requested release.
        release_id: String,
    },
    /// A shared path could not be linked into the release.
    #[error(transparent)]
    Shared(#[from] SharedError),
    /// A build was stopped by its progress callback (a prestaged tree's,
    /// for an operation that needs the app).
    #[error("the build was stopped")]
    Stopped,
    /// `current` exists but is not a symlink, so it cannot be switched
    /// atomically; someone created it by hand.
    #[error("{} is not a symlink; move it away so the agent can manage it", path.display())]
    CurrentNotSymlink {
        /// Path of `current`.
        path: PathBuf,
    },
}

impl From<FsError> for ReleaseError {
    fn from(err: FsError) -> Self {
        ReleaseError::Io {
            action: err.action,
            path: err.path,
            source: err.source,
        }
    }
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReleaseError {
    let path = path.to_owned();
    move |source| ReleaseError::Io {
        action,
        path,
        source,
    }
}

/// Checks what a deploy needs before it starts: every object present (on
/// disk, unless `known` saw it there) and every symlink target acceptable.
pub fn preflight(
    store: &ObjectStore,
    manifest: &Manifest,
    known: &KnownObjects,
) -> Result<(), ReleaseError> {
    let missing = known.missing(store, &manifest.hashes());
    if !missing.is_empty() {
        return Err(ReleaseError::ObjectsMissing {
            count: missing.len(),
        });
    }
    for entry in manifest.entries() {
        if entry.kind == EntryKind::Symlink {
            let target = store.read_small(&entry.sha256, manifest::MAX_SYMLINK_TARGET)?;
            manifest::check_symlink_target(entry, &target)?;
        }
    }
    Ok(())
}

/// How a release is built.
pub struct Build<'a> {
    /// Private writable copies instead of hard links into the store.
    pub copy: bool,
    /// Build a new tree even when the release is on disk, and swap it in
    /// for the old one (a drift repair).
    pub rebuild: bool,
    /// Called after each entry placed with (done, total).
    pub progress: &'a mut dyn FnMut(usize, usize),
    /// Runs on the complete staging tree before it is published (links the
    /// shared paths).
    pub finish: &'a mut dyn FnMut(&Path) -> Result<(), ReleaseError>,
    /// Moves the app's prestaged tree to the staging path given, when one
    /// is ready and worth patching into the manifest given (see
    /// [`worth_patching`]); asked only for a hard-linked tree that is not a
    /// repair.
    pub prestaged: &'a mut dyn FnMut(&Path, &Manifest) -> Option<Prestaged>,
}

/// A tree built ahead of time from a release's manifest, complete and
/// synced, for the next deploy of the app to patch rather than build
/// afresh.
#[derive(Clone, Debug)]
pub struct Prestaged {
    /// The release whose manifest it was built from.
    pub release_id: String,
    /// That manifest.
    pub manifest: Manifest,
}

/// How [`materialise`] placed a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// It was on disk and is kept.
    Kept,
    /// Its tree was built afresh.
    Built,
    /// Its tree was the one prestaged from `from`, patched.
    Patched {
        /// The release the prestaged tree was built from.
        from: String,
        /// What patching changed.
        patch: Patch,
    },
}

impl Placed {
    /// Whether a new tree was made (not kept).
    pub fn is_new(&self) -> bool {
        *self != Placed::Kept
    }
}

/// Builds `releases/<id>/` unless it exists (or, with `rebuild`, builds it
/// again): from a prestaged tree when one is handed over and differs from
/// it little, else afresh.
///
/// The release is assembled in `.slipway/staging/<id>.<deployment_id>`,
/// synced, and only then renamed into `releases/` (or swapped with the
/// copy there): a crash at any point leaves no partial directory there.
pub fn materialise(
    app: &AppRoot,
    store: &ObjectStore,
    release_id: &str,
    deployment_id: &str,
    manifest: &Manifest,
    mut build: Build<'_>,
) -> Result<Placed, ReleaseError> {
    let release = app.release(release_id);
    let existing = release.is_dir();
    if existing && !build.rebuild {
        if !crate::manifests::exists(app, release_id) {
            crate::manifests::save(app, release_id, manifest.wire())?;
        }
        return Ok(Placed::Kept);
    }
    let staging = app.staging().join(staging_name(release_id, deployment_id));
    if fs::symlink_metadata(&staging).is_ok() {
        remove_tree(&staging).map_err(io_err("remove the stale", &staging))?;
    }
    let placed = stage(
        store,
        &staging,
        manifest,
        build.copy || build.rebuild,
        &mut build,
    )
    .and_then(|placed| (build.finish)(&staging).map(|()| placed));
    let placed = match placed {
        Ok(placed) => placed,
        Err(err) => {
            // Best effort: the next start or prune clears what is left.
            let _ = remove_tree(&staging);
            return Err(err);
        }
    };
    crate::manifests::save(app, release_id, manifest.wire())?;
    if existing {
        return replace(app, &staging, &release).map(|()| placed);
    }
    fs::rename(&staging, &release).map_err(io_err("rename the staged release to", &release))?;
    let releases = app.releases();
    fsutil::sync_dir(&releases).map_err(io_err("sync", &releases))?;
    Ok(placed)
}

/// Makes the tree of `manifest` at `staging`: the prestaged tree patched,
/// unless `afresh` or none is worth it; built from nothing otherwise (also
/// when patching fails: the prestaged tree is then lost, not the deploy).
fn stage(
    store: &ObjectStore,
    staging: &Path,
    manifest: &Manifest,
    afresh: bool,
    build: &mut Build<'_>,
) -> Result<Placed, ReleaseError> {
    let mut progress = |done, total| {
        (build.progress)(done, total);
        ControlFlow::Continue(())
    };
    let prestaged = match afresh {
        true => None,
        false => (build.prestaged)(staging, manifest),
    };
    if let Some(prestaged) = prestaged {
        match tree::patch(store, staging, &prestaged.manifest, manifest, &mut progress) {
            Ok(patch) => {
                let from = prestaged.release_id;
                return Ok(Placed::Patched { from, patch });
            }
            Err(err) => {
                tracing::warn!(staging = %staging.display(), error = %chain(&err), "cannot patch the prestaged tree; building afresh");
                remove_tree(staging).map_err(io_err("remove", staging))?;
            }
        }
    }
    tree::build(store, staging, manifest, build.copy, &mut progress)?;
    Ok(Placed::Built)
}

/// Swaps the tree built in `staging` with the release of the same id in one
/// rename(2) (`RENAME_EXCHANGE`): a `current` that points there resolves
/// to the old tree, then to the new one, never to nothing or a partial one.
/// The old tree, now at the staging path, goes to the trash and is removed
/// (what is left of it, the next start clears).
fn replace(app: &AppRoot, staging: &Path, release: &Path) -> Result<(), ReleaseError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, staging, CWD, release, RenameFlags::EXCHANGE)
        .map_err(|err| io_err("swap the rebuilt tree with", release)(err.into()))?;
    let releases = app.releases();
    fsutil::sync_dir(&releases).map_err(io_err("sync", &releases))?;
    let name = staging.file_name().unwrap_or_default().to_string_lossy();
    let trash = app
        .trash()
        .join(format!("{name}.{:016x}", rand::random::<u64>()));
    let removed = fs::rename(staging, &trash).and_then(|()| remove_tree(&trash));
    if let Err(err) = removed {
        tracing::warn!(release = %release.display(), error = %err, "cannot remove the replaced tree");
    }
    Ok(())
}

/// `<release_id>.<deployment_id>`, unless that exceeds NAME_MAX (both ids
/// may be 128 bytes): then the deployment id is shortened to a hash.
fn staging_name(release_id: &str, deployment_id: &str) -> String {
    let name = format!("{release_id}.{deployment_id}");
    if name.len() <= 255 {
        return name;
    }
    let digest = hex::encode(sha2::Sha256::digest(deployment_id.as_bytes()));
    format!("{release_id}.{}", &digest[..16])
}

/// The release `current` points to; None when there is no `current`.
pub fn current_release(app: &AppRoot) -> Result<Option<String>, ReleaseError> {
    let current = app.current();
    match fs::read_link(&current) {
        Ok(target) => Ok(layout::last_component(&target)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::InvalidInput => {
            Err(ReleaseError::CurrentNotSymlink { path: current })
        }
        Err(err) => Err(io_err("read", &current)(err)),
    }
}

/// Points `current` at `releases/<id>` atomically: a new symlink under a
/// temporary name renamed over `current` (rename(2) replaces it in one
/// step), then the root directory is synced so the switch survives a crash.
pub fn switch(app: &AppRoot, release_id: &str) -> Result<(), ReleaseError> {
    let current = app.current();
    match fs::symlink_metadata(&current) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(ReleaseError::CurrentNotSymlink { path: current });
        }
        _ => {}
    }
    if !app.release(release_id).is_dir() {
        return Err(ReleaseError::NotOnHost {
            release_id: release_id.to_owned(),
        });
    }
    let tmp = app
        .root()
        .join(format!(".current.{:016x}", rand::random::<u64>()));
    symlink(AppRoot::current_target(release_id), &tmp)
        .map_err(io_err("create the symlink", &tmp))?;
    if let Err(err) = fs::rename(&tmp, &current) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("replace", &current)(err));
    }
    fsutil::sync_dir(app.root()).map_err(io_err("sync", app.root()))
}

/// Removes `current` (unlink(2) is atomic) and syncs the root: used when a
/// first release fails its checks and there is nothing to switch back to.
pub fn remove_current(app: &AppRoot) -> Result<(), ReleaseError> {
    let current = app.current();
    match fs::symlink_metadata(&current) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(ReleaseError::CurrentNotSymlink { path: current });
        }
        Ok(_) => fs::remove_file(&current).map_err(io_err("remove", &current))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err("read", &current)(err)),
    }
    fsutil::sync_dir(app.root()).map_err(io_err("sync", app.root()))
}

/// Empties `dir` (staging, tmp, trash) if it exists.
pub fn clear_dir(dir: &Path) -> Result<usize, ReleaseError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(io_err("list", dir)(err)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        remove_tree(&path).map_err(io_err("remove", &path))?;
        removed += 1;
    }
    Ok(removed)
}

/// Removes temporary `current` symlinks (`.current.*`) a crash left in the
/// root.
pub fn clear_current_temps(app: &AppRoot) -> Result<usize, ReleaseError> {
    let entries = match fs::read_dir(app.root()) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(io_err("list", app.root())(err)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("list", app.root()))?;
        if entry.file_name().to_string_lossy().starts_with(".current.") {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Release ids under `releases/`, oldest first (ids sort by time).
pub fn list(app: &AppRoot) -> Result<Vec<String>, ReleaseError> {
    let releases = app.releases();
    let entries = match fs::read_dir(&releases) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_err("list", &releases)(err)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", &releases))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        // Anything else in releases/ was not put there by the agent.
        if let (true, Some(id)) = (is_dir, entry.file_name().to_str())
            && validate::release_id("id", id).is_ok()
        {
            ids.push(id.to_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// Total size in bytes of the regular files under `dir`.
pub fn size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                stack.push(entry.path());
            } else if file_type.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

mod tree;
#[cfg(test)]
pub use tree::patch as patch_tree;
pub use tree::{Patch, build as build_tree, worth_patching};

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
