//! Calls straight to an agent, as the control plane makes them: for tests
//! that check what the agent itself accepts, refuses, replays and reports.

use slipway_proto::{
    agent::v1::{
        self as agent, AppStatus, AppTarget, FileEntry, FileKind, GetStatusRequest,
        agent_service_client::AgentServiceClient,
    },
    control::v1::{GetAppRequest, GetReleaseRequest},
    identity::Role,
    tls,
};
use tonic::transport::Channel;

use crate::{
    Cluster, TestPki,
    cluster::{APP, ENV},
};

impl Cluster {
    /// An AgentService client for agent `index`, with the control plane's
    /// client certificate (the only identity agents accept).
    pub fn agent_client(&self, index: usize) -> AgentServiceClient<Channel> {
        let host = &self.agents[index];
        let material = TestPki::material(&self.pki.control_plane_client());
        let channel = tls::endpoint(&host.addr().to_string(), &host.name, &material)
            .expect("endpoint")
            .connect_lazy();
        AgentServiceClient::new(channel)
    }

    /// The app as agent `index` reports it (GetStatus).
    pub async fn agent_status(&self, index: usize) -> AppStatus {
        let response = self
            .agent_client(index)
            .get_status(GetStatusRequest {
                apps: vec![app_target()],
            })
            .await
            .expect("agent status")
            .into_inner();
        response
            .apps
            .into_iter()
            .find(|a| a.name == APP)
            .expect("the app in the agent's status")
    }

    /// The files of `release` as the control plane sends them to agents.
    pub async fn agent_files(&self, release: &str) -> Vec<FileEntry> {
        let release = self
            .releases(Role::Viewer)
            .await
            .get_release(GetReleaseRequest {
                app: APP.into(),
                id: release.into(),
                include_manifest: true,
            })
            .await
            .expect("get release")
            .into_inner()
            .release
            .expect("release set");
        release
            .manifest
            .into_iter()
            .map(|entry| {
                let symlink = entry.mode == 0o120777;
                FileEntry {
                    path: entry.path,
                    kind: if symlink {
                        FileKind::Symlink
                    } else {
                        FileKind::Regular
                    } as i32,
                    mode: if symlink { 0o777 } else { entry.mode },
                    size: entry.size,
                    sha256: entry.sha256,
                }
            })
            .collect()
    }

    /// The agent Deploy request the control plane makes for `release` with
    /// the app's current settings, under `deployment_id`.
    pub async fn agent_deploy_request(
        &self,
        deployment_id: &str,
        release: &str,
    ) -> agent::DeployRequest {
        let app = self
            .apps(Role::Viewer)
            .await
            .get_app(GetAppRequest { name: APP.into() })
            .await
            .expect("get app")
            .into_inner()
            .app
            .expect("app set");
        agent::DeployRequest {
            deployment_id: deployment_id.into(),
            app: Some(app_target()),
            release_id: release.into(),
            files: self.agent_files(release).await,
            keep_releases: app.keep_releases,
            spec: app.activation,
            environment: ENV.into(),
            ..Default::default()
        }
    }
}

/// The app as agents know it (default deploy root).
pub fn app_target() -> AppTarget {
    AppTarget {
        name: APP.into(),
        deploy_root: String::new(),
    }
}
