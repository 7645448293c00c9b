//! Releases: cut from git (or reused for a commit that has one), read back.

use slipway_proto::{
    control::v1::{ManifestEntry, Release, ReleaseMark},
    validate,
};

use crate::{
    catalog,
    domain::manifest::Manifest,
    error::Error,
    git,
    sources::Sources,
    store::{Store, releases as records},
};

/// Releases of an app, newest first.
pub fn list(store: &Store, app: &str) -> Result<Vec<Release>, Error> {
    catalog::app(store, app)?;
    Ok(records::newest_first(store, app)?)
}

/// One release, if recorded (no checks: for records that name it).
pub fn find(store: &Store, app: &str, id: &str) -> Result<Option<Release>, Error> {
    Ok(records::get(store, app, id)?)
}

/// One release.
pub fn get(store: &Store, app: &str, id: &str) -> Result<Release, Error> {
    catalog::app(store, app)?;
    validate::release_id("id", id)?;
    records::get(store, app, id)?.ok_or_else(|| Error::not_found("release", format!("{app}/{id}")))
}

/// The manifest of a release.
pub fn manifest(store: &Store, app: &str, id: &str) -> Result<Manifest, Error> {
    records::manifest(store, app, id)?
        .ok_or_else(|| Error::not_found("release manifest", format!("{app}/{id}")))
}

/// The manifest as the API shows it.
pub fn manifest_entries(manifest: &Manifest) -> Vec<ManifestEntry> {
    manifest
        .files
        .iter()
        .map(|f| ManifestEntry {
            path: f.path.clone(),
            mode: if f.symlink { 0o120777 } else { f.mode },
            size: f.size,
            sha256: f.sha256.clone(),
        })
        .collect()
}

/// Cuts a release of `git_ref` (empty: the app's default branch), or returns
/// the existing release of the same commit. The bool tells whether it is new.
pub async fn create(
    store: &Store,
    sources: &Sources,
    app_name: &str,
    git_ref: &str,
) -> Result<(Release, bool), Error> {
    let app = catalog::app(store, app_name)?;
    let git_ref = if git_ref.is_empty() {
        app.default_branch.clone()
    } else {
        git_ref.to_owned()
    };
    // One cut at a time: two concurrent deploys of the same ref must get the
    // same release, not two, and not a clash of ids.
    let _cutting = CUTTING.lock().await;
    sources.prepare_cut(&app, &git_ref).await?;
    let existing = list(store, app_name)?;
    let previous = existing.first().cloned();
    let previous_commit = previous.as_ref().map(|p| p.commit.clone());
    let previous_created = previous.as_ref().and_then(|p| p.created_at);
    let previous_manifest = match &previous {
        Some(p) => Some(manifest(store, app_name, &p.id)?),
        None => None,
    };
    let source = sources.local_repository(&app);
    let ref_for_cut = git_ref.clone();
    let max_file_bytes = match app.max_file_bytes {
        0 => slipway_proto::limits::DEFAULT_MAX_FILE_BYTES,
        n => n,
    };
    let cut = tokio::task::spawn_blocking(move || -> Result<Cut, Error> {
        let repo = git::open(&source)?;
        let commit = git::resolve(&repo, &ref_for_cut)?;
        if let Some(release) = existing.into_iter().find(|r| r.commit == commit.sha) {
            return Ok(Cut::Existing(release));
        }
        let manifest = git::manifest(
            &repo,
            &commit.sha,
            previous_manifest.as_ref(),
            max_file_bytes,
        )?;
        let changes = git::changes(&repo, previous_commit.as_deref(), &commit.sha)?;
        Ok(Cut::New {
            commit,
            manifest,
            changes,
        })
    })
    .await
    .map_err(|_| Error::Precondition("cutting the release failed".into()))??;
    let (commit, manifest, changes) = match cut {
        Cut::Existing(release) => return Ok((release, false)),
        Cut::New {
            commit,
            manifest,
            changes,
        } => (commit, manifest, changes),
    };
    let created = release_time(previous_created);
    let release = Release {
        id: format!(
            "{}-{}",
            created.format("%Y%m%dT%H%M%S%.3fZ"),
            &commit.sha[..7]
        ),
        app: app.name.clone(),
        commit: commit.sha,
        git_ref: if git_ref.is_empty() {
            "HEAD".into()
        } else {
            git_ref
        },
        message: commit.message,
        author: commit.author,
        created_at: Some(slipway_proto::timestamp(created.into())),
        file_count: manifest.files.len() as u64,
        total_bytes: manifest.files.iter().map(|f| f.size).sum(),
        previous_release: previous.map(|p| p.id).unwrap_or_default(),
        changes,
        mark: 0,
        mark_reason: String::new(),
        manifest: Vec::new(),
    };
    store.commit(records::create(&release, &manifest)).await?;
    tracing::info!(app = %app.name, release = %release.id, files = release.file_count, "release cut");
    Ok((release, true))
}

/// Serialises cutting releases (rare, and quick next to a rollout).
static CUTTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The creation time of a new release: now, but always at least a
/// millisecond after the previous release, so that ids (which start with it)
/// sort in creation order even when the clock steps back or two releases are
/// cut within the same millisecond.
fn release_time(previous: Option<pbjson_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let floor = previous
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t + chrono::Duration::milliseconds(1));
    let at = match floor {
        Some(floor) if floor > now => floor,
        _ => now,
    };
    // Ids carry milliseconds: drop the rest so created_at and the id agree.
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

enum Cut {
    Existing(Release),
    New {
        commit: git::CommitInfo,
        manifest: Manifest,
        changes: Vec<slipway_proto::control::v1::FileChange>,
    },
}

/// Marks a release good or bad, or clears the mark (`Unspecified`), with why
/// and by whom in `reason` (e.g. "by deployer/alice: broke checkout"); a
/// clear drops the reason. Returns the release as stored. A bad release is
/// never what a rollback resolves "previous" to.
pub async fn mark(
    store: &Store,
    app: &str,
    id: &str,
    mark: ReleaseMark,
    reason: &str,
) -> Result<Release, Error> {
    let mut release = get(store, app, id)?;
    release.mark = mark as i32;
    release.mark_reason = if mark == ReleaseMark::Unspecified {
        String::new()
    } else {
        reason.to_owned()
    };
    store.commit(vec![records::put(&release)]).await?;
    tracing::info!(%app, release = %id, mark = mark.as_str_name(), %reason, "release marked");
    Ok(release)
}
