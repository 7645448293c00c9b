//! CheckDrift: a release on disk compared with the manifest kept beside it,
//! and, for a repair, the stored objects that drifted files shared removed
//! when their content no longer matches their hash.

use std::sync::Arc;

use slipway_proto::agent::v1::CheckDriftResponse;

use super::Agent;
use crate::{
    drift,
    error::{Error, blocking},
    fencing::Fence,
    layout::AppRoot,
    objects::ObjectStore,
};

/// What a CheckDrift request asks, validated.
#[derive(Debug)]
pub struct DriftQuestion {
    /// The app.
    pub app: AppRoot,
    /// The release to check; None: the current one.
    pub release: Option<String>,
    /// Findings listed at most.
    pub limit: usize,
    /// With a fence: remove the corrupted objects of drifted files.
    pub discard: Option<Fence>,
}

impl Agent {
    /// Compares the release with its manifest. Reads only, unless the
    /// question carries a fence to discard corrupted objects with: that
    /// is fenced like an upload. An operation of the app running at the
    /// start or the end of the check is reported, since what was found may
    /// be a release being built or switched.
    pub async fn check_drift(
        self: &Arc<Self>,
        question: DriftQuestion,
    ) -> Result<CheckDriftResponse, Error> {
        let DriftQuestion {
            app,
            release,
            limit,
            discard,
        } = question;
        if let Some(fence) = &discard {
            let journal = self.journal(&app).await?;
            Self::fence(&journal, &app, fence).await?;
        }
        let before = self.operations.running_on(app.root());
        let root = app.root().to_owned();
        let discarding = discard.is_some();
        let (known, prestage) = (self.known_objects.clone(), self.prestage.clone());
        let (checked, discarded) = blocking(move || {
            let checked = drift::check(&app, release.as_deref(), limit)?;
            let mut discarded = 0;
            if discarding {
                let store = ObjectStore::new(&app);
                for sha256 in &checked.report.suspects {
                    let removed = store.discard_if_corrupt(sha256)?;
                    if removed > 0 {
                        known.forget(&store, sha256);
                        // Its tree may link the object's bad inode too.
                        prestage.forget(&app);
                    }
                    discarded += removed;
                }
            }
            Ok::<_, Error>((checked, discarded))
        })
        .await?;
        let running = before.or_else(|| self.operations.running_on(&root));
        let (findings, truncated) = checked.report.findings();
        Ok(CheckDriftResponse {
            current_release: checked.current.unwrap_or_default(),
            checked_release: checked.checked.unwrap_or_default(),
            unchecked: checked.unchecked.unwrap_or_default(),
            counts: Some(checked.report.counts),
            findings,
            truncated,
            releases: checked.releases,
            releases_truncated: checked.releases_truncated,
            running_deployment: running.unwrap_or_default(),
            files_checked: checked.report.files_checked,
            bytes_hashed: checked.report.bytes_hashed,
            objects_discarded: discarded,
        })
    }
}
