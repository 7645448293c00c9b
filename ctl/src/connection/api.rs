//! The operator API's clients over one channel, one accessor per service.

use slipway_proto::{
    MAX_MESSAGE_BYTES,
    control::v1::{
        app_service_client::AppServiceClient, approval_service_client::ApprovalServiceClient,
        audit_service_client::AuditServiceClient, cluster_service_client::ClusterServiceClient,
        dashboard_service_client::DashboardServiceClient,
        deployment_service_client::DeploymentServiceClient,
        drift_service_client::DriftServiceClient,
        environment_service_client::EnvironmentServiceClient,
        feed_service_client::FeedServiceClient, host_service_client::HostServiceClient,
        lock_service_client::LockServiceClient, queue_service_client::QueueServiceClient,
        release_service_client::ReleaseServiceClient,
    },
};
use tonic::transport::Channel;

/// The operator API's clients over one channel, each accepting messages up
/// to [`MAX_MESSAGE_BYTES`] (a release's manifest can be large).
#[derive(Clone, Debug)]
pub struct Api {
    channel: Channel,
}

impl Api {
    /// Clients over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }
}

/// One accessor per service: `$name()` returns a `$client` on the channel.
macro_rules! clients {
    ($($service:literal $name:ident: $client:ident;)*) => {
        impl Api {
            $(
                #[doc = $service]
                pub fn $name(&self) -> $client<Channel> {
                    $client::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
                }
            )*
        }
    };
}

clients! {
    "AppService." apps: AppServiceClient;
    "EnvironmentService." environments: EnvironmentServiceClient;
    "HostService." hosts: HostServiceClient;
    "ReleaseService." releases: ReleaseServiceClient;
    "DeploymentService." deployments: DeploymentServiceClient;
    "FeedService." feed: FeedServiceClient;
    "AuditService." audit: AuditServiceClient;
    "DriftService." drift: DriftServiceClient;
    "LockService." locks: LockServiceClient;
    "QueueService." queue: QueueServiceClient;
    "ApprovalService." approvals: ApprovalServiceClient;
    "DashboardService." dashboard: DashboardServiceClient;
    "ClusterService." cluster: ClusterServiceClient;
}
