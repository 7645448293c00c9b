//! `slipctl source`: where an app's git source stands (remote masked, the
//! default branch's tip, the last fetch, per environment the commits not
//! yet deployed, tags) and a fetch on demand.

use clap::Subcommand;
use slipway_proto::control::v1::{
    FetchSourceRequest, GetSourceStatusRequest, source_service_client::SourceServiceClient,
};

use super::source_key::{self, KeyCommand};
use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// App git sources.
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// The source of an app: remote (credentials masked), default branch
    /// and tip, last fetch, and per environment the deployed commit and the
    /// commits it is behind.
    Status {
        /// App name
        app: String,
        /// Most undeployed commits listed per environment (default 20, at
        /// most 200)
        #[arg(long, value_name = "N")]
        commits: Option<u32>,
    },
    /// Fetch an app's remote into the control plane's mirror now
    /// (deployer); exits 1 when the fetch failed.
    Fetch {
        /// App name
        app: String,
    },
    /// The app's SSH deploy key: create, show, test, rotate, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// Runs a `source` subcommand; Ok(false) when a fetch failed.
pub async fn run(
    command: &SourceCommand,
    conn: &Connection,
    output: Output,
) -> anyhow::Result<bool> {
    let mut client = SourceServiceClient::new(conn.channel().await?);
    match command {
        SourceCommand::Status { app, commits } => {
            let request = GetSourceStatusRequest {
                app: app.clone(),
                max_commits: commits.unwrap_or_default(),
            };
            let response = rpc(client.get_source_status(request).await)?;
            match output {
                Output::Json => output::json(&response)?,
                Output::Text => output::emit(&output::source::status(
                    &response.status.unwrap_or_default(),
                ))?,
            }
            Ok(true)
        }
        SourceCommand::Fetch { app } => {
            let request = FetchSourceRequest { app: app.clone() };
            let response = rpc(client.fetch_source(request).await)?;
            let fetch = response.fetch.clone().unwrap_or_default();
            match output {
                Output::Json => output::json(&response)?,
                Output::Text => output::emit(&output::source::fetch(&fetch))?,
            }
            Ok(fetch.ok)
        }
        SourceCommand::Key(command) => source_key::run(command, conn, output).await,
    }
}
