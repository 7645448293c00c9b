//! What a host's agent must speak for what a deployment asks of it: agent
//! contract 5 for an app's runtime action or drain and for secrets. An older
//! agent ignores the fields it does not know and would switch without
//! draining, reloading or writing the secrets. A deployment of an app that
//! declares a runtime action or drain is refused before it starts when a
//! host answers with an older contract; during the rollout, a host is
//! failed before anything is shipped to it when it turns out older (a host
//! that did not answer at the start, or one that would be sent secrets).

use std::time::Duration;

use slipway_proto::{
    agent::v1::GetStatusRequest,
    control::v1::{App, DeploymentKind, Host},
    runtime,
};
use tokio::task::JoinSet;

use super::host::{Failure, HostRun};
use crate::{
    agents::{AgentClient, Agents},
    error::Error,
};

/// The first agent contract with runtime actions, drains and secrets.
pub const CONTRACT: u32 = runtime::CONTRACT;

/// How long the check before a deployment waits for each agent.
const ASK_WITHIN: Duration = Duration::from_secs(10);

/// What of the app needs contract 5, and how to do without it.
enum Need {
    Runtime,
    Secrets,
}

impl Need {
    /// The refusal for a host whose agent speaks `contract`.
    fn refusal(&self, host: &str, contract: u32, app: &str) -> String {
        let (what, otherwise) = match self {
            Need::Runtime => (
                format!("the runtime action or drain of app {app}"),
                format!(
                    ", or clear them with `slipctl app update {app} --no-runtime-action --no-drain`"
                ),
            ),
            Need::Secrets => (
                format!("the secrets of app {app}"),
                " (an older agent would deploy without them)".to_owned(),
            ),
        };
        format!(
            "host {host} runs agent contract {contract}; {what} needs agent contract {CONTRACT}: upgrade the agent on {host}{otherwise}"
        )
    }
}

/// Whether the app declares a runtime action or a drain.
fn runtime_needed(app: &App) -> bool {
    app.activation.as_ref().is_some_and(runtime::needs_contract)
}

/// The contract a connected agent reports (0 before the field: 1).
async fn contract_of(client: &AgentClient) -> Result<u32, tonic::Status> {
    let request = GetStatusRequest {
        apps: Vec::new(),
        omit_sizes: true,
    };
    let status = client.get_status(request).await?;
    Ok(status.host.map_or(0, |h| h.contract_version).max(1))
}

/// Refuses (FAILED_PRECONDITION) a deployment of an app with a runtime
/// action or drain when a host's agent answers with an older contract.
/// Hosts that do not answer in time are left to the rollout's own check.
pub async fn require(agents: &Agents, app: &App, hosts: &[Host]) -> Result<(), Error> {
    if !runtime_needed(app) {
        return Ok(());
    }
    let mut asked = JoinSet::new();
    for host in hosts.iter().cloned() {
        let agents = agents.clone();
        asked.spawn(async move {
            let answer = tokio::time::timeout(ASK_WITHIN, async {
                let client = agents.connect(&host).await.ok()?;
                contract_of(&client).await.ok()
            });
            let contract = answer.await.ok().flatten();
            (host.name, contract)
        });
    }
    let mut old = Vec::new();
    while let Some(joined) = asked.join_next().await {
        if let Ok((host, Some(contract))) = joined
            && contract < CONTRACT
        {
            old.push((host, contract));
        }
    }
    old.sort();
    match old.first() {
        Some((host, contract)) => Err(Error::Precondition(
            Need::Runtime.refusal(host, *contract, &app.name),
        )),
        None => Ok(()),
    }
}

impl HostRun {
    /// Fails the host (finally) when what the deployment asks of it needs
    /// contract 5 and its agent is older; asks nothing otherwise.
    pub(super) async fn require_contract(&self, client: &AgentClient) -> Result<(), Failure> {
        let plan = self.plan();
        let need = if runtime_needed(&plan.app) {
            Need::Runtime
        } else if !plan.secrets.versions.is_empty() || plan.kind == DeploymentKind::Secrets {
            Need::Secrets
        } else {
            return Ok(());
        };
        let contract = self.call("GetStatus", contract_of(client)).await?;
        if contract < CONTRACT {
            let message = need.refusal(&self.host.name, contract, &plan.app.name);
            return Err(Failure::Final(message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_agents_are_refused_by_name_and_contract() {
        let message = Need::Secrets.refusal("web-1", 4, "web");
        assert!(
            message.contains("host web-1 runs agent contract 4"),
            "{message}"
        );
        assert!(message.contains("secrets of app web"), "{message}");
        let message = Need::Runtime.refusal("web-2", 1, "web");
        assert!(message.contains("--no-runtime-action"), "{message}");
    }
}
