//! GetStatus, GetHealth and PinRelease: the releases of each app on disk
//! with their journaled state, size and pin, `current` and the previous
//! good release; the host's facts with each app's continuous probes; and
//! the agent's metrics.

use std::sync::Arc;

use slipway_proto::{
    agent::v1::{AppStatus, GetHealthResponse, GetStatusResponse, ReleaseOnDisk},
    daemon::chain,
};

use super::Agent;
use crate::{
    error::{Error, blocking},
    host,
    journal::{JournalData, State},
    layout::AppRoot,
    metrics::Metrics,
    release::{self, ReleaseError},
};

impl Agent {
    /// Where this agent counts what it does.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.operations.metrics()
    }

    /// Sets the gauges read at scrape time: each registered app's content
    /// store size. Blocking (walks the stores).
    pub fn refresh_metrics(&self) {
        let mut sizes = Vec::new();
        for (name, root) in self.registry.apps() {
            let objects = AppRoot::new(name.clone(), root).objects();
            match release::size(&objects) {
                Ok(bytes) => sizes.push((name, bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(app = %name, error = %err, "cannot size the content store")
                }
            }
        }
        self.metrics().set_store_sizes(sizes);
    }

    /// The host's facts and each probed app's latest outcomes.
    pub async fn health(self: &Arc<Self>) -> Result<GetHealthResponse, Error> {
        let agent = self.clone();
        let host = blocking(move || {
            let (roots, started) = (agent.roots.apps_dir(), agent.started);
            Ok::<_, Error>(host::host_info(&agent.host_name, roots, started))
        })
        .await?;
        Ok(GetHealthResponse {
            host: Some(host),
            apps: self.probes.snapshot(),
        })
    }

    /// Stops every continuous probe (when shutting down).
    pub fn stop_probes(&self) {
        self.probes.stop_all();
    }

    /// The host and the given apps; every registered app when none is given.
    pub async fn status(
        self: &Arc<Self>,
        apps: Vec<AppRoot>,
        sizes: bool,
    ) -> Result<GetStatusResponse, Error> {
        let apps = if apps.is_empty() {
            let registered = self.registry.apps();
            registered
                .into_iter()
                .map(|(name, root)| AppRoot::new(name, root))
                .collect()
        } else {
            apps
        };
        let agent = self.clone();
        blocking(move || {
            let mut host = host::host_info(&agent.host_name, agent.roots.apps_dir(), agent.started);
            host.last_upgrade = agent.upgrades.outcome();
            let apps = apps
                .iter()
                .map(|app| agent.app_status(app, sizes))
                .collect::<Result<_, _>>()?;
            Ok::<_, Error>(GetStatusResponse {
                host: Some(host),
                apps,
            })
        })
        .await
    }

    /// Blocking.
    fn app_status(&self, app: &AppRoot, sizes: bool) -> Result<AppStatus, Error> {
        // A hand-made `current` or a broken journal must not hide the rest
        // of the status.
        let current = release::current_release(app).unwrap_or_else(|err| {
            tracing::warn!(app = app.name(), error = %chain(&err), "cannot read current");
            None
        });
        let journal = match self.journals.get(app) {
            Ok(journal) => journal.read(JournalData::clone),
            Err(err) => {
                tracing::warn!(app = app.name(), error = %chain(&err), "cannot read the journal");
                JournalData::default()
            }
        };
        let ids = release::list(app)?;
        let mut releases = Vec::with_capacity(ids.len());
        for id in &ids {
            releases.push(self.on_disk(app, id, current.as_deref(), &journal, sizes)?);
        }
        let previous_release = journal
            .previous_good
            .filter(|id| ids.contains(id))
            .unwrap_or_default();
        Ok(AppStatus {
            name: app.name().to_owned(),
            deploy_root: app.root().display().to_string(),
            current_release: current.unwrap_or_default(),
            releases,
            running_deployment: self.operations.running_on(app.root()).unwrap_or_default(),
            prestaged_release: self.prestage.ready(app).unwrap_or_default(),
            previous_release,
            fencing_token: journal.fencing_token,
            fencing_epoch: journal.fencing_epoch.clone(),
        })
    }

    /// One release on disk as reported. A release the journal does not know
    /// (from before it) is ready, or active when current. Blocking.
    fn on_disk(
        &self,
        app: &AppRoot,
        id: &str,
        current: Option<&str>,
        journal: &JournalData,
        sizes: bool,
    ) -> Result<ReleaseOnDisk, Error> {
        let record = journal.releases.get(id);
        let state = match record.map(|r| r.state) {
            _ if current == Some(id) => State::Active,
            Some(State::Active) | None => State::Ready,
            Some(state) => state,
        };
        Ok(ReleaseOnDisk {
            id: id.to_owned(),
            size_bytes: if sizes { self.size(app, id)? } else { 0 },
            state: state.to_wire() as i32,
            pinned: record.is_some_and(|r| r.pinned),
        })
    }

    /// Size of a release, measured once: releases do not change once
    /// renamed into place, and a status poll must not walk every file
    /// every time. Blocking.
    fn size(&self, app: &AppRoot, id: &str) -> Result<u64, Error> {
        let path = app.release(id);
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(size) = sizes.get(&path) {
            return Ok(*size);
        }
        let size = release::size(&path).map_err(|source| ReleaseError::Io {
            action: "measure",
            path: path.clone(),
            source,
        })?;
        // Forget pruned releases of this app.
        let releases = app.releases();
        sizes.retain(|p, _| p.parent() != Some(&releases) || p.is_dir());
        sizes.insert(path, size);
        Ok(size)
    }

    /// Pins or unpins a release on disk, protecting it from retention. A
    /// fencing token of 0 (outside a deployment) is not checked.
    pub async fn pin(
        self: &Arc<Self>,
        app: AppRoot,
        release_id: String,
        pinned: bool,
        fence: impl Into<crate::fencing::Fence>,
    ) -> Result<ReleaseOnDisk, Error> {
        let fence = fence.into();
        self.registry.check_overlap(app.name(), app.root())?;
        let agent = self.clone();
        blocking(move || {
            let journal = agent.journals.get(&app)?;
            // Checked first, recorded only with the pin itself.
            crate::fencing::check(&journal, app.name(), &fence)?;
            let current = release::current_release(&app)?;
            let data = journal.update(|data| {
                // Under the journal's lock: a prune cannot remove it meanwhile.
                if !app.release(&release_id).is_dir() {
                    return Err(Error::from(ReleaseError::NotOnHost {
                        release_id: release_id.clone(),
                    }));
                }
                if !data.releases.contains_key(&release_id) {
                    let state = if current.as_deref() == Some(release_id.as_str()) {
                        State::Active
                    } else {
                        State::Ready
                    };
                    data.set_state(&release_id, state, "");
                }
                if let Some(record) = data.releases.get_mut(&release_id) {
                    record.pinned = pinned;
                }
                crate::fencing::apply(data, app.name(), &fence)?;
                Ok(data.clone())
            })?;
            let action = if pinned { "pinned" } else { "unpinned" };
            tracing::info!(app = app.name(), release = %release_id, "{action}");
            agent.on_disk(&app, &release_id, current.as_deref(), &data, true)
        })
        .await
    }
}
