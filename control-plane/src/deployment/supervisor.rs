//! The supervisor of one deployment: it owns the deployment's lease for the
//! whole life of the deployment, automatic rollback included; it runs the
//! rollout engine, records every update it reports, decides what the outcome
//! means (an automatic rollback of the switched hosts, a release marked bad
//! after a rollback), and records the final status, which frees the lock.

use std::sync::Arc;

use slipway_proto::control::v1::{DeploymentKind, DeploymentStatus, Host, LogLevel, ReleaseMark};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{Lease, Recorder, auto_rollback, record::Entry};

use crate::{
    Context,
    domain::event::{deployment_event, host_log},
    rollout::{self, Outcome, Plan, Update},
    running::Control,
    store::StoreError,
};

/// Updates the engine may report ahead of the recorder: the backpressure on
/// host tasks when the store is slower than they are.
const UPDATES: usize = 4096;
/// Events written in one commit at most.
const GROUP_COMMIT: usize = 1024;

/// Runs a started deployment to its end.
pub async fn supervise(
    ctx: Context,
    plan: Plan,
    hosts: Vec<Host>,
    mut recorder: Recorder,
    mut lease: Lease,
    control: Arc<Control>,
) {
    let id = plan.deployment_id.clone();
    // Every line logged while it runs, its hosts' included, names it.
    let span = tracing::info_span!(
        "deployment",
        deployment_id = %id,
        app = %plan.app.name,
        environment = %plan.environment,
        release = %plan.release.id,
    );
    let driven = drive(&ctx, plan, hosts, &mut recorder, &mut lease, control)
        .instrument(span)
        .await;
    if let Err(err) = driven {
        // The store failed: nothing more can be recorded. The next start
        // of the control plane resumes the deployment (or ends it).
        tracing::error!(deployment = %id, error = ?err, "recording the deployment failed");
    }
    ctx.running.finish(&id);
    // Its lock is free: the next queued deployment may start.
    ctx.waiting.wake();
}

/// The rollout, the automatic rollback its policy asks for, and the final
/// status.
async fn drive(
    ctx: &Context,
    plan: Plan,
    hosts: Vec<Host>,
    recorder: &mut Recorder,
    lease: &mut Lease,
    control: Arc<Control>,
) -> Result<(), StoreError> {
    let plan = Arc::new(plan);
    let outcome = execute(ctx, plan.clone(), hosts, recorder, lease, control.clone()).await?;
    let mut message = outcome.message;
    if outcome.status != DeploymentStatus::Succeeded
        && plan.kind == DeploymentKind::Deploy
        && plan.policy.spec.auto_rollback
        && !outcome.switched.is_empty()
    {
        message = roll_back(ctx, recorder, lease, &plan, outcome.switched, message).await?;
    }
    let release = vec![lease.release()];
    conclude(
        ctx,
        recorder,
        &plan,
        &control,
        outcome.status,
        message,
        release,
    )
    .await
}

/// Runs the engine on `hosts` and records what it reports, renewing
/// `lease` meanwhile, until the engine is done.
async fn execute(
    ctx: &Context,
    plan: Arc<Plan>,
    hosts: Vec<Host>,
    recorder: &mut Recorder,
    lease: &mut Lease,
    control: Arc<Control>,
) -> Result<Outcome, StoreError> {
    let (tx, mut rx) = mpsc::channel::<Update>(UPDATES);
    // Contents are read from the app's mirror when its source is remote.
    let plan = localised(ctx, plan);
    let plan = match with_secrets(ctx, plan, recorder).await? {
        Ok(plan) => plan,
        Err(message) => {
            return Ok(Outcome {
                status: DeploymentStatus::Failed,
                message,
                switched: Vec::new(),
            });
        }
    };
    let engine = tokio::spawn(rollout::run(ctx.agents.clone(), plan, hosts, control, tx));
    super::relay::relay(&mut rx, recorder, lease, GROUP_COMMIT, entry).await?;
    Ok(engine.await.unwrap_or_else(|err| Outcome {
        status: DeploymentStatus::Failed,
        message: format!("the rollout task failed: {err}"),
        switched: Vec::new(),
    }))
}

