//! Text views of what the catalog holds: apps, environments, hosts,
//! releases, and the certificates of a PKI directory.

use std::fmt::Write as _;

use slipway_proto::control::v1::{App, ChangeKind, Environment, Host, Release};

use super::{Table, bytes, fields, or_dash, time};
use crate::pki::CertInfo;

/// Releases kept on each host when the app says 0.
const DEFAULT_KEEP: u32 = 5;

fn branch(app: &App) -> String {
    if app.default_branch.is_empty() {
        "HEAD".to_owned()
    } else {
        app.default_branch.clone()
    }
}

fn deploy_root(app: &App) -> String {
    if app.deploy_root.is_empty() {
        format!("<apps dir>/{}", app.name)
    } else {
        app.deploy_root.clone()
    }
}

fn keep(app: &App) -> String {
    match app.keep_releases {
        0 => DEFAULT_KEEP.to_string(),
        n => n.to_string(),
    }
}

/// One app.
pub fn app(app: &App) -> String {
    let mut rows = vec![
        ("app", app.name.clone()),
        ("repository", app.repository.clone()),
        ("branch", branch(app)),
        ("deploy root", deploy_root(app)),
        ("keep", keep(app)),
        ("created", time(app.created_at.as_ref())),
    ];
    if app.release_tags {
        let pattern = match app.release_tag_pattern.as_str() {
            "" => "release_%Y%m%d_%H%M%S",
            p => p,
        };
        rows.push(("release tags", pattern.to_owned()));
    }
    rows.extend(crate::commands::activation::describe(
        app.activation.as_ref(),
    ));
    rows.extend(crate::commands::build::describe(app.build.as_ref()));
    fields(&rows)
}

/// Apps as a table.
pub fn apps(apps: &[App]) -> String {
    if apps.is_empty() {
        return "no apps yet; create one with `slipctl app create NAME --repo PATH`\n".to_owned();
    }
    let mut table = Table::new(&[
        "NAME",
        "REPOSITORY",
        "BRANCH",
        "DEPLOY ROOT",
        "KEEP",
        "CREATED",
    ]);
    for app in apps {
        table.row(vec![
            app.name.clone(),
            app.repository.clone(),
            branch(app),
            deploy_root(app),
            keep(app),
            time(app.created_at.as_ref()),
        ]);
    }
    table.render()
}

/// One environment with its hosts.
pub fn environment(env: &Environment, env_hosts: &[Host]) -> String {
    let mut out = fields(&[
        ("environment", env.name.clone()),
        ("description", env.description.clone()),
        ("created", time(env.created_at.as_ref())),
        (
            "rollout",
            crate::commands::policy::describe(&env.rollout_policy.unwrap_or_default()),
        ),
        (
            "gates",
            crate::commands::gates::describe(&env.gates.clone().unwrap_or_default()),
        ),
        ("hosts", env_hosts.len().to_string()),
    ]);
    if !env_hosts.is_empty() {
        out.push('\n');
        out.push_str(&hosts(env_hosts));
    }
    out
}

/// Environments as a table.
pub fn environments(envs: &[Environment]) -> String {
    if envs.is_empty() {
        return "no environments yet; create one with `slipctl env create NAME`\n".to_owned();
    }
    let mut table = Table::new(&["NAME", "DESCRIPTION", "CREATED"]);
    for env in envs {
        table.row(vec![
            env.name.clone(),
            or_dash(&env.description),
            time(env.created_at.as_ref()),
        ]);
    }
    table.render()
}

