//! Text views of the record: the audit trail, a page of one deployment's
//! events, the rollback timeline and deployment statistics.

use slipway_proto::control::v1::{
    AuditEvent, DeploymentEvent, DeploymentStats, ReleaseMark, RollbackEntry,
};

use super::{Paint, Table, duration_ms, event_line, or_dash, paint, status_name, time};

/// The audit trail, newest first. The method loses its package and the
/// certificate fingerprint is cut to 16 hex digits; `-o json` has both whole.
pub fn audit_events(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit entries match\n".to_owned();
    }
    let mut table = Table::new(&[
        "SEQ", "TIME", "ACTOR", "CERT", "METHOD", "TARGET", "OUTCOME", "MESSAGE",
    ]);
    for e in events {
        let method = e
            .method
            .strip_prefix("slipway.control.v1.")
            .unwrap_or(&e.method);
        let outcome = if e.outcome == "OK" {
            paint("OK", Paint::Green)
        } else {
            paint(&e.outcome, Paint::Red)
        };
        table.row(vec![
            e.sequence.to_string(),
            time(e.time.as_ref()),
            e.actor.clone(),
            or_dash(
                e.certificate_sha256
                    .get(..16)
                    .unwrap_or(&e.certificate_sha256),
            ),
            method.to_owned(),
            or_dash(&e.target),
            outcome,
            e.message.clone(),
        ]);
    }
    table.render()
}

/// A page of a deployment's events, one line each.
pub fn event_lines(events: &[DeploymentEvent]) -> String {
    if events.is_empty() {
        return "no events match\n".to_owned();
    }
    let mut out = String::new();
    for event in events {
        out.push_str(&event_line(event));
        out.push('\n');
    }
    out
}

/// The rollbacks of an app in an environment, newest first.
pub fn rollbacks(entries: &[RollbackEntry]) -> String {
    if entries.is_empty() {
        return "no rollbacks\n".to_owned();
    }
    let mut table = Table::new(&[
        "ROLLBACK", "FINISHED", "BY", "FROM", "TO", "STATUS", "UNDID", "RECOVERY", "REASON",
    ]);
    for entry in entries {
        let rollback = entry.rollback.clone().unwrap_or_default();
        let by = if entry.automatic {
            "auto".to_owned()
        } else {
            rollback.author.clone()
        };
        let recovery = match entry.time_to_recovery_ms {
            0 => "-".to_owned(),
            ms => duration_ms(ms),
        };
        table.row(vec![
            rollback.id.clone(),
            time(rollback.finished_at.as_ref()),
            by,
            or_dash(&entry.from_release),
            or_dash(&entry.to_release),
            status_name(rollback.status()).to_owned(),
            or_dash(&entry.undone_deployment),
            recovery,
            entry.reason.clone(),
        ]);
    }
    table.render()
}

/// Statistics per app and environment.
pub fn stats(stats: &[DeploymentStats]) -> String {
    if stats.is_empty() {
        return "no finished deployments match\n".to_owned();
    }
    // A period column only when the statistics are per day or week.
    let periods = stats.iter().any(|s| s.period_start.is_some());
    let mut headers = if periods { vec!["PERIOD"] } else { Vec::new() };
    headers.extend([
        "APP",
        "ENV",
        "TOTAL",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "ROLLBACKS",
        "SUCCESS",
        "MEAN DURATION",
        "P95",
        "MTTR",
    ]);
    let mut table = Table::new(&headers);
    for s in stats {
        let mut row = if periods {
            let day = s.period_start.as_ref().map_or_else(String::new, |t| {
                super::time(Some(t)).chars().take(10).collect()
            });
            vec![day]
        } else {
            Vec::new()
        };
        let mttr = if s.recoveries == 0 {
            "-".to_owned()
        } else {
            duration_ms(s.mean_time_to_recovery_ms)
        };
        row.extend([
            s.app.clone(),
            s.environment.clone(),
            s.total.to_string(),
            s.succeeded.to_string(),
            s.failed.to_string(),
            s.cancelled.to_string(),
            s.rollbacks.to_string(),
            format!("{:.1}%", s.success_rate * 100.0),
            duration_ms(s.mean_duration_ms),
            duration_ms(s.p95_duration_ms),
            mttr,
        ]);
        table.row(row);
    }
    table.render()
}

