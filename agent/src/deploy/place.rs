//! Placing a release's files, on a blocking thread: materialised from the
//! object store (reused when it is on disk, or built afresh for a repair),
//! with progress at most once a second, the pause point tests use, and the
//! shared paths linked into it.

use slipway_proto::agent::v1::{LogLevel, Stage};

use super::DeployPlan;
use crate::{
    layout::AppRoot,
    objects::ObjectStore,
    operations::EventLog,
    pause::{self, PausePoint},
    prestage::Prestage,
    release::{Build, Placed, ReleaseError, materialise},
    shared,
};

/// Where materialising starts on the deploy's 0-100 scale...
pub(super) const MATERIALISE_START: u32 = 5;
/// ...and how much of it it takes: it is the long part.
pub(super) const MATERIALISE_SPAN: u32 = 80;
/// The least time between two "placed N of M files" events.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Materialises the plan's release under `app`, from the tree `prestage`
/// holds for it when it can, reporting to `log`; returns how (when it was
/// on disk and is kept, its shared paths are linked again). Blocking.
pub(super) fn place(
    app: &AppRoot,
    plan: &DeployPlan,
    log: &EventLog,
    prestage: &Prestage,
) -> Result<Placed, ReleaseError> {
    let store = ObjectStore::new(app);
    let mut reported = std::time::Instant::now();
    let pause = PausePoint::configured();
    let mut progress = |done: usize, total: usize| {
        let percent = MATERIALISE_START + MATERIALISE_SPAN * done as u32 / total as u32;
        // At most one a second, none for a release placed within
        // one: "complete" follows anyway.
        if reported.elapsed() >= PROGRESS_EVERY && done < total {
            reported = std::time::Instant::now();
            let message = format!("placed {done} of {total} files");
            log.push(Stage::Materialise, percent, LogLevel::Info, message, None);
        }
        if pause.is_some_and(|point| point.reached(done, total)) {
            let message = format!("paused at {done} of {total} files ({})", pause::VAR);
            log.push(Stage::Materialise, percent, LogLevel::Warn, message, None);
            pause::hold();
        }
    };
    let at = MATERIALISE_START + MATERIALISE_SPAN;
    let mut link = |dir: &std::path::Path| {
        for line in shared::link(dir, &plan.activation.shared)? {
            log.push(Stage::LinkShared, at, LogLevel::Info, line, None);
        }
        Ok(())
    };
    let build = Build {
        copy: plan.activation.copy,
        rebuild: plan.rebuild,
        progress: &mut progress,
        finish: &mut link,
        prestaged: &mut |staging, manifest| prestage.take(app, staging, manifest),
    };
    let (release, deployment) = (&plan.release_id, &plan.deployment_id);
    let placed = materialise(app, &store, release, deployment, &plan.manifest, build)?;
    if placed == Placed::Kept {
        // Reused: links a spec added since it was built.
        link(&app.release(release))?;
    }
    Ok(placed)
}
