//! What the agent does, one method per RPC: the domain behind the thin gRPC
//! handlers. Owns the app roots, the operations, the journals and the app
//! registry, recovers every app when it opens, and fences every mutating
//! request with its token before it changes anything.

use std::{
    collections::HashMap,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Instant,
};

use futures_util::Stream;
use slipway_proto::{agent::v1::ProgressEvent, daemon::chain};
use tracing::Instrument as _;

use crate::{
    config::Config,
    deploy::{self, DeployPlan, RollbackPlan},
    error::{Error, blocking},
    fencing::{self, Fence},
    fsutil, hook_env,
    hook_env::HookHost,
    journal::{Journal, Journals, Status},
    layout::{AppRoot, Roots},
    metrics::Metrics,
    objects::{KnownObjects, ObjectStore},
    operations::{Begin, EventLog, Kind, OperationError, OperationGuard, Operations, Spec},
    prestage::Prestage,
    probes::Probes,
    recovery,
    registry::{ClaimError, Registry},
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
    // What every hook runs with: PATH, output limits, this instance's id.
    hooks: HookHost,
    operations: Arc<Operations>,
    journals: Journals,
    // Releases never change once renamed into place, so their sizes are
    // computed once: a status poll must not walk every file every time.
    sizes: Mutex<HashMap<PathBuf, u64>>,
    // The objects each store was seen to hold: a deploy's check before it
    // starts looks on disk only for the others.
    known_objects: Arc<KnownObjects>,
    started: Instant,
    // Each live release's continuous health probes.
    probes: Arc<Probes>,
    // The trees built ahead for each app's next deploy.
    prestage: Arc<Prestage>,
    // Binaries for upgrades, the pending upgrade and its restart.
    upgrades: Arc<crate::upgrade::Upgrades>,
}

impl Agent {
    /// Prepares the data directory, loads the app registry and recovers
    /// every registered app (see [`recovery`]); counts what it does in
    /// `metrics`.
    pub async fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, Error> {
        let data_dir = config.data_dir.clone();
        let (registry, instance) = blocking(move || {
            let create = |source| Error::CreateDir {
                path: data_dir.clone(),
                source,
            };
            fsutil::create_private_dir(&data_dir).map_err(create)?;
            let instance = hook_env::instance_id(&data_dir).map_err(create)?;
            Ok::<_, Error>((Registry::open(&data_dir)?, instance))
        })
        .await?;
        let hooks = HookHost {
            config: config.hooks.clone(),
            instance,
            name: config.host_name.clone(),
        };
        let agent = Arc::new(Self {
            host_name: config.host_name.clone(),
            roots: Roots::new(config.apps_dir.clone(), config.allowed_roots.clone()),
            registry: Arc::new(registry),
            probes: Arc::new(Probes::new(hooks.clone(), metrics.clone())),
            prestage: Arc::new(Prestage::new(config.prestage, config.prestage_idle)),
            hooks,
            operations: Operations::observed(metrics),
            journals: Journals::default(),
            sizes: Mutex::new(HashMap::new()),
            known_objects: Arc::default(),
            started: Instant::now(),
            upgrades: Arc::new(crate::upgrade::Upgrades::new(&config.data_dir)),
        });
        let recovering = agent.clone();
        let probed = blocking(move || Ok::<_, Error>(recovering.recover_all())).await?;
        for (app, record) in probed {
            agent.probes.set(&app, Some(record));
        }
        Ok(agent)
    }

