//! Agent upgrades: binaries staged on the control plane (content addressed
//! by SHA-256, at most 256 MiB), and the rollout that ships one to every
//! host of an environment in batches, has each agent swap itself for it,
//! verifies the version it reports and stops per the environment's failure
//! budget. Each upgrade is recorded with its events.

mod host;
mod run;
mod staging;

use slipway_proto::{
    AGENT_UPGRADE_CONTRACT,
    agent::v1::GetStatusRequest,
    control::v1::{AgentUpgradeEvent, Host, UpgradeAgentsRequest},
    validate::InvalidField,
};
use tokio::sync::mpsc;

pub use self::staging::Staging;
use crate::{Context, catalog, error::Error, policy::Policy};

/// Seconds a host has to come back when the request says 0.
const DEFAULT_DEADLINE: u32 = 60;

/// An upgrade as it runs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The upgrade's id.
    pub id: String,
    /// The environment.
    pub environment: String,
    /// The binary.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// The version it reports.
    pub version: String,
    /// Seconds per host to come back.
    pub deadline_seconds: u32,
    /// Hosts in batches.
    pub batches: Vec<Vec<Host>>,
    /// Failed hosts tolerated.
    pub max_failed_hosts: u32,
    /// Who asked.
    pub author: String,
}

/// Checks the request against the store and the hosts, then starts the
/// upgrade; its events arrive on the receiver (the upgrade goes on if the
/// receiver is dropped).
pub async fn start(
    ctx: &Context,
    author: String,
    request: UpgradeAgentsRequest,
) -> Result<mpsc::Receiver<AgentUpgradeEvent>, Error> {
    let plan = plan(ctx, author, request).await?;
    run::spawn(ctx.clone(), plan).await
}

async fn plan(ctx: &Context, author: String, request: UpgradeAgentsRequest) -> Result<Plan, Error> {
    if !slipway_agent_version_ok(&request.version) {
        return Err(InvalidField::new(
            "version",
            "must be 1-64 characters of letters, digits and .-+_~",
        )
        .into());
    }
    if request.deadline_seconds > 600 {
        return Err(InvalidField::new("deadline_seconds", "must be at most 600").into());
    }
    let size = ctx.agent_binaries.size(&request.sha256)?;
    let environment = catalog::environment(&ctx.store, &request.environment)?;
    let hosts = catalog::hosts(&ctx.store, &request.environment)?;
    if hosts.is_empty() {
        return Err(Error::Precondition(format!(
            "environment {} has no hosts",
            request.environment
        )));
    }
    for host in &hosts {
        check_contract(ctx, host).await?;
    }
    let mut policy = Policy::new(environment.rollout_policy.unwrap_or_default());
    if request.batch_size > 0 {
        policy.spec.strategy = slipway_proto::control::v1::RolloutStrategy::Rolling.into();
        policy.spec.batch_size = request.batch_size;
    }
    let max_failed_hosts = policy.spec.max_failed_hosts;
    Ok(Plan {
        id: format!("u-{}", crate::upgrades::run::millis()),
        environment: request.environment,
        sha256: request.sha256,
        size,
        version: request.version,
        deadline_seconds: match request.deadline_seconds {
            0 => DEFAULT_DEADLINE,
            s => s,
        },
        batches: policy.batches(hosts),
        max_failed_hosts,
        author,
    })
}

/// An agent older than contract 5 would not know the upgrade calls: it is
/// refused before anything starts.
async fn check_contract(ctx: &Context, host: &Host) -> Result<(), Error> {
    let unreachable = |message: String| Error::Agent {
        host: host.name.clone(),
        code: tonic::Code::Unavailable,
        message,
    };
    let client = ctx
        .agents
        .connect(host)
        .await
        .map_err(|e| unreachable(e.message))?;
    let status = client
        .get_status(GetStatusRequest::default())
        .await
        .map_err(|s| unreachable(s.message().to_owned()))?;
    let info = status.host.unwrap_or_default();
    if info.contract_version < AGENT_UPGRADE_CONTRACT {
        return Err(Error::Precondition(format!(
            "host {} runs agent {} with agent contract {}; upgrades need contract {} \
             (upgrade that agent by hand once)",
            host.name, info.agent_version, info.contract_version, AGENT_UPGRADE_CONTRACT
        )));
    }
    Ok(())
}

/// The agent's rule for versions: 1-64 of letters, digits and `.-+_~`.
fn slipway_agent_version_ok(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+_~".contains(&b))
}
