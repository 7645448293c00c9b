//! Hosts whose outcome in a finished deployment is unknown (the connection
//! died during their switch and they never answered before the deadline)
//! are asked again on an interval. When one answers, the deployment's
//! record says what it found, as an event of that deployment. A host found
//! on a release its deployment's automatic rollback undid elsewhere is
//! rolled back too, by a rollback deployment of its own under the lock.

use std::time::Duration;

use slipway_proto::{
    agent::v1::{AppTarget, GetStatusRequest},
    control::v1::{Deployment, DeploymentKind, DeploymentStatus, Host, LogLevel},
};

use super::{Recorder, auto_rollback, supervisor};
use crate::{
    Context, catalog,
    domain::event::{host_status, is_final_status},
    error::Error,
    store::deployments,
};

/// How long one host may take to answer.
const ASK_DEADLINE: Duration = Duration::from_secs(10);

/// Who the trail and the lock name for a rollback started here.
const HOLDER: &str = "slipway (recheck)";

/// Asks the unknown hosts again every `every`, for as long as it runs.
pub async fn run(ctx: Context, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = once(&ctx).await {
            tracing::warn!(error = %slipway_proto::daemon::chain(&err), "checking hosts of unknown outcome failed");
        }
    }
}

/// Asks every unknown host of a finished deployment once; returns how many
/// were settled.
pub async fn once(ctx: &Context) -> Result<usize, Error> {
    let mut settled = 0;
    for (id, host) in deployments::unknown_hosts(&ctx.store)? {
        let Some(deployment) = deployments::get(&ctx.store, &id)? else {
            continue;
        };
        // A running deployment settles its own hosts.
        if !is_final_status(deployment.status()) {
            continue;
        }
        match recheck(ctx, deployment, &host).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(deployment = %id, %host, error = %err, "checking the host failed")
            }
        }
    }
    Ok(settled)
}

/// Settles one host if it answers; false when it does not (yet).
async fn recheck(ctx: &Context, deployment: Deployment, name: &str) -> Result<bool, Error> {
    let host = catalog::host(&ctx.store, name)?;
    let app = catalog::app(&ctx.store, &deployment.app)?;
    let target = AppTarget {
        name: app.name,
        deploy_root: app.deploy_root,
    };
    let Some(current) = ask(ctx, &host, target).await else {
        return Ok(false);
    };
    let release = deployment.release.clone();
    let event = if current != release {
        let current = if current.is_empty() {
            "(none)"
        } else {
            &current
        };
        host_status(
            name,
            DeploymentStatus::Failed,
            "reconciled",
            0,
            LogLevel::Warn,
            format!("answered again: {current} is current; it did not switch to {release}"),
        )
    } else if needs_undo(&deployment) {
        let reason =
            format!("{name} answered again on {release}, which this deployment rolled back");
        let under = auto_rollback::Under::OwnLock(HOLDER);
        let (child, lease) =
            match auto_rollback::begin(ctx, &deployment, &reason, vec![host], under).await {
                Ok(started) => started,
                // Another deployment holds the lock: ask again later.
                Err(Error::Locked { .. }) => return Ok(false),
                Err(err) => return Err(err),
            };
        let id = child.plan.deployment_id.clone();
        let control = ctx.running.register(&id);
        if let Some(lease) = lease {
            let (plan, hosts, recorder) = (child.plan, child.hosts, child.recorder);
            tokio::spawn(supervisor::supervise(
                ctx.clone(),
                plan,
                hosts,
                recorder,
                lease,
                control,
            ));
        }
        host_status(
            name,
            DeploymentStatus::Succeeded,
            "reconciled",
            0,
            LogLevel::Warn,
            format!("answered again: {release} is current; rolling it back with {id}"),
        )
    } else {
        host_status(
            name,
            DeploymentStatus::Succeeded,
            "reconciled",
            0,
            LogLevel::Info,
            format!("answered again: {release} is current"),
        )
    };
    // Appended to the finished deployment's log: the record now says what
    // the host did.
    let mut recorder = Recorder::open(ctx, deployment);
    recorder.record(event).await?;
    recorder.abandon();
    Ok(true)
}

/// Whether a host found on the deployment's release must go back: the
/// deploy failed and its policy rolls back.
fn needs_undo(d: &Deployment) -> bool {
    d.kind() == DeploymentKind::Deploy
        && d.status() != DeploymentStatus::Succeeded
        && d.policy.is_some_and(|p| p.auto_rollback)
        && !d.previous_release.is_empty()
}

/// The host's `current` release, or None when it does not answer.
async fn ask(ctx: &Context, host: &Host, target: AppTarget) -> Option<String> {
    let question = async {
        let client = ctx.agents.connect_once(host).await.ok()?;
        let request = GetStatusRequest {
            apps: vec![target],
            omit_sizes: true,
        };
        match client.get_status(request).await {
            Ok(status) => Some(status.apps.into_iter().next()?.current_release),
            Err(_) => {
                ctx.agents.forget(host);
                None
            }
        }
    };
    tokio::time::timeout(ASK_DEADLINE, question).await.ok()?
}
