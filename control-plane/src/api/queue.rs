//! `slipway.control.v1.QueueService`: the deployments that wait before they
//! start.

use slipway_proto::{control::v1::*, identity::Role, limits, validate};
use tonic::{Request, Response};

use super::Reply;
use crate::{Context, auth::require, deployment};

/// `slipway.control.v1.QueueService`.
pub struct Queue(pub Context);

#[tonic::async_trait]
impl queue_service_server::QueueService for Queue {
    async fn list_queue(&self, request: Request<ListQueueRequest>) -> Reply<ListQueueResponse> {
        require(&request, Role::Viewer)?;
        let req = request.into_inner();
        validate::bounded("app", &req.app, limits::NAME)?;
        validate::bounded("environment", &req.environment, limits::NAME)?;
        let deployments = deployment::queued(&self.0, &req.app, &req.environment)?;
        Ok(Response::new(ListQueueResponse { deployments }))
    }
}
