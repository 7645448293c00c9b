//! One drift check of an environment: every host asked in parallel (a
//! bounded number at once), each about every app (or one) in turn, its
//! answer judged against the records: the release of the app's last
//! succeeded deployment there, and the releases the control plane knows.

use std::{sync::Arc, time::Duration};

use slipway_proto::{
    agent::v1::{AppTarget, CheckDriftRequest, CheckDriftResponse},
    control::v1::{App, DriftState, Host, HostDrift},
};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    Context, catalog,
    error::Error,
    store::{Store, deployments, locks, releases},
};

/// Hosts asked at once.
const HOSTS_AT_ONCE: usize = 16;
/// How long one host may take for one app: it hashes the whole release.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// Findings asked of each host, and kept.
pub const FINDINGS: u32 = 50;
/// Unknown releases listed per host.
const UNKNOWN_LISTED: usize = 32;

/// An app as the check compares it in one environment.
struct Record {
    target: AppTarget,
    environment: String,
    /// The release of its last succeeded deployment there.
    expected: String,
    /// The deployment holding its lock there: its hosts are changing.
    running: Option<String>,
}

/// Asks every host of `environment` about `app` (every app when empty) and
/// judges each answer; by app, then host. Entries of an app that nothing
/// recorded in the environment and that the host does not have are left
/// out.
pub async fn check(ctx: &Context, environment: &str, app: &str) -> Result<Vec<HostDrift>, Error> {
    let environment = catalog::environment(&ctx.store, environment)?.name;
    let apps = if app.is_empty() {
        catalog::apps(&ctx.store)?
    } else {
        vec![catalog::app(&ctx.store, app)?]
    };
    let records: Arc<Vec<Record>> = Arc::new(
        apps.into_iter()
            .map(|app| record(&ctx.store, app, &environment))
            .collect::<Result<_, _>>()?,
    );
    let hosts = catalog::hosts(&ctx.store, &environment)?;
    let limit = Arc::new(Semaphore::new(HOSTS_AT_ONCE));
    let mut tasks = JoinSet::new();
    for host in hosts {
        let (ctx, records, limit) = (ctx.clone(), records.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut found = Vec::with_capacity(records.len());
            for record in records.iter() {
                found.push(ask(&ctx, &host, record).await);
            }
            found
        });
    }
    let mut found: Vec<HostDrift> = tasks.join_all().await.into_iter().flatten().collect();
    found.sort_by(|a, b| (&a.app, &a.host).cmp(&(&b.app, &b.host)));
    Ok(found)
}

/// Whether an entry says nothing: the app is not recorded in the
/// environment and the host has none of it (or did not answer).
pub fn is_empty(entry: &HostDrift) -> bool {
    entry.expected_release.is_empty()
        && entry.current_release.is_empty()
        && (entry.state() == DriftState::Unknown
            || (entry.state() == DriftState::Clean && entry.problem.is_empty()))
}

fn record(store: &Store, app: App, environment: &str) -> Result<Record, Error> {
    let expected = deployments::last_succeeded(store, &app.name, environment)?
        .map(|(_, release)| release)
        .unwrap_or_default();
    let running = locks::get(store, &app.name, environment)?.map(|(lock, _)| lock.deployment_id);
    Ok(Record {
        target: AppTarget {
            name: app.name,
            deploy_root: app.deploy_root,
        },
        environment: environment.to_owned(),
        expected,
        running,
    })
}

/// One host's answer about one app, judged.
async fn ask(ctx: &Context, host: &Host, record: &Record) -> HostDrift {
    let entry = HostDrift {
        host: host.name.clone(),
        app: record.target.name.clone(),
        environment: record.environment.clone(),
        expected_release: record.expected.clone(),
        checked_at: Some(slipway_proto::now()),
        ..Default::default()
    };
    if let Some(running) = &record.running {
        let why = format!("deployment {running} of the app runs in the environment");
        return unknown(entry, why);
    }
    let request = CheckDriftRequest {
        app: Some(record.target.clone()),
        max_findings: FINDINGS,
        ..Default::default()
    };
    let answer = async {
        let client = ctx.agents.connect(host).await.map_err(|e| e.to_string())?;
        client.check_drift(request).await.map_err(|status| {
            if status.code() == tonic::Code::Unimplemented {
                ctx.agents.forget(host);
                "the agent predates drift detection (agent contract 3); upgrade it".to_owned()
            } else {
                format!("agent: {}", status.message())
            }
        })
    };
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Ok(answer)) => judge(&ctx.store, entry, answer),
        Ok(Err(why)) => unknown(entry, why),
        Err(_) => unknown(entry, format!("no answer within {ANSWER_WITHIN:?}")),
    }
}

fn unknown(mut entry: HostDrift, why: String) -> HostDrift {
    entry.state = DriftState::Unknown as i32;
    entry.problem = why;
    entry
}

/// Drifted when `current` is not the recorded release, when its files
/// differ from the manifest or cannot be checked, or when releases are on
/// disk that the control plane does not know.
fn judge(store: &Store, mut entry: HostDrift, answer: CheckDriftResponse) -> HostDrift {
    if !answer.running_deployment.is_empty() {
        let why = format!(
            "deployment {} was running on the host during the check",
            answer.running_deployment
        );
        return unknown(entry, why);
    }
    entry.unknown_releases = answer
        .releases
        .into_iter()
        .filter(|id| !matches!(releases::get(store, &entry.app, id), Ok(Some(_))))
        .take(UNKNOWN_LISTED)
        .collect();
    let counts = answer.counts.unwrap_or_default();
    let files =
        counts.modified + counts.missing + counts.added + counts.type_changed + counts.unreadable;
    let off = answer.current_release != entry.expected_release;
    let differs = off || files > 0 || !answer.unchecked.is_empty();
    entry.repairable = differs && !entry.expected_release.is_empty();
    entry.state = if differs || !entry.unknown_releases.is_empty() {
        DriftState::Drifted
    } else {
        DriftState::Clean
    } as i32;
    entry.current_release = answer.current_release;
    entry.checked_release = answer.checked_release;
    entry.counts = Some(counts);
    entry.findings = answer.findings;
    entry.findings_truncated = answer.truncated;
    entry.problem = answer.unchecked;
    entry
}
