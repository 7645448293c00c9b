//! Releases on disk: materialising `releases/<id>/` from the content store
//! through a staging directory, switching `current` atomically, pruning, and
//! reading what is there. Every function here is blocking.

use std::{
    collections::HashSet,
    fs,
    io::{self, Write},
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use sha2::Digest;
use slipway_proto::validate::{self, InvalidField};

use crate::{
    layout::{self, AppRoot},
    manifest::{self, EntryKind, Manifest},
    objects::{ObjectError, ObjectStore},
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
    /// A rollback target is not on disk.
    #[error("release {release_id} is not on this host")]
    NotOnHost {
        /// The requested release.
        release_id: String,
    },
    /// `current` exists but is not a symlink, so it cannot be switched
    /// atomically; someone created it by hand.
    #[error("{} is not a symlink; move it away so the agent can manage it", path.display())]
    CurrentNotSymlink {
        /// Path of `current`.
        path: PathBuf,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReleaseError {
    let path = path.to_owned();
    move |source| ReleaseError::Io {
        action,
        path,
        source,
    }
}

/// Checks what a deploy needs before it starts: every object present and
/// every symlink target acceptable.
pub fn preflight(store: &ObjectStore, manifest: &Manifest) -> Result<(), ReleaseError> {
    let missing = store.missing(&manifest.hashes());
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

/// Builds `releases/<id>/` unless it exists. Returns false when it was
/// already there. `progress(done, total)` is called after each entry.
///
/// The release is assembled in `.slipway/staging/<id>.<deployment_id>`,
/// synced, and only then renamed into `releases/`: a crash at any point
/// leaves no partial directory there.
pub fn materialise(
    app: &AppRoot,
    store: &ObjectStore,
    release_id: &str,
    deployment_id: &str,
    manifest: &Manifest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<bool, ReleaseError> {
    let release = app.release(release_id);
    if release.is_dir() {
        return Ok(false);
    }
    let staging = app.staging().join(staging_name(release_id, deployment_id));
    if fs::symlink_metadata(&staging).is_ok() {
        remove_tree(&staging).map_err(io_err("remove the stale", &staging))?;
    }
    if let Err(err) = build(store, &staging, manifest, progress) {
        // Best effort: prune clears what is left if this fails too.
        let _ = remove_tree(&staging);
        return Err(err);
    }
    fs::rename(&staging, &release).map_err(io_err("rename the staged release to", &release))?;
    let releases = app.releases();
    layout::sync_dir(&releases).map_err(io_err("sync", &releases))?;
    Ok(true)
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

/// Creates the staging tree: directories, hard links and symlinks, then
/// syncs every directory so the rename publishes durable content.
fn build(
    store: &ObjectStore,
    staging: &Path,
    manifest: &Manifest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(), ReleaseError> {
    let mut dirs = vec![staging.to_owned()];
    dirs.extend(manifest.dirs().into_iter().map(|d| staging.join(d)));
    for dir in &dirs {
        fs::create_dir(dir).map_err(io_err("create", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(io_err("set the mode of", dir))?;
    }
    let total = manifest.len();
    for (done, entry) in manifest.entries().iter().enumerate() {
        let dest = staging.join(&entry.path);
        match entry.kind {
            EntryKind::File { executable } => {
                let source = if executable {
                    store.executable(&entry.sha256)?
                } else {
                    store.path(&entry.sha256, false)
                };
                link_object(&source, &dest)?;
            }
            EntryKind::Symlink => {
                // Checked in preflight too; checked again because this is
                // the moment the link is made.
                let target = store.read_small(&entry.sha256, manifest::MAX_SYMLINK_TARGET)?;
                let target = manifest::check_symlink_target(entry, &target)?;
                symlink(&target, &dest).map_err(io_err("create the symlink", &dest))?;
            }
        }
        progress(done + 1, total);
    }
    for dir in dirs.iter().rev() {
        layout::sync_dir(dir).map_err(io_err("sync", dir))?;
    }
    Ok(())
}

/// Hard-links a store object into a release. Falls back to a copy when the
/// object has reached the filesystem's link limit (ext4: 65,000).
fn link_object(source: &Path, dest: &Path) -> Result<(), ReleaseError> {
    match fs::hard_link(source, dest) {
        Err(err) if err.kind() == io::ErrorKind::TooManyLinks => {
            let copy = || -> io::Result<()> {
                let mode = fs::metadata(source)?.permissions();
                let mut out = fs::File::create_new(dest)?;
                io::copy(&mut fs::File::open(source)?, &mut out)?;
                out.flush()?;
                out.sync_all()?;
                fs::set_permissions(dest, mode)
            };
            copy().map_err(io_err("copy an object to", dest))
        }
        other => other.map_err(io_err("link an object to", dest)),
    }
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
    layout::sync_dir(app.root()).map_err(io_err("sync", app.root()))
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

/// Removes releases beyond the newest `keep`, never one in `protect`
/// (current and previous). Each is first renamed into the trash, so
/// `releases/` never holds a half-deleted release. Also clears leftovers of
/// interrupted operations; the caller holds the app's operation lock.
/// Returns the removed ids.
pub fn prune(app: &AppRoot, keep: usize, protect: &[&str]) -> Result<Vec<String>, ReleaseError> {
    let ids = list(app)?;
    let newest: HashSet<&str> = ids.iter().rev().take(keep).map(String::as_str).collect();
    let doomed: Vec<String> = ids
        .iter()
        .filter(|id| !newest.contains(id.as_str()) && !protect.contains(&id.as_str()))
        .cloned()
        .collect();
    let trash = app.trash();
    for id in &doomed {
        let to = trash.join(format!("{id}.{:016x}", rand::random::<u64>()));
        fs::rename(app.release(id), &to).map_err(io_err("move to the trash", &app.release(id)))?;
    }
    if !doomed.is_empty() {
        let releases = app.releases();
        layout::sync_dir(&releases).map_err(io_err("sync", &releases))?;
    }
    for dir in [trash, app.staging()] {
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = entry.map_err(io_err("list", &dir))?.path();
            remove_tree(&path).map_err(io_err("remove", &path))?;
        }
    }
    for entry in fs::read_dir(app.root()).map_err(io_err("list", app.root()))? {
        let entry = entry.map_err(io_err("list", app.root()))?;
        if entry.file_name().to_string_lossy().starts_with(".current.") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(doomed)
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

/// Removes a file or a directory tree, first making directories writable
/// when the app made one read-only.
fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            let mut stack = vec![path.to_owned()];
            while let Some(dir) = stack.pop() {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                for entry in fs::read_dir(&dir)? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        stack.push(entry.path());
                    }
                }
            }
            fs::remove_dir_all(path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
