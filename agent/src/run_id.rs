//! Run ids: the identity of one run of an operation, put on every event it
//! emits so a client deduplicates by (run id, sequence). Unique across agent
//! restarts: a random boot id chosen when the agent starts, plus a counter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out the run ids of this agent process.
#[derive(Debug)]
pub struct RunIds {
    // Random, not the kernel's boot id: two agent processes on one host
    // boot (a restart) must differ.
    boot: String,
    next: AtomicU64,
}

impl RunIds {
    /// A new boot id; the first run is numbered 1.
    pub fn new() -> Self {
        Self {
            boot: format!("{:016x}", rand::random::<u64>()),
            next: AtomicU64::new(1),
        }
    }

    /// The id of a new run: `<boot id>-<n>`.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_per_run_and_per_process() {
        let (before, now) = (RunIds::new(), RunIds::new());
        let (a, b) = (now.next(), now.next());
        assert_ne!(a, b);
        assert!(a.ends_with("-1") && b.ends_with("-2"), "{a} {b}");
        let earlier = before.next();
        assert_ne!(earlier, a, "another process, another boot id");
    }
}
