//! Blob contents read from git in chunks, never held whole when large.
//!
//! libgit2 streams loose objects (`git_odb_open_rstream`), but not packed
//! ones: it inflates a packed object whole. A packed blob larger than
//! [`IN_MEMORY`] is therefore read through `git cat-file blob`, whose output
//! streams through a pipe, so its size costs the control plane one chunk
//! (git itself streams undeltified pack entries, which large files are).
//! Without a `git` executable it falls back to libgit2 and says so in the
//! log. Everything here blocks.

use std::{
    io::Read,
    process::{Command, Stdio},
};

use git2::{Oid, Repository};
use sha2::{Digest, Sha256};

use crate::git_error::GitError;

/// Blobs up to this many bytes may be read whole.
pub const IN_MEMORY: u64 = 4 << 20;

/// Calls `each` with consecutive chunks of at most `chunk` bytes of blob
/// `oid`, until the content ends or `each` returns false. Returns the bytes
/// passed on.
pub fn for_each_chunk(
    repo: &Repository,
    oid: Oid,
    chunk: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<u64, GitError> {
    let odb = repo.odb()?;
    // Loose objects stream; packed ones fail here and are read below.
    if let Ok((reader, _, _)) = odb.reader(oid) {
        return pump(reader, chunk, each).map_err(|e| read_error(oid, e));
    }
    let (size, _) = odb.read_header(oid)?;
    if size as u64 > IN_MEMORY {
        match git_cat_file(repo, oid) {
            Ok(mut child) => {
                let stdout = child.stdout.take().expect("piped stdout");
                let mut stopped = false;
                let pumped = pump(stdout, chunk, |part| {
                    stopped = !each(part);
                    !stopped
                });
                // Stopped early: the rest is not wanted.
                let _ = child.kill();
                let status = child.wait().map_err(|e| read_error(oid, e))?;
                let sent = pumped.map_err(|e| read_error(oid, e))?;
                if status.success() || stopped {
                    return Ok(sent);
                }
                if sent > 0 {
                    let failed = std::io::Error::other(format!("git cat-file: {status}"));
                    return Err(read_error(oid, failed));
                }
                tracing::warn!(%oid, %status, "git cat-file failed; reading the blob with libgit2");
            }
            Err(err) => {
                tracing::warn!(%oid, error = %err, "no git executable; reading a large packed blob whole");
            }
        }
    }
    let object = odb.read(oid)?;
    let mut sent = 0;
    for part in object.data().chunks(chunk.max(1)) {
        sent += part.len() as u64;
        if !each(part) {
            break;
        }
    }
    Ok(sent)
}

/// The SHA-256 (lowercase hex) and size of blob `oid`, read in chunks.
pub fn sha256(repo: &Repository, oid: Oid) -> Result<(String, u64), GitError> {
    let mut hasher = Sha256::new();
    let size = for_each_chunk(repo, oid, 1 << 20, |part| {
        hasher.update(part);
        true
    })?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn git_cat_file(repo: &Repository, oid: Oid) -> std::io::Result<std::process::Child> {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo.path())
        .args(["cat-file", "blob", &oid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

fn pump(
    mut from: impl Read,
    chunk: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<u64> {
    let mut buf = vec![0; chunk.max(1)];
    let mut sent = 0;
    loop {
        // Fill a whole chunk (a pipe returns less) so chunks are full-sized.
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return Ok(sent);
        }
        sent += filled as u64;
        if !each(&buf[..filled]) || filled < buf.len() {
            return Ok(sent);
        }
    }
}

fn read_error(oid: Oid, err: std::io::Error) -> GitError {
    GitError::Stream {
        blob: oid.to_string(),
        source: err,
    }
}
