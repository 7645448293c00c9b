//! What preparing a release reports while it runs (fetch progress, build
//! output): notes sent on a bounded channel to the deployment that waits
//! for the release, which records them as its events; nothing when no one
//! listens. Also carries the cancel of that deployment.

use slipway_proto::control::v1::LogLevel;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Notes a deployment may have in flight before the sender waits.
pub const NOTES: usize = 256;

/// One note: a line of a stage of the preparation.
#[derive(Clone, Debug)]
pub struct Note {
    /// "fetch" or "build".
    pub stage: &'static str,
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// For a line of build output: "stdout" or "stderr".
    pub output: &'static str,
}

impl Note {
    /// An info note of `stage`.
    pub fn info(stage: &'static str, message: String) -> Self {
        Self {
            stage,
            level: LogLevel::Info,
            message,
            output: "",
        }
    }
}

/// Where notes go, and the cancel of whoever waits for them.
#[derive(Clone, Default)]
pub struct Progress {
    tx: Option<mpsc::Sender<Note>>,
    cancel: CancellationToken,
}

impl Progress {
    /// Notes to nobody, never cancelled.
    pub fn none() -> Self {
        Self::default()
    }

    /// Notes to the returned receiver; cancelled with `cancel`.
    pub fn channel(cancel: CancellationToken) -> (Self, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(NOTES);
        (
            Self {
                tx: Some(tx),
                cancel,
            },
            rx,
        )
    }

    /// Sends a note, waiting while the channel is full (the listener
    /// records them as fast as the store takes them).
    pub async fn note(&self, note: Note) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(note).await;
        }
    }

    /// Sends a note from blocking code; dropped when the channel is full.
    pub fn try_note(&self, note: Note) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(note);
        }
    }

    /// Whether someone listens (a deployment records the notes).
    pub fn listened(&self) -> bool {
        self.tx.is_some()
    }

    /// Cancelled when the deployment waiting for the release is.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }
}
