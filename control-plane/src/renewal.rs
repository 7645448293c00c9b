//! Agents' certificates renewed by the control plane: the agent makes a
//! new key (it never leaves the host), the control plane signs its request
//! with the CA it holds, the agent installs and serves the certificate.
//! Done on request (`slipctl host renew-cert`) and, every hour, for each
//! agent with less than a third of its validity left.

use crate::{Context, catalog, error::Error};

/// Has `host`'s agent make a new key, signs its request and installs the
/// certificate there.
pub async fn renew(
    ctx: &Context,
    host: &str,
) -> Result<slipway_proto::control::v1::RenewAgentCertificateResponse, Error> {
    let signer = ctx.signer.clone().ok_or_else(|| {
        Error::Precondition(
            "this control plane holds no CA key: renew the agent's certificate with \
             `slipctl pki issue agent HOST --force` and SIGHUP the agent"
                .into(),
        )
    })?;
    let host = catalog::host(&ctx.store, host)?;
    let failed = |code, message: String| Error::Agent {
        host: host.name.clone(),
        code,
        message,
    };
    let client = ctx
        .agents
        .connect(&host)
        .await
        .map_err(|err| failed(tonic::Code::Unavailable, err.to_string()))?;
    let agent =
        |status: tonic::Status| failed(status.code(), format!("agent: {}", status.message()));
    let csr = client.prepare_certificate().await.map_err(agent)?;
    let certificate = signer
        .sign_agent(&csr, &host.name)
        .map_err(|err| failed(tonic::Code::FailedPrecondition, err.to_string()))?;
    let serial = client
        .install_certificate(certificate.clone())
        .await
        .map_err(agent)?;
    // The next connection sees (and records) the new certificate.
    ctx.agents.forget(&host);
    let expires_at = summary_of_pem(&certificate).map(|s| pbjson_types::Timestamp {
        seconds: s.not_after,
        nanos: 0,
    });
    tracing::info!(host = %host.name, serial, "renewed the agent's certificate");
    Ok(slipway_proto::control::v1::RenewAgentCertificateResponse { serial, expires_at })
}

fn summary_of_pem(pem: &str) -> Option<slipway_proto::tls::CertSummary> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    slipway_proto::tls::summary(&der)
}

/// Every `every`, renews the certificate of each agent that has less than
/// a third of its validity left (when this control plane holds a CA key).
pub async fn renew_expiring(ctx: Context, every: std::time::Duration) {
    if ctx.signer.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let hosts = match catalog::hosts(&ctx.store, "") {
            Ok(hosts) => hosts,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list hosts for certificate renewal");
                continue;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for host in hosts {
            // A handshake records what the agent serves.
            if ctx.agents.connect_once(&host).await.is_err() {
                continue;
            }
            let due = ctx
                .agents
                .certificate(&host.name)
                .is_some_and(|cert| cert.renewal_due(now));
            if due && let Err(err) = renew(&ctx, &host.name).await {
                tracing::warn!(host = %host.name, error = %err, "renewing the agent's certificate failed; retrying at the next check");
            }
        }
    }
}
