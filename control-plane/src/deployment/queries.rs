//! Reading deployments back: one by id, the release that last succeeded in
//! an environment, and the release a rollback goes back to. Each reads an
//! index: none depends on how many deployments there are.

use slipway_proto::{
    control::v1::{Deployment, ReleaseMark},
    validate,
};

use crate::{
    error::Error,
    releases,
    store::{Store, deployments},
};

/// One deployment.
pub fn get(store: &Store, id: &str) -> Result<Deployment, Error> {
    validate::release_id("deployment_id", id)?;
    deployments::get(store, id)?.ok_or_else(|| Error::not_found("deployment", id))
}

/// The release of the most recent succeeded deployment of an app to an
/// environment.
pub fn last_succeeded(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<String>, Error> {
    Ok(deployments::last_succeeded(store, app, environment)?.map(|(_, release)| release))
}

/// The release to roll back to: the newest release that succeeded in the
/// environment before `current`, skipping releases marked bad.
pub fn previous_good(
    store: &Store,
    app: &str,
    environment: &str,
    current: &str,
) -> Result<Option<String>, Error> {
    for entry in deployments::Succeeded::new(store, app, environment) {
        let (_, release) = entry?;
        if release == current {
            continue;
        }
        let bad = releases::get(store, app, &release)
            .map(|r| r.mark() == ReleaseMark::Bad)
            .unwrap_or(true);
        if !bad {
            return Ok(Some(release));
        }
    }
    Ok(None)
}
