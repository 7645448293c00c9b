//! An environment at a glance, per app: the release it runs and whether
//! every host runs it (each agent asked live, as `slipctl status` does), who
//! deployed it and when, the last deployment's outcome, the hosts by health
//! as last sampled, and the releases cut since and not deployed yet.

use std::{
    collections::{HashMap, HashSet},
    time::SystemTime,
};

use slipway_proto::{
    agent::v1::AppHealthState,
    control::v1::{
        AppEnvironmentStatus, Deployment, GetEnvironmentStatusResponse, HealthCounts, HealthSample,
        Host, HostHealthState, HostRelease, HostState, Release,
    },
    validate,
};

use crate::{
    Context, catalog,
    domain::health,
    error::Error,
    fleet,
    store::{
        self, Store,
        deployments::{self, Scope},
    },
};

/// Releases not yet deployed that a summary lists (the rest are counted).
const MAX_UNDEPLOYED: usize = 10;

/// The summary of `environment`.
pub async fn environment(
    ctx: &Context,
    environment: &str,
) -> Result<GetEnvironmentStatusResponse, Error> {
    validate::name("environment", environment)?;
    let env = catalog::environment(&ctx.store, environment)?;
    let hosts = catalog::hosts(&ctx.store, environment)?;
    let sampled = Sampled::read(ctx, &hosts)?;
    let live = fleet::status(ctx, environment, "").await?;
    let mut apps = Vec::new();
    for app in catalog::apps(&ctx.store)? {
        if let Some(status) = app_status(&ctx.store, environment, &app.name, &live, &sampled)? {
            apps.push(status);
        }
    }
    Ok(GetEnvironmentStatusResponse {
        environment: Some(env),
        hosts: Some(sampled.counts(None)),
        apps,
    })
}

/// One app's summary; none for an app never deployed to the environment
/// and on none of its hosts.
fn app_status(
    store: &Store,
    environment: &str,
    app: &str,
    live: &[HostState],
    sampled: &Sampled,
) -> Result<Option<AppEnvironmentStatus>, Error> {
    let last = newest(store, app, environment)?;
    let current = match deployments::last_succeeded(store, app, environment)? {
        Some((id, _)) => deployments::get(store, &id)?,
        None => None,
    };
    let on_hosts = running(live, app);
    if last.is_none() && on_hosts.is_empty() {
        return Ok(None);
    }
    let release = current.as_ref().map(|d| d.release.as_str()).unwrap_or("");
    let mut status = AppEnvironmentStatus {
        app: app.to_owned(),
        hosts_total: live.len() as u32,
        health: Some(sampled.counts(Some(app))),
        ..Default::default()
    };
    for host in live {
        let name = host
            .host
            .as_ref()
            .map(|h| h.name.clone())
            .unwrap_or_default();
        match on_hosts.get(name.as_str()) {
            _ if !host.reachable => status.unreachable_hosts.push(name),
            Some(on) if *on == release && !release.is_empty() => status.hosts_on_current += 1,
            on => status.off_current.push(HostRelease {
                host: name,
                release: on.map(|r| r.to_string()).unwrap_or_default(),
            }),
        }
    }
    let undeployed = undeployed(store, app, environment, release)?;
    status.undeployed_total = undeployed.len() as u32;
    status.undeployed = undeployed.into_iter().take(MAX_UNDEPLOYED).collect();
    status.current = current;
    status.last = last;
    Ok(Some(status))
}

/// The newest deployment of `app` to `environment`, of any status.
fn newest(store: &Store, app: &str, environment: &str) -> Result<Option<Deployment>, Error> {
    let mut walk = deployments::newest_first(store, Scope::Target(app, environment), None);
    Ok(walk.next().transpose()?)
}

/// The release `current` points to on each answering host that has `app`.
fn running<'a>(live: &'a [HostState], app: &str) -> HashMap<&'a str, &'a str> {
    live.iter()
        .filter_map(|host| {
            let name = host.host.as_ref()?.name.as_str();
            let on = host.apps.iter().find(|a| a.app == app)?;
            (!on.current_release.is_empty()).then_some((name, on.current_release.as_str()))
        })
        .collect()
}

/// Releases of `app` cut after `current` (all, when none) that never
/// succeeded in `environment`, newest first, without their changes. The
/// succeeded deployments are walked newest first only until every such
/// release is accounted for.
fn undeployed(
    store: &Store,
    app: &str,
    environment: &str,
    current: &str,
) -> Result<Vec<Release>, Error> {
    let candidates: Vec<Release> = store::releases::newest_first(store, app)?
        .into_iter()
        .take_while(|r| r.id.as_str() > current)
        .collect();
    let mut pending: HashSet<&str> = candidates.iter().map(|r| r.id.as_str()).collect();
    for entry in deployments::Succeeded::new(store, app, environment) {
        if pending.is_empty() {
            break;
        }
        pending.remove(entry?.1.as_str());
    }
    Ok(candidates
        .iter()
        .filter(|r| pending.contains(r.id.as_str()))
        .map(|r| Release {
            changes: Vec::new(),
            ..r.clone()
        })
        .collect())
}

/// Each host's health as last sampled.
struct Sampled(Vec<(HostHealthState, Option<HealthSample>)>);

impl Sampled {
    fn read(ctx: &Context, hosts: &[Host]) -> Result<Self, Error> {
        let now = SystemTime::now();
        let every = ctx.health.every();
        let mut states = Vec::with_capacity(hosts.len());
        for host in hosts {
            let latest = store::health::latest(&ctx.store, &host.name)?;
            states.push((health::state(latest.as_ref(), now, every), latest));
        }
        Ok(Self(states))
    }

    /// Hosts by state; for `app`, a reachable host is degraded only when
    /// that app's probe fails on it.
    fn counts(&self, app: Option<&str>) -> HealthCounts {
        let mut counts = HealthCounts::default();
        for (state, latest) in &self.0 {
            let state = match (app, state, latest) {
                (Some(app), HostHealthState::Healthy | HostHealthState::Degraded, Some(s)) => {
                    let failing = s
                        .apps
                        .iter()
                        .any(|a| a.app == app && a.state == AppHealthState::Failing as i32);
                    if failing {
                        HostHealthState::Degraded
                    } else {
                        HostHealthState::Healthy
                    }
                }
                _ => *state,
            };
            match state {
                HostHealthState::Healthy => counts.healthy += 1,
                HostHealthState::Degraded => counts.degraded += 1,
                HostHealthState::Down => counts.down += 1,
                HostHealthState::Unknown | HostHealthState::Unspecified => counts.unknown += 1,
            }
        }
        counts
    }
}
