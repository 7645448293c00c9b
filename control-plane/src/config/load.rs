//! From the resolved layers to a checked [`Config`]: the paths `pki_dir`
//! fills, the defaults, and every check made before a port is bound, each
//! failure naming the key and where its value came from.

use std::{path::PathBuf, time::Duration};

use slipway_proto::{
    config::{ConfigError, Layered, Reason, reload::Live},
    tls::{TlsMaterial, TlsPaths},
};

use super::{Config, DEFAULT_METRICS_LISTEN, FileConfig, TlsFiles, drift_every};
use crate::{
    signing::{Signer, SigningPaths},
    sources::{SourceRoots, build::BuildConfig},
};

/// Checks `layered` (with the paths `pki_dir` fills) and returns it with
/// the configuration to run.
pub fn load(mut layered: Layered) -> Result<(Layered, Config), ConfigError> {
    fill(&mut layered);
    let file: FileConfig = layered.typed()?;
    Live::of(&layered)?;
    let config = config(&layered, file)?;
    check_files(&layered, &config)?;
    Ok((layered, config))
}

/// The files `slipctl pki init` writes into `pki_dir`, for every TLS and
/// signing path not set otherwise; the signing CA only when its key is
/// there.
pub(super) fn fill(layered: &mut Layered) {
    let Some((toml::Value::String(dir), _)) = layered.get("pki_dir").cloned() else {
        return;
    };
    let dir = PathBuf::from(dir);
    let path = |name: &str| toml::Value::String(dir.join(name).to_string_lossy().into_owned());
    for (key, name) in [
        ("tls.ca", "ca.crt"),
        ("tls.cert", "control-plane.crt"),
        ("tls.key", "control-plane.key"),
        ("agent_tls.ca", "ca.crt"),
        ("agent_tls.cert", "control-plane-client.crt"),
        ("agent_tls.key", "control-plane-client.key"),
    ] {
        layered.derive(key, path(name), "pki_dir");
    }
    let unset = layered.get("signing.ca_cert").is_none() && layered.get("signing.ca_key").is_none();
    if unset && dir.join("ca.key").is_file() {
        layered.derive("signing.ca_cert", path("ca.crt"), "pki_dir");
        layered.derive("signing.ca_key", path("ca.key"), "pki_dir");
    }
}

fn config(layered: &Layered, file: FileConfig) -> Result<Config, ConfigError> {
    let invalid = |key: &str, reason: &str| layered.key_error(key, Reason(reason.to_owned()));
    let sources = file.sources.unwrap_or_default();
    if sources.fetch_timeout_seconds == Some(0) {
        return Err(invalid(
            "sources.fetch_timeout_seconds",
            "must be at least 1",
        ));
    }
    if sources.max_fetch_bytes == Some(0) {
        return Err(invalid("sources.max_fetch_bytes", "must be at least 1"));
    }
    let health_sample_every = match file.health_sample_every_seconds {
        Some(0) => return Err(invalid("health_sample_every_seconds", "must be at least 1")),
        Some(s) => Duration::from_secs(s),
        None => crate::observe::health::DEFAULT_SAMPLE_EVERY,
    };
    let cluster = file.cluster.unwrap_or_default();
    if cluster.lease_ttl_seconds == Some(0) {
        return Err(invalid("cluster.lease_ttl_seconds", "must be at least 1"));
    }
    let signing = file.signing.unwrap_or_default();
    let signing = match (signing.ca_cert, signing.ca_key) {
        (Some(ca_cert), Some(ca_key)) => Some(SigningPaths { ca_cert, ca_key }),
        (None, None) => None,
        (None, Some(_)) => return Err(layered.missing("signing.ca_cert")),
        (Some(_), None) => return Err(layered.missing("signing.ca_key")),
    };
    Ok(Config {
        listen: file
            .listen
            .unwrap_or_else(|| "0.0.0.0:7443".parse().expect("valid address")),
        data_dir: file.data_dir.unwrap_or_else(|| "/var/lib/slipway".into()),
        etcd: etcd(layered, file.store.and_then(|s| s.etcd))?,
        tls: tls_paths(layered, "tls", file.tls)?,
        agent_tls: tls_paths(layered, "agent_tls", file.agent_tls)?,
        cache_capacity_bytes: file.cache_capacity_bytes.unwrap_or(64 << 20),
        log_json: file.log_json.unwrap_or(false),
        recheck_every: Duration::from_secs(file.recheck_every_seconds.unwrap_or(30).max(1)),
        health_sample_every,
        drift_every: drift_every(file.drift_every_seconds),
        history_retention: match file
            .history_retention_days
            .unwrap_or(crate::history::retention::DEFAULT_DAYS)
        {
            0 => None,
            days => Some(Duration::from_secs(days.saturating_mul(86_400))),
        },
        notify_retry_max: Duration::from_secs(file.notify_retry_max_seconds.unwrap_or(60).max(1)),
        source_roots: SourceRoots::new(&file.source_roots.unwrap_or_default())
            .map_err(|err| layered.key_error("source_roots", err))?,
        sources: sources
            .finish()
            .map_err(|reason| invalid("sources", reason))?,
        enroll_listen: file.enroll_listen,
        web_listen: file.web_listen,
        metrics_listen: file
            .metrics_listen
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("valid address"))
            .addr(),
        signing,
        builds: BuildConfig {
            user: file.build_user,
            dir: file.build_dir,
        },
        secrets_key_file: file.secrets_key_file,
        secrets_previous_key_file: file.secrets_previous_key_file,
        cluster: super::ClusterSettings {
            replica_id: cluster.replica_id.unwrap_or_default(),
            advertise: cluster.advertise.unwrap_or_default(),
            lease_ttl: cluster
                .lease_ttl_seconds
                .map_or(crate::cluster::election::DEFAULT_LEASE, Duration::from_secs),
        },
    })
}

