//! The threads that apply store batches. A commit blocks until its batch is
//! durable, so it cannot run on the async runtime; it runs on one of a few
//! threads kept for it instead of the runtime's blocking pool. That pool
//! grows a thread per concurrent caller (a fleet registering at once makes
//! dozens), and every thread that writes the store's pages gets its own
//! allocator arena: with 1,000 agents that fragmentation alone held tens of
//! megabytes. A few threads keep commits overlapping (a flush in flight
//! carries the batches applied meanwhile) without that cost; the backend
//! says how many ([`super::Backend::concurrent_commits`]).

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, OnceLock, mpsc},
};

type Job = Box<dyn FnOnce() + Send>;

/// Starts its threads on first use; they end when it is dropped.
pub(super) struct Writers {
    threads: usize,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Writers {
    /// Commits on `threads` threads (at least one).
    pub(super) fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Runs `job` on a store thread; `None` if it panicked.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(value) = std::panic::catch_unwind(AssertUnwindSafe(job)) {
                let _ = tx.send(value);
            }
        });
        // The threads live as long as the sender, which `self` holds.
        let _ = self.queue.get_or_init(|| start(self.threads)).send(job);
        rx.await.ok()
    }
}

fn start(threads: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..threads {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("store-writer-{n}"))
            .spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return, // The store is gone.
                    }
                }
            })
            .expect("a thread for store commits");
    }
    tx
}

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers")
            .field("threads", &self.threads)
            .field("started", &self.queue.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREADS: usize = 2;

    #[tokio::test]
    async fn a_job_that_panics_answers_none_and_the_threads_go_on() {
        let writers = Writers::new(THREADS);
        assert_eq!(writers.run(|| 1 + 1).await, Some(2));
        assert_eq!(writers.run(|| -> u8 { panic!("a bad batch") }).await, None);
        let many = (0..3 * THREADS).map(|n| writers.run(move || n));
        let answers = futures_util::future::join_all(many).await;
        assert_eq!(answers, (0..3 * THREADS).map(Some).collect::<Vec<_>>());
    }
}
