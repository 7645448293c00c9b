//! What the deployments that wait before they start share with the rest of
//! the control plane: a gate that serialises every change of a waiting
//! deployment (queueing, admission, cancel), and the signal that wakes the
//! admission task when a lock may have been freed or a waiting deployment
//! changed.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard, Notify};

/// The gate and the wake-up signal of the waiting deployments.
#[derive(Clone, Default)]
pub struct Waiting {
    wake: Arc<Notify>,
    gate: Arc<Mutex<()>>,
}

impl Waiting {
    /// Asks the admission task for a pass; a wake-up while it is busy is
    /// kept for its next wait, so none is lost.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next wake-up.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Holds the gate: no other change of a waiting deployment meanwhile.
    pub async fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().await
    }
}
