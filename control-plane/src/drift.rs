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

use slipway_proto::{
    agent::v1::DriftKind,
    control::v1::{CheckDriftResponse, DriftState, FeedItem, FeedKind, HostDrift},
    limits,
};

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
    keep(ctx, &found).await?;
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
/// Every finding passes here, on demand and on the interval: a host that
/// drifted, or whose drift cleared, since its last finding is an item of the
/// live feed (and so a `drift.found` notification), committed with it.
async fn keep(ctx: &Context, found: &[HostDrift]) -> Result<(), Error> {
    // A repair's own check and the interval's may see the same change: the
    // read of the last finding and the commit of the new one are one step,
    // so the change is one feed item, not one per check.
    static KEEPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = KEEPING.lock().await;
    let store = &ctx.store;
    let mut writes = Vec::new();
    let mut items = Vec::new();
    for finding in found.iter().filter(|e| e.state() != DriftState::Unknown) {
        let before = store::drift::latest(store, finding)?.map(|f| f.state());
        if let Some(item) = change(before, finding) {
            items.push(item);
        }
        writes.push(store::drift::put(finding));
    }
    if !writes.is_empty() {
        ctx.events.feed().commit(store, items, writes).await?;
    }
    Ok(())
}

/// The feed item of `finding` when its host's state changed from `before`:
/// drift found, or drift that cleared. A first clean finding is not news.
fn change(before: Option<DriftState>, finding: &HostDrift) -> Option<FeedItem> {
    let now = finding.state();
    let was_drifted = before == Some(DriftState::Drifted);
    let message = match now {
        DriftState::Drifted if !was_drifted => drifted_message(finding),
        DriftState::Clean if was_drifted => format!(
            "{} no longer drifts from release {} of {}",
            finding.host, finding.expected_release, finding.app
        ),
        _ => return None,
    };
    Some(FeedItem {
        kind: FeedKind::Drift as i32,
        app: finding.app.clone(),
        environment: finding.environment.clone(),
        host: finding.host.clone(),
        release: finding.expected_release.clone(),
        message: limits::cut(&message, limits::MESSAGE).into_owned(),
        drift: now as i32,
        ..FeedItem::default()
    })
}

/// `DRIFT_KIND_TYPE_CHANGED` as `type changed`.
fn kind_name(kind: DriftKind) -> String {
    kind.as_str_name()
        .trim_start_matches("DRIFT_KIND_")
        .replace('_', " ")
        .to_lowercase()
}

/// `web-2 drifted from release r1: index.html (modified), ...`.
fn drifted_message(finding: &HostDrift) -> String {
    let mut what: Vec<String> = Vec::new();
    if finding.current_release != finding.expected_release {
        what.push(format!(
            "current is {}",
            if finding.current_release.is_empty() {
                "missing"
            } else {
                &finding.current_release
            }
        ));
    }
    what.extend(
        finding
            .findings
            .iter()
            .map(|f| format!("{} ({})", f.path, kind_name(f.kind()))),
    );
    if finding.findings_truncated {
        what.push("...".into());
    }
    what.extend(
        finding
            .unknown_releases
            .iter()
            .map(|r| format!("unknown release {r}")),
    );
    format!(
        "{} drifted from release {} of {}: {}",
        finding.host,
        finding.expected_release,
        finding.app,
        what.join(", ")
    )
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
