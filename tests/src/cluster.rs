//! A control plane, N agents and a sample repository, wired together and
//! registered: app `web` (from the repository), environment `prod`, hosts
//! `web-1` .. `web-N`. Agents run in-process by default, or as real
//! `slipway-agent` processes that a test can SIGKILL and restart.

use std::{net::SocketAddr, path::PathBuf};

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::ActivationSpec,
    control::v1::{
        AddHostRequest, App, CreateAppRequest, CreateEnvironmentRequest, DeployRequest,
        DeployResponse, Deployment, DeploymentEvent, Environment, GetAppRequest,
        GetDeploymentRequest, Host, RollbackRequest, RolloutPolicy, UpdateAppRequest,
        app_service_client::AppServiceClient, deployment_service_client::DeploymentServiceClient,
        environment_service_client::EnvironmentServiceClient,
        host_service_client::HostServiceClient, release_service_client::ReleaseServiceClient,
    },
    identity::Role,
    tls::{self, Peer, TlsPaths},
};
use tempfile::TempDir;
use tonic::{Streaming, transport::Channel};

use crate::{
    control_process::ControlPlaneProcess,
    faults::FaultProxy,
    pki::TestPki,
    process::AgentProcess,
    repo::{Change, SampleRepo},
    server::{self, Running},
};

/// The app every cluster registers.
pub const APP: &str = "web";
/// The environment every cluster registers.
pub const ENV: &str = "prod";

/// One agent of the cluster.
pub struct AgentHost {
    /// Host name (`web-1`, ...).
    pub name: String,
    /// Apps directory of this agent.
    pub apps_dir: PathBuf,
    /// Agent state directory.
    pub data_dir: PathBuf,
    /// The running in-process server, if started that way.
    pub server: Option<Running>,
    /// The `slipway-agent` process, if started that way.
    pub process: Option<AgentProcess>,
    /// The fault proxy in front of it, if the cluster has one for it
    /// ([`Builder::fault_proxies`]); the host is registered at its address.
    pub proxy: Option<FaultProxy>,
}

impl AgentHost {
    /// Root of the app on this host.
    pub fn app_root(&self) -> PathBuf {
        self.apps_dir.join(APP)
    }

    /// The release `current` points to, if any.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.app_root().join("current")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Directory of a release on this host.
    pub fn release_dir(&self, id: &str) -> PathBuf {
        self.app_root().join("releases").join(id)
    }

    /// Where the agent listens.
    pub fn addr(&self) -> SocketAddr {
        match (&self.server, &self.process) {
            (Some(server), _) => server.addr,
            (None, Some(process)) => process.addr,
            (None, None) => panic!("agent {} is not running", self.name),
        }
    }

    /// Where the agent serves `/metrics`, `/healthz` and `/readyz`.
    pub fn metrics_addr(&self) -> SocketAddr {
        match (&self.server, &self.process) {
            (Some(server), _) => server.metrics,
            (None, Some(process)) => process.metrics.expect("metrics listening"),
            (None, None) => panic!("agent {} is not running", self.name),
        }
    }

    /// The address the control plane dials: the fault proxy's if there is
    /// one, else the agent's.
    pub fn registered_addr(&self) -> SocketAddr {
        self.proxy.as_ref().map_or_else(|| self.addr(), |p| p.addr)
    }

    /// The agent's process; panics for an in-process agent.
    pub fn process(&mut self) -> &mut AgentProcess {
        self.process
            .as_mut()
            .expect("started with Builder::process_agents")
    }
}

/// Builds a [`Cluster`].
pub struct Builder {
    agents: usize,
    register: bool,
    activation: Option<ActivationSpec>,
    keep: u32,
    process: bool,
    own_binaries: bool,
    proxy_all: bool,
    proxied: Vec<usize>,
    process_control_plane: bool,
    enrollment: bool,
    json_logs: bool,
    sample_every: Option<std::time::Duration>,
    control_plane_env: Vec<(String, String)>,
}

