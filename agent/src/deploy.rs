//! The steps of a deploy and of a rollback, run as their own task so they
//! finish even when the client goes away, each reported as progress events.

use std::sync::Arc;

use slipway_proto::agent::v1::{LogLevel, OperationResult, Stage};

use crate::{
    error::{Error, blocking, chain},
    layout::AppRoot,
    manifest::Manifest,
    objects::ObjectStore,
    operations::{EventLog, OperationGuard},
    registry::Registry,
    release,
};

/// Where each stage of a deploy starts on the 0-100 scale; materialising is
/// the long part.
const MATERIALISE_START: u32 = 5;
const MATERIALISE_SPAN: u32 = 80;
const ACTIVATE_AT: u32 = 90;
const PRUNE_AT: u32 = 95;

/// A validated Deploy request.
#[derive(Clone, Debug)]
pub struct DeployPlan {
    /// The app and its root.
    pub app: AppRoot,
    /// The deployment id.
    pub deployment_id: String,
    /// The release to build and activate.
    pub release_id: String,
    /// Its files.
    pub manifest: Manifest,
    /// Releases to keep (already defaulted).
    pub keep: usize,
}

/// A validated Rollback request.
#[derive(Clone, Debug)]
pub struct RollbackPlan {
    /// The app and its root.
    pub app: AppRoot,
    /// The deployment id.
    pub deployment_id: String,
    /// The release to activate.
    pub release_id: String,
}

/// Records events and remembers the stage and percent, so a failure is
/// reported where it happened.
struct Reporter {
    log: Arc<EventLog>,
    stage: Stage,
    percent: u32,
}

impl Reporter {
    fn enter(&mut self, stage: Stage, percent: u32) {
        self.stage = stage;
        self.percent = percent;
    }

    fn say(&self, level: LogLevel, message: impl Into<String>) {
        self.log
            .push(self.stage, self.percent, level, message, None);
    }
}

/// Runs a deploy to the end and records its final event.
pub async fn deploy(guard: OperationGuard, registry: Arc<Registry>, plan: DeployPlan) {
    let mut reporter = Reporter {
        log: guard.log().clone(),
        stage: Stage::Prepare,
        percent: 0,
    };
    let mut previous = None;
    let outcome = deploy_steps(&mut reporter, &registry, &plan, &mut previous).await;
    finish(guard, reporter, &plan.app, previous, outcome).await;
}

