//! Fetching a remote into the app's bare mirror with git2, bounded: a
//! deadline, a most-bytes bound, credentials offered once (a refusal is an
//! authentication error, not a retry loop), and https certificates checked
//! against the configured extra CAs besides the system's. Blocking: callers
//! run it in `spawn_blocking`.

use std::{
    cell::Cell,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, FetchPrune,
    RemoteCallbacks, Repository,
};

use super::vault::Credentials;

/// One fetch to run.
pub struct Fetch<'a> {
    /// The remote (no credentials in it).
    pub url: &'a str,
    /// The bare mirror, created if missing.
    pub mirror: &'a Path,
    /// https credentials, if held.
    pub credentials: Option<Credentials>,
    /// The deploy key's private half (OpenSSH PEM), offered to ssh servers.
    pub deploy_key: Option<zeroize::Zeroizing<String>>,
    /// The pinned ssh host key (an OpenSSH public key line); None: the
    /// server's key is accepted and reported, to be pinned.
    pub known_host: Option<String>,
    /// Extra trusted CAs for https.
    pub https_roots: Option<Arc<rustls::RootCertStore>>,
    /// Most bytes received.
    pub max_bytes: u64,
    /// When it gives up.
    pub deadline: Instant,
    /// Set by the caller to give up now (its own timeout).
    pub cancel: Arc<AtomicBool>,
    /// Where the transfer's progress goes (every 10% or second).
    pub progress: crate::progress::Progress,
}

/// What a successful fetch received.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fetched {
    /// Objects received.
    pub objects: u64,
    /// Bytes received.
    pub bytes: u64,
}

/// What the connection showed besides the transfer: the ssh server's host
/// key and whether the deploy key was offered.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    /// The host key the ssh server offered (wire format).
    pub host_key: Option<Vec<u8>>,
    /// The deploy key was offered (and, on success, accepted).
    pub key_offered: bool,
}

/// Why a fetch failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server asked for credentials and refused (or none are held).
    #[error(
        "authentication failed: the git server refused the credentials or deploy key held for this app (or none are held); for https set them with `slipctl app update APP --username NAME --token-file FILE`, for ssh add the key of `slipctl source key show APP` to the server"
    )]
    Auth,
    /// The ssh server's host key is not the pinned one.
    #[error(
        "the ssh server's host key changed: pinned {pinned}, offered {offered}; if the server's key was replaced, pin the new one with `slipctl source key test APP --known-host '<key>'`"
    )]
    HostKeyChanged {
        /// The pinned key's fingerprint.
        pinned: String,
        /// The offered key's fingerprint.
        offered: String,
    },
    /// The host name does not resolve.
    #[error("unknown host: {0}")]
    UnknownHost(String),
    /// The https certificate is not trusted.
    #[error(
        "the git server's TLS certificate is not trusted: {0}; add its CA to sources.https_ca_file"
    )]
    Certificate(String),
    /// The server could not be reached or the connection broke.
    #[error("network error reaching the git server: {0}")]
    Network(String),
    /// More than the bound was received.
    #[error("the fetch received more than {0} bytes (sources.max_fetch_bytes)")]
    TooLarge(u64),
    /// The deadline passed.
    #[error("the fetch did not finish within {0} s (sources.fetch_timeout_seconds)")]
    TimedOut(u64),
    /// The remote answered with something git could not use.
    #[error("git: {0}")]
    Git(String),
}

/// What the callbacks saw, to classify a failure.
#[derive(Default)]
struct Seen {
    auth_refused: Cell<bool>,
    too_large: Cell<bool>,
    timed_out: Cell<bool>,
    stats: Cell<Fetched>,
    host_key: std::cell::RefCell<Option<Vec<u8>>>,
    host_changed: std::cell::RefCell<Option<(String, String)>>,
    key_offered: Cell<bool>,
}

impl Seen {
    fn handshake(&self) -> Handshake {
        Handshake {
            host_key: self.host_key.borrow().clone(),
            key_offered: self.key_offered.get(),
        }
    }
}

/// Fetches every branch and tag of `fetch.url` into the mirror (pruning
/// what the remote deleted) and points the mirror's HEAD at the remote's.
pub fn fetch(fetch: &Fetch<'_>, timeout_secs: u64) -> (Result<Fetched, FetchError>, Handshake) {
    let seen = Seen::default();
    let result = fetch_seen(fetch, timeout_secs, &seen);
    (result, seen.handshake())
}

