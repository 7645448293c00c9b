//! The automatic rollback of a failed deployment's hosts: a rollback
//! deployment of its own, linked to the one it undoes, that goes to the
//! release before it on every given host at once. It runs under the
//! parent's lock and fencing token while the parent runs; for a host that
//! answers only after the parent finished, under a lock of its own.

use std::sync::Arc;

use slipway_proto::control::v1::{
    Deployment, DeploymentKind, DeploymentStatus, Host, LogLevel, Release, RolloutPolicy,
    RolloutStrategy,
};

use super::{
    Lease, Recorder,
    create::{Draft, NewRecord, create},
};
use crate::{
    Context, catalog,
    domain::event::deployment_event,
    error::Error,
    locks,
    policy::Policy,
    releases,
    rollout::{Done, Plan},
    store::StoreError,
};

/// A recorded automatic rollback, ready to run.
pub(super) struct Child {
    pub plan: Plan,
    pub hosts: Vec<Host>,
    pub recorder: Recorder,
}

/// Who starts the rollback, and under which lock.
#[derive(Clone, Copy, Debug)]
pub(super) enum Under {
    /// The running parent's lease and fencing token.
    Parent,
    /// A lock of its own, taken like any deployment's, held by `holder`.
    OwnLock(&'static str),
}

/// Records the automatic rollback of `parent` on `hosts` with its first
/// event; with [`Under::OwnLock`], also takes the lock (refused with
/// [`Error::Locked`] while another deployment holds it).
pub(super) async fn begin(
    ctx: &Context,
    parent: &Deployment,
    reason: &str,
    hosts: Vec<Host>,
    under: Under,
) -> Result<(Child, Option<Lease>), Error> {
    let store = &ctx.store;
    let app = catalog::app(store, &parent.app)?;
    let release = releases::get(store, &app.name, &parent.previous_release)?;
    let manifest = Arc::new(releases::manifest(store, &app.name, &release.id)?);
    let spec = recovery_policy(parent, hosts.len());
    let rollback = Rollback {
        parent,
        release: &release,
        hosts: &hosts,
        reason,
        policy: spec,
    };
    let draft = |id: &str| rollback.draft(ctx, under, id);
    let (recorder, lease) = create(ctx, draft)
        .await
        .map_err(|err| refusal(ctx, parent, err))?;
    let plan = Plan {
        deployment_id: recorder.deployment().id.clone(),
        kind: DeploymentKind::Rollback,
        app,
        environment: parent.environment.clone(),
        release,
        manifest,
        base: None,
        policy: Policy::new(spec),
        fencing_token: recorder.deployment().fencing_token,
        done: Done::default(),
        repair: false,
        secrets: Default::default(),
    };
    let child = Child {
        plan,
        hosts,
        recorder,
    };
    Ok((child, lease))
}

/// The error for a rollback that could not be recorded: the lock held by
/// another deployment, or the store's failure.
fn refusal(ctx: &Context, parent: &Deployment, err: StoreError) -> Error {
    if !matches!(err, StoreError::Exists { .. }) {
        return err.into();
    }
    let holder = locks::get(&ctx.store, &parent.app, &parent.environment)
        .ok()
        .flatten()
        .map_or_else(|| "(just finished)".into(), |l| l.deployment_id);
    Error::Locked {
        app: parent.app.clone(),
        environment: parent.environment.clone(),
        holder,
    }
}

/// Recovery goes to every host at once, tolerating none failing silently:
/// each host's outcome is recorded.
fn recovery_policy(parent: &Deployment, hosts: usize) -> RolloutPolicy {
    RolloutPolicy {
        strategy: RolloutStrategy::AllAtOnce as i32,
        canary: false,
        auto_rollback: false,
        pause_seconds: 0,
        max_failed_hosts: hosts as u32,
        ..parent.policy.unwrap_or_default()
    }
}

/// What a rollback of a deployment's hosts is made of.
struct Rollback<'a> {
    parent: &'a Deployment,
    release: &'a Release,
    hosts: &'a [Host],
    reason: &'a str,
    policy: RolloutPolicy,
}

impl Rollback<'_> {
    /// The record, first event and lock (under [`Under::OwnLock`]) of the
    /// rollback as deployment `id`.
    fn draft(&self, ctx: &Context, under: Under, id: &str) -> Draft<Option<Lease>> {
        let Rollback {
            parent,
            release,
            hosts,
            reason,
            policy,
        } = *self;
        let (author, lease) = match under {
            Under::Parent => ("slipway (auto-rollback)", None),
            Under::OwnLock(holder) => {
                let lock = locks::new_lock(
                    ctx.store.term(),
                    &parent.app,
                    &parent.environment,
                    id,
                    holder,
                );
                (holder, Some(Lease::new(&ctx.store, lock)))
            }
        };
        let fencing_token = lease
            .as_ref()
            .map_or(parent.fencing_token, |l| l.lock().fencing_token);
        let deployment = NewRecord {
            kind: DeploymentKind::Rollback,
            app: &parent.app,
            environment: &parent.environment,
            release,
            previous_release: &parent.release,
            author: author.into(),
            message: format!("automatic rollback of {}", parent.id),
            batches: std::slice::from_ref(&hosts.to_vec()),
            policy,
            fencing_token,
            rollback_of: &parent.id,
            reason,
        }
        .build(id);
        let first = deployment_event(
            DeploymentStatus::Pending,
            "pending",
            LogLevel::Warn,
            format!(
                "automatic rollback of {} on {} hosts to {}: {reason}",
                parent.id,
                hosts.len(),
                release.id
            ),
        );
        Draft {
            deployment,
            first,
            ops: lease.iter().map(Lease::take).collect(),
            keep: lease,
        }
    }
}
