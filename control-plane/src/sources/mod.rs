//! App git sources: where each repository lives ([`location`]), the trusted
//! local directories ([`roots`]), the bare mirror of a remote and its fetch
//! ([`mirror`]), what is held per app ([`vault`]), the fetch settings and
//! the poller. [`Sources`] is what the rest of the control plane uses.

pub mod build;
mod fingerprint;
pub mod keys;
pub mod location;
pub mod mirror;
pub mod poll;
pub mod report;
mod roots;
pub mod settings;
pub mod status;
pub mod tags;
pub mod vault;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use slipway_proto::control::v1::{App, FetchOutcome};

use crate::progress::{Note, Progress};

pub use self::{
    location::{Location, Transport},
    mirror::FetchError,
    roots::{SourceError, SourceRootError, SourceRoots},
    settings::FetchSettings,
    vault::{Credentials, Vault},
};

/// The control plane's sources: trusted directories, mirrors, settings.
#[derive(Clone)]
pub struct Sources {
    roots: SourceRoots,
    vault: Vault,
    settings: FetchSettings,
    https_roots: Option<Arc<rustls::RootCertStore>>,
    /// One fetch per app at a time.
    fetching: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    builder: build::Builder,
}

/// A source setting that stops the control plane at start.
#[derive(Debug, thiserror::Error)]
pub enum SourcesConfigError {
    /// A trusted directory.
    #[error(transparent)]
    Root(#[from] SourceRootError),
    /// The build user.
    #[error(transparent)]
    BuildUser(#[from] build::UnknownBuildUser),
    /// The extra CA file.
    #[error("sources.https_ca_file {path} holds no readable PEM certificate")]
    CaFile {
        /// The file.
        path: PathBuf,
    },
}

impl Sources {
    /// Sources under `data_dir`, loading the extra https CAs.
    pub fn new(
        roots: SourceRoots,
        data_dir: &Path,
        settings: FetchSettings,
    ) -> Result<Self, SourcesConfigError> {
        let https_roots = match &settings.https_ca_file {
            Some(path) => Some(Arc::new(load_roots(path)?)),
            None => None,
        };
        Ok(Self {
            roots,
            vault: Vault::new(data_dir),
            settings,
            https_roots,
            fetching: Arc::default(),
            builder: build::Builder::new(&build::BuildConfig::default(), data_dir)?,
        })
    }

    /// These sources building with `config`.
    pub fn with_builds(
        mut self,
        config: &build::BuildConfig,
        data_dir: &Path,
    ) -> Result<Self, SourcesConfigError> {
        self.builder = build::Builder::new(config, data_dir)?;
        Ok(self)
    }

    /// What runs apps' builds.
    pub fn builder(&self) -> &build::Builder {
        &self.builder
    }

    /// The trusted local directories.
    pub fn roots(&self) -> &SourceRoots {
        &self.roots
    }

    /// What is held per app.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The fetch settings.
    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// `repository` classified; a local one must be trusted.
    pub fn check(&self, repository: &str) -> Result<Location, SourceError> {
        let location = Location::parse(repository)?;
        if let Location::Local(path) = &location {
            self.roots.check(path)?;
        }
        Ok(location)
    }

    /// The repository git2 opens for `app`: its own path, or its mirror.
    pub fn local_repository(&self, app: &App) -> String {
        match Location::parse(&app.repository) {
            Ok(Location::Remote { .. }) => self.vault.mirror(&app.name).display().to_string(),
            _ => app.repository.clone(),
        }
    }

    /// Fetches `app`'s remote into its mirror (one fetch per app at a
    /// time, within the configured deadline and byte bound) and records the
    /// outcome, failed or not.
    pub async fn fetch(&self, app: &App) -> Result<FetchOutcome, crate::error::Error> {
        self.fetch_observed(app, &Progress::none()).await
    }

    /// [`Sources::fetch`], reporting the transfer to `progress`.
    pub async fn fetch_observed(
        &self,
        app: &App,
        progress: &Progress,
    ) -> Result<FetchOutcome, crate::error::Error> {
        let Ok(Location::Remote { url, .. }) = Location::parse(&app.repository) else {
            return Err(crate::error::Error::Precondition(format!(
                "app {} has a local repository: nothing to fetch",
                app.name
            )));
        };
        let lock = self.app_lock(&app.name);
        let _one = lock.lock().await;
        let started = Instant::now();
        let result = self.run_fetch(&app.name, url, progress.clone()).await;
        let mut outcome = FetchOutcome {
            at: Some(slipway_proto::now()),
            ok: result.is_ok(),
            error: String::new(),
            objects: 0,
            bytes: 0,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        match &result {
            Ok(fetched) => {
                (outcome.objects, outcome.bytes) = (fetched.objects, fetched.bytes);
                tracing::info!(app = %app.name, objects = fetched.objects, bytes = fetched.bytes, "source fetched");
            }
            Err(err) => {
                outcome.error = err.to_string();
                tracing::warn!(app = %app.name, error = %err, "source fetch failed");
            }
        }
        let vault = self.vault.clone();
        let (name, recorded) = (app.name.clone(), outcome.clone());
        tokio::task::spawn_blocking(move || vault.set_last_fetch(&name, &recorded))
            .await
            .map_err(|_| crate::error::Error::Precondition("recording the fetch failed".into()))?
            .map_err(|e| {
                tracing::error!(error = %e, "recording a fetch failed");
                crate::error::Error::Precondition("recording the fetch failed".into())
            })?;
        Ok(outcome)
    }

    async fn run_fetch(
        &self,
        app: &str,
        url: String,
        progress: Progress,
    ) -> Result<mirror::Fetched, FetchError> {
        match self.connect(app, url, keys::Op::Fetch(progress)).await.0? {
            keys::Connected::Fetched(fetched) => Ok(fetched),
            _ => Ok(mirror::Fetched::default()),
        }
    }

    fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(app.to_owned()).or_default().clone()
    }

    /// Makes sure the mirror of a remote `app` holds `git_ref` as the
    /// remote has it now: a full commit id or a tag the mirror has is used
    /// as is; anything else (a branch moves) is fetched first. A failed
    /// fetch fails the cut with its reason. Local sources need nothing.
    pub async fn prepare_cut(
        &self,
        app: &App,
        git_ref: &str,
        progress: &Progress,
    ) -> Result<(), crate::error::Error> {
        if !self.needs_fetch(app, git_ref).await {
            return Ok(());
        }
        let shown = location::masked(&app.repository);
        progress
            .note(Note::info(
                "fetch",
                format!("fetching {git_ref} from {shown}"),
            ))
            .await;
        let outcome = self.fetch_observed(app, progress).await?;
        if outcome.ok {
            let message = format!(
                "fetched {} objects, {} bytes in {} ms",
                outcome.objects, outcome.bytes, outcome.duration_ms
            );
            progress.note(Note::info("fetch", message)).await;
            Ok(())
        } else {
            Err(crate::error::Error::Precondition(format!(
                "fetching the source of app {} failed: {}",
                app.name, outcome.error
            )))
        }
    }
}

impl Sources {
    /// Whether cutting `git_ref` of `app` fetches first: a remote source
    /// whose mirror lacks it as a full commit id or a tag.
    pub async fn needs_fetch(&self, app: &App, git_ref: &str) -> bool {
        if !matches!(
            Location::parse(&app.repository),
            Ok(Location::Remote { .. })
        ) {
            return false;
        }
        let mirror = self.vault.mirror(&app.name);
        let wanted = git_ref.to_owned();
        let held = tokio::task::spawn_blocking(move || holds_fixed(&mirror, &wanted))
            .await
            .unwrap_or(false);
        !held
    }
}

/// Whether `mirror` has `git_ref` as something that never moves: a full
/// commit id or a tag.
fn holds_fixed(mirror: &Path, git_ref: &str) -> bool {
    let Ok(repo) = git2::Repository::open_bare(mirror) else {
        return false;
    };
    if git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit()) {
        return git2::Oid::from_str(git_ref)
            .and_then(|oid| repo.find_commit(oid))
            .is_ok();
    }
    repo.find_reference(&format!("refs/tags/{git_ref}")).is_ok()
}

/// The certificates of a PEM file, as trust anchors.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, SourcesConfigError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad = || SourcesConfigError::CaFile {
        path: path.to_owned(),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|_| bad())? {
        roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
    }
    if roots.is_empty() {
        return Err(bad());
    }
    Ok(roots)
}
