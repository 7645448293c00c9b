//! `slipctl dashboard`: a one-time login link into the browser dashboard
//! for your certificate's identity and role; the open sessions, listed and
//! revoked (admin).

use clap::Subcommand;
use slipway_proto::{
    control::v1::{CreateLoginLinkRequest, ListSessionsRequest, RevokeSessionRequest},
    tls,
};

use crate::{
    connection::{Connection, rpc},
    output::{self, Output},
};

/// The dashboard's port on the control plane's web listener by default.
pub const DEFAULT_PORT: u16 = 7480;

/// `slipctl dashboard ...`.
#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Print a one-time link that opens the dashboard as you (single use,
    /// valid 60 seconds; the session lasts 12 hours).
    Login {
        /// The dashboard's base URL [default: https://<endpoint host>:7480]
        #[arg(long, env = "SLIPWAY_DASHBOARD_URL", value_name = "URL")]
        url: Option<String>,
    },
    /// List the open dashboard sessions (admin).
    Sessions,
    /// End a dashboard session at once (admin).
    Revoke {
        /// Session id, from `slipctl dashboard sessions`
        id: String,
    },
}

fn base_url(conn: &Connection, url: Option<&str>) -> String {
    match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = tls::host_of(&conn.endpoint);
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            format!("https://{host}:{DEFAULT_PORT}")
        }
    }
}

/// Runs a `dashboard` subcommand.
pub async fn run(command: &DashboardCommand, conn: &Connection, out: Output) -> anyhow::Result<()> {
    let api = conn.api().await?;
    match command {
        DashboardCommand::Login { url } => {
            let answer = rpc(api
                .dashboard()
                .create_login_link(CreateLoginLinkRequest {})
                .await)?;
            let link = format!("{}{}", base_url(conn, url.as_deref()), answer.path);
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "url": link,
                    "expires_at": output::time(answer.expires_at.as_ref()),
                })),
                Output::Text => Ok(output::emit(&link)?),
            }
        }
        DashboardCommand::Sessions => {
            let answer = rpc(api.dashboard().list_sessions(ListSessionsRequest {}).await)?;
            match out {
                Output::Json => output::json(&answer),
                Output::Text => {
                    let mut table = output::Table::new(&["ID", "PRINCIPAL", "CREATED", "EXPIRES"]);
                    for s in &answer.sessions {
                        table.row(vec![
                            s.id.clone(),
                            s.principal.clone(),
                            output::time(s.created_at.as_ref()),
                            output::time(s.expires_at.as_ref()),
                        ]);
                    }
                    Ok(output::emit(&table.render_indented(0))?)
                }
            }
        }
        DashboardCommand::Revoke { id } => {
            let request = RevokeSessionRequest { id: id.clone() };
            let answer = rpc(api.dashboard().revoke_session(request).await)?;
            match out {
                Output::Json => output::json(&answer),
                Output::Text => Ok(output::emit(&format!("revoked session {id}"))?),
            }
        }
    }
}
