//! The text view of `slipctl env status`: a line for the environment's
//! hosts by health, a table with one row per app, then what needs a look
//! (hosts on another release or not answering, releases not deployed yet).

use slipway_proto::control::v1::{
    AppEnvironmentStatus, Deployment, GetEnvironmentStatusResponse, HealthCounts,
};

use super::{Paint, Table, or_dash, paint, status_painted, time};

/// Releases not deployed listed per app in text (the rest are counted).
const UNDEPLOYED_SHOWN: usize = 5;

/// The whole summary.
pub fn environment_status(status: &GetEnvironmentStatusResponse) -> String {
    let name = status
        .environment
        .as_ref()
        .map(|e| e.name.as_str())
        .unwrap_or_default();
    let hosts = status.hosts.unwrap_or_default();
    let mut text = format!(
        "environment {name}: {} hosts: {}\n",
        total(&hosts),
        counts(&hosts)
    );
    if status.apps.is_empty() {
        text.push_str("no app has been deployed here\n");
        return text;
    }
    let mut table = Table::new(&[
        "APP",
        "RELEASE",
        "HOSTS",
        "DEPLOYED BY",
        "WHEN",
        "LAST DEPLOYMENT",
        "HEALTH",
    ]);
    for app in &status.apps {
        let current = app.current.as_ref();
        table.row(vec![
            app.app.clone(),
            or_dash(current.map(|d| d.release.as_str()).unwrap_or_default()),
            on_current(app),
            or_dash(current.map(|d| d.author.as_str()).unwrap_or_default()),
            time(current.and_then(|d| d.finished_at.as_ref())),
            last(app.last.as_ref()),
            counts(&app.health.unwrap_or_default()),
        ]);
    }
    text.push('\n');
    text.push_str(&table.render());
    for app in &status.apps {
        text.push_str(&notes(app));
    }
    text
}

/// `3/3`, in red when some host runs another release or does not answer.
fn on_current(app: &AppEnvironmentStatus) -> String {
    let shown = format!("{}/{}", app.hosts_on_current, app.hosts_total);
    if app.hosts_on_current == app.hosts_total {
        paint(&shown, Paint::Green)
    } else {
        paint(&shown, Paint::Red)
    }
}

/// `succeeded dep-0000000012`, or `-`.
fn last(deployment: Option<&Deployment>) -> String {
    match deployment {
        Some(d) => format!("{} {}", status_painted(d.status()), d.id),
        None => "-".to_owned(),
    }
}

fn total(counts: &HealthCounts) -> u32 {
    counts.healthy + counts.degraded + counts.down + counts.unknown
}

/// `2 healthy, 1 degraded`, leaving out the states no host is in.
fn counts(counts: &HealthCounts) -> String {
    let parts: Vec<String> = [
        (counts.healthy, "healthy", Paint::Green),
        (counts.degraded, "degraded", Paint::Yellow),
        (counts.down, "down", Paint::Red),
        (counts.unknown, "unknown", Paint::Dim),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, word, p)| format!("{n} {}", paint(word, p)))
    .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The lines under the table for one app: hosts off the current release,
/// hosts that did not answer, releases not deployed yet.
fn notes(app: &AppEnvironmentStatus) -> String {
    let mut text = String::new();
    for host in &app.off_current {
        let on = if host.release.is_empty() {
            "no release".to_owned()
        } else {
            format!("release {}", host.release)
        };
        text.push_str(&format!("{}: {} runs {on}\n", app.app, host.host));
    }
    if !app.unreachable_hosts.is_empty() {
        text.push_str(&format!(
            "{}: no answer from {}\n",
            app.app,
            app.unreachable_hosts.join(", ")
        ));
    }
    if app.undeployed_total > 0 {
        text.push_str(&format!(
            "{}: {} release(s) not deployed here:\n",
            app.app, app.undeployed_total
        ));
        for release in app.undeployed.iter().take(UNDEPLOYED_SHOWN) {
            text.push_str(&format!(
                "  {}  {}  {}\n",
                release.id,
                or_dash(&release.git_ref),
                or_dash(&release.message)
            ));
        }
        let more = app.undeployed_total as usize;
        if more > UNDEPLOYED_SHOWN {
            text.push_str(&format!("  ... and {} more\n", more - UNDEPLOYED_SHOWN));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use slipway_proto::control::v1::{DeploymentStatus, Environment, HostRelease, Release};

    use super::*;

    #[test]
    fn a_summary_names_what_needs_a_look() {
        let current = Deployment {
            id: "dep-0000000003".into(),
            release: "r2".into(),
            author: "deployer/bob".into(),
            status: DeploymentStatus::Succeeded as i32,
            ..Default::default()
        };
        let status = GetEnvironmentStatusResponse {
            environment: Some(Environment {
                name: "prod".into(),
                ..Default::default()
            }),
            hosts: Some(HealthCounts {
                healthy: 2,
                down: 1,
                ..Default::default()
            }),
            apps: vec![AppEnvironmentStatus {
                app: "web".into(),
                current: Some(current.clone()),
                last: Some(current),
                hosts_total: 3,
                hosts_on_current: 1,
                off_current: vec![HostRelease {
                    host: "web-2".into(),
                    release: "r1".into(),
                }],
                unreachable_hosts: vec!["web-3".into()],
                health: Some(HealthCounts {
                    healthy: 1,
                    degraded: 1,
                    down: 1,
                    ..Default::default()
                }),
                undeployed: vec![Release {
                    id: "r3".into(),
                    git_ref: "main".into(),
                    message: "fix login".into(),
                    ..Default::default()
                }],
                undeployed_total: 1,
            }],
        };
        let text = environment_status(&status);
        assert!(
            text.starts_with("environment prod: 3 hosts: 2 healthy, 1 down\n"),
            "{text}"
        );
        let row = text.lines().find(|l| l.starts_with("web ")).expect(&text);
        for cell in ["r2", "1/3", "deployer/bob", "succeeded dep-0000000003"] {
            assert!(row.contains(cell), "{cell}: {row}");
        }
        assert!(row.ends_with("1 healthy, 1 degraded, 1 down"), "{row}");
        assert!(text.contains("web: web-2 runs release r1\n"), "{text}");
        assert!(text.contains("web: no answer from web-3\n"), "{text}");
        assert!(text.contains("web: 1 release(s) not deployed here:\n  r3  main  fix login\n"));
    }
}
