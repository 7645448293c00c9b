//! Deployments: starting one under the (app, environment) lock, recording its
//! events durably, reading history, and reconciling after a restart.

use std::sync::Arc;

use slipway_proto::{
    control::v1::{
        Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, EventKind, HostProgress,
        ListDeploymentsRequest, LogLevel, Release,
    },
    validate,
};

use crate::{
    Context,
    auth::Caller,
    catalog,
    error::Error,
    events::{is_final, is_final_status},
    releases, rollout,
    store::{Op, Store, StoreError, Tree, encode_proto, event_key, key2},
};

/// What to activate.
pub enum Target {
    /// A release by id.
    Release(String),
    /// Cut or reuse a release from this ref.
    Ref(String),
    /// The release before the current one.
    Previous,
}

/// What an operator asked to start.
pub struct Start {
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// App name.
    pub app: String,
    /// Environment name.
    pub environment: String,
    /// Release to activate.
    pub target: Target,
    /// Operator's message.
    pub message: String,
}

/// Starts a deployment and returns its id; the rollout runs on its own task.
pub async fn start(ctx: &Context, caller: &Caller, start: Start) -> Result<String, Error> {
    let Start {
        kind,
        app,
        environment,
        target,
        message,
    } = start;
    let store = &ctx.store;
    let app = catalog::app(store, &app)?;
    let env = catalog::environment(store, &environment)?;
    let hosts = catalog::hosts(store, &env.name)?;
    if hosts.is_empty() {
        return Err(Error::Precondition(format!(
            "environment {} has no hosts; add one with `slipctl host add`",
            env.name
        )));
    }
    let last_good = last_succeeded(store, &app.name, &env.name)?;
    let current = last_good
        .as_ref()
        .map(|d| d.release.clone())
        .unwrap_or_default();
    let release: Release = match target {
        Target::Release(id) => {
            validate::release_id("release_id", &id)?;
            releases::get(store, &app.name, &id)?
        }
        Target::Ref(git_ref) => releases::create(store, &app.name, &git_ref).await?.0,
        Target::Previous => {
            let previous = last_good
                .as_ref()
                .map(|d| d.previous_release.clone())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    Error::Precondition(format!(
                        "app {} has no earlier release in {} to roll back to; name one with --to",
                        app.name, env.name
                    ))
                })?;
            releases::get(store, &app.name, &previous)?
        }
    };
    let manifest = Arc::new(releases::manifest(store, &app.name, &release.id)?);
    // Hosts that took the last good release get only the difference.
    let base = if current.is_empty() || current == release.id {
        None
    } else {
        releases::manifest(store, &app.name, &current)
            .ok()
            .map(|m| (current.clone(), Arc::new(m)))
    };

    let id = format!("dep-{:010}", store.next_id()? + 1);
    let deployment = Deployment {
        id: id.clone(),
        kind: kind as i32,
        app: app.name.clone(),
        environment: env.name.clone(),
        release: release.id.clone(),
        previous_release: current,
        author: caller.principal(),
        message,
        status: DeploymentStatus::Pending as i32,
        stage: "pending".into(),
        hosts: hosts
            .iter()
            .map(|h| HostProgress {
                host: h.name.clone(),
                status: DeploymentStatus::Pending as i32,
                stage: "pending".into(),
                ..Default::default()
            })
            .collect(),
        started_at: Some(slipway_proto::now()),
        ..Default::default()
    };
    let lock_key = key2(&app.name, &env.name);
    ctx.events.open(&id);
    let mut recorder = Recorder {
        store: store.clone(),
        events: ctx.events.clone(),
        deployment,
        lock_key: lock_key.clone(),
    };
    let first = deployment_event(
        DeploymentStatus::Pending,
        "pending",
        LogLevel::Info,
        format!(
            "{} {} of {} to {} ({} hosts) by {}",
            if kind == DeploymentKind::Rollback {
                "rollback"
            } else {
                "deploy"
            },
            release.id,
            app.name,
            env.name,
            hosts.len(),
            caller.principal()
        ),
    );
    // The lock, the record and its first event land together or not at all.
    let lock = Op::Create(Tree::Locks, lock_key.clone(), id.clone().into_bytes());
    if let Err(err) = recorder.record_with(first, vec![lock]).await {
        ctx.events.close(&id);
        return Err(match err {
            StoreError::Exists { .. } => Error::Locked {
                app: app.name.clone(),
                environment: env.name.clone(),
                holder: store
                    .get_raw(Tree::Locks, &lock_key)?
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_else(|| "(just finished)".into()),
            },
            err => err.into(),
        });
    }
    let plan = rollout::Plan {
        deployment_id: id.clone(),
        kind,
        app,
        environment: env.name.clone(),
        release,
        manifest,
        base,
    };
    tokio::spawn(rollout::run(ctx.clone(), plan, hosts, recorder));
    Ok(id)
}

