//! Text views of drift: the table of a check (one row per host and app,
//! the first paths that differ), and the marker `slipctl status` puts on
//! a host whose latest finding drifted.

use slipway_proto::{
    agent::v1::{DriftFinding, DriftKind},
    control::v1::{DriftState, HostDrift},
};

use super::{Paint, Table, or_dash, paint, time};

/// Paths shown per host; the rest are counted.
const PATHS_SHOWN: usize = 3;

/// One row per host and app: state, the release recorded and the one
/// current, the counts by kind, then the first paths (or why the host is
/// unknown) and the releases on disk the control plane does not know.
pub fn drift(entries: &[HostDrift]) -> String {
    if entries.is_empty() {
        return "no host holds a release of these apps and none is recorded\n".to_owned();
    }
    let mut table = Table::new(&[
        "HOST", "APP", "STATE", "EXPECTED", "CURRENT", "MODIFIED", "MISSING", "ADDED", "DETAILS",
    ]);
    for entry in entries {
        let counts = entry.counts.unwrap_or_default();
        let known = entry.state() != DriftState::Unknown;
        let count = |n: u64| if known { n.to_string() } else { "-".into() };
        table.row(vec![
            entry.host.clone(),
            entry.app.clone(),
            state(entry.state()),
            or_dash(&entry.expected_release),
            if known {
                or_dash(&entry.current_release)
            } else {
                "?".into()
            },
            count(counts.modified),
            count(counts.missing),
            count(counts.added),
            details(entry),
        ]);
    }
    table.render()
}

/// The closing line of a check: how many entries drifted or are unknown.
pub fn drift_summary(entries: usize, drifted: u32, unknown: u32) -> String {
    format!("{entries} host/app pairs checked: {drifted} drifted, {unknown} unknown\n")
}

/// A status row's marker for a host's latest drift finding of an app.
pub fn drift_marker(finding: Option<&HostDrift>) -> String {
    match finding {
        Some(f) if f.state() == DriftState::Drifted => format!(
            "{} (checked {})",
            paint("drifted", Paint::Red),
            time(f.checked_at.as_ref())
        ),
        _ => "-".to_owned(),
    }
}

fn state(state: DriftState) -> String {
    match state {
        DriftState::Clean => paint("clean", Paint::Green),
        DriftState::Drifted => paint("drifted", Paint::Red),
        DriftState::Unknown => paint("unknown", Paint::Yellow),
        DriftState::Unspecified => "-".to_owned(),
    }
}

fn details(entry: &HostDrift) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !entry.problem.is_empty() {
        parts.push(entry.problem.clone());
    }
    let shown: Vec<String> = entry
        .findings
        .iter()
        .take(PATHS_SHOWN)
        .map(finding)
        .collect();
    if !shown.is_empty() {
        let counts = entry.counts.unwrap_or_default();
        let total = counts.modified
            + counts.missing
            + counts.added
            + counts.type_changed
            + counts.unreadable;
        let mut paths = shown.join(", ");
        if total > shown.len() as u64 {
            paths.push_str(&format!(", {} more", total - shown.len() as u64));
        }
        parts.push(paths);
    }
    if !entry.unknown_releases.is_empty() {
        parts.push(format!(
            "unknown releases: {}",
            entry.unknown_releases.join(", ")
        ));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

fn finding(f: &DriftFinding) -> String {
    let kind = match f.kind() {
        DriftKind::Modified => "modified",
        DriftKind::Missing => "missing",
        DriftKind::Added => "added",
        DriftKind::TypeChanged => "type changed",
        DriftKind::Unreadable => "unreadable",
        DriftKind::Unspecified => "?",
    };
    format!("{} ({kind})", f.path)
}

#[cfg(test)]
mod tests {
    use slipway_proto::agent::v1::DriftCounts;

    use super::*;

    #[test]
    fn a_drifted_host_shows_its_counts_and_first_paths() {
        let found = |path: &str, kind: DriftKind| DriftFinding {
            path: path.into(),
            kind: kind as i32,
            detail: String::new(),
        };
        let entry = HostDrift {
            host: "web-2".into(),
            app: "web".into(),
            state: DriftState::Drifted as i32,
            expected_release: "r1".into(),
            current_release: "r1".into(),
            counts: Some(DriftCounts {
                modified: 1,
                missing: 1,
                added: 2,
                ..Default::default()
            }),
            findings: vec![
                found("a.txt", DriftKind::Added),
                found("config/app.toml", DriftKind::Missing),
                found("index.html", DriftKind::Modified),
                found("z.txt", DriftKind::Added),
            ],
            unknown_releases: vec!["r0-hand".into()],
            ..Default::default()
        };
        let text = drift(&[entry]);
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "web-2  web  drifted  r1        r1       1         1        2      \
             a.txt (added), config/app.toml (missing), index.html (modified), 1 more; \
             unknown releases: r0-hand"
        );
    }
}
