//! What a host's agent must speak before it is sent secrets: agent contract
//! 5. An older agent would ignore the secrets fields and deploy without
//! them, so such a host is refused before anything is sent to it.

use slipway_proto::{agent::v1::GetStatusRequest, control::v1::DeploymentKind};

use super::host::{Failure, HostRun};
use crate::agents::AgentClient;

/// The first agent contract that takes secrets.
pub const SECRETS_CONTRACT: u32 = 5;

impl HostRun {
    /// Refuses (finally) a host whose agent predates [`SECRETS_CONTRACT`]
    /// when the deployment ships secrets or applies them; asks nothing
    /// otherwise.
    pub(super) async fn check_contract(&self, client: &AgentClient) -> Result<(), Failure> {
        let plan = self.plan();
        if plan.secrets.versions.is_empty() && plan.kind != DeploymentKind::Secrets {
            return Ok(());
        }
        let request = GetStatusRequest {
            apps: Vec::new(),
            omit_sizes: true,
        };
        let status = self.call("GetStatus", client.get_status(request)).await?;
        let contract = status.host.map_or(0, |h| h.contract_version).max(1);
        match refusal(&self.host.name, contract) {
            Some(message) => Err(Failure::Final(message)),
            None => Ok(()),
        }
    }
}

/// Why `host`, whose agent speaks `contract`, cannot take secrets.
pub fn refusal(host: &str, contract: u32) -> Option<String> {
    (contract < SECRETS_CONTRACT).then(|| {
        format!(
            "FAILED_PRECONDITION: host {host} runs an agent of contract {contract}; secrets need agent contract {SECRETS_CONTRACT} or later (an older agent would deploy without them): upgrade the agent on {host}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_agents_are_refused_by_name_and_contract() {
        let message = refusal("web-1", 4).unwrap();
        assert!(message.contains("host web-1"), "{message}");
        assert!(message.contains("contract 4"), "{message}");
        assert!(message.starts_with("FAILED_PRECONDITION"), "{message}");
        assert_eq!(refusal("web-1", SECRETS_CONTRACT), None);
        assert_eq!(
            refusal("web-1", slipway_proto::AGENT_CONTRACT_VERSION),
            None
        );
    }
}