impl Builder {
    /// An environment variable for the control-plane process
    /// ([`Builder::process_control_plane`]).
    pub fn control_plane_env(mut self, key: &str, value: &str) -> Self {
        self.control_plane_env
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// How often the in-process control plane samples every host's health
    /// (by default hourly: samples add agent calls and feed items other
    /// tests do not expect).
    pub fn health_sample_every(mut self, every: std::time::Duration) -> Self {
        self.sample_every = Some(every);
        self
    }

    /// The control plane holds the CA key and serves enrollment.
    pub fn enrollment(mut self) -> Self {
        self.enrollment = true;
        self
    }

    /// How many agents (default 3).
    pub fn agents(mut self, n: usize) -> Self {
        self.agents = n;
        self
    }

    /// Skip registering the app, environment and hosts.
    pub fn bare(mut self) -> Self {
        self.register = false;
        self
    }

    /// The app's activation spec (shared paths, hooks, health check, mode).
    pub fn activation(mut self, spec: ActivationSpec) -> Self {
        self.activation = Some(spec);
        self
    }

    /// Releases the app keeps on each host (default 5).
    pub fn keep(mut self, n: u32) -> Self {
        self.keep = n;
        self
    }

    /// Like [`process_agents`](Self::process_agents), each agent running
    /// from its own copy of the binary (in the test's directory), which an
    /// agent upgrade may replace.
    pub fn process_agents_with_own_binaries(mut self) -> Self {
        self.process = true;
        self.own_binaries = true;
        self
    }

    /// Runs every agent as a real `slipway-agent` process instead of in this
    /// test's process, so it can be killed and restarted.
    pub fn process_agents(mut self) -> Self {
        self.process = true;
        self
    }

    /// Puts a [`FaultProxy`] in front of every agent and registers each host
    /// at its proxy's address; see [`Cluster::proxy`].
    pub fn fault_proxies(mut self) -> Self {
        self.proxy_all = true;
        self
    }

    /// Puts a [`FaultProxy`] in front of agent `index` (0-based, as in
    /// [`Cluster::agents`]) only; may be repeated.
    pub fn fault_proxy(mut self, index: usize) -> Self {
        self.proxied.push(index);
        self
    }

    /// Runs the control plane as a real `slipway-control-plane` process, so
    /// that [`Cluster::kill_control_plane`] can SIGKILL it.
    pub fn process_control_plane(mut self) -> Self {
        self.process_control_plane = true;
        self
    }

    /// Process agents and a process control plane log JSON lines.
    pub fn json_logs(mut self) -> Self {
        self.json_logs = true;
        self
    }

    /// Variables for a process daemon's environment.
    fn env(&self, json_var: &str) -> Vec<(String, String)> {
        if self.json_logs {
            vec![(json_var.to_owned(), "true".to_owned())]
        } else {
            Vec::new()
        }
    }

    /// Starts everything.
    pub async fn start(self) -> Cluster {
        if let Some(i) = self.proxied.iter().find(|&&i| i >= self.agents) {
            panic!("fault_proxy({i}) but only {} agents", self.agents);
        }
        slipway_proto::daemon::install_crypto_provider();
        let pki = TestPki::new();
        let work = tempfile::tempdir().expect("temp dir");
        // The build user (nobody) passes through to the control plane's
        // build directory; it lists nothing.
        let passable =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o711);
        std::fs::set_permissions(work.path(), passable).expect("chmod");
        let mut agents = Vec::new();
        for i in 1..=self.agents {
            let name = format!("web-{i}");
            let apps_dir = work.path().join(&name).join("srv");
            let data_dir = work.path().join(&name).join("state");
            std::fs::create_dir_all(&apps_dir).expect("mkdir");
            std::fs::create_dir_all(&data_dir).expect("mkdir");
            let (server, process) = if self.process {
                let binary = if self.own_binaries {
                    crate::agent_binary::copy_to(&work.path().join(&name).join("bin"))
                } else {
                    crate::process::agent_binary().to_owned()
                };
                let process = AgentProcess::start_from(
                    binary,
                    &name,
                    pki.agent(&name),
                    apps_dir.clone(),
                    data_dir.clone(),
                    self.env("SLIPWAY_AGENT_LOG_JSON"),
                )
                .await;
                (None, Some(process))
            } else {
                let running =
                    server::agent(&name, pki.agent(&name), apps_dir.clone(), data_dir.clone())
                        .await;
                (Some(running), None)
            };
            let upstream = match (&server, &process) {
                (Some(server), _) => server.addr,
                (None, Some(process)) => process.addr,
                (None, None) => unreachable!("one of them was started"),
            };
            let proxy = if self.proxy_all || self.proxied.contains(&(i - 1)) {
                Some(FaultProxy::start(upstream).await)
            } else {
                None
            };
            agents.push(AgentHost {
                name,
                apps_dir,
                data_dir,
                server,
                process,
                proxy,
            });
        }
        let data_dir = work.path().join("control-plane");
        let mut enroll_addr = None;
        let (cp, cp_process) = if self.process_control_plane {
            let mut env = self.env("SLIPWAY_CP_LOG_JSON");
            env.extend(self.control_plane_env.iter().cloned());
            let process = ControlPlaneProcess::start_with(&pki, data_dir.clone(), env).await;
            (None, Some(process))
        } else if self.enrollment {
            let (cp, addr) = server::control_plane_enrolling(
                pki.control_plane(),
                pki.control_plane_client(),
                data_dir.clone(),
                pki.dir(),
            )
            .await;
            enroll_addr = Some(addr);
            (Some(cp), None)
        } else {
            let cp = in_process(&pki, &data_dir, self.sample_every).await;
            (Some(cp), None)
        };
        let cluster = Cluster {
            pki,
            repo: SampleRepo::new(),
            work,
            data_dir,
            cp,
            cp_process,
            agents,
            enroll_addr,
            sample_every: self.sample_every,
        };
        if self.register {
            cluster.register(self.activation, self.keep).await;
        }
        cluster
    }
}

