//! Releases: cut from git (or reused for a commit that has one), read back.

use slipway_proto::{
    control::v1::{App, ManifestEntry, Release, ReleaseMark},
    validate,
};

use crate::{
    catalog,
    domain::manifest::Manifest,
    error::Error,
    git,
    progress::Progress,
    sources::{Sources, build::Obtained},
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

/// The app, which must declare a build.
pub fn require_build(store: &Store, app_name: &str) -> Result<App, Error> {
    let app = catalog::app(store, app_name)?;
    if app.build.is_none() {
        return Err(Error::Precondition(format!(
            "app {app_name} declares no build; declare one with `slipctl app set-build {app_name} --build-command CMD --build-output DIR`"
        )));
    }
    Ok(app)
}

/// A release cut (or found), with the build it is the output of.
pub struct Cut {
    /// The release.
    pub release: Release,
    /// It is new.
    pub created: bool,
    /// The app's build of its commit, when the app declares one.
    pub build: Option<Obtained>,
}

/// Cuts a release of `git_ref` (empty: the app's default branch), or returns
/// the existing release of the same commit (and build). A remote source is
/// fetched first when its mirror may lack the ref, and an app that declares
/// a build has the commit built (once per build spec); both report to
/// `progress`.
pub async fn create(
    store: &Store,
    sources: &Sources,
    app_name: &str,
    git_ref: &str,
    progress: &Progress,
) -> Result<Cut, Error> {
    let app = catalog::app(store, app_name)?;
    let git_ref = ref_or_branch(&app, git_ref);
    sources.prepare_cut(&app, &git_ref, progress).await?;
    let source = sources.local_repository(&app);
    let commit = resolve(source.clone(), git_ref.clone()).await?;
    let build = match &app.build {
        Some(_) => Some(
            sources
                .builder()
                .obtain(store, source.clone(), &app, &commit.sha, progress)
                .await?,
        ),
        None => None,
    };
    let built = build.as_ref().map(|b| &b.build);
    let files = Files {
        build_id: built.map(|b| b.id.clone()).unwrap_or_default(),
        output_commit: built.map(|b| b.output_commit.clone()).unwrap_or_default(),
    };
    // One cut at a time: two concurrent deploys of the same ref must get the
    // same release, not two, and not a clash of ids.
    let _cutting = CUTTING.lock().await;
    let (release, created) = cut(store, &app, source, git_ref, commit, files).await?;
    Ok(Cut {
        release,
        created,
        build,
    })
}

/// `git_ref`, or the app's default branch when it is empty.
fn ref_or_branch(app: &App, git_ref: &str) -> String {
    if git_ref.is_empty() {
        app.default_branch.clone()
    } else {
        git_ref.to_owned()
    }
}

/// Where a release's files come from besides its commit.
struct Files {
    build_id: String,
    output_commit: String,
}

async fn resolve(source: String, git_ref: String) -> Result<git::CommitInfo, Error> {
    tokio::task::spawn_blocking(move || -> Result<_, Error> {
        Ok(git::resolve(&git::open(&source)?, &git_ref)?)
    })
    .await
    .map_err(|_| Error::Precondition("resolving the ref failed".into()))?
}

/// The commit whose tree is a release's files.
fn files_commit(release: &Release) -> &str {
    if release.output_commit.is_empty() {
        &release.commit
    } else {
        &release.output_commit
    }
}

async fn cut(
    store: &Store,
    app: &App,
    source: String,
    git_ref: String,
    commit: git::CommitInfo,
    files: Files,
) -> Result<(Release, bool), Error> {
    let existing = list(store, &app.name)?;
    if let Some(release) = existing
        .iter()
        .find(|r| r.commit == commit.sha && r.build_id == files.build_id)
    {
        return Ok((release.clone(), false));
    }
    let (release, manifest) =
        draft(store, app, existing.first(), source, git_ref, commit, files).await?;
    store.commit(records::create(&release, &manifest)).await?;
    tracing::info!(app = %app.name, release = %release.id, files = release.file_count, "release cut");
    Ok((release, true))
}

/// What a release preview found: a recorded release, or one not recorded.
pub struct Preview {
    /// The release; its id is empty when it is not recorded.
    pub release: Release,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The release `git_ref` names, without recording anything: the recorded
/// release of its commit when there is one, otherwise the release a cut would
/// make, with an empty id. Without `measure`, that release names only its
/// commit (no manifest, no changes). An app that declares a build gets the
/// recorded release only: a preview never runs a build.
pub async fn preview(
    store: &Store,
    sources: &Sources,
    app_name: &str,
    git_ref: &str,
    measure: bool,
) -> Result<Preview, Error> {
    let app = catalog::app(store, app_name)?;
    let git_ref = ref_or_branch(&app, git_ref);
    sources
        .prepare_cut(&app, &git_ref, &Progress::none())
        .await?;
    let source = sources.local_repository(&app);
    let commit = resolve(source.clone(), git_ref.clone()).await?;
    let existing = list(store, &app.name)?;
    let recorded = existing
        .iter()
        .find(|r| r.commit == commit.sha && (app.build.is_some() || r.build_id.is_empty()));
    if let Some(release) = recorded {
        let manifest = manifest(store, &app.name, &release.id)?;
        return Ok(Preview {
            release: release.clone(),
            manifest,
        });
    }
    if !measure {
        let release = Release {
            app: app.name.clone(),
            commit: commit.sha,
            git_ref,
            message: commit.message,
            author: commit.author,
            ..Release::default()
        };
        return Ok(Preview {
            release,
            manifest: Manifest::default(),
        });
    }
    if app.build.is_some() {
        return Err(Error::Precondition(format!(
            "commit {} of {} has no release yet and app {} builds its releases; \
             `slipctl release create {} --ref {git_ref}` builds one, then plan again",
            &commit.sha[..7],
            git_ref,
            app.name,
            app.name
        )));
    }
    let files = Files {
        build_id: String::new(),
        output_commit: String::new(),
    };
    let (mut release, manifest) = draft(
        store,
        &app,
        existing.first(),
        source,
        git_ref,
        commit,
        files,
    )
    .await?;
    release.id.clear();
    Ok(Preview { release, manifest })
}

/// The release a cut of `commit` would record after `previous`, and its
/// manifest; nothing is recorded.
async fn draft(
    store: &Store,
    app: &App,
    previous: Option<&Release>,
    source: String,
    git_ref: String,
    commit: git::CommitInfo,
    files: Files,
) -> Result<(Release, Manifest), Error> {
    let previous_files = previous.map(|p| files_commit(p).to_owned());
    let previous_created = previous.and_then(|p| p.created_at);
    let previous_manifest = match previous {
        Some(p) => Some(manifest(store, &app.name, &p.id)?),
        None => None,
    };
    let max_file_bytes = match app.max_file_bytes {
        0 => slipway_proto::limits::DEFAULT_MAX_FILE_BYTES,
        n => n,
    };
    let tree = if files.output_commit.is_empty() {
        commit.sha.clone()
    } else {
        files.output_commit.clone()
    };
    let (manifest, changes) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let repo = git::open(&source)?;
        let manifest = git::manifest(&repo, &tree, previous_manifest.as_ref(), max_file_bytes)?;
        let changes = git::changes(&repo, previous_files.as_deref(), &tree)?;
        Ok((manifest, changes))
    })
    .await
    .map_err(|_| Error::Precondition("cutting the release failed".into()))??;
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
        previous_release: previous.map(|p| p.id.clone()).unwrap_or_default(),
        changes,
        mark: 0,
        mark_reason: String::new(),
        manifest: Vec::new(),
        build_id: files.build_id,
        output_commit: files.output_commit,
    };
    Ok((release, manifest))
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
