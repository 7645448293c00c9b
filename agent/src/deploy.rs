//! The steps of a deploy (or of a prepare), and of a switch to a release on
//! disk (a rollback, or the activation of a prepared release), run as their
//! own task so they finish even when the client goes away, each
//! reported as progress events and journaled so a repeat after a restart
//! replays the outcome.

use std::sync::Arc;

use slipway_proto::{
    agent::v1::{LogLevel, Stage},
    daemon::chain,
};

use crate::{
    activation::{Activation, Point},
    error::{Error, blocking},
    hook_output::OutputBudget,
    journal::{Journal, OperationRecord, State, Status, now_unix},
    layout::AppRoot,
    operations::{Kind, OperationGuard},
    prestage::Prestage,
    probes::Probes,
    registry::Registry,
    release::{self, Placed},
    retention, shared,
    steps::Ctx,
};

pub use crate::plans::{DeployPlan, RollbackPlan};

mod outcome;
mod place;
use outcome::finish;
use place::{MATERIALISE_SPAN, MATERIALISE_START};

/// Where each stage of a deploy starts on the 0-100 scale; materialising is
/// the long part.
const LINK_SHARED_AT: u32 = 2;
const BEFORE_ACTIVATE_AT: u32 = 86;
const ACTIVATE_AT: u32 = 90;
const PRUNE_AT: u32 = 97;
/// Where a switch to a release on disk switches.
const SWITCH_AT: u32 = 50;

/// What an operation tells of the app it ran, besides its journal.
#[derive(Clone, Debug)]
pub struct Apps {
    /// The apps GetStatus lists and recovery visits.
    pub registry: Arc<Registry>,
    /// The continuous probes, which follow the app's live release.
    pub probes: Arc<Probes>,
    /// The trees built ahead for each app's next deploy.
    pub prestage: Arc<Prestage>,
}

/// How an operation that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    /// `current` points to the release.
    Live,
    /// The release is ready; `current` was not switched.
    Prepared,
}

fn context(
    guard: &OperationGuard,
    journal: Arc<Journal>,
    app: &AppRoot,
    activation: &Activation,
    environment: &str,
) -> Ctx {
    Ctx {
        log: guard.log().clone(),
        stage: Stage::Prepare,
        percent: 0,
        app: app.clone(),
        journal,
        deployment_id: guard.spec().deployment_id.clone(),
        kind: guard.spec().kind,
        environment: environment.to_owned(),
        activation: activation.clone(),
        cancel: guard.cancel().clone(),
        output: OutputBudget::new(activation.output_limits()),
        metrics: guard.metrics().clone(),
    }
}

/// Runs a deploy to the end and records its final event.
pub async fn deploy(guard: OperationGuard, apps: Apps, journal: Arc<Journal>, plan: DeployPlan) {
    let mut ctx = context(
        &guard,
        journal,
        &plan.app,
        &plan.activation,
        &plan.environment,
    );
    let (mut previous, mut placed) = (None, Placed::Kept);
    let outcome = deploy_steps(&mut ctx, &apps, &plan, &mut previous, &mut placed).await;
    // The tree of a release just placed and live is the likeliest base of
    // the next deploy: built again ahead of it, once this one is over (a
    // prepared release's, once it is activated). Its thread is known
    // before the final event is sent, so whoever follows the operation can
    // wait for the build; it begins after.
    let prestage = matches!(outcome, Ok(Done::Live))
        && placed.is_new()
        && !plan.rebuild
        && !plan.activation.copy;
    let go = prestage.then(|| {
        let manifest = Some(plan.manifest);
        (apps.prestage).prepare(&plan.app, &plan.release_id, manifest)
    });
    let what = guard.spec().to_string();
    finish(guard, ctx, &apps.probes, previous, outcome, what).await;
    if let Some(go) = go {
        go.go();
    }
}

