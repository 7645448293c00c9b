//! Dashboard sessions: an operator asks for a one-time login link over
//! mutual TLS; opening it in a browser starts a session bound to that
//! operator's identity and role, carried by a cookie `id.secret` (a link's
//! token is signed, see [`link_token`]; a browser holding an operator
//! certificate may open a session with it directly). Links and
//! sessions are records of the store (hashed secrets only), bounded in
//! number, listed and revoked by an admin.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;
use slipway_proto::{identity::Role, revocation::Revocations};

use crate::{
    auth::Caller,
    error::Error,
    link_token,
    store::{
        Store, StoreError,
        dashboard::{self, DashboardSession, LoginLink},
    },
};

/// How long a login link works.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Links not used yet, at most: more are refused until some expire.
pub const MAX_LINKS: usize = 256;
/// Sessions at once, at most.
pub const MAX_SESSIONS: usize = 1024;
/// Longest token or cookie taken from a request.
const MAX_SECRET: usize = 128;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lower-case hex SHA-256 of a certificate; empty when there is none.
fn fingerprint(der: &[u8]) -> String {
    if der.is_empty() {
        return String::new();
    }
    hex::encode(sha2::Sha256::digest(der))
}

fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new login link for `caller`, who presented `certificate` (DER; empty
/// when none): the token (shown once) and its expiry in Unix seconds.
/// Expired links are dropped first; too many live ones refuse.
pub async fn create_link(
    store: &Store,
    caller: &Caller,
    certificate: &[u8],
) -> Result<(String, u64), Error> {
    let now = now_unix();
    let (expired, live): (Vec<_>, Vec<_>) = dashboard::links(store)?
        .into_iter()
        .partition(|(_, link)| link.expires_unix <= now);
    if live.len() >= MAX_LINKS {
        return Err(Error::Precondition(format!(
            "{MAX_LINKS} login links are waiting to be used; try again in a minute"
        )));
    }
    let token = link_token::sign(&link_token::key(store).await?, now + LINK_TTL.as_secs());
    let link = LoginLink {
        name: caller.name.clone(),
        role: caller.role.to_string(),
        certificate_sha256: fingerprint(certificate),
        certificate_der: hex::encode(certificate),
        expires_unix: now + LINK_TTL.as_secs(),
    };
    let mut ops: Vec<_> = expired
        .into_iter()
        .map(|(key, _)| dashboard::delete_link(key))
        .collect();
    ops.push(dashboard::put_link(&token, &link));
    store.commit(ops).await?;
    Ok((token, link.expires_unix))
}

/// Why a login link is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its signature does not match (altered, or not a link of this
    /// control plane).
    Tampered,
    /// Its minute has passed.
    Expired,
    /// Used already, or never issued.
    Used,
}

/// The failure of a login.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The link is refused.
    #[error("login link refused: {0:?}")]
    Refused(Refused),
    /// The store or a bound refused.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl From<StoreError> for LoginError {
    fn from(err: StoreError) -> Self {
        LoginError::Failed(err.into())
    }
}

/// Opens the link `token`: its signature must match, it must be unexpired
/// and unused; it is used up by the batch that creates the session.
/// Returns the session and the cookie value.
pub async fn redeem(store: &Store, token: &str) -> Result<(DashboardSession, String), LoginError> {
    if token.len() > MAX_SECRET {
        return Err(LoginError::Refused(Refused::Tampered));
    }
    let key = link_token::key(store).await?;
    let now = now_unix();
    link_token::verify(&key, token, now).map_err(|fault| {
        LoginError::Refused(match fault {
            link_token::Fault::Tampered => Refused::Tampered,
            link_token::Fault::Expired => Refused::Expired,
        })
    })?;
    let held = dashboard::get_link(store, token)?.ok_or(LoginError::Refused(Refused::Used))?;
    if held.link.expires_unix <= now {
        store.commit(dashboard::use_up(&held)).await.ok();
        return Err(LoginError::Refused(Refused::Expired));
    }
    let identity = Identity {
        name: held.link.name.clone(),
        role: held.link.role.clone(),
        certificate_der: hex::decode(&held.link.certificate_der).unwrap_or_default(),
    };
    open(store, &identity, dashboard::use_up(&held))
        .await
        .map_err(|err| match err {
            Error::Store(StoreError::Conflict { .. }) => LoginError::Refused(Refused::Used),
            other => LoginError::Failed(other),
        })
}

