//! Getting a release onto a host: ask which contents it lacks, stream only
//! those in chunks (read from git on a blocking thread, or from the
//! deployment's cache once another host read them; the bounded channel is
//! the backpressure), then ask the agent to prepare the release. With a base
//! release only the difference travels; a host without the base gets the
//! whole release.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use slipway_proto::{
    agent::v1::{
        AppTarget, FileEntry, FileKind, MissingObjectsRequest, PrepareReleaseRequest,
        UploadObjectsRequest,
    },
    control::v1::{DeploymentKind, DeploymentStatus, LogLevel},
};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::{
    Delta, Update,
    host::{Failure, HostRun},
};
use crate::{
    agents::{AgentClient, ProgressStream},
    blobs::{self, BlobCache},
    domain::{
        event::{host_log, host_status},
        manifest::{Manifest, ManifestFile},
    },
    git,
};

/// A content wanted by a host: its SHA-256, git blob id and size.
type Wanted = (String, String, u64);

impl HostRun {
    /// Ships the release (against the base release, for a deploy) and asks
    /// the agent to prepare it; falls back to the whole release when the
    /// host lacks the base.
    pub(super) async fn ship_with_fallback(
        &self,
        client: &AgentClient,
    ) -> Result<ProgressStream, Failure> {
        let base = match self.plan().kind {
            DeploymentKind::Rollback => None,
            _ => self.plan().base.as_ref(),
        };
        match self.ship(client, base).await {
            Err(Failure::NoBase(message)) if base.is_some() => {
                self.emit(host_log(
                    &self.host.name,
                    "transfer",
                    LogLevel::Info,
                    format!("{message}; shipping the whole release"),
                ))
                .await;
                self.ship(client, None).await
            }
            other => other,
        }
    }

    /// Sends what the host lacks, then asks it to prepare the release. With
    /// a base, only the entries that differ from the base travel, and only
    /// their hashes are asked about.
    async fn ship(
        &self,
        client: &AgentClient,
        base: Option<&(String, Arc<Manifest>)>,
    ) -> Result<ProgressStream, Failure> {
        let plan = self.plan();
        let delta =
            base.map(|(id, manifest)| (id.clone(), Delta::between(manifest, &plan.manifest)));
        let files: Vec<&ManifestFile> = match &delta {
            Some((_, delta)) => delta.changed.clone(),
            None => plan.manifest.files.iter().collect(),
        };
        self.transfer(client, &files).await?;
        let (base_release, removed_paths) = match delta {
            Some((id, delta)) => (id, delta.removed),
            None => (String::new(), Vec::new()),
        };
        let files = files.into_iter().map(file_entry).collect();
        let request = self.prepare_request(files, base_release, removed_paths);
        self.call("PrepareRelease", client.prepare(request)).await
    }

    /// What the agent is asked to prepare: the release's `files`, or their
    /// difference against `base_release`.
    pub(super) fn prepare_request(
        &self,
        files: Vec<FileEntry>,
        base_release: String,
        removed_paths: Vec<String>,
    ) -> PrepareReleaseRequest {
        let plan = self.plan();
        PrepareReleaseRequest {
            deployment_id: plan.deployment_id.clone(),
            app: Some(self.target()),
            release_id: plan.release.id.clone(),
            files,
            keep_releases: plan.app.keep_releases,
            spec: plan.app.activation.clone(),
            environment: plan.environment.clone(),
            base_release,
            removed_paths,
            fencing_token: plan.fencing_token,
            // Set by the agent client (the store identity).
            fencing_epoch: String::new(),
            secrets: plan.secrets.secrets.clone(),
        }
    }

    /// Asks the host which of `files`' contents it lacks and sends those.
    pub(super) async fn transfer(
        &self,
        client: &AgentClient,
        files: &[&ManifestFile],
    ) -> Result<(), Failure> {
        let host = &self.host.name;
        let mut by_hash: HashMap<&str, (&str, u64)> = HashMap::new();
        for f in files {
            by_hash.entry(&f.sha256).or_insert((&f.blob, f.size));
        }
        let mut hashes: Vec<String> = by_hash.keys().map(|h| h.to_string()).collect();
        hashes.sort();
        let request = MissingObjectsRequest {
            app: Some(self.target()),
            sha256: hashes,
        };
        let missing = self
            .call("MissingObjects", client.missing_objects(request))
            .await?
            .sha256;
        let wanted: Vec<Wanted> = missing
            .into_iter()
            .filter_map(|sha| {
                by_hash
                    .get(sha.as_str())
                    .map(|(blob, size)| (sha.clone(), blob.to_string(), *size))
            })
            .collect();
        let objects = wanted.len() as u64;
        let bytes: u64 = wanted.iter().map(|w| w.2).sum();
        self.emit(host_status(
            host,
            DeploymentStatus::Running,
            "transfer",
            5,
            LogLevel::Info,
            format!(
                "host lacks {objects} of {} objects ({bytes} bytes)",
                by_hash.len()
            ),
        ))
        .await;
        if objects == 0 {
            // Nothing sent: "lacks 0" said it all.
            return Ok(());
        }
        self.upload(client, wanted).await?;
        let transfer = Update::Transfer {
            host: host.clone(),
            objects,
            bytes,
        };
        let _ = self.shared.tx.send(transfer).await;
        Ok(())
    }

