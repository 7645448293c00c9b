//! `slipway.control.v1.ClusterService`: which replica leads, and the
//! cluster's and the store's health.

use slipway_proto::{control::v1::*, identity::Role};
use tonic::{Request, Response};

use super::Reply;
use crate::{Context, auth::require};

/// `slipway.control.v1.ClusterService`.
pub struct Cluster(pub Context);

#[tonic::async_trait]
impl cluster_service_server::ClusterService for Cluster {
    async fn get_leader(&self, request: Request<GetLeaderRequest>) -> Reply<GetLeaderResponse> {
        require(&request, Role::Viewer)?;
        let cluster = &self.0.cluster;
        Ok(Response::new(GetLeaderResponse {
            leader: cluster.leader_proto(),
            answered_by: Some(cluster.me_proto()),
        }))
    }

    async fn get_cluster_status(
        &self,
        request: Request<GetClusterStatusRequest>,
    ) -> Reply<GetClusterStatusResponse> {
        require(&request, Role::Viewer)?;
        Ok(Response::new(self.0.cluster.status().await))
    }
}
