//! The control plane's configuration: a TOML file, environment variables and
//! flags, validated before any port is bound.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use slipway_proto::{
    observe::MetricsListen,
    tls::{TlsMaterial, TlsPaths},
};

use crate::{
    signing::{Signer, SigningPaths},
    sources::{
        FetchSettings, SourceRootError, SourceRoots, build::BuildConfig, settings::SourcesFile,
    },
};

/// Everything the control plane needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the operator API.
    pub listen: SocketAddr,
    /// sled data directory (one process per directory).
    pub data_dir: PathBuf,
    /// Server identity for the operator API.
    pub tls: TlsPaths,
    /// Client identity used to dial agents.
    pub agent_tls: TlsPaths,
    /// sled page cache, bytes.
    pub cache_capacity_bytes: u64,
    /// Log as JSON lines.
    pub log_json: bool,
    /// How often hosts whose outcome in a finished deployment is unknown
    /// are asked again (default 30 s).
    pub recheck_every: std::time::Duration,
    /// How often every host is sampled for its health (default 30 s).
    pub health_sample_every: std::time::Duration,
    /// How often every environment is checked for drift (default 10 min);
    /// None: only on demand.
    pub drift_every: Option<std::time::Duration>,
    /// How long a finished deployment keeps its event log (default 90
    /// days); None keeps every log. The record itself is always kept.
    pub history_retention: Option<std::time::Duration>,
    /// The longest pause between two attempts to deliver a notification
    /// (default 60 s; attempts start 100 ms apart and double).
    pub notify_retry_max: std::time::Duration,
    /// The directories apps' repositories may lie in; none: any absolute
    /// path.
    pub source_roots: SourceRoots,
    /// How remote sources are fetched (poll interval, timeout, byte bound,
    /// extra CAs for https).
    pub sources: FetchSettings,
    /// The CA certificate and key that sign agents' certificates
    /// (enrollment and renewal); none: the control plane holds no CA key.
    pub signing: Option<SigningPaths>,
    /// Address of the enrollment listener (no client certificate needed;
    /// only enrollment is served there; needs `signing`). None: enrollment
    /// is off.
    pub enroll_listen: Option<SocketAddr>,
    /// Address of the metrics listener (`/metrics`, `/healthz`, `/readyz`,
    /// plain HTTP); None: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the web listener (HTTPS with the server certificate, no
    /// client certificate asked: the webhooks git servers and CI call).
    /// None: off.
    pub web_listen: Option<SocketAddr>,
    /// Who apps' builds run as and where their scratch directories go.
    pub builds: BuildConfig,
}

/// Seconds between drift checks of every environment unless configured.
pub const DEFAULT_DRIFT_EVERY_SECONDS: u64 = 600;

/// The interval of drift checks for `drift_every_seconds`: the default
/// when unset, none for 0.
fn drift_every(seconds: Option<u64>) -> Option<std::time::Duration> {
    match seconds.unwrap_or(DEFAULT_DRIFT_EVERY_SECONDS) {
        0 => None,
        seconds => Some(std::time::Duration::from_secs(seconds)),
    }
}

