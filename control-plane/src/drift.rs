//! Drift: hosts whose `current` is not the release the records say, whose
//! release files no longer match their manifest, or that hold releases the
//! control plane does not know. Checked on demand and on an interval
//! ([`watch`]), each answer kept as the host's latest finding, and repaired
//! by redeploying the recorded release to the hosts that drifted
//! ([`repair`]).

pub mod check;
pub mod repair;
pub mod watch;

use std::collections::HashMap;

use slipway_proto::control::v1::{CheckDriftResponse, DriftState, HostDrift};

use crate::{
    Context, catalog,
    error::Error,
    store::{self, Store},
};

/// Checks `environment` (its hosts, about `app`, or every app when empty),
/// keeps every answer and returns the entries worth showing.
pub async fn check(
    ctx: &Context,
    environment: &str,
    app: &str,
) -> Result<CheckDriftResponse, Error> {
    let found = check::check(ctx, environment, app).await?;
    keep(&ctx.store, &found).await?;
    let hosts: Vec<HostDrift> = found.into_iter().filter(|e| !check::is_empty(e)).collect();
    let count = |state| hosts.iter().filter(|e| e.state() == state).count() as u32;
    Ok(CheckDriftResponse {
        drifted: count(DriftState::Drifted),
        unknown: count(DriftState::Unknown),
        hosts,
    })
}

/// Keeps each answer as its host's latest finding for the app; an unknown
/// one (no answer, an operation running) leaves the last finding in place.
/// Every finding passes here, on demand and on the interval: the one place
/// where a count of drifted hosts would be exported, or a notification of
/// new drift raised.
async fn keep(store: &Store, found: &[HostDrift]) -> Result<(), Error> {
    let writes: Vec<_> = found
        .iter()
        .filter(|e| e.state() != DriftState::Unknown)
        .map(store::drift::put)
        .collect();
    if !writes.is_empty() {
        store.commit(writes).await?;
    }
    Ok(())
}

/// The latest findings kept, of one environment and one app when named,
/// for hosts that are still in the environment the finding names.
pub fn findings(
    store: &Store,
    environment: &str,
    app: &str,
    drifted_only: bool,
) -> Result<Vec<HostDrift>, Error> {
    if !app.is_empty() {
        catalog::app(store, app)?;
    }
    let hosts: HashMap<String, String> = catalog::hosts(store, environment)?
        .into_iter()
        .map(|h| (h.name, h.environment))
        .collect();
    Ok(store::drift::findings(store, app)?
        .into_iter()
        .filter(|f| hosts.get(&f.host) == Some(&f.environment))
        .filter(|f| !drifted_only || f.state() == DriftState::Drifted)
        .filter(|f| !check::is_empty(f))
        .collect())
}
