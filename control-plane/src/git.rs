//! Releases cut from git with git2: resolving a ref, building the manifest from
//! the object database without a checkout, and the changes against the previous
//! release. Everything here blocks; callers run it in `spawn_blocking`.

use std::{collections::HashMap, path::PathBuf};

use git2::{Delta, DiffFindOptions, ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use slipway_proto::{
    control::v1::{ChangeKind, FileChange},
    limits,
};

use crate::{
    domain::manifest::{Manifest, ManifestFile},
    git_blob,
};

pub use crate::git_error::GitError;

/// A resolved commit.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    /// Full sha.
    pub sha: String,
    /// First line of the message.
    pub message: String,
    /// "Name <email>".
    pub author: String,
}

/// The repository path behind a local path or file:// URL.
pub fn local_path(source: &str) -> Result<PathBuf, GitError> {
    if let Some(path) = source.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if source.contains("://") || source.is_empty() {
        return Err(GitError::UnsupportedSource(source.to_owned()));
    }
    Ok(PathBuf::from(source))
}

/// Opens the repository of an app.
pub fn open(source: &str) -> Result<Repository, GitError> {
    let path = local_path(source)?;
    Repository::open(&path).map_err(|source| GitError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Resolves `git_ref` (empty: HEAD) to a commit.
pub fn resolve(repo: &Repository, git_ref: &str) -> Result<CommitInfo, GitError> {
    let spec = if git_ref.is_empty() { "HEAD" } else { git_ref };
    let unknown = || GitError::UnknownRef {
        git_ref: spec.to_owned(),
        path: repo.path().display().to_string(),
    };
    let commit = repo
        .revparse_single(spec)
        .and_then(|obj| obj.peel_to_commit())
        .map_err(|_| unknown())?;
    let author = commit.author();
    let name = String::from_utf8_lossy(author.name_bytes()).into_owned();
    let email = String::from_utf8_lossy(author.email_bytes()).into_owned();
    let message = String::from_utf8_lossy(commit.message_bytes())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(CommitInfo {
        sha: commit.id().to_string(),
        message,
        author: format!("{name} <{email}>"),
    })
}

/// Builds the manifest of `commit` from the object database, refusing what
/// no agent would accept: a submodule, a name that is not UTF-8 or not a
/// clean relative path, a symlink leaving the release, a file larger than
/// `max_file_bytes`. Hashes and sizes known from `previous` (by blob id)
/// are reused, so an incremental release reads only the blobs that changed;
/// those are read in chunks ([`git_blob`]).
pub fn manifest(
    repo: &Repository,
    commit: &str,
    previous: Option<&Manifest>,
    max_file_bytes: u64,
) -> Result<Manifest, GitError> {
    let known: HashMap<&str, (&str, u64)> = previous
        .map(|m| {
            m.files
                .iter()
                .map(|f| (f.blob.as_str(), (f.sha256.as_str(), f.size)))
                .collect()
        })
        .unwrap_or_default();
    let tree = repo.find_commit(Oid::from_str(commit)?)?.tree()?;
    let unreleasable = |reason: String| GitError::Unreleasable {
        commit: commit.to_owned(),
        reason,
    };
    let entries = tree_entries(&tree)?.map_err(unreleasable)?;
    let odb = repo.odb()?;
    let mut files = Vec::with_capacity(entries.len());
    for (path, oid, filemode) in entries {
        let blob = oid.to_string();
        let seen = known.get(blob.as_str());
        let size = match seen {
            Some(&(_, size)) => size,
            None => odb.read_header(oid)?.0 as u64,
        };
        if size > max_file_bytes {
            return Err(unreleasable(format!(
                "{path} is {size} bytes, larger than the app's limit of {max_file_bytes} \
                 bytes (max_file_bytes)"
            )));
        }
        let symlink = filemode == 0o120000;
        if symlink {
            check_symlink(repo, &path, oid, size).map_err(unreleasable)?;
        }
        let sha256 = match seen {
            Some(&(sha, _)) => sha.to_owned(),
            None => git_blob::sha256(repo, oid)?.0,
        };
        let mode = match filemode {
            0o120000 => 0o777,
            0o100755 => 0o755,
            _ => 0o644,
        };
        files.push(ManifestFile {
            path,
            mode,
            symlink,
            size,
            sha256,
            blob,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Manifest { files })
}

/// Every blob of `tree` with its path, id and file mode; the inner error
/// names the entry that cannot be released.
type Entries = Result<Vec<(String, Oid, i32)>, String>;

fn tree_entries(tree: &git2::Tree<'_>) -> Result<Entries, git2::Error> {
    let mut entries = Vec::new();
    let mut problem = None;
    let walked = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            let shown = entry.name_bytes().escape_ascii();
            problem = Some(format!(
                "{dir}{shown} is not a UTF-8 name, which releases do not support"
            ));
            return TreeWalkResult::Abort;
        };
        let path = format!("{dir}{name}");
        if let Err(err) = slipway_proto::validate::relative_path("path", &path) {
            problem = Some(err.to_string());
            return TreeWalkResult::Abort;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => return TreeWalkResult::Ok,
            Some(ObjectType::Blob) => {}
            _ => {
                problem = Some(format!(
                    "{path} is a submodule, which releases do not support"
                ));
                return TreeWalkResult::Abort;
            }
        }
        entries.push((path, entry.id(), entry.filemode()));
        TreeWalkResult::Ok
    });
    match (problem, walked) {
        (Some(reason), _) => Ok(Err(reason)),
        (None, Err(err)) => Err(err),
        (None, Ok(())) => Ok(Ok(entries)),
    }
}

/// Applies the agent's symlink rule at release cut.
fn check_symlink(repo: &Repository, path: &str, oid: Oid, size: u64) -> Result<(), String> {
    if size > limits::SYMLINK_TARGET as u64 {
        return Err(format!(
            "symlink {path} has a target longer than {} bytes",
            limits::SYMLINK_TARGET
        ));
    }
    let odb = repo.odb().map_err(|e| e.to_string())?;
    let object = odb.read(oid).map_err(|e| e.to_string())?;
    let target = std::str::from_utf8(object.data())
        .map_err(|_| format!("symlink {path} has a target that is not UTF-8"))?;
    slipway_proto::validate::symlink_target("path", path, target).map_err(|e| e.reason)
}

/// Files changed from `previous` to `commit`, with line counts as
/// `git diff --numstat -M` reports them.
pub fn changes(
    repo: &Repository,
    previous: Option<&str>,
    commit: &str,
) -> Result<Vec<FileChange>, GitError> {
    let new_tree = repo.find_commit(Oid::from_str(commit)?)?.tree()?;
    // A previous commit that is gone (history rewritten) counts as no previous.
    let old_tree = previous
        .and_then(|sha| Oid::from_str(sha).ok())
        .and_then(|oid| repo.find_commit(oid).ok())
        .map(|c| c.tree())
        .transpose()?;
    // Larger files count as binary, without lines, and are never loaded
    // whole to find out.
    let mut options = git2::DiffOptions::new();
    options.max_size(git_blob::IN_MEMORY as i64);
    let mut diff =
        repo.diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), Some(&mut options))?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))?;
    let mut changes = Vec::new();
    for (index, delta) in diff.deltas().enumerate() {
        let kind = match delta.status() {
            Delta::Added | Delta::Copied => ChangeKind::Added,
            Delta::Deleted => ChangeKind::Deleted,
            Delta::Renamed => ChangeKind::Renamed,
            _ => ChangeKind::Modified,
        };
        let path_of = |file: git2::DiffFile<'_>| {
            file.path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let new_path = path_of(delta.new_file());
        let old_path = path_of(delta.old_file());
        let (lines_added, lines_removed) = match git2::Patch::from_diff(&diff, index)? {
            Some(patch) => {
                let (_, added, removed) = patch.line_stats()?;
                (added as u32, removed as u32)
            }
            None => (0, 0),
        };
        changes.push(FileChange {
            path: if kind == ChangeKind::Deleted {
                old_path.clone()
            } else {
                new_path.clone()
            },
            old_path: if kind == ChangeKind::Renamed {
                old_path
            } else {
                String::new()
            },
            kind: kind as i32,
            lines_added,
            lines_removed,
        });
    }
    Ok(changes)
}

#[cfg(test)]
#[path = "git_tests.rs"]
mod tests;
