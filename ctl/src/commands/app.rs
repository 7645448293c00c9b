//! `slipctl app`: register and inspect applications.

use std::path::Path;

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    App, CreateAppRequest, GetAppRequest, ListAppsRequest, UpdateAppRequest,
};

use super::{
    activation::ActivationArgs,
    build::{BuildArgs, SetBuildArgs},
    credentials::CredentialArgs,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Applications.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an application and its git repository (admin).
    Create(Box<CreateArgs>),
    /// Change an application's settings (admin); flags not given stay as they are.
    Update(Box<UpdateArgs>),
    /// Declare (or with --no-build, drop) the build the control plane runs
    /// once per commit, whose output directory becomes the release (admin).
    SetBuild(SetBuildArgs),
    /// List the applications.
    List,
    /// Show one application.
    Show {
        /// App name
        name: String,
    },
}

/// Flags of `app create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// App name: lowercase letters, digits and '-', starting with a letter
    pub name: String,
    /// Git repository: a path on the control plane's machine or a file://
    /// URL (a relative path that exists here is made absolute), or a remote
    /// the control plane mirrors: https://, ssh://, user@host:path, git://
    #[arg(long, value_name = "PATH_OR_URL")]
    pub repo: String,
    /// Branch deployed when no ref is given (default: the repository's HEAD)
    #[arg(long)]
    pub branch: Option<String>,
    /// Absolute directory on the hosts holding releases/ and current
    /// (default: the agent's apps directory / NAME)
    #[arg(long, value_name = "/ABS/PATH")]
    pub deploy_root: Option<String>,
    /// Releases to keep on each host (default 5)
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Largest file a release may hold, in bytes; a release with a larger
    /// one is refused when it is cut (default 1073741824, 1 GiB)
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Shared paths, hooks, health check, materialise mode.
    #[command(flatten)]
    pub activation: ActivationArgs,
    /// https credentials.
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Push a tag of the release to the remote after each deployment that
    /// succeeds (a failed push is reported, never fails the deployment)
    #[arg(long)]
    pub release_tags: bool,
    /// The tag's name as a strftime pattern (UTC; default
    /// release_%Y%m%d_%H%M%S)
    #[arg(long, value_name = "PATTERN")]
    pub release_tag_pattern: Option<String>,
    /// The build, if releases are built.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Flags of `app update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// App name
    pub name: String,
    /// Git repository: a path on the control plane's machine, a file:// URL
    /// or a remote (https://, ssh://, user@host:path, git://)
    #[arg(long, value_name = "PATH_OR_URL")]
    pub repo: Option<String>,
    /// Branch deployed when no ref is given
    #[arg(long)]
    pub branch: Option<String>,
    /// Absolute directory on the hosts holding releases/ and current
    #[arg(long, value_name = "/ABS/PATH")]
    pub deploy_root: Option<String>,
    /// Releases to keep on each host
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Largest file a release may hold, in bytes
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Shared paths, hooks, health check, materialise mode.
    #[command(flatten)]
    pub activation: ActivationArgs,
    /// https credentials.
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Push a release tag to the remote after each successful deployment
    #[arg(long, value_name = "true|false")]
    pub release_tags: Option<bool>,
    /// The tag's name as a strftime pattern (UTC)
    #[arg(long, value_name = "PATTERN")]
    pub release_tag_pattern: Option<String>,
}

