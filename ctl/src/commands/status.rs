//! `slipctl status`: the fleet's live state, asked of every agent, with the
//! latest drift finding of each host's apps.

use clap::Args;
use slipway_proto::control::v1::{GetFleetStatusRequest, HostDrift, ListDriftFindingsRequest};

use crate::{
    connection::{Api, Connection, RpcError, rpc},
    exit::Exit,
    output,
    output::Output,
};

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only the hosts of this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only this app in each host's report
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
}

/// Prints one row per host (reachable, agent version, load, memory, disk)
/// and one per app on each host (current release, drift, releases on
/// disk). JSON: the fleet status, with `drift` holding the drifted
/// findings. Exits [`Exit::Partial`] when a host did not answer.
pub async fn run(args: &StatusArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let request = GetFleetStatusRequest {
        environment: args.env.clone().unwrap_or_default(),
        app: args.app.clone().unwrap_or_default(),
    };
    let api = conn.api().await?;
    let response = rpc(api.hosts().get_fleet_status(request).await)?;
    let drift = drifted(&api, args).await;
    match output {
        Output::Json => {
            let mut value = serde_json::to_value(&response)?;
            value["drift"] = serde_json::to_value(&drift)?;
            output::json(&value)?;
        }
        Output::Text => output::emit(&output::fleet(&response.hosts, &drift))?,
    }
    let all_answered = response.hosts.iter().all(|h| h.reachable);
    Ok(if all_answered {
        Exit::Success
    } else {
        Exit::Partial
    })
}

/// The latest drifted findings; a control plane that cannot say (an older
/// one) gets a warning, not a failed status.
async fn drifted(api: &Api, args: &StatusArgs) -> Vec<HostDrift> {
    let request = ListDriftFindingsRequest {
        environment: args.env.clone().unwrap_or_default(),
        app: args.app.clone().unwrap_or_default(),
        drifted_only: true,
    };
    match api.drift().list_drift_findings(request).await {
        Ok(response) => response.into_inner().findings,
        Err(status) => {
            eprintln!("warning: no drift findings: {}", RpcError(status));
            Vec::new()
        }
    }
}
