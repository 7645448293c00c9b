//! What is read rather than counted, brought up to date when Prometheus
//! scrapes: the store's size on disk, each registered host's agent as last
//! dialed, the hosts of each environment by state, and the hosts that drifted
//! by app and environment.

use std::collections::{BTreeMap, HashSet};

use slipway_proto::control::v1::{DriftState, Host};

use super::{HostLabels, HostStateLabels, Metrics, TargetLabels};
use crate::{agents::Contacts, catalog, store::Store};

/// The states a host is counted in.
const STATES: [&str; 3] = ["up", "down", "unknown"];

/// Refreshes the gauges read at scrape time. Blocking (reads the store);
/// the metrics listener runs one refresh and encoding at a time.
pub fn refresh(metrics: &Metrics, store: &Store, contacts: &Contacts) {
    if let Some(bytes) = store.size_on_disk() {
        metrics
            .store_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    let hosts = match catalog::hosts(store, "") {
        Ok(hosts) => hosts,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the hosts for the metrics");
            return;
        }
    };
    // Hosts removed since they were dialed are forgotten.
    let names: HashSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    contacts.retain(|host| names.contains(host));
    let mut counts: BTreeMap<(String, &str), i64> = BTreeMap::new();
    let mut up = Vec::new();
    for host in &hosts {
        for state in STATES {
            counts.entry((host.environment.clone(), state)).or_default();
        }
        let contact = contacts.get(&host.name);
        let state = match contact {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        };
        *counts.entry((host.environment.clone(), state)).or_default() += 1;
        if let Some(answered) = contact {
            let labels = HostLabels {
                host: host.name.clone(),
                environment: host.environment.clone(),
            };
            up.push((labels, i64::from(answered)));
        }
    }
    metrics.agent_up.clear();
    for (labels, value) in up {
        metrics.agent_up.get_or_create(&labels).set(value);
    }
    metrics.hosts.clear();
    for ((environment, state), n) in counts {
        let labels = HostStateLabels {
            environment,
            state: state.to_owned(),
        };
        metrics.hosts.get_or_create(&labels).set(n);
    }
    drifted(metrics, store, &hosts);
}

/// Hosts whose latest finding drifted, by app and environment: zero for
/// every pair with a finding, so a cleared drift reads 0.
fn drifted(metrics: &Metrics, store: &Store, hosts: &[Host]) {
    let findings = match crate::store::drift::findings(store, "") {
        Ok(findings) => findings,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the drift findings for the metrics");
            return;
        }
    };
    let placed: HashSet<(&str, &str)> = hosts
        .iter()
        .map(|h| (h.name.as_str(), h.environment.as_str()))
        .collect();
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for f in findings {
        if !placed.contains(&(f.host.as_str(), f.environment.as_str())) {
            continue;
        }
        let drifted = i64::from(f.state() == DriftState::Drifted);
        *counts.entry((f.app, f.environment)).or_default() += drifted;
    }
    metrics.drifted.clear();
    for ((app, environment), n) in counts {
        let labels = TargetLabels { app, environment };
        metrics.drifted.get_or_create(&labels).set(n);
    }
}
