//! A release's tree in a staging directory: built from nothing, or patched
//! from a tree built earlier from another manifest (a prestaged one, see
//! `crate::prestage`) so that only what differs is touched. Either way
//! every entry is made relative to the open staging directory and linked
//! from the open objects directory, so the kernel resolves a few path
//! components per file rather than both whole paths from `/`; and every
//! directory the tree's durability depends on is synced before it returns.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    io::{self, Write},
    ops::ControlFlow,
    os::{fd::OwnedFd, unix::fs::PermissionsExt},
    path::Path,
};

use rustix::fs::{self as at, AtFlags, Mode, OFlags};

use super::{ReleaseError, io_err};
use crate::{
    manifest::{self, Entry, EntryKind, Manifest},
    objects::ObjectStore,
};

/// Modes of files in copy mode: private and writable.
const COPY_MODE: u32 = 0o644;
const COPY_EXECUTABLE_MODE: u32 = 0o755;
/// Mode of every directory of a release.
const DIR_MODE: u32 = 0o755;
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Called after each entry placed with (done, total); `Break` stops the
/// build with [`ReleaseError::Stopped`].
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> ControlFlow<()>;

/// What patching a tree changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    /// Entries placed: new, or different from the old tree's.
    pub placed: usize,
    /// Entries and directories removed.
    pub removed: usize,
}

/// Whether patching a tree of `from` into `to` is worth it: it touches at
/// most half as many entries as building `to` afresh would. (What patching
/// places and removes is what each side has beyond the entries they share.)
pub fn worth_patching(from: &Manifest, to: &Manifest) -> bool {
    let old: HashMap<&str, &Entry> = from.entries().iter().map(|e| (&*e.path, e)).collect();
    let shared = (to.entries().iter())
        .filter(|e| old.get(&*e.path).is_some_and(|o| same(o, e)))
        .count();
    2 * (to.len() - shared + from.len() - shared) <= to.len()
}

/// Whether an entry stays as it is: same path (the caller's), kind and
/// content.
fn same(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind && a.sha256 == b.sha256
}

/// Creates the tree of `manifest` at `staging` (which must not exist):
/// directories, hard links (or copies) and symlinks, then syncs every
/// directory so a rename publishes durable content.
pub fn build(
    store: &ObjectStore,
    staging: &Path,
    manifest: &Manifest,
    copy: bool,
    progress: Progress<'_>,
) -> Result<(), ReleaseError> {
    fs::create_dir(staging).map_err(io_err("create", staging))?;
    fs::set_permissions(staging, fs::Permissions::from_mode(DIR_MODE))
        .map_err(io_err("set the mode of", staging))?;
    let entries: Vec<&Entry> = manifest.entries().iter().collect();
    let tree = Tree::open(store, staging, copy, &entries)?;
    let dirs = manifest.dirs();
    for dir in &dirs {
        tree.mkdir(dir)?;
    }
    let total = entries.len();
    for (done, entry) in entries.into_iter().enumerate() {
        tree.place(entry)?;
        if progress(done + 1, total).is_break() {
            return Err(ReleaseError::Stopped);
        }
    }
    for dir in dirs.iter().rev() {
        tree.sync(dir)?;
    }
    tree.sync("")
}

/// Turns the tree of `from` at `staging`, built by [`build`] and synced,
/// into the tree of `to`: removes what `to` lacks or has otherwise, makes
/// the directories it adds and places its new or changed entries, then
/// syncs each directory whose entries changed.
pub fn patch(
    store: &ObjectStore,
    staging: &Path,
    from: &Manifest,
    to: &Manifest,
    progress: Progress<'_>,
) -> Result<Patch, ReleaseError> {
    let diff = Diff::new(from, to);
    let tree = Tree::open(store, staging, false, &diff.place)?;
    let mut touched = BTreeSet::new();
    for entry in &diff.remove {
        tree.remove(&entry.path, AtFlags::empty())?;
        touched.insert(parent(&entry.path));
    }
    let (old_dirs, new_dirs) = (from.dirs(), to.dirs());
    let gone: Vec<&str> = old_dirs.difference(&new_dirs).copied().collect();
    // Deepest first: their entries are gone, so each is empty by now.
    for dir in gone.iter().rev() {
        tree.remove(dir, AtFlags::REMOVEDIR)?;
        touched.insert(parent(dir));
    }
    for dir in new_dirs.difference(&old_dirs) {
        tree.mkdir(dir)?;
        touched.extend([parent(dir), *dir]);
    }
    let total = diff.place.len();
    for (done, entry) in diff.place.iter().enumerate() {
        tree.place(entry)?;
        touched.insert(parent(&entry.path));
        if progress(done + 1, total).is_break() {
            return Err(ReleaseError::Stopped);
        }
    }
    // A directory removed since is not synced: its parent is.
    for dir in touched
        .iter()
        .rev()
        .filter(|d| d.is_empty() || new_dirs.contains(*d))
    {
        tree.sync(dir)?;
    }
    let removed = diff.remove.len() + gone.len();
    Ok(Patch {
        placed: total,
        removed,
    })
}

/// The entries of `from` to remove and those of `to` to place: an entry
/// that is the same in both (path, kind and content) stays.
struct Diff<'a> {
    remove: Vec<&'a Entry>,
    place: Vec<&'a Entry>,
}