    /// Blocking. One app that cannot be recovered must not keep the others
    /// from being served: it is logged, and its requests report the problem.
    /// Returns the apps whose live release is probed, with their checks.
    fn recover_all(&self) -> Vec<(AppRoot, crate::journal::ProbeRecord)> {
        let mut probed = Vec::new();
        for (name, root) in self.registry.apps() {
            let app = AppRoot::new(name, root);
            let recovered = self
                .journals
                .get(&app)
                .map_err(Error::from)
                .and_then(|journal| recovery::recover(&app, &journal, &self.hooks.instance));
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
                    error = %chain(&err),
                    "cannot recover the app"
                ),
            }
            let record = self
                .journals
                .get(&app)
                .ok()
                .and_then(|j| j.read(|d| d.probe.clone()));
            if let Some(record) = record {
                probed.push((app, record));
            }
        }
        probed
    }

    /// The journal of `app`, once its root is known not to overlap another
    /// app's: every request that may write under a root comes here first.
    async fn journal(self: &Arc<Self>, app: &AppRoot) -> Result<Arc<Journal>, Error> {
        self.registry.check_overlap(app.name(), app.root())?;
        let (agent, app) = (self.clone(), app.clone());
        blocking(move || agent.journals.get(&app)).await
    }

    /// Registers `app` before anything is written under its root, so the
    /// next app's root is checked against it. Blocking.
    fn claim(&self, app: &AppRoot) -> Result<(), Error> {
        self.registry
            .claim(app.name(), app.root())
            .map_err(|err| match err {
                ClaimError::Overlap(overlap) => overlap.into(),
                ClaimError::Registry(registry) => registry.into(),
            })
    }

    /// The recorded events of a finished operation with this spec's id and
    /// kind, to replay (see [`Operations::replay`] for its run id). An
    /// interrupted one runs again. Another operation under the same id is
    /// refused, unless it pairs with this one (a prepare and the switch
    /// that activates it).
    fn recorded(&self, journal: &Journal, spec: &Spec) -> Result<Option<Arc<EventLog>>, Error> {
        let ops: Vec<_> = journal.read(|data| {
            data.operations_of(&spec.deployment_id)
                .cloned()
                .collect::<Vec<_>>()
        });
        let mut replay = None;
        for op in ops {
            let existing = Spec {
                kind: op.kind,
                release_id: op.release_id.clone(),
                ..spec.clone()
            };
            if existing == *spec {
                if op.status == Status::Finished && !op.events.is_empty() {
                    let events = journal.events(&op);
                    replay = Some(self.operations.replay(spec, &op.run_id, events));
                }
            } else if !existing.pairs_with(spec) {
                return Err(OperationError::Reused {
                    deployment_id: spec.deployment_id.clone(),
                    existing: existing.to_string(),
                }
                .into());
            }
        }
        Ok(replay)
    }

    /// Checks a request's fencing token against the app's journal and
    /// records it when it is the highest yet.
    async fn fence(journal: &Arc<Journal>, app: &AppRoot, fence: &Fence) -> Result<(), Error> {
        if fence.token == 0 {
            return Ok(());
        }
        let (journal, name, fence) = (journal.clone(), app.name().to_owned(), fence.clone());
        blocking(move || fencing::fence(&journal, &name, &fence)).await
    }

    /// Refuses a request whose token is lower than the app has seen,
    /// recording nothing.
    async fn check_fence(
        journal: &Arc<Journal>,
        app: &AppRoot,
        fence: &Fence,
    ) -> Result<(), Error> {
        let (journal, name, fence) = (journal.clone(), app.name().to_owned(), fence.clone());
        blocking(move || fencing::check(&journal, &name, &fence)).await
    }

    /// Starts the operation `guard` holds the app for, unless a higher
    /// fencing token arrived since the request was first checked: then the
    /// app is given back untouched and the request refused.
    async fn start<F>(
        guard: OperationGuard,
        journal: &Arc<Journal>,
        app: &AppRoot,
        fence: Fence,
        run: impl FnOnce(OperationGuard) -> F,
    ) -> Result<EventStream, Error>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Err(err) = fencing::fence_with_operation(journal, app.name(), &fence) {
            let err = Error::from(err);
            guard.abandon(chain(&err));
            return Err(err);
        }
        let events = guard.log().subscribe();
        // Under the request's span (which names the host): every line of
        // the operation names its deployment too.
        let spec = guard.spec();
        let span = tracing::info_span!(
            "operation",
            deployment_id = %spec.deployment_id,
            app = %spec.app,
            release = %spec.release_id,
            kind = ?spec.kind,
        );
        tokio::spawn(run(guard).instrument(span));
        Ok(Box::pin(events))
    }

    /// What an operation tells of the app it ran: the registry lists it,
    /// the probes follow its live release.
    fn apps(&self) -> deploy::Apps {
        deploy::Apps {
            registry: self.registry.clone(),
            probes: self.probes.clone(),
            prestage: self.prestage.clone(),
        }
    }

    /// The name of this host, as its certificate says.
    pub fn host_name(&self) -> &str {
        &self.host_name
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
    pub async fn upload(
        self: &Arc<Self>,
        app: AppRoot,
        fence: impl Into<Fence>,
    ) -> Result<Upload, Error> {
        let fence = fence.into();
        if fence.token != 0 {
            let journal = self.journal(&app).await?;
            Self::fence(&journal, &app, &fence).await?;
        }
        let store = ObjectStore::new(&app);
        let agent = self.clone();
        blocking(move || {
            agent.claim(&app)?;
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
    pub async fn deploy(self: &Arc<Self>, mut plan: DeployPlan) -> Result<EventStream, Error> {
        plan.activation.host = self.hooks.clone();
        let spec = Spec::of(
            plan.kind(),
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        let journal = self.journal(&plan.app).await?;
        // Recorded only when the operation starts (see `start`).
        Self::check_fence(&journal, &plan.app, &plan.fence()).await?;
        if let Some(log) = self.two_phase(&journal, &spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        if let Some(log) = self.recorded(&journal, &spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        // Outside the app's lock: objects are never removed, so what this
        // finds still holds when the operation starts.
        let known = self.known_objects.clone();
        let plan = blocking(move || {
            release::preflight(&ObjectStore::new(&plan.app), &plan.manifest, &known)?;
            Ok::<_, ReleaseError>(plan)
        })
        .await?;
        match self.operations.begin(spec)? {
            Begin::Existing(log) => Ok(Box::pin(log.subscribe())),
            Begin::New(guard) => {
                let (app, fence) = (plan.app.clone(), plan.fence());
                let (apps, task_journal) = (self.apps(), journal.clone());
                Self::start(guard, &journal, &app, fence, move |guard| {
                    deploy::deploy(guard, apps, task_journal, plan)
                })
                .await
            }
        }
    }

    /// Starts a rollback to a release on disk (Rollback), or follows the
    /// one with the same deployment id. With the deployment id of a prepare
    /// of that release, it activates the prepared release, as
    /// [`Agent::activate`] does.
    pub async fn rollback(self: &Arc<Self>, plan: RollbackPlan) -> Result<EventStream, Error> {
        self.switch(plan, false).await
    }

    /// Activates the release a prepare with the same deployment id left
    /// ready (ActivateRelease), or follows that activation: it switches,
    /// checks and prunes as the deploy would have. A release this
    /// deployment did not prepare successfully is refused, even when it is
    /// ready on disk: earlier releases are ready too, and switching to one
    /// of those is a rollback, which the caller must ask for as one.
    pub async fn activate(self: &Arc<Self>, plan: RollbackPlan) -> Result<EventStream, Error> {
        self.switch(plan, true).await
    }

    /// Writes the secrets of the app's current release again and runs its
    /// after-activate hooks and check (ApplySecrets), or follows that
    /// operation; a release that is not current is refused.
    pub async fn apply_secrets(
        self: &Arc<Self>,
        mut plan: RollbackPlan,
    ) -> Result<EventStream, Error> {
        plan.secrets_only = true;
        let app = plan.app.clone();
        let current = blocking(move || release::current_release(&app)).await?;
        if current.as_deref() != Some(plan.release_id.as_str()) {
            return Err(ReleaseError::NotCurrent {
                release_id: plan.release_id,
                current: current.unwrap_or_else(|| "nothing".to_owned()),
            }
            .into());
        }
        self.switch(plan, false).await
    }

    /// A switch to a release on disk, for Rollback and ActivateRelease
    /// alike: one operation kind, so either request attaches to or replays
    /// what the other started. Only the admission differs: with
    /// `prepared_only`, a release this deployment did not prepare is
    /// refused.
    async fn switch(
        self: &Arc<Self>,
        mut plan: RollbackPlan,
        prepared_only: bool,
    ) -> Result<EventStream, Error> {
        plan.activation.host = self.hooks.clone();
        let spec = Spec::of(
            Kind::Rollback,
            &plan.app,
            &plan.deployment_id,
            &plan.release_id,
        );
        let journal = self.journal(&plan.app).await?;
        // Recorded only when the operation starts (see `start`).
        Self::check_fence(&journal, &plan.app, &plan.fence()).await?;
        if prepared_only {
            Self::prepared_other(&journal, &plan)?;
        }
        if let Some(log) = self.operations.find(&spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        if let Some(log) = self.recorded(&journal, &spec)? {
            return Ok(Box::pin(log.subscribe()));
        }
        plan.prepared_keep = Self::prepared(&journal, &plan)?;
        if prepared_only && plan.prepared_keep.is_none() {
            return Err(OperationError::NotPrepared {
                deployment_id: plan.deployment_id,
                release_id: plan.release_id,
                why: "no prepare of it under that id is on record; switching to an earlier \
                      release is a rollback"
                    .to_owned(),
            }
            .into());
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
                let (app, fence) = (plan.app.clone(), plan.fence());
                let (apps, task_journal) = (self.apps(), journal.clone());
                Self::start(guard, &journal, &app, fence, move |guard| {
                    deploy::switch(guard, apps, task_journal, plan)
                })
                .await
            }
        }
    }

    /// Resolves once no operation is running (used when shutting down).
    pub async fn wait_idle(&self) {
        self.operations.wait_idle().await;
    }
}

#[cfg(test)]
mod activate_tests;
mod admin;
#[cfg(test)]
mod cancel_tests;
mod drift;
pub use drift::DriftQuestion;
#[cfg(test)]
mod durability_tests;
#[cfg(test)]
mod fencing_tests;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod overlap_tests;
#[cfg(test)]
mod prepare_tests;
mod prepared;
#[cfg(test)]
mod prestage_tests;
#[cfg(test)]
mod run_id_tests;
#[cfg(test)]
mod runtime_tests;
#[cfg(test)]
mod secrets_tests;
mod status;
#[cfg(test)]
mod tests;
mod two_phase;
mod upgrade;
