//! The Slipway side: the test fixtures' cluster (one control plane and N
//! agents in-process, real mutual TLS, real sled), each agent registered
//! behind a counting proxy so the bytes on the wire are measured.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::StreamExt;
use prost::Message as _;
use slipway_proto::{
    agent::v1 as agent,
    control::v1::{
        AddHostRequest, App, CreateAppRequest, CreateEnvironmentRequest, DeployRequest, Deployment,
        DeploymentEvent, DeploymentStatus, Environment, GetDeploymentRequest, GetReleaseRequest,
        Host, ListDeploymentsRequest, RollbackRequest,
        deployment_service_client::DeploymentServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, SampleRepo,
    cluster::{APP, ENV},
};
use tonic::transport::Channel;

use crate::proxy::{CountingProxy, Traffic};

/// gRPC's length-prefixed message header.
const GRPC_FRAME: u64 = 5;

/// What a deploy's two manifest-sized requests weigh, rebuilt from the
/// release's manifest the way the control plane builds them.
pub struct ManifestCost {
    pub files: usize,
    /// MissingObjects: every distinct content hash.
    pub missing_objects: u64,
    /// Deploy: every file entry.
    pub deploy: u64,
}

/// One Slipway step, measured.
pub struct StepResult {
    /// From issuing Deploy/Rollback to the final event.
    pub wall: Duration,
    /// From issuing the call to the first event: the release cut from git
    /// (for a deploy), the lock and the first durable record.
    pub first_event: Duration,
    /// The final record (per-host `bytes_sent`).
    pub deployment: Deployment,
    /// Every event, for the phase breakdown.
    pub events: Vec<DeploymentEvent>,
    /// Wall-clock start, to place event times and symlink mtimes.
    pub started: SystemTime,
    /// Per host: bytes through its proxy during the step.
    pub wire: Vec<Traffic>,
    /// Per host: when `current` was switched (its mtime), after the start.
    pub switched: Vec<Option<Duration>>,
    /// Per host, for a release built in this step: from the creation of its
    /// staging directory (birth time) to its rename into `releases/`
    /// (ctime), i.e. directories, hard links and directory fsyncs.
    pub materialise: Vec<Option<Duration>>,
}

impl StepResult {
    /// Max over hosts of the content bytes the control plane reports.
    pub fn content_per_host(&self) -> u64 {
        self.deployment
            .hosts
            .iter()
            .map(|h| h.bytes_sent)
            .max()
            .unwrap_or(0)
    }

    /// Seconds from the start to an event.
    pub fn at(&self, event: &DeploymentEvent) -> Option<f64> {
        let ts = event.time.as_ref()?;
        let time = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(ts.seconds).ok()?,
                u32::try_from(ts.nanos).ok()?,
            );
        Some(match time.duration_since(self.started) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
    }
}

pub struct Slipway {
    pub cluster: Cluster,
    proxies: Vec<CountingProxy>,
    client: DeploymentServiceClient<Channel>,
}

impl Slipway {
    pub async fn start(agents: usize) -> Result<Self> {
        let cluster = Cluster::builder().agents(agents).bare().start().await;
        let mut proxies = Vec::with_capacity(agents);
        for agent in &cluster.agents {
            let addr = agent.server.as_ref().context("agent running")?.addr;
            proxies.push(CountingProxy::start(addr).await?);
        }
        cluster
            .apps(Role::Admin)
            .await
            .create_app(CreateAppRequest {
                app: Some(App {
                    name: APP.into(),
                    repository: cluster.repo.path().display().to_string(),
                    default_branch: "main".into(),
                    keep_releases: 5,
                    ..Default::default()
                }),
            })
            .await
            .context("create app")?;
        cluster
            .environments(Role::Admin)
            .await
            .create_environment(CreateEnvironmentRequest {
                environment: Some(Environment {
                    name: ENV.into(),
                    ..Default::default()
                }),
            })
            .await
            .context("create environment")?;
        let mut hosts = cluster.hosts(Role::Admin).await;
        for (agent, proxy) in cluster.agents.iter().zip(&proxies) {
            hosts
                .add_host(AddHostRequest {
                    host: Some(Host {
                        name: agent.name.clone(),
                        address: proxy.addr.to_string(),
                        environment: ENV.into(),
                        ..Default::default()
                    }),
                    enroll: false,
                })
                .await
                .with_context(|| format!("add host {}", agent.name))?;
        }
        // One operator connection for the whole run, opened now (untimed).
        let mut client = cluster.deployments(Role::Admin).await;
        client
            .list_deployments(ListDeploymentsRequest::default())
            .await
            .context("first call to the control plane")?;
        Ok(Self {
            cluster,
            proxies,
            client,
        })
    }

    /// Waits until every agent has the tree of `release` prestaged for the
    /// next deploy; returns how long that took.
    pub async fn prestaged(&self, release: &str) -> Result<Duration> {
        let started = Instant::now();
        for (i, agent) in self.cluster.agents.iter().enumerate() {
            while self.cluster.agent_status(i).await.prestaged_release != release {
                ensure!(
                    started.elapsed() < Duration::from_secs(120),
                    "{} has not prestaged the tree of {release} after 2 minutes",
                    agent.name
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(started.elapsed())
    }

    pub fn repo(&self) -> &SampleRepo {
        &self.cluster.repo
    }

    pub async fn deploy(&self, git_ref: &str) -> Result<StepResult> {
        let request = DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: git_ref.into(),
            message: format!("bench: deploy {git_ref}"),
            ..Default::default()
        };
        let mut client = self.client.clone();
        self.measure(async move {
            let stream = client.deploy(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|m| m.event)).boxed())
        })
        .await
    }

    /// Rolls back to the previous release.
    pub async fn rollback(&self) -> Result<StepResult> {
        let request = RollbackRequest {
            app: APP.into(),
            environment: ENV.into(),
            release_id: String::new(),
            message: "bench: roll back".into(),
            policy: None,
            queue: false,
        };
        let mut client = self.client.clone();
        self.measure(async move {
            let stream = client.rollback(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|m| m.event)).boxed())
        })
        .await
    }

    async fn measure<F>(&self, call: F) -> Result<StepResult>
    where
        F: Future<
            Output = Result<
                futures_util::stream::BoxStream<
                    'static,
                    Result<Option<DeploymentEvent>, tonic::Status>,
                >,
                tonic::Status,
            >,
        >,
    {
        let before: Vec<Traffic> = self.proxies.iter().map(CountingProxy::traffic).collect();
        let started = SystemTime::now();
        let start = Instant::now();
        let mut stream = call.await.context("start the deployment")?;
        let mut first_event = None;
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            let event = item
                .context("deployment event stream")?
                .context("event set")?;
            first_event.get_or_insert_with(|| start.elapsed());
            events.push(event);
        }
        let wall = start.elapsed();
        let Some(first) = events.first() else {
            bail!("the deployment streamed no events");
        };
        let deployment = self
            .client
            .clone()
            .get_deployment(GetDeploymentRequest {
                deployment_id: first.deployment_id.clone(),
            })
            .await
            .context("get deployment")?
            .into_inner()
            .deployment
            .context("deployment set")?;
        ensure!(
            deployment.status == DeploymentStatus::Succeeded as i32,
            "deployment {} did not succeed: {}",
            deployment.id,
            deployment.error
        );
        let wire = self
            .proxies
            .iter()
            .zip(before)
            .map(|(p, before)| p.traffic() - before)
            .collect();
        let switched = self
            .cluster
            .agents
            .iter()
            .map(|a| {
                let meta = std::fs::symlink_metadata(a.app_root().join("current")).ok()?;
                meta.modified().ok()?.duration_since(started).ok()
            })
            .collect();
        let materialise = self
            .cluster
            .agents
            .iter()
            .map(|a| build_time(&a.release_dir(&deployment.release), started))
            .collect();
        Ok(StepResult {
            wall,
            first_event: first_event.unwrap_or(wall),
            deployment,
            events,
            started,
            wire,
            switched,
            materialise,
        })
    }

    /// The protobuf size of the MissingObjects and Deploy requests that a
    /// deploy of `step`'s release sends to each agent.
    pub async fn manifest_cost(&self, step: &StepResult) -> Result<ManifestCost> {
        let release = self
            .cluster
            .releases(Role::Viewer)
            .await
            .get_release(GetReleaseRequest {
                app: APP.into(),
                id: step.deployment.release.clone(),
                include_manifest: true,
            })
            .await
            .context("get release")?
            .into_inner()
            .release
            .context("release set")?;
        let target = agent::AppTarget {
            name: APP.into(),
            deploy_root: String::new(),
        };
        let mut hashes: Vec<String> = release.manifest.iter().map(|e| e.sha256.clone()).collect();
        hashes.sort();
        hashes.dedup();
        let missing = agent::MissingObjectsRequest {
            app: Some(target.clone()),
            sha256: hashes,
        };
        let deploy = agent::DeployRequest {
            deployment_id: step.deployment.id.clone(),
            app: Some(target),
            release_id: release.id.clone(),
            files: release
                .manifest
                .iter()
                .map(|e| agent::FileEntry {
                    path: e.path.clone(),
                    kind: if e.mode == 0o120777 {
                        agent::FileKind::Symlink
                    } else {
                        agent::FileKind::Regular
                    } as i32,
                    mode: if e.mode == 0o120777 { 0o777 } else { e.mode },
                    size: e.size,
                    sha256: e.sha256.clone(),
                })
                .collect(),
            keep_releases: 5,
            environment: ENV.into(),
            ..Default::default()
        };
        Ok(ManifestCost {
            files: release.manifest.len(),
            missing_objects: missing.encoded_len() as u64 + GRPC_FRAME,
            deploy: deploy.encoded_len() as u64 + GRPC_FRAME,
        })
    }

    /// Stops the servers; the cluster's temporary directory goes with it.
    pub async fn shutdown(self) {
        let Self {
            cluster,
            proxies,
            client,
        } = self;
        drop(client);
        drop(proxies);
        // The hosts' files first, in parallel; the agents are idle.
        crate::baseline::remove_all(cluster.agents.iter().map(|a| a.app_root()).collect()).await;
        cluster.shutdown().await;
    }
}

/// Birth-to-ctime of a release directory created after `started`.
fn build_time(dir: &std::path::Path, started: SystemTime) -> Option<Duration> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    let born = meta.created().ok()?;
    born.duration_since(started).ok()?;
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).ok()?,
            u32::try_from(meta.ctime_nsec()).ok()?,
        );
    changed.duration_since(born).ok()
}
