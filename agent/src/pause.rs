//! Test pause points, so a crash test can SIGKILL the agent at a known step
//! instead of racing a timer. `SLIPWAY_AGENT_PAUSE_AT=materialise:<percent>`
//! makes the agent stop for good once it has placed that share of a
//! release's files; `SLIPWAY_AGENT_PAUSE_AT=finished` once an operation's
//! outcome is journaled, before its final event is sent (it logs
//! [`FINISHED_LINE`] there). Unset (always, outside tests), it costs one
//! branch per progress report and per operation.

use std::sync::OnceLock;

/// The environment variable naming the pause point.
pub const VAR: &str = "SLIPWAY_AGENT_PAUSE_AT";

/// What the agent logs when it holds at the `finished` point.
pub const FINISHED_LINE: &str = "paused after journaling the outcome";

/// Where to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausePoint {
    /// After `percent` of the files of a release are placed.
    Materialise {
        /// 1-99.
        percent: usize,
    },
    /// After an operation's outcome is journaled, before its final event.
    Finished,
}

impl PausePoint {
    /// Parses `materialise:<percent>` (1-99) or `finished`.
    pub fn parse(value: &str) -> Option<Self> {
        if value == "finished" {
            return Some(Self::Finished);
        }
        let percent = value.strip_prefix("materialise:")?.parse().ok()?;
        (1..100)
            .contains(&percent)
            .then_some(Self::Materialise { percent })
    }

    /// The pause point set for this process, read once.
    pub fn configured() -> Option<Self> {
        static POINT: OnceLock<Option<PausePoint>> = OnceLock::new();
        *POINT.get_or_init(|| {
            let value = std::env::var(VAR).ok()?;
            let point = Self::parse(&value);
            match point {
                Some(_) => {
                    tracing::warn!("{VAR}={value}: this agent stops mid-operation (tests only)")
                }
                None => {
                    tracing::warn!("{VAR}={value} is not materialise:<1-99> or finished; ignored")
                }
            }
            point
        })
    }

    /// Whether placing file `done` of `total` reaches the pause point.
    pub fn reached(self, done: usize, total: usize) -> bool {
        match self {
            Self::Materialise { percent } => {
                done * 100 >= percent * total && (done - 1) * 100 < percent * total
            }
            Self::Finished => false,
        }
    }
}

/// Holds the operation of `deployment_id` for good when the `finished`
/// pause point is set: its outcome is journaled, its final event never
/// sent.
pub async fn at_finish(deployment_id: &str) {
    if PausePoint::configured() == Some(PausePoint::Finished) {
        tracing::warn!(deployment = %deployment_id, "{FINISHED_LINE} ({VAR})");
        std::future::pending::<()>().await;
    }
}

/// Blocks the calling (blocking-pool) thread until the process is killed.
pub fn hold() -> ! {
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::PausePoint;

    #[test]
    fn parses_a_materialise_share_or_finished() {
        assert_eq!(
            PausePoint::parse("materialise:50"),
            Some(PausePoint::Materialise { percent: 50 })
        );
        assert_eq!(PausePoint::parse("finished"), Some(PausePoint::Finished));
        assert_eq!(PausePoint::parse("materialise:0"), None);
        assert_eq!(PausePoint::parse("materialise:100"), None);
        assert_eq!(PausePoint::parse("switch:50"), None);
        assert_eq!(PausePoint::parse(""), None);
    }

    #[test]
    fn is_reached_by_exactly_one_file() {
        let point = PausePoint::Materialise { percent: 50 };
        let hits: Vec<usize> = (1..=7).filter(|&done| point.reached(done, 7)).collect();
        assert_eq!(hits, vec![4]);
        let hits: Vec<usize> = (1..=6000)
            .filter(|&done| point.reached(done, 6000))
            .collect();
        assert_eq!(hits, vec![3000]);
    }
}
