//! Shared paths: files and directories under `<root>/shared/` that outlive
//! releases (`log/`, `.env`), created once and linked into every release by
//! relative symlinks before the release is renamed into place. Blocking.

use std::{
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use crate::{activation::SharedPath, fsutil, layout::AppRoot};

/// A shared path that cannot be prepared or linked.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// A required shared file does not exist.
    #[error(
        "required shared file {path} is missing: create {} on this host; \
         it is linked into every release", expected.display()
    )]
    RequiredMissing {
        /// The shared path.
        path: String,
        /// Where it must be.
        expected: PathBuf,
    },
    /// `shared/<path>` exists with the other kind.
    #[error("shared path {path} should be a {want}, but {} is not", found.display())]
    WrongKind {
        /// The shared path.
        path: String,
        /// "file" or "directory".
        want: &'static str,
        /// What is on disk.
        found: PathBuf,
    },
    /// A parent of the path inside the release is a symlink: linking there
    /// would write wherever it points.
    #[error(
        "shared path {path} cannot be linked: {} in the release is a symlink", parent.display()
    )]
    ThroughSymlink {
        /// The shared path.
        path: String,
        /// The symlinked parent, relative to the release.
        parent: PathBuf,
    },
    /// A filesystem call failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What the agent was doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SharedError {
    let path = path.to_owned();
    move |source| SharedError::Io {
        action,
        path,
        source,
    }
}

/// Makes `shared/` ready: creates missing directories and checks files,
/// failing on a required file that is missing. Returns a line per path for
/// the events.
pub fn prepare(app: &AppRoot, paths: &[SharedPath]) -> Result<Vec<String>, SharedError> {
    let mut said = Vec::new();
    for shared in paths {
        let on_disk = app.shared().join(&shared.path);
        // Follows symlinks: an operator may point shared/.env elsewhere.
        let meta = fs::metadata(&on_disk);
        match (shared.file, meta) {
            (false, Ok(meta)) if meta.is_dir() => {}
            (true, Ok(meta)) if !meta.is_dir() => {}
            (file, Ok(_)) => {
                return Err(SharedError::WrongKind {
                    path: shared.path.clone(),
                    want: if file { "file" } else { "directory" },
                    found: on_disk,
                });
            }
            (false, Err(err)) if err.kind() == io::ErrorKind::NotFound => {
                fsutil::create_dir_synced(&on_disk).map_err(io_err("create", &on_disk))?;
                said.push(format!("created shared directory {}", on_disk.display()));
            }
            (true, Err(err)) if err.kind() == io::ErrorKind::NotFound => {
                if shared.required {
                    return Err(SharedError::RequiredMissing {
                        path: shared.path.clone(),
                        expected: on_disk,
                    });
                }
                said.push(format!(
                    "shared file {} does not exist yet; linking it anyway",
                    on_disk.display()
                ));
            }
            (_, Err(err)) => return Err(io_err("inspect", &on_disk)(err)),
        }
    }
    Ok(said)
}

/// The relative target of the link at `releases/<id>/<path>`:
/// `../../shared/<path>` with one more `../` per directory of `path`.
pub fn target(path: &str) -> PathBuf {
    let ups = 2 + path.matches('/').count();
    let mut target = PathBuf::new();
    for _ in 0..ups {
        target.push("..");
    }
    target.join("shared").join(path)
}

