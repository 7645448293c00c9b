//! Deploy keys: an ed25519 key pair per app generated and held by the
//! control plane (the private half in a 0600 file, never returned), its
//! OpenSSH public key and `SHA256:` fingerprint, when it was last used; the
//! pinned host key of the app's ssh server; and the test that connects with
//! them and lists the remote's refs.

use slipway_proto::control::v1::{
    App, DeployKey, DeployKeyProblem, KnownHost, TestDeployKeyResponse,
};
use ssh_key::{LineEnding, PrivateKey, PublicKey, rand_core::OsRng};

pub use super::fingerprint::{blob_fingerprint, fingerprint};
use super::{
    FetchError, Location, Sources,
    mirror::{self, Handshake},
    vault::{HostPin, KeyInfo},
};
use crate::error::Error;

/// A host key to pin from an OpenSSH public key line.
pub fn pin_from_line(line: &str) -> Result<HostPin, String> {
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|_| "not an OpenSSH public key line (\"ssh-ed25519 AAAA...\")".to_owned())?;
    pin(&key)
}

fn pin_from_blob(blob: &[u8]) -> Result<HostPin, String> {
    pin(&PublicKey::from_bytes(blob).map_err(|e| e.to_string())?)
}

fn pin(key: &PublicKey) -> Result<HostPin, String> {
    let mut key = key.clone();
    key.set_comment("");
    Ok(HostPin {
        public_key: key.to_openssh().map_err(|e| e.to_string())?,
        algorithm: key.algorithm().to_string(),
        fingerprint: fingerprint(&key),
        pinned_at: chrono::Utc::now().timestamp(),
    })
}

fn timestamp(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds, nanos: 0 }
}

fn shown(app: &str, info: KeyInfo) -> DeployKey {
    DeployKey {
        app: app.to_owned(),
        public_key: info.public_key,
        fingerprint: info.fingerprint,
        created_at: Some(timestamp(info.created_at)),
        last_used_at: info.last_used_at.map(timestamp),
    }
}

fn shown_pin(pin: HostPin) -> KnownHost {
    KnownHost {
        algorithm: pin.algorithm,
        fingerprint: pin.fingerprint,
        pinned_at: Some(timestamp(pin.pinned_at)),
    }
}

fn vault_failed(err: super::vault::VaultError) -> Error {
    tracing::error!(error = %slipway_proto::daemon::chain(&err), "the sources vault failed");
    Error::Precondition("the control plane could not read or record the app's deploy key".into())
}

impl Sources {
    /// Generates `app`'s key pair; `replace` allows one to exist (rotate).
    /// `known_host` (an OpenSSH line) pins the server's key.
    pub fn create_key(
        &self,
        app: &str,
        replace: bool,
        known_host: &str,
    ) -> Result<DeployKey, Error> {
        let pin = match known_host.trim() {
            "" => None,
            line => Some(
                pin_from_line(line)
                    .map_err(|e| slipway_proto::validate::InvalidField::new("known_host", e))?,
            ),
        };
        let vault = self.vault();
        if !replace && vault.key_info(app).map_err(vault_failed)?.is_some() {
            return Err(Error::AlreadyExists {
                what: "deploy key of app",
                name: app.to_owned(),
            });
        }
        let private = PrivateKey::random(&mut OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|_| Error::Precondition("generating the key failed".into()))?;
        let mut public = private.public_key().clone();
        public.set_comment(format!("slipway-{app}"));
        let info = KeyInfo {
            public_key: public
                .to_openssh()
                .map_err(|_| Error::Precondition("encoding the key failed".into()))?,
            fingerprint: fingerprint(&public),
            created_at: chrono::Utc::now().timestamp(),
            last_used_at: None,
        };
        let pem = private
            .to_openssh(LineEnding::LF)
            .map_err(|_| Error::Precondition("encoding the key failed".into()))?;
        vault
            .set_deploy_key(app, &pem, &info)
            .map_err(vault_failed)?;
        if let Some(pin) = pin {
            vault.set_known_host(app, &pin).map_err(vault_failed)?;
        }
        tracing::info!(%app, fingerprint = %info.fingerprint, "deploy key generated");
        Ok(shown(app, info))
    }

