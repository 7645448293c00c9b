//! Text views of deployments: the live event line, the summary of one
//! deployment, the history table, and the fleet's live state.

use slipway_proto::control::v1::{
    ApprovalDecision, Deployment, DeploymentEvent, DeploymentStatus, EventKind, HostDrift,
    HostState, LogLevel,
};

use super::{
    Paint, Table, bytes, duration_ms, fields, kind_name, or_dash, paint, status_name,
    status_painted, time, uptime,
};

/// One event as one aligned line:
/// `  #12   web-2        activate    100%  switched current to ...`.
/// Events of the whole deployment start with `>` and status changes are
/// bold, so the deployment's own progress stands out among host lines.
pub fn event_line(event: &DeploymentEvent) -> String {
    let kind = event.kind();
    let whole = event.host.is_empty();
    let host = if whole { "deployment" } else { &event.host };
    // A zero on a log line or on the deployment's own lines says nothing.
    let percent = if (kind == EventKind::Log || whole) && event.percent == 0 {
        String::new()
    } else {
        format!("{}%", event.percent)
    };
    let mut message = match event.level() {
        LogLevel::Warn => format!("{} {}", paint("warning:", Paint::Yellow), event.message),
        LogLevel::Error => format!("{} {}", paint("error:", Paint::Red), event.message),
        _ => event.message.clone(),
    };
    if !event.step.is_empty() {
        // Hook output: `before-activate| line`, stderr marked.
        let stream = if event.output == "stderr" { "!" } else { "|" };
        message = format!("{}{stream} {message}", event.step);
    }
    if kind == EventKind::Status {
        let tag = format!("[{}]", status_name(event.status()));
        message = if message.is_empty() {
            tag
        } else {
            format!("{tag} {message}")
        };
    }
    let lead = if whole { "> " } else { "  " };
    let line = format!(
        "{lead}#{:<4} {host:<12} {:<11} {percent:>4}  {message}",
        event.sequence,
        or_dash(&event.stage),
    );
    let line = line.trim_end();
    match (whole && kind == EventKind::Status, event.level()) {
        (true, _) => paint(line, Paint::Bold),
        (false, LogLevel::Debug) => paint(line, Paint::Dim),
        _ => line.to_owned(),
    }
}

fn duration(d: &Deployment) -> String {
    if d.finished_at.is_none() && !super::is_final(d.status()) {
        "running".to_owned()
    } else {
        duration_ms(d.duration_ms)
    }
}

