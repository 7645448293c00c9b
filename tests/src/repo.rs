//! Real git repositories for tests, built with git2.

use std::{collections::BTreeMap, path::Path};

use git2::{Oid, Repository, Signature, TreeWalkMode, TreeWalkResult};
use tempfile::TempDir;

/// A repository with a work tree in a temporary directory.
pub struct SampleRepo {
    dir: TempDir,
    repo: Repository,
}

/// What a test puts in a commit.
pub enum Change<'a> {
    /// Write a regular file.
    File(&'a str, &'a [u8]),
    /// Write an executable file.
    Exec(&'a str, &'a [u8]),
    /// Create a symlink.
    Link(&'a str, &'a str),
    /// Delete a path.
    Delete(&'a str),
    /// Write a regular file whose name is any bytes (not UTF-8, say).
    RawName(&'a [u8], &'a [u8]),
}

impl SampleRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir.path(), &opts).expect("git init");
        Self { dir, repo }
    }

    /// The repository path, as an app's `repository`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Applies the changes and commits them on `main`; returns the sha.
    pub fn commit(&self, message: &str, changes: &[Change<'_>]) -> String {
        use std::os::unix::fs::PermissionsExt;
        let mut index = self.repo.index().expect("index");
        for change in changes {
            if let Change::RawName(name, data) = change {
                use std::os::unix::ffi::OsStrExt;
                let name = Path::new(std::ffi::OsStr::from_bytes(name));
                std::fs::write(self.path().join(name), data).expect("write");
                index.add_path(name).expect("git add");
                continue;
            }
            let (path, full) = match change {
                Change::File(p, _)
                | Change::Exec(p, _)
                | Change::Link(p, _)
                | Change::Delete(p) => (*p, self.path().join(p)),
                Change::RawName(..) => unreachable!("handled above"),
            };
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            let _ = std::fs::remove_file(&full);
            match change {
                Change::File(_, data) => std::fs::write(&full, data).expect("write"),
                Change::Exec(_, data) => {
                    std::fs::write(&full, data).expect("write");
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                        .expect("chmod");
                }
                Change::Link(_, target) => {
                    std::os::unix::fs::symlink(target, &full).expect("symlink")
                }
                Change::Delete(_) => {
                    index.remove_path(Path::new(path)).expect("git rm");
                    continue;
                }
                Change::RawName(..) => unreachable!("handled above"),
            }
            index.add_path(Path::new(path)).expect("git add");
        }
        index.write().expect("write index");
        let tree = self
            .repo
            .find_tree(index.write_tree().expect("write tree"))
            .expect("tree");
        let sig = Signature::now("Test Author", "author@example.com").expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    /// Every blob of a commit: path -> (git file mode, content).
    pub fn files(&self, sha: &str) -> BTreeMap<String, (i32, Vec<u8>)> {
        let tree = self
            .repo
            .find_commit(Oid::from_str(sha).expect("sha"))
            .expect("commit")
            .tree()
            .expect("tree");
        let mut files = BTreeMap::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                let blob = self.repo.find_blob(entry.id()).expect("blob");
                let name = String::from_utf8_lossy(entry.name_bytes());
                files.insert(
                    format!("{dir}{name}"),
                    (entry.filemode(), blob.content().to_vec()),
                );
            }
            TreeWalkResult::Ok
        })
        .expect("walk");
        files
    }
}

impl Default for SampleRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// Asserts that `dir` holds exactly the files of `sha`, byte for byte, with
/// executable bits and symlink targets preserved.
pub fn assert_tree_matches(dir: &Path, repo: &SampleRepo, sha: &str) {
    use std::os::unix::fs::PermissionsExt;
    let expected = repo.files(sha);
    let mut seen = BTreeMap::new();
    walk(dir, dir, &mut seen);
    let expected_paths: Vec<&String> = expected.keys().collect();
    let seen_paths: Vec<&String> = seen.keys().collect();
    assert_eq!(seen_paths, expected_paths, "paths in {}", dir.display());
    for (path, (mode, content)) in expected {
        let full = dir.join(&path);
        if mode == 0o120000 {
            let target = std::fs::read_link(&full).expect("readlink");
            assert_eq!(
                target.to_string_lossy().as_bytes(),
                content.as_slice(),
                "symlink {path}"
            );
        } else {
            assert_eq!(
                std::fs::read(&full).expect("read"),
                content,
                "content of {path}"
            );
            let exec = std::fs::metadata(&full).expect("stat").permissions().mode() & 0o111 != 0;
            assert_eq!(exec, mode == 0o100755, "executable bit of {path}");
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, ()>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            out.insert(rel, ());
        }
    }
}
