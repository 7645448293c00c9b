//! Where an app's source stands against what each environment runs: the
//! default branch's tip in the mirror (or the local repository), each
//! environment's deployed commit, the commits it is behind (bounded list)
//! and the tags. Blocking: callers run it in `spawn_blocking`.

use git2::{Oid, Repository, Sort};
use slipway_proto::control::v1::{CommitSummary, EnvironmentSource, SourceTag};

/// Most commits counted when walking from a tip (a bound on the work a
/// huge history can cause; `behind` stops there).
pub const MAX_WALK: u32 = 100_000;
/// Most tags listed.
pub const MAX_TAGS: usize = 200;

/// What one environment last deployed with success.
#[derive(Clone, Debug, Default)]
pub struct Deployed {
    /// Environment name.
    pub environment: String,
    /// Release id, or empty.
    pub release_id: String,
    /// Its commit, or empty.
    pub commit: String,
}

/// The tip, the environments against it and the tags.
#[derive(Debug, Default)]
pub struct Standing {
    /// The default branch's tip; None before the first fetch.
    pub tip: Option<CommitSummary>,
    /// Each environment.
    pub environments: Vec<EnvironmentSource>,
    /// The tags, by name.
    pub tags: Vec<SourceTag>,
}

/// Computes the standing of `repo` for `branch` (empty: HEAD), listing at
/// most `max_commits` undeployed commits per environment.
pub fn standing(
    repo: &Repository,
    branch: &str,
    deployed: Vec<Deployed>,
    max_commits: usize,
) -> Result<Standing, git2::Error> {
    let spec = if branch.is_empty() { "HEAD" } else { branch };
    let tip = repo
        .revparse_single(spec)
        .and_then(|o| o.peel_to_commit())
        .ok();
    let mut environments = Vec::with_capacity(deployed.len());
    for env in deployed {
        let mut entry = EnvironmentSource {
            environment: env.environment,
            release_id: env.release_id,
            commit: env.commit,
            ..Default::default()
        };
        if let Some(tip) = &tip {
            behind(repo, tip.id(), &mut entry, max_commits)?;
        }
        environments.push(entry);
    }
    Ok(Standing {
        tip: tip.as_ref().map(summary),
        environments,
        tags: tags(repo)?,
    })
}

/// The environments as recorded, when there is no tip to compare with.
pub fn without_tip(deployed: Vec<Deployed>) -> Vec<EnvironmentSource> {
    deployed
        .into_iter()
        .map(|env| EnvironmentSource {
            environment: env.environment,
            release_id: env.release_id,
            commit: env.commit,
            ..Default::default()
        })
        .collect()
}

/// Fills `behind`, `undeployed` and `diverged` of `entry` against `tip`.
fn behind(
    repo: &Repository,
    tip: Oid,
    entry: &mut EnvironmentSource,
    max_commits: usize,
) -> Result<(), git2::Error> {
    let deployed = Oid::from_str(&entry.commit)
        .ok()
        .filter(|oid| repo.find_commit(*oid).is_ok());
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    walk.push(tip)?;
    match deployed {
        Some(oid) => {
            walk.hide(oid)?;
            entry.diverged = oid != tip && !repo.graph_descendant_of(tip, oid)?;
        }
        // Deployed from a commit the repository no longer has.
        None if !entry.commit.is_empty() => entry.diverged = true,
        None => {}
    }
    for oid in walk.take(MAX_WALK as usize) {
        let oid = oid?;
        entry.behind += 1;
        if entry.undeployed.len() < max_commits {
            entry.undeployed.push(summary(&repo.find_commit(oid)?));
        }
    }
    Ok(())
}

fn summary(commit: &git2::Commit<'_>) -> CommitSummary {
    let sha = commit.id().to_string();
    let author = commit.author();
    let subject = String::from_utf8_lossy(commit.message_bytes())
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(slipway_proto::limits::DESCRIPTION)
        .collect();
    CommitSummary {
        short_id: sha[..7].to_owned(),
        sha,
        subject,
        author: format!(
            "{} <{}>",
            String::from_utf8_lossy(author.name_bytes()),
            String::from_utf8_lossy(author.email_bytes())
        ),
        time: Some(pbjson_types::Timestamp {
            seconds: commit.time().seconds(),
            nanos: 0,
        }),
    }
}

fn tags(repo: &Repository) -> Result<Vec<SourceTag>, git2::Error> {
    let names = repo.tag_names(None)?;
    let mut tags = Vec::new();
    for name in names.iter().flatten().flatten().take(MAX_TAGS) {
        let commit = repo
            .revparse_single(&format!("refs/tags/{name}"))
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id().to_string())
            .unwrap_or_default();
        tags.push(SourceTag {
            name: name.to_owned(),
            commit,
        });
    }
    Ok(tags)
}
