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
const DEPLOY_KEY: &str = "deploy-key";
const DEPLOY_KEY_INFO: &str = "deploy-key.json";
const KNOWN_HOST: &str = "known-host.json";

/// The public half of a deploy key and its use, as held.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct KeyInfo {
    /// OpenSSH public key line.
    pub public_key: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last authentication with it.
    pub last_used_at: Option<i64>,
}

/// The pinned host key of an app's ssh server.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct HostPin {
    /// OpenSSH public key line of the server's key.
    pub public_key: String,
    /// Key type.
    pub algorithm: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// Unix seconds.
    pub pinned_at: i64,
}

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

    /// The deploy key's private half (OpenSSH PEM), if any.
    pub fn deploy_key(&self, app: &str) -> Result<Option<zeroize::Zeroizing<String>>, VaultError> {
        let path = self.dir(app).join(DEPLOY_KEY);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(zeroize::Zeroizing::new(text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VaultError {
                action: "reading",
                path,
                source,
            }),
        }
    }

    /// The deploy key's public half and use, if any.
    pub fn key_info(&self, app: &str) -> Result<Option<KeyInfo>, VaultError> {
        self.read_json(app, DEPLOY_KEY_INFO)
    }

    /// Holds a deploy key (replacing any).
    pub fn set_deploy_key(
        &self,
        app: &str,
        private: &str,
        info: &KeyInfo,
    ) -> Result<(), VaultError> {
        write_private(&self.dir(app), DEPLOY_KEY, private.as_bytes())?;
        self.write_json(app, DEPLOY_KEY_INFO, info)
    }

    /// Records the key's public half and use.
    pub fn set_key_info(&self, app: &str, info: &KeyInfo) -> Result<(), VaultError> {
        self.write_json(app, DEPLOY_KEY_INFO, info)
    }

    /// Deletes the deploy key.
    pub fn remove_deploy_key(&self, app: &str) -> Result<(), VaultError> {
        self.remove(app, DEPLOY_KEY)?;
        self.remove(app, DEPLOY_KEY_INFO)
    }

    /// The pinned host key, if any.
    pub fn known_host(&self, app: &str) -> Result<Option<HostPin>, VaultError> {
        self.read_json(app, KNOWN_HOST)
    }

    /// Pins a host key.
    pub fn set_known_host(&self, app: &str, pin: &HostPin) -> Result<(), VaultError> {
        self.write_json(app, KNOWN_HOST, pin)
    }

    /// Forgets what belongs to `app`'s old remote (its URL changed): the
    /// mirror, the last fetch, the pinned host key and the credentials. The
    /// deploy key stays: it is the app's.
    pub fn forget_remote(&self, app: &str) -> Result<(), VaultError> {
        for name in [CREDENTIALS, LAST_FETCH, KNOWN_HOST] {
            self.remove(app, name)?;
        }
        let mirror = self.mirror(app);
        match fs::remove_dir_all(&mirror) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VaultError {
                action: "removing",
                path: mirror,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Forgets everything held for `app` (a new app of that name).
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