    /// `app`'s public key and pinned host key.
    pub fn key(&self, app: &str) -> Result<(DeployKey, Option<KnownHost>), Error> {
        let vault = self.vault();
        let info = vault
            .key_info(app)
            .map_err(vault_failed)?
            .ok_or_else(|| Error::not_found("deploy key of app", app))?;
        let pin = vault.known_host(app).map_err(vault_failed)?;
        Ok((shown(app, info), pin.map(shown_pin)))
    }

    /// Deletes `app`'s key pair.
    pub fn revoke_key(&self, app: &str) -> Result<(), Error> {
        self.key(app)?;
        self.vault().remove_deploy_key(app).map_err(vault_failed)
    }

    /// Connects to `app`'s remote with its key (pinning `known_host` first
    /// when given) and lists the refs.
    pub async fn test_key(
        &self,
        app: &App,
        known_host: &str,
    ) -> Result<TestDeployKeyResponse, Error> {
        let Ok(Location::Remote { url, .. }) = Location::parse(&app.repository) else {
            return Err(Error::Precondition(format!(
                "app {} has a local repository: there is no server to test",
                app.name
            )));
        };
        if !known_host.trim().is_empty() {
            let pin = pin_from_line(known_host)
                .map_err(|e| slipway_proto::validate::InvalidField::new("known_host", e))?;
            self.vault()
                .set_known_host(&app.name, &pin)
                .map_err(vault_failed)?;
        }
        let (result, handshake) = self.connect(&app.name, url, Op::List).await;
        let host_key = handshake
            .host_key
            .as_deref()
            .and_then(|b| pin_from_blob(b).ok());
        let mut response = TestDeployKeyResponse {
            host_key: host_key.map(shown_pin),
            ..Default::default()
        };
        match result {
            Ok(connected) => {
                response.ok = true;
                if let Connected::Listed(refs) = connected {
                    response.refs = refs;
                }
            }
            Err(err) => {
                response.problem = problem(&err) as i32;
                response.error = err.to_string();
            }
        }
        Ok(response)
    }

    /// After a connection: pins the host key offered when none was pinned
    /// (only once the server answered), and records the key's use.
    pub(super) fn after_handshake(&self, app: &str, succeeded: bool, handshake: &Handshake) {
        if !succeeded {
            return;
        }
        let vault = self.vault();
        if let Some(blob) = &handshake.host_key
            && matches!(vault.known_host(app), Ok(None))
            && let Ok(pin) = pin_from_blob(blob)
        {
            tracing::info!(%app, fingerprint = %pin.fingerprint, "ssh host key pinned on first use");
            let _ = vault.set_known_host(app, &pin);
        }
        if handshake.key_offered
            && let Ok(Some(mut info)) = vault.key_info(app)
        {
            info.last_used_at = Some(chrono::Utc::now().timestamp());
            let _ = vault.set_key_info(app, &info);
        }
    }

