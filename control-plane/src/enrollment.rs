//! Enrollment: a one-time join token, bound to a host, exchanged by the
//! host's agent for a certificate of a key it made itself. Tokens are
//! stored hashed, expire, and are used up by the write that redeems them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slipway_proto::{
    control::v1::{EnrollAgentRequest, EnrollAgentResponse},
    validate,
};

use crate::{
    Context, catalog,
    error::Error,
    store::{
        Store, StoreError,
        join_tokens::{self, JoinToken},
    },
};

/// How long a join token works.
pub const TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// Longest token or certificate request accepted.
const MAX_TOKEN: usize = 128;
const MAX_CSR: usize = 16 << 10;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new token for `host`, stored hashed; returns it with its expiry.
pub async fn issue(store: &Store, host: &str) -> Result<(String, SystemTime), StoreError> {
    let secret: [u8; 32] = rand::random();
    let token = format!("sjt_{}", hex::encode(secret));
    let expires = SystemTime::now() + TOKEN_TTL;
    let record = JoinToken {
        host: host.to_owned(),
        expires_unix: now_unix() + TOKEN_TTL.as_secs(),
    };
    store
        .commit(vec![join_tokens::put(&token, &record)])
        .await?;
    Ok((token, expires))
}

/// Redeems `token` for `host`: valid, unused, bound to that host and not
/// expired, and used up by this write. An expired token is removed.
async fn redeem(store: &Store, host: &str, token: &str) -> Result<(), Error> {
    let refused = |why: &str| Error::Unauthenticated(format!("join token refused: {why}"));
    let held = join_tokens::get(store, token)?.ok_or_else(|| refused("unknown or already used"))?;
    if held.token.expires_unix <= now_unix() {
        store
            .commit(vec![join_tokens::remove_if_unchanged(&held)])
            .await?;
        return Err(refused("expired"));
    }
    if held.token.host != host {
        return Err(refused("it was issued for another host"));
    }
    // Two redeemers race: the second finds the token gone.
    store
        .commit(join_tokens::use_up(&held))
        .await
        .map_err(|err| match err {
            StoreError::Conflict { .. } => refused("unknown or already used"),
            other => Error::Store(other),
        })
}

/// Signs the agent's request when its token holds.
pub async fn enroll(
    ctx: &Context,
    request: EnrollAgentRequest,
) -> Result<EnrollAgentResponse, Error> {
    validate::host_name("host", &request.host)?;
    if request.token.len() > MAX_TOKEN {
        return Err(validate::InvalidField::new("token", "is too long").into());
    }
    if request.csr_pem.len() > MAX_CSR {
        return Err(validate::InvalidField::new("csr_pem", "is longer than 16 KiB").into());
    }
    let signer = ctx.signer.clone().ok_or_else(|| {
        Error::Precondition("this control plane holds no CA key: enrollment is off".into())
    })?;
    catalog::host(&ctx.store, &request.host)?;
    redeem(&ctx.store, &request.host, &request.token).await?;
    let certificate_pem = signer
        .sign_agent(&request.csr_pem, &request.host)
        .map_err(|err| Error::Invalid(validate::InvalidField::new("csr_pem", err.to_string())))?;
    Ok(EnrollAgentResponse {
        certificate_pem,
        ca_pem: signer.ca_pem().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledBackend;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let backend = SledBackend::open(dir.path(), 1 << 20).unwrap();
        (dir, Store::new(Arc::new(backend)))
    }

    #[tokio::test]
    async fn a_token_works_once_for_its_host_only() {
        let (_dir, store) = store();
        let (token, _) = issue(&store, "web-9").await.unwrap();
        let wrong = redeem(&store, "web-8", &token).await.unwrap_err();
        assert!(wrong.to_string().contains("another host"), "{wrong}");
        redeem(&store, "web-9", &token).await.unwrap();
        let again = redeem(&store, "web-9", &token).await.unwrap_err();
        assert!(again.to_string().contains("already used"), "{again}");
        assert!(redeem(&store, "web-9", "sjt_forged").await.is_err());
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_and_removed() {
        let (_dir, store) = store();
        let token = "sjt_old";
        let record = JoinToken {
            host: "web-9".into(),
            expires_unix: now_unix() - 1,
        };
        store
            .commit(vec![join_tokens::put(token, &record)])
            .await
            .unwrap();
        let err = redeem(&store, "web-9", token).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(join_tokens::get(&store, token).unwrap().is_none());
    }
}
