//! `slipctl release`: cut releases from git and inspect them.

use clap::{Args, Subcommand};
use slipway_proto::control::v1::{
    CreateReleaseRequest, GetReleaseRequest, ListReleasesRequest, MarkReleaseRequest,
    PinReleaseRequest, ReleaseMark,
};

use crate::{
    connection::{Connection, rpc},
    output,
    output::Output,
};

/// Releases.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Cut a release of APP from a git ref; a commit that already has one
    /// returns it (deployer).
    Create(CreateArgs),
    /// List an app's releases, newest first.
    List(ListArgs),
    /// Show one release and its file changes against the previous one.
    Show(ShowArgs),
    /// Protect a release from retention on every host of an environment
    /// (deployer); --unpin lifts that.
    Pin(PinArgs),
    /// Mark a release bad (a rollback never goes back to it), good, or clear
    /// the mark (deployer).
    Mark(MarkArgs),
}

/// Flags of `release mark`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("verdict").required(true).args(["bad", "good", "clear"]))]
pub struct MarkArgs {
    /// App name
    pub app: String,
    /// Release id
    pub id: String,
    /// Known bad: skipped when a rollback resolves the previous release
    #[arg(long)]
    pub bad: bool,
    /// Known good
    #[arg(long)]
    pub good: bool,
    /// Remove the mark
    #[arg(long)]
    pub clear: bool,
    /// Why, recorded with the mark and your name
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub reason: Option<String>,
}

impl MarkArgs {
    /// The mark the flags ask for.
    pub fn mark(&self) -> ReleaseMark {
        if self.bad {
            ReleaseMark::Bad
        } else if self.good {
            ReleaseMark::Good
        } else {
            ReleaseMark::Unspecified
        }
    }
}

/// Flags of `release pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// App name
    pub app: String,
    /// Release id
    pub id: String,
    /// Environment whose hosts keep the release
    #[arg(long = "env", value_name = "ENV")]
    pub environment: String,
    /// Lift the pin instead
    #[arg(long)]
    pub unpin: bool,
}

/// Flags of `release create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// App name
    pub app: String,
    /// Branch, tag or commit (default: the app's branch)
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Build it with the app's build (run once per commit and build spec;
    /// a cached build is reused) and print the outcome and log tail; deploys
    /// nothing
    #[arg(long)]
    pub build: bool,
}

/// Flags of `release list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// App name
    pub app: String,
    /// At most this many releases (default: all)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// Flags of `release show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// App name
    pub app: String,
    /// Release id
    pub id: String,
    /// Also list every file: mode, size, content hash
    #[arg(long)]
    pub manifest: bool,
}

/// Runs a `release` subcommand.
pub async fn run(
    command: &ReleaseCommand,
    conn: &Connection,
    output: Output,
) -> anyhow::Result<()> {
    let mut releases = conn.api().await?.releases();
    match command {
        ReleaseCommand::Create(args) => {
            let request = CreateReleaseRequest {
                app: args.app.clone(),
                git_ref: args.git_ref.clone().unwrap_or_default(),
                build: args.build,
            };
            let response = rpc(releases.create_release(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let release = response.release.unwrap_or_default();
                    let verb = if response.created {
                        "created release"
                    } else {
                        "this commit already has release"
                    };
                    let built = match &response.build {
                        Some(build) => super::build::outcome(build, response.built),
                        None => String::new(),
                    };
                    let text = format!(
                        "{built}{verb} {}\n{}",
                        release.id,
                        output::release(&release)
                    );
                    Ok(output::emit(&text)?)
                }
            }
        }
        ReleaseCommand::List(args) => {
            let request = ListReleasesRequest {
                app: args.app.clone(),
                limit: args.limit.unwrap_or_default(),
            };
            let response = rpc(releases.list_releases(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::releases(&response.releases))?),
            }
        }
        ReleaseCommand::Pin(args) => {
            let request = PinReleaseRequest {
                app: args.app.clone(),
                id: args.id.clone(),
                environment: args.environment.clone(),
                pinned: !args.unpin,
            };
            let response = rpc(releases.pin_release(request).await)?;
            let failed: Vec<String> = response
                .hosts
                .iter()
                .filter(|h| !h.ok)
                .map(|h| format!("{}: {}", h.host, h.error))
                .collect();
            match output {
                Output::Json => output::json(&response)?,
                Output::Text => {
                    let mut table = output::Table::new(&["HOST", "PINNED", "ERROR"]);
                    for host in &response.hosts {
                        let state = if !host.ok {
                            "no"
                        } else if args.unpin {
                            "unpinned"
                        } else {
                            "yes"
                        };
                        table.row(vec![
                            host.host.clone(),
                            state.to_owned(),
                            host.error.clone(),
                        ]);
                    }
                    output::emit(&table.render())?;
                }
            }
            anyhow::ensure!(
                failed.is_empty(),
                "{} hosts did not record it: {}",
                failed.len(),
                failed.join("; ")
            );
            Ok(())
        }
        ReleaseCommand::Mark(args) => {
            let request = MarkReleaseRequest {
                app: args.app.clone(),
                release_id: args.id.clone(),
                mark: args.mark() as i32,
                reason: args.reason.clone().unwrap_or_default(),
            };
            let response = rpc(releases.mark_release(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => {
                    let release = response.release.unwrap_or_default();
                    let text = match output::mark(release.mark(), &release.mark_reason) {
                        mark if mark.is_empty() => format!("cleared the mark of {}", release.id),
                        mark => format!("marked {} {mark}", release.id),
                    };
                    Ok(output::emit(&text)?)
                }
            }
        }
        ReleaseCommand::Show(args) => {
            let request = GetReleaseRequest {
                app: args.app.clone(),
                id: args.id.clone(),
                include_manifest: args.manifest,
            };
            let response = rpc(releases.get_release(request).await)?;
            match output {
                Output::Json => output::json(&response),
                Output::Text => Ok(output::emit(&output::release(
                    &response.release.unwrap_or_default(),
                ))?),
            }
        }
    }
}