    /// Runs a connection to `url` for `app` with what is held: a fetch
    /// into the mirror, or (`list`) a listing of the refs.
    pub(super) async fn connect(
        &self,
        app: &str,
        url: String,
        op: Op,
    ) -> (Result<Connected, FetchError>, Handshake) {
        let (settings, roots, vault) = (
            self.settings().clone(),
            self.https_roots.clone(),
            self.vault().clone(),
        );
        let name = app.to_owned();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = cancel.clone();
        let progress = match &op {
            Op::Fetch(progress) => progress.clone(),
            _ => crate::progress::Progress::none(),
        };
        let task = tokio::task::spawn_blocking(move || {
            let mirror = vault.mirror(&name);
            let fetch = mirror::Fetch {
                url: &url,
                mirror: &mirror,
                credentials: vault.credentials(&name).ok().flatten(),
                deploy_key: vault.deploy_key(&name).ok().flatten(),
                known_host: vault.known_host(&name).ok().flatten().map(|p| p.public_key),
                https_roots: roots,
                max_bytes: settings.max_bytes,
                deadline: std::time::Instant::now() + settings.timeout,
                cancel: stop,
                progress,
            };
            let seconds = settings.timeout.as_secs();
            match op {
                Op::List => {
                    let (result, handshake) = mirror::list_refs(&fetch, seconds);
                    (result.map(Connected::Listed), handshake)
                }
                Op::Fetch(_) => {
                    let (result, handshake) = mirror::fetch(&fetch, seconds);
                    (result.map(Connected::Fetched), handshake)
                }
                Op::Tag { name, commit } => {
                    let (result, handshake) = mirror::push_tag(&fetch, seconds, &name, &commit);
                    (result.map(|()| Connected::Tagged), handshake)
                }
            }
        });
        let timeout = self.settings().timeout;
        // The callbacks give up at the deadline whenever data flows; this
        // answers at the deadline even when the server stays silent.
        let outcome =
            match tokio::time::timeout(timeout + std::time::Duration::from_secs(1), task).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => (
                    Err(FetchError::Git("the fetch task failed".into())),
                    Handshake::default(),
                ),
                Err(_) => {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                    (
                        Err(FetchError::TimedOut(timeout.as_secs())),
                        Handshake::default(),
                    )
                }
            };
        self.after_handshake(app, outcome.0.is_ok(), &outcome.1);
        outcome
    }
}

/// What a connection does.
pub(super) enum Op {
    /// Fetch into the mirror, reporting its progress.
    Fetch(crate::progress::Progress),
    /// List the remote's refs.
    List,
    /// Push a tag of a commit.
    Tag {
        /// Tag name.
        name: String,
        /// Commit id.
        commit: String,
    },
}

/// What a connection did.
pub(super) enum Connected {
    /// Pushed the tag.
    Tagged,
    /// Listed this many refs.
    Listed(u32),
    /// Fetched into the mirror.
    Fetched(mirror::Fetched),
}

fn problem(err: &FetchError) -> DeployKeyProblem {
    match err {
        FetchError::Auth => DeployKeyProblem::Auth,
        FetchError::HostKeyChanged { .. } => DeployKeyProblem::HostKeyChanged,
        FetchError::UnknownHost(_) => DeployKeyProblem::UnknownHost,
        FetchError::Network(_) | FetchError::TimedOut(_) => DeployKeyProblem::Network,
        _ => DeployKeyProblem::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sources(dir: &std::path::Path) -> Sources {
        Sources::new(Default::default(), dir, Default::default()).unwrap()
    }

    #[test]
    fn a_key_is_generated_once_held_privately_and_shown_without_its_private_half() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let key = sources.create_key("web", false, "").unwrap();
        let public = PublicKey::from_openssh(&key.public_key).unwrap();
        assert_eq!(public.algorithm(), ssh_key::Algorithm::Ed25519);
        assert_eq!(key.fingerprint, fingerprint(&public));
        assert!(key.fingerprint.starts_with("SHA256:"));
        let private = sources.vault().dir("web").join("deploy-key");
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            sources.create_key("web", false, ""),
            Err(Error::AlreadyExists { .. })
        ));
        let rotated = sources.create_key("web", true, "").unwrap();
        assert_ne!(rotated.fingerprint, key.fingerprint);
        let (shown, pin) = sources.key("web").unwrap();
        assert_eq!(shown.fingerprint, rotated.fingerprint);
        assert!(pin.is_none() && shown.last_used_at.is_none());
        sources.revoke_key("web").unwrap();
        assert!(matches!(sources.key("web"), Err(Error::NotFound { .. })));
    }

    #[test]
    fn a_known_host_must_be_an_openssh_key_line() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        assert!(matches!(
            sources.create_key("web", false, "not a key"),
            Err(Error::Invalid(_))
        ));
        let other = sources.create_key("other", false, "").unwrap();
        let key = sources.create_key("web", false, &other.public_key).unwrap();
        let (_, pin) = sources.key("web").unwrap();
        let pin = pin.expect("pinned");
        assert_eq!(pin.fingerprint, other.fingerprint);
        assert_eq!(pin.algorithm, "ssh-ed25519");
        assert_ne!(key.fingerprint, other.fingerprint);
    }
}
