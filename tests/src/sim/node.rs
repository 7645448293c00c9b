//! One simulated agent behind the shared server: its name and address, the
//! in-memory host it drives, the fencing state of each app, the revocation
//! list it was sent, and the latency and failures it injects.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use slipway_agent::fencing::{self, Fence};
use slipway_control_plane::agents::{
    AgentClient,
    simulated::{Behaviour, SimHost},
};
use slipway_proto::{agent::v1::AppTarget, revocation::Revocations, validate};
use tonic::Status;

use super::{Chaos, fields::FencedRequest};

/// Apps whose fencing state one simulated host keeps; a request for one
/// more is refused, so a caller cannot grow the map without bound.
pub const MAX_APPS: usize = 256;

/// One simulated agent.
pub struct Node {
    /// Host name, as in its certificate.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its in-memory state machine (scriptable by tests).
    pub host: Arc<SimHost>,
    /// The state machine's calls, as the control plane's own simulated
    /// agent answers them.
    pub(super) client: AgentClient,
    /// The control plane's revocation list, as last sent.
    pub(super) revocations: Revocations,
    /// App -> (highest token seen, its epoch).
    fences: Mutex<HashMap<String, (u64, String)>>,
    chaos: Arc<Chaos>,
}

/// A request's app and fencing, validated the way a real agent does.
pub(super) struct Fenced {
    pub app: String,
    pub fence: Fence,
}

impl Node {
    pub(super) fn new(
        name: String,
        addr: SocketAddr,
        host: Arc<SimHost>,
        client: AgentClient,
        revocations: Revocations,
        chaos: Arc<Chaos>,
    ) -> Self {
        Self {
            name,
            addr,
            host,
            client,
            revocations,
            fences: Mutex::default(),
            chaos,
        }
    }

    fn fences(&self) -> MutexGuard<'_, HashMap<String, (u64, String)>> {
        self.fences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest fencing token `app` has seen (0: none).
    pub fn token(&self, app: &str) -> u64 {
        self.fences().get(app).map_or(0, |(token, _)| *token)
    }

    /// Validates a fenced request's ids, app, token (required unless
    /// `optional`) and epoch, and refuses a stale token, recording nothing.
    pub(super) fn check(
        &self,
        request: &impl FencedRequest,
        optional: bool,
    ) -> Result<Fenced, Status> {
        if let Some((deployment_id, release_id)) = request.ids() {
            validate::release_id("deployment_id", deployment_id).map_err(agent_status)?;
            validate::release_id("release_id", release_id).map_err(agent_status)?;
        }
        let app = app_name(request.app())?;
        let token = if optional {
            request.token()
        } else {
            fencing::required("fencing_token", request.token()).map_err(agent_status)?
        };
        let epoch = fencing::epoch("fencing_epoch", request.epoch()).map_err(agent_status)?;
        let fenced = Fenced {
            app,
            fence: Fence { token, epoch },
        };
        self.admit(&fenced, false)?;
        Ok(fenced)
    }

    /// Records the token of a request that went ahead.
    pub(super) fn record(&self, fenced: &Fenced) -> Result<(), Status> {
        self.admit(fenced, true)
    }

    fn admit(&self, fenced: &Fenced, record: bool) -> Result<(), Status> {
        let mut fences = self.fences();
        if !fences.contains_key(&fenced.app) && fences.len() >= MAX_APPS {
            return Err(Status::resource_exhausted(format!(
                "a simulated host keeps at most {MAX_APPS} apps"
            )));
        }
        let (mut token, mut epoch) = fences.get(&fenced.app).cloned().unwrap_or_default();
        fencing::admit(&mut token, &mut epoch, &fenced.app, &fenced.fence)
            .map_err(|stale| Status::from(slipway_agent::Error::Stale(stale)))?;
        if record {
            fences.insert(fenced.app.clone(), (token, epoch));
        }
        Ok(())
    }

    /// Forgets `app`'s token and epoch; returns them.
    pub(super) fn reset(&self, app: &str) -> (u64, String) {
        self.fences().remove(app).unwrap_or_default()
    }

    /// Waits the configured latency of one call.
    pub(super) async fn delay(&self) {
        let wait = self.chaos.latency();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Before a prepare: with the configured failure rate, the host's next
    /// prepare fails.
    pub(super) fn maybe_fail(&self) {
        if self.chaos.fails() {
            self.host
                .on_prepare(Behaviour::Fail("injected failure (simulated)".into()));
        }
    }
}

/// The app's name, validated like a real agent's request.
pub(super) fn app_name(app: Option<&AppTarget>) -> Result<String, Status> {
    let app = app.ok_or_else(|| agent_status(validate::InvalidField::new("app", "is required")))?;
    validate::name("app.name", &app.name).map_err(agent_status)?;
    Ok(app.name.clone())
}

/// The status a real agent answers for a field that broke the rules.
pub(super) fn agent_status(invalid: validate::InvalidField) -> Status {
    Status::from(slipway_agent::Error::from(invalid))
}

/// Per-call latency: `base` plus up to `jitter`.
pub(super) fn latency(base: Duration, jitter: Duration, draw: f64) -> Duration {
    base + jitter.mul_f64(draw)
}
