//! Revocation: the list the control plane keeps, enforces on operators at
//! once (handshake and every call) and pushes to every agent, which refuses
//! a revoked control-plane certificate.

use std::sync::Arc;

use slipway_proto::{
    agent::v1::SetRevocationsRequest,
    control::v1::{Revocation, RevokeCertificateRequest, RevokeCertificateResponse},
    identity::Identity,
    revocation::RevocationList,
    validate::InvalidField,
};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    Context, catalog,
    error::Error,
    store::{Store, StoreError, revocations},
};

/// Longest reason recorded.
const MAX_REASON: usize = 1024;

/// Agents told at once after a revocation.
const PUSH_PARALLEL: usize = 32;

/// Loads the stored list into the one the verifiers enforce.
pub fn load(ctx: &Context) -> Result<(), StoreError> {
    ctx.revocations.set(revocations::load(&ctx.store)?);
    Ok(())
}

/// The request an agent gets: the whole list.
pub fn wire(list: &RevocationList) -> SetRevocationsRequest {
    SetRevocationsRequest {
        revision: list.revision,
        revoked: list.to_wire(),
    }
}

/// Checks a revocation request: exactly one of a well-formed fingerprint
/// and an identity, and a reason.
fn entry(request: RevokeCertificateRequest, by: &str) -> Result<Revocation, InvalidField> {
    let reason = request.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(InvalidField::new("reason", "is required"));
    }
    if reason.len() > MAX_REASON {
        return Err(InvalidField::new(
            "reason",
            format!("is longer than {MAX_REASON} bytes"),
        ));
    }
    let fingerprint = request.fingerprint.trim().to_ascii_lowercase();
    let identity = request.identity.trim();
    match (fingerprint.is_empty(), identity.is_empty()) {
        (false, true) => {
            let hex = fingerprint.strip_prefix("sha256:").ok_or_else(|| {
                InvalidField::new("fingerprint", "must be SHA256:<64 hex digits>")
            })?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(InvalidField::new(
                    "fingerprint",
                    "must be SHA256:<64 hex digits>",
                ));
            }
            Ok(Revocation {
                fingerprint: format!("SHA256:{hex}"),
                ..entry_base(reason, by)
            })
        }
        (true, false) => {
            let identity = Identity::from_principal(identity).map_err(|err| {
                InvalidField::new(
                    "identity",
                    format!("{err} (expected e.g. admin/alice, agent/web-2, control-plane/main)"),
                )
            })?;
            Ok(Revocation {
                identity: identity.principal(),
                ..entry_base(reason, by)
            })
        }
        _ => Err(InvalidField::new(
            "fingerprint",
            "give exactly one of fingerprint and identity",
        )),
    }
}

fn entry_base(reason: String, by: &str) -> Revocation {
    Revocation {
        reason,
        revoked_by: by.to_owned(),
        revoked_at: Some(slipway_proto::now()),
        ..Default::default()
    }
}

/// Records a revocation, enforces it at once and pushes the list to every
/// agent.
pub async fn revoke(
    ctx: &Context,
    request: RevokeCertificateRequest,
    by: &str,
) -> Result<RevokeCertificateResponse, Error> {
    let revocation = entry(request, by)?;
    ctx.store
        .commit(vec![revocations::put(&revocation)])
        .await?;
    let (agents_updated, agents_unreachable) = enforce(ctx).await?;
    Ok(RevokeCertificateResponse {
        revocation: Some(revocation),
        agents_updated,
        agents_unreachable,
    })
}

/// Loads the stored list, drops every kept agent connection (a new one
/// sends the list first) and pushes the list to every host. Returns how
/// many agents hold it and the hosts that could not be reached.
pub async fn enforce(ctx: &Context) -> Result<(u32, Vec<String>), Error> {
    load(ctx)?;
    ctx.agents.forget_all();
    let hosts = catalog::hosts(&ctx.store, "")?;
    let limit = Arc::new(Semaphore::new(PUSH_PARALLEL));
    let mut pushes = JoinSet::new();
    for host in hosts {
        let (agents, limit) = (ctx.agents.clone(), limit.clone());
        pushes.spawn(async move {
            let _permit = limit.acquire_owned().await;
            // Dialing sends the list before anything else.
            let reached = agents.connect_once(&host).await;
            if let Err(err) = &reached {
                tracing::warn!(host = %host.name, error = %err, "revocation list not delivered; the host gets it on the next connection");
            }
            (host.name, reached.is_ok())
        });
    }
    let (mut updated, mut unreachable) = (0, Vec::new());
    while let Some(joined) = pushes.join_next().await {
        match joined {
            Ok((_, true)) => updated += 1,
            Ok((name, false)) => unreachable.push(name),
            Err(err) => tracing::error!(error = %err, "a revocation push panicked"),
        }
    }
    unreachable.sort();
    Ok((updated, unreachable))
}

/// Every revocation, oldest first.
pub fn list(store: &Store) -> Result<Vec<Revocation>, Error> {
    Ok(revocations::list(store)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fingerprint: &str, identity: &str, reason: &str) -> RevokeCertificateRequest {
        RevokeCertificateRequest {
            fingerprint: fingerprint.into(),
            identity: identity.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn entries_are_checked() {
        let hex = "ab".repeat(32);
        let ok = entry(request(&format!("SHA256:{hex}"), "", "lost"), "admin/bob").unwrap();
        assert_eq!(ok.fingerprint, format!("SHA256:{hex}"));
        assert_eq!(ok.revoked_by, "admin/bob");
        let ok = entry(request("", "admin/alice", "left"), "admin/bob").unwrap();
        assert_eq!(ok.identity, "admin/alice");
        for (fingerprint, identity, reason) in [
            ("SHA256:ab", "", "short"),
            ("", "", "neither"),
            (&format!("SHA256:{hex}")[..], "admin/alice", "both"),
            ("", "root/alice", "no such role"),
            ("", "admin/alice", " "),
        ] {
            assert!(
                entry(request(fingerprint, identity, reason), "admin/bob").is_err(),
                "{fingerprint:?} {identity:?} {reason:?}"
            );
        }
        let long = "x".repeat(MAX_REASON + 1);
        assert!(entry(request("", "admin/alice", &long), "admin/bob").is_err());
    }
}
