//! What a simulated agent checks of a fenced request, read the same way
//! from every request type that carries an app and a fencing token.

use slipway_proto::agent::v1::*;

/// A request that names an app and carries a fencing token.
pub(super) trait FencedRequest {
    /// The app it is for.
    fn app(&self) -> Option<&AppTarget>;
    /// The lock's token.
    fn token(&self) -> u64;
    /// The control plane's store identity.
    fn epoch(&self) -> &str;
    /// The deployment and release ids of an operation's request.
    fn ids(&self) -> Option<(&str, &str)> {
        None
    }
}

/// Implements [`FencedRequest`] for requests with `app`, `fencing_token`
/// and `fencing_epoch` fields; `=> ids` adds their `deployment_id` and
/// `release_id`.
macro_rules! fenced {
    ($($request:ty $(=> $ids:ident)?),* $(,)?) => {$(
        impl FencedRequest for $request {
            fn app(&self) -> Option<&AppTarget> {
                self.app.as_ref()
            }
            fn token(&self) -> u64 {
                self.fencing_token
            }
            fn epoch(&self) -> &str {
                &self.fencing_epoch
            }
            $(
                fn $ids(&self) -> Option<(&str, &str)> {
                    Some((&self.deployment_id, &self.release_id))
                }
            )?
        }
    )*};
}

fenced!(
    PinReleaseRequest,
    CancelOperationRequest,
    CheckDriftRequest,
    UploadObjectsRequest,
    PrepareReleaseRequest => ids,
    ActivateReleaseRequest => ids,
    RollbackRequest => ids,
    ApplySecretsRequest => ids,
);

/// A repair is fenced by the prepare it carries.
impl FencedRequest for RepairReleaseRequest {
    fn app(&self) -> Option<&AppTarget> {
        self.release.as_ref()?.app.as_ref()
    }
    fn token(&self) -> u64 {
        self.release.as_ref().map_or(0, |r| r.fencing_token)
    }
    fn epoch(&self) -> &str {
        self.release.as_ref().map_or("", |r| &r.fencing_epoch)
    }
    fn ids(&self) -> Option<(&str, &str)> {
        self.release.as_ref()?.ids()
    }
}
