//! The agent's configuration: the TOML file, its defaults, and the checks
//! made before any port is bound.

use std::{
    fs, io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use crate::hook_env::HookConfig;
use slipway_proto::{observe::MetricsListen, tls::TlsPaths, validate};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7444";
/// Default address of the metrics listener: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9481";
/// Default directory holding `<apps_dir>/<app>` roots.
pub const DEFAULT_APPS_DIR: &str = "/srv";
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
    /// The `[hooks]` table: PATH and output limits of hooks.
    pub hooks: HookConfig,
    /// Address of the metrics listener (`/metrics`, `/healthz`, `/readyz`,
    /// plain HTTP; default 127.0.0.1:9481); None: off.
    pub metrics_listen: Option<SocketAddr>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{}: invalid configuration", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
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
    /// A problem found in a configuration that came from a file.
    #[error("{}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The problem.
        #[source]
        source: Box<ConfigError>,
    },
}

/// The configuration file as written: every key optional, so command-line
/// flags can supply or override any of them before [`ConfigFile::into_config`].
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
    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

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

    /// Reads, completes and validates a configuration file; errors name it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let in_file = |source| ConfigError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let config = ConfigFile::read(path)?.into_config().map_err(in_file)?;
        config.validate().map_err(in_file)?;
        Ok(config)
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
mod tests {
    use super::*;

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml")
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let config = ConfigFile::read(&example_path())
            .unwrap()
            .into_config()
            .unwrap();
        config.check_values().unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.metrics_listen, DEFAULT_METRICS_LISTEN.parse().ok());
        assert_eq!(config.host_name, "web-1.example.com");
        assert_eq!(config.allowed_roots, [PathBuf::from("/opt/apps")]);
        // The names `slipctl pki issue agent HOST` writes.
        let pki = Path::new("/etc/slipway/pki");
        assert_eq!(config.tls.ca, pki.join("ca.crt"));
        let stem = format!("agent-{}", config.host_name);
        assert_eq!(config.tls.cert, pki.join(format!("{stem}.crt")));
        assert_eq!(config.tls.key, pki.join(format!("{stem}.key")));
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let tls = TlsPaths {
            ca: "/ca.pem".into(),
            cert: "/agent.pem".into(),
            key: "/agent.key".into(),
        };
        let config = Config::new("web-1", tls);
        assert_eq!(config.apps_dir, Path::new(DEFAULT_APPS_DIR));
        assert_eq!(config.data_dir, Path::new(DEFAULT_DATA_DIR));
        config.check_values().unwrap();
        let off: ConfigFile = toml::from_str("metrics_listen = \"off\"").unwrap();
        assert_eq!(off.metrics_listen, Some(MetricsListen::Off));
        assert!(toml::from_str::<ConfigFile>("metrics_listen = \"9481\"").is_err());
    }

    #[test]
    fn an_allowed_root_that_is_not_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.pem", "agent.pem", "agent.key"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let tls = TlsPaths {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("agent.pem"),
            key: dir.path().join("agent.key"),
        };
        let mut config = Config::new("web-1", tls);
        config.allowed_roots = vec![dir.path().to_owned()];
        config.validate().unwrap();
        config.allowed_roots.push(dir.path().join("typo"));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with("allowed_roots: "), "{err}");
        assert!(err.ends_with("typo is not a directory"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let chain = |err: &dyn std::error::Error| {
            let mut text = err.to_string();
            let mut source = err.source();
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        };

        fs::write(
            &path,
            "host_name = \"Web_1\"\n[tls]\nca = \"/a\"\ncert = \"/b\"\nkey = \"/c\"\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(
            chain(&err).starts_with(&format!("{}: host_name: ", path.display())),
            "{}",
            chain(&err)
        );

        fs::write(&path, "host_name = \"web-1\"\n").unwrap();
        let err = chain(&Config::load(&path).unwrap_err());
        assert!(
            err.ends_with("tls.ca is required (in the configuration file or as --ca)"),
            "{err}"
        );

        fs::write(&path, "host_nmae = \"web-1\"\n").unwrap();
        let err = chain(&Config::load(&path).unwrap_err());
        assert!(err.contains("unknown field"), "{err}");

        let ca = dir.path().join("ca.pem");
        fs::write(&path, format!("host_name = \"web-1\"\napps_dir = \"/srv\"\n[tls]\nca = {ca:?}\ncert = {ca:?}\nkey = {ca:?}\n")).unwrap();
        let err = chain(&Config::load(&path).unwrap_err());
        assert!(err.contains("tls.ca: cannot read"), "{err}");
        fs::write(&ca, "pem").unwrap();
        Config::load(&path).unwrap();

        fs::write(&path, "host_name = \"web-1\"\napps_dir = \"srv\"\n[tls]\nca = \"/a\"\ncert = \"/b\"\nkey = \"/c\"\n").unwrap();
        let err = chain(&Config::load(&path).unwrap_err());
        assert!(
            err.contains("apps_dir: \"srv\" must be an absolute path"),
            "{err}"
        );
    }
}