/// A release's mark in words with its reason: `bad (by deployer/alice: ...)`;
/// empty when it has none.
pub fn mark(mark: ReleaseMark, reason: &str) -> String {
    let word = match mark {
        ReleaseMark::Unspecified => return String::new(),
        ReleaseMark::Good => paint("good", Paint::Green),
        ReleaseMark::Bad => paint("bad", Paint::Red),
    };
    if reason.is_empty() {
        word
    } else {
        format!("{word} ({reason})")
    }
}

#[cfg(test)]
mod tests {
    use slipway_proto::control::v1::{Deployment, DeploymentKind, DeploymentStatus};

    use super::*;

    #[test]
    fn tables() {
        let entry = AuditEvent {
            sequence: 7,
            actor: "viewer/bob".into(),
            role: "viewer".into(),
            certificate_sha256: "0123456789abcdef".repeat(4),
            method: "slipway.control.v1.DeploymentService/Deploy".into(),
            target: "app web, environment prod".into(),
            outcome: "PermissionDenied".into(),
            message: "viewer/bob may not do this".into(),
            ..Default::default()
        };
        let cells = |text: &str| -> Vec<String> {
            text.lines()
                .nth(1)
                .unwrap()
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            cells(&audit_events(&[entry])),
            [
                "7",
                "-",
                "viewer/bob",
                "0123456789abcdef",
                "DeploymentService/Deploy",
                "app web, environment prod",
                "PermissionDenied",
                "viewer/bob may not do this"
            ]
        );

        let rollback = RollbackEntry {
            rollback: Some(Deployment {
                id: "dep-0000000009".into(),
                kind: DeploymentKind::Rollback as i32,
                status: DeploymentStatus::Succeeded as i32,
                author: "admin/alice".into(),
                ..Default::default()
            }),
            reason: "slow".into(),
            from_release: "r2".into(),
            to_release: "r1".into(),
            undone_deployment: "dep-0000000008".into(),
            time_to_recovery_ms: 65_000,
            ..Default::default()
        };
        assert_eq!(
            cells(&rollbacks(&[rollback])),
            [
                "dep-0000000009",
                "-",
                "admin/alice",
                "r2",
                "r1",
                "succeeded",
                "dep-0000000008",
                "1m05s",
                "slow"
            ]
        );

        let s = DeploymentStats {
            app: "web".into(),
            environment: "prod".into(),
            total: 3,
            succeeded: 2,
            failed: 1,
            success_rate: 2.0 / 3.0,
            mean_duration_ms: 1500,
            p95_duration_ms: 2100,
            ..Default::default()
        };
        assert_eq!(
            cells(&stats(std::slice::from_ref(&s))),
            [
                "web", "prod", "3", "2", "1", "0", "0", "66.7%", "1.5s", "2.1s", "-"
            ]
        );
        let day = DeploymentStats {
            period_start: Some(pbjson_types::Timestamp {
                seconds: 1_795_910_400,
                nanos: 0,
            }),
            rollbacks: 1,
            recoveries: 1,
            mean_time_to_recovery_ms: 42_000,
            ..s
        };
        let table = stats(&[day]);
        assert!(table.starts_with("PERIOD"), "{table}");
        assert_eq!(
            cells(&table),
            [
                "2026-11-29",
                "web",
                "prod",
                "3",
                "2",
                "1",
                "0",
                "1",
                "66.7%",
                "1.5s",
                "2.1s",
                "42.0s"
            ]
        );
        assert_eq!(mark(ReleaseMark::Unspecified, "x"), "");
    }
}
