//! `slipctl deploy`: ship a release to an environment and follow it live,
//! (`--plan`) print what it would do, or (`--repair`) put the recorded
//! release back on the hosts that drifted from it.

use crate::exit::Exit;

use clap::Args;
use futures_util::StreamExt;
use slipway_proto::control::v1::{
    DeployRequest, GetEnvironmentRequest, PlanDeploymentRequest, ReleaseMark,
};

use super::{
    drift::{self, RepairArgs},
    follow::{detach, follow},
    policy::PolicyArgs,
};
use crate::{
    confirm::confirm,
    connection::{Api, Connection, rpc},
    output,
    output::Output,
};

/// Flags of `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// App to deploy (with --repair: the app to repair; default every app)
    #[arg(required_unless_present = "repair")]
    pub app: Option<String>,
    /// Environment to deploy to
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Branch, tag or commit to cut (or reuse) a release from (default: the app's branch)
    #[arg(long = "ref", value_name = "REF", conflicts_with = "release")]
    pub git_ref: Option<String>,
    /// An existing release to deploy
    #[arg(long, value_name = "ID")]
    pub release: Option<String>,
    /// Why, recorded with the deployment
    #[arg(short, long)]
    pub message: Option<String>,
    /// Print the batches, hosts, release and what each host lacks; deploy nothing
    #[arg(long)]
    pub plan: bool,
    /// Check the environment's hosts for drift and deploy the recorded
    /// release again, built afresh, to each host whose current release or
    /// files drifted
    #[arg(long, conflicts_with_all = ["git_ref", "release", "plan"])]
    pub repair: bool,
    /// Print the deployment's id (with `-o json`: its record) and exit 0
    /// at once; the deployment goes on (follow it with `slipctl watch ID`)
    #[arg(long, conflicts_with_all = ["plan", "repair"])]
    pub detach: bool,
    /// While another deployment holds the lock, wait in the queue instead of
    /// being refused (`slipctl queue` lists it, `slipctl cancel ID` cancels it)
    #[arg(long)]
    pub queue: bool,
    /// Start at this time (UTC, e.g. 2026-12-01T02:00Z) instead of now; `slipctl queue`
    /// lists it, `slipctl cancel ID` cancels it
    #[arg(long, value_name = "TIME", value_parser = super::gates::parse_time)]
    pub at: Option<pbjson_types::Timestamp>,
    /// Write the environment's secrets again into the current release on
    /// every host and run its after-activate hooks; no new release
    #[arg(long, conflicts_with_all = ["git_ref", "release", "repair", "plan"])]
    pub secrets_only: bool,
    /// Deploy outside the environment's deploy windows or inside a freeze (admin; audited)
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation when the release is marked bad (required
    /// then when not on a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Policy for this deployment (default: the environment's)
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// The environment's policy with the flags applied, or None to use the
/// environment's as it is.
pub async fn policy_override(
    api: &Api,
    env: &str,
    flags: &PolicyArgs,
) -> anyhow::Result<Option<slipway_proto::control::v1::RolloutPolicy>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let environment = rpc(api
        .environments()
        .get_environment(GetEnvironmentRequest { name: env.into() })
        .await)?
    .environment
    .unwrap_or_default();
    Ok(Some(
        flags.apply(environment.rollout_policy.unwrap_or_default()),
    ))
}

/// Starts the deployment and prints its events until it finishes; exits 1
/// unless it succeeded.
pub async fn run(args: &DeployArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let api = conn.api().await?;
    let policy = policy_override(&api, &args.env, &args.policy).await?;
    if args.repair {
        let repair = RepairArgs {
            app: args.app.as_deref(),
            env: &args.env,
            message: args.message.clone().unwrap_or_default(),
            policy,
        };
        return drift::repair(&api, repair, output).await;
    }
    let request = DeployRequest {
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone(),
        git_ref: args.git_ref.clone().unwrap_or_default(),
        release_id: args.release.clone().unwrap_or_default(),
        message: args.message.clone().unwrap_or_default(),
        policy,
        queue: args.queue,
        run_at: args.at,
        force: args.force,
        secrets_only: args.secrets_only,
    };
    if args.plan {
        let plan = rpc(api
            .deployments()
            .plan_deployment(PlanDeploymentRequest {
                deploy: Some(request),
                release_only: false,
            })
            .await)?;
        match output {
            Output::Json => output::json(&plan)?,
            Output::Text => output::emit(&output::plan(&plan))?,
        }
        return Ok(Exit::Success);
    }
    if !args.secrets_only {
        confirm_bad_release(&api, &request, args.yes).await?;
    }
    let stream = rpc(api.deployments().deploy(request).await)?;
    let events = stream.map(|item| item.map(|response| response.event));
    if args.detach {
        return detach(&api, output, events).await;
    }
    follow(&api, output, events, None, 0).await
}

/// Asks before deploying a release marked bad, naming the mark and who set
/// it. The release is resolved without asking any agent or recording
/// anything; when that fails, the deploy itself reports why.
async fn confirm_bad_release(api: &Api, request: &DeployRequest, yes: bool) -> anyhow::Result<()> {
    let check = PlanDeploymentRequest {
        deploy: Some(request.clone()),
        release_only: true,
    };
    let Ok(plan) = api.deployments().plan_deployment(check).await else {
        return Ok(());
    };
    let release = plan.into_inner().release.unwrap_or_default();
    if release.mark() != ReleaseMark::Bad {
        return Ok(());
    }
    let warning = format!(
        "release {} of {} is marked bad ({})",
        release.id,
        release.app,
        output::or_dash(&release.mark_reason)
    );
    let action = format!(
        "deploy release {} marked bad to {}",
        release.id, request.environment
    );
    confirm(&action, &[warning], yes).await?;
    Ok(())
}
