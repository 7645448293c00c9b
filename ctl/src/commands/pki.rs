//! `slipctl pki`: the CA and every certificate, made locally with rcgen.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use slipway_proto::identity::Role;

use std::time::Duration;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use slipway_proto::revocation::RevocationList;

use super::revoke::{self, RevokeArgs};
use crate::{
    connection::Connection,
    output,
    output::Output,
    pki::{self, InitOptions, IssueOptions, Issued},
};

/// Certificates: the CA, the control plane's, agents' and operators'.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a CA, the control plane's server and client certificates and an
    /// admin operator certificate (operator-admin.crt).
    Init(InitArgs),
    /// Issue a certificate signed by the CA in --dir.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// List the certificates in --dir: identity, role, expiry, fingerprint,
    /// and which the control plane has revoked (when it answers).
    List(ListArgs),
    /// Revoke a certificate, or every certificate of an identity (admin; on
    /// the control plane, which enforces it at once and tells every agent).
    Revoke(RevokeArgs),
    /// List the control plane's revocations.
    Revoked,
    /// Rotate the CA: a new CA key and certificate, ca.crt the new CA
    /// followed by the old one (ca-previous.crt, ca-previous.key); `pki
    /// issue` signs with the new CA from then on. With --finish, once every
    /// certificate is reissued, ca.crt holds the new CA alone.
    RotateCa(RotateCaArgs),
}

/// Flags of `pki rotate-ca`.
#[derive(Debug, Args)]
pub struct RotateCaArgs {
    /// Directory holding ca.crt and ca.key
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Drop the old CA from ca.crt and delete its files (refused while a
    /// certificate in DIR is still signed by the old CA only)
    #[arg(long)]
    pub finish: bool,
}

/// Flags of `pki init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write the files to (created with mode 0700)
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Instance name of the control plane (in its identity and a DNS SAN)
    #[arg(long, default_value = "main")]
    pub name: String,
    /// Extra DNS name or IP address the control plane is reached at (repeatable)
    #[arg(long, value_name = "NAME_OR_IP")]
    pub san: Vec<String>,
    /// Validity of the certificates in days (the CA gets 3650)
    #[arg(long, default_value_t = pki::SERVICE_VALIDITY_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Replace existing files, the CA included: certificates it signed stop working
    #[arg(long)]
    pub force: bool,
}

/// What to issue.
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// A server certificate for the agent of HOST (agent-HOST.crt/.key).
    Agent(AgentArgs),
    /// A client certificate for an operator (operator-NAME.crt/.key).
    Operator(OperatorArgs),
    /// New server and client certificates for the control plane
    /// (control-plane.crt, control-plane-client.crt), from the same CA; the
    /// control plane picks them up on SIGHUP.
    ControlPlane(ControlPlaneArgs),
}

/// Flags of `pki issue control-plane`.
#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    /// Directory holding ca.crt and ca.key; the new files go there too
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Instance name of the control plane (in its identity and a DNS SAN)
    #[arg(long, default_value = "main")]
    pub name: String,
    /// Extra DNS name or IP address the control plane is reached at (repeatable)
    #[arg(long, value_name = "NAME_OR_IP")]
    pub san: Vec<String>,
    /// Validity in days
    #[arg(long, default_value_t = pki::SERVICE_VALIDITY_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Replace the existing certificates and keys
    #[arg(long)]
    pub force: bool,
}

/// Flags of `pki issue agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Host name as registered with `slipctl host add` (a lowercase DNS name)
    pub host: String,
    /// Directory holding ca.crt and ca.key; the new files go there too
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Extra DNS name or IP address of the host (repeatable)
    #[arg(long, value_name = "NAME_OR_IP")]
    pub san: Vec<String>,
    /// Validity in days
    #[arg(long, default_value_t = pki::SERVICE_VALIDITY_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Replace an existing certificate and key for this host
    #[arg(long)]
    pub force: bool,
}

/// An operator role on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Reads everything
    Viewer,
    /// Also deploys and rolls back
    Deployer,
    /// Also configures apps, environments and hosts
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Deployer => Role::Deployer,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Flags of `pki issue operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Operator name (lowercase letters, digits, '-'), recorded as the author of deployments
    pub name: String,
    /// What the operator may do
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Directory holding ca.crt and ca.key; the new files go there too
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Validity in days
    #[arg(long, default_value_t = pki::DEFAULT_VALIDITY_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Replace an existing certificate and key of this name
    #[arg(long)]
    pub force: bool,
}

/// Flags of `pki list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Directory to list
    #[arg(long, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs a `pki` subcommand; only `revoke` and `revoked` need the control
/// plane (`list` asks it which certificates are revoked when it answers).
impl PkiCommand {
    /// Whether the command talks to the control plane (and so needs the
    /// context in use); the others work on files only.
    pub fn connects(&self) -> bool {
        matches!(self, Self::Revoke(_) | Self::Revoked | Self::List(_))
    }
}

