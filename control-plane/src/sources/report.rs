//! The source status an operator reads: the app's repository (masked), the
//! held credentials' presence, the last fetch, and [`super::status`]
//! computed against what each environment last deployed with success.

use slipway_proto::control::v1::{App, Environment, SourceStatus};

use super::{
    Location, Sources,
    status::{self, Deployed},
};
use crate::{
    error::Error,
    store::{Store, catalog, deployments, releases},
};

/// Undeployed commits listed per environment unless asked.
pub const DEFAULT_MAX_COMMITS: u32 = 20;
/// Most undeployed commits listed per environment.
pub const MAX_COMMITS: u32 = 200;

/// The status of `app`'s source.
pub async fn status(
    store: &Store,
    sources: &Sources,
    app_name: &str,
    max_commits: u32,
) -> Result<SourceStatus, Error> {
    slipway_proto::validate::name("app", app_name)?;
    let app: App =
        catalog::get(store, app_name)?.ok_or_else(|| Error::not_found("app", app_name))?;
    let max_commits = match max_commits {
        0 => DEFAULT_MAX_COMMITS,
        n => n.min(MAX_COMMITS),
    } as usize;
    let mut deployed = Vec::new();
    let environments: Vec<Environment> = catalog::list(store)?;
    for env in environments {
        let mut entry = Deployed {
            environment: env.name.clone(),
            ..Default::default()
        };
        if let Some((_, release_id)) = deployments::last_succeeded(store, &app.name, &env.name)? {
            entry.commit = releases::get(store, &app.name, &release_id)?
                .map(|r| r.commit)
                .unwrap_or_default();
            entry.release_id = release_id;
        }
        deployed.push(entry);
    }
    let location = Location::parse(&app.repository).ok();
    let remote = location.as_ref().is_some_and(Location::is_remote);
    let vault = sources.vault();
    let last_fetch = if remote {
        vault.last_fetch(&app.name).ok().flatten()
    } else {
        None
    };
    let credentials_set = vault.credentials(&app.name).ok().flatten().is_some();
    let repository = sources.local_repository(&app);
    let branch = app.default_branch.clone();
    let standing = tokio::task::spawn_blocking(move || {
        let repo = if remote {
            git2::Repository::open_bare(&repository).ok()
        } else {
            crate::git::open(&repository).ok()
        };
        match repo {
            Some(repo) => status::standing(&repo, &branch, deployed, max_commits),
            // Not fetched yet: the environments without a tip.
            None => Ok(status::Standing {
                environments: status::without_tip(deployed),
                ..Default::default()
            }),
        }
    })
    .await
    .map_err(|_| Error::Precondition("reading the source failed".into()))?
    .map_err(crate::git::GitError::Read)?;
    Ok(SourceStatus {
        app: app.name.clone(),
        repository: super::location::masked(&app.repository),
        remote,
        credentials_set,
        default_branch: app.default_branch.clone(),
        tip: standing.tip,
        last_fetch,
        environments: standing.environments,
        tags: standing.tags,
    })
}
