//! `slipctl pki revoke` and `slipctl pki revoked`: the control plane's
//! revocation list.

use std::path::Path;

use clap::Args;
use slipway_proto::{
    control::v1::{
        ListRevocationsRequest, ListRevocationsResponse, Revocation, RevokeCertificateRequest,
        certificate_service_client::CertificateServiceClient,
    },
    identity::Identity,
    tls,
};

use crate::{
    connection::{Connection, rpc},
    output::Output,
    output::{self, Table},
};

/// Flags of `pki revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// What to revoke: a fingerprint (SHA256:<hex>, as `pki list` shows it), a
    /// certificate file, or an identity (admin/alice, agent/web-2,
    /// control-plane/main: every certificate of it issued up to now)
    pub target: String,
    /// Why, recorded in the audit trail and shown to the refused peer
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// What `target` names: a fingerprint or an identity principal.
fn request(args: &RevokeArgs) -> anyhow::Result<RevokeCertificateRequest> {
    let target = args.target.trim();
    let mut request = RevokeCertificateRequest {
        reason: args.reason.clone(),
        ..Default::default()
    };
    let hex = target
        .strip_prefix("SHA256:")
        .or_else(|| target.strip_prefix("sha256:"))
        .unwrap_or(target);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        request.fingerprint = format!("SHA256:{}", hex.to_ascii_lowercase());
    } else if Path::new(target).is_file() {
        let pem = std::fs::read(target)?;
        let der = rustls_pemfile_first(&pem)
            .ok_or_else(|| anyhow::anyhow!("{target} holds no PEM certificate"))?;
        request.fingerprint = tls::fingerprint(&der);
    } else if Identity::from_principal(target).is_ok() {
        request.identity = target.to_owned();
    } else {
        anyhow::bail!(
            "{target:?} is neither a fingerprint (SHA256:<64 hex>), a certificate file nor an \
             identity (admin/alice, agent/web-2, control-plane/main)"
        );
    }
    Ok(request)
}

fn rustls_pemfile_first(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .next()?
        .ok()
        .map(|der| der.to_vec())
}

async fn client(
    conn: &Connection,
) -> anyhow::Result<CertificateServiceClient<tonic::transport::Channel>> {
    Ok(CertificateServiceClient::new(conn.channel().await?))
}

/// Runs `pki revoke`.
pub async fn revoke(args: &RevokeArgs, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let request = request(args)?;
    let answer = rpc(client(conn).await?.revoke_certificate(request).await)?;
    match output {
        Output::Json => output::json(&answer),
        Output::Text => {
            let revocation = answer.revocation.unwrap_or_default();
            let mut text = format!("revoked {}\n", what(&revocation));
            text.push_str(&format!(
                "{} agents hold the new list",
                answer.agents_updated
            ));
            if answer.agents_unreachable.is_empty() {
                text.push('\n');
            } else {
                text.push_str(&format!(
                    "; unreachable now (they get it on the next connection): {}\n",
                    answer.agents_unreachable.join(", ")
                ));
            }
            Ok(output::emit(&text)?)
        }
    }
}

/// Runs `pki revoked`.
pub async fn list(conn: &Connection, output: Output) -> anyhow::Result<()> {
    let revocations = fetch(conn).await?;
    match output {
        Output::Json => output::json(&ListRevocationsResponse { revocations }),
        Output::Text => Ok(output::emit(&table(&revocations))?),
    }
}

/// The control plane's revocation list.
pub async fn fetch(conn: &Connection) -> anyhow::Result<Vec<Revocation>> {
    Ok(rpc(client(conn)
        .await?
        .list_revocations(ListRevocationsRequest {})
        .await)?
    .revocations)
}

fn what(revocation: &Revocation) -> String {
    if revocation.fingerprint.is_empty() {
        format!(
            "every certificate of {} issued up to now",
            revocation.identity
        )
    } else {
        format!("certificate {}", revocation.fingerprint)
    }
}

fn table(revocations: &[Revocation]) -> String {
    if revocations.is_empty() {
        return "no certificate is revoked\n".to_owned();
    }
    let mut table = Table::new(&["REVOKED", "REASON", "BY", "WHEN"]);
    for revocation in revocations {
        let target = if revocation.fingerprint.is_empty() {
            format!("{} (issued up to WHEN)", revocation.identity)
        } else {
            revocation.fingerprint.clone()
        };
        table.row(vec![
            target,
            revocation.reason.clone(),
            revocation.revoked_by.clone(),
            output::time(revocation.revoked_at.as_ref()),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(target: &str) -> RevokeArgs {
        RevokeArgs {
            target: target.into(),
            reason: "lost".into(),
        }
    }

    #[test]
    fn targets_are_recognised() {
        let hex = "AB".repeat(32);
        let by_hex = request(&args(&hex)).unwrap();
        assert_eq!(by_hex.fingerprint, format!("SHA256:{}", hex.to_lowercase()));
        let by_prefix = request(&args(&format!("SHA256:{hex}"))).unwrap();
        assert_eq!(by_prefix.fingerprint, by_hex.fingerprint);
        let by_identity = request(&args("admin/alice")).unwrap();
        assert_eq!(by_identity.identity, "admin/alice");
        assert!(by_identity.fingerprint.is_empty());
        assert!(request(&args("alice")).is_err());
    }
}