/// Runs an `app` subcommand.
pub async fn run(command: &AppCommand, conn: &Connection, output: Output) -> anyhow::Result<()> {
    let mut apps = conn.api().await?.apps();
    match command {
        AppCommand::Create(args) => {
            let app = App {
                name: args.name.clone(),
                repository: repository(&args.repo),
                default_branch: args.branch.clone().unwrap_or_default(),
                deploy_root: args.deploy_root.clone().unwrap_or_default(),
                keep_releases: args.keep.unwrap_or_default(),
                created_at: None,
                activation: args.activation.apply(None),
                max_file_bytes: args.max_file_bytes.unwrap_or_default(),
                credentials: args.credentials.read()?,
                release_tags: args.release_tags,
                release_tag_pattern: args.release_tag_pattern.clone().unwrap_or_default(),
                build: args.build.spec(),
            };
            let response = rpc(apps.create_app(CreateAppRequest { app: Some(app) }).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let app = response.app.unwrap_or_default();
                    Ok(output::emit(&format!(
                        "created app {}\n{}",
                        app.name,
                        output::app(&app)
                    ))?)
                }
            }
        }
        AppCommand::SetBuild(args) => {
            let current = current(&mut apps, &args.name).await?;
            let app = App {
                build: args.spec(),
                ..current
            };
            let dropped = app.build.is_none();
            let what = if dropped {
                "build dropped for app"
            } else {
                "build set for app"
            };
            update(&mut apps, app, what, output).await
        }
        AppCommand::Update(args) => {
            let current = current(&mut apps, &args.name).await?;
            let app = App {
                repository: args
                    .repo
                    .as_deref()
                    .map(repository)
                    .unwrap_or(current.repository),
                default_branch: args.branch.clone().unwrap_or(current.default_branch),
                deploy_root: args.deploy_root.clone().unwrap_or(current.deploy_root),
                keep_releases: args.keep.unwrap_or(current.keep_releases),
                max_file_bytes: args.max_file_bytes.unwrap_or(current.max_file_bytes),
                activation: args.activation.apply(current.activation),
                credentials: args.credentials.read()?,
                release_tags: args.release_tags.unwrap_or(current.release_tags),
                release_tag_pattern: args
                    .release_tag_pattern
                    .clone()
                    .unwrap_or(current.release_tag_pattern),
                ..current
            };
            update(&mut apps, app, "updated app", output).await
        }
        AppCommand::List => {
            let response = rpc(apps.list_apps(ListAppsRequest {}).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::apps(&response.apps))?),
            }
        }
        AppCommand::Show { name } => {
            let response = rpc(apps.get_app(GetAppRequest { name: name.clone() }).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::app(
                    &response.app.unwrap_or_default(),
                ))?),
            }
        }
    }
}

/// Stores `app` and prints it after `what` ("updated app").
async fn update(apps: &mut AppClient, app: App, what: &str, output: Output) -> anyhow::Result<()> {
    let response = rpc(apps.update_app(UpdateAppRequest { app: Some(app) }).await)?;
    match output {
        Output::Json => output::json(&response),
        Output::Text => {
            let app = response.app.unwrap_or_default();
            let text = format!("{what} {}\n{}", app.name, output::app(&app));
            Ok(output::emit(&text)?)
        }
    }
}

type AppClient =
    slipway_proto::control::v1::app_service_client::AppServiceClient<tonic::transport::Channel>;

/// The app as stored.
async fn current(apps: &mut AppClient, name: &str) -> anyhow::Result<App> {
    let request = GetAppRequest {
        name: name.to_owned(),
    };
    Ok(rpc(apps.get_app(request).await)?.app.unwrap_or_default())
}

/// A relative path that exists here becomes absolute, since the control
/// plane resolves it from its own working directory. Absolute paths, URLs
/// and paths that do not exist here are passed on as given.
fn repository(repo: &str) -> String {
    let path = Path::new(repo);
    if repo.contains("://") || path.is_absolute() || !path.exists() {
        return repo.to_owned();
    }
    path.canonicalize()
        .map(|abs| abs.display().to_string())
        .unwrap_or_else(|_| repo.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_repository_paths_become_absolute() {
        assert_eq!(
            super::repository("file:///srv/git/web"),
            "file:///srv/git/web"
        );
        assert_eq!(super::repository("/srv/git/web"), "/srv/git/web");
        assert_eq!(super::repository("no/such/dir"), "no/such/dir");
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            super::repository("."),
            here.canonicalize().unwrap().display().to_string()
        );
    }
}
