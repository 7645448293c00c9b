//! The validated forms of the requests that start an operation: a Deploy
//! (or PrepareRelease) and a Rollback (or ActivateRelease), with the fence
//! each carries.

use crate::{
    activation::Activation, fencing::Fence, layout::AppRoot, manifest::Manifest, operations::Kind,
};

/// A validated Deploy request.
#[derive(Clone, Debug)]
pub struct DeployPlan {
    /// The app and its root.
    pub app: AppRoot,
    /// The deployment id.
    pub deployment_id: String,
    /// The release to build and activate.
    pub release_id: String,
    /// Its files.
    pub manifest: Manifest,
    /// Releases to keep (already defaulted).
    pub keep: usize,
    /// Shared paths, hooks, health check, mode.
    pub activation: Activation,
    /// Environment name, for hooks.
    pub environment: String,
    /// Stop once the release is ready, without switching.
    pub prepare_only: bool,
    /// Build the release afresh even when it is on disk (RepairRelease).
    pub rebuild: bool,
    /// The lock's fencing token (0: unfenced).
    pub fencing_token: u64,
    /// The control plane store identity of the token.
    pub fencing_epoch: String,
}

impl DeployPlan {
    /// The request's fence.
    pub fn fence(&self) -> Fence {
        Fence {
            token: self.fencing_token,
            epoch: self.fencing_epoch.clone(),
        }
    }

    /// The kind of operation it runs.
    pub fn kind(&self) -> Kind {
        if self.prepare_only {
            Kind::Prepare
        } else {
            Kind::Deploy
        }
    }
}

/// A validated Rollback or ActivateRelease request: a switch to a release
/// on disk.
#[derive(Clone, Debug)]
pub struct RollbackPlan {
    /// The app and its root.
    pub app: AppRoot,
    /// The deployment id.
    pub deployment_id: String,
    /// The release to activate.
    pub release_id: String,
    /// After-activate hooks and health check.
    pub activation: Activation,
    /// Environment name, for hooks.
    pub environment: String,
    /// The lock's fencing token (0: unfenced).
    pub fencing_token: u64,
    /// The control plane store identity of the token.
    pub fencing_epoch: String,
    /// Set when it activates a release prepared under the same deployment
    /// id: the releases that prepare asked to keep, pruned to after the
    /// switch as a deploy would.
    pub prepared_keep: Option<usize>,
    /// An ApplySecrets: the release is current; its secrets file is
    /// written again before its after-activate hooks and check run.
    pub secrets_only: bool,
}

impl RollbackPlan {
    /// The request's fence.
    pub fn fence(&self) -> Fence {
        Fence {
            token: self.fencing_token,
            epoch: self.fencing_epoch.clone(),
        }
    }
}
