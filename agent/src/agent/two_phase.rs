//! A whole Deploy repeated under the deployment id of a two-phase deploy:
//! it follows or replays that deployment's activation.

use std::sync::Arc;

use super::Agent;
use crate::{
    error::Error,
    journal::Journal,
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
}