/// The etcd settings of `[store.etcd]`; None (sled) without endpoints.
fn etcd(
    layered: &Layered,
    file: Option<super::EtcdFile>,
) -> Result<Option<crate::store::EtcdSettings>, ConfigError> {
    let invalid = |key: &str, reason: &str| layered.key_error(key, Reason(reason.to_owned()));
    let Some(file) = file else { return Ok(None) };
    let Some(endpoints) = file.endpoints.filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let mut settings = crate::store::EtcdSettings::new(endpoints);
    if let Some(prefix) = file.prefix {
        settings.prefix = prefix;
    }
    if let Some(ops) = file.max_txn_ops {
        settings.max_txn_ops = usize::try_from(ops).unwrap_or(usize::MAX);
    }
    match file.dial_timeout_seconds {
        Some(0) => {
            return Err(invalid(
                "store.etcd.dial_timeout_seconds",
                "must be at least 1",
            ));
        }
        Some(s) => settings.dial_timeout = Duration::from_secs(s),
        None => {}
    }
    if file.tls.is_some() {
        let tls = tls_paths(layered, "store.etcd.tls", file.tls)?;
        settings.tls = Some(crate::store::EtcdTls {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
        });
    }
    crate::store::etcd::check(&settings)
        .map_err(|err| invalid("store.etcd.endpoints", &err.to_string()))?;
    Ok(Some(settings))
}

/// The three paths of `section`, each required.
fn tls_paths(
    layered: &Layered,
    section: &str,
    files: Option<TlsFiles>,
) -> Result<TlsPaths, ConfigError> {
    let files = files.unwrap_or_default();
    let required = |path: Option<PathBuf>, name: &str| {
        path.ok_or_else(|| layered.missing(&format!("{section}.{name}")))
    };
    Ok(TlsPaths {
        ca: required(files.ca, "ca")?,
        cert: required(files.cert, "cert")?,
        key: required(files.key, "key")?,
    })
}

/// What needs the filesystem: directories that must exist, certificates
/// and keys that must load, the build user.
fn check_files(layered: &Layered, config: &Config) -> Result<(), ConfigError> {
    layered.dir_or_parent("data_dir", &config.data_dir)?;
    if let Some(dir) = &config.builds.dir {
        layered.dir_or_parent("build_dir", dir)?;
    }
    crate::sources::build::Builder::new(&config.builds, &config.data_dir)
        .map_err(|err| layered.key_error("build_user", err))?;
    for (section, paths) in [("tls", &config.tls), ("agent_tls", &config.agent_tls)] {
        for (name, path) in [
            ("ca", &paths.ca),
            ("cert", &paths.cert),
            ("key", &paths.key),
        ] {
            layered.readable(&format!("{section}.{name}"), path)?;
        }
        TlsMaterial::load(paths)
            .map_err(|err| layered.key_error(&format!("{section}.cert"), err))?;
    }
    if let Some(tls) = config.etcd.as_ref().and_then(|e| e.tls.as_ref()) {
        for (name, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            layered.readable(&format!("store.etcd.tls.{name}"), path)?;
        }
    }
    if let Some(signing) = &config.signing {
        layered.readable("signing.ca_cert", &signing.ca_cert)?;
        layered.readable("signing.ca_key", &signing.ca_key)?;
        Signer::load(signing).map_err(|err| layered.key_error("signing.ca_key", err))?;
    }
    crate::secrets::keys::Keyring::load(
        config.secrets_key_file.as_deref(),
        config.secrets_previous_key_file.as_deref(),
    )
    .map_err(|err| layered.key_error("secrets_key_file", err))?;
    if let Some(path) = &config.sources.https_ca_file {
        layered.readable("sources.https_ca_file", path)?;
        crate::sources::load_roots(path)
            .map_err(|err| layered.key_error("sources.https_ca_file", err))?;
    }
    Ok(())
}
