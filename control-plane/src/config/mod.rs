//! The control plane's configuration: a TOML file, environment variables and
//! flags (the shared layered loader of `slipway_proto::config`), validated
//! before any port is bound.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;
use slipway_proto::{observe::MetricsListen, tls::TlsPaths};

use crate::{
    signing::SigningPaths,
    sources::{FetchSettings, SourceRoots, build::BuildConfig, settings::SourcesFile},
};

mod keys;
mod load;

pub use keys::KEYS;
pub use load::load;
pub use slipway_proto::config::ConfigError;

/// Everything the control plane needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the operator API.
    pub listen: SocketAddr,
    /// sled data directory (one process per directory); with etcd, it
    /// still holds source mirrors and staged binaries.
    pub data_dir: PathBuf,
    /// etcd instead of sled in `data_dir`.
    pub etcd: Option<crate::store::EtcdSettings>,
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
    /// The file of the key that seals secrets; None: `SLIPWAY_SECRETS_KEY`
    /// if set, else secrets are off.
    pub secrets_key_file: Option<PathBuf>,
    /// The previous key's file during a rotation.
    pub secrets_previous_key_file: Option<PathBuf>,
    /// This replica's name and address in a cluster, and its lease.
    pub cluster: ClusterSettings,
}

/// A replica's settings (used on a shared store; on sled the only replica
/// leads).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Its id; empty: `<host name>:<port>`.
    pub replica_id: String,
    /// The address clients reach its operator API at; empty: `listen`.
    pub advertise: String,
    /// How long its lease runs without a keep-alive: a dead leader is
    /// replaced this long after it stopped.
    pub lease_ttl: std::time::Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            replica_id: String::new(),
            advertise: String::new(),
            lease_ttl: crate::cluster::election::DEFAULT_LEASE,
        }
    }
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

/// The resolved keys as typed values, every one optional (see [`KEYS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// The `[store]` table.
    pub store: Option<StoreFile>,
    /// Fills the TLS and signing paths not set otherwise.
    pub pki_dir: Option<PathBuf>,
    /// The log filter (applied live, see `slipway_proto::config::reload`).
    pub log_level: Option<String>,
    /// The live limits (see `slipway_proto::limits::Live`).
    pub limits: Option<LimitsFile>,
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
    /// See [`Config::secrets_key_file`].
    pub secrets_key_file: Option<PathBuf>,
    /// See [`Config::secrets_previous_key_file`].
    pub secrets_previous_key_file: Option<PathBuf>,
    /// See [`Config::cluster`].
    pub cluster: Option<ClusterFile>,
}

/// The `[cluster]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// See [`ClusterSettings::replica_id`].
    pub replica_id: Option<String>,
    /// See [`ClusterSettings::advertise`].
    pub advertise: Option<String>,
    /// See [`ClusterSettings::lease_ttl`], in seconds (at least 1).
    pub lease_ttl_seconds: Option<u64>,
}

/// The `[limits]` table (checked by `slipway_proto::config::reload::Live`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// See `slipway_proto::limits::Live::message_bytes`.
    pub message_bytes: Option<u64>,
    /// See `slipway_proto::limits::Live::description_bytes`.
    pub description_bytes: Option<u64>,
}

/// The `[store]` table: sled unless `[store.etcd]` gives endpoints.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// See [`Config::etcd`].
    pub etcd: Option<EtcdFile>,
}

/// The `[store.etcd]` table (see `crate::store::EtcdSettings`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdFile {
    /// Client URLs.
    pub endpoints: Option<Vec<String>>,
    /// Key prefix.
    pub prefix: Option<String>,
    /// Operations per transaction.
    pub max_txn_ops: Option<u64>,
    /// Seconds connecting may take.
    pub dial_timeout_seconds: Option<u64>,
    /// Mutual TLS to etcd.
    pub tls: Option<TlsFiles>,
}

/// The `[signing]` table: the CA that signs agents' certificates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningFiles {
    /// CA certificate (or bundle, signing CA first).
    pub ca_cert: Option<PathBuf>,
    /// CA private key.
    pub ca_key: Option<PathBuf>,
}

/// PEM file paths of a `[tls]` or `[agent_tls]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: Option<PathBuf>,
    /// Certificate.
    pub cert: Option<PathBuf>,
    /// Private key.
    pub key: Option<PathBuf>,
}

#[cfg(test)]
mod tests;