/// One deployment: its fields and a table of its hosts.
pub fn deployment(d: &Deployment) -> String {
    let status = if d.status() == DeploymentStatus::Running {
        format!(
            "{} ({}, {}%)",
            status_painted(d.status()),
            or_dash(&d.stage),
            d.percent
        )
    } else {
        status_painted(d.status())
    };
    let mut out = fields(&[
        ("deployment", d.id.clone()),
        ("kind", kind_name(d.kind()).to_owned()),
        ("app", d.app.clone()),
        ("environment", d.environment.clone()),
        ("status", status),
        ("release", d.release.clone()),
        ("previous", or_dash(&d.previous_release)),
        ("author", d.author.clone()),
        ("message", d.message.clone()),
        ("started", time(d.started_at.as_ref())),
        ("finished", time(d.finished_at.as_ref())),
        ("duration", duration(d)),
        ("error", d.error.clone()),
    ]);
    if d.approvals_required > 0 || !d.approvals.is_empty() {
        out.push_str(&approvals(d));
    }
    if !d.secrets.is_empty() {
        let shipped: Vec<String> = (d.secrets.iter())
            .map(|s| format!("{} v{}", s.name, s.version))
            .collect();
        out.push_str(&fields(&[("secrets", shipped.join(", "))]));
    }
    if !d.hosts.is_empty() {
        out.push('\n');
        let mut table = Table::new(&["HOST", "STATUS", "STAGE", "PROGRESS", "SENT", "ERROR"]);
        for host in &d.hosts {
            let sent = if host.objects_sent == 0 {
                "-".to_owned()
            } else {
                format!("{} objects, {}", host.objects_sent, bytes(host.bytes_sent))
            };
            table.row(vec![
                host.host.clone(),
                status_name(host.status()).to_owned(),
                or_dash(&host.stage),
                format!("{}%", host.percent),
                sent,
                host.error.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// The approvals a deployment needed and the decisions on it.
fn approvals(d: &Deployment) -> String {
    let mut out = format!("approvals    {} required", d.approvals_required);
    if d.approval_expires_at.is_some() {
        out.push_str(&format!(
            ", expires {}",
            time(d.approval_expires_at.as_ref())
        ));
    }
    out.push('\n');
    for a in &d.approvals {
        let decision = match (a.decision(), a.admin_override) {
            (_, true) => "override",
            (ApprovalDecision::Rejected, _) => "rejected",
            _ => "approved",
        };
        out.push_str(&format!(
            "  {decision} by {} at {}{}\n",
            a.by,
            time(a.at.as_ref()),
            if a.message.is_empty() {
                String::new()
            } else {
                format!(": {}", a.message)
            }
        ));
    }
    out
}

/// Deployments as a history table, newest first.
pub fn deployments(list: &[Deployment]) -> String {
    if list.is_empty() {
        return "no deployments match\n".to_owned();
    }
    let mut table = Table::new(&[
        "ID", "KIND", "APP", "ENV", "RELEASE", "STATUS", "AUTHOR", "STARTED", "DURATION",
    ]);
    for d in list {
        let mut row = summary(d);
        row.extend([time(d.started_at.as_ref()), duration(d)]);
        table.row(row);
    }
    table.render()
}

/// The waiting deployments as a table, each with its place.
pub fn queue(list: &[Deployment]) -> String {
    if list.is_empty() {
        return "no deployments wait\n".to_owned();
    }
    let mut table = Table::new(&[
        "POS", "ID", "KIND", "APP", "ENV", "RELEASE", "STATUS", "AUTHOR", "QUEUED",
    ]);
    for d in list {
        let mut row = vec![d.queue_position.to_string()];
        row.extend(summary(d));
        row.push(time(d.queued_at.as_ref()));
        table.row(row);
    }
    table.render()
}

/// ID, kind, app, environment, release, status and author of a deployment.
fn summary(d: &Deployment) -> Vec<String> {
    vec![
        d.id.clone(),
        kind_name(d.kind()).to_owned(),
        d.app.clone(),
        d.environment.clone(),
        d.release.clone(),
        status_name(d.status()).to_owned(),
        d.author.clone(),
    ]
}

/// When an agent's certificate expires, marked at 30, 7 and 1 days left.
fn certificate_expiry(expires: Option<&pbjson_types::Timestamp>) -> String {
    let Some(expires) = expires else {
        return "-".to_owned();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = (expires.seconds - now).div_euclid(86_400);
    let date = crate::output::time(Some(expires));
    match days {
        d if d < 0 => paint(&format!("{date} (expired)"), Paint::Red),
        d if d < 7 => paint(&format!("{date} ({d}d left)"), Paint::Red),
        d if d < 30 => paint(&format!("{date} ({d}d left)"), Paint::Yellow),
        _ => date,
    }
}

/// The fleet's live state: one row per host, then one per app on each host,
/// marked when the latest drift check found it drifted.
pub fn fleet(states: &[HostState], drift: &[HostDrift]) -> String {
    if states.is_empty() {
        return "no hosts match\n".to_owned();
    }
    let mut hosts = Table::new(&[
        "HOST",
        "ENV",
        "REACHABLE",
        "AGENT",
        "UPTIME",
        "LOAD",
        "MEM AVAIL",
        "DISK FREE",
        "CERT EXPIRES",
        "ERROR",
    ]);
    let mut apps = Table::new(&[
        "HOST",
        "APP",
        "CURRENT",
        "PREVIOUS",
        "DRIFT",
        "PRESTAGED",
        "RELEASES ON DISK",
    ]);
    for state in states {
        let (name, env) = state
            .host
            .as_ref()
            .map_or(("?", ""), |h| (h.name.as_str(), h.environment.as_str()));
        let row = if state.reachable {
            vec![
                name.to_owned(),
                or_dash(env),
                paint("yes", Paint::Green),
                or_dash(&state.agent_version),
                uptime(state.uptime_seconds),
                format!("{:.2}", state.load_average),
                bytes(state.memory_available_bytes),
                bytes(state.disk_free_bytes),
                certificate_expiry(state.certificate_expires_at.as_ref()),
                String::new(),
            ]
        } else {
            let mut row = vec![name.to_owned(), or_dash(env), paint("no", Paint::Red)];
            row.extend(std::iter::repeat_n("-".to_owned(), 6));
            row.push(state.error.clone());
            row
        };
        hosts.row(row);
        for app in &state.apps {
            // With details: `id (state, pinned)`; the active one is CURRENT.
            let listed: Vec<String> = if app.release_details.is_empty() {
                app.releases.clone()
            } else {
                app.release_details
                    .iter()
                    .map(|r| {
                        let state = r
                            .state()
                            .as_str_name()
                            .trim_start_matches("RELEASE_STATE_")
                            .to_lowercase();
                        let pin = if r.pinned { ", pinned" } else { "" };
                        format!("{} ({state}{pin})", r.id)
                    })
                    .collect()
            };
            let on_disk = if listed.is_empty() {
                "-".to_owned()
            } else {
                format!("{}: {}", listed.len(), listed.join(", "))
            };
            let finding = drift.iter().find(|f| f.host == name && f.app == app.app);
            apps.row(vec![
                name.to_owned(),
                app.app.clone(),
                or_dash(&app.current_release),
                or_dash(&app.previous_release),
                super::drift_marker(finding),
                or_dash(&app.prestaged_release),
                on_disk,
            ]);
        }
    }
    let mut out = hosts.render();
    if !apps.is_empty() {
        out.push('\n');
        out.push_str(&apps.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_align() {
        let event = DeploymentEvent {
            sequence: 12,
            deployment_id: "dep-1".into(),
            kind: EventKind::Progress as i32,
            host: "web-2".into(),
            status: DeploymentStatus::Running as i32,
            stage: "activate".into(),
            percent: 100,
            level: LogLevel::Info as i32,
            message: "switched current to 20261123T142400Z-3f2a9c1".into(),
            ..DeploymentEvent::default()
        };
        assert_eq!(
            event_line(&event),
            "  #12   web-2        activate    100%  switched current to 20261123T142400Z-3f2a9c1"
        );
        let done = DeploymentEvent {
            sequence: 40,
            kind: EventKind::Status as i32,
            status: DeploymentStatus::Succeeded as i32,
            stage: "done".into(),
            percent: 100,
            message: "2 hosts switched".into(),
            ..DeploymentEvent::default()
        };
        assert_eq!(
            event_line(&done),
            "> #40   deployment   done        100%  [succeeded] 2 hosts switched"
        );
    }
}
