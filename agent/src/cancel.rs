//! Cancelling a running operation (CancelOperation): a token every step
//! checks before it starts and every hook or health command waits on, with
//! the grace its process group gets between SIGTERM and SIGKILL.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

/// Time between SIGTERM and SIGKILL when a cancel says 0.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The cancel switch of one operation; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    token: CancellationToken,
    grace: Arc<Mutex<Option<Duration>>>,
}

impl Cancel {
    /// A switch nobody can flip: for the steps that restore the previous
    /// release after a cancel, which must run to their end.
    pub fn never() -> Self {
        Self::default()
    }

    /// Cancels the operation; a running command gets SIGTERM, then SIGKILL
    /// after `grace`. A second cancel changes nothing: the first grace holds.
    pub fn cancel(&self, grace: Duration) {
        {
            let mut set = self.grace.lock().unwrap_or_else(|e| e.into_inner());
            set.get_or_insert(grace);
        }
        self.token.cancel();
    }

    /// Whether the operation was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the operation is cancelled.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Time a cancelled command's group gets between SIGTERM and SIGKILL.
    pub fn grace(&self) -> Duration {
        self.grace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(DEFAULT_GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_cancel_decides_the_grace() {
        let cancel = Cancel::default();
        let clone = cancel.clone();
        assert!(!clone.is_cancelled());
        assert_eq!(clone.grace(), DEFAULT_GRACE);
        let waiter = tokio::spawn(async move { clone.cancelled().await });
        cancel.cancel(Duration::from_secs(2));
        cancel.cancel(Duration::from_secs(7));
        waiter.await.unwrap();
        assert!(cancel.is_cancelled());
        assert_eq!(cancel.grace(), Duration::from_secs(2));
        assert!(!Cancel::never().is_cancelled());
    }
}
