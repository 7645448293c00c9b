//! Recording a new deployment: its pending record (every host pending in its
//! batch) and first event, committed with the next dense deployment number
//! and whatever else must land with them (the lock).

use slipway_proto::control::v1::{
    Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, Host, HostProgress, Release,
    RolloutPolicy,
};

use super::Recorder;
use crate::{
    Context,
    store::{Op, StoreError, deployments},
};

/// What a new deployment record says before its first event.
pub(super) struct NewRecord<'a> {
    pub kind: DeploymentKind,
    pub app: &'a str,
    pub environment: &'a str,
    pub release: &'a Release,
    pub previous_release: &'a str,
    pub author: String,
    pub message: String,
    pub batches: &'a [Vec<Host>],
    pub policy: RolloutPolicy,
    pub fencing_token: u64,
    pub rollback_of: &'a str,
    pub reason: &'a str,
}

impl NewRecord<'_> {
    /// The pending record of deployment `id`: every host pending in its batch.
    pub fn build(self, id: &str) -> Deployment {
        let hosts = self
            .batches
            .iter()
            .enumerate()
            .flat_map(|(i, batch)| {
                batch.iter().map(move |h| HostProgress {
                    host: h.name.clone(),
                    status: DeploymentStatus::Pending as i32,
                    stage: "pending".into(),
                    batch: i as u32 + 1,
                    ..Default::default()
                })
            })
            .collect();
        Deployment {
            id: id.to_owned(),
            kind: self.kind as i32,
            app: self.app.to_owned(),
            environment: self.environment.to_owned(),
            release: self.release.id.clone(),
            previous_release: self.previous_release.to_owned(),
            author: self.author,
            message: self.message,
            status: DeploymentStatus::Pending as i32,
            stage: "pending".into(),
            hosts,
            started_at: Some(slipway_proto::now()),
            policy: Some(self.policy),
            fencing_token: self.fencing_token,
            rollback_of: self.rollback_of.to_owned(),
            reason: self.reason.to_owned(),
            commit: self.release.commit.clone(),
            git_ref: self.release.git_ref.clone(),
            batches: self.batches.len() as u32,
            ..Default::default()
        }
    }
}

/// A new deployment as first recorded: the record, its first event, the
/// writes that go with them (taking the lock) and what the caller keeps.
pub(super) struct Draft<T> {
    pub deployment: Deployment,
    pub first: DeploymentEvent,
    pub ops: Vec<Op>,
    pub keep: T,
}

/// Records a new deployment with its first event under the next dense
/// number, in one transaction with the counter; drafted again under the
/// following number when a concurrent start took this one.
pub(super) async fn create<T>(
    ctx: &Context,
    mut draft: impl FnMut(&str) -> Draft<T>,
) -> Result<(Recorder, T), StoreError> {
    loop {
        let taken = deployments::allocate(&ctx.store)?;
        let Draft {
            deployment,
            first,
            ops,
            keep,
        } = draft(&taken.id);
        // Unannounced: a concurrent start may record this number first.
        let mut recorder = Recorder::unannounced(ctx, deployment);
        let mut batch = taken.ops;
        batch.extend(ops);
        match recorder.record_with(first, batch).await {
            Ok(()) => {
                recorder.announce();
                return Ok((recorder, keep));
            }
            Err(err) if !matches!(err, StoreError::Conflict { .. }) => return Err(err),
            Err(_) => {}
        }
    }
}
