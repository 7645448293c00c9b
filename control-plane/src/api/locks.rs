//! `slipway.control.v1.LockService`: who holds each deployment lock, and
//! freeing one by force.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response, Status};

use super::{Checked, Reply, audited};
use crate::{Context, auth::require, locks};

/// `slipway.control.v1.LockService`.
pub struct Locks(pub Context);

#[tonic::async_trait]
impl lock_service_server::LockService for Locks {
    async fn get_lock(&self, request: Request<GetLockRequest>) -> Reply<GetLockResponse> {
        require(&request, Role::Viewer)?;
        let req = request.get_ref();
        let lock = locks::get(&self.0.store, &req.app, &req.environment)?;
        Ok(Response::new(GetLockResponse { lock }))
    }

    async fn list_locks(&self, request: Request<ListLocksRequest>) -> Reply<ListLocksResponse> {
        require(&request, Role::Viewer)?;
        let locks = locks::list(&self.0.store)?;
        Ok(Response::new(ListLocksResponse { locks }))
    }

    async fn release_lock(
        &self,
        request: Request<ReleaseLockRequest>,
    ) -> Reply<ReleaseLockResponse> {
        audited(&self.0, request, |ctx, caller, Checked(req)| async move {
            if !req.force {
                return Err(Status::invalid_argument(
                    "force: must be true; freeing a lock overrides its holder (slipctl lock release --force)",
                ));
            }
            let (app, env, by) = (&req.app, &req.environment, caller.principal());
            let lock = locks::force_release(&ctx, &by, app, env, &req.reason).await?;
            let message = format!("freed the lock of {}", lock.deployment_id);
            Ok((ReleaseLockResponse { lock: Some(lock) }, message))
        })
        .await
    }
}
