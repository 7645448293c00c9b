//! The environment's deploy gates (queue, approvals) set for a test.

use futures_util::StreamExt as _;
use slipway_proto::{
    control::v1::{
        DeployGates, DeployRequest, DeployResponse, DeploymentEvent, Environment,
        GetEnvironmentRequest, UpdateEnvironmentRequest,
    },
    identity::Role,
};
use tonic::Streaming;

use crate::{
    Cluster,
    cluster::{APP, ENV},
};

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

/// A deploy of a new commit of `main` by the deployer ("please"): its
/// stream and first event (awaiting approval when the gates ask for it).
pub async fn request_deploy(cluster: &Cluster) -> (Streaming<DeployResponse>, DeploymentEvent) {
    cluster.commit_text("v1");
    let mut stream = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: "main".into(),
            message: "please".into(),
            ..Default::default()
        })
        .await
        .expect("deploy")
        .into_inner();
    let first = stream.next().await.expect("event").expect("event");
    (stream, first.event.expect("event set"))
}
