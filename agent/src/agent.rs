//! What the agent does, one method per RPC: the domain behind the thin gRPC
//! handlers. Owns the app roots, the operations, and the app registry.

use std::{
    collections::HashMap,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Instant,
};

use futures_util::Stream;
use slipway_proto::agent::v1::{AppStatus, GetStatusResponse, ProgressEvent, ReleaseOnDisk};

use crate::{
    config::Config,
    deploy::{self, DeployPlan, RollbackPlan},
    error::{Error, blocking},
    host,
    layout::{self, AppRoot, Roots},
    objects::ObjectStore,
    operations::{Begin, Kind, Operations, Spec},
    registry::Registry,
    release::{self, ReleaseError},
    upload::Upload,
};

/// The events of an operation: a replay from the first, then live ones.
pub type EventStream = Pin<Box<dyn Stream<Item = ProgressEvent> + Send>>;

/// The agent of this host.
#[derive(Debug)]
pub struct Agent {
    host_name: String,
    roots: Roots,
    registry: Arc<Registry>,
    operations: Arc<Operations>,
    // Releases never change once renamed into place, so their sizes are
    // computed once: a status poll must not walk every file every time.
    sizes: Mutex<HashMap<PathBuf, u64>>,
    started: Instant,
}

impl Agent {
    /// Prepares the data directory and loads the app registry.
    pub async fn open(config: &Config) -> Result<Arc<Self>, Error> {
        let data_dir = config.data_dir.clone();
        let registry = blocking(move || {
            layout::create_dir_synced(&data_dir).map_err(|source| Error::CreateDir {
                path: data_dir.clone(),
                source,
            })?;
            Ok::<_, Error>(Registry::open(&data_dir)?)
        })
        .await?;
        Ok(Arc::new(Self {
            host_name: config.host_name.clone(),
            roots: Roots::new(config.apps_dir.clone(), config.allowed_roots.clone()),
            registry: Arc::new(registry),
            operations: Operations::new(),
            sizes: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }))
    }

    /// Where apps may live, for resolving requests.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// The hashes in `wanted` the app's store lacks, in request order.
    pub async fn missing_objects(
        &self,
        app: AppRoot,
        wanted: Vec<String>,
    ) -> Result<Vec<String>, Error> {
        blocking(move || Ok::<_, Error>(ObjectStore::new(&app).missing(&wanted))).await
    }

    /// Starts receiving objects into the app's store, creating its
    /// directories on first use.
    pub async fn upload(&self, app: AppRoot) -> Result<Upload, Error> {
        let store = ObjectStore::new(&app);
        blocking(move || {
            app.ensure().map_err(|source| Error::CreateDir {
                path: app.root().to_owned(),
                source,
            })
        })
        .await?;
        Ok(Upload::new(store))
    }

    /// Starts a deploy, or follows the one with the same deployment id.
    /// Everything that can be refused is refused before this returns.
    pub async fn deploy(&self, plan: DeployPlan) -> Result<EventStream, Error> {
        let spec = spec(
            Kind::Deploy,
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        // Outside the app's lock: objects are never removed, so what this
        // finds still holds when the operation starts.
        let plan = blocking(move || {
            release::preflight(&ObjectStore::new(&plan.app), &plan.manifest)?;
            Ok::<_, ReleaseError>(plan)
        })
        .await?;
        match self.operations.begin(spec)? {
            Begin::Existing(log) => Ok(Box::pin(log.subscribe())),
            Begin::New(guard) => {
                let events = guard.log().subscribe();
                tokio::spawn(deploy::deploy(guard, self.registry.clone(), plan));
                Ok(Box::pin(events))
            }
        }
    }

    /// Starts a rollback to a release on disk, or follows the one with the
    /// same deployment id.
    pub async fn rollback(&self, plan: RollbackPlan) -> Result<EventStream, Error> {
        let spec = spec(
            Kind::Rollback,
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        let release = plan.app.release(&plan.release_id);
        if !blocking(move || Ok::<_, Error>(release.is_dir())).await? {
            return Err(ReleaseError::NotOnHost {
                release_id: plan.release_id,
            }
            .into());
        }
        match self.operations.begin(spec)? {
            Begin::Existing(log) => Ok(Box::pin(log.subscribe())),
            Begin::New(guard) => {
                let events = guard.log().subscribe();
                tokio::spawn(deploy::rollback(guard, self.registry.clone(), plan));
                Ok(Box::pin(events))
            }
        }
    }

    /// The host and the given apps; every registered app when none is given.
    pub async fn status(self: &Arc<Self>, apps: Vec<AppRoot>) -> Result<GetStatusResponse, Error> {
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
            let host = host::host_info(&agent.host_name, agent.roots.apps_dir(), agent.started);
            let apps = apps
                .iter()
                .map(|app| agent.app_status(app))
                .collect::<Result<_, _>>()?;
            Ok::<_, Error>(GetStatusResponse {
                host: Some(host),
                apps,
            })
        })
        .await
    }

    /// Blocking.
    fn app_status(&self, app: &AppRoot) -> Result<AppStatus, Error> {
        // A hand-made `current` must not hide the rest of the status.
        let current = release::current_release(app).unwrap_or_else(|err| {
            tracing::warn!(app = app.name(), error = %crate::error::chain(&err), "cannot read current");
            None
        });
        let ids = release::list(app)?;
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        let releases_dir = app.releases();
        sizes.retain(|path, _| {
            path.parent() != Some(&releases_dir) || ids.iter().any(|id| path.ends_with(id))
        });
        let mut releases = Vec::with_capacity(ids.len());
        for id in ids {
            let path = app.release(&id);
            let size_bytes = match sizes.get(&path) {
                Some(size) => *size,
                None => {
                    let size = release::size(&path).map_err(|source| ReleaseError::Io {
                        action: "measure",
                        path: path.clone(),
                        source,
                    })?;
                    sizes.insert(path, size);
                    size
                }
            };
            releases.push(ReleaseOnDisk {
                id,
                size_bytes,
                ..Default::default()
            });
        }
        Ok(AppStatus {
            name: app.name().to_owned(),
            deploy_root: app.root().display().to_string(),
            current_release: current.unwrap_or_default(),
            releases,
            running_deployment: self.operations.running_on(app.root()).unwrap_or_default(),
            previous_release: String::new(),
        })
    }

    /// Resolves once no operation is running (used when shutting down).
    pub async fn wait_idle(&self) {
        self.operations.wait_idle().await;
    }
}

fn spec(kind: Kind, app: &AppRoot, deployment_id: &str, release_id: &str) -> Spec {
    Spec {
        deployment_id: deployment_id.to_owned(),
        kind,
        app: app.name().to_owned(),
        root: app.root().to_owned(),
        release_id: release_id.to_owned(),
    }
}

#[cfg(test)]
mod tests;
