//! Runtime actions and drains need agent contract 5: an older agent ignores
//! the spec's fields it does not know and would switch without draining or
//! reloading. A deployment of an app that declares them is refused before it
//! starts when a host answers with an older contract, and a host is failed
//! before anything is shipped to it when it turns out older during the
//! rollout (a host that did not answer at the start).

use std::time::Duration;

use slipway_proto::{
    agent::v1::GetStatusRequest,
    control::v1::{App, Host},
    runtime,
};
use tokio::task::JoinSet;

use super::host::{Failure, HostRun};
use crate::{
    agents::{AgentClient, Agents},
    error::Error,
};

/// How long the check before a deployment waits for each agent.
const ASK_WITHIN: Duration = Duration::from_secs(10);

/// Whether the app declares a runtime action or a drain.
pub fn needed(app: &App) -> bool {
    app.activation.as_ref().is_some_and(runtime::needs_contract)
}

/// The refusal for a host whose agent speaks `contract`.
pub fn refusal(host: &str, contract: u32, app: &str) -> String {
    format!(
        "host {host} runs agent contract {contract}; the runtime action or drain of app {app} needs agent contract {}: upgrade the agent on {host}, or clear them with `slipctl app update {app} --no-runtime-action --no-drain`",
        runtime::CONTRACT
    )
}

/// The contract a connected agent reports.
async fn contract_of(client: &AgentClient) -> Result<u32, tonic::Status> {
    let request = GetStatusRequest {
        apps: Vec::new(),
        omit_sizes: true,
    };
    let status = client.get_status(request).await?;
    Ok(status.host.map_or(0, |h| h.contract_version))
}

/// Refuses (FAILED_PRECONDITION) a deployment of an app with a runtime
/// action or drain when a host's agent answers with an older contract.
/// Hosts that do not answer in time are left to the rollout's own check.
pub async fn require(agents: &Agents, app: &App, hosts: &[Host]) -> Result<(), Error> {
    if !needed(app) {
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
            && contract < runtime::CONTRACT
        {
            old.push((host, contract));
        }
    }
    old.sort();
    match old.first() {
        Some((host, contract)) => Err(Error::Precondition(refusal(host, *contract, &app.name))),
        None => Ok(()),
    }
}

impl HostRun {
    /// Fails the host (finally) when the app needs contract 5 and its agent
    /// is older.
    pub(super) async fn require_contract(&self, client: &AgentClient) -> Result<(), Failure> {
        let app = &self.plan().app;
        if !needed(app) {
            return Ok(());
        }
        let contract = self.call("GetStatus", contract_of(client)).await?;
        if contract < runtime::CONTRACT {
            return Err(Failure::Final(refusal(
                &self.host.name,
                contract,
                &app.name,
            )));
        }
        Ok(())
    }
}
