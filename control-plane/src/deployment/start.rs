//! Starting a deployment: the request resolved ([`super::resolve`]), the
//! record built, and the lock, the record and its first event committed
//! together; then it runs on its own task ([`super::run`]), making its
//! release first when that takes time ([`super::prepare`]).

use slipway_proto::control::v1::{
    Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, LogLevel,
};

use super::{
    Lease, approval,
    create::{Draft, create},
    gating, queue,
    resolve::{Resolved, Start, resolve, resolve_start},
    run::{Launch, run},
};
use crate::{
    Context,
    auth::Caller,
    domain::event::deployment_event,
    error::Error,
    locks,
    store::{self, Store, StoreError, drift},
};

/// Starts a deployment and returns its id; the rollout runs on its own
/// task. Asked to queue (or by the environment's gates), it waits in the
/// queue while the lock is held or others wait ahead of it.
pub async fn start(ctx: &Context, caller: &Caller, start: Start) -> Result<String, Error> {
    // A release that takes time to make is made by the deployment itself,
    // unless the deployment waits (queue, approvals, schedule): those cut
    // it now.
    let deferred =
        !start.queue && start.run_at.is_none() && super::prepare::needed(ctx, &start).await?;
    let resolved = if deferred {
        resolve(&ctx.store, &start, None)?
    } else {
        resolve_start(ctx, &start).await?
    };
    let gates = resolved.gates.clone();
    let asked = (start.kind, start.run_at, start.force);
    let forced = gating::windows(caller, asked, &gates)?;
    let how = Launch {
        kind: start.kind,
        message: start.message.clone(),
        repair: false,
        forced,
    };
    let approvals = gates.approvals_required > 0;
    if !start.queue && !gates.queue && !approvals && start.run_at.is_none() {
        return launch(ctx, caller, resolved, how).await;
    }
    let resolved = if deferred {
        resolve_start(ctx, &start).await?
    } else {
        resolved
    };
    let _gate = ctx.waiting.gate().await;
    let (app, env) = (resolved.app.name.clone(), resolved.environment.clone());
    let free = store::queue::of_target(&ctx.store, &app, &env)?.is_empty()
        && locks::get_raw(&ctx.store, &app, &env)?.is_none();
    if free && !approvals && start.run_at.is_none() {
        match launch(ctx, caller, resolved.clone(), how.clone()).await {
            Err(Error::Locked { .. }) => {}
            started => return started,
        }
    }
    let r = &resolved;
    let build = |id: &str| {
        let mut d = r.record(
            ctx.store.term(),
            how.kind,
            caller.principal(),
            how.message.clone(),
            id,
        );
        d.run_at = start.run_at.map(slipway_proto::timestamp);
        d.forced = how.forced.is_some();
        d
    };
    let wait = if approvals {
        queue::Wait::Approval {
            required: gates.approvals_required,
            expires: approval::expires(&gates),
        }
    } else if let Some(at) = start.run_at {
        queue::Wait::Schedule { at }
    } else {
        queue::Wait::Lock {
            latest_wins: gates.latest_wins,
        }
    };
    queue::enqueue(ctx, (&app, &env), build, wait).await
}

/// Records a resolved deployment (number, lock, record and first event in
/// one transaction) and runs it on its own task; returns its id.
pub(super) async fn launch(
    ctx: &Context,
    caller: &Caller,
    r: Resolved,
    how: Launch,
) -> Result<String, Error> {
    crate::rollout::require_runtime_contract(&ctx.agents, &r.app, &r.hosts).await?;
    let created = create(ctx, |id| {
        let term = ctx.store.term();
        let lock = locks::new_lock(term, &r.app.name, &r.environment, id, &caller.principal());
        let mut deployment = r.record(term, how.kind, caller.principal(), how.message.clone(), id);
        deployment.forced = how.forced.is_some();
        let mut first = first_event(&deployment, r.hosts.len(), how.repair);
        if let Some(why) = &how.forced {
            first
                .message
                .push_str(&format!("; forced by {}: {why}", caller.principal()));
        }
        let lease = Lease::new(&ctx.store, lock);
        let mut ops = vec![lease.take()];
        if how.repair {
            ops.push(drift::mark_repair(id));
        }
        Draft {
            deployment,
            first,
            ops,
            keep: lease,
        }
    });
    let (recorder, lease) = match created.await {
        Ok(created) => created,
        Err(StoreError::Exists { .. }) => {
            return Err(locked(&ctx.store, &r.app.name, &r.environment)?);
        }
        Err(err) => return Err(err.into()),
    };
    let id = recorder.deployment().id.clone();
    if r.release.id.is_empty() {
        super::prepare::spawn(ctx, recorder, lease, r, how);
    } else {
        run(ctx, recorder, lease, r, &how);
    }
    Ok(id)
}

/// "deploy <release> of <app> to <environment> (<n> hosts) by <author>,
/// fencing token <n>"; for a release still to be made, "deploy <ref> ...:
/// preparing the release" at stage "preparing".
pub(super) fn first_event(d: &Deployment, hosts: usize, repair: bool) -> DeploymentEvent {
    let kind = match (repair, d.kind()) {
        (true, _) => "drift repair: deploy",
        (false, DeploymentKind::Rollback) => "rollback",
        (false, DeploymentKind::Secrets) => "secrets-only deploy: apply the secrets to",
        (false, _) => "deploy",
    };
    let (what, stage, then) = if d.release.is_empty() {
        (&d.git_ref, "preparing", ": preparing the release")
    } else {
        (&d.release, "pending", "")
    };
    deployment_event(
        DeploymentStatus::Pending,
        stage,
        LogLevel::Info,
        format!(
            "{kind} {what} of {} to {} ({hosts} hosts) by {}, fencing token {}{then}",
            d.app, d.environment, d.author, d.fencing_token
        ),
    )
}

/// The error for a start refused because another deployment holds the lock.
fn locked(store: &Store, app: &str, environment: &str) -> Result<Error, Error> {
    let holder = locks::get_raw(store, app, environment)?
        .map(|(l, _)| {
            if l.holder.is_empty() {
                l.deployment_id
            } else {
                format!("{} (started by {})", l.deployment_id, l.holder)
            }
        })
        .unwrap_or_else(|| "(just finished)".into());
    Ok(Error::Locked {
        app: app.to_owned(),
        environment: environment.to_owned(),
        holder,
    })
}
