//! Resuming a deployment after a restart of the control plane: under the
//! same lock and fencing token, the hosts that had finished count as they
//! are recorded and the others go through the rollout again with the same
//! deployment id. Agents are idempotent per deployment id: a prepared host
//! replays its prepare and switches, a host still running its operation is
//! followed to the end, a switched host reports its switch. The supervisor
//! then decides as it would have (automatic rollback included).

use std::sync::Arc;

use slipway_proto::control::v1::{Deployment, DeploymentKind, DeploymentStatus, Host, LogLevel};

use super::{Lease, Recorder, supervisor};
use crate::{
    Context, catalog,
    domain::event::deployment_event,
    error::Error,
    locks,
    policy::Policy,
    releases,
    rollout::{Done, Plan},
    store::drift,
};

/// A deployment that can resume: its plan, the hosts still to go, and its
/// lock.
pub(super) struct Resume {
    plan: Plan,
    hosts: Vec<Host>,
    lease: Lease,
}

/// What resuming `d` takes, or why it cannot resume.
pub(super) fn prepare(ctx: &Context, d: &Deployment) -> Result<Resume, String> {
    let store = &ctx.store;
    let lease = locks::get_raw(store, &d.app, &d.environment)
        .map_err(|err| err.to_string())?
        .filter(|(lock, _)| lock.deployment_id == d.id)
        .map(|(lock, raw)| Lease::stored(store, lock, raw))
        .ok_or(
            "the control plane stopped while this deployment ran and its lock was freed since",
        )?;
    let gone = |err: Error| {
        format!("the control plane stopped while this deployment ran and cannot resume it: {err}")
    };
    let app = catalog::app(store, &d.app).map_err(gone)?;
    let release = releases::get(store, &d.app, &d.release).map_err(gone)?;
    let manifest = Arc::new(releases::manifest(store, &d.app, &d.release).map_err(gone)?);
    let base = match d.kind() {
        DeploymentKind::Rollback => None,
        // A repair redeploys the release itself.
        _ if d.previous_release == d.release => None,
        _ if d.previous_release.is_empty() => None,
        _ => releases::manifest(store, &d.app, &d.previous_release)
            .ok()
            .map(|m| (d.previous_release.clone(), Arc::new(m))),
    };
    let mut done = Done::default();
    let mut hosts = Vec::new();
    for progress in &d.hosts {
        let status = progress.status();
        let host = catalog::host(store, &progress.host);
        match (status, host) {
            (DeploymentStatus::Succeeded, Ok(host)) => done.switched.push(host),
            (DeploymentStatus::Failed | DeploymentStatus::Cancelled, _) => done
                .failed
                .push(format!("{}: {}", progress.host, progress.error)),
            (_, Ok(host)) => {
                done.relayed
                    .insert(host.name.clone(), progress.agent_runs.clone());
                hosts.push(host);
            }
            (_, Err(err)) => done.failed.push(format!("{}: {err}", progress.host)),
        }
    }
    let plan = Plan {
        deployment_id: d.id.clone(),
        kind: d.kind(),
        app,
        environment: d.environment.clone(),
        release,
        manifest,
        base,
        policy: Policy::new(d.policy.unwrap_or_default()),
        fencing_token: d.fencing_token,
        done,
        repair: drift::is_repair(store, &d.id).map_err(|err| err.to_string())?,
        secrets: Default::default(),
    };
    Ok(Resume { plan, hosts, lease })
}

/// Records that `d` resumes and runs it on its own task.
pub(super) async fn start(ctx: &Context, d: Deployment, resume: Resume) -> Result<(), Error> {
    let Resume {
        mut plan,
        hosts,
        mut lease,
    } = resume;
    let finished = plan.done.switched.len() + plan.done.failed.len();
    let term = ctx.store.term();
    let mut recorder = Recorder::open(ctx, d);
    let message = if locks::term_of(plan.fencing_token) < term {
        // A new leader: a higher token, so that agents refuse the last one.
        let token = locks::fencing_token(term, &plan.deployment_id);
        lease.retoken(token).await?;
        plan.fencing_token = token;
        recorder.amend(|d| d.fencing_token = token);
        format!(
            "a new leader (term {term}) took over; resuming under the same lock with fencing token {token}: {finished} hosts finished, {} to go",
            hosts.len()
        )
    } else {
        format!(
            "the control plane restarted; resuming under the same lock and fencing token {}: {finished} hosts finished, {} to go",
            plan.fencing_token,
            hosts.len()
        )
    };
    let event = deployment_event(
        DeploymentStatus::Running,
        "resumed",
        LogLevel::Warn,
        message,
    );
    recorder.record(event).await?;
    let control = ctx.running.register(&plan.deployment_id);
    tokio::spawn(supervisor::supervise(
        ctx.clone(),
        plan,
        hosts,
        recorder,
        lease,
        control,
    ));
    Ok(())
}
