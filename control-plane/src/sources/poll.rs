//! The poller: every remote source fetched on the configured interval, one
//! app after the other, each outcome recorded as the app's last fetch.

use std::time::Duration;

use slipway_proto::control::v1::App;

use super::{Location, Sources};
use crate::store::{Store, catalog};

/// Fetches every remote source every `every`, the first time one interval
/// after the start, for as long as it runs.
pub async fn run(store: Store, sources: Sources, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let apps: Vec<App> = match catalog::list(&store) {
            Ok(apps) => apps,
            Err(err) => {
                tracing::warn!(error = %err, "listing apps to poll their sources failed");
                continue;
            }
        };
        for app in apps {
            if !matches!(
                Location::parse(&app.repository),
                Ok(Location::Remote { .. })
            ) {
                continue;
            }
            // A failure is recorded as the app's last fetch and logged.
            let _ = sources.fetch(&app).await;
        }
    }
}