/// Where the metrics listener goes unless configured: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9480";

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::tls`].
    pub tls: Option<TlsFiles>,
    /// See [`Config::agent_tls`].
    pub agent_tls: Option<TlsFiles>,
    /// See [`Config::cache_capacity_bytes`].
    pub cache_capacity_bytes: Option<u64>,
    /// See [`Config::log_json`].
    pub log_json: Option<bool>,
    /// See [`Config::recheck_every`], in seconds.
    pub recheck_every_seconds: Option<u64>,
    /// See [`Config::health_sample_every`], in seconds (at least 1).
    pub health_sample_every_seconds: Option<u64>,
    /// See [`Config::drift_every`], in seconds; 0: off.
    pub drift_every_seconds: Option<u64>,
    /// See [`Config::history_retention`], in days; 0 keeps every log.
    pub history_retention_days: Option<u64>,
    /// See [`Config::notify_retry_max`], in seconds.
    pub notify_retry_max_seconds: Option<u64>,
    /// See [`Config::source_roots`]: absolute directories that exist.
    pub source_roots: Option<Vec<PathBuf>>,
    /// See [`Config::sources`].
    pub sources: Option<SourcesFile>,
    /// See [`Config::signing`].
    pub signing: Option<SigningFiles>,
    /// See [`Config::enroll_listen`].
    pub enroll_listen: Option<SocketAddr>,
    /// See [`Config::metrics_listen`]: an address, or `"off"`.
    pub metrics_listen: Option<MetricsListen>,
    /// See [`Config::web_listen`].
    pub web_listen: Option<SocketAddr>,
    /// See [`BuildConfig::user`].
    pub build_user: Option<String>,
    /// See [`BuildConfig::dir`].
    pub build_dir: Option<PathBuf>,
}

/// The `[signing]` table: the CA that signs agents' certificates.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningFiles {
    /// CA certificate (or bundle, signing CA first).
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
}

/// PEM file paths in the TOML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Certificate.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl From<TlsFiles> for TlsPaths {
    fn from(f: TlsFiles) -> Self {
        TlsPaths {
            ca: f.ca,
            cert: f.cert,
            key: f.key,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: invalid configuration")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: toml::de::Error,
    },
    /// A required value is absent.
    #[error("missing {0} (set it in the config file or with its flag)")]
    Missing(&'static str),
    /// A TLS file of a section (`tls`, `agent_tls`) is unusable.
    #[error("[{section}]")]
    Tls {
        /// The section naming the files.
        section: &'static str,
        /// Cause.
        #[source]
        source: slipway_proto::tls::TlsError,
    },
    /// A setting of the file `path` is unusable.
    #[error("{path}")]
    InFile {
        /// The configuration file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<ConfigError>,
    },
    /// The signing CA is unusable.
    #[error(transparent)]
    Signing(#[from] crate::signing::SignError),
    /// A trusted source directory is relative or missing.
    #[error(transparent)]
    SourceRoot(#[from] SourceRootError),
    /// The sources settings are unusable (the extra CA file).
    #[error(transparent)]
    Sources(#[from] crate::sources::SourcesConfigError),
    /// A value out of its range.
    #[error("{0}")]
    Invalid(&'static str),
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Fills defaults and checks that the TLS files can be read.
    pub fn finish(self) -> Result<Config, ConfigError> {
        let config = Config {
            listen: self
                .listen
                .unwrap_or_else(|| "0.0.0.0:7443".parse().expect("valid address")),
            data_dir: self.data_dir.unwrap_or_else(|| "/var/lib/slipway".into()),
            tls: self
                .tls
                .ok_or(ConfigError::Missing("tls (ca, cert, key)"))?
                .into(),
            agent_tls: self
                .agent_tls
                .ok_or(ConfigError::Missing("agent_tls (ca, cert, key)"))?
                .into(),
            cache_capacity_bytes: self.cache_capacity_bytes.unwrap_or(64 << 20),
            log_json: self.log_json.unwrap_or(false),
            recheck_every: std::time::Duration::from_secs(
                self.recheck_every_seconds.unwrap_or(30).max(1),
            ),
            health_sample_every: match self.health_sample_every_seconds {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "health_sample_every_seconds: must be at least 1",
                    ));
                }
                Some(s) => std::time::Duration::from_secs(s),
                None => crate::observe::health::DEFAULT_SAMPLE_EVERY,
            },
            drift_every: drift_every(self.drift_every_seconds),
            history_retention: match self
                .history_retention_days
                .unwrap_or(crate::history::retention::DEFAULT_DAYS)
            {
                0 => None,
                days => Some(std::time::Duration::from_secs(days.saturating_mul(86_400))),
            },
            notify_retry_max: std::time::Duration::from_secs(
                self.notify_retry_max_seconds.unwrap_or(60).max(1),
            ),
            source_roots: SourceRoots::new(&self.source_roots.unwrap_or_default())?,
            sources: self
                .sources
                .unwrap_or_default()
                .finish()
                .map_err(ConfigError::Invalid)?,
            enroll_listen: self.enroll_listen,
            web_listen: self.web_listen,
            metrics_listen: self
                .metrics_listen
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("valid address"))
                .addr(),
            signing: self.signing.map(|files| SigningPaths {
                ca_cert: files.ca_cert,
                ca_key: files.ca_key,
            }),
            builds: BuildConfig {
                user: self.build_user,
                dir: self.build_dir,
            },
        };
        crate::sources::build::Builder::new(&config.builds, &config.data_dir)
            .map_err(crate::sources::SourcesConfigError::from)?;
        if let Some(signing) = &config.signing {
            Signer::load(signing)?;
        }
        for (section, paths) in [("tls", &config.tls), ("agent_tls", &config.agent_tls)] {
            TlsMaterial::load(paths).map_err(|source| ConfigError::Tls { section, source })?;
        }
        if let Some(path) = &config.sources.https_ca_file {
            crate::sources::load_roots(path)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane.example.toml");
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.listen, Some("0.0.0.0:7443".parse().unwrap()));
        let metrics = file.metrics_listen.and_then(MetricsListen::addr);
        assert_eq!(metrics, DEFAULT_METRICS_LISTEN.parse().ok());
        assert!(file.tls.is_some() && file.agent_tls.is_some());
    }

    #[test]
    fn a_missing_or_relative_source_root_is_a_config_error() {
        for roots in ["[\"/nonexistent/slipway\"]", "[\"srv/git\"]"] {
            let text = format!(
                "source_roots = {roots}\n[tls]\nca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n\
                 [agent_tls]\nca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n"
            );
            let file: FileConfig = toml::from_str(&text).unwrap();
            let err = file.finish().unwrap_err();
            assert!(matches!(err, ConfigError::SourceRoot(_)), "{roots}: {err}");
        }
    }

    #[test]
    fn drift_checks_run_every_ten_minutes_unless_set_and_zero_turns_them_off() {
        let minutes = |m: u64| Some(std::time::Duration::from_secs(m * 60));
        assert_eq!(drift_every(None), minutes(10));
        assert_eq!(drift_every(Some(120)), minutes(2));
        assert_eq!(drift_every(Some(0)), None);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane.example.toml");
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.drift_every_seconds, Some(DEFAULT_DRIFT_EVERY_SECONDS));
    }

    #[test]
    fn metrics_listen_is_an_address_or_off() {
        let parse = |text: &str| toml::from_str::<FileConfig>(text).map(|f| f.metrics_listen);
        assert_eq!(parse("").unwrap(), None);
        let off = parse("metrics_listen = \"off\"").unwrap();
        assert_eq!(off, Some(MetricsListen::Off));
        let anywhere = parse("metrics_listen = \"0.0.0.0:9000\"").unwrap();
        assert_eq!(
            anywhere.and_then(MetricsListen::addr),
            "0.0.0.0:9000".parse().ok()
        );
        assert!(parse("metrics_listen = \"nowhere\"").is_err());
    }

    #[test]
    fn the_health_sampling_interval_is_at_least_a_second() {
        let tls = "[tls]\nca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n\
                   [agent_tls]\nca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n";
        let file: FileConfig =
            toml::from_str(&format!("health_sample_every_seconds = 0\n{tls}")).unwrap();
        let err = file.finish().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        let file: FileConfig =
            toml::from_str(&format!("health_sample_every_seconds = 5\n{tls}")).unwrap();
        assert_eq!(file.health_sample_every_seconds, Some(5));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"0.0.0.0:1\"").is_err());
    }
}
