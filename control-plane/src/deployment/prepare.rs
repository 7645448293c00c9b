//! The preparing phase of a deployment of a ref whose release takes time
//! to make (a remote source to fetch, a build to run): the deployment is
//! recorded first (lock taken, pending, stage "preparing"), then on its own
//! task the release is made while every fetch progress line and build
//! output line is recorded as its event, the record takes the release,
//! and the rollout runs as for any deployment. A failure ends it failed
//! before any host is touched, and frees the lock.

use std::sync::Arc;

use slipway_proto::control::v1::{DeploymentStatus, LogLevel, Release};
use tracing::Instrument as _;

use super::{
    Lease, Recorder,
    record::Entry,
    resolve::{self, Resolved, Start, Target},
    run::{self, Launch},
};
use crate::{
    Context, catalog,
    domain::event::{deployment_event, host_log},
    error::Error,
    progress::{Note, Progress},
    releases,
    running::Control,
    store::StoreError,
};

/// Notes recorded in one commit at most.
const GROUP_COMMIT: usize = 256;

/// Whether starting `start` makes its release on the deployment's task: a
/// ref of an app that builds, or of a remote source whose mirror may lack
/// it.
pub(super) async fn needed(ctx: &Context, start: &Start) -> Result<bool, Error> {
    let Target::Ref(git_ref) = &start.target else {
        return Ok(false);
    };
    let app = catalog::app(&ctx.store, &start.app)?;
    catalog::environment(&ctx.store, &start.environment)?;
    let git_ref = if git_ref.is_empty() {
        &app.default_branch
    } else {
        git_ref
    };
    Ok(app.build.is_some() || ctx.sources.needs_fetch(&app, git_ref).await)
}

/// Makes the release of a recorded deployment that holds its lock, then
/// runs it, on its own task.
pub(super) fn spawn(ctx: &Context, recorder: Recorder, lease: Lease, r: Resolved, how: Launch) {
    let d = recorder.deployment();
    let span = tracing::info_span!(
        "deployment",
        deployment_id = %d.id,
        app = %d.app,
        environment = %d.environment,
    );
    let control = ctx.running.register(&d.id);
    let ctx = ctx.clone();
    tokio::spawn(prepare_then_run(ctx, recorder, lease, r, how, control).instrument(span));
}

async fn prepare_then_run(
    ctx: Context,
    mut recorder: Recorder,
    mut lease: Lease,
    r: Resolved,
    how: Launch,
    control: Arc<Control>,
) {
    let id = recorder.deployment().id.clone();
    let made = make(&ctx, &mut recorder, &mut lease, &r, &control).await;
    let failure = match made {
        Ok(Ok(release)) => match ready(&ctx, &mut recorder, release).await {
            Ok(Ok(resolved)) => {
                run::run_with(&ctx, recorder, lease, resolved, &how, control);
                return;
            }
            Ok(Err(err)) => Ok(err),
            Err(err) => Err(err),
        },
        Ok(Err(err)) => Ok(err),
        Err(err) => Err(err),
    };
    let ended = match failure {
        Ok(err) => fail(&mut recorder, &lease, &control, err).await,
        Err(err) => Err(err),
    };
    if let Err(err) = ended {
        // The next start of the control plane ends it.
        tracing::error!(deployment = %id, error = ?err, "recording the deployment failed");
    }
    ctx.running.finish(&id);
    ctx.waiting.wake();
}

/// Cuts the release (fetching and building as needed), recording what it
/// reports and renewing the lease meanwhile.
async fn make(
    ctx: &Context,
    recorder: &mut Recorder,
    lease: &mut Lease,
    r: &Resolved,
    control: &Control,
) -> Result<Result<Release, Error>, StoreError> {
    let (progress, mut notes) = Progress::channel(control.token().clone());
    let (store, sources) = (ctx.store.clone(), ctx.sources.clone());
    let (app, git_ref) = (r.app.name.clone(), r.release.git_ref.clone());
    let work = tokio::spawn(async move {
        releases::create(&store, &sources, &app, &git_ref, &progress)
            .await
            .map(|cut| cut.release)
    });
    super::relay::relay(&mut notes, recorder, lease, GROUP_COMMIT, entry).await?;
    Ok(work
        .await
        .unwrap_or_else(|_| Err(Error::Precondition("preparing the release failed".into()))))
}

/// A note as an event of the deployment itself.
fn entry(note: Note) -> Entry {
    let mut event = host_log("", note.stage, note.level, note.message);
    event.output = note.output.to_owned();
    Entry::from(event)
}

/// Resolves the deployment again with its release (the environment's hosts
/// and current release may have changed meanwhile) and records the release
/// in it.
async fn ready(
    ctx: &Context,
    recorder: &mut Recorder,
    release: Release,
) -> Result<Result<Resolved, Error>, StoreError> {
    let d = recorder.deployment().clone();
    let start = Start::again(&d, release.id.clone());
    let resolved = match resolve::resolve(&ctx.store, &start, Some(release)) {
        Ok(resolved) => resolved,
        Err(err) => return Ok(Err(err)),
    };
    let term = crate::locks::term_of(d.fencing_token);
    let fresh = resolved.record(term, d.kind(), d.author.clone(), d.message.clone(), &d.id);
    recorder.amend(|d| super::again::refresh(d, fresh));
    let release = &resolved.release;
    let built = if release.build_id.is_empty() {
        String::new()
    } else {
        format!(", built by {}", release.build_id)
    };
    let message = format!(
        "release {} of {} ({}): {} files{built}",
        release.id,
        release.git_ref,
        &release.commit[..release.commit.len().min(7)],
        release.file_count
    );
    let event = deployment_event(
        DeploymentStatus::Pending,
        "release",
        LogLevel::Info,
        message,
    );
    recorder.record(event).await?;
    Ok(Ok(resolved))
}

/// Ends the deployment failed (or cancelled) with `err`, freeing the lock;
/// no host was touched.
async fn fail(
    recorder: &mut Recorder,
    lease: &Lease,
    control: &Control,
    err: Error,
) -> Result<(), StoreError> {
    let (status, stage) = match control.stop_request() {
        Some(stop) => {
            recorder.note_cancel(&stop.by, &stop.reason);
            (DeploymentStatus::Cancelled, "cancelled")
        }
        None => (DeploymentStatus::Failed, "failed"),
    };
    let message = format!("preparing the release failed, no host was touched: {err}");
    let event = deployment_event(status, stage, LogLevel::Error, message);
    recorder.record_with(event, vec![lease.release()]).await
}
