//! The requests that stop or clear rather than build: CancelOperation and
//! ResetFencing.

use std::{sync::Arc, time::Duration};

use super::Agent;
use crate::{
    error::{Error, blocking},
    fencing::Fence,
    layout::AppRoot,
    operations::OperationError,
    release,
};

impl Agent {
    /// Cancels the operation of `deployment_id` running on the app and
    /// waits until nothing of it runs any more (its hook or check stopped,
    /// `current` switched back if it had been switched, the outcome
    /// journaled). Returns whether it ended because of the cancel (false
    /// when none was running, or when it had already passed its health
    /// check and finished), and the app's `current` release after it.
    pub async fn cancel(
        self: &Arc<Self>,
        app: AppRoot,
        deployment_id: String,
        grace: Duration,
        fence: impl Into<Fence>,
    ) -> Result<(bool, Option<String>), Error> {
        let fence = fence.into();
        let journal = self.journal(&app).await?;
        Self::check_fence(&journal, &app, &fence).await?;
        // Only a cancel that stops something records its token: one for a
        // deployment this host does not run must leave no trace.
        let running = self.operations.running_on(app.root()).as_deref() == Some(&deployment_id);
        if running {
            Self::fence(&journal, &app, &fence).await?;
        }
        let cancelled = match self.operations.cancel(app.root(), &deployment_id, grace) {
            Some(log) => {
                tracing::info!(app = app.name(), deployment = %deployment_id, ?grace, "cancelling");
                let last = log.finished().await;
                last.result.is_some_and(|r| !r.success)
            }
            None => false,
        };
        let current = blocking(move || release::current_release(&app)).await?;
        Ok((cancelled, current))
    }

    /// Forgets the fencing token and epoch recorded for `app`; refused
    /// while an operation of the app runs. Returns what was recorded.
    pub async fn reset_fencing(self: &Arc<Self>, app: AppRoot) -> Result<(u64, String), Error> {
        let journal = self.journal(&app).await?;
        if let Some(running) = self.operations.running_on(app.root()) {
            return Err(OperationError::Busy {
                app: app.name().to_owned(),
                running,
            }
            .into());
        }
        let name = app.name().to_owned();
        let previous = blocking(move || {
            journal.update(|data| {
                let previous = (data.fencing_token, std::mem::take(&mut data.fencing_epoch));
                data.fencing_token = 0;
                Ok::<_, Error>(previous)
            })
        })
        .await?;
        tracing::warn!(app = %name, previous_token = previous.0, previous_epoch = %previous.1, "fencing state reset");
        Ok(previous)
    }
}
