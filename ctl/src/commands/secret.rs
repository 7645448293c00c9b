//! `slipctl secret`: an environment's secrets. A value is read from stdin
//! or a file, never from the command line (which other users of the host
//! can see), and is never printed.

use std::io::Read;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use slipway_proto::{
    control::v1::{
        ListSecretsRequest, SecretInfo, SetSecretRequest, UnsetSecretRequest,
        secret_service_client::SecretServiceClient,
    },
    secrets::MAX_VALUE,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// An environment's secrets.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret (deployer) to the value read from stdin, or from
    /// --from-file; it takes effect at the next deploy, rollback or
    /// `deploy --secrets-only`.
    Set(SetArgs),
    /// List an environment's secrets: names, versions, who set them and
    /// when; never values.
    List(Target),
    /// Remove a secret (deployer); the next deploy ships the others.
    Unset(NameArgs),
}

/// An app and environment.
#[derive(Debug, Args)]
pub struct Target {
    /// App name
    pub app: String,
    /// Environment
    #[arg(long, value_name = "ENV")]
    pub env: String,
}

/// Flags of `secret unset`.
#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub target: Target,
    /// Secret name (an environment variable name, not SLIPWAY_*)
    pub name: String,
}

/// Flags of `secret set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Secret name (an environment variable name, not SLIPWAY_*)
    pub name: String,
    /// Read the value from this file instead of stdin (taken as it is; a
    /// value from stdin loses one trailing newline)
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<std::path::PathBuf>,
}

/// The value from the file, or stdin without its trailing newline, within
/// the bound.
fn value(from_file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let mut raw = Vec::new();
    let limit = MAX_VALUE as u64 + 2;
    match from_file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut raw))
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => std::io::stdin()
            .take(limit)
            .read_to_end(&mut raw)
            .context("cannot read the value from stdin")?,
    };
    if from_file.is_none() {
        if raw.ends_with(b"\n") {
            raw.pop();
        }
        if raw.ends_with(b"\r") {
            raw.pop();
        }
    }
    anyhow::ensure!(
        raw.len() <= MAX_VALUE,
        "the value is longer than {MAX_VALUE} bytes"
    );
    String::from_utf8(raw).context("the value is not UTF-8")
}

/// Runs a `secret` subcommand.
pub async fn run(command: &SecretCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut client = SecretServiceClient::new(conn.channel().await?);
    match command {
        SecretCommand::Set(args) => {
            let request = SetSecretRequest {
                app: args.target.app.clone(),
                environment: args.target.env.clone(),
                name: args.name.clone(),
                value: value(args.from_file.as_deref())?,
            };
            let response = rpc(client.set_secret(request).await)?;
            let secret = response.secret.clone().unwrap_or_default();
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!(
                    "secret {} of {} in {} is at version {}; `slipctl deploy {} --env {} --secrets-only` ships it now\n",
                    secret.name,
                    args.target.app,
                    args.target.env,
                    secret.version,
                    args.target.app,
                    args.target.env
                ))?),
            }
        }
        SecretCommand::List(target) => {
            let request = ListSecretsRequest {
                app: target.app.clone(),
                environment: target.env.clone(),
            };
            let response = rpc(client.list_secrets(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&table(&response.secrets))?),
            }
        }
        SecretCommand::Unset(args) => {
            let request = UnsetSecretRequest {
                app: args.target.app.clone(),
                environment: args.target.env.clone(),
                name: args.name.clone(),
            };
            let response = rpc(client.unset_secret(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&format!(
                    "secret {} (version {}) unset\n",
                    args.name, response.version
                ))?),
            }
        }
    }
}

fn table(secrets: &[SecretInfo]) -> String {
    if secrets.is_empty() {
        return "no secrets\n".to_owned();
    }
    let mut table = output::Table::new(&["NAME", "VERSION", "SET BY", "SET AT", "KEY"]);
    for s in secrets {
        table.row(vec![
            s.name.clone(),
            s.version.to_string(),
            s.set_by.clone(),
            output::time(s.set_at.as_ref()),
            s.key_id.clone(),
        ]);
    }
    table.render()
}