async fn deploy_steps(
    r: &mut Reporter,
    registry: &Arc<Registry>,
    plan: &DeployPlan,
    previous: &mut Option<String>,
) -> Result<(), Error> {
    let (app, id) = (&plan.app, plan.release_id.as_str());
    r.say(
        LogLevel::Info,
        format!(
            "deploying release {id} of app {} to {} ({} files)",
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
    record_app(r, registry, app).await;
    *previous = current(app).await?;

    r.enter(Stage::Materialise, MATERIALISE_START);
    r.say(LogLevel::Info, format!("materialising release {id}"));
    let built = {
        let (app, plan, log) = (app.clone(), plan.clone(), r.log.clone());
        blocking(move || {
            let store = ObjectStore::new(&app);
            let mut reported = 0;
            let mut progress = |done: usize, total: usize| {
                // About every 5%: enough to watch, not a flood of events.
                let twentieths = done * 20 / total;
                if twentieths > reported {
                    reported = twentieths;
                    let percent = MATERIALISE_START + MATERIALISE_SPAN * done as u32 / total as u32;
                    let message = format!("linked {done} of {total} files");
                    log.push(Stage::Materialise, percent, LogLevel::Info, message, None);
                }
            };
            let (release, deployment) = (&plan.release_id, &plan.deployment_id);
            release::materialise(
                &app,
                &store,
                release,
                deployment,
                &plan.manifest,
                &mut progress,
            )
        })
        .await?
    };
    r.enter(Stage::Materialise, MATERIALISE_START + MATERIALISE_SPAN);
    r.say(
        LogLevel::Info,
        if built {
            format!("release {id} is complete")
        } else {
            format!("release {id} was already on this host; reusing it")
        },
    );

    r.enter(Stage::Activate, ACTIVATE_AT);
    activate(r, app, id, previous.as_deref()).await?;

    r.enter(Stage::Prune, PRUNE_AT);
    let (root, keep) = (app.clone(), plan.keep);
    let protect: Vec<String> = [Some(id.to_owned()), previous.clone()]
        .into_iter()
        .flatten()
        .collect();
    let pruned = blocking(move || {
        let protect: Vec<&str> = protect.iter().map(String::as_str).collect();
        release::prune(&root, keep, &protect)
    })
    .await;
    match pruned {
        Ok(removed) if removed.is_empty() => {
            r.say(LogLevel::Info, format!("nothing to prune (keeping {keep})"))
        }
        Ok(removed) => r.say(LogLevel::Info, format!("pruned {}", removed.join(", "))),
        // `current` already points to the new release: the deploy stands.
        Err(err) => r.say(
            LogLevel::Warn,
            format!("could not prune old releases: {}", chain(&err)),
        ),
    }
    Ok(())
}

/// Runs a rollback to the end and records its final event.
pub async fn rollback(guard: OperationGuard, registry: Arc<Registry>, plan: RollbackPlan) {
    let mut reporter = Reporter {
        log: guard.log().clone(),
        stage: Stage::Prepare,
        percent: 0,
    };
    let mut previous = None;
    let outcome = async {
        let (app, id) = (&plan.app, plan.release_id.as_str());
        reporter.say(
            LogLevel::Info,
            format!("rolling back app {} to release {id}", app.name()),
        );
        record_app(&reporter, &registry, app).await;
        previous = current(app).await?;
        reporter.enter(Stage::Activate, 50);
        activate(&reporter, app, id, previous.as_deref()).await
    }
    .await;
    finish(guard, reporter, &plan.app, previous, outcome).await;
}

async fn current(app: &AppRoot) -> Result<Option<String>, Error> {
    let app = app.clone();
    blocking(move || release::current_release(&app)).await
}

/// Switches `current` unless it already points to `id`.
async fn activate(
    r: &Reporter,
    app: &AppRoot,
    id: &str,
    previous: Option<&str>,
) -> Result<(), Error> {
    if previous == Some(id) {
        r.say(LogLevel::Info, format!("current already points to {id}"));
        return Ok(());
    }
    let (root, target) = (app.clone(), id.to_owned());
    blocking(move || release::switch(&root, &target)).await?;
    let was = previous.map_or_else(|| "nothing".to_owned(), str::to_owned);
    r.say(
        LogLevel::Info,
        format!("current now points to {id} (was {was})"),
    );
    Ok(())
}

/// Remembers the app for GetStatus. A failure only costs the listing, so it
/// is a warning, not a failed deploy.
async fn record_app(r: &Reporter, registry: &Arc<Registry>, app: &AppRoot) {
    let (registry, root) = (registry.clone(), app.clone());
    if let Err(err) = blocking(move || registry.record(root.name(), root.root())).await {
        r.say(
            LogLevel::Warn,
            format!("could not record the app: {}", chain(&err)),
        );
    }
}

async fn finish(
    guard: OperationGuard,
    r: Reporter,
    app: &AppRoot,
    previous: Option<String>,
    outcome: Result<(), Error>,
) {
    let spec = guard.spec().clone();
    let previous_release = previous.clone().unwrap_or_default();
    match outcome {
        Ok(()) => {
            tracing::info!(deployment = %spec.deployment_id, app = %spec.app, release = %spec.release_id, "operation succeeded");
            let result = OperationResult {
                success: true,
                previous_release,
                current_release: spec.release_id.clone(),
                error: String::new(),
            };
            let message = format!("release {} is live", spec.release_id);
            guard.finish(Stage::Done, 100, LogLevel::Info, message, result);
        }
        Err(err) => {
            let error = format!("{spec} failed: {}", chain(&err));
            tracing::warn!(deployment = %spec.deployment_id, %error, "operation failed");
            // Report what `current` really is now; if even that cannot be
            // read, it was not switched, so it is still the previous one.
            let now = current(app).await.unwrap_or(previous);
            let result = OperationResult {
                success: false,
                previous_release,
                current_release: now.unwrap_or_default(),
                error: error.clone(),
            };
            // Progress inside a step may have gone past where it started.
            let percent = r.log.last().map_or(r.percent, |e| e.percent.max(r.percent));
            guard.finish(r.stage, percent, LogLevel::Error, error, result);
        }
    }
}
