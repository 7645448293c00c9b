//! `slipctl events`: the live feed of deployment and host state changes.
//! With `--follow` it keeps watching, and after a dropped connection or a
//! "fell behind" it resumes after the last cursor it printed: no gap, no
//! duplicate.

use std::time::Duration;

use crate::exit::Exit;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use slipway_proto::control::v1::{FeedItem, FeedKind, WatchEventsRequest};
use tonic::Code;

use crate::{
    connection::{Connection, RpcError, rpc},
    output::Output,
    output::{self, or_dash, status_name},
};

/// Reconnections in a row without an item before `--follow` gives up.
const RECONNECTS: u32 = 8;

/// A feed kind on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A deployment's status changed
    Deployment,
    /// A host's status within a deployment changed
    Host,
    /// A host's or an app's health changed
    Health,
    /// Drift was found or cleared
    Drift,
}

impl From<KindArg> for FeedKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Deployment => FeedKind::Deployment,
            KindArg::Host => FeedKind::Host,
            KindArg::Health => FeedKind::Health,
            KindArg::Drift => FeedKind::Drift,
        }
    }
}

/// Flags of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep watching for new items, resuming after a dropped connection
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only this app's items
    #[arg(long)]
    pub app: Option<String>,
    /// Only this environment's items
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Only these kinds (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kind: Vec<KindArg>,
    /// Start after this cursor (the last one you saw)
    #[arg(long, value_name = "CURSOR", default_value_t = 0)]
    pub after: u64,
    /// Only what happens from now on
    #[arg(long, requires = "follow", conflicts_with = "after")]
    pub now: bool,
}

/// Prints the feed; with `--follow`, until interrupted.
pub async fn run(args: &EventsArgs, conn: &Connection, output: Output) -> anyhow::Result<Exit> {
    let mut cursor = args.after;
    let mut from_now = args.now;
    let mut quiet = 0;
    loop {
        let request = WatchEventsRequest {
            app: args.app.clone().unwrap_or_default(),
            environment: args.env.clone().unwrap_or_default(),
            kinds: args
                .kind
                .iter()
                .map(|&k| FeedKind::from(k) as i32)
                .collect(),
            after: if from_now { 0 } else { cursor },
            from_now,
            follow: args.follow,
        };
        let watched = async {
            let mut stream = rpc(conn.api().await?.feed().watch_events(request).await)?;
            let mut printed = false;
            while let Some(message) = stream.next().await {
                let message = message?;
                if let Some(item) = message.item {
                    print(&item, output)?;
                    (cursor, from_now, printed) = (item.cursor, false, true);
                }
                if let Some(behind) = message.fell_behind {
                    eprintln!("slipctl: {}; resuming", behind.reason);
                    (cursor, from_now) = (behind.resume_after, false);
                }
            }
            anyhow::Ok(printed)
        };
        match watched.await {
            Ok(_) if !args.follow => return Ok(Exit::Success),
            Ok(true) => quiet = 0,
            Ok(false) => quiet += 1,
            Err(err) if args.follow && is_transient(&err) => {
                eprintln!("slipctl: {err}; reconnecting after cursor {cursor}");
                quiet += 1;
            }
            Err(err) => return Err(err),
        }
        if quiet > RECONNECTS {
            anyhow::bail!("the feed ended {RECONNECTS} times in a row without an item");
        }
        tokio::time::sleep(Duration::from_millis(200) * quiet).await;
    }
}

/// Whether a failed watch is worth resuming: the connection failed, not
/// the request.
fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let code = cause
            .downcast_ref::<RpcError>()
            .map(|e| e.0.code())
            .or_else(|| {
                cause
                    .downcast_ref::<tonic::Status>()
                    .map(tonic::Status::code)
            });
        matches!(code, Some(Code::Unavailable | Code::Unknown))
            || cause.downcast_ref::<tonic::transport::Error>().is_some()
    })
}

fn print(item: &FeedItem, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return output::json_line(item);
    }
    let kind = item.kind().as_str_name().trim_start_matches("FEED_KIND_");
    let target = format!("{}/{}", or_dash(&item.app), or_dash(&item.environment));
    let line = format!(
        "{:>6}  {}  {:<10}  {:<16}  {:<14}  {:<10}  {:<11}  {}",
        item.cursor,
        output::time(item.time.as_ref()),
        kind.to_lowercase(),
        target,
        or_dash(&item.deployment_id),
        or_dash(&item.host),
        status_name(item.status()),
        item.message
    );
    output::emit(line.trim_end())?;
    Ok(())
}