/// A running control plane with agents.
pub struct Cluster {
    /// The PKI of this test.
    pub pki: TestPki,
    /// The app's repository.
    pub repo: SampleRepo,
    /// The agents.
    pub agents: Vec<AgentHost>,
    /// The control plane's sled directory.
    pub data_dir: PathBuf,
    /// The enrollment listener, with [`Builder::enrollment`].
    pub enroll_addr: Option<std::net::SocketAddr>,
    cp: Option<Running>,
    cp_process: Option<ControlPlaneProcess>,
    sample_every: Option<std::time::Duration>,
    #[allow(dead_code)]
    work: TempDir,
}

/// An in-process control plane on `data_dir`, sampling health every
/// `sample_every` when given.
async fn in_process(
    pki: &TestPki,
    data_dir: &std::path::Path,
    sample_every: Option<std::time::Duration>,
) -> Running {
    let mut config = server::control_plane_config(
        pki.control_plane(),
        pki.control_plane_client(),
        data_dir.to_owned(),
    );
    if let Some(every) = sample_every {
        config.health_sample_every = every;
    }
    server::serve_control_plane(config).await
}

impl Cluster {
    /// A builder with 3 agents that registers `web`, `prod` and the hosts.
    pub fn builder() -> Builder {
        Builder {
            own_binaries: false,
            agents: 3,
            register: true,
            activation: None,
            keep: 5,
            process: false,
            proxy_all: false,
            proxied: Vec::new(),
            process_control_plane: false,
            enrollment: false,
            json_logs: false,
            sample_every: None,
            control_plane_env: Vec::new(),
        }
    }

    /// The control plane's address.
    pub fn addr(&self) -> String {
        if let Some(process) = &self.cp_process {
            return process.addr.to_string();
        }
        self.cp
            .as_ref()
            .expect("control plane running")
            .addr
            .to_string()
    }

    /// Where the control plane serves `/metrics`, `/healthz` and `/readyz`.
    pub fn metrics_addr(&self) -> SocketAddr {
        if let Some(process) = &self.cp_process {
            return process.metrics.expect("metrics listening");
        }
        self.cp.as_ref().expect("control plane running").metrics
    }

    /// Where the in-process control plane serves its web listener (HTTPS:
    /// webhooks).
    pub fn web_addr(&self) -> SocketAddr {
        let cp = self.cp.as_ref().expect("an in-process control plane");
        cp.web.expect("web listening")
    }

    /// A channel to the control plane as an operator with `role`.
    pub async fn channel(&self, role: Role) -> Channel {
        self.channel_with(&self.pki.operator(role)).await
    }

