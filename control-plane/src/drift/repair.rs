//! A repair on request: the app's hosts in the environment checked, then
//! the recorded release redeployed to those whose `current` or files
//! drifted (see [`crate::deployment::repair`]), and checked again once it
//! ended. Hosts without drift, and those that only hold releases the
//! control plane does not know, are left alone.

use futures_util::StreamExt;
use slipway_proto::control::v1::{CheckDriftResponse, HostDrift, RepairDriftRequest};

use crate::{
    Context,
    auth::Caller,
    catalog,
    deployment::{self, Repair},
    error::Error,
    store::{deployments, locks},
};

/// Hosts named in a repair's message; the rest are counted.
const NAMED: usize = 10;

/// Checks, then starts the repair of the hosts that need one; returns the
/// check and the repair's deployment id (none when no host needs one).
pub async fn repair(
    ctx: &Context,
    caller: &Caller,
    request: RepairDriftRequest,
) -> Result<(CheckDriftResponse, Option<String>), Error> {
    let store = &ctx.store;
    let app = catalog::app(store, &request.app)?.name;
    let environment = catalog::environment(store, &request.environment)?.name;
    let release = deployments::last_succeeded(store, &app, &environment)?
        .map(|(_, release)| release)
        .ok_or_else(|| {
            Error::Precondition(format!(
                "app {app} has no recorded release in {environment}: no deployment of it \
                 succeeded there, so there is nothing to put back; deploy a release first"
            ))
        })?;
    if let Some((lock, _)) = locks::get(store, &app, &environment)? {
        return Err(Error::Locked {
            app,
            environment,
            holder: lock.deployment_id,
        });
    }
    let check = super::check(ctx, &environment, &app).await?;
    let drifted: Vec<&HostDrift> = check.hosts.iter().filter(|h| h.repairable).collect();
    if drifted.is_empty() {
        return Ok((check, None));
    }
    let hosts = drifted
        .iter()
        .map(|h| catalog::host(store, &h.host))
        .collect::<Result<Vec<_>, _>>()?;
    let repair = Repair {
        message: message(&release, &drifted, &request.message),
        app,
        environment,
        release,
        hosts,
        policy: request.policy,
    };
    let (app, environment) = (repair.app.clone(), repair.environment.clone());
    let id = deployment::repair(ctx, caller, repair).await?;
    tokio::spawn(check_after(ctx.clone(), id.clone(), environment, app));
    Ok((check, Some(id)))
}

/// Checks the app's hosts again once the repair has ended, so that the
/// findings kept say what the hosts show now, not what they showed before.
async fn check_after(ctx: Context, id: String, environment: String, app: String) {
    let events = ctx.events.stream(ctx.store.clone(), id.clone(), 0, |e| e);
    // The stream ends with the deployment's final event.
    events.for_each(|_| async {}).await;
    if let Err(err) = super::check(&ctx, &environment, &app).await {
        let error = slipway_proto::daemon::chain(&err);
        tracing::warn!(deployment = %id, %error, "the drift check after the repair failed");
    }
}

/// "drift repair of <release> on web-2 (2 modified, 1 missing), web-3
/// (current r0)", then the operator's message.
fn message(release: &str, drifted: &[&HostDrift], said: &str) -> String {
    let mut hosts: Vec<String> = drifted.iter().take(NAMED).map(|h| what(h)).collect();
    if drifted.len() > NAMED {
        hosts.push(format!("{} more", drifted.len() - NAMED));
    }
    let mut message = format!("drift repair of {release} on {}", hosts.join(", "));
    if !said.is_empty() {
        message.push_str(": ");
        message.push_str(said);
    }
    message
}

/// What drifted on one host, in a few words.
fn what(h: &HostDrift) -> String {
    let counts = h.counts.unwrap_or_default();
    let mut parts = Vec::new();
    if h.current_release != h.expected_release {
        let current = if h.current_release.is_empty() {
            "none"
        } else {
            &h.current_release
        };
        parts.push(format!("current {current}"));
    }
    for (n, kind) in [
        (counts.modified, "modified"),
        (counts.missing, "missing"),
        (counts.added, "added"),
        (counts.type_changed, "of another type"),
        (counts.unreadable, "unreadable"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {kind}"));
        }
    }
    if !h.problem.is_empty() && parts.is_empty() {
        parts.push("files not checked".to_owned());
    }
    format!("{} ({})", h.host, parts.join(", "))
}