/// Links every shared path into `release` (a staging tree or a release
/// directory), replacing what the release has there. A path already linked
/// right is left alone. Returns a line per link made.
pub fn link(release: &Path, paths: &[SharedPath]) -> Result<Vec<String>, SharedError> {
    let mut said = Vec::new();
    for shared in paths {
        let want = target(&shared.path);
        let dest = release.join(&shared.path);
        // Never through a symlink the release contains (or another link).
        let mut parent = PathBuf::new();
        let parts: Vec<&str> = shared.path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push(part);
            let at = release.join(&parent);
            match fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(SharedError::ThroughSymlink {
                        path: shared.path.clone(),
                        parent,
                    });
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    fsutil::remove_tree(&at).map_err(io_err("remove", &at))?;
                    fsutil::create_dir_synced(&at).map_err(io_err("create", &at))?;
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fsutil::create_dir_synced(&at).map_err(io_err("create", &at))?;
                }
                Err(err) => return Err(io_err("inspect", &at)(err)),
            }
        }
        match fs::read_link(&dest) {
            Ok(existing) if existing == want => continue,
            _ => {}
        }
        match fs::symlink_metadata(&dest) {
            Ok(_) => fsutil::remove_tree(&dest).map_err(io_err("replace", &dest))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err("inspect", &dest)(err)),
        }
        symlink(&want, &dest).map_err(io_err("create the symlink", &dest))?;
        let dir = dest.parent().expect("a path in the release has a parent");
        fsutil::sync_dir(dir).map_err(io_err("sync", dir))?;
        said.push(format!("linked {} -> {}", shared.path, want.display()));
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn dir(path: &str) -> SharedPath {
        SharedPath {
            path: path.into(),
            file: false,
            required: false,
        }
    }

    fn file(path: &str, required: bool) -> SharedPath {
        SharedPath {
            path: path.into(),
            file: true,
            required,
        }
    }

    #[test]
    fn targets_climb_out_of_the_release() {
        assert_eq!(target("log"), Path::new("../../shared/log"));
        assert_eq!(
            target("config/app/.env"),
            Path::new("../../../../shared/config/app/.env")
        );
    }

    #[test]
    fn directories_are_created_and_a_missing_required_file_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", tmp.path().join("web"));
        let paths = [dir("log"), dir("tmp/cache"), file(".env", false)];
        prepare(&app, &paths).unwrap();
        assert!(app.shared().join("tmp/cache").is_dir());
        assert!(
            !app.shared().join(".env").exists(),
            "files are never created"
        );

        let err = prepare(&app, &[file("config/.env", true)]).unwrap_err();
        let expected = app.shared().join("config/.env");
        assert_eq!(
            err.to_string(),
            format!(
                "required shared file config/.env is missing: create {} on this host; \
                 it is linked into every release",
                expected.display()
            )
        );
        fs::create_dir_all(expected.parent().unwrap()).unwrap();
        fs::write(&expected, "KEY=1\n").unwrap();
        prepare(&app, &[file("config/.env", true)]).unwrap();
        let err = prepare(&app, &[dir("config/.env")]);
        assert!(matches!(err, Err(SharedError::WrongKind { .. })), "{err:?}");
    }

    #[test]
    fn links_replace_release_content_and_resolve_into_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", tmp.path().join("web"));
        app.ensure().unwrap();
        let paths = [dir("log"), file("config/.env", true)];
        fs::create_dir_all(app.shared().join("config")).unwrap();
        fs::write(app.shared().join("config/.env"), "KEY=1\n").unwrap();
        prepare(&app, &paths).unwrap();
        fs::write(app.shared().join("log/app.log"), "old\n").unwrap();

        let release = app.release("r1");
        fs::create_dir_all(release.join("log")).unwrap();
        // Git content at a shared path (read-only, as hard links are).
        fs::write(release.join("log/.gitkeep"), "").unwrap();
        fs::set_permissions(
            release.join("log/.gitkeep"),
            fs::Permissions::from_mode(0o444),
        )
        .unwrap();
        let said = link(&release, &paths).unwrap();
        assert_eq!(said.len(), 2);
        assert_eq!(
            fs::read_link(release.join("log")).unwrap(),
            Path::new("../../shared/log")
        );
        assert_eq!(fs::read(release.join("log/app.log")).unwrap(), b"old\n");
        assert_eq!(fs::read(release.join("config/.env")).unwrap(), b"KEY=1\n");
        assert!(link(&release, &paths).unwrap().is_empty(), "idempotent");

        let other = app.release("r2");
        fs::create_dir_all(other.join("lib")).unwrap();
        symlink("lib", other.join("config")).unwrap();
        let err = link(&other, &paths).unwrap_err();
        assert!(matches!(err, SharedError::ThroughSymlink { .. }), "{err}");
    }
}
