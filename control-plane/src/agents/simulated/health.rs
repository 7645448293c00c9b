//! What a simulated host's agent reports of itself: made-up facts, and its
//! apps' probes as the test or benchmark set them.

use slipway_proto::agent::v1::{AppHealth, AppHealthState, GetHealthResponse, HostInfo};
use tonic::Status;

use super::{SimAgent, State};

impl SimAgent {
    /// The host's facts, or UNAVAILABLE while it is down.
    pub(super) fn facts(&self, state: &State) -> Result<HostInfo, Status> {
        if state.down {
            return Err(Status::unavailable("connection refused (simulated)"));
        }
        Ok(HostInfo {
            host_name: self.name.clone(),
            agent_version: "simulated".into(),
            contract_version: state
                .contract
                .unwrap_or(slipway_proto::AGENT_CONTRACT_VERSION),
            uptime_seconds: 86_400,
            load_average: 0.5,
            memory_total_bytes: 8 << 30,
            memory_available_bytes: 4 << 30,
            disk_free_bytes: 100 << 30,
            ..Default::default()
        })
    }

    /// GetHealth: the facts and each app's probe as set.
    pub(super) fn health(&self) -> Result<GetHealthResponse, Status> {
        let state = self.host.state();
        let host = self.facts(&state)?;
        let apps = state
            .health
            .iter()
            .map(|(name, (passing, ms))| AppHealth {
                name: name.clone(),
                release_id: state.current.clone(),
                state: if *passing {
                    AppHealthState::Healthy
                } else {
                    AppHealthState::Failing
                } as i32,
                checked_at: Some(slipway_proto::now()),
                response_ms: *ms,
                error: if *passing { "" } else { "failing (simulated)" }.to_owned(),
                interval_seconds: 30,
                ..Default::default()
            })
            .collect();
        Ok(GetHealthResponse {
            host: Some(host),
            apps,
        })
    }
}