impl<'a> Diff<'a> {
    fn new(from: &'a Manifest, to: &'a Manifest) -> Self {
        let old: HashMap<&str, &Entry> = from.entries().iter().map(|e| (&*e.path, e)).collect();
        let new: HashMap<&str, &Entry> = to.entries().iter().map(|e| (&*e.path, e)).collect();
        let remove = (from.entries().iter())
            .filter(|e| !new.get(&*e.path).is_some_and(|n| same(e, n)))
            .collect();
        let place = (to.entries().iter())
            .filter(|e| !old.get(&*e.path).is_some_and(|o| same(e, o)))
            .collect();
        Self { remove, place }
    }
}

/// The directory holding `path` ("" for the tree's root).
fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |cut| &path[..cut])
}

/// A staging tree open for `*at` calls.
struct Tree<'a> {
    store: &'a ObjectStore,
    staging: &'a Path,
    root: OwnedFd,
    /// Open when an entry to place is a hard link.
    objects: Option<OwnedFd>,
    copy: bool,
}

impl<'a> Tree<'a> {
    fn open(
        store: &'a ObjectStore,
        staging: &'a Path,
        copy: bool,
        to_place: &[&Entry],
    ) -> Result<Self, ReleaseError> {
        let root = at::open(staging, DIR_FLAGS, Mode::empty())
            .map_err(|e| io_err("open", staging)(e.into()))?;
        let links = !copy && (to_place.iter()).any(|e| matches!(e.kind, EntryKind::File { .. }));
        let objects = match links {
            true => Some(store.open_dir().map_err(io_err("open", store.dir()))?),
            false => None,
        };
        Ok(Self {
            store,
            staging,
            root,
            objects,
            copy,
        })
    }

    fn mkdir(&self, dir: &str) -> Result<(), ReleaseError> {
        let mode = Mode::from_raw_mode(DIR_MODE);
        at::mkdirat(&self.root, dir, mode).map_err(self.err("create", dir))?;
        // The mode the umask may have narrowed.
        at::chmodat(&self.root, dir, mode, AtFlags::empty())
            .map_err(self.err("set the mode of", dir))
    }

    fn remove(&self, path: &str, flags: AtFlags) -> Result<(), ReleaseError> {
        at::unlinkat(&self.root, path, flags).map_err(self.err("remove", path))
    }

    /// Syncs directory `dir` of the tree ("" for its root).
    fn sync(&self, dir: &str) -> Result<(), ReleaseError> {
        let synced = match dir {
            "" => at::fsync(&self.root),
            dir => {
                at::openat(&self.root, dir, DIR_FLAGS, Mode::empty()).and_then(|fd| at::fsync(&fd))
            }
        };
        synced.map_err(self.err("sync", dir))
    }

    fn place(&self, entry: &Entry) -> Result<(), ReleaseError> {
        match entry.kind {
            EntryKind::File { executable } if self.copy => {
                let mode = match executable {
                    true => COPY_EXECUTABLE_MODE,
                    false => COPY_MODE,
                };
                let dest = self.staging.join(&entry.path);
                copy_object(&self.store.path(&entry.sha256, false), &dest, mode)
            }
            EntryKind::File { executable } => {
                if executable {
                    self.store.executable(&entry.sha256)?;
                }
                let objects = self.objects.as_ref().expect("opened for a tree with links");
                let source = ObjectStore::relative(&entry.sha256, executable);
                let linked = at::linkat(
                    objects,
                    source.as_str(),
                    &self.root,
                    entry.path.as_str(),
                    AtFlags::empty(),
                );
                match linked {
                    Ok(()) => Ok(()),
                    Err(err) => link_failed(
                        err.into(),
                        &self.store.path(&entry.sha256, executable),
                        &self.staging.join(&entry.path),
                    ),
                }
            }
            EntryKind::Symlink => {
                // Checked in preflight too; checked again because this is
                // the moment the link is made.
                let target =
                    (self.store).read_small(&entry.sha256, manifest::MAX_SYMLINK_TARGET)?;
                let target = manifest::check_symlink_target(entry, &target)?;
                at::symlinkat(target.as_str(), &self.root, entry.path.as_str())
                    .map_err(self.err("create the symlink", &entry.path))
            }
        }
    }

    /// The error of an `*at` call on `path` within the tree.
    fn err<'p>(
        &'p self,
        action: &'static str,
        path: &'p str,
    ) -> impl FnOnce(rustix::io::Errno) -> ReleaseError + 'p {
        move |errno| io_err(action, &self.staging.join(path))(errno.into())
    }
}

/// A hard link into a release that failed: when the object has reached the
/// filesystem's link limit (ext4: 65,000), a copy instead.
fn link_failed(err: io::Error, source: &Path, dest: &Path) -> Result<(), ReleaseError> {
    if err.kind() != io::ErrorKind::TooManyLinks {
        return Err(io_err("link an object to", dest)(err));
    }
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

/// Copies a store object into a release with `mode`, its data synced so
/// the release is complete on disk before it is published.
fn copy_object(source: &Path, dest: &Path, mode: u32) -> Result<(), ReleaseError> {
    let copy = || -> io::Result<()> {
        let mut out = fs::File::create_new(dest)?;
        io::copy(&mut fs::File::open(source)?, &mut out)?;
        out.set_permissions(fs::Permissions::from_mode(mode))?;
        out.sync_all()
    };
    copy().map_err(io_err("copy an object to", dest))
}
