//! The end of an operation: its outcome as a result and a final event,
//! journaled before anyone hears of it.

use std::sync::Arc;

use slipway_proto::{
    agent::v1::{LogLevel, OperationResult, Stage},
    daemon::chain,
};

use super::{Done, current};
use crate::{
    error::Error,
    operations::{Event, OperationGuard},
    probes::Probes,
    steps::Ctx,
};

/// Records the outcome, and has `probes` follow the app's live release
/// before anyone hears of it; `what` names the operation in a failure,
/// e.g. "a deploy of release r2 for app web".
pub(super) async fn finish(
    guard: OperationGuard,
    ctx: Ctx,
    probes: &Arc<Probes>,
    previous: Option<String>,
    outcome: Result<Done, Error>,
    what: String,
) {
    let spec = guard.spec().clone();
    let run = guard.log().run_id().to_owned();
    let previous_release = previous.clone().unwrap_or_default();
    let (last, result) = match outcome {
        Ok(Done::Live) => {
            tracing::info!(deployment = %spec.deployment_id, %run, app = %spec.app, release = %spec.release_id, "operation succeeded");
            let result = OperationResult {
                success: true,
                previous_release,
                current_release: spec.release_id.clone(),
                error: String::new(),
            };
            let last = Event {
                stage: Stage::Done,
                percent: 100,
                level: LogLevel::Info,
                message: format!("release {} is live", spec.release_id),
                ..Event::default()
            };
            (last, result)
        }
        Ok(Done::Prepared) => {
            tracing::info!(deployment = %spec.deployment_id, %run, app = %spec.app, release = %spec.release_id, "release prepared");
            // `current` was not switched: it is what it was when this began.
            let now = current(&ctx.app).await.unwrap_or(previous);
            let result = OperationResult {
                success: true,
                previous_release,
                current_release: now.unwrap_or_default(),
                error: String::new(),
            };
            let last = Event {
                stage: Stage::Done,
                percent: 100,
                level: LogLevel::Info,
                message: format!("release {} is ready; not switched", spec.release_id),
                ..Event::default()
            };
            (last, result)
        }
        Err(err) => {
            let mut error = format!("{what} failed: {}", chain(&err));
            if let Some(output) = err.output() {
                error.push_str("\nlast output:\n");
                error.push_str(output);
            }
            tracing::warn!(deployment = %spec.deployment_id, %run, %error, "operation failed");
            // Report what `current` really is now; if even that cannot be
            // read, it was not switched, so it is still the previous one.
            let now = current(&ctx.app).await.unwrap_or(previous);
            let result = OperationResult {
                success: false,
                previous_release,
                current_release: now.unwrap_or_default(),
                error: error.clone(),
            };
            // Progress inside a step may have gone past where it started.
            let percent = ctx
                .log
                .last()
                .map_or(ctx.percent, |e| e.percent.max(ctx.percent));
            let last = Event {
                stage: ctx.stage,
                percent,
                level: LogLevel::Error,
                message: error,
                ..Event::default()
            };
            (last, result)
        }
    };
    let (journal, id, kind) = (ctx.journal.clone(), spec.deployment_id.clone(), spec.kind);
    let (probes, app) = (probes.clone(), ctx.app.clone());
    guard
        .finish(last, result, |events| async move {
            probes.set(&app, journal.read(|data| data.probe.clone()));
            let written = journal.finish(id, kind, events).await;
            if let Err(err) = written {
                // The outcome still streams; a repeat after a restart runs
                // the operation again, which skips finished steps.
                tracing::warn!(error = %chain(&err), "cannot journal the outcome");
            }
        })
        .await;
}
