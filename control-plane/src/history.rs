//! Reading the past: deployments filtered and paged newest first, one
//! deployment's events filtered and paged in order, the rollbacks of an app
//! in an environment with their time to recovery, and success statistics.
//! Everything here only reads the store.

use std::collections::HashMap;

use slipway_proto::{
    control::v1::{
        Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, ListDeploymentEventsRequest,
        ListDeploymentsRequest, LogLevel, Release, RollbackEntry,
    },
    validate::{self, InvalidField},
};

use crate::{
    audit::{check_range, instant, page_size, principal_matches, sequence_token, within},
    catalog,
    error::Error,
    releases,
    store::{
        self, Store, StoreError, deployment_text,
        deployments::{self, Scope},
    },
};

/// Events a listing reads from the store at once.
const SCAN: usize = 512;

/// Fills a deployment's commit and git ref from its release when the record
/// lacks them (deployments recorded before those fields existed).
struct ReleaseInfo<'a> {
    store: &'a Store,
    cache: HashMap<(String, String), Option<Release>>,
}

impl<'a> ReleaseInfo<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            cache: HashMap::new(),
        }
    }

    fn fill(&mut self, d: &mut Deployment) -> Result<(), Error> {
        if !d.commit.is_empty() && !d.git_ref.is_empty() {
            return Ok(());
        }
        let store = self.store;
        let release = match self.cache.entry((d.app.clone(), d.release.clone())) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(releases::find(store, &d.app, &d.release)?)
            }
        };
        if let Some(release) = release {
            if d.commit.is_empty() {
                d.commit = release.commit.clone();
            }
            if d.git_ref.is_empty() {
                d.git_ref = release.git_ref.clone();
            }
        }
        Ok(())
    }
}

/// Fills one deployment's commit and git ref from its release when the
/// record lacks them, so that GetDeployment and ListDeployments agree.
pub fn fill_release(store: &Store, deployment: &mut Deployment) -> Result<(), Error> {
    ReleaseInfo::new(store).fill(deployment)
}

fn contains_folded(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

fn check_name(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.is_empty() {
        Ok(())
    } else {
        validate::name(field, value)
    }
}

fn check_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<(), InvalidField> {
    E::try_from(value)
        .map(drop)
        .map_err(|_| InvalidField::new(field, format!("{value} is not a known value")))
}

/// The deployments a listing reads, newest first, below the page token
/// `before`: those the text index holds for a text of three bytes or more,
/// else the narrowest index for the filters. Every record is checked
/// against every filter after.
fn walk<'a>(
    store: &'a Store,
    req: &ListDeploymentsRequest,
    text: &str,
    before: Option<&str>,
) -> Box<dyn Iterator<Item = Result<Deployment, StoreError>> + 'a> {
    if text.len() >= deployment_text::MIN_NEEDLE {
        let below = before.map(deployments::number);
        let found = deployment_text::candidates(store, text, below);
        return Box::new(found.filter_map(|n| match n {
            Ok(n) => deployments::get(store, &deployments::id(n)).transpose(),
            Err(err) => Some(Err(err)),
        }));
    }
    let scope = Scope::of(&req.app, &req.environment, &req.author);
    Box::new(deployments::newest_first(store, scope, before))
}

/// Indexes the text of every deployment of a store from before the text
/// index (commit and ref filled from the release where the record lacks
/// them, as listings show them). Returns how many were indexed.
pub async fn ensure_text_index(store: &Store) -> Result<usize, Error> {
    let mut releases = ReleaseInfo::new(store);
    deployment_text::ensure(store, |d| {
        let mut d = d.clone();
        releases.fill(&mut d)?;
        Ok(deployment_text::searchable(&d))
    })
    .await
}

