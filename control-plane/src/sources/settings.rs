//! How the control plane fetches remote sources: the `[sources]` table of
//! its configuration, with defaults and bounds.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// Seconds between polls of every remote unless configured.
pub const DEFAULT_POLL_SECONDS: u64 = 300;
/// Longest fetch unless configured.
pub const DEFAULT_FETCH_TIMEOUT_SECONDS: u64 = 300;
/// Most bytes one fetch may receive unless configured (2 GiB).
pub const DEFAULT_MAX_FETCH_BYTES: u64 = 2 << 30;

/// The fetch settings, checked.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// How often every remote source is fetched; None: only on demand
    /// (before a release cut, `slipctl source fetch`).
    pub poll_every: Option<Duration>,
    /// A fetch taking longer fails.
    pub timeout: Duration,
    /// A fetch receiving more bytes fails.
    pub max_bytes: u64,
    /// Extra CA certificates (PEM) trusted for https sources, besides the
    /// system's.
    pub https_ca_file: Option<PathBuf>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            poll_every: Some(Duration::from_secs(DEFAULT_POLL_SECONDS)),
            timeout: Duration::from_secs(DEFAULT_FETCH_TIMEOUT_SECONDS),
            max_bytes: DEFAULT_MAX_FETCH_BYTES,
            https_ca_file: None,
        }
    }
}

/// The `[sources]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    /// See [`FetchSettings::poll_every`], in seconds; 0: off.
    pub poll_seconds: Option<u64>,
    /// See [`FetchSettings::timeout`], in seconds (at least 1).
    pub fetch_timeout_seconds: Option<u64>,
    /// See [`FetchSettings::max_bytes`].
    pub max_fetch_bytes: Option<u64>,
    /// See [`FetchSettings::https_ca_file`].
    pub https_ca_file: Option<PathBuf>,
}

impl SourcesFile {
    /// Fills defaults; a zero timeout or byte bound is refused.
    pub fn finish(self) -> Result<FetchSettings, &'static str> {
        if self.fetch_timeout_seconds == Some(0) {
            return Err("sources.fetch_timeout_seconds: must be at least 1");
        }
        if self.max_fetch_bytes == Some(0) {
            return Err("sources.max_fetch_bytes: must be at least 1");
        }
        Ok(FetchSettings {
            poll_every: match self.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            timeout: Duration::from_secs(
                self.fetch_timeout_seconds
                    .unwrap_or(DEFAULT_FETCH_TIMEOUT_SECONDS),
            ),
            max_bytes: self.max_fetch_bytes.unwrap_or(DEFAULT_MAX_FETCH_BYTES),
            https_ca_file: self.https_ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_zero_poll_is_off_and_zero_bounds_are_refused() {
        let settings = SourcesFile::default().finish().unwrap();
        assert_eq!(settings.poll_every, Some(Duration::from_secs(300)));
        assert_eq!(settings.max_bytes, 2 << 30);
        let off = SourcesFile {
            poll_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(off.finish().unwrap().poll_every, None);
        for bad in [
            SourcesFile {
                fetch_timeout_seconds: Some(0),
                ..Default::default()
            },
            SourcesFile {
                max_fetch_bytes: Some(0),
                ..Default::default()
            },
        ] {
            assert!(bad.finish().is_err());
        }
    }
}