    /// A channel to the control plane with any identity.
    pub async fn channel_with(&self, paths: &TlsPaths) -> Channel {
        tls::endpoint(&self.addr(), Peer::ControlPlane, &TestPki::material(paths))
            .expect("endpoint")
            .connect_lazy()
    }

    /// AppService client.
    pub async fn apps(&self, role: Role) -> AppServiceClient<Channel> {
        AppServiceClient::new(self.channel(role).await)
    }

    /// EnvironmentService client.
    pub async fn environments(&self, role: Role) -> EnvironmentServiceClient<Channel> {
        EnvironmentServiceClient::new(self.channel(role).await)
    }

    /// HostService client.
    pub async fn hosts(&self, role: Role) -> HostServiceClient<Channel> {
        HostServiceClient::new(self.channel(role).await)
    }

    /// ReleaseService client.
    pub async fn releases(&self, role: Role) -> ReleaseServiceClient<Channel> {
        ReleaseServiceClient::new(self.channel(role).await)
    }

    /// DeploymentService client.
    pub async fn deployments(&self, role: Role) -> DeploymentServiceClient<Channel> {
        DeploymentServiceClient::new(self.channel(role).await)
    }

    /// LockService as admin.
    pub async fn locks(
        &self,
    ) -> slipway_proto::control::v1::lock_service_client::LockServiceClient<Channel> {
        slipway_proto::control::v1::lock_service_client::LockServiceClient::new(
            self.channel(Role::Admin).await,
        )
    }

    /// AuditService as admin.
    pub async fn audit(
        &self,
    ) -> slipway_proto::control::v1::audit_service_client::AuditServiceClient<Channel> {
        slipway_proto::control::v1::audit_service_client::AuditServiceClient::new(
            self.channel(Role::Admin).await,
        )
    }

    /// The first page of the audit trail, newest first, read as an admin.
    pub async fn audit_trail(&self) -> Vec<slipway_proto::control::v1::AuditEvent> {
        self.audit()
            .await
            .list_audit_events(slipway_proto::control::v1::ListAuditEventsRequest::default())
            .await
            .expect("the audit trail")
            .into_inner()
            .events
    }

