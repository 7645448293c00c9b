//! The https credentials flags of `app create` and `app update`. Secrets are
//! read from a file (or standard input with `-`), never from the command
//! line, where other users and shell histories would see them.

use std::io::Read;

use anyhow::Context;
use clap::Args;
use slipway_proto::control::v1::SourceCredentials;

/// https credentials, held by the control plane and never shown again.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// User name for an https repository (with --password-file; with
    /// --token-file it defaults to "x-token")
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// File holding the password for --username ("-": standard input)
    #[arg(long, value_name = "FILE", conflicts_with = "token_file")]
    pub password_file: Option<String>,
    /// File holding an access token for an https repository ("-": standard
    /// input)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<String>,
    /// Forget the credentials held for the app
    #[arg(long, conflicts_with_all = ["username", "password_file", "token_file"])]
    pub clear_credentials: bool,
}

impl CredentialArgs {
    /// The credentials to send, or None to keep what is held.
    pub fn read(&self) -> anyhow::Result<Option<SourceCredentials>> {
        if self.clear_credentials {
            return Ok(Some(SourceCredentials {
                clear: true,
                ..Default::default()
            }));
        }
        if self.username.is_none() && self.password_file.is_none() && self.token_file.is_none() {
            return Ok(None);
        }
        Ok(Some(SourceCredentials {
            username: self.username.clone().unwrap_or_default(),
            password: self
                .password_file
                .as_deref()
                .map(secret)
                .transpose()?
                .unwrap_or_default(),
            token: self
                .token_file
                .as_deref()
                .map(secret)
                .transpose()?
                .unwrap_or_default(),
            clear: false,
        }))
    }
}

/// The first line of `file` ("-": standard input), without its newline.
fn secret(file: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .take(64 << 10)
            .read_to_string(&mut text)
            .context("reading the secret from standard input")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    }
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
