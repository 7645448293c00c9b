//! What a prepare under a deployment id left on record, for the switch
//! that activates it: refused when it prepared another release or did not
//! leave this one ready, else the releases it asked to keep.

use super::Agent;
use crate::{
    deploy::RollbackPlan,
    error::Error,
    journal::{Journal, Status},
    operations::{Kind, OperationError},
};

impl Agent {
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
