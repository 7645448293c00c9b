//! After a restart: every deployment that was pending or running resumes
//! where it stopped, under the same lock and fencing token (see
//! [`super::resume`]). What cannot resume (its lock was freed, its app or
//! release is gone, or it is an automatic rollback, which its parent decides
//! again) is reconciled with what its hosts report: an operation of it still
//! running on an agent is cancelled (its hooks stopped), each host's
//! `current` is recorded as that host's outcome, and the deployment ends
//! interrupted with the reason, which frees its lock.

use std::{collections::HashSet, time::Duration};

use slipway_proto::{
    agent::v1::{AppTarget, CancelOperationRequest, GetStatusRequest},
    control::v1::{Deployment, DeploymentEvent, DeploymentStatus, LogLevel},
};

use super::{Lease, Recorder, resume};
use crate::{
    Context,
    agents::AgentClient,
    catalog,
    domain::event::{deployment_event, host_status, is_final_status},
    error::Error,
    locks,
    store::deployments,
};

/// How long reconciling waits for one agent.
const RECONCILE_DEADLINE: Duration = Duration::from_secs(15);

/// What became of the deployments that were running at the last stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Resumed where they stopped.
    pub resumed: usize,
    /// Ended interrupted.
    pub interrupted: usize,
}

/// Resumes or interrupts every unfinished deployment.
pub async fn reconcile(ctx: &Context) -> Result<Reconciled, Error> {
    let (waiting, open): (Vec<_>, Vec<_>) = deployments::open(&ctx.store)?
        .into_iter()
        .partition(|d| super::queue::is_waiting(d.status()));
    // Waiting deployments never held a lock: they wait on, followed by
    // their streams, until the admission task starts them.
    for d in waiting {
        ctx.events.open(&d.id);
    }
    let ids: HashSet<String> = open.iter().map(|d| d.id.clone()).collect();
    // Automatic rollbacks ran under their parent's lock: the parent, resumed,
    // decides again what to roll back.
    let (children, deployments): (Vec<_>, Vec<_>) =
        open.into_iter().partition(|d| ids.contains(&d.rollback_of));
    let mut done = Reconciled::default();
    for child in children {
        let why = "the control plane stopped during this automatic rollback; the deployment it undoes decides again when it resumes";
        interrupt(ctx, child, why).await?;
        done.interrupted += 1;
    }
    for deployment in deployments {
        match resume::prepare(ctx, &deployment) {
            Ok(resume) => {
                resume::start(ctx, deployment, resume).await?;
                done.resumed += 1;
            }
            Err(why) => {
                tracing::warn!(deployment = %deployment.id, %why, "cannot resume");
                interrupt(ctx, deployment, &why).await?;
                done.interrupted += 1;
            }
        }
    }
    Ok(done)
}

/// Records each host's state and ends the deployment interrupted.
async fn interrupt(ctx: &Context, deployment: Deployment, why: &str) -> Result<(), Error> {
    // Only its own lock: the stored bytes, if the lock names it.
    let lease = locks::get_raw(&ctx.store, &deployment.app, &deployment.environment)?
        .filter(|(l, _)| l.deployment_id == deployment.id)
        .map(|(lock, raw)| Lease::stored(&ctx.store, lock, raw));
    let hosts = reconcile_hosts(ctx, &deployment).await;
    let release = deployment.release.clone();
    let never_started: HashSet<String> = deployment
        .hosts
        .iter()
        .filter(|h| h.status() == DeploymentStatus::Pending)
        .map(|h| h.host.clone())
        .collect();
    let mut recorder = Recorder::open(ctx, deployment);
    for (host, answer) in hosts {
        let started = !never_started.contains(&host);
        recorder
            .record(host_outcome(&host, &release, answer, started))
            .await?;
    }
    // Counted from the record: hosts that finished before the stop too.
    let hosts = &recorder.deployment().hosts;
    let total = hosts.len();
    let on_release = hosts
        .iter()
        .filter(|h| h.status() == DeploymentStatus::Succeeded)
        .count();
    recorder.note_reason(why);
    let event = deployment_event(
        DeploymentStatus::Interrupted,
        "interrupted",
        LogLevel::Error,
        format!(
            "{why}; {on_release} of {total} hosts are on {release}; check `slipctl status` and deploy again"
        ),
    );
    let release_lock = lease.iter().map(Lease::release).collect();
    recorder.record_with(event, release_lock).await?;
    Ok(())
}

