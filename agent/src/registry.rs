//! The apps this agent has deployed (name -> root), kept in
//! `<data_dir>/apps.json` so GetStatus without apps can list them after a
//! restart.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};

use crate::fsutil;

const FILE_NAME: &str = "apps.json";
const VERSION: u32 = 1;

/// A failure reading or writing the registry file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("cannot {action} the app registry {}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not what this agent writes.
    #[error(
        "the app registry {} is unreadable; move it away and restart (apps reappear as they are deployed)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Written by a newer agent.
    #[error("the app registry {} has version {version}; this agent reads version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
}

/// An app's deploy root that overlaps another app's.
#[derive(Debug, thiserror::Error)]
#[error(
    "deploy root {} of app {app} overlaps the root {} of app {other}: an app's \
     root may not lie inside another app's root (its releases/ or .slipway \
     included), be the same, or contain one; choose a separate directory",
    root.display(), other_root.display()
)]
pub struct RootOverlap {
    /// The app of the request.
    pub app: String,
    /// Its deploy root.
    pub root: PathBuf,
    /// The app already there.
    pub other: String,
    /// Its root.
    pub other_root: PathBuf,
}

/// Why [`Registry::claim`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The root overlaps another app's.
    #[error(transparent)]
    Overlap(#[from] RootOverlap),
    /// The registry could not be written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn overlap(apps: &BTreeMap<String, PathBuf>, name: &str, root: &Path) -> Result<(), RootOverlap> {
    let other = apps.iter().find(|(other, other_root)| {
        other.as_str() != name && (root.starts_with(other_root) || other_root.starts_with(root))
    });
    match other {
        Some((other, other_root)) => Err(RootOverlap {
            app: name.to_owned(),
            root: root.to_owned(),
            other: other.clone(),
            other_root: other_root.clone(),
        }),
        None => Ok(()),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    apps: BTreeMap<String, PathBuf>,
}

/// The registry of deployed apps.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    apps: Mutex<BTreeMap<String, PathBuf>>,
}

impl Registry {
    /// Loads `<data_dir>/apps.json`; a missing file is an empty registry.
    /// Blocking.
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let path = data_dir.join(FILE_NAME);
        let apps = match std::fs::read(&path) {
            Ok(bytes) => {
                let on_disk: OnDisk =
                    serde_json::from_slice(&bytes).map_err(|source| RegistryError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if on_disk.version != VERSION {
                    return Err(RegistryError::Version {
                        path,
                        version: on_disk.version,
                    });
                }
                on_disk.apps
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(RegistryError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        Ok(Self {
            path,
            apps: Mutex::new(apps),
        })
    }

    fn apps_locked(&self) -> MutexGuard<'_, BTreeMap<String, PathBuf>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered apps, by name.
    pub fn apps(&self) -> Vec<(String, PathBuf)> {
        self.apps_locked()
            .iter()
            .map(|(name, root)| (name.clone(), root.clone()))
            .collect()
    }

    /// Refuses `root` for app `name` when it overlaps another registered
    /// app's root: inside it (its `releases/` and `.slipway` included), the
    /// same, or containing it. Roots are clean absolute paths (see
    /// `Roots::resolve`), so a component-wise comparison is exact.
    pub fn check_overlap(&self, name: &str, root: &Path) -> Result<(), RootOverlap> {
        overlap(&self.apps_locked(), name, root)
    }

    /// [`Registry::check_overlap`], then [`Registry::record`], atomically:
    /// two requests cannot both claim overlapping roots. Blocking.
    pub fn claim(&self, name: &str, root: &Path) -> Result<(), ClaimError> {
        let mut apps = self.apps_locked();
        overlap(&apps, name, root)?;
        Ok(self.write(&mut apps, name, root)?)
    }

    /// Records `name` at `root` and writes the file if that changed it:
    /// temp file, fsync, rename, fsync the directory, so a crash leaves the
    /// old or the new file. Blocking.
    pub fn record(&self, name: &str, root: &Path) -> Result<(), RegistryError> {
        // Held across the write so concurrent records cannot reorder files.
        let mut apps = self.apps_locked();
        self.write(&mut apps, name, root)
    }

    fn write(
        &self,
        apps: &mut BTreeMap<String, PathBuf>,
        name: &str,
        root: &Path,
    ) -> Result<(), RegistryError> {
        if apps.get(name).map(PathBuf::as_path) == Some(root) {
            return Ok(());
        }
        apps.insert(name.to_owned(), root.to_owned());
        let on_disk = OnDisk {
            version: VERSION,
            apps: apps.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&on_disk).expect("a map of strings serialises");
        let dir = self
            .path
            .parent()
            .expect("the registry lives in the data dir");
        let tmp = dir.join(format!(".{FILE_NAME}.{:016x}", rand::random::<u64>()));
        let write = || -> io::Result<()> {
            let mut file = fsutil::create_private_file(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            fsutil::sync_dir(dir)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            RegistryError::Io {
                action: "write",
                path: self.path.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        assert!(registry.apps().is_empty());
        registry.record("web", Path::new("/srv/web")).unwrap();
        registry.record("api", Path::new("/opt/apps/api")).unwrap();
        registry.record("web", Path::new("/srv/web")).unwrap();
        let reopened = Registry::open(dir.path()).unwrap();
        assert_eq!(
            reopened.apps(),
            [
                ("api".to_owned(), PathBuf::from("/opt/apps/api")),
                ("web".to_owned(), PathBuf::from("/srv/web")),
            ]
        );
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "only apps.json remains");
    }

    #[test]
    fn roots_inside_containing_or_equal_to_another_apps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.record("other", Path::new("/srv/other")).unwrap();
        for bad in [
            "/srv/other/releases/r1",
            "/srv/other/.slipway",
            "/srv/other/shared/x",
            "/srv/other",
            "/srv",
        ] {
            let err = registry.check_overlap("web", Path::new(bad)).unwrap_err();
            assert_eq!(err.other, "other", "{bad}");
            assert!(
                err.to_string().contains("overlaps the root /srv/other"),
                "{err}"
            );
        }
        for good in ["/srv/web", "/srv/otherx", "/srv/web/other"] {
            assert!(
                registry.check_overlap("web", Path::new(good)).is_ok(),
                "{good}"
            );
        }
        // The app itself may stay where it is, or move.
        assert!(
            registry
                .check_overlap("other", Path::new("/srv/other"))
                .is_ok()
        );
    }

    #[test]
    fn a_corrupt_file_is_reported_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = Registry::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
    }
}
