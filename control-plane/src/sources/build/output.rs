//! The files of a build: a commit checked out into the scratch directory
//! from the object database (no index, no working tree of the repository
//! touched), and the output directory written back into it as blobs and a
//! tree under a commit of its own, kept by a `refs/slipway/builds/` ref, so
//! manifests, hashes and transfers to agents read it as any release.
//! Blocking: callers run it in `spawn_blocking`.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
};

use git2::{ObjectType, Oid, Repository, Signature, Time};

/// Most files an output may hold.
pub const MAX_FILES: usize = 100_000;

/// Writes the tree of `commit` into `dir` (created): files with their mode,
/// symlinks as symlinks; submodules are skipped.
pub fn checkout(repo: &Repository, commit: &str, dir: &Path) -> Result<(), String> {
    let oid = Oid::from_str(commit).map_err(|e| e.message().to_owned())?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| format!("commit {commit} cannot be read: {}", e.message()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    write_tree(repo, &tree, dir)
}

fn write_tree(repo: &Repository, tree: &git2::Tree<'_>, dir: &Path) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("writing {}: {e}", path.display());
    for entry in tree.iter() {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        let path = dir.join(name);
        let object = entry.to_object(repo).map_err(|e| e.message().to_owned())?;
        match entry.kind() {
            Some(ObjectType::Tree) => {
                std::fs::create_dir(&path).map_err(|e| io(&path, e))?;
                let sub = object.peel_to_tree().map_err(|e| e.message().to_owned())?;
                write_tree(repo, &sub, &path)?;
            }
            Some(ObjectType::Blob) => {
                let blob = object.peel_to_blob().map_err(|e| e.message().to_owned())?;
                if entry.filemode() == 0o120000 {
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    std::os::unix::fs::symlink(target, &path).map_err(|e| io(&path, e))?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(|e| io(&path, e))?;
                    let mode = if entry.filemode() == 0o100755 {
                        0o755
                    } else {
                        0o644
                    };
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| io(&path, e))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Gives everything under `dir` (itself included) to `uid`:`gid`, symlinks
/// themselves rather than their targets.
pub fn chown_all(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if !std::fs::symlink_metadata(dir)?.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        chown_all(&entry?.path(), uid, gid)?;
    }
    Ok(())
}

/// What an output directory became.
#[derive(Clone, Debug)]
pub struct Output {
    /// The commit (child of the source commit) whose tree is the output.
    pub commit: String,
    /// Files (and symlinks) in it.
    pub files: u64,
}

/// Writes the files under `dir` into `repo` as a tree and a commit whose
/// parent is `source` and keeps it with the ref `refs/slipway/builds/<id>`.
/// Refused: a file larger than `max_file_bytes`, more than [`MAX_FILES`]
/// entries, a symlink leaving the output, anything but files, directories
/// and symlinks, names that are not UTF-8; an output that is missing,
/// not a directory, or empty.
pub fn record(
    repo: &Repository,
    source: &str,
    id: &str,
    (checkout, output): (&Path, &str),
    max_file_bytes: u64,
    owner: Option<u32>,
) -> Result<Output, String> {
    // Every step of the way is a real directory: a symlink the build left
    // would make the control plane read what it points to.
    let mut dir = checkout.to_owned();
    for part in output.split('/') {
        dir.push(part);
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|_| format!("the build left no output directory {output}"))?;
        if !meta.is_dir() {
            return Err(format!(
                "the build's output {output} is not a directory (a symlink or a file on its way)"
            ));
        }
    }
    let mut walk = Walk {
        repo,
        max_file_bytes,
        owner,
        files: 0,
    };
    let tree = walk
        .tree(&dir, "")?
        .ok_or("the build's output directory is empty")?;
    let git = |e: git2::Error| e.message().to_owned();
    let tree = repo.find_tree(tree).map_err(git)?;
    let parent = repo
        .find_commit(Oid::from_str(source).map_err(git)?)
        .map_err(git)?;
    // A fixed signature and time: the same output of the same commit is
    // the same commit object.
    let who = Signature::new("slipway", "slipway@localhost", &Time::new(0, 0)).map_err(git)?;
    let message = format!("slipway build {id}");
    let commit = repo
        .commit(None, &who, &who, &message, &tree, &[&parent])
        .map_err(git)?;
    repo.reference(&format!("refs/slipway/builds/{id}"), commit, true, &message)
        .map_err(git)?;
    Ok(Output {
        commit: commit.to_string(),
        files: walk.files as u64,
    })
}

struct Walk<'r> {
    repo: &'r Repository,
    max_file_bytes: u64,
    /// The build user: every entry of the output must be its own (a hard
    /// link to another user's file is refused).
    owner: Option<u32>,
    files: usize,
}

impl Walk<'_> {
    /// The tree of `dir` (its path in the output is `prefix`); None when
    /// it holds no file.
    fn tree(&mut self, dir: &Path, prefix: &str) -> Result<Option<Oid>, String> {
        let git = |e: git2::Error| e.message().to_owned();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("reading {prefix}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading {prefix}: {e}"))?;
        entries.sort_by_key(|e| e.file_name());
        let mut builder = self.repo.treebuilder(None).map_err(git)?;
        for entry in entries {
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{prefix}{} is not a UTF-8 name", name.display()))?;
            let path = format!("{prefix}{name}");
            slipway_proto::validate::relative_path("output", &path).map_err(|e| e.reason)?;
            if let Some((oid, mode)) = self.entry(&entry.path(), &path)? {
                builder.insert(name, oid, mode).map_err(git)?;
            }
        }
        if builder.is_empty() {
            return Ok(None);
        }
        builder.write().map(Some).map_err(git)
    }

    /// The object and file mode of one entry; None for an empty directory.
    fn entry(&mut self, path: &Path, rel: &str) -> Result<Option<(Oid, i32)>, String> {
        let git = |e: git2::Error| e.message().to_owned();
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{rel}: {e}"))?;
        if let Some(uid) = self.owner.filter(|uid| *uid != meta.uid()) {
            return Err(format!(
                "{rel} belongs to uid {}, not to the build user (uid {uid}): releases hold only what the build wrote",
                meta.uid()
            ));
        }
        let kind = meta.file_type();
        if kind.is_dir() {
            return Ok(self
                .tree(path, &format!("{rel}/"))?
                .map(|oid| (oid, 0o040000)));
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(format!("the output holds more than {MAX_FILES} files"));
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| format!("{rel}: {e}"))?;
            let target = target
                .to_str()
                .ok_or_else(|| format!("symlink {rel} has a target that is not UTF-8"))?;
            slipway_proto::validate::symlink_target("output", rel, target).map_err(|e| e.reason)?;
            let oid = self.repo.blob(target.as_bytes()).map_err(git)?;
            return Ok(Some((oid, 0o120000)));
        }
        if !kind.is_file() {
            return Err(format!(
                "{rel} is not a file, directory or symlink, which releases do not hold"
            ));
        }
        if meta.size() > self.max_file_bytes {
            return Err(format!(
                "{rel} is {} bytes, larger than the app's limit of {} bytes (max_file_bytes)",
                meta.size(),
                self.max_file_bytes
            ));
        }
        let oid = self.repo.blob_path(path).map_err(git)?;
        let mode = if meta.mode() & 0o111 != 0 {
            0o100755
        } else {
            0o100644
        };
        Ok(Some((oid, mode)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit, and a checkout directory.
    fn setup() -> (tempfile::TempDir, Repository, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("repo.git")).unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let who = Signature::now("t", "t@example.com").unwrap();
        let commit = repo.commit(None, &who, &who, "c", &tree, &[]).unwrap();
        drop(tree);
        (dir, repo, commit.to_string())
    }

    #[test]
    fn the_output_keeps_modes_and_inner_symlinks_and_refuses_escapes() {
        let (dir, repo, commit) = setup();
        let checkout = dir.path().join("src");
        let dist = checkout.join("dist");
        std::fs::create_dir_all(dist.join("bin")).unwrap();
        std::fs::write(dist.join("index.html"), "hi").unwrap();
        std::fs::write(dist.join("bin/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dist.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("index.html", dist.join("latest")).unwrap();
        let out = record(&repo, &commit, "b1", (&checkout, "dist"), 1 << 20, None).unwrap();
        assert_eq!(out.files, 3);
        let tree = repo
            .find_commit(Oid::from_str(&out.commit).unwrap())
            .unwrap()
            .tree()
            .unwrap();
        let mode = |p: &str| tree.get_path(Path::new(p)).unwrap().filemode();
        assert_eq!(mode("bin/run"), 0o100755);
        assert_eq!(mode("index.html"), 0o100644);
        assert_eq!(mode("latest"), 0o120000);
        assert!(repo.find_reference("refs/slipway/builds/b1").is_ok());

        std::os::unix::fs::symlink("../../etc/passwd", dist.join("leak")).unwrap();
        let err = record(&repo, &commit, "b2", (&checkout, "dist"), 1 << 20, None).unwrap_err();
        assert!(err.contains("leak"), "{err}");
        // An output reached through a symlink is not read.
        std::os::unix::fs::symlink("/etc", checkout.join("etc")).unwrap();
        let err = record(&repo, &commit, "b3", (&checkout, "etc"), 1 << 20, None).unwrap_err();
        assert!(err.contains("not a directory"), "{err}");
        // Files the build user does not own are refused.
        std::fs::remove_file(dist.join("leak")).unwrap();
        let stranger = rustix::process::geteuid().as_raw() + 1;
        let err = record(
            &repo,
            &commit,
            "b4",
            (&checkout, "dist"),
            1 << 20,
            Some(stranger),
        )
        .unwrap_err();
        assert!(err.contains("not to the build user"), "{err}");
    }
}
