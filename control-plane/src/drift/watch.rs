//! The drift check on an interval: every environment, every app, each
//! answer kept as the host's latest finding and each drifted host logged.

use std::time::Duration;

use slipway_proto::control::v1::DriftState;

use crate::{Context, catalog, error::Error};

/// Checks every environment every `every`, the first time one interval
/// after the start, for as long as it runs.
pub async fn run(ctx: Context, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = once(&ctx).await {
            tracing::warn!(error = %slipway_proto::daemon::chain(&err), "the drift check failed");
        }
    }
}

/// Checks every environment once; returns how many hosts drifted (per app).
pub async fn once(ctx: &Context) -> Result<u32, Error> {
    let mut drifted = 0;
    for environment in catalog::environments(&ctx.store)? {
        let report = super::check(ctx, &environment.name, "").await?;
        for entry in &report.hosts {
            if entry.state() != DriftState::Drifted {
                continue;
            }
            let counts = entry.counts.unwrap_or_default();
            tracing::warn!(
                environment = %entry.environment,
                app = %entry.app,
                host = %entry.host,
                expected = %entry.expected_release,
                current = %entry.current_release,
                modified = counts.modified,
                missing = counts.missing,
                added = counts.added,
                unknown_releases = entry.unknown_releases.len(),
                "drift found"
            );
        }
        drifted += report.drifted;
    }
    Ok(drifted)
}