    /// The wanted contents from the deployment's cache when they fit it:
    /// the first host to miss reads them from git, the others wait and
    /// share them. `None` when they are streamed from git instead. An
    /// upload holds only contents the cache keeps, and the cache never
    /// evicts what an upload holds, so together they stay within its
    /// budget.
    async fn contents(&self, wanted: &[Wanted]) -> Result<Option<Vec<Arc<[u8]>>>, Failure> {
        let blobs = &self.shared.blobs;
        let ids = || wanted.iter().map(|w| w.1.as_str());
        if !blobs.fits(wanted.iter().map(|w| w.2)) {
            return Ok(None);
        }
        if let Some(contents) = blobs.cached(ids()) {
            return Ok(Some(contents));
        }
        let _reading = blobs.reading().await;
        if let Some(contents) = blobs.cached(ids()) {
            return Ok(Some(contents));
        }
        let (blobs, source) = (blobs.clone(), self.plan().app.repository.clone());
        let missing: Vec<_> = wanted.iter().map(|w| (w.1.clone(), w.2)).collect();
        let read = tokio::task::spawn_blocking(move || blobs.read_all(&source, &missing))
            .await
            .map_err(|e| Failure::Final(e.to_string()))?
            .map_err(git_failure)?;
        // Sent from memory only if the cache kept them all (it does not
        // grow past its budget); otherwise streamed from git.
        let cached = self.shared.blobs.cached(ids());
        drop(read);
        Ok(cached)
    }

    /// Streams the wanted objects. The deadline is on silence: the upload
    /// fails when no chunk left for a whole step timeout.
    async fn upload(&self, client: &AgentClient, wanted: Vec<Wanted>) -> Result<(), Failure> {
        let (chunks_tx, chunks_rx) = mpsc::channel(8);
        let source = self.plan().app.repository.clone();
        let (target, blobs, token) = (
            self.target(),
            self.shared.blobs.clone(),
            self.plan().fencing_token,
        );
        let chunker = Chunker {
            app: Some(target),
            fencing_token: token,
        };
        let producer = match self.contents(&wanted).await? {
            Some(contents) => tokio::spawn(send_cached(chunker, wanted, contents, chunks_tx)),
            None => tokio::task::spawn_blocking(move || {
                produce_chunks(&source, &blobs, chunker, wanted, chunks_tx)
            }),
        };
        let started = Instant::now();
        let last_sent = Arc::new(AtomicU64::new(0));
        let progress = last_sent.clone();
        let chunks = ReceiverStream::new(chunks_rx).map(move |chunk| {
            progress.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            chunk
        });
        let silence = self.step_timeout();
        let watchdog = async {
            loop {
                tokio::time::sleep(silence / 4).await;
                let last = Duration::from_millis(last_sent.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(last) > silence {
                    return;
                }
            }
        };
        let upload = tokio::select! {
            upload = client.upload_objects(Box::pin(chunks)) => upload,
            () = watchdog => {
                producer.abort();
                return Err(Failure::Transient(format!(
                    "the upload made no progress for {} s",
                    silence.as_secs()
                )));
            }
            () = self.control().token().cancelled() => {
                producer.abort();
                return Err(Failure::Final("cancelled".into()));
            }
        };
        let produced = producer.await.map_err(|e| Failure::Final(e.to_string()))?;
        produced.map_err(git_failure)?;
        upload.map_err(|s| Failure::from_status(&s))?;
        Ok(())
    }
}

fn git_failure(err: git::GitError) -> Failure {
    Failure::Final(format!("reading release contents from git failed: {err}"))
}

/// Builds one host's upload chunks; the first carries the app.
struct Chunker {
    app: Option<AppTarget>,
    fencing_token: u64,
}

impl Chunker {
    fn chunk(&mut self, sha: &str, size: u64, offset: u64, data: &[u8]) -> UploadObjectsRequest {
        UploadObjectsRequest {
            app: self.app.take(),
            sha256: sha.to_owned(),
            size,
            offset,
            data: data.to_vec(),
            fencing_token: self.fencing_token,
            fencing_epoch: String::new(),
        }
    }
}

/// Sends contents already in memory.
async fn send_cached(
    mut chunker: Chunker,
    wanted: Vec<Wanted>,
    contents: Vec<Arc<[u8]>>,
    tx: mpsc::Sender<UploadObjectsRequest>,
) -> Result<(), git::GitError> {
    for ((sha, _, size), content) in wanted.into_iter().zip(contents) {
        let mut offset = 0u64;
        for data in blobs::chunks(&content, slipway_proto::CHUNK_BYTES) {
            let chunk = chunker.chunk(&sha, size, offset, data);
            offset += data.len() as u64;
            if tx.send(chunk).await.is_err() {
                return Ok(()); // The upload call ended; it reports why.
            }
        }
    }
    Ok(())
}

/// Reads the contents from git and sends them. Blocking.
fn produce_chunks(
    source: &str,
    blobs: &BlobCache,
    mut chunker: Chunker,
    wanted: Vec<Wanted>,
    tx: mpsc::Sender<UploadObjectsRequest>,
) -> Result<(), git::GitError> {
    let repo = git::open(source)?;
    for (sha, blob, size) in wanted {
        let mut offset = 0u64;
        let mut open = true;
        blobs.for_each_chunk(&repo, &blob, size, slipway_proto::CHUNK_BYTES, |data| {
            let chunk = chunker.chunk(&sha, size, offset, data);
            offset += data.len() as u64;
            // Fails when the upload call ended; it reports why.
            open = tx.blocking_send(chunk).is_ok();
            open
        })?;
        if !open {
            return Ok(());
        }
    }
    Ok(())
}

/// A manifest file as the agent's wire form.
pub(super) fn file_entry(f: &ManifestFile) -> FileEntry {
    FileEntry {
        path: f.path.clone(),
        kind: if f.symlink {
            FileKind::Symlink
        } else {
            FileKind::Regular
        } as i32,
        mode: f.mode,
        size: f.size,
        sha256: f.sha256.clone(),
    }
}
