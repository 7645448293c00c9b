//! What the agent does, one method per RPC: the domain behind the thin gRPC
//! handlers. Owns the app roots, the operations, the journals and the app
//! registry, and recovers every app when it opens.

use std::{
    collections::HashMap,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Instant,
};

use futures_util::Stream;
use slipway_proto::agent::v1::ProgressEvent;

use crate::{
    config::Config,
    deploy::{self, DeployPlan, RollbackPlan},
    error::{Error, blocking},
    journal::{Journal, Journals, Status},
    layout::{self, AppRoot, Roots},
    objects::ObjectStore,
    operations::{Begin, EventLog, Kind, OperationError, Operations, Spec},
    recovery,
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
    journals: Journals,
    // Releases never change once renamed into place, so their sizes are
    // computed once: a status poll must not walk every file every time.
    sizes: Mutex<HashMap<PathBuf, u64>>,
    started: Instant,
}

impl Agent {
    /// Prepares the data directory, loads the app registry and recovers
    /// every registered app (see [`recovery`]).
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
        let agent = Arc::new(Self {
            host_name: config.host_name.clone(),
            roots: Roots::new(config.apps_dir.clone(), config.allowed_roots.clone()),
            registry: Arc::new(registry),
            operations: Operations::new(),
            journals: Journals::default(),
            sizes: Mutex::new(HashMap::new()),
            started: Instant::now(),
        });
        let recovering = agent.clone();
        blocking(move || {
            recovering.recover_all();
            Ok::<_, Error>(())
        })
        .await?;
        Ok(agent)
    }

    /// Blocking. One app that cannot be recovered must not keep the others
    /// from being served: it is logged, and its requests report the problem.
    fn recover_all(&self) {
        for (name, root) in self.registry.apps() {
            let app = AppRoot::new(name, root);
            let recovered = self
                .journals
                .get(&app)
                .map_err(Error::from)
                .and_then(|journal| recovery::recover(&app, &journal));
            match recovered {
                Ok(found) if found != recovery::Recovered::default() => tracing::warn!(
                    app = app.name(),
                    leftovers = found.leftovers,
                    interrupted = ?found.interrupted,
                    killed_hook_groups = ?found.killed,
                    dropped = ?found.dropped,
                    "recovered after an unclean stop"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!(
                    app = app.name(),
                    error = %crate::error::chain(&err),
                    "cannot recover the app"
                ),
            }
        }
    }

    /// The journal of `app`.
    async fn journal(self: &Arc<Self>, app: &AppRoot) -> Result<Arc<Journal>, Error> {
        let (agent, app) = (self.clone(), app.clone());
        blocking(move || agent.journals.get(&app)).await
    }

    /// The recorded events of a finished operation with this spec's id, to
    /// replay. An interrupted one runs again.
    fn recorded(journal: &Journal, spec: &Spec) -> Result<Option<Arc<EventLog>>, Error> {
        let Some(op) = journal.read(|data| data.operation(&spec.deployment_id).cloned()) else {
            return Ok(None);
        };
        if op.kind != spec.kind || op.release_id != spec.release_id {
            let existing = Spec {
                kind: op.kind,
                release_id: op.release_id,
                ..spec.clone()
            };
            return Err(OperationError::Reused {
                deployment_id: spec.deployment_id.clone(),
                existing: existing.to_string(),
            }
            .into());
        }
        match op.status {
            Status::Finished if !op.events.is_empty() => Ok(Some(EventLog::replay(op.events))),
            _ => Ok(None),
        }
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
    pub async fn deploy(self: &Arc<Self>, plan: DeployPlan) -> Result<EventStream, Error> {
        let spec = spec(
            Kind::Deploy,
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        let journal = self.journal(&plan.app).await?;
        if let Some(log) = Self::recorded(&journal, &spec)? {
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
                tokio::spawn(deploy::deploy(guard, self.registry.clone(), journal, plan));
                Ok(Box::pin(events))
            }
        }
    }

    /// Starts a rollback to a release on disk, or follows the one with the
    /// same deployment id.
    pub async fn rollback(self: &Arc<Self>, plan: RollbackPlan) -> Result<EventStream, Error> {
        let spec = spec(
            Kind::Rollback,
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        let journal = self.journal(&plan.app).await?;
        if let Some(log) = Self::recorded(&journal, &spec)? {
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
                tokio::spawn(deploy::rollback(
                    guard,
                    self.registry.clone(),
                    journal,
                    plan,
                ));
                Ok(Box::pin(events))
            }
        }
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
mod durability_tests;
#[cfg(test)]
mod lifecycle_tests;
mod status;
#[cfg(test)]
mod tests;
