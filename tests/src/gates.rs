//! The environment's deploy gates (queue, approvals) set for a test.

use slipway_proto::{
    control::v1::{DeployGates, Environment, GetEnvironmentRequest, UpdateEnvironmentRequest},
    identity::Role,
};

use crate::{Cluster, cluster::ENV};

/// Replaces the gates of the cluster's environment as an admin.
pub async fn set_gates(cluster: &Cluster, gates: DeployGates) {
    let mut envs = cluster.environments(Role::Admin).await;
    let env = envs
        .get_environment(GetEnvironmentRequest { name: ENV.into() })
        .await
        .expect("get environment")
        .into_inner()
        .environment
        .expect("environment");
    let environment = Some(Environment {
        gates: Some(gates),
        ..env
    });
    envs.update_environment(UpdateEnvironmentRequest { environment })
        .await
        .expect("update environment");
}
