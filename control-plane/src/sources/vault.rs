//! What the control plane holds per app source, under
//! `<data dir>/sources/<app>/`: the mirror, the https credentials and the
//! last fetch. Secrets are files of mode 0600 written whole (temp file,
//! fsync, rename), never logged and never returned by any API.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use slipway_proto::control::v1::FetchOutcome;

/// https credentials, as held.
#[derive(Clone, Deserialize, Serialize)]
pub struct Credentials {
    /// User name sent with HTTP basic authentication.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// Reading or writing a file of the vault failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path} failed")]
pub struct VaultError {
    /// What was done.
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// The per-app directories under the data directory.
#[derive(Clone, Debug)]
pub struct Vault {
    root: PathBuf,
}

const CREDENTIALS: &str = "credentials.json";
const LAST_FETCH: &str = "last-fetch.json";

impl Vault {
    /// The vault under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("sources"),
        }
    }

    /// The app's directory (its name is a checked name: a safe path part).
    pub fn dir(&self, app: &str) -> PathBuf {
        self.root.join(app)
    }

    /// The app's bare mirror.
    pub fn mirror(&self, app: &str) -> PathBuf {
        self.dir(app).join("mirror.git")
    }

    /// The credentials held for `app`, if any.
    pub fn credentials(&self, app: &str) -> Result<Option<Credentials>, VaultError> {
        self.read_json(app, CREDENTIALS)
    }

    /// Holds `credentials` for `app`, or forgets them (None).
    pub fn set_credentials(
        &self,
        app: &str,
        credentials: Option<&Credentials>,
    ) -> Result<(), VaultError> {
        match credentials {
            Some(c) => self.write_json(app, CREDENTIALS, c),
            None => self.remove(app, CREDENTIALS),
        }
    }

    /// The last fetch of `app`'s remote, if any.
    pub fn last_fetch(&self, app: &str) -> Result<Option<FetchOutcome>, VaultError> {
        self.read_json(app, LAST_FETCH)
    }

    /// Records the last fetch.
    pub fn set_last_fetch(&self, app: &str, outcome: &FetchOutcome) -> Result<(), VaultError> {
        self.write_json(app, LAST_FETCH, outcome)
    }

    /// Forgets everything held for `app` (its URL changed, or it is gone).
    pub fn forget(&self, app: &str) -> Result<(), VaultError> {
        let dir = self.dir(app);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VaultError {
                action: "removing",
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        app: &str,
        name: &str,
    ) -> Result<Option<T>, VaultError> {
        let path = self.dir(app).join(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(VaultError {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| VaultError {
                action: "parsing",
                path,
                source: e.into(),
            })
    }

    fn write_json<T: Serialize>(&self, app: &str, name: &str, value: &T) -> Result<(), VaultError> {
        let dir = self.dir(app);
        let bytes = serde_json::to_vec(value).map_err(|e| VaultError {
            action: "encoding",
            path: dir.join(name),
            source: e.into(),
        })?;
        write_private(&dir, name, &bytes)
    }

    fn remove(&self, app: &str, name: &str) -> Result<(), VaultError> {
        let path = self.dir(app).join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VaultError {
                action: "removing",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Writes `dir/name` whole with mode 0600: a temp file, fsync, rename, then
/// fsync of the directory, so a crash leaves the old file or the new one.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), VaultError> {
    let err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| VaultError {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(err("creating", dir))?;
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(err("creating", &temp))?;
    file.write_all(bytes).map_err(err("writing", &temp))?;
    file.sync_all().map_err(err("syncing", &temp))?;
    fs::rename(&temp, &path).map_err(err("renaming", &path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("syncing", dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn credentials_are_private_files_and_never_debug_printed() {
        let data = tempfile::tempdir().unwrap();
        let vault = Vault::new(data.path());
        assert!(vault.credentials("web").unwrap().is_none());
        let creds = Credentials {
            username: "ci".into(),
            password: "canary-secret".into(),
        };
        vault.set_credentials("web", Some(&creds)).unwrap();
        let path = vault.dir("web").join(CREDENTIALS);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            vault.credentials("web").unwrap().unwrap().password,
            "canary-secret"
        );
        assert!(!format!("{creds:?}").contains("canary"));
        vault.set_credentials("web", None).unwrap();
        assert!(vault.credentials("web").unwrap().is_none());
    }
}
