//! The agent's configuration: its keys (file, environment, flags through
//! the shared layered loader), their defaults, and the checks made before
//! any port is bound.

use std::{
    fs, io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

mod keys;
mod layers;

pub use keys::KEYS;
pub use layers::load;

use serde::Deserialize;

pub use crate::hook_env::HookConfig;
use slipway_proto::{observe::MetricsListen, tls::TlsPaths, validate};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7444";
/// Default address of the metrics listener: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9481";
/// Default directory holding `<apps_dir>/<app>` roots.
pub const DEFAULT_APPS_DIR: &str = "/srv";
/// Default idle time before a tree is prestaged, in milliseconds.
pub const DEFAULT_PRESTAGE_IDLE_MS: u64 = 1000;
/// Default directory for the agent's own state.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/slipway-agent";

/// What the agent needs to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (default 0.0.0.0:7444).
    pub listen: SocketAddr,
    /// This host's name, as registered in the control plane (a DNS name).
    pub host_name: String,
    /// Directory of default app roots `<apps_dir>/<app>` (default /srv).
    pub apps_dir: PathBuf,
    /// Further directories a request's deploy_root may lie under.
    pub allowed_roots: Vec<PathBuf>,
    /// The agent's state, e.g. the app registry (default /var/lib/slipway-agent).
    pub data_dir: PathBuf,
    /// CA, certificate and key of this agent.
    pub tls: TlsPaths,
    /// Log one JSON object per line.
    pub log_json: bool,
    /// Build each app's next release tree ahead, while it is idle (default
    /// true; the key is `no_prestage`; see `crate::prestage`).
    pub prestage: bool,
    /// How long an app stays idle after a release goes live before its
    /// next tree is prestaged (default 1 s).
    pub prestage_idle: std::time::Duration,
    /// The `[hooks]` table: PATH and output limits of hooks.
    pub hooks: HookConfig,
    /// Address of the metrics listener (`/metrics`, `/healthz`, `/readyz`,
    /// plain HTTP; default 127.0.0.1:9481); None: off.
    pub metrics_listen: Option<SocketAddr>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{field} is required (in the configuration file or as {flag})")]
    Missing {
        /// The TOML key.
        field: &'static str,
        /// The command-line flag.
        flag: &'static str,
    },
    /// A setting has a bad value.
    #[error("{field}: {reason}")]
    Invalid {
        /// The TOML key.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A TLS file cannot be read.
    #[error("{field}: cannot read {}", path.display())]
    Unreadable {
        /// The TOML key.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The resolved keys as typed values, every one optional (see [`KEYS`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::host_name`].
    pub host_name: Option<String>,
    /// See [`Config::apps_dir`].
    pub apps_dir: Option<PathBuf>,
    /// See [`Config::allowed_roots`].
    pub allowed_roots: Option<Vec<PathBuf>>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::log_json`].
    pub log_json: Option<bool>,
    /// The inverse of [`Config::prestage`].
    pub no_prestage: Option<bool>,
    /// See [`Config::prestage_idle`], in milliseconds.
    pub prestage_idle_ms: Option<u64>,
    /// The log filter (applied live, see `slipway_proto::config::reload`).
    pub log_level: Option<String>,
    /// See [`Config::metrics_listen`]: an address, or `"off"`.
    pub metrics_listen: Option<MetricsListen>,
    /// The `[tls]` table.
    #[serde(default)]
    pub tls: TlsFile,
    /// The `[hooks]` table.
    #[serde(default)]
    pub hooks: HookConfig,
}

/// The `[tls]` table of the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// CA certificate (PEM) that signed the control plane's certificate.
    pub ca: Option<PathBuf>,
    /// This agent's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// This agent's private key (PEM).
    pub key: Option<PathBuf>,
}

impl ConfigFile {
    /// Fills in defaults; fails on a missing required setting.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let missing = |field, flag| ConfigError::Missing { field, flag };
        Ok(Config {
            listen: self
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid default")),
            host_name: self.host_name.ok_or(missing("host_name", "--host-name"))?,
            apps_dir: self.apps_dir.unwrap_or_else(|| DEFAULT_APPS_DIR.into()),
            allowed_roots: self.allowed_roots.unwrap_or_default(),
            data_dir: self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            tls: TlsPaths {
                ca: self.tls.ca.ok_or(missing("tls.ca", "--ca"))?,
                cert: self.tls.cert.ok_or(missing("tls.cert", "--cert"))?,
                key: self.tls.key.ok_or(missing("tls.key", "--key"))?,
            },
            log_json: self.log_json.unwrap_or(false),
            prestage: !self.no_prestage.unwrap_or(false),
            prestage_idle: std::time::Duration::from_millis(
                self.prestage_idle_ms.unwrap_or(DEFAULT_PRESTAGE_IDLE_MS),
            ),
            hooks: self.hooks,
            metrics_listen: self
                .metrics_listen
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("a valid default"))
                .addr(),
        })
    }
}

impl Config {
    /// A configuration with the defaults for everything but the host name
    /// and the TLS files.
    pub fn new(host_name: impl Into<String>, tls: TlsPaths) -> Self {
        ConfigFile {
            host_name: Some(host_name.into()),
            tls: TlsFile {
                ca: Some(tls.ca),
                cert: Some(tls.cert),
                key: Some(tls.key),
            },
            ..ConfigFile::default()
        }
        .into_config()
        .expect("every required setting is given")
    }

    /// Checks every setting, including that the TLS files are readable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_values()?;
        for (field, path) in [
            ("tls.ca", &self.tls.ca),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
        ] {
            fs::File::open(path).map_err(|source| ConfigError::Unreadable {
                field,
                path: path.clone(),
                source,
            })?;
        }
        // A root that does not exist is a typo that would refuse every
        // deploy under it with a puzzling message.
        for root in &self.allowed_roots {
            if !root.is_dir() {
                return Err(ConfigError::Invalid {
                    field: "allowed_roots",
                    reason: format!("{} is not a directory", root.display()),
                });
            }
        }
        Ok(())
    }

    /// The checks that need no filesystem.
    fn check_values(&self) -> Result<(), ConfigError> {
        validate::host_name("host_name", &self.host_name).map_err(|e| ConfigError::Invalid {
            field: "host_name",
            reason: e.reason,
        })?;
        let absolute = |field, path: &Path| {
            // Roots are compared lexically with request paths: they must be
            // absolute and clean to mean what they say.
            let text = path.to_str().ok_or_else(|| ConfigError::Invalid {
                field,
                reason: format!("{} is not UTF-8", path.display()),
            })?;
            validate::absolute_path(field, text).map_err(|e| ConfigError::Invalid {
                field,
                reason: e.reason,
            })
        };
        absolute("apps_dir", &self.apps_dir)?;
        absolute("data_dir", &self.data_dir)?;
        for root in &self.allowed_roots {
            absolute("allowed_roots", root)?;
        }
        let hooks = &self.hooks;
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if hooks.output_max_lines == 0 || hooks.output_max_bytes == 0 {
            return Err(invalid(
                "hooks.output_max_lines",
                "hooks.output_max_lines and hooks.output_max_bytes must be above 0",
            ));
        }
        if !(80..=1 << 20).contains(&hooks.output_line_bytes) {
            return Err(invalid(
                "hooks.output_line_bytes",
                "must be between 80 and 1048576",
            ));
        }
        if hooks.path.is_empty() || hooks.path.contains('\0') {
            return Err(invalid("hooks.path", "must be a non-empty PATH"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
