//! `slipctl webhook`: the webhook a git server or CI calls on a push, and
//! the branch each environment auto-deploys.

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    DisableWebhookRequest, GetTriggersRequest, RotateWebhookSecretRequest, SetAutoDeployRequest,
    Triggers, WebhookDelivery, trigger_service_client::TriggerServiceClient,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// An app's webhook and auto-deploy settings.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Make the app's webhook secret (admin), or a new one in its place:
    /// the old one stops working. Prints it, once.
    Enable(AppArg),
    /// Forget the app's webhook secret (admin): deliveries are refused.
    Disable(AppArg),
    /// Deploy pushes to a branch to an environment (admin); `--off` stops it.
    AutoDeploy(AutoDeployArgs),
    /// The app's webhook, the branch each environment auto-deploys, and the
    /// latest deliveries.
    Show(AppArg),
}

/// An app's name.
#[derive(Debug, Args)]
pub struct AppArg {
    /// App name
    pub app: String,
}

/// Flags of `webhook auto-deploy`.
#[derive(Debug, Args)]
pub struct AutoDeployArgs {
    /// App name
    pub app: String,
    /// Environment that deploys the branch
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Branch whose pushes it deploys (e.g. main)
    #[arg(long, required_unless_present = "off", conflicts_with = "off")]
    pub branch: Option<String>,
    /// Stop auto-deploying to the environment
    #[arg(long)]
    pub off: bool,
}

/// Runs a `webhook` subcommand.
pub async fn run(
    command: &WebhookCommand,
    conn: &Connection,
    output: Output,
) -> anyhow::Result<()> {
    let mut client = TriggerServiceClient::new(conn.channel().await?);
    match command {
        WebhookCommand::Enable(args) => {
            let request = RotateWebhookSecretRequest {
                app: args.app.clone(),
            };
            let response = rpc(client.rotate_webhook_secret(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let triggers = response.triggers.unwrap_or_default();
                    Ok(output::emit(&format!(
                        "webhook of {} enabled: POST https://<control plane>:<web port>{}\n\
                         secret: {}\n\
                         keep it now: it is not shown again; set it as the webhook's secret \
                         (GitHub, Gitea) or token (GitLab)\n",
                        triggers.app, triggers.webhook_path, response.secret
                    ))?)
                }
            }
        }
        WebhookCommand::Disable(args) => {
            let request = DisableWebhookRequest {
                app: args.app.clone(),
            };
            let response = rpc(client.disable_webhook(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!(
                    "webhook of {} disabled\n",
                    args.app
                ))?),
            }
        }
        WebhookCommand::AutoDeploy(args) => {
            let request = SetAutoDeployRequest {
                app: args.app.clone(),
                environment: args.env.clone(),
                branch: args.branch.clone().unwrap_or_default(),
            };
            let response = rpc(client.set_auto_deploy(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&triggers(
                    &response.triggers.unwrap_or_default(),
                ))?),
            }
        }
        WebhookCommand::Show(args) => {
            let request = GetTriggersRequest {
                app: args.app.clone(),
            };
            let response = rpc(client.get_triggers(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let mut text = triggers(&response.triggers.unwrap_or_default());
                    text.push('\n');
                    text.push_str(&deliveries(&response.deliveries));
                    Ok(output::emit(&text)?)
                }
            }
        }
    }
}

fn triggers(t: &Triggers) -> String {
    let webhook = if t.webhook_enabled {
        format!(
            "enabled at {} (secret made {})",
            t.webhook_path,
            output::time(t.secret_created_at.as_ref())
        )
    } else {
        "disabled".to_owned()
    };
    let auto: Vec<String> = t
        .auto_deploy
        .iter()
        .map(|a| format!("{} <- {}", a.environment, a.branch))
        .collect();
    output::fields(&[
        ("app", t.app.clone()),
        ("webhook", webhook),
        ("auto-deploy", output::or_dash(&auto.join(", "))),
    ])
}

fn deliveries(log: &[WebhookDelivery]) -> String {
    if log.is_empty() {
        return "no delivery yet\n".to_owned();
    }
    let mut table = output::Table::new(&[
        "TIME", "DELIVERY", "SOURCE", "EVENT", "BRANCH", "COMMIT", "RESULT",
    ]);
    for d in log {
        table.row(vec![
            output::time(d.time.as_ref()),
            d.delivery_id.clone(),
            d.source.clone(),
            d.event.clone(),
            output::or_dash(&d.branch),
            output::or_dash(d.commit.get(..7).unwrap_or_default()),
            d.message.clone(),
        ]);
    }
    table.render()
}