async fn deploy_steps(
    ctx: &mut Ctx,
    apps: &Apps,
    plan: &DeployPlan,
    previous: &mut Option<String>,
    placed: &mut Placed,
) -> Result<Done, Error> {
    let (app, id) = (&plan.app, plan.release_id.as_str());
    let what = match (plan.rebuild, plan.prepare_only) {
        (true, _) => "repairing (building afresh, without switching)",
        (false, true) => "preparing (without switching)",
        (false, false) => "deploying",
    };
    ctx.say(
        LogLevel::Info,
        format!(
            "{what} release {id} of app {} to {} ({} files)",
            app.name(),
            app.root().display(),
            plan.manifest.len()
        ),
    );
    let root = app.clone();
    blocking(move || {
        root.ensure().map_err(|source| Error::CreateDir {
            path: root.root().to_owned(),
            source,
        })
    })
    .await?;
    record_app(ctx, &apps.registry, app).await;
    let is_current;
    (is_current, *previous) = begin(ctx, plan.kind(), id, Some(plan.keep)).await?;
    let outcome = async {
        ctx.checkpoint("building the release")?;
        *placed = build(ctx, plan, &apps.prestage, is_current, previous.as_deref()).await?;
        if plan.prepare_only {
            return Ok(Done::Prepared);
        }
        ctx.activate(id, previous.as_deref(), ACTIVATE_AT).await?;
        Ok(Done::Live)
    }
    .await;
    if let Err(Error::Cancelled { .. }) = &outcome
        && !is_current
    {
        // Cancelled before any switch (after one, the switch back marks
        // it): whatever it got to, it must not look ready to be switched to
        // (retention keeps those) or linger as unfinished.
        let state = ctx.journal.read(|data| data.state(id));
        if matches!(state, Some(State::Unfinished | State::Ready))
            && let Err(err) = ctx.set_state(id, State::Failed).await
        {
            tracing::warn!(error = %chain(&err), "cannot record the cancelled release");
        }
    }
    if outcome? == Done::Prepared {
        return Ok(Done::Prepared);
    }
    prune(ctx, app, plan.keep, id, previous.as_deref()).await;
    Ok(Done::Live)
}

/// Links shared paths, materialises the release (patching the app's
/// prestaged tree when it can) and runs its before-activate hooks (unless it
/// is current already), leaving it ready. Returns how it was placed.
async fn build(
    ctx: &mut Ctx,
    plan: &DeployPlan,
    prestage: &Arc<Prestage>,
    is_current: bool,
    previous: Option<&str>,
) -> Result<Placed, Error> {
    let (app, id) = (&plan.app, plan.release_id.as_str());
    let shared_paths = plan.activation.shared.clone();
    if !shared_paths.is_empty() {
        ctx.checkpoint("linking shared paths")?;
        ctx.enter(Stage::LinkShared, LINK_SHARED_AT);
        let (root, paths) = (app.clone(), shared_paths.clone());
        for line in blocking(move || shared::prepare(&root, &paths)).await? {
            ctx.say(LogLevel::Info, line);
        }
    }
    ctx.checkpoint("materialising")?;
    if !is_current {
        ctx.set_state(id, State::Unfinished).await?;
    }

    ctx.enter(Stage::Materialise, MATERIALISE_START);
    let how = if plan.activation.copy {
        "copies"
    } else {
        "hard links"
    };
    ctx.say(
        LogLevel::Info,
        format!("materialising release {id} ({how})"),
    );
    let replaced = plan.rebuild && {
        let release = app.release(id);
        blocking(move || Ok::<_, Error>(release.is_dir())).await?
    };
    let placed = {
        let (app, plan, log) = (app.clone(), plan.clone(), ctx.log.clone());
        let prestage = prestage.clone();
        blocking(move || place::place(&app, &plan, &log, &prestage)).await?
    };
    ctx.enter(Stage::Materialise, MATERIALISE_START + MATERIALISE_SPAN);
    ctx.say(
        LogLevel::Info,
        match (&placed, replaced) {
            (Placed::Built, true) => format!(
                "release {id} is complete: built afresh and swapped in for the copy on disk"
            ),
            (Placed::Built, false) => format!("release {id} is complete"),
            (Placed::Patched { from, patch }, _) => format!(
                "release {id} is complete: the tree prestaged from {from}, {} entries placed \
                 and {} removed",
                patch.placed, patch.removed
            ),
            (Placed::Kept, _) => format!("release {id} was already on this host; reusing it"),
        },
    );

    if !plan.activation.secrets.is_empty() {
        ctx.write_secrets(id).await?;
    }
    if is_current {
        ctx.say(
            LogLevel::Info,
            format!("release {id} is already current; before-activate hooks do not run again"),
        );
    } else {
        ctx.enter(Stage::Hook, BEFORE_ACTIVATE_AT);
        if let Err(err) = ctx.run_hooks(Point::BeforeActivate, id, previous).await {
            if let Err(journal) = ctx.set_state(id, State::Failed).await {
                tracing::warn!(error = %chain(&journal), "cannot record the failed release");
            }
            return Err(err);
        }
        ctx.set_state(id, State::Ready).await?;
    }
    Ok(placed)
}

/// Removes releases beyond retention after a switch. A failure is a
/// warning: `current` already points to the new release, the deploy stands.
async fn prune(ctx: &mut Ctx, app: &AppRoot, keep: usize, id: &str, previous: Option<&str>) {
    ctx.enter(Stage::Prune, PRUNE_AT);
    let (root, journal) = (app.clone(), ctx.journal.clone());
    let protect: Vec<String> = [Some(id), previous]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let pruned = blocking(move || {
        let protect: Vec<&str> = protect.iter().map(String::as_str).collect();
        retention::prune(&root, &journal, keep, &protect)
    })
    .await;
    match pruned {
        Ok(pruned) => {
            if !pruned.old.is_empty() {
                ctx.say(LogLevel::Info, format!("pruned {}", pruned.old.join(", ")));
            }
            if !pruned.broken.is_empty() {
                let message = format!("removed failed or unfinished {}", pruned.broken.join(", "));
                ctx.say(LogLevel::Info, message);
            }
        }
        Err(err) => ctx.say(
            LogLevel::Warn,
            format!("could not prune old releases: {}", chain(&err)),
        ),
    }
}

