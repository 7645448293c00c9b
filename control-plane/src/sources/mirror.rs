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
    /// Extra trusted CAs for https.
    pub https_roots: Option<Arc<rustls::RootCertStore>>,
    /// Most bytes received.
    pub max_bytes: u64,
    /// When it gives up.
    pub deadline: Instant,
    /// Set by the caller to give up now (its own timeout).
    pub cancel: Arc<AtomicBool>,
}

/// What a successful fetch received.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fetched {
    /// Objects received.
    pub objects: u64,
    /// Bytes received.
    pub bytes: u64,
}

/// Why a fetch failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server asked for credentials and refused (or none are held).
    #[error(
        "authentication failed: the git server refused the credentials held for this app (or none are held); set them with `slipctl app update --username/--token`"
    )]
    Auth,
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
}

/// Fetches every branch and tag of `fetch.url` into the mirror (pruning
/// what the remote deleted) and points the mirror's HEAD at the remote's.
pub fn fetch(fetch: &Fetch<'_>, timeout_secs: u64) -> Result<Fetched, FetchError> {
    let repo = open_or_init(fetch.mirror)?;
    let seen = Seen::default();
    let mut remote = repo
        .remote_anonymous(fetch.url)
        .map_err(|e| FetchError::Git(e.message().to_owned()))?;
    let result = {
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks(fetch, &seen))
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::All);
        remote.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut options),
            None,
        )
    };
    if let Err(err) = result {
        return Err(classify(&err, &seen, fetch.max_bytes, timeout_secs));
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
    callbacks.credentials(move |_url, _user, allowed| {
        // Offer once: libgit2 asks again after a refusal.
        match (&fetch.credentials, offered.replace(true)) {
            (Some(c), false) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(&c.username, &c.password)
            }
            _ => {
                seen.auth_refused.set(true);
                Err(git2::Error::from_str("no usable credentials"))
            }
        }
    });
    callbacks.certificate_check(move |cert, host| {
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
    callbacks.transfer_progress(move |progress| {
        let stats = Fetched {
            objects: progress.received_objects() as u64,
            bytes: progress.received_bytes() as u64,
        };
        seen.stats.set(stats);
        if stats.bytes > fetch.max_bytes {
            seen.too_large.set(true);
            return false;
        }
        go_on()
    });
    callbacks
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
    if seen.auth_refused.get() || err.code() == git2::ErrorCode::Auth {
        return FetchError::Auth;
    }
    let message = err.message().to_owned();
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
