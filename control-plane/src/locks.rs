//! The deployment lock of each (app, environment): who holds it, since when,
//! until when the holder's lease runs, and the fencing token agents see.
//!
//! The lock is taken in the same store transaction as the deployment's first
//! event and released with its final event, only if it is still that
//! deployment's. The running control plane renews the lease; an expired
//! lease means the holder is gone, and `slipctl lock release --force` frees
//! it. Every deployment's fencing token is its number, raised by the
//! leadership term of the replica that runs it (term · 2^32 + number; the
//! term is 0 on the embedded store), so the next holder's token is always
//! higher, a deployment resumed by a new leader gets a higher one, and
//! agents refuse the old holder.

use std::time::{Duration, SystemTime};

use slipway_proto::{control::v1::Lock, validate};

use crate::{
    Context,
    error::Error,
    running::StopRequest,
    store::{self, Store},
};

/// How long a lease runs without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a running deployment renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// The fencing token of deployment `dep-0000000042` in leadership term
/// `term`: 42 in term 0, 2^32 + 42 in term 1.
pub fn fencing_token(term: u64, deployment_id: &str) -> u64 {
    (term << 32) | (store::deployments::number(deployment_id) & u64::from(u32::MAX))
}

/// The leadership term a fencing token was made in.
pub fn term_of(token: u64) -> u64 {
    token >> 32
}

/// A lock for `deployment_id` taken in leadership term `term`, its lease
/// starting now.
pub fn new_lock(
    term: u64,
    app: &str,
    environment: &str,
    deployment_id: &str,
    holder: &str,
) -> Lock {
    let now = SystemTime::now();
    Lock {
        app: app.to_owned(),
        environment: environment.to_owned(),
        deployment_id: deployment_id.to_owned(),
        holder: holder.to_owned(),
        acquired_at: Some(slipway_proto::timestamp(now)),
        lease_expires_at: Some(slipway_proto::timestamp(now + LEASE)),
        fencing_token: fencing_token(term, deployment_id),
    }
}

/// The same lock with its lease renewed from now.
pub fn renewed(lock: &Lock) -> Lock {
    Lock {
        lease_expires_at: Some(slipway_proto::timestamp(SystemTime::now() + LEASE)),
        ..lock.clone()
    }
}

/// The lock of an app in an environment and its stored bytes, if held.
pub fn get_raw(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<(Lock, Vec<u8>)>, Error> {
    Ok(store::locks::get(store, app, environment)?)
}

/// The lock of an app in an environment, if held.
pub fn get(store: &Store, app: &str, environment: &str) -> Result<Option<Lock>, Error> {
    validate::name("app", app)?;
    validate::name("environment", environment)?;
    Ok(get_raw(store, app, environment)?.map(|(lock, _)| lock))
}

/// Every held lock.
pub fn list(store: &Store) -> Result<Vec<Lock>, Error> {
    Ok(store::locks::list(store)?)
}

/// Frees a lock by force. The deployment that held it, if it runs here, is
/// asked to stop; its record says who freed the lock and why.
pub async fn force_release(
    ctx: &Context,
    by: &str,
    app: &str,
    environment: &str,
    reason: &str,
) -> Result<Lock, Error> {
    validate::name("app", app)?;
    validate::name("environment", environment)?;
    let Some((lock, raw)) = get_raw(&ctx.store, app, environment)? else {
        return Err(Error::not_found("lock", format!("{app}/{environment}")));
    };
    ctx.store
        .commit(vec![store::locks::release(&lock, &raw)])
        .await?;
    ctx.waiting.wake();
    let request = StopRequest {
        by: by.to_owned(),
        reason: format!("lock released by force by {by}: {reason}"),
        grace_seconds: 0,
    };
    // Not awaited: a holder stuck on a dead agent must not hold up the call.
    let (running, id) = (ctx.running.clone(), lock.deployment_id.clone());
    tokio::spawn(async move { running.stop(&id, request).await });
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_deployment_numbers() {
        assert_eq!(fencing_token(0, "dep-0000000042"), 42);
        assert_eq!(fencing_token(0, "nonsense"), 0);
        let lock = new_lock(0, "web", "prod", "dep-0000000007", "alice");
        assert_eq!(lock.fencing_token, 7);
    }

    #[test]
    fn a_later_term_outranks_every_token_of_an_earlier_one() {
        let resumed = fencing_token(2, "dep-0000000007");
        assert_eq!(resumed, (2 << 32) + 7);
        assert!(resumed > fencing_token(1, "dep-0000009999"));
        assert!(resumed > fencing_token(0, "dep-0099999999"));
        assert_eq!(term_of(resumed), 2);
        assert_eq!(term_of(7), 0);
    }
}