/// Connects to the remote and lists its refs (no objects transferred).
pub fn list_refs(fetch: &Fetch<'_>, timeout_secs: u64) -> (Result<u32, FetchError>, Handshake) {
    let seen = Seen::default();
    let result = (|| {
        let mut remote = git2::Remote::create_detached(fetch.url)
            .map_err(|e| FetchError::Git(e.message().to_owned()))?;
        let connection = remote
            .connect_auth(git2::Direction::Fetch, Some(callbacks(fetch, &seen)), None)
            .map_err(|e| classify(&e, &seen, fetch.max_bytes, timeout_secs))?;
        let refs = connection
            .list()
            .map_err(|e| classify(&e, &seen, fetch.max_bytes, timeout_secs))?;
        Ok(refs.len() as u32)
    })();
    (result, seen.handshake())
}

/// Tags `commit` as `tag` in the mirror and pushes the tag to the remote;
/// a tag of that name already there is an error (never overwritten).
pub fn push_tag(
    fetch: &Fetch<'_>,
    timeout_secs: u64,
    tag: &str,
    commit: &str,
) -> (Result<(), FetchError>, Handshake) {
    let seen = Seen::default();
    let rejected = std::cell::RefCell::new(None::<String>);
    let result = (|| {
        let git = |e: git2::Error| FetchError::Git(e.message().to_owned());
        let repo = open_or_init(fetch.mirror)?;
        let oid = git2::Oid::from_str(commit).map_err(git)?;
        let name = format!("refs/tags/{tag}");
        repo.reference(&name, oid, false, "release tag")
            .map_err(git)?;
        let mut remote = repo.remote_anonymous(fetch.url).map_err(git)?;
        let mut callbacks = callbacks(fetch, &seen);
        callbacks.push_update_reference(|_, status| {
            if let Some(status) = status {
                *rejected.borrow_mut() = Some(status.to_owned());
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(callbacks);
        remote
            .push(&[format!("{name}:{name}")], Some(&mut options))
            .map_err(|e| classify(&e, &seen, fetch.max_bytes, timeout_secs))?;
        match rejected.borrow().clone() {
            Some(why) => Err(FetchError::Git(format!(
                "the remote refused the tag: {why}"
            ))),
            None => Ok(()),
        }
    })();
    (result, seen.handshake())
}

fn fetch_seen(fetch: &Fetch<'_>, timeout_secs: u64, seen: &Seen) -> Result<Fetched, FetchError> {
    let repo = open_or_init(fetch.mirror)?;
    let mut remote = repo
        .remote_anonymous(fetch.url)
        .map_err(|e| FetchError::Git(e.message().to_owned()))?;
    let result = {
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks(fetch, seen))
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::All);
        remote.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut options),
            None,
        )
    };
    if let Err(err) = result {
        return Err(classify(&err, seen, fetch.max_bytes, timeout_secs));
    }
    if let Ok(head) = remote.default_branch()
        && let Ok(name) = head.as_str()
    {
        let _ = repo.set_head(name);
    }
    Ok(seen.stats.get())
}

fn open_or_init(mirror: &Path) -> Result<Repository, FetchError> {
    let opened = if mirror.exists() {
        Repository::open_bare(mirror)
    } else {
        std::fs::create_dir_all(mirror).map_err(|e| FetchError::Git(e.to_string()))?;
        Repository::init_bare(mirror)
    };
    opened.map_err(|e| FetchError::Git(format!("the mirror cannot be opened: {}", e.message())))
}

fn callbacks<'a>(fetch: &'a Fetch<'_>, seen: &'a Seen) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let offered = Cell::new(false);
    callbacks.credentials(move |_url, user, allowed| {
        let user = user.unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        // Offer once: libgit2 asks again after a refusal.
        if offered.replace(true) {
            seen.auth_refused.set(true);
            return Err(git2::Error::from_str("credentials refused"));
        }
        match (&fetch.credentials, &fetch.deploy_key) {
            (Some(c), _) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(&c.username, &c.password)
            }
            (_, Some(key)) if allowed.contains(CredentialType::SSH_KEY) => {
                seen.key_offered.set(true);
                Cred::ssh_key_from_memory(user, None, key, None)
            }
            _ => {
                seen.auth_refused.set(true);
                Err(git2::Error::from_str("no usable credentials"))
            }
        }
    });
    callbacks.certificate_check(move |cert, host| {
        if let Some(hostkey) = cert.as_hostkey() {
            return check_host_key(fetch, seen, hostkey.hostkey());
        }
        let Some(x509) = cert.as_x509() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        match &fetch.https_roots {
            Some(roots) if verify_x509(roots, x509.data(), host) => {
                Ok(CertificateCheckStatus::CertificateOk)
            }
            _ => Ok(CertificateCheckStatus::CertificatePassthrough),
        }
    });
    let go_on = move || {
        if fetch.cancel.load(Ordering::Relaxed) || Instant::now() > fetch.deadline {
            seen.timed_out.set(true);
            return false;
        }
        true
    };
    callbacks.sideband_progress(move |_| go_on());
    let throttle = Throttle::default();
    callbacks.transfer_progress(move |progress| {
        let stats = Fetched {
            objects: progress.received_objects() as u64,
            bytes: progress.received_bytes() as u64,
        };
        seen.stats.set(stats);
        if let Some(message) = throttle.tick(stats, progress.total_objects() as u64) {
            let note = crate::progress::Note::info("fetch", message);
            fetch.progress.try_note(note);
        }
        if stats.bytes > fetch.max_bytes {
            seen.too_large.set(true);
            return false;
        }
        go_on()
    });
    callbacks
}