pub async fn run(command: &PkiCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init(args) => {
            let opts = InitOptions {
                control_plane_name: args.name.clone(),
                sans: args.san.clone(),
                validity_days: args.days,
                force: args.force,
            };
            let written = pki::init(&args.dir, &opts)?;
            match output {
                Output::Json => output::json(&serde_json::json!({ "files": written }))?,
                Output::Text => {
                    let mut text = format!("wrote to {}:\n", args.dir.display());
                    for path in &written {
                        let name = path.file_name().unwrap_or_default().to_string_lossy();
                        text.push_str(&format!("  {name}\n"));
                    }
                    text.push_str(&format!(
                        "next: issue a certificate per host with `slipctl pki issue agent HOST --dir {dir}`,\n\
                         and point slipctl at the control plane with `export SLIPWAY_PKI_DIR={dir}`\n",
                        dir = args.dir.display()
                    ));
                    output::emit(&text)?;
                }
            }
        }
        PkiCommand::Issue(IssueCommand::Agent(args)) => {
            let opts = IssueOptions {
                validity_days: args.days,
                force: args.force,
            };
            let issued = pki::issue_agent_with(&args.dir, &args.host, &args.san, &opts)?;
            report_issued(&issued, output)?;
        }
        PkiCommand::Issue(IssueCommand::Operator(args)) => {
            let opts = IssueOptions {
                validity_days: args.days,
                force: args.force,
            };
            let issued = pki::issue_operator_with(&args.dir, &args.name, args.role.into(), &opts)?;
            report_issued(&issued, output)?;
        }
        PkiCommand::Issue(IssueCommand::ControlPlane(args)) => {
            let opts = IssueOptions {
                validity_days: args.days,
                force: args.force,
            };
            let issued = pki::issue_control_plane_with(&args.dir, &args.name, &args.san, &opts)?;
            for issued in &issued {
                report_issued(issued, output)?;
            }
        }
        PkiCommand::Revoke(args) => revoke::revoke(args, conn, output).await?,
        PkiCommand::Revoked => revoke::list(conn, output).await?,
        PkiCommand::RotateCa(args) => rotate_ca(args, output)?,
        PkiCommand::List(args) => {
            let mut certs = pki::list(&args.dir)?;
            mark_revoked(&args.dir, &mut certs, conn).await;
            match output {
                Output::Json => output::json(&certs)?,
                Output::Text => output::emit(&output::certs(&certs))?,
            }
        }
    }
    Ok(())
}

/// Marks the certificates the control plane has revoked; when it does not
/// answer within a few seconds, says so on stderr and marks nothing.
async fn mark_revoked(dir: &std::path::Path, certs: &mut [pki::CertInfo], conn: &Connection) {
    let fetched = tokio::time::timeout(Duration::from_secs(3), revoke::fetch(conn)).await;
    let revocations = match fetched {
        Ok(Ok(revocations)) => revocations,
        Ok(Err(err)) => {
            eprintln!("note: revocations not checked: {err:#}");
            return;
        }
        Err(_) => {
            eprintln!("note: revocations not checked: the control plane did not answer");
            return;
        }
    };
    let mut list = RevocationList::default();
    for revocation in revocations {
        if revocation.fingerprint.is_empty() {
            let up_to = revocation.revoked_at.map_or(0, |t| t.seconds);
            list.identities
                .insert(revocation.identity, (up_to, revocation.reason));
        } else {
            list.fingerprints
                .insert(revocation.fingerprint, revocation.reason);
        }
    }
    for cert in certs {
        let Ok(pem) = std::fs::read(dir.join(&cert.file)) else {
            continue;
        };
        if let Some(Ok(der)) = CertificateDer::pem_slice_iter(&pem).next() {
            cert.revoked = list.check(&der);
        }
    }
}

fn rotate_ca(args: &RotateCaArgs, output: Output) -> anyhow::Result<()> {
    let files = if args.finish {
        pki::finish_rotation(&args.dir)?
    } else {
        pki::rotate_ca(&args.dir)?
    };
    match output {
        Output::Json => output::json(&serde_json::json!({ "files": files }))?,
        Output::Text => {
            let dir = args.dir.display();
            let text = if args.finish {
                format!(
                    "{dir}/ca.crt now holds the new CA alone; ca-previous.crt and ca-previous.key are gone.\n\
                     next: copy ca.crt to every host and SIGHUP both daemons: the old CA is no longer trusted\n"
                )
            } else {
                format!(
                    "new CA in {dir}/ca.key; {dir}/ca.crt holds the new CA and the old one;\n\
                     the old CA is kept as ca-previous.crt and ca-previous.key (0600).\n\
                     next: 1. copy ca.crt to every host and SIGHUP both daemons;\n\
                     \x20     2. reissue every certificate with `slipctl pki issue ... --force --dir {dir}`,\n\
                     \x20        install them and SIGHUP again;\n\
                     \x20     3. `slipctl pki rotate-ca --finish --dir {dir}`, copy ca.crt, SIGHUP again\n"
                )
            };
            output::emit(&text)?;
        }
    }
    Ok(())
}

fn report_issued(issued: &Issued, output: Output) -> anyhow::Result<()> {
    let info = pki::describe(&issued.cert)?;
    match output {
        Output::Json => output::json(&serde_json::json!({
            "cert": issued.cert,
            "key": issued.key,
            "certificate": info,
        })),
        Output::Text => {
            let text = output::fields(&[
                ("certificate", issued.cert.display().to_string()),
                ("key", issued.key.display().to_string()),
                ("identity", info.identity.unwrap_or_default()),
                (
                    "names",
                    [info.dns_names, info.ip_addresses].concat().join(", "),
                ),
                ("expires", info.not_after),
                ("sha256", info.sha256),
            ]);
            Ok(output::emit(&text)?)
        }
    }
}
