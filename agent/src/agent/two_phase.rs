//! The admission of the two phases of a batch: a whole Deploy repeated
//! under a two-phase deployment's id, and an activation checked against
//! the prepare it names.

use std::sync::Arc;

use super::Agent;
use crate::{
    deploy::RollbackPlan,
    error::Error,
    journal::{Journal, Status},
    operations::{EventLog, Kind, OperationError, Spec},
};

impl Agent {
    /// A whole Deploy repeated under the deployment id of a two-phase deploy
    /// of the same release (a prepare, then the rollback that activates it)
    /// follows or replays the activation: that deployment's outcome. Refused
    /// while the release is prepared but not activated. None when the id
    /// names no prepare of this release.
    pub(super) fn two_phase(
        &self,
        journal: &Journal,
        spec: &Spec,
    ) -> Result<Option<Arc<EventLog>>, Error> {
        if spec.kind != Kind::Deploy {
            return Ok(None);
        }
        let Some(prepare) = journal.read(|data| {
            data.operation(&spec.deployment_id, Kind::Prepare)
                .filter(|op| op.release_id == spec.release_id)
                .map(|op| Spec {
                    kind: op.kind,
                    ..spec.clone()
                })
        }) else {
            return Ok(None);
        };
        let activation = Spec {
            kind: Kind::Rollback,
            ..spec.clone()
        };
        if let Some(log) = self.operations.find(&activation)? {
            return Ok(Some(log));
        }
        if let Some(log) = self.recorded(journal, &activation)? {
            return Ok(Some(log));
        }
        Err(OperationError::Reused {
            deployment_id: spec.deployment_id.clone(),
            existing: format!("{prepare}, not activated yet,"),
        }
        .into())
    }

    /// Refuses an activation under the deployment id of a prepare of
    /// another release: that deployment did not prepare this one. (A
    /// Rollback is refused too, later, as a reused deployment id.)
    pub(super) fn prepared_other(journal: &Journal, plan: &RollbackPlan) -> Result<(), Error> {
        let other = journal.read(|data| {
            data.operation(&plan.deployment_id, Kind::Prepare)
                .filter(|op| op.release_id != plan.release_id)
                .map(|op| op.release_id.clone())
        });
        match other {
            Some(other) => Err(OperationError::NotPrepared {
                deployment_id: plan.deployment_id.clone(),
                release_id: plan.release_id.clone(),
                why: format!("it prepared release {other}"),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// For a switch under the deployment id of a prepare of the same
    /// release: the releases that prepare keeps, once it is known to have
    /// left the release ready. None for a plain rollback.
    pub(super) fn prepared(journal: &Journal, plan: &RollbackPlan) -> Result<Option<usize>, Error> {
        let Some(prepare) =
            journal.read(|data| data.operation(&plan.deployment_id, Kind::Prepare).cloned())
        else {
            return Ok(None);
        };
        let not_prepared = |why: &str| OperationError::NotPrepared {
            deployment_id: plan.deployment_id.clone(),
            release_id: plan.release_id.clone(),
            why: why.to_owned(),
        };
        let result = prepare.events.last().and_then(|e| e.result.as_ref());
        match (prepare.status, result) {
            (Status::Finished, Some(result)) if result.success => {}
            (Status::Finished, Some(_)) => return Err(not_prepared("its prepare failed").into()),
            (Status::Interrupted, _) => {
                return Err(not_prepared("the agent restarted during its prepare").into());
            }
            _ => return Err(not_prepared("its prepare has not finished").into()),
        }
        Ok(Some(
            prepare
                .keep_releases
                .unwrap_or(crate::release::DEFAULT_KEEP),
        ))
    }
}
