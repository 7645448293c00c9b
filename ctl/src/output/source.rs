//! `slipctl source` as text: the source's fields, one row per environment
//! with the commits it is behind listed under it, and the tags.

use slipway_proto::control::v1::{CommitSummary, FetchOutcome, SourceStatus};

use super::{Table, bytes, duration_ms, fields, or_dash, time};

/// A fetch in one line.
pub fn fetch(fetch: &FetchOutcome) -> String {
    if fetch.ok {
        format!(
            "fetched {} objects, {} in {} at {}\n",
            fetch.objects,
            bytes(fetch.bytes),
            duration_ms(fetch.duration_ms),
            time(fetch.at.as_ref())
        )
    } else {
        format!(
            "fetch failed at {}: {}\n",
            time(fetch.at.as_ref()),
            fetch.error
        )
    }
}

/// The whole status.
pub fn status(status: &SourceStatus) -> String {
    let tip = status.tip.as_ref().map_or_else(
        || "- (not fetched yet)".to_owned(),
        |c| format!("{}  {}", c.short_id, c.subject),
    );
    let last_fetch = match (&status.last_fetch, status.remote) {
        (Some(f), _) => fetch(f).trim_end().to_owned(),
        (None, true) => "never".to_owned(),
        (None, false) => String::new(),
    };
    let mut out = fields(&[
        ("app", status.app.clone()),
        ("repository", status.repository.clone()),
        (
            "kind",
            if status.remote {
                "remote (mirrored)"
            } else {
                "local"
            }
            .to_owned(),
        ),
        (
            "credentials",
            if status.credentials_set { "held" } else { "" }.to_owned(),
        ),
        ("branch", or_dash(&status.default_branch)),
        ("tip", tip),
        ("last fetch", last_fetch),
    ]);
    let mut table = Table::new(&["ENVIRONMENT", "RELEASE", "COMMIT", "BEHIND"]);
    for env in &status.environments {
        let behind = match (env.commit.is_empty(), env.diverged) {
            (true, _) => "never deployed".to_owned(),
            (false, true) => format!("{} (diverged)", env.behind),
            (false, false) => env.behind.to_string(),
        };
        table.row(vec![
            env.environment.clone(),
            or_dash(&env.release_id),
            or_dash(env.commit.get(..7).unwrap_or_default()),
            behind,
        ]);
    }
    if !table.is_empty() {
        out.push('\n');
        out.push_str(&table.render());
    }
    for env in status
        .environments
        .iter()
        .filter(|e| !e.undeployed.is_empty())
    {
        out.push_str(&format!("\nnot yet in {}:\n", env.environment));
        out.push_str(&commits(&env.undeployed, env.behind));
    }
    if !status.tags.is_empty() {
        let names: Vec<&str> = status.tags.iter().map(|t| t.name.as_str()).collect();
        out.push_str(&format!("\ntags: {}\n", names.join(", ")));
    }
    out
}

fn commits(list: &[CommitSummary], behind: u32) -> String {
    let mut table = Table::new(&[]);
    for c in list {
        table.row(vec![
            c.short_id.clone(),
            time(c.time.as_ref()),
            c.author.clone(),
            c.subject.clone(),
        ]);
    }
    let mut out = table.render_indented(2);
    let more = behind as usize - list.len().min(behind as usize);
    if more > 0 {
        out.push_str(&format!("  ... and {more} more\n"));
    }
    out
}