    async fn register(&self, activation: Option<ActivationSpec>, keep: u32) {
        let mut apps = self.apps(Role::Admin).await;
        apps.create_app(CreateAppRequest {
            app: Some(App {
                name: APP.into(),
                repository: self.repo.path().display().to_string(),
                default_branch: "main".into(),
                keep_releases: keep,
                activation,
                ..Default::default()
            }),
        })
        .await
        .expect("create app");
        self.environments(Role::Admin)
            .await
            .create_environment(CreateEnvironmentRequest {
                environment: Some(Environment {
                    name: ENV.into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create environment");
        let mut hosts = self.hosts(Role::Admin).await;
        for agent in &self.agents {
            let addr = agent.registered_addr();
            hosts
                .add_host(AddHostRequest {
                    host: Some(Host {
                        name: agent.name.clone(),
                        address: addr.to_string(),
                        environment: ENV.into(),
                        ..Default::default()
                    }),
                    enroll: false,
                })
                .await
                .expect("add host");
        }
    }

    /// Gives the app one hook, `hook("hold", command)`, that on agent
    /// `agent` prints `holding` and waits until the returned gate file
    /// exists (elsewhere it passes at once).
    pub async fn hold_in_hook(
        &self,
        agent: usize,
        hook: fn(&str, &str) -> slipway_proto::agent::v1::Hook,
    ) -> PathBuf {
        let apps_dir = &self.agents[agent].apps_dir;
        let gate = apps_dir.join("gate");
        let hold = crate::spec::hold_on(apps_dir, "holding", &gate);
        self.update_app(|app| {
            app.activation = Some(crate::spec::hooks(vec![hook("hold", &hold)]));
        })
        .await;
        gate
    }

    /// Cuts a release of the app from `git_ref` as a deployer, without
    /// deploying it; the refusal when it cannot be cut.
    pub async fn cut_release(
        &self,
        git_ref: &str,
    ) -> Result<slipway_proto::control::v1::Release, tonic::Status> {
        let answer = self
            .releases(Role::Deployer)
            .await
            .create_release(slipway_proto::control::v1::CreateReleaseRequest {
                app: APP.into(),
                git_ref: git_ref.into(),
                build: false,
            })
            .await?;
        Ok(answer.into_inner().release.expect("a release"))
    }

    /// Deploys `git_ref` as admin and collects the whole event stream and the
    /// final record.
    pub async fn deploy(&self, git_ref: &str) -> (Vec<DeploymentEvent>, Deployment) {
        let stream = self.deploy_stream(git_ref).await;
        self.finish(Vec::new(), stream).await
    }

    /// Starts deploying `git_ref` as admin and returns the live event stream,
    /// for tests that act while the deployment runs.
    pub async fn deploy_stream(&self, git_ref: &str) -> Streaming<DeployResponse> {
        self.try_deploy_stream(git_ref, None).await.expect("deploy")
    }

    /// Starts deploying `git_ref` as admin with `policy` replacing the
    /// environment's; the refusal when it does not start.
    pub async fn try_deploy_stream(
        &self,
        git_ref: &str,
        policy: Option<RolloutPolicy>,
    ) -> Result<Streaming<DeployResponse>, tonic::Status> {
        self.deployments(Role::Admin)
            .await
            .deploy(DeployRequest {
                app: APP.into(),
                environment: ENV.into(),
                git_ref: git_ref.into(),
                message: format!("deploy {git_ref}"),
                policy,
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Deploys `git_ref` with `policy` replacing the environment's; returns
    /// the whole event stream and the final record.
    pub async fn deploy_with(
        &self,
        git_ref: &str,
        policy: RolloutPolicy,
    ) -> (Vec<DeploymentEvent>, Deployment) {
        let stream = self
            .try_deploy_stream(git_ref, Some(policy))
            .await
            .expect("deploy");
        self.finish(Vec::new(), stream).await
    }

    /// The lock of the app in the environment, if held.
    pub async fn lock(&self) -> Option<slipway_proto::control::v1::Lock> {
        self.locks()
            .await
            .get_lock(slipway_proto::control::v1::GetLockRequest {
                app: APP.into(),
                environment: ENV.into(),
            })
            .await
            .expect("get lock")
            .into_inner()
            .lock
    }

    /// Reads `stream` to its end after the events already `seen`; returns
    /// all events and the final record.
    pub async fn finish(
        &self,
        mut seen: Vec<DeploymentEvent>,
        stream: Streaming<DeployResponse>,
    ) -> (Vec<DeploymentEvent>, Deployment) {
        let rest: Vec<DeploymentEvent> = stream
            .map(|r| r.expect("event").event.expect("event set"))
            .collect()
            .await;
        seen.extend(rest);
        let deployment = self.deployment(&seen[0].deployment_id).await;
        (seen, deployment)
    }

    /// Commits `text` as `index.html` on `main`: a new release to deploy.
    pub fn commit_text(&self, text: &str) -> String {
        self.repo
            .commit(text, &[Change::File("index.html", text.as_bytes())])
    }

    /// The app's releases, newest first.
    pub async fn releases_of_app(&self) -> Vec<slipway_proto::control::v1::Release> {
        self.releases(Role::Viewer)
            .await
            .list_releases(slipway_proto::control::v1::ListReleasesRequest {
                app: APP.into(),
                ..Default::default()
            })
            .await
            .expect("releases")
            .into_inner()
            .releases
    }

    /// Every deployment, newest first (the first page of the history).
    pub async fn history(&self) -> Vec<Deployment> {
        self.deployments(Role::Viewer)
            .await
            .list_deployments(slipway_proto::control::v1::ListDeploymentsRequest::default())
            .await
            .expect("list deployments")
            .into_inner()
            .deployments
    }

    /// Every event of deployment `id` from the first, following it to its
    /// final event, and the final record.
    pub async fn watch(&self, id: &str) -> (Vec<DeploymentEvent>, Deployment) {
        let stream = self
            .deployments(Role::Viewer)
            .await
            .watch_deployment(slipway_proto::control::v1::WatchDeploymentRequest {
                deployment_id: id.to_owned(),
                after_event: 0,
            })
            .await
            .expect("watch")
            .into_inner();
        let events: Vec<DeploymentEvent> = stream
            .map(|r| r.expect("event").event.expect("event set"))
            .collect()
            .await;
        (events, self.deployment(id).await)
    }

    /// Replaces the app's settings with `change` applied to the stored ones.
    pub async fn update_app(&self, change: impl FnOnce(&mut App)) -> App {
        let mut apps = self.apps(Role::Admin).await;
        let mut app = apps
            .get_app(GetAppRequest { name: APP.into() })
            .await
            .expect("get app")
            .into_inner()
            .app
            .expect("app set");
        change(&mut app);
        apps.update_app(UpdateAppRequest { app: Some(app) })
            .await
            .expect("update app")
            .into_inner()
            .app
            .expect("app set")
    }

    /// Rolls back (to `release`, or the previous one when empty) as admin.
    pub async fn rollback(&self, release: &str) -> (Vec<DeploymentEvent>, Deployment) {
        let mut client = self.deployments(Role::Admin).await;
        let stream = client
            .rollback(RollbackRequest {
                app: APP.into(),
                environment: ENV.into(),
                release_id: release.into(),
                message: "roll back".into(),
                policy: None,
                queue: false,
            })
            .await
            .expect("rollback")
            .into_inner();
        let events: Vec<DeploymentEvent> = stream
            .map(|r| r.expect("event").event.expect("event set"))
            .collect()
            .await;
        let deployment = self.deployment(&events[0].deployment_id).await;
        (events, deployment)
    }

    /// One deployment record.
    pub async fn deployment(&self, id: &str) -> Deployment {
        self.deployments(Role::Viewer)
            .await
            .get_deployment(GetDeploymentRequest {
                deployment_id: id.into(),
            })
            .await
            .expect("get deployment")
            .into_inner()
            .deployment
            .expect("deployment set")
    }

    /// SIGKILLs the control plane process ([`Builder::process_control_plane`]):
    /// no drain, no flush. [`Cluster::restart_control_plane`] starts it again.
    pub fn kill_control_plane(&mut self) {
        self.control_plane_process().kill_9();
    }

    /// Makes `process` the control plane this cluster talks to (another
    /// replica of a control plane on etcd); returns the one it replaces.
    pub fn use_control_plane(
        &mut self,
        process: ControlPlaneProcess,
    ) -> Option<ControlPlaneProcess> {
        self.cp_process.replace(process)
    }

    /// The control plane process; panics for an in-process control plane.
    pub fn control_plane_process(&mut self) -> &mut ControlPlaneProcess {
        self.cp_process
            .as_mut()
            .expect("started with Builder::process_control_plane")
    }

    /// Stops the control plane (draining; a killed process is already
    /// stopped) and starts a new one on the same sled directory. A process
    /// comes back on the same address and answers health checks before this
    /// returns, so clients made before keep working.
    pub async fn restart_control_plane(&mut self) {
        if let Some(process) = self.cp_process.as_mut() {
            if process.is_running() {
                process.terminate().await;
            }
            process.restart().await;
            return;
        }
        if let Some(cp) = self.cp.take() {
            cp.shutdown().await;
        }
        self.cp = Some(in_process(&self.pki, &self.data_dir, self.sample_every).await);
    }

    /// Stops the in-process control plane (draining), runs `offline` on its
    /// store, then starts it again on the same directory: for a test that
    /// works on the store as the control plane left it.
    pub async fn with_control_plane_stopped<T>(
        &mut self,
        offline: impl AsyncFnOnce(&slipway_control_plane::store::Store) -> T,
    ) -> T {
        if let Some(cp) = self.cp.take() {
            cp.shutdown().await;
        }
        let backend = slipway_control_plane::store::SledBackend::open(&self.data_dir, 8 << 20)
            .expect("open the control plane's store");
        let store = slipway_control_plane::store::Store::new(std::sync::Arc::new(backend));
        let out = offline(&store).await;
        drop(store);
        self.cp = Some(in_process(&self.pki, &self.data_dir, self.sample_every).await);
        out
    }

    /// Stops every server, re-raising a server panic.
    pub async fn shutdown(mut self) {
        if let Some(cp) = self.cp.take() {
            cp.shutdown().await;
        }
        if let Some(mut process) = self.cp_process.take() {
            process.assert_running();
        }
        for agent in &mut self.agents {
            if let Some(server) = agent.server.take() {
                server.shutdown().await;
            }
            if let Some(mut process) = agent.process.take() {
                process.assert_running();
            }
        }
    }
}
