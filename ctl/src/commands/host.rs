//! `slipctl host`: add, remove and list target hosts, and reset an app's
//! fencing on one.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    AddHostRequest, AddHostResponse, Host, ListHostsRequest, RemoveHostRequest,
    RenewAgentCertificateRequest, ResetFencingRequest,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Target hosts.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register a host running slipway-agent in an environment (admin).
    Add(AddArgs),
    /// Unregister a host (admin); its files stay where they are.
    Remove {
        /// Host name
        name: String,
    },
    /// Clear an app's fencing token and epoch on a host (admin; audited),
    /// when the host refuses every deploy with "stale fencing token" and no
    /// control plane holds that token
    FenceReset {
        /// Host name
        host: String,
        /// The app
        #[arg(long, value_name = "APP")]
        app: String,
    },
    /// Have the host's agent make a new key and get a new certificate from
    /// the control plane's CA (admin; audited). The control plane also does
    /// this by itself when a third of the validity is left.
    RenewCert {
        /// Host name
        host: String,
    },
    /// List the hosts.
    List {
        /// Only the hosts of this environment
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
    },
}

/// Flags of `host add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Host name: the DNS name its agent's certificate carries
    /// (see `slipctl pki issue agent`)
    pub name: String,
    /// Address of its agent
    #[arg(long, value_name = "HOST:PORT")]
    pub address: String,
    /// Environment it belongs to
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// A label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Also issue a one-time join token, with which the host's agent gets its
    /// certificate (`slipway-agent enroll`); the key never leaves the host
    #[arg(long)]
    pub enroll: bool,
}

/// What to run on the new host, once.
fn enroll_hint(response: &AddHostResponse, conn: &Connection) -> String {
    let name = response.host.as_ref().map_or("HOST", |h| h.name.as_str());
    let cp = slipway_proto::tls::host_of(&conn.endpoint);
    format!(
        "join token (shown once; single use, valid until {}):\n  {}\n\
         on {name}, as root:\n  slipway-agent enroll --control-plane {cp}:7445 --host {name} \\\n    \
         --ca-fingerprint {} --token {} --dir /etc/slipway\n",
        output::time(response.join_token_expires_at.as_ref()),
        response.join_token,
        response.ca_fingerprint,
        response.join_token,
    )
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Runs a `host` subcommand.
pub async fn run(command: &HostCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut hosts = conn.api().await?.hosts();
    match command {
        HostCommand::Add(args) => {
            let host = Host {
                name: args.name.clone(),
                address: args.address.clone(),
                environment: args.env.clone(),
                labels: args.labels.iter().cloned().collect::<HashMap<_, _>>(),
                created_at: None,
            };
            let request = AddHostRequest {
                host: Some(host),
                enroll: args.enroll,
            };
            let response = rpc(hosts.add_host(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let mut text = format!("added host {}\n", args.name);
                    text.push_str(&output::host(
                        response.host.as_ref().unwrap_or(&Host::default()),
                    ));
                    if !response.join_token.is_empty() {
                        text.push_str(&enroll_hint(&response, conn));
                    }
                    Ok(output::emit(&text)?)
                }
            }
        }
        HostCommand::Remove { name } => {
            let response = rpc(hosts
                .remove_host(RemoveHostRequest { name: name.clone() })
                .await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!(
                    "removed host {name}; its releases stay on disk and its agent keeps running\n"
                ))?),
            }
        }
        HostCommand::FenceReset { host, app } => {
            let request = ResetFencingRequest {
                host: host.clone(),
                app: app.clone(),
            };
            let response = rpc(hosts.reset_fencing(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let epoch = match response.previous_epoch.as_str() {
                        "" => "none",
                        epoch => epoch,
                    };
                    Ok(output::emit(&format!(
                        "reset the fencing of app {app} on host {host} (it had token {}, epoch {epoch}); \
                         its next deployment is accepted\n",
                        response.previous_token
                    ))?)
                }
            }
        }
        HostCommand::RenewCert { host } => {
            let request = RenewAgentCertificateRequest { host: host.clone() };
            let response = rpc(hosts.renew_agent_certificate(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!(
                    "host {host} serves its new certificate {} (expires {})\n",
                    response.serial,
                    output::time(response.expires_at.as_ref())
                ))?),
            }
        }
        HostCommand::List { env } => {
            let request = ListHostsRequest {
                environment: env.clone().unwrap_or_default(),
            };
            let response = rpc(hosts.list_hosts(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::hosts(&response.hosts))?),
            }
        }
    }
}