/// Runs a switch to a release on disk to the end and records its final
/// event: a rollback, or, with `prepared_keep`, the activation of the
/// release this deployment prepared, which finishes it as a deploy would
/// (and reads as an activation, whichever request started it).
pub async fn switch(guard: OperationGuard, apps: Apps, journal: Arc<Journal>, plan: RollbackPlan) {
    let mut ctx = context(
        &guard,
        journal,
        &plan.app,
        &plan.activation,
        &plan.environment,
    );
    let mut previous = None;
    let (app, id) = (&plan.app, plan.release_id.as_str());
    let what = match (plan.prepared_keep, plan.secrets_only) {
        (Some(_), _) => format!(
            "the activation of prepared release {id} for app {}",
            app.name()
        ),
        (None, true) => format!("applying secrets to release {id} for app {}", app.name()),
        (None, false) => guard.spec().to_string(),
    };
    let outcome = async {
        let message = match (plan.prepared_keep, plan.secrets_only) {
            (Some(_), _) => format!(
                "activating prepared release {id} of app {}: switching current to it",
                app.name()
            ),
            (None, true) => format!(
                "applying secrets to the current release {id} of app {}",
                app.name()
            ),
            (None, false) => format!("rolling back app {} to release {id}", app.name()),
        };
        ctx.say(LogLevel::Info, message);
        record_app(&ctx, &apps.registry, app).await;
        (_, previous) = begin(&ctx, Kind::Rollback, id, None).await?;
        // A rollback takes the environment's secrets of now; an
        // ApplySecrets writes them even when there are none left.
        if plan.secrets_only || !ctx.activation.secrets.is_empty() {
            ctx.write_secrets(id).await?;
        }
        ctx.activate(id, previous.as_deref(), SWITCH_AT).await?;
        // The second phase of a two-phase deploy finishes it as a deploy
        // would; a plain rollback leaves retention to the next deploy.
        if let Some(keep) = plan.prepared_keep {
            prune(&mut ctx, app, keep, id, previous.as_deref()).await;
        }
        Ok(Done::Live)
    }
    .await;
    // As a deploy does (see there), for the release it activated.
    let activated = plan.prepared_keep.is_some() && outcome.is_ok() && !plan.activation.copy;
    let go = activated.then(|| (apps.prestage).prepare(app, id, None));
    finish(guard, ctx, &apps.probes, previous, outcome, what).await;
    if let Some(go) = go {
        go.go();
    }
}

/// Reads `current` and journals the operation as running. Returns whether
/// `current` already points to `id`, and the release to switch back to on
/// failure: what `current` points to, or, when an interrupted run of this
/// deployment already switched, what it pointed to before that run.
async fn begin(
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    keep_releases: Option<usize>,
) -> Result<(bool, Option<String>), Error> {
    let current = current(&ctx.app).await?;
    let is_current = current.as_deref() == Some(id);
    let (id, deployment) = (id.to_owned(), ctx.deployment_id.clone());
    let previous = ctx
        .journal
        .change(move |data| {
            let carried = data
                .operation(&deployment, kind)
                .filter(|o| o.status != Status::Finished && o.release_id == id)
                .and_then(|o| o.previous_release.clone())
                .filter(|_| is_current);
            let previous = carried.or(current);
            data.begin_operation(OperationRecord {
                deployment_id: deployment,
                kind,
                release_id: id,
                previous_release: previous.clone(),
                status: Status::Running,
                started_unix: now_unix(),
                finished_unix: None,
                hook: None,
                keep_releases: keep_releases.filter(|_| kind == Kind::Prepare),
                run_id: String::new(),
                events: Vec::new(),
                seq: 0,
            });
            previous
        })
        .await?;
    Ok((is_current, previous))
}

async fn current(app: &AppRoot) -> Result<Option<String>, Error> {
    let app = app.clone();
    blocking(move || release::current_release(&app)).await
}

/// Remembers the app for GetStatus and recovery. A failure only costs the
/// listing, so it is a warning, not a failed deploy.
async fn record_app(ctx: &Ctx, registry: &Arc<Registry>, app: &AppRoot) {
    let (registry, root) = (registry.clone(), app.clone());
    if let Err(err) = blocking(move || registry.record(root.name(), root.root())).await {
        ctx.say(
            LogLevel::Warn,
            format!("could not record the app: {}", chain(&err)),
        );
    }
}
