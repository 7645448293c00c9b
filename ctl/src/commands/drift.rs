//! `slipctl drift`: check an environment's hosts for drift now; and the
//! repair that `slipctl deploy --repair` starts and follows.

use std::collections::BTreeSet;

use crate::exit::Exit;

use clap::Args;
use slipway_proto::control::v1::{
    CheckDriftRequest, CheckDriftResponse, RepairDriftRequest, RolloutPolicy,
};
use tokio_stream::StreamExt;

use super::follow::follow;
use crate::{
    connection::{Api, Connection, RpcError, rpc},
    output,
    output::Output,
};

/// Flags of `drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Environment whose hosts are checked
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Only this app (default: every app)
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
}

/// Checks now and prints one row per host and app; exits 1 when any
/// drifted (unknown hosts alone do not change the exit code).
pub async fn run(args: &DriftArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let api = conn.api().await?;
    let report = check(&api, &args.env, args.app.as_deref().unwrap_or_default()).await?;
    match output {
        Output::Json => output::json(&report)?,
        Output::Text => {
            output::emit(&output::drift(&report.hosts))?;
            output::emit(&output::drift_summary(
                report.hosts.len(),
                report.drifted,
                report.unknown,
            ))?;
        }
    }
    Ok(if report.drifted > 0 {
        Exit::Failure
    } else {
        Exit::Success
    })
}

async fn check(api: &Api, env: &str, app: &str) -> anyhow::Result<CheckDriftResponse> {
    let request = CheckDriftRequest {
        environment: env.to_owned(),
        app: app.to_owned(),
    };
    Ok(rpc(api.drift().check_drift(request).await)?)
}

/// What `deploy --repair` asks.
pub struct RepairArgs<'a> {
    /// One app, or every app with a host to repair.
    pub app: Option<&'a str>,
    /// The environment.
    pub env: &'a str,
    /// The operator's message.
    pub message: String,
    /// Replaces the environment's rollout policy.
    pub policy: Option<RolloutPolicy>,
}

/// Repairs the app (or, in turn, every app with a host to repair): prints
/// the check, then follows the repair deployment. Exits 0 when nothing
/// needed a repair or every repair succeeded.
pub async fn repair(api: &Api, args: RepairArgs<'_>, output: Output) -> anyhow::Result<Exit> {
    let apps: Vec<String> = match args.app {
        Some(app) => vec![app.to_owned()],
        None => check(api, args.env, "")
            .await?
            .hosts
            .into_iter()
            .filter(|h| h.repairable)
            .map(|h| h.app)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    if apps.is_empty() && output == Output::Text {
        output::emit(&format!("no host of {} needs a repair", args.env))?;
    }
    for app in apps {
        let request = RepairDriftRequest {
            app: app.clone(),
            environment: args.env.to_owned(),
            message: args.message.clone(),
            policy: args.policy,
        };
        let mut stream = rpc(api.drift().repair_drift(request).await)?;
        let first = stream
            .next()
            .await
            .transpose()
            .map_err(RpcError)?
            .ok_or_else(|| anyhow::anyhow!("the control plane ended the repair without a word"))?;
        let id = first.deployment_id.clone();
        match output {
            Output::Json => output::json_line(&first)?,
            Output::Text => {
                let check = first.check.unwrap_or_default();
                output::emit(&output::drift(&check.hosts))?;
                let line = if id.is_empty() {
                    format!("no host of {} needs a repair of {app}", args.env)
                } else {
                    format!("repairing {app} in {} with {id}", args.env)
                };
                output::emit(&line)?;
            }
        }
        if id.is_empty() {
            continue;
        }
        let events = stream.map(|item| item.map(|response| response.event));
        let code = follow(api, output, events, Some(id), 0).await?;
        if code != Exit::Success {
            return Ok(code);
        }
    }
    Ok(Exit::Success)
}