fn labels(host: &Host) -> String {
    let mut pairs: Vec<String> = host
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// One host.
pub fn host(host: &Host) -> String {
    fields(&[
        ("host", host.name.clone()),
        ("address", host.address.clone()),
        ("environment", host.environment.clone()),
        ("labels", labels(host)),
        ("created", time(host.created_at.as_ref())),
    ])
}

/// Hosts as a table.
pub fn hosts(hosts: &[Host]) -> String {
    if hosts.is_empty() {
        return "no hosts; add one with `slipctl host add NAME --address HOST:PORT --env ENV`\n"
            .to_owned();
    }
    let mut table = Table::new(&["NAME", "ENV", "ADDRESS", "LABELS", "ADDED"]);
    for host in hosts {
        table.row(vec![
            host.name.clone(),
            host.environment.clone(),
            host.address.clone(),
            or_dash(&labels(host)),
            time(host.created_at.as_ref()),
        ]);
    }
    table.render()
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// One release: its fields, its changes in the manner of `git diff
/// --numstat`, and its manifest when it was asked for.
pub fn release(release: &Release) -> String {
    let mut out = fields(&[
        ("release", release.id.clone()),
        ("app", release.app.clone()),
        ("commit", release.commit.clone()),
        ("ref", release.git_ref.clone()),
        ("message", release.message.clone()),
        ("author", release.author.clone()),
        ("created", time(release.created_at.as_ref())),
        (
            "files",
            format!("{} ({})", release.file_count, bytes(release.total_bytes)),
        ),
        ("previous", or_dash(&release.previous_release)),
        ("mark", super::mark(release.mark(), &release.mark_reason)),
        ("build", or_dash(&release.build_id)),
    ]);
    out.push('\n');
    if release.previous_release.is_empty() {
        out.push_str("first release of the app: every file is new\n");
    } else if release.changes.is_empty() {
        let _ = writeln!(out, "no file changes against {}", release.previous_release);
    } else {
        let added: u64 = release
            .changes
            .iter()
            .map(|c| u64::from(c.lines_added))
            .sum();
        let removed: u64 = release
            .changes
            .iter()
            .map(|c| u64::from(c.lines_removed))
            .sum();
        let _ = writeln!(
            out,
            "changes against {}: {} file{}, +{added} -{removed}",
            release.previous_release,
            release.changes.len(),
            if release.changes.len() == 1 { "" } else { "s" },
        );
        let mut table = Table::new(&[]);
        for change in &release.changes {
            let (kind, path) = match change.kind() {
                ChangeKind::Added => ("A", change.path.clone()),
                ChangeKind::Deleted => ("D", change.path.clone()),
                ChangeKind::Renamed => ("R", format!("{} => {}", change.old_path, change.path)),
                ChangeKind::Modified | ChangeKind::Unspecified => ("M", change.path.clone()),
            };
            table.row(vec![
                format!("+{}", change.lines_added),
                format!("-{}", change.lines_removed),
                kind.to_owned(),
                path,
            ]);
        }
        out.push_str(&table.render_indented(2));
    }
    if !release.manifest.is_empty() {
        out.push('\n');
        let mut table = Table::new(&["MODE", "SIZE", "SHA256", "PATH"]);
        for entry in &release.manifest {
            table.row(vec![
                format!("{:o}", entry.mode),
                bytes(entry.size),
                entry.sha256.get(..16).unwrap_or(&entry.sha256).to_owned(),
                entry.path.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// Releases as a table, newest first.
pub fn releases(releases: &[Release]) -> String {
    if releases.is_empty() {
        return "no releases yet; cut one with `slipctl release create APP` or deploy\n".to_owned();
    }
    let mut table = Table::new(&["ID", "COMMIT", "REF", "FILES", "SIZE", "CREATED", "MESSAGE"]);
    for release in releases {
        table.row(vec![
            release.id.clone(),
            short(&release.commit).to_owned(),
            or_dash(&release.git_ref),
            release.file_count.to_string(),
            bytes(release.total_bytes),
            time(release.created_at.as_ref()),
            release.message.clone(),
        ]);
    }
    table.render()
}

/// Certificates of a PKI directory. The fingerprint is cut to 16 hex digits;
/// `-o json` has it whole.
pub fn certs(certs: &[CertInfo]) -> String {
    if certs.is_empty() {
        return "no certificates; create them with `slipctl pki init --dir DIR`\n".to_owned();
    }
    let any_revoked = certs.iter().any(|c| c.revoked.is_some());
    let mut headers = vec!["FILE", "IDENTITY", "ROLE", "USE", "EXPIRES", "SHA256"];
    if any_revoked {
        headers.push("REVOKED");
    }
    let mut table = Table::new(&headers);
    for cert in certs {
        let role = cert
            .role
            .clone()
            .or_else(|| cert.kind.clone())
            .unwrap_or_else(|| "-".to_owned());
        let identity = match (&cert.identity, cert.kind.as_deref()) {
            (Some(uri), _) => uri.clone(),
            (None, Some("ca")) => cert.subject.clone(),
            (None, _) => "-".to_owned(),
        };
        let usage = if cert.kind.as_deref() == Some("ca") {
            "ca".to_owned()
        } else {
            or_dash(&cert.usages.join(","))
        };
        let expires = if cert.expired {
            format!("{} (expired)", cert.not_after)
        } else {
            cert.not_after.clone()
        };
        let mut row = vec![
            cert.file.clone(),
            identity,
            role,
            usage,
            expires,
            cert.sha256.get(..16).unwrap_or(&cert.sha256).to_owned(),
        ];
        if any_revoked {
            row.push(cert.revoked.clone().unwrap_or_else(|| "-".to_owned()));
        }
        table.row(row);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use slipway_proto::control::v1::FileChange;

    use super::*;

    #[test]
    fn release_changes_read_like_numstat() {
        let release = Release {
            id: "20261123T142400Z-3f2a9c1".into(),
            app: "web".into(),
            commit: "3f2a9c1".repeat(5),
            previous_release: "20261122T100000Z-aaaaaaa".into(),
            changes: vec![
                FileChange {
                    path: "src/app.rs".into(),
                    kind: ChangeKind::Modified as i32,
                    lines_added: 12,
                    lines_removed: 3,
                    ..FileChange::default()
                },
                FileChange {
                    path: "new.txt".into(),
                    old_path: "old.txt".into(),
                    kind: ChangeKind::Renamed as i32,
                    ..FileChange::default()
                },
            ],
            ..Release::default()
        };
        let text = super::release(&release);
        assert!(
            text.contains("changes against 20261122T100000Z-aaaaaaa: 2 files, +12 -3"),
            "{text}"
        );
        assert!(text.contains("  +12  -3  M  src/app.rs\n"), "{text}");
        assert!(
            text.contains("  +0   -0  R  old.txt => new.txt\n"),
            "{text}"
        );
    }
}
