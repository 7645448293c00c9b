//! `slipctl notify`: webhook subscriptions that are sent deployment, host
//! and drift events, signed; their test deliveries and delivery logs.

use clap::{Args, Subcommand, ValueEnum};
use slipway_proto::control::v1::{
    CreateSubscriptionRequest, DeleteSubscriptionRequest, Delivery, ListDeliveriesRequest,
    ListDeliveriesResponse, ListSubscriptionsRequest, NotificationFormat, Subscription,
    TestSubscriptionRequest, notification_service_client::NotificationServiceClient,
};
use tonic::transport::Channel;

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Notification webhooks.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Subscribe a webhook (admin); prints its signing secret, once.
    Add(AddArgs),
    /// List the subscriptions (never their secrets).
    List,
    /// Remove a subscription (admin); its deliveries stop.
    Remove(NameArg),
    /// Send a signed test notification now and show the receiver's answer
    /// (admin).
    Test(NameArg),
    /// The latest delivery attempts of a subscription, newest first.
    Deliveries(NameArg),
}

/// The body a receiver gets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Generic JSON, schema `slipway.notification/v1`.
    Json,
    /// A Slack-compatible message (`{"text": ...}`).
    Slack,
}

/// Flags of `notify add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Subscription name
    pub name: String,
    /// Where notifications are POSTed (http:// or https://)
    #[arg(long)]
    pub url: String,
    /// Only events of this app
    #[arg(long)]
    pub app: Option<String>,
    /// Only events of this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only these events, comma-separated (deployment.started,
    /// deployment.succeeded, deployment.failed, deployment.cancelled,
    /// deployment.rolled_back, approval.requested, host.down, host.degraded,
    /// host.recovered, drift.found)
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Body format
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
}

/// A subscription's name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Subscription name
    pub name: String,
}

/// Runs a `notify` subcommand.
pub async fn run(command: &NotifyCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut client = NotificationServiceClient::new(conn.channel().await?);
    match command {
        NotifyCommand::Add(args) => add(&mut client, args, output).await,
        NotifyCommand::List => {
            let response = rpc(client.list_subscriptions(ListSubscriptionsRequest {}).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&subscriptions(&response.subscriptions))?),
            }
        }
        NotifyCommand::Remove(args) => {
            let request = DeleteSubscriptionRequest {
                name: args.name.clone(),
            };
            let response = rpc(client.delete_subscription(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!("removed {}\n", args.name))?),
            }
        }
        NotifyCommand::Test(args) => {
            let request = TestSubscriptionRequest {
                name: args.name.clone(),
            };
            let response = rpc(client.test_subscription(request).await)?;
            let delivery = response.delivery.clone().unwrap_or_default();
            match output {
                Output::Json => output::json(&response)?,
                Output::Text => output::emit(&deliveries(std::slice::from_ref(&delivery)))?,
            }
            anyhow::ensure!(delivery.delivered, "the receiver did not take it");
            Ok(())
        }
        NotifyCommand::Deliveries(args) => {
            let request = ListDeliveriesRequest {
                name: args.name.clone(),
            };
            let response: ListDeliveriesResponse = rpc(client.list_deliveries(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&deliveries(&response.deliveries))?),
            }
        }
    }
}

async fn add(
    client: &mut NotificationServiceClient<Channel>,
    args: &AddArgs,
    output: Output,
) -> anyhow::Result<()> {
    let format = match args.format {
        FormatArg::Json => NotificationFormat::Json,
        FormatArg::Slack => NotificationFormat::Slack,
    };
    let request = CreateSubscriptionRequest {
        name: args.name.clone(),
        url: args.url.clone(),
        app: args.app.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
        events: args.events.clone(),
        format: format as i32,
    };
    let response = rpc(client.create_subscription(request).await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => Ok(output::emit(&format!(
            "subscribed {} ({})\nsecret: {}\nkeep it now: it is not shown again; receivers check Slipway-Signature with it\n",
            args.name,
            response.subscription.unwrap_or_default().id,
            response.secret
        ))?),
    }
}

fn subscriptions(subs: &[Subscription]) -> String {
    let mut table =
        output::Table::new(&["NAME", "URL", "APP", "ENV", "EVENTS", "FORMAT", "CURSOR"]);
    for s in subs {
        let format = match s.format() {
            NotificationFormat::Slack => "slack",
            _ => "json",
        };
        table.row(vec![
            s.name.clone(),
            s.url.clone(),
            output::or_dash(&s.app),
            output::or_dash(&s.environment),
            output::or_dash(&s.events.join(",")),
            format.to_owned(),
            s.cursor.to_string(),
        ]);
    }
    table.render()
}

fn deliveries(log: &[Delivery]) -> String {
    let mut table = output::Table::new(&["TIME", "EVENT", "KEY", "ATTEMPT", "HTTP", "RESULT"]);
    for d in log {
        let result = if d.delivered {
            "delivered".to_owned()
        } else {
            d.error.clone()
        };
        table.row(vec![
            output::time(d.time.as_ref()),
            d.event.clone(),
            d.idempotency_key.clone(),
            d.attempt.to_string(),
            d.http_status.to_string(),
            result,
        ]);
    }
    table.render()
}