/// Reports a transfer every tenth of its objects or every second,
/// whichever comes first.
struct Throttle {
    tenth: Cell<u64>,
    at: Cell<Instant>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            tenth: Cell::new(0),
            at: Cell::new(Instant::now()),
        }
    }
}

impl Throttle {
    /// The progress line to report now, if any.
    fn tick(&self, stats: Fetched, total: u64) -> Option<String> {
        let tenth = (stats.objects * 10).checked_div(total).unwrap_or(0);
        let due = tenth > self.tenth.get() || self.at.get().elapsed().as_secs() >= 1;
        if !due || total == 0 {
            return None;
        }
        self.tenth.set(tenth);
        self.at.set(Instant::now());
        Some(format!(
            "received {} of {total} objects ({}%), {} bytes",
            stats.objects,
            tenth * 10,
            stats.bytes
        ))
    }
}

/// The ssh host key against the pin: the same key passes; another is
/// refused with both fingerprints; with no pin it passes and is reported.
fn check_host_key(
    fetch: &Fetch<'_>,
    seen: &Seen,
    offered: Option<&[u8]>,
) -> Result<CertificateCheckStatus, git2::Error> {
    let Some(offered) = offered else {
        return Err(git2::Error::from_str("the ssh server sent no host key"));
    };
    *seen.host_key.borrow_mut() = Some(offered.to_vec());
    let Some(pinned) = &fetch.known_host else {
        return Ok(CertificateCheckStatus::CertificateOk);
    };
    let pinned = ssh_key::PublicKey::from_openssh(pinned)
        .map_err(|_| git2::Error::from_str("the pinned host key cannot be read"))?;
    if pinned.to_bytes().is_ok_and(|bytes| bytes == offered) {
        return Ok(CertificateCheckStatus::CertificateOk);
    }
    *seen.host_changed.borrow_mut() = Some((
        super::fingerprint::fingerprint(&pinned),
        super::fingerprint::blob_fingerprint(offered),
    ));
    Err(git2::Error::from_str("the ssh host key changed"))
}

/// Whether the leaf certificate `der` is valid for `host` under `roots`.
fn verify_x509(roots: &Arc<rustls::RootCertStore>, der: &[u8], host: &str) -> bool {
    use rustls::{
        client::{WebPkiServerVerifier, danger::ServerCertVerifier},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider).build()
    else {
        return false;
    };
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return false;
    };
    verifier
        .verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
        .is_ok()
}

fn classify(err: &git2::Error, seen: &Seen, max_bytes: u64, timeout_secs: u64) -> FetchError {
    if seen.too_large.get() {
        return FetchError::TooLarge(max_bytes);
    }
    if seen.timed_out.get() {
        return FetchError::TimedOut(timeout_secs);
    }
    if let Some((pinned, offered)) = seen.host_changed.borrow().clone() {
        return FetchError::HostKeyChanged { pinned, offered };
    }
    if seen.auth_refused.get() || err.code() == git2::ErrorCode::Auth {
        return FetchError::Auth;
    }
    let message = err.message().to_owned();
    if message.contains("resolve") || message.contains("Name or service not known") {
        return FetchError::UnknownHost(message);
    }
    match (err.code(), err.class()) {
        (git2::ErrorCode::Certificate, _) | (_, git2::ErrorClass::Ssl) => {
            FetchError::Certificate(message)
        }
        (_, git2::ErrorClass::Net | git2::ErrorClass::Os | git2::ErrorClass::Http) => {
            FetchError::Network(message)
        }
        _ => FetchError::Git(message),
    }
}
