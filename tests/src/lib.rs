//! Fixtures for Slipway's end-to-end tests: a per-test PKI, real control-plane
//! and agent servers on ephemeral loopback ports (or real agent processes),
//! and real git repositories.
//!
//! ```ignore
//! let cluster = Cluster::builder().agents(3).start().await;
//! let mut deployments = cluster.deployments(Role::Deployer).await;
//! ```
#![forbid(unsafe_code)]

pub mod agent_binary;
pub mod balancer;
pub mod cluster;
pub mod control_process;
pub mod dashboard;
pub mod direct;
pub mod disk;
pub mod etcd;
pub mod events;
pub mod faults;
pub mod gates;
pub mod git_https;
pub mod git_server;
pub mod ha;
pub mod https;
pub mod pki;
pub mod process;
pub mod procfs;
pub mod prometheus;
pub mod repo;
pub mod sandbox;
pub mod scrape;
pub mod seed;
pub mod server;
pub mod sim;
pub mod slipctl;
pub mod spec;
pub mod sshd;
pub mod webhook;

pub use cluster::Cluster;
pub use pki::TestPki;
pub use repo::SampleRepo;

/// Asserts that a deployment succeeded, showing its error when it did not.
#[track_caller]
pub fn assert_succeeded(deployment: &slipway_proto::control::v1::Deployment) {
    assert_eq!(
        deployment.status,
        slipway_proto::control::v1::DeploymentStatus::Succeeded as i32,
        "{} failed: {}",
        deployment.id,
        deployment.error
    );
}