/// The most recent succeeded deployment of an app to an environment.
pub fn last_succeeded(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<Deployment>, Error> {
    let mut all: Vec<Deployment> = store.list(Tree::Deployments, b"")?;
    all.reverse();
    Ok(all.into_iter().find(|d| {
        d.app == app
            && d.environment == environment
            && d.status == DeploymentStatus::Succeeded as i32
    }))
}

/// One deployment.
pub fn get(store: &Store, id: &str) -> Result<Deployment, Error> {
    validate::release_id("deployment_id", id)?;
    store
        .get(Tree::Deployments, id.as_bytes())?
        .ok_or_else(|| Error::not_found("deployment", id))
}

/// Deployments newest first, filtered, one page at a time. The page token
/// is the id of the last deployment of the previous page.
pub fn list(
    store: &Store,
    req: &ListDeploymentsRequest,
) -> Result<(Vec<Deployment>, String), Error> {
    let size = match req.page_size {
        0 => 50,
        n => n.min(1000) as usize,
    };
    let mut all: Vec<Deployment> = store.list(Tree::Deployments, b"")?;
    all.reverse();
    let page: Vec<Deployment> = all
        .into_iter()
        .filter(|d| req.page_token.is_empty() || d.id.as_str() < req.page_token.as_str())
        .filter(|d| req.app.is_empty() || d.app == req.app)
        .filter(|d| req.environment.is_empty() || d.environment == req.environment)
        .filter(|d| req.status == 0 || d.status == req.status)
        .take(size + 1)
        .collect();
    let mut page = page;
    let next = if page.len() > size {
        page.truncate(size);
        page.last().map(|d| d.id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

/// After a restart: every deployment that was pending or running is marked
/// interrupted (its hosts keep whatever `current` they reached, which is
/// always a complete release) and its lock is released.
pub async fn reconcile(store: &Store, events: &crate::events::EventHub) -> Result<usize, Error> {
    let open: Vec<Deployment> = store
        .list::<Deployment>(Tree::Deployments, b"")?
        .into_iter()
        .filter(|d| !is_final_status(d.status))
        .collect();
    let count = open.len();
    for deployment in open {
        let lock_key = key2(&deployment.app, &deployment.environment);
        let mut recorder = Recorder {
            store: store.clone(),
            events: events.clone(),
            deployment,
            lock_key,
        };
        let event = deployment_event(
            DeploymentStatus::Interrupted,
            "interrupted",
            LogLevel::Error,
            "the control plane stopped while this deployment ran; check `slipctl status` and deploy again".into(),
        );
        recorder.record(event).await?;
    }
    Ok(count)
}

/// A deployment-level status event.
pub fn deployment_event(
    status: DeploymentStatus,
    stage: &str,
    level: LogLevel,
    message: String,
) -> DeploymentEvent {
    DeploymentEvent {
        kind: EventKind::Status as i32,
        status: status as i32,
        stage: stage.into(),
        level: level as i32,
        message,
        ..Default::default()
    }
}

/// The single writer of one deployment's record and event log.
pub struct Recorder {
    store: Store,
    events: crate::events::EventHub,
    deployment: Deployment,
    lock_key: Vec<u8>,
}

impl Recorder {
    /// The deployment as recorded so far.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Appends an event, updating the record, durably; then wakes the streams.
    pub async fn record(&mut self, event: DeploymentEvent) -> Result<(), StoreError> {
        self.record_with(event, Vec::new()).await
    }

    async fn record_with(
        &mut self,
        mut event: DeploymentEvent,
        mut ops: Vec<Op>,
    ) -> Result<(), StoreError> {
        let mut next = self.deployment.clone();
        next.last_event += 1;
        event.sequence = next.last_event;
        event.deployment_id = next.id.clone();
        event.time = Some(slipway_proto::now());
        apply(&mut next, &event);
        let last = is_final(&event);
        ops.push(Op::Put(
            Tree::Deployments,
            next.id.clone().into_bytes(),
            encode_proto(&next),
        ));
        ops.push(Op::Put(
            Tree::Events,
            event_key(&next.id, event.sequence),
            encode_proto(&event),
        ));
        if last {
            // Only this deployment's own lock is ever released.
            ops.push(Op::DeleteIf(
                Tree::Locks,
                self.lock_key.clone(),
                next.id.clone().into_bytes(),
            ));
        }
        self.store.commit(ops).await?;
        self.deployment = next;
        self.events.published(&self.deployment.id, event.sequence);
        if last {
            self.events.close(&self.deployment.id);
        }
        Ok(())
    }
}

/// Folds an event into the deployment record.
fn apply(d: &mut Deployment, e: &DeploymentEvent) {
    if e.host.is_empty() {
        if e.kind == EventKind::Status as i32 {
            d.status = e.status;
            if e.status == DeploymentStatus::Failed as i32
                || e.status == DeploymentStatus::Interrupted as i32
            {
                d.error = e.message.clone();
            }
        }
        if !e.stage.is_empty() {
            d.stage = e.stage.clone();
        }
        if e.percent > 0 {
            d.percent = e.percent;
        }
    } else if let Some(h) = d.hosts.iter_mut().find(|h| h.host == e.host) {
        if e.kind == EventKind::Status as i32 {
            h.status = e.status;
            if e.status == DeploymentStatus::Failed as i32 {
                h.error = e.message.clone();
            }
        }
        if !e.stage.is_empty() {
            h.stage = e.stage.clone();
        }
        h.percent = h.percent.max(e.percent);
        let total: u32 = d.hosts.iter().map(|h| h.percent).sum();
        d.percent = total / d.hosts.len().max(1) as u32;
    }
    if is_final(e) {
        if e.status == DeploymentStatus::Succeeded as i32 {
            d.percent = 100;
        }
        d.finished_at = e.time;
        if let (Some(start), Some(end)) = (&d.started_at, &e.time) {
            let ms = (end.seconds - start.seconds) * 1000
                + i64::from(end.nanos - start.nanos) / 1_000_000;
            d.duration_ms = ms.max(0) as u64;
        }
    }
}

/// Adds to a host's transfer counters.
pub fn set_host_transfer(d: &mut Deployment, host: &str, objects: u64, bytes: u64) {
    if let Some(h) = d.hosts.iter_mut().find(|h| h.host == host) {
        // Adds up: a host may be sent contents twice (a delta, then everything).
        h.objects_sent += objects;
        h.bytes_sent += bytes;
    }
}

impl Recorder {
    /// Records transfer counters for a host with the next event.
    pub async fn record_transfer(
        &mut self,
        host: &str,
        objects: u64,
        bytes: u64,
        event: DeploymentEvent,
    ) -> Result<(), StoreError> {
        set_host_transfer(&mut self.deployment, host, objects, bytes);
        self.record(event).await
    }
}