/// Who a session is opened for.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Operator name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// The certificate (DER) the identity was read from; empty if none.
    pub certificate_der: Vec<u8>,
}

/// Opens a session for `identity` in one batch with `ops` (a link used up,
/// or nothing); refused when [`MAX_SESSIONS`] are open. Returns the session
/// and the cookie value.
pub async fn open(
    store: &Store,
    identity: &Identity,
    mut ops: Vec<crate::store::Op>,
) -> Result<(DashboardSession, String), Error> {
    let now = now_unix();
    let live = dashboard::sessions(store)?
        .iter()
        .filter(|s| s.expires_unix > now)
        .count();
    if live >= MAX_SESSIONS {
        return Err(Error::Precondition(format!(
            "{MAX_SESSIONS} dashboard sessions are open; an admin may revoke some"
        )));
    }
    let cookie_secret = secret();
    let der = &identity.certificate_der;
    let session = DashboardSession {
        id: hex::encode(rand::random::<[u8; 8]>()),
        name: identity.name.clone(),
        role: identity.role.clone(),
        certificate_sha256: fingerprint(der),
        certificate_der: hex::encode(der),
        secret_sha256: dashboard::digest(&cookie_secret),
        csrf: secret(),
        created_unix: now,
        expires_unix: now + SESSION_TTL.as_secs(),
    };
    ops.push(dashboard::create_session(&session));
    store.commit(ops).await?;
    let cookie = format!("{}.{cookie_secret}", session.id);
    Ok((session, cookie))
}

/// The live session a cookie value names, if its secret matches.
pub fn authenticate(store: &Store, cookie: &str) -> Result<Option<DashboardSession>, StoreError> {
    if cookie.len() > MAX_SECRET {
        return Ok(None);
    }
    let Some((id, secret)) = cookie.split_once('.') else {
        return Ok(None);
    };
    let Some(session) = dashboard::session(store, id)? else {
        return Ok(None);
    };
    // Compared without an early exit: the time taken says nothing of
    // how much of the digest matched.
    let presented = dashboard::digest(secret);
    let matches = presented.len() == session.secret_sha256.len()
        && presented
            .bytes()
            .zip(session.secret_sha256.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    Ok((matches && session.expires_unix > now_unix()).then_some(session))
}

/// Why the certificate behind `session` is refused now, if it is revoked
/// (a session ends the moment its certificate is revoked).
pub fn revoked(session: &DashboardSession, revocations: &Revocations) -> Option<String> {
    let der = hex::decode(&session.certificate_der).ok()?;
    if der.is_empty() {
        return None;
    }
    revocations.check(&der)
}

/// The operator a session acts as.
pub fn caller(session: &DashboardSession) -> Caller {
    let role = session.role.parse().unwrap_or(Role::Viewer);
    Caller::operator(session.name.clone(), role)
}

/// The sessions not expired, newest first.
pub fn list(store: &Store) -> Result<Vec<DashboardSession>, StoreError> {
    let now = now_unix();
    let mut live: Vec<_> = dashboard::sessions(store)?
        .into_iter()
        .filter(|s| s.expires_unix > now)
        .collect();
    live.sort_by_key(|s| std::cmp::Reverse(s.created_unix));
    Ok(live)
}

/// Ends session `id`; returns it as it was.
pub async fn revoke(store: &Store, id: &str) -> Result<DashboardSession, Error> {
    if id.len() > MAX_SECRET {
        return Err(slipway_proto::validate::InvalidField::new("id", "is too long").into());
    }
    let session = dashboard::session(store, id)?.ok_or_else(|| Error::NotFound {
        what: "session",
        name: id.to_owned(),
    })?;
    store.commit(vec![dashboard::delete_session(id)]).await?;
    Ok(session)
}

/// Time as a protobuf timestamp.
pub fn timestamp(unix: u64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: i64::try_from(unix).unwrap_or(i64::MAX),
        nanos: 0,
    }
}
