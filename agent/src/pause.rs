//! Test pause points: `SLIPWAY_AGENT_PAUSE_AT=materialise:<percent>` makes the
//! agent stop for good once it has placed that share of a release's files, so
//! a crash test can SIGKILL it at a known step instead of racing a timer.
//! Unset (always, outside tests), it costs one branch per progress report.

use std::sync::OnceLock;

/// The environment variable naming the pause point.
pub const VAR: &str = "SLIPWAY_AGENT_PAUSE_AT";

/// Where to stop: after `percent` of the files of a release are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PausePoint {
    percent: usize,
}

impl PausePoint {
    /// Parses `materialise:<percent>` (1-99).
    pub fn parse(value: &str) -> Option<Self> {
        let percent = value.strip_prefix("materialise:")?.parse().ok()?;
        (1..100).contains(&percent).then_some(Self { percent })
    }

    /// The pause point set for this process, read once.
    pub fn configured() -> Option<Self> {
        static POINT: OnceLock<Option<PausePoint>> = OnceLock::new();
        *POINT.get_or_init(|| {
            let value = std::env::var(VAR).ok()?;
            let point = Self::parse(&value);
            match point {
                Some(_) => {
                    tracing::warn!("{VAR}={value}: this agent stops mid-deploy (tests only)")
                }
                None => tracing::warn!("{VAR}={value} is not materialise:<1-99>; ignored"),
            }
            point
        })
    }

    /// Whether placing file `done` of `total` reaches the pause point.
    pub fn reached(self, done: usize, total: usize) -> bool {
        done * 100 >= self.percent * total && (done - 1) * 100 < self.percent * total
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
    fn parses_only_a_materialise_share() {
        assert_eq!(
            PausePoint::parse("materialise:50"),
            Some(PausePoint { percent: 50 })
        );
        assert_eq!(PausePoint::parse("materialise:0"), None);
        assert_eq!(PausePoint::parse("materialise:100"), None);
        assert_eq!(PausePoint::parse("switch:50"), None);
        assert_eq!(PausePoint::parse(""), None);
    }

    #[test]
    fn is_reached_by_exactly_one_file() {
        let point = PausePoint { percent: 50 };
        let hits: Vec<usize> = (1..=7).filter(|&done| point.reached(done, 7)).collect();
        assert_eq!(hits, vec![4]);
        let hits: Vec<usize> = (1..=6000)
            .filter(|&done| point.reached(done, 6000))
            .collect();
        assert_eq!(hits, vec![3000]);
    }
}
