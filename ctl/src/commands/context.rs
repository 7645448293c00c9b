//! `slipctl context`: named control planes with the certificates to reach
//! them, kept in slipctl's config file (see [`crate::contexts`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{
    connection::ConnectionFlags,
    contexts::{self, Config, Context, ContextError},
    output::{self, Output, Table},
};

/// Contexts.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Save a context from the connection flags: `slipctl context add prod
    /// --endpoint cp:7443 --pki-dir DIR` (or --ca, --cert, --key).
    Add(AddArgs),
    /// Make a context the current one.
    Use(NameArgs),
    /// List the contexts; `*` marks the current one.
    List,
    /// Show a context (default: the one in use).
    Show(ShowArgs),
    /// Remove a context.
    Remove(NameArgs),
}

/// Flags of `context add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name of the context
    pub name: String,
    /// Make it the current context too
    #[arg(long = "use")]
    pub make_current: bool,
    /// Replace a context of the same name
    #[arg(long)]
    pub replace: bool,
}

/// A context name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Name of the context
    pub name: String,
}

/// Flags of `context show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Name of the context (default: the one in use)
    pub name: Option<String>,
}

/// Runs a `context` subcommand against the config file.
pub fn run(
    command: &ContextCommand,
    flags: &ConnectionFlags,
    output: Output,
) -> anyhow::Result<()> {
    let path = contexts::config_path()?;
    let mut config = Config::load(&path)?;
    match command {
        ContextCommand::Add(args) => {
            let context = from_flags(flags)?;
            config.add(&args.name, context, args.replace)?;
            if args.make_current || config.current.is_none() {
                config.current = Some(args.name.clone());
            }
            config.save(&path)?;
            let current = config.current.as_deref() == Some(args.name.as_str());
            done(
                output,
                &format!(
                    "added context {}{} to {}",
                    args.name,
                    if current { " (current)" } else { "" },
                    path.display()
                ),
            )
        }
        ContextCommand::Use(args) => {
            config.get(&args.name, &path)?;
            config.current = Some(args.name.clone());
            config.save(&path)?;
            done(output, &format!("now using context {}", args.name))
        }
        ContextCommand::Remove(args) => {
            config.get(&args.name, &path)?;
            config.contexts.remove(&args.name);
            if config.current.as_deref() == Some(args.name.as_str()) {
                config.current = None;
            }
            config.save(&path)?;
            done(output, &format!("removed context {}", args.name))
        }
        ContextCommand::List => list(&config, output),
        ContextCommand::Show(args) => {
            let name = args
                .name
                .clone()
                .or_else(|| flags.context.clone())
                .or_else(|| config.current.clone())
                .ok_or_else(|| {
                    ContextError::Refused(
                        "no context in use: name one, or `slipctl context use NAME`".into(),
                    )
                })?;
            let context = config.get(&name, &path)?;
            show(
                &name,
                context,
                config.current.as_deref() == Some(&name),
                &path,
                output,
            )
        }
    }
}

/// A context from the connection flags: an endpoint and certificates that
/// exist, saved as absolute paths.
fn from_flags(flags: &ConnectionFlags) -> anyhow::Result<Context> {
    let endpoint = flags.endpoint.clone().ok_or_else(|| {
        ContextError::Refused("a context needs --endpoint (or SLIPWAY_ENDPOINT)".into())
    })?;
    let paths = flags.with_context(None).tls_paths()?;
    let absolute = |path: &Path| -> anyhow::Result<PathBuf> {
        if !path.is_file() {
            return Err(ContextError::Refused(format!("{} is not a file", path.display())).into());
        }
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
    };
    Ok(Context {
        endpoint,
        ca: absolute(&paths.ca)?,
        cert: absolute(&paths.cert)?,
        key: absolute(&paths.key)?,
        server_name: flags.server_name.clone(),
    })
}

fn done(output: Output, message: &str) -> anyhow::Result<()> {
    match output {
        Output::Json => output::json(&json!({ "message": message })),
        Output::Text => Ok(output::emit(message)?),
    }
}

fn list(config: &Config, output: Output) -> anyhow::Result<()> {
    let current = config.current.as_deref();
    if output == Output::Json {
        return output::json(&json!({
            "current": current,
            "contexts": config.contexts,
        }));
    }
    if config.contexts.is_empty() {
        return Ok(output::emit(
            "no contexts; add one with `slipctl context add NAME --endpoint HOST:PORT --pki-dir DIR`",
        )?);
    }
    let mut table = Table::new(&["CURRENT", "NAME", "ENDPOINT", "CERTIFICATE"]);
    for (name, context) in &config.contexts {
        table.row(vec![
            if current == Some(name.as_str()) {
                "*"
            } else {
                ""
            }
            .to_owned(),
            name.clone(),
            context.endpoint.clone(),
            context.cert.display().to_string(),
        ]);
    }
    Ok(output::emit(&table.render())?)
}

fn show(
    name: &str,
    context: &Context,
    current: bool,
    path: &Path,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json => output::json(&json!({
            "name": name,
            "current": current,
            "context": context,
            "file": path,
        })),
        Output::Text => Ok(output::emit(&output::fields(&[
            ("name", name.to_owned()),
            ("current", if current { "yes" } else { "no" }.to_owned()),
            ("endpoint", context.endpoint.clone()),
            ("ca", context.ca.display().to_string()),
            ("cert", context.cert.display().to_string()),
            ("key", context.key.display().to_string()),
            (
                "server name",
                context.server_name.clone().unwrap_or_default(),
            ),
            ("file", path.display().to_string()),
        ]))?),
    }
}