/// An update of the engine as an entry of the event log.
fn entry(update: Update) -> Entry {
    match update {
        Update::Event(event) => Entry::from(event),
        Update::Transfer {
            host,
            objects,
            bytes,
        } => {
            let message = format!("sent {objects} objects, {bytes} bytes");
            Entry {
                event: host_log(&host, "transfer", LogLevel::Info, message),
                sent: Some((objects, bytes)),
            }
        }
    }
}

/// Records the final status (with `ops`, which free the lock) after noting
/// a cancel and marking the release a successful rollback went back from.
async fn conclude(
    ctx: &Context,
    recorder: &mut Recorder,
    plan: &Plan,
    control: &Control,
    status: DeploymentStatus,
    message: String,
    ops: Vec<crate::store::Op>,
) -> Result<(), StoreError> {
    if let Some(stop) = control.stop_request() {
        recorder.note_cancel(&stop.by, &stop.reason);
    }
    if status == DeploymentStatus::Succeeded && plan.kind == DeploymentKind::Rollback {
        // The release rolled back from is skipped when a later rollback
        // resolves "previous"; `slipctl release mark --good` undoes it.
        let from = recorder.deployment().previous_release.clone();
        if !from.is_empty() && from != plan.release.id {
            let reason = format!("rolled back from by {}", plan.deployment_id);
            let marked =
                crate::releases::mark(&ctx.store, &plan.app.name, &from, ReleaseMark::Bad, &reason);
            if let Err(err) = marked.await {
                tracing::warn!(release = %from, error = %err, "marking the release bad failed");
            }
        }
    }
    if status == DeploymentStatus::Succeeded && plan.kind == DeploymentKind::Deploy {
        tag_release(ctx, recorder, plan).await?;
    }
    let (level, stage) = match status {
        DeploymentStatus::Succeeded => (LogLevel::Info, "done"),
        DeploymentStatus::Cancelled => (LogLevel::Error, "cancelled"),
        _ => (LogLevel::Error, "failed"),
    };
    let event = deployment_event(status, stage, level, message);
    recorder.record_with(event, ops).await
}

/// Switches the hosts that took the failed deployment's release back to the
/// release before it, as a rollback deployment linked to this one, under
/// this deployment's lease and fencing token. Returns the failed
/// deployment's final message.
async fn roll_back(
    ctx: &Context,
    recorder: &mut Recorder,
    lease: &mut Lease,
    plan: &Plan,
    switched: Vec<Host>,
    message: String,
) -> Result<String, StoreError> {
    let previous = recorder.deployment().previous_release.clone();
    let count = switched.len();
    let note = if previous.is_empty() {
        format!(
            "auto-rollback skipped: there is no earlier release; {count} hosts stay on {}",
            plan.release.id
        )
    } else {
        format!("auto-rollback: switching {count} hosts back to {previous}")
    };
    let event = deployment_event(
        DeploymentStatus::Running,
        "auto-rollback",
        LogLevel::Warn,
        note,
    );
    recorder.record(event).await?;
    if previous.is_empty() {
        return Ok(message);
    }
    let parent = recorder.deployment();
    let under = auto_rollback::Under::Parent;
    let child = match auto_rollback::begin(ctx, parent, &message, switched, under).await {
        Ok((child, _)) => child,
        Err(err) => {
            return Ok(format!(
                "{message}; the automatic rollback could not start: {err}"
            ));
        }
    };
    let id = child.plan.deployment_id.clone();
    let status = run_child(ctx, child, lease).await?;
    recorder.note_rolled_back_by(&id);
    let outcome = status
        .as_str_name()
        .trim_start_matches("DEPLOYMENT_STATUS_")
        .to_lowercase();
    Ok(format!("{message}; rolled back by {id} ({outcome})"))
}

