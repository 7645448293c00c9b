//! What is read rather than counted, brought up to date when Prometheus
//! scrapes: the store's size on disk, each registered host's agent as last
//! dialed, and the hosts of each environment by state.

use std::collections::{BTreeMap, HashSet};

use super::{HostLabels, HostStateLabels, Metrics};
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
}
