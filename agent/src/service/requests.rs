//! The requests the handlers convert before calling the agent: a
//! PrepareRelease (or RepairRelease) as the prepare-only Deploy it is, an
//! ActivateRelease as the switch it shares with Rollback, a CheckDrift as
//! its question, and the small checks and conversions they share.

use slipway_proto::{
    agent::v1::{
        ActivateReleaseRequest, ApplySecretsRequest, CheckDriftRequest, DeployRequest,
        PrepareReleaseRequest, RollbackRequest, UploadObjectsRequest,
    },
    identity::Identity,
    validate::{self, InvalidField},
};
use tonic::{Request, Status};

use super::AgentApi;
use crate::{
    agent::DriftQuestion,
    certificate::CertificateError,
    drift::{DEFAULT_FINDINGS, MAX_FINDINGS},
    error::Error,
    fencing::{self, Fence},
    upload::Chunk,
};

impl AgentApi {
    /// A CheckDrift request as the agent's question. Discarding objects
    /// changes the store, so it needs a fencing token, as an upload does.
    pub(super) fn drift_question(
        &self,
        request: CheckDriftRequest,
    ) -> Result<DriftQuestion, Error> {
        let app = self.resolve("app", request.app.as_ref())?;
        let release = if request.release_id.is_empty() {
            None
        } else {
            validate::release_id("release_id", &request.release_id)?;
            Some(request.release_id)
        };
        let limit = match request.max_findings as usize {
            0 => DEFAULT_FINDINGS,
            n if n > MAX_FINDINGS => {
                return Err(InvalidField::new(
                    "max_findings",
                    format!("at most {MAX_FINDINGS}, got {n}"),
                )
                .into());
            }
            n => n,
        };
        let discard = if request.discard_corrupt_objects {
            Some(Fence {
                token: fencing::required("fencing_token", request.fencing_token)?,
                epoch: fencing::epoch("fencing_epoch", &request.fencing_epoch)?,
            })
        } else {
            None
        };
        Ok(DriftQuestion {
            app,
            release,
            limit,
            discard,
        })
    }
}

/// A PrepareRelease as the prepare-only Deploy it is: one plan for both.
pub(super) fn prepare_only_deploy(request: PrepareReleaseRequest) -> DeployRequest {
    #[allow(deprecated)]
    DeployRequest {
        deployment_id: request.deployment_id,
        app: request.app,
        release_id: request.release_id,
        files: request.files,
        keep_releases: request.keep_releases,
        spec: request.spec,
        environment: request.environment,
        base_release: request.base_release,
        removed_paths: request.removed_paths,
        prepare_only: true,
        fencing_token: request.fencing_token,
        fencing_epoch: request.fencing_epoch,
        secrets: request.secrets,
    }
}

/// An ActivateRelease as the switch it shares with Rollback: one plan for
/// both ([`Agent::activate`] adds that the release must be prepared).
pub(super) fn activation_switch(request: ActivateReleaseRequest) -> RollbackRequest {
    RollbackRequest {
        deployment_id: request.deployment_id,
        app: request.app,
        release_id: request.release_id,
        spec: request.spec,
        environment: request.environment,
        fencing_token: request.fencing_token,
        fencing_epoch: request.fencing_epoch,
        secrets: request.secrets,
    }
}

/// An ApplySecrets as the switch to the current release it is: the
/// after-activate hooks and the check run again with the new secrets.
pub(super) fn secrets_switch(request: ApplySecretsRequest) -> RollbackRequest {
    RollbackRequest {
        deployment_id: request.deployment_id,
        app: request.app,
        release_id: request.release_id,
        spec: request.spec,
        environment: request.environment,
        fencing_token: request.fencing_token,
        fencing_epoch: request.fencing_epoch,
        secrets: request.secrets,
    }
}

/// The environment name hooks see; empty when the caller has none.
pub(super) fn environment(name: &str) -> Result<(), InvalidField> {
    if name.is_empty() {
        Ok(())
    } else {
        validate::name("environment", name)
    }
}

pub(super) fn chunk(message: UploadObjectsRequest) -> Chunk {
    Chunk {
        sha256: message.sha256,
        size: message.size,
        offset: message.offset,
        data: message.data,
    }
}

/// The status of a renewal step that failed.
pub(super) fn certificate_status(err: CertificateError) -> Status {
    let message = slipway_proto::daemon::chain(&err);
    match err {
        CertificateError::NothingPending | CertificateError::Unusable(_) => {
            Status::failed_precondition(message)
        }
        CertificateError::Request(_) | CertificateError::Write { .. } => Status::internal(message),
    }
}

/// Who called, for the log; the interceptor put it there.
pub(super) fn caller<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Identity>()
        .map_or_else(|| "unknown".to_owned(), Identity::principal)
}