/// Deployments newest first, filtered, one page at a time. The page token is
/// the id of the last deployment of the previous page, so a walk sees every
/// deployment once even while new ones start.
pub fn list(
    store: &Store,
    req: &ListDeploymentsRequest,
) -> Result<(Vec<Deployment>, String), Error> {
    check_name("app", &req.app)?;
    check_name("environment", &req.environment)?;
    check_enum::<DeploymentStatus>("status", req.status)?;
    check_enum::<DeploymentKind>("kind", req.kind)?;
    check_range(req.since.as_ref(), req.until.as_ref())?;
    if !req.page_token.is_empty() {
        validate::release_id("page_token", &req.page_token)?;
    }
    let size = page_size(req.page_size, 50);
    let text = req.text.to_lowercase();
    let mut releases = ReleaseInfo::new(store);
    let mut page = Vec::new();
    // The narrowest index for the filters; the rest are checked per record.
    let before = Some(req.page_token.as_str()).filter(|t| !t.is_empty());
    for d in walk(store, req, &text, before) {
        let mut d = d?;
        let matches = (req.app.is_empty() || d.app == req.app)
            && (req.environment.is_empty() || d.environment == req.environment)
            && (req.status == 0 || d.status == req.status)
            && (req.kind == 0 || d.kind == req.kind)
            && principal_matches(&d.author, &req.author)
            && within(
                d.started_at.as_ref(),
                req.since.as_ref(),
                req.until.as_ref(),
            );
        if !matches {
            continue;
        }
        releases.fill(&mut d)?;
        if !text.is_empty()
            && ![&d.commit, &d.git_ref, &d.release, &d.message]
                .iter()
                .any(|field| contains_folded(field, &text))
        {
            continue;
        }
        page.push(d);
        if page.len() > size {
            break;
        }
    }
    let next = if page.len() > size {
        page.truncate(size);
        page.last().map(|d| d.id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

/// One deployment's events in order, filtered, one page at a time. The page
/// token is the sequence of the last event of the previous page.
pub fn events(
    store: &Store,
    req: &ListDeploymentEventsRequest,
) -> Result<(Vec<DeploymentEvent>, String), Error> {
    validate::release_id("deployment_id", &req.deployment_id)?;
    check_enum::<LogLevel>("min_level", req.min_level)?;
    let id = &req.deployment_id;
    deployments::get(store, id)?.ok_or_else(|| Error::not_found("deployment", id))?;
    let size = page_size(req.page_size, 200);
    let text = req.text.to_lowercase();
    let wanted = |e: &DeploymentEvent| {
        (req.host.is_empty() || e.host == req.host)
            && e.level >= req.min_level
            && (req.step.is_empty() || e.step == req.step)
            && (text.is_empty()
                || contains_folded(&e.message, &text)
                || contains_folded(&e.output, &text))
    };
    let mut cursor = sequence_token(&req.page_token)?.unwrap_or(0);
    let mut page = Vec::new();
    loop {
        let chunk = store::events::after(store, id, cursor, SCAN)?;
        let done = chunk.len() < SCAN;
        if let Some(last) = chunk.last() {
            cursor = last.sequence;
        }
        page.extend(chunk.into_iter().filter(|e| wanted(e)));
        if page.len() > size || done {
            break;
        }
    }
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|e| e.sequence.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

fn succeeded(d: &Deployment) -> bool {
    d.status() == DeploymentStatus::Succeeded
}

/// Whether `d` brought the release a manual `rollback` went back from.
fn brought(rollback: &Deployment, d: &Deployment) -> bool {
    succeeded(d) && d.release == rollback.previous_release
}

/// A successful rollback's time to recovery: from the end of the deployment
/// that brought the bad release (`undone`); an automatic rollback runs
/// inside the deployment it undoes, which ends after it, so from that
/// deployment's start. 0 when the rollback did not succeed.
fn recovery_ms(rollback: &Deployment, undone: &Deployment) -> u64 {
    if !succeeded(rollback) {
        return 0;
    }
    let bad_since = if rollback.rollback_of.is_empty() {
        undone.finished_at.as_ref()
    } else {
        undone.started_at.as_ref()
    };
    millis_between(bad_since, rollback.finished_at.as_ref()).unwrap_or(0)
}

/// The time to recovery of a rollback that just succeeded, with the
/// deployment it undid read from the store (as in [`rollback_timeline`]);
/// None when it did not succeed or what it undid is not on record.
pub fn time_to_recovery(
    store: &Store,
    rollback: &Deployment,
) -> Result<Option<std::time::Duration>, store::StoreError> {
    if rollback.kind() != DeploymentKind::Rollback || !succeeded(rollback) {
        return Ok(None);
    }
    let undone = if !rollback.rollback_of.is_empty() {
        deployments::get(store, &rollback.rollback_of)?
    } else if rollback.previous_release.is_empty() {
        None
    } else {
        let target = Scope::Target(&rollback.app, &rollback.environment);
        let mut earlier = deployments::newest_first(store, target, Some(&rollback.id));
        earlier
            .find(|d| d.as_ref().map_or(true, |d| brought(rollback, d)))
            .transpose()?
    };
    Ok(undone.map(|d| std::time::Duration::from_millis(recovery_ms(rollback, &d))))
}

/// Milliseconds from `from` to `to`, if both are set and in order.
fn millis_between(
    from: Option<&pbjson_types::Timestamp>,
    to: Option<&pbjson_types::Timestamp>,
) -> Option<u64> {
    let (from, to) = (instant(from?), instant(to?));
    let ms = (to.0 - from.0) * 1000 + i64::from(to.1 - from.1) / 1_000_000;
    u64::try_from(ms).ok()
}

/// The rollbacks of an app in an environment, newest first, each with why it
/// happened, what it undid and how long the environment ran the release it
/// went back from.
pub fn rollback_timeline(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Vec<RollbackEntry>, Error> {
    catalog::app(store, app)?;
    catalog::environment(store, environment)?;
    let here: Vec<Deployment> =
        deployments::newest_first(store, Scope::Target(app, environment), None)
            .collect::<Result<_, _>>()?;
    let by_id: HashMap<&str, &Deployment> = here.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut timeline = Vec::new();
    for (i, rollback) in here.iter().enumerate() {
        if rollback.kind() != DeploymentKind::Rollback {
            continue;
        }
        let automatic = !rollback.rollback_of.is_empty();
        // The deployment that brought the release this one went back from:
        // for an automatic rollback the one it undid; otherwise the last
        // earlier deployment that activated that release.
        let undone = if automatic {
            by_id.get(rollback.rollback_of.as_str()).copied()
        } else if rollback.previous_release.is_empty() {
            None
        } else {
            here[i + 1..].iter().find(|d| brought(rollback, d))
        };
        let from_release = match undone {
            Some(d) if automatic => d.release.clone(),
            _ => rollback.previous_release.clone(),
        };
        let reason = if automatic {
            undone
                .map(|d| d.error.clone())
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| rollback.reason.clone())
        } else if rollback.message.is_empty() {
            rollback.reason.clone()
        } else {
            rollback.message.clone()
        };
        let time_to_recovery_ms = undone.map_or(0, |d| recovery_ms(rollback, d));
        timeline.push(RollbackEntry {
            rollback: Some(rollback.clone()),
            reason,
            automatic,
            from_release,
            to_release: rollback.release.clone(),
            undone_deployment: if automatic {
                rollback.rollback_of.clone()
            } else {
                undone.map(|d| d.id.clone()).unwrap_or_default()
            },
            time_to_recovery_ms,
        });
    }
    Ok(timeline)
}

pub mod retention;
mod stats;
#[cfg(test)]
mod tests;

pub use stats::stats;