/// Runs an automatic rollback to its end under the parent's lease; returns
/// its final status.
async fn run_child(
    ctx: &Context,
    child: auto_rollback::Child,
    lease: &mut Lease,
) -> Result<DeploymentStatus, StoreError> {
    let auto_rollback::Child {
        plan,
        hosts,
        mut recorder,
    } = child;
    let plan = Arc::new(plan);
    let id = plan.deployment_id.clone();
    let control = ctx.running.register(&id);
    let run = execute(
        ctx,
        plan.clone(),
        hosts,
        &mut recorder,
        lease,
        control.clone(),
    );
    let status = match run.await {
        Ok(outcome) => {
            let (status, summary) = (outcome.status, outcome.message);
            let done = conclude(
                ctx,
                &mut recorder,
                &plan,
                &control,
                status,
                summary,
                Vec::new(),
            );
            done.await.map(|()| status)
        }
        Err(err) => Err(err),
    };
    ctx.running.finish(&id);
    status
}

/// `plan` with its app's repository replaced by the local repository its
/// contents are read from (the mirror of a remote source).
/// The plan with the environment's secrets opened, their versions on the
/// record and named in an event (never a value); the reason the deployment
/// fails when they cannot be opened.
async fn with_secrets(
    ctx: &Context,
    plan: Arc<Plan>,
    recorder: &mut Recorder,
) -> Result<Result<Arc<Plan>, String>, StoreError> {
    let shipment = crate::secrets::shipment(
        &ctx.store,
        &ctx.secret_keys,
        &plan.app.name,
        &plan.environment,
    );
    let shipment = match shipment {
        Ok(shipment) => shipment,
        Err(err) => {
            let message = format!("the environment's secrets cannot be shipped: {err}");
            let event = deployment_event(
                DeploymentStatus::Running,
                "secrets",
                LogLevel::Error,
                message.clone(),
            );
            recorder.record(event).await?;
            return Ok(Err(message));
        }
    };
    if shipment.versions.is_empty() && plan.kind != DeploymentKind::Secrets {
        return Ok(Ok(plan));
    }
    let names: Vec<String> = (shipment.versions.iter())
        .map(|v| format!("{} v{}", v.name, v.version))
        .collect();
    let versions = shipment.versions.clone();
    recorder.amend(|d| d.secrets = versions);
    let message = match names.len() {
        0 => "no secrets to ship: the secrets file is removed".to_owned(),
        n => format!("shipping {n} secrets: {}", names.join(", ")),
    };
    let event = deployment_event(
        DeploymentStatus::Running,
        "secrets",
        LogLevel::Info,
        message,
    );
    recorder.record(event).await?;
    let mut plan = Plan::clone(&plan);
    plan.secrets = Arc::new(shipment);
    Ok(Ok(Arc::new(plan)))
}

fn localised(ctx: &Context, plan: Arc<Plan>) -> Arc<Plan> {
    let local = ctx.sources.local_repository(&plan.app);
    if local == plan.app.repository {
        return plan;
    }
    let mut plan = Plan::clone(&plan);
    plan.app.repository = local;
    Arc::new(plan)
}

/// Pushes the release tag when the app asks for one; the outcome is an
/// event, never the deployment's failure.
async fn tag_release(
    ctx: &Context,
    recorder: &mut Recorder,
    plan: &Plan,
) -> Result<(), StoreError> {
    let Some(tagged) = ctx
        .sources
        .tag_release(&plan.app, &plan.release.commit)
        .await
    else {
        return Ok(());
    };
    let (level, message) = match tagged {
        Ok(message) => (LogLevel::Info, message),
        Err(message) => {
            tracing::warn!(app = %plan.app.name, deployment = %plan.deployment_id, %message, "release tag not pushed");
            (LogLevel::Warn, message)
        }
    };
    let event = deployment_event(DeploymentStatus::Running, "tag", level, message);
    recorder.record(event).await
}
