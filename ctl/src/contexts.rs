//! slipctl's own configuration file: named contexts, each a control plane
//! with the certificates to reach it, and the one in use. The file is
//! `$XDG_CONFIG_HOME/slipway/config.toml`, or `~/.config/slipway/config.toml`.
//!
//! ```toml
//! current = "prod"
//!
//! [contexts.prod]
//! endpoint = "cp.example.com:7443"
//! ca = "/etc/slipway/pki/ca.crt"
//! cert = "/home/alice/alice.crt"
//! key = "/home/alice/alice.key"
//! ```

use std::{
    collections::BTreeMap,
    fs,
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Largest configuration file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most contexts one file holds.
pub const MAX_CONTEXTS: usize = 256;
/// Longest endpoint or path kept in a context.
const MAX_VALUE: usize = 4096;

/// One control plane and who you are to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Control plane address, host:port or https://host:port.
    pub endpoint: String,
    /// CA certificate that signed the control plane's certificate.
    pub ca: PathBuf,
    /// Operator certificate.
    pub cert: PathBuf,
    /// Operator private key.
    pub key: PathBuf,
    /// Name sent in TLS SNI, when not the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The context used when neither --context nor SLIPWAY_CONTEXT names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// What can go wrong with contexts.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Neither XDG_CONFIG_HOME nor HOME is set.
    #[error("cannot find the configuration directory: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    /// The file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// read, write, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{} is not a valid slipctl configuration: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A name that no context has.
    #[error("no context named {name:?} in {}; `slipctl context list` shows them", path.display())]
    Unknown {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// Bad input for a new context.
    #[error("{0}")]
    Refused(String),
}

/// Where the file is, from the environment.
pub fn config_path() -> Result<PathBuf, ContextError> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("slipway/config.toml"));
    }
    non_empty("HOME")
        .map(|home| PathBuf::from(home).join(".config/slipway/config.toml"))
        .ok_or(ContextError::NoConfigDir)
}

impl Config {
    /// Reads the file at `path`; an absent file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, ContextError> {
        let io = |source| ContextError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        };
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(io(err)),
        };
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        let invalid = |reason: String| ContextError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(invalid(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let config: Config = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Every name and value within bounds, `current` naming a context.
    fn check(&self) -> Result<(), String> {
        if self.contexts.len() > MAX_CONTEXTS {
            return Err(format!("more than {MAX_CONTEXTS} contexts"));
        }
        for (name, context) in &self.contexts {
            check_name(name)?;
            context
                .check()
                .map_err(|e| format!("context {name}: {e}"))?;
        }
        match &self.current {
            Some(current) if !self.contexts.contains_key(current) => {
                Err(format!("current = {current:?} names no context"))
            }
            _ => Ok(()),
        }
    }

    /// Writes the file atomically (a temporary file renamed over it), private
    /// to its owner.
    pub fn save(&self, path: &Path) -> Result<(), ContextError> {
        let io = |action, source| ContextError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let text = toml::to_string(self).map_err(|e| ContextError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("create the directory of", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config-")
            .tempfile_in(dir)
            .map_err(|e| io("write", e))?;
        tmp.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io("write", e))?;
        tmp.as_file().sync_all().map_err(|e| io("write", e))?;
        tmp.persist(path).map_err(|e| io("write", e.error))?;
        Ok(())
    }

    /// The context called `name`.
    pub fn get(&self, name: &str, path: &Path) -> Result<&Context, ContextError> {
        self.contexts
            .get(name)
            .ok_or_else(|| ContextError::Unknown {
                name: name.to_owned(),
                path: path.to_owned(),
            })
    }

    /// Adds (or with `replace`, replaces) a context.
    pub fn add(&mut self, name: &str, context: Context, replace: bool) -> Result<(), ContextError> {
        check_name(name).map_err(ContextError::Refused)?;
        context.check().map_err(ContextError::Refused)?;
        if !replace && self.contexts.contains_key(name) {
            return Err(ContextError::Refused(format!(
                "context {name} exists; pass --replace to replace it"
            )));
        }
        if !self.contexts.contains_key(name) && self.contexts.len() >= MAX_CONTEXTS {
            return Err(ContextError::Refused(format!(
                "{MAX_CONTEXTS} contexts already; remove one first"
            )));
        }
        self.contexts.insert(name.to_owned(), context);
        Ok(())
    }
}

impl Context {
    fn check(&self) -> Result<(), String> {
        if self.endpoint.is_empty() || self.endpoint.len() > MAX_VALUE {
            return Err(format!("endpoint must have 1 to {MAX_VALUE} characters"));
        }
        for (what, path) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() || path.as_os_str().len() > MAX_VALUE {
                return Err(format!("{what} must be a path of 1 to {MAX_VALUE} bytes"));
            }
        }
        match &self.server_name {
            Some(name) if name.is_empty() || name.len() > 253 => {
                Err("server_name must have 1 to 253 characters".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// A context name: a Slipway name (letters, digits, `-`, `_`, `.`).
fn check_name(name: &str) -> Result<(), String> {
    slipway_proto::validate::name("context name", name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(endpoint: &str) -> Context {
        Context {
            endpoint: endpoint.into(),
            ca: "/pki/ca.crt".into(),
            cert: "/pki/alice.crt".into(),
            key: "/pki/alice.key".into(),
            server_name: None,
        }
    }

    #[test]
    fn a_file_round_trips_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slipway/config.toml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let mut config = Config::default();
        config.add("prod", context("cp:7443"), false).unwrap();
        config.add("test", context("cp-test:7443"), false).unwrap();
        config.current = Some("test".into());
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn bad_files_and_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (text, reason) in [
            ("current = \"gone\"\n", "names no context"),
            ("[contexts.prod]\nendpoint = \"cp:1\"\n", "missing field"),
            ("colour = 1\n", "unknown field"),
        ] {
            fs::write(&path, text).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
        let mut config = Config::default();
        assert!(config.add("a/b", context("cp:1"), false).is_err());
        assert!(config.add("p", context(""), false).is_err());
        config.add("p", context("cp:1"), false).unwrap();
        let err = config.add("p", context("cp:2"), false).unwrap_err();
        assert!(err.to_string().contains("--replace"), "{err}");
        config.add("p", context("cp:2"), true).unwrap();
        assert_eq!(config.contexts["p"].endpoint, "cp:2");
    }
}
