//! Calls straight to an agent, as the control plane makes them: for tests
//! that check what the agent itself accepts, refuses, replays and reports.
//!
//! Mutating calls carry a fencing token. A test that deploys through the
//! control plane afterwards calls as the lock's holder
//! ([`Cluster::holder_token`]); one that does not may act as a newer holder
//! with a higher token.

use std::collections::HashSet;

use futures_util::StreamExt;
use slipway_proto::{
    CHUNK_BYTES,
    agent::v1::{
        self as agent, AppStatus, AppTarget, FileEntry, FileKind, GetStatusRequest, ProgressEvent,
        UploadObjectsRequest, agent_service_client::AgentServiceClient,
    },
    control::v1::{
        CreateReleaseRequest, GetAppRequest, GetFleetStatusRequest, GetReleaseRequest, HostState,
        Release,
    },
    identity::Role,
    tls,
};
use tonic::{Status, Streaming, transport::Channel};

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
        let channel = tls::endpoint(
            &host.addr().to_string(),
            tls::Peer::Agent(host.name.clone()),
            &material,
        )
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
                omit_sizes: false,
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

    /// Waits until agent `index` reports the tree of `release` prestaged
    /// for the next deploy (it builds it once the app has been idle a
    /// second); panics after 60 s.
    pub async fn wait_prestaged(&self, index: usize, release: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = self.agent_status(index).await;
            if status.prestaged_release == release {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} has not prestaged {release} in 60 s: {status:?}",
                self.agents[index].name
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Every host of the environment as the control plane reports it live,
    /// with the app only (GetFleetStatus as a viewer: what `slipctl status`
    /// shows).
    pub async fn fleet_status(&self) -> Vec<HostState> {
        let request = GetFleetStatusRequest {
            environment: ENV.into(),
            app: APP.into(),
        };
        let mut hosts = self.hosts(Role::Viewer).await;
        let status = hosts.get_fleet_status(request).await;
        status.expect("fleet status").into_inner().hosts
    }

    /// The highest fencing token agent `index` has seen for the app: the
    /// token of the control plane's last call (0 before any).
    pub async fn agent_token(&self, index: usize) -> u64 {
        self.agent_status(index).await.fencing_token
    }

    /// A token to call agent `index` with as the holder of the app's lock:
    /// the highest it has seen, at least 1. Deployments through the control
    /// plane afterwards carry a token at least as high, so they still pass.
    pub async fn holder_token(&self, index: usize) -> u64 {
        self.agent_token(index).await.max(1)
    }

    /// Cuts the release of `git_ref` through the control plane without
    /// deploying it.
    pub async fn create_release(&self, git_ref: &str) -> Release {
        self.releases(Role::Deployer)
            .await
            .create_release(CreateReleaseRequest {
                app: APP.into(),
                git_ref: git_ref.into(),
                build: false,
            })
            .await
            .expect("create release")
            .into_inner()
            .release
            .expect("release set")
    }

    /// Uploads the contents of `release` (from the sample repository) to
    /// agent `index` with `token`, as the control plane does before a
    /// Deploy; returns the objects the agent took.
    pub async fn agent_upload(
        &self,
        index: usize,
        release: &Release,
        token: u64,
    ) -> Result<u64, Status> {
        let blobs = self.repo.files(&release.commit);
        let mut sent = HashSet::new();
        let mut chunks = Vec::new();
        for entry in self.agent_files(&release.id).await {
            if !sent.insert(entry.sha256.clone()) {
                continue;
            }
            let content = &blobs
                .get(&entry.path)
                .unwrap_or_else(|| panic!("{} in commit {}", entry.path, release.commit))
                .1;
            let mut offset = 0;
            loop {
                let end = (offset + CHUNK_BYTES).min(content.len());
                chunks.push(UploadObjectsRequest {
                    sha256: entry.sha256.clone(),
                    size: content.len() as u64,
                    offset: offset as u64,
                    data: content[offset..end].to_vec(),
                    ..Default::default()
                });
                offset = end;
                if offset >= content.len() {
                    break;
                }
            }
        }
        // The first message names the app and carries the token.
        chunks.insert(
            0,
            UploadObjectsRequest {
                app: Some(app_target()),
                fencing_token: token,
                fencing_epoch: String::new(),
                ..Default::default()
            },
        );
        let response = self
            .agent_client(index)
            .upload_objects(tokio_stream::iter(chunks))
            .await?;
        Ok(response.into_inner().objects)
    }

    /// The agent Rollback request the control plane makes to switch to
    /// `release` with the app's current settings, under `deployment_id`
    /// (that of a prepare-only Deploy activates the prepared release).
    pub async fn agent_rollback_request(
        &self,
        deployment_id: &str,
        release: &str,
        token: u64,
    ) -> agent::RollbackRequest {
        let app = self
            .apps(Role::Viewer)
            .await
            .get_app(GetAppRequest { name: APP.into() })
            .await
            .expect("get app")
            .into_inner()
            .app
            .expect("app set");
        agent::RollbackRequest {
            deployment_id: deployment_id.into(),
            app: Some(app_target()),
            release_id: release.into(),
            spec: app.activation,
            environment: ENV.into(),
            fencing_token: token,
            fencing_epoch: String::new(),
            secrets: Vec::new(),
        }
    }

    /// The agent PrepareRelease request for `release` with the app's
    /// current settings, under `deployment_id` and `token`: phase one of a
    /// batch.
    pub async fn agent_prepare_request(
        &self,
        deployment_id: &str,
        release: &str,
        token: u64,
    ) -> agent::PrepareReleaseRequest {
        let deploy = self.agent_deploy_request(deployment_id, release).await;
        agent::PrepareReleaseRequest {
            deployment_id: deploy.deployment_id,
            app: deploy.app,
            release_id: deploy.release_id,
            files: deploy.files,
            keep_releases: deploy.keep_releases,
            spec: deploy.spec,
            environment: deploy.environment,
            base_release: String::new(),
            removed_paths: Vec::new(),
            fencing_token: token,
            fencing_epoch: String::new(),
            secrets: Vec::new(),
        }
    }

    /// The agent ActivateRelease request switching to `release`, which a
    /// PrepareRelease under `deployment_id` prepared: phase two.
    pub async fn agent_activate_request(
        &self,
        deployment_id: &str,
        release: &str,
        token: u64,
    ) -> agent::ActivateReleaseRequest {
        let switch = self
            .agent_rollback_request(deployment_id, release, token)
            .await;
        agent::ActivateReleaseRequest {
            deployment_id: switch.deployment_id,
            app: switch.app,
            release_id: switch.release_id,
            spec: switch.spec,
            environment: switch.environment,
            fencing_token: switch.fencing_token,
            fencing_epoch: String::new(),
            secrets: Vec::new(),
        }
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
    /// the app's current settings, under `deployment_id`; set its
    /// `fencing_token` before sending it.
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

/// Every event of an operation's response stream, or the first error.
async fn events<T>(
    stream: Streaming<T>,
    event: fn(T) -> Option<ProgressEvent>,
) -> Result<Vec<ProgressEvent>, Status> {
    stream
        .map(|item| item.map(|r| event(r).expect("event set")))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Runs an agent Deploy to its end: the call's status, or every event (the
/// last one carries the result).
pub async fn agent_deploy(
    agent: &mut AgentServiceClient<Channel>,
    request: agent::DeployRequest,
) -> Result<Vec<ProgressEvent>, Status> {
    events(agent.deploy(request).await?.into_inner(), |r| r.event).await
}

/// Runs an agent Rollback to its end, like [`agent_deploy`].
pub async fn agent_rollback(
    agent: &mut AgentServiceClient<Channel>,
    request: agent::RollbackRequest,
) -> Result<Vec<ProgressEvent>, Status> {
    events(agent.rollback(request).await?.into_inner(), |r| r.event).await
}

/// Runs an agent PrepareRelease to its end, like [`agent_deploy`].
pub async fn agent_prepare(
    agent: &mut AgentServiceClient<Channel>,
    request: agent::PrepareReleaseRequest,
) -> Result<Vec<ProgressEvent>, Status> {
    events(agent.prepare_release(request).await?.into_inner(), |r| {
        r.event
    })
    .await
}

/// Runs an agent ActivateRelease to its end, like [`agent_deploy`].
pub async fn agent_activate(
    agent: &mut AgentServiceClient<Channel>,
    request: agent::ActivateReleaseRequest,
) -> Result<Vec<ProgressEvent>, Status> {
    events(agent.activate_release(request).await?.into_inner(), |r| {
        r.event
    })
    .await
}

/// The result of the last event of an agent operation.
#[track_caller]
pub fn outcome(events: &[ProgressEvent]) -> agent::OperationResult {
    events
        .last()
        .and_then(|e| e.result.clone())
        .unwrap_or_else(|| panic!("the last event has the result: {events:#?}"))
}

/// The app as agents know it (default deploy root).
pub fn app_target() -> AppTarget {
    AppTarget {
        name: APP.into(),
        deploy_root: String::new(),
    }
}