/// What a host's answer means for the deployment of `release`; a host the
/// rollout never reached is skipped, not failed.
fn host_outcome(
    host: &str,
    release: &str,
    answer: Result<String, String>,
    started: bool,
) -> DeploymentEvent {
    if !started && answer.as_ref().is_ok_and(|current| current != release) {
        let message = "not deployed: the control plane stopped before its batch".to_owned();
        return host_status(
            host,
            DeploymentStatus::Cancelled,
            "skipped",
            0,
            LogLevel::Warn,
            message,
        );
    }
    let (status, level, message) = match answer {
        Ok(current) if current == release => (
            DeploymentStatus::Succeeded,
            LogLevel::Info,
            format!("after the control plane's restart: {release} is current"),
        ),
        Ok(current) => (
            DeploymentStatus::Failed,
            LogLevel::Warn,
            format!(
                "after the control plane's restart: current is {}",
                if current.is_empty() {
                    "(none)"
                } else {
                    &current
                }
            ),
        ),
        Err(err) => (
            DeploymentStatus::Failed,
            LogLevel::Error,
            format!("after the control plane's restart the agent did not answer: {err}"),
        ),
    };
    host_status(host, status, "reconciled", 0, level, message)
}

/// Each unfinished host of `deployment` and its `current` release after any
/// operation of the deployment still running there has been stopped.
async fn reconcile_hosts(
    ctx: &Context,
    deployment: &Deployment,
) -> Vec<(String, Result<String, String>)> {
    let app = match catalog::app(&ctx.store, &deployment.app) {
        Ok(app) => app,
        Err(err) => {
            return deployment
                .hosts
                .iter()
                .map(|h| (h.host.clone(), Err(err.to_string())))
                .collect();
        }
    };
    let target = AppTarget {
        name: app.name.clone(),
        deploy_root: app.deploy_root.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for progress in deployment
        .hosts
        .iter()
        .filter(|h| !is_final_status(h.status()))
    {
        let (ctx, target, name) = (ctx.clone(), target.clone(), progress.host.clone());
        let (id, token) = (deployment.id.clone(), deployment.fencing_token);
        tasks.spawn(async move {
            let answer = stop_and_ask(&ctx, &name, target, &id, token);
            let answer = tokio::time::timeout(RECONCILE_DEADLINE, answer)
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()));
            (name, answer)
        });
    }
    let mut hosts = Vec::new();
    while let Some(Ok(result)) = tasks.join_next().await {
        hosts.push(result);
    }
    hosts.sort();
    hosts
}

/// Stops the deployment's operation on the host if it still runs there,
/// then returns the host's `current` release.
async fn stop_and_ask(
    ctx: &Context,
    name: &str,
    target: AppTarget,
    id: &str,
    token: u64,
) -> Result<String, String> {
    let host = catalog::host(&ctx.store, name).map_err(|e| e.to_string())?;
    let client = ctx.agents.connect(&host).await.map_err(|e| e.to_string())?;
    let app = status(client.clone(), &target).await?;
    if app.running_deployment != id {
        return Ok(app.current_release);
    }
    let cancel = CancelOperationRequest {
        app: Some(target.clone()),
        deployment_id: id.to_owned(),
        grace_seconds: 10,
        fencing_token: token,
        fencing_epoch: String::new(),
    };
    client
        .cancel_operation(cancel)
        .await
        .map_err(|s| s.message().to_owned())?;
    Ok(status(client, &target).await?.current_release)
}

async fn status(
    client: AgentClient,
    target: &AppTarget,
) -> Result<slipway_proto::agent::v1::AppStatus, String> {
    let request = GetStatusRequest {
        apps: vec![target.clone()],
        omit_sizes: true,
    };
    client
        .get_status(request)
        .await
        .map(|r| r.apps.into_iter().next().unwrap_or_default())
        .map_err(|s| s.message().to_owned())
}
