//! Simulated agents: an in-memory fleet for the engine's unit tests and for
//! large-fleet benchmarks. Each host keeps its contents, its releases and
//! `current` in memory and follows a script for its next operations:
//! succeed, fail, hang until cancelled, be unavailable, or switch and then
//! lose the connection before it reports; its apps' health probes report
//! what they are told. Every call is logged in order.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use slipway_proto::{
    agent::v1::{
        ActivateReleaseRequest, AppStatus, ApplySecretsRequest, CancelOperationRequest,
        CancelOperationResponse, CheckDriftRequest, CheckDriftResponse, GetHealthResponse,
        GetStatusRequest, GetStatusResponse, MissingObjectsRequest, MissingObjectsResponse,
        OperationResult, PinReleaseRequest, PinReleaseResponse, PrepareReleaseRequest,
        ProgressEvent, ReleaseOnDisk, ReleaseState, RepairReleaseRequest, ResetFencingRequest,
        ResetFencingResponse, RollbackRequest, Stage, UploadObjectsResponse,
    },
    control::v1::Host,
    reason::{self, Reason},
};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::Status;

use super::{AgentApi, AgentClient, Dial, DialError, ProgressStream, UploadStream};

/// What a host does on its next prepare or activate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Does it and reports success.
    Succeed,
    /// Reports a failed operation with this error (`current` unchanged).
    Fail(String),
    /// Reports nothing until the operation is cancelled.
    Hang,
    /// Refuses the call as UNAVAILABLE (a transient failure).
    Unavailable,
    /// Does it (an activation switches `current`), then the stream breaks
    /// before the result.
    LoseConnection,
    /// Does it, then the host drops off the network (every dial and call
    /// fails until [`SimHost::set_down`] brings it back) before it reports.
    Vanish,
}

/// One simulated host.
#[derive(Debug)]
pub struct SimHost {
    state: Mutex<State>,
    /// Set by a cancel; cleared when an operation starts.
    cancelled: watch::Sender<bool>,
}

impl Default for SimHost {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            cancelled: watch::channel(false).0,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    down: bool,
    current: String,
    releases: BTreeSet<String>,
    objects: HashSet<String>,
    prepare: VecDeque<Behaviour>,
    activate: VecDeque<Behaviour>,
    calls: Vec<String>,
    runs: u64,
    // App -> (passing, response time in ms) of its latest probe.
    health: BTreeMap<String, (bool, f64)>,
    // The agent contract reported; None: this build's.
    contract: Option<u32>,
}

impl SimHost {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues what the next prepare does (after those already queued).
    pub fn on_prepare(&self, behaviour: Behaviour) {
        self.state().prepare.push_back(behaviour);
    }

    /// Queues what the next activation does.
    pub fn on_activate(&self, behaviour: Behaviour) {
        self.state().activate.push_back(behaviour);
    }

    /// Sets what `app`'s latest health probe found: passed or failed, in
    /// `response_ms`.
    pub fn set_health(&self, app: &str, passing: bool, response_ms: f64) {
        let mut state = self.state();
        state.health.insert(app.to_owned(), (passing, response_ms));
    }

    /// Reports agent contract `contract`, as an older agent would.
    pub fn set_contract(&self, contract: u32) {
        self.state().contract = Some(contract);
    }

    /// Takes the host off the network (dials fail) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// The release `current` points to; empty when none.
    pub fn current(&self) -> String {
        self.state().current.clone()
    }

    /// Puts a release on disk and makes it current, as an earlier deploy would.
    pub fn install(&self, release: &str) {
        let mut state = self.state();
        state.releases.insert(release.to_owned());
        state.current = release.to_owned();
    }

    /// The calls made so far: `prepare <release>`, `activate <release>`,
    /// `cancel`, `status`, `missing`, `upload`.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    fn log(&self, call: String) {
        self.state().calls.push(call);
    }
}

