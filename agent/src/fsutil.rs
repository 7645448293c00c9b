//! Filesystem helpers for every module that writes under an app root or the
//! data dir: durable directory creation and syncs, removing a tree the app
//! made read-only, hashing a file as it streams, and a failed call with its
//! action and path. Imports nothing of the crate, so any module can use it.
//! Blocking.

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// What [`hash_file`] reads at once: memory stays this whatever the size.
const HASH_BUFFER: usize = 64 << 10;

/// A filesystem call that failed: what the agent was doing, and where.
/// Modules with their own `Io` variant convert it (`ReleaseError::Io`).
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct FsError {
    /// What the agent was doing, e.g. "create".
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Adds `action` and `path` to an I/O error: `.map_err(io_err("create", dir))`.
pub fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
    let path = path.to_owned();
    move |source| FsError {
        action,
        path,
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0755 unless it exists, then
/// syncs its parent so the new entry survives a crash.
pub fn create_dir_synced(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_synced(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another request created it meanwhile.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(err) => return Err(err),
    }
    // Explicit mode: the process umask must not decide who can read releases.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates `dir` like [`create_dir_synced`] but private to the agent's user
/// (0700), and tightens an existing one made by an older agent: the agent's
/// state (journals, the content store, its data dir) is nobody else's.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_dir_synced(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates a new file readable and writable by the agent's user only (0600),
/// whatever the umask.
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// fsyncs a directory so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Batches of more new files than this are made durable by one
/// [`sync_filesystem`] instead of a sync per file.
pub const SYNC_EACH_UP_TO: usize = 32;

/// fsyncs every file or directory of `paths`, all at once from a few
/// threads: fsyncs in flight together wait for one journal commit, where
/// one after another each waits for its own. The first failure is returned,
/// with its path, after every sync has ended.
pub fn sync_together(paths: &[&Path]) -> Result<(), FsError> {
    /// Threads a batch uses at most.
    const THREADS: usize = 8;
    let sync = |path: &Path| {
        (fs::File::open(path))
            .and_then(|file| file.sync_all())
            .map_err(io_err("sync", path))
    };
    if paths.len() <= 1 {
        return paths.iter().try_for_each(|path| sync(path));
    }
    let per_thread = paths.len().div_ceil(THREADS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (paths.chunks(per_thread))
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|path| sync(path))))
            .collect();
        let mut first = Ok(());
        for thread in threads {
            let panicked = |_| Err(io_err("sync", Path::new(""))(io::Error::other("panicked")));
            first = first.and(thread.join().unwrap_or_else(panicked));
        }
        first
    })
}

/// `syncfs(2)` on the filesystem holding `path`: every dirty file, directory
/// and rename on it reaches the disk, in one journal commit instead of one
/// per `fsync`. It also flushes whatever else is dirty on that filesystem,
/// so it pays off only for many entries at once.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = fs::File::open(path)?;
    rustix::fs::syncfs(&dir).map_err(io::Error::from)
}

/// The lowercase hex SHA-256 of the regular file at `path` and its size,
/// read in fixed-size pieces. A symlink is not followed and a FIFO does not
/// block the reader: both fail to open.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; HASH_BUFFER];
    let mut size = 0;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Removes a file or a directory tree, first making directories writable
/// when the app made one read-only.
pub fn remove_tree(path: &Path) -> io::Result<()> {
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
mod tests {
    use super::*;

    #[test]
    fn syncs_together_and_names_what_could_not_be_synced() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..20).map(|i| dir.path().join(format!("f{i}"))).collect();
        for file in &files {
            fs::write(file, b"x").unwrap();
        }
        let mut paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        paths.push(dir.path());
        sync_together(&paths).unwrap();

        let gone = dir.path().join("gone");
        paths.insert(7, &gone);
        let err = sync_together(&paths).unwrap_err();
        assert_eq!((err.action, err.path.as_path()), ("sync", gone.as_path()));
        assert!(sync_together(&[]).is_ok());
    }
}
