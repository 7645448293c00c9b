//! What only the leading replica does: resume or end the deployments the
//! last leader left running, then renew agents' certificates, sample
//! health, watch drift, poll sources, apply retention, notify, admit queued
//! deployments and re-check hosts whose outcome is unknown. On the embedded
//! store the only replica leads from the start.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Config, Context, deployment, error, observe};

/// How often agents' certificates are checked for renewal.
const RENEW_CHECK_EVERY: Duration = Duration::from_secs(60 * 60);
/// How often history retention looks for event logs past the retention.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Resumes (or ends interrupted) the deployments that were running when
/// the last leader stopped.
pub async fn take_over(ctx: &Context) -> Result<(), error::Error> {
    let reconciled = deployment::reconcile(ctx).await?;
    if reconciled != deployment::Reconciled::default() {
        tracing::warn!(
            resumed = reconciled.resumed,
            interrupted = reconciled.interrupted,
            "deployments that were running at the last stop: resumed where they stopped, or ended interrupted"
        );
    }
    Ok(())
}

/// The leader's background tasks.
pub struct LeaderWork {
    /// Stopped by aborting.
    aborted: Vec<JoinHandle<()>>,
    /// Stopped by `stop`, waited for.
    sampling: JoinHandle<()>,
    ctx: Context,
}

impl LeaderWork {
    /// Starts every task; `stop` ends those that watch it.
    pub fn start(ctx: &Context, config: &Config, stop: &CancellationToken) -> Self {
        let mut aborted = vec![tokio::spawn(crate::renewal::renew_expiring(
            ctx.clone(),
            RENEW_CHECK_EVERY,
        ))];
        let sampler = observe::sampling::Sampler {
            store: ctx.store.clone(),
            agents: ctx.agents.clone(),
            metrics: ctx.metrics.clone(),
            health: ctx.health.clone(),
            feed: ctx.events.feed().clone(),
        };
        let sampling = tokio::spawn(observe::sampling::run(sampler, stop.clone()));
        if let Some(every) = config.drift_every {
            aborted.push(tokio::spawn(crate::drift::watch::run(ctx.clone(), every)));
        }
        if let Some(every) = ctx.sources.settings().poll_every {
            let (store, sources) = (ctx.store.clone(), ctx.sources.clone());
            aborted.push(tokio::spawn(crate::sources::poll::run(
                store, sources, every,
            )));
        }
        if let Some(retention) = config.history_retention {
            aborted.push(tokio::spawn(crate::history::retention::run(
                ctx.store.clone(),
                retention,
                RETENTION_EVERY,
            )));
        }
        match ctx.notifiers.start_all(&ctx.store, ctx.events.feed()) {
            Ok(subscriptions) => tracing::info!(subscriptions, "notifiers started"),
            Err(err) => {
                tracing::error!(error = %err, "reading the subscriptions failed; no notifications are sent")
            }
        }
        aborted.push(tokio::spawn(deployment::admit::run(
            ctx.clone(),
            stop.clone(),
        )));
        aborted.push(tokio::spawn(deployment::recheck::run(
            ctx.clone(),
            config.recheck_every,
        )));
        Self {
            aborted,
            sampling,
            ctx: ctx.clone(),
        }
    }

    /// Ends every task and waits for them: they hold the store, which must
    /// be closed before the server returns (a new control plane may open the
    /// same directory). `stop` must have been cancelled.
    pub async fn stop(self) {
        for task in self.aborted {
            task.abort();
            let _ = task.await;
        }
        let _ = self.sampling.await;
        self.ctx.notifiers.shutdown().await;
    }
}