/// A fleet of simulated hosts, created on first use.
#[derive(Debug, Default)]
pub struct Fleet {
    hosts: Mutex<HashMap<String, Arc<SimHost>>>,
    calls: Mutex<Vec<String>>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Arc<SimHost> {
        self.hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Every prepare and activate of every host in the order they were
    /// made: `<host> prepare <release>`.
    pub fn operations(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[tonic::async_trait]
impl Dial for Arc<Fleet> {
    async fn dial(&self, host: &Host) -> Result<AgentClient, DialError> {
        let sim = self.host(&host.name);
        if sim.state().down {
            return Err(DialError::unreachable(format!(
                "{}: connection refused (simulated)",
                host.address
            )));
        }
        Ok(Arc::new(SimAgent {
            fleet: self.clone(),
            name: host.name.clone(),
            host: sim,
        }))
    }
}

/// A connection to one simulated host.
struct SimAgent {
    fleet: Arc<Fleet>,
    name: String,
    host: Arc<SimHost>,
}

fn event(
    run_id: &str,
    sequence: u64,
    stage: Stage,
    message: &str,
    result: Option<OperationResult>,
) -> ProgressEvent {
    ProgressEvent {
        run_id: run_id.to_owned(),
        sequence,
        stage: stage as i32,
        percent: if result.is_some() { 100 } else { 50 },
        message: message.to_owned(),
        result,
        ..Default::default()
    }
}

impl SimAgent {
    /// An activation or a rollback: `current` switched to a release on disk.
    fn switch(&self, release: String) -> Result<ProgressStream, Status> {
        let behaviour = self.operation("activate", &release)?;
        if !self.host.state().releases.contains(&release) {
            return Err(reason::status(
                tonic::Code::FailedPrecondition,
                format!("release {release} is not on this host (simulated)"),
                Reason::ReleaseNotOnHost,
                [("release_id", release.clone())],
            ));
        }
        Ok(self.run(Stage::Activate, behaviour, |state| state.current = release))
    }

    fn operation(&self, what: &str, release: &str) -> Result<Behaviour, Status> {
        let mut state = self.host.state();
        if state.down {
            return Err(Status::unavailable("connection refused (simulated)"));
        }
        state.calls.push(format!("{what} {release}"));
        self.fleet
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {what} {release}", self.name));
        let queue = if what == "activate" {
            &mut state.activate
        } else {
            &mut state.prepare
        };
        let behaviour = queue.pop_front().unwrap_or(Behaviour::Succeed);
        self.host.cancelled.send_replace(false);
        if behaviour == Behaviour::Unavailable {
            return Err(Status::unavailable("the agent is unavailable (simulated)"));
        }
        Ok(behaviour)
    }

    /// The stream of an operation that does `apply` unless it fails.
    fn run(
        &self,
        stage: Stage,
        behaviour: Behaviour,
        apply: impl FnOnce(&mut State),
    ) -> ProgressStream {
        let (previous, current) = {
            let mut state = self.host.state();
            let previous = state.current.clone();
            if matches!(
                behaviour,
                Behaviour::Succeed | Behaviour::LoseConnection | Behaviour::Vanish
            ) {
                apply(&mut state);
            }
            if behaviour == Behaviour::Vanish {
                state.down = true;
            }
            (previous, state.current.clone())
        };
        let run = {
            let mut state = self.host.state();
            state.runs += 1;
            format!("sim-{}", state.runs)
        };
        let progress = event(&run, 1, stage, "working (simulated)", None);
        let result = |success: bool, error: String| OperationResult {
            success,
            previous_release: previous.clone(),
            current_release: current.clone(),
            error,
        };
        let last: Result<ProgressEvent, Status> = match behaviour {
            Behaviour::Succeed => Ok(event(
                &run,
                2,
                Stage::Done,
                "done",
                Some(result(true, String::new())),
            )),
            Behaviour::Fail(error) => Ok(event(
                &run,
                2,
                Stage::Done,
                "failed",
                Some(result(false, error)),
            )),
            Behaviour::LoseConnection | Behaviour::Vanish => {
                Err(Status::unavailable("connection reset (simulated)"))
            }
            Behaviour::Hang | Behaviour::Unavailable => {
                let mut cancel = self.host.cancelled.subscribe();
                let cancelled = result(false, "cancelled".into());
                let wait = async move {
                    let _ = cancel.wait_for(|cancelled| *cancelled).await;
                    Ok(event(&run, 2, Stage::Done, "cancelled", Some(cancelled)))
                };
                return Box::pin(
                    tokio_stream::once(Ok(progress)).chain(futures_util::stream::once(wait)),
                );
            }
        };
        Box::pin(tokio_stream::iter([Ok(progress), last]))
    }
}

#[tonic::async_trait]
impl AgentApi for SimAgent {
    async fn get_status(&self, request: GetStatusRequest) -> Result<GetStatusResponse, Status> {
        self.host.log("status".into());
        let state = self.host.state();
        let host = self.facts(&state)?;
        let apps = request
            .apps
            .into_iter()
            .map(|app| AppStatus {
                name: app.name,
                deploy_root: app.deploy_root,
                current_release: state.current.clone(),
                releases: state
                    .releases
                    .iter()
                    .map(|id| ReleaseOnDisk {
                        id: id.clone(),
                        state: if *id == state.current {
                            ReleaseState::Active
                        } else {
                            ReleaseState::Ready
                        } as i32,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        Ok(GetStatusResponse {
            host: Some(host),
            apps,
        })
    }

    async fn get_health(&self) -> Result<GetHealthResponse, Status> {
        self.health()
    }

    async fn missing_objects(
        &self,
        request: MissingObjectsRequest,
    ) -> Result<MissingObjectsResponse, Status> {
        self.host.log("missing".into());
        let state = self.host.state();
        let sha256 = request
            .sha256
            .into_iter()
            .filter(|sha| !state.objects.contains(sha))
            .collect();
        Ok(MissingObjectsResponse { sha256 })
    }

    async fn upload_objects(
        &self,
        mut chunks: UploadStream,
    ) -> Result<UploadObjectsResponse, Status> {
        self.host.log("upload".into());
        let (mut objects, mut bytes) = (HashSet::new(), 0);
        while let Some(chunk) = chunks.next().await {
            bytes += chunk.data.len() as u64;
            objects.insert(chunk.sha256);
        }
        let count = objects.len() as u64;
        self.host.state().objects.extend(objects);
        Ok(UploadObjectsResponse {
            objects: count,
            bytes,
        })
    }

    async fn prepare(&self, request: PrepareReleaseRequest) -> Result<ProgressStream, Status> {
        let behaviour = self.operation("prepare", &request.release_id)?;
        let release = request.release_id;
        Ok(self.run(Stage::Materialise, behaviour, |state| {
            state.releases.insert(release);
        }))
    }

    async fn activate(&self, request: ActivateReleaseRequest) -> Result<ProgressStream, Status> {
        self.switch(request.release_id)
    }

    async fn roll_back(&self, request: RollbackRequest) -> Result<ProgressStream, Status> {
        self.switch(request.release_id)
    }

    async fn apply_secrets(&self, request: ApplySecretsRequest) -> Result<ProgressStream, Status> {
        self.switch(request.release_id)
    }

    async fn cancel_operation(
        &self,
        _request: CancelOperationRequest,
    ) -> Result<CancelOperationResponse, Status> {
        self.host.log("cancel".into());
        self.host.cancelled.send_replace(true);
        Ok(CancelOperationResponse {
            cancelled: true,
            current_release: self.host.current(),
        })
    }

    async fn pin_release(&self, _request: PinReleaseRequest) -> Result<PinReleaseResponse, Status> {
        self.host.log("pin".into());
        Ok(PinReleaseResponse::default())
    }

    async fn reset_fencing(
        &self,
        _request: ResetFencingRequest,
    ) -> Result<ResetFencingResponse, Status> {
        self.host.log("reset-fencing".into());
        Ok(ResetFencingResponse::default())
    }

    async fn prepare_certificate(&self) -> Result<String, Status> {
        Err(Status::unimplemented(
            "simulated agents hold no certificate",
        ))
    }

    async fn install_certificate(&self, _certificate_pem: String) -> Result<String, Status> {
        Err(Status::unimplemented(
            "simulated agents hold no certificate",
        ))
    }

    /// Reports `current` and the releases on disk, without drift: a
    /// simulated host keeps no files.
    async fn check_drift(&self, _request: CheckDriftRequest) -> Result<CheckDriftResponse, Status> {
        self.host.log("check-drift".into());
        let state = self.host.state();
        if state.down {
            return Err(Status::unavailable("connection refused (simulated)"));
        }
        Ok(CheckDriftResponse {
            current_release: state.current.clone(),
            checked_release: state.current.clone(),
            releases: state.releases.iter().cloned().collect(),
            counts: Some(Default::default()),
            ..Default::default()
        })
    }

    /// A prepare, logged as `repair <release>`; it follows the host's
    /// script for its next prepare.
    async fn repair_release(
        &self,
        request: RepairReleaseRequest,
    ) -> Result<ProgressStream, Status> {
        let release = request.release.unwrap_or_default().release_id;
        let behaviour = self.operation("repair", &release)?;
        Ok(self.run(Stage::Materialise, behaviour, |state| {
            state.releases.insert(release);
        }))
    }
}

mod health;
