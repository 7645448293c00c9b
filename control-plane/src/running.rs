//! The deployments this control plane is running, so that a cancel (or a
//! forced lock release) can reach them and wait until they have stopped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why a running deployment was asked to stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopRequest {
    /// Who asked (certificate name), or "control plane".
    pub by: String,
    /// Why, for the record.
    pub reason: String,
    /// Seconds between SIGTERM and SIGKILL of running hooks.
    pub grace_seconds: u32,
}

/// One running deployment's controls.
#[derive(Debug)]
pub struct Control {
    token: CancellationToken,
    request: Mutex<Option<StopRequest>>,
    done: watch::Sender<bool>,
}

impl Control {
    /// Cancelled once someone asked it to stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether it was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The stop request, once there is one.
    pub fn stop_request(&self) -> Option<StopRequest> {
        self.request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks it to stop; the first request wins.
    pub fn stop(&self, request: StopRequest) {
        self.request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(request);
        self.token.cancel();
    }
}

/// The registry of running deployments.
#[derive(Clone, Debug, Default)]
pub struct Running {
    live: Arc<Mutex<HashMap<String, Arc<Control>>>>,
}

impl Running {
    /// Registers a deployment that starts now.
    pub fn register(&self, deployment: &str) -> Arc<Control> {
        let control = Arc::new(Control {
            token: CancellationToken::new(),
            request: Mutex::new(None),
            done: watch::channel(false).0,
        });
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(deployment.to_owned(), control.clone());
        control
    }

    /// Marks a deployment finished (its final event is recorded).
    pub fn finish(&self, deployment: &str) {
        if let Some(control) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(deployment)
        {
            control.done.send_replace(true);
        }
    }

    /// Asks a running deployment to stop and waits until it has; false when
    /// it is not running here.
    pub async fn stop(&self, deployment: &str, request: StopRequest) -> bool {
        let control = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(deployment)
            .cloned();
        let Some(control) = control else {
            return false;
        };
        let mut done = control.done.subscribe();
        control.stop(request);
        // Err: the sender is gone, which also means it finished.
        let _ = done.wait_for(|finished| *finished).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_the_finish_and_the_first_reason_wins() {
        let running = Running::default();
        let control = running.register("dep-1");
        let worker = {
            let (running, control) = (running.clone(), control.clone());
            tokio::spawn(async move {
                control.token().cancelled().await;
                running.finish("dep-1");
            })
        };
        let request = |why: &str| StopRequest {
            by: "ops".into(),
            reason: why.into(),
            grace_seconds: 1,
        };
        assert!(running.stop("dep-1", request("first")).await);
        control.stop(request("second"));
        assert_eq!(control.stop_request().unwrap().reason, "first");
        worker.await.unwrap();
        assert!(!running.stop("dep-1", request("late")).await);
    }
}
