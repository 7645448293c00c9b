//! What changes without a restart: on SIGHUP a daemon loads its
//! configuration again (the file anew, with the flags and environment it
//! started with) and applies the live keys (the log filter, the limits);
//! certificates reload on their own ([`crate::tls::reload`]). A changed key
//! that needs a restart is named in a log line and keeps its value; a
//! configuration that does not load changes nothing.

use crate::{
    daemon::{LogHandle, chain},
    limits,
};

use super::{ConfigError, Layered, Reason};

/// The live part of a configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// The `log_level` key: a tracing filter such as `info` or
    /// `info,slipway_agent=debug`; none: `RUST_LOG`, else `info`.
    pub log_level: Option<String>,
    /// The `[limits]` keys.
    pub limits: limits::Live,
}

impl Live {
    /// The live keys of `layered`, each checked (a bad filter, a limit
    /// out of range), or the error naming the key.
    pub fn of(layered: &Layered) -> Result<Self, ConfigError> {
        let log_level = match layered.get("log_level") {
            Some((toml::Value::String(level), _)) => {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map_err(|err| layered.key_error("log_level", Reason(err.to_string())))?;
                Some(level.clone())
            }
            Some(_) => {
                return Err(layered.key_error("log_level", Reason("must be a string".into())));
            }
            None => None,
        };
        let defaults = limits::Live::default();
        let limit = |key: &str, default: usize| -> Result<usize, ConfigError> {
            let Some((value, _)) = layered.get(key) else {
                return Ok(default);
            };
            value
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| limits::LIVE_RANGE.contains(n))
                .ok_or_else(|| {
                    let (low, high) = (limits::LIVE_RANGE.start(), limits::LIVE_RANGE.end());
                    layered.key_error(
                        key,
                        Reason(format!("must be a number from {low} to {high}")),
                    )
                })
        };
        Ok(Self {
            log_level,
            limits: limits::Live {
                message_bytes: limit("limits.message_bytes", defaults.message_bytes)?,
                description_bytes: limit("limits.description_bytes", defaults.description_bytes)?,
            },
        })
    }

    /// Puts these values in effect.
    pub fn apply(&self, log: &LogHandle) {
        if let Err(err) = log.set(self.log_level.as_deref()) {
            tracing::warn!(error = %err, "cannot change the log level");
        }
        limits::set_live(self.limits);
    }
}

/// Reloads on every SIGHUP until the task is dropped. `in_use` is the
/// configuration the daemon started with; `load` loads and checks it again.
/// The SIGHUP handler is installed before this returns, so a SIGHUP right
/// after start reloads instead of ending the process.
pub fn on_hangup(
    mut in_use: Layered,
    mut load: impl FnMut() -> Result<Layered, ConfigError> + Send + 'static,
    log: LogHandle,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = signal(SignalKind::hangup())
        .map_err(|err| tracing::warn!(error = %err, "cannot listen for SIGHUP; the configuration does not reload"))
        .ok();
    async move {
        let Some(mut hangup) = hangup else { return };
        while hangup.recv().await.is_some() {
            in_use = reload(in_use, &mut load, &log);
        }
    }
}

/// One reload: the configuration now in use.
pub fn reload(
    in_use: Layered,
    load: &mut impl FnMut() -> Result<Layered, ConfigError>,
    log: &LogHandle,
) -> Layered {
    let loaded = load().and_then(|new| Live::of(&new).map(|live| (new, live)));
    let (new, live) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            tracing::warn!(
                error = %chain(&err),
                "SIGHUP: the configuration does not load; keeping the one in use"
            );
            return in_use;
        }
    };
    let restart = in_use.restart_only_changes(&new);
    if !restart.is_empty() {
        tracing::warn!(
            "SIGHUP: {} changed, needs a restart; keeping the value in use",
            restart.join(", ")
        );
    }
    live.apply(log);
    tracing::info!(
        log_level = live.log_level.as_deref().unwrap_or("(RUST_LOG or info)"),
        limits.message_bytes = live.limits.message_bytes,
        limits.description_bytes = live.limits.description_bytes,
        "SIGHUP: configuration reloaded"
    );
    tracing::debug!("SIGHUP: debug logging in effect");
    in_use.with_live_of(&new)
}
