//! One layered configuration loader for both daemons: every key can be set
//! in the TOML file, by an environment variable and by a flag, resolved as
//! flag > environment > file > default. Each daemon declares its keys in a
//! table of [`Key`]s; this module reads the layers, remembers where every
//! value came from ([`Source`]), names the origin and the key in every
//! error, prints the effective configuration (`--check-config`) and
//! reloads what can change live on SIGHUP ([`reload`]).

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

pub mod args;
pub mod reload;
pub mod show;
pub mod start;

/// How a value given as text (a flag, an environment variable) becomes a
/// TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string, an address or a path.
    Text,
    /// A non-negative integer.
    Number,
    /// `true`/`false`; a flag without a value.
    Bool,
    /// A list of strings: a repeatable flag, comma-separated in a variable.
    List,
}

/// One configuration key, the same in the file, the environment and the
/// command line.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// Its dotted TOML path, e.g. `tls.cert` for `cert` in `[tls]`.
    pub name: &'static str,
    /// Its long flag without the dashes, e.g. `tls-cert`.
    pub flag: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// How text becomes a value.
    pub kind: Kind,
    /// The value when no layer sets it, as shown to a person ("" for none).
    pub default: &'static str,
    /// Whether SIGHUP applies a new value without a restart.
    pub live: bool,
    /// One line of help (the flag's `--help`).
    pub help: &'static str,
}

impl Key {
    /// The key as a person finds it in the file: `listen`, `[tls] cert`.
    pub fn shown(&self) -> String {
        match self.name.rsplit_once('.') {
            Some((table, leaf)) => format!("[{table}] {leaf}"),
            None => self.name.to_owned(),
        }
    }
}

/// One [`Key`] per line in a daemon's table:
/// `config_key!("tls.cert", "tls-cert", "SLIPWAY_CP_TLS_CERT", Text, "", restart, "help")`.
#[macro_export]
macro_rules! config_key {
    ($name:literal, $flag:literal, $env:literal, $kind:ident, $default:literal, live, $help:literal) => {
        $crate::config_key!(@ $name, $flag, $env, $kind, $default, true, $help)
    };
    ($name:literal, $flag:literal, $env:literal, $kind:ident, $default:literal, restart, $help:literal) => {
        $crate::config_key!(@ $name, $flag, $env, $kind, $default, false, $help)
    };
    (@ $name:literal, $flag:literal, $env:literal, $kind:ident, $default:literal, $live:literal, $help:literal) => {
        $crate::config::Key {
            name: $name,
            flag: $flag,
            env: $env,
            kind: $crate::config::Kind::$kind,
            default: $default,
            live: $live,
            help: $help,
        }
    };
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing set it.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag (without its dashes).
    Flag(&'static str),
    /// Filled in from another key, e.g. the TLS files from `pki_dir`.
    Derived {
        /// The key it was filled from.
        from: &'static str,
        /// Where that key came from.
        via: Box<Source>,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file:{}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag --{flag}"),
            Source::Derived { from, via } => write!(f, "from {from} ({via})"),
        }
    }
}

/// A configuration that cannot be used. Every variant names where the
/// problem is: the file, or the variable or flag that set the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{}: not valid TOML", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key this daemon does not know.
    #[error("{origin}: unknown key {key} (see --help or the README's Configuration table)")]
    Unknown {
        /// The file.
        origin: String,
        /// The key as written.
        key: String,
    },
    /// A key whose value cannot be used.
    #[error("{origin}: {key}")]
    Key {
        /// The file, `env VAR` or `flag --x` that set it.
        origin: String,
        /// The key, as [`Key::shown`].
        key: String,
        /// What is wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A reason given as text, for [`ConfigError::Key`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reason(pub String);

/// A value given on the command line or in the environment.
#[derive(Clone, Debug)]
pub struct Given {
    /// The key's name.
    pub key: &'static str,
    /// The value.
    pub value: toml::Value,
    /// [`Source::Env`] or [`Source::Flag`].
    pub source: Source,
}

/// The resolved layers: every key that some layer set, with its value and
/// its source.
#[derive(Clone, Debug)]
pub struct Layered {
    keys: &'static [Key],
    file: Option<PathBuf>,
    values: BTreeMap<&'static str, (toml::Value, Source)>,
}

impl Layered {
    /// Reads `file` (if any) and puts `given` on top of it.
    pub fn resolve(
        keys: &'static [Key],
        file: Option<&Path>,
        given: Vec<Given>,
    ) -> Result<Self, ConfigError> {
        let mut layered = Self {
            keys,
            file: file.map(Path::to_owned),
            values: BTreeMap::new(),
        };
        if let Some(path) = file {
            layered.read_file(path)?;
        }
        for given in given {
            layered
                .values
                .insert(given.key, (given.value, given.source));
        }
        Ok(layered)
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        self.read_table("", table, path)
    }

    fn read_table(
        &mut self,
        prefix: &str,
        table: toml::Table,
        path: &Path,
    ) -> Result<(), ConfigError> {
        for (name, value) in table {
            let full = format!("{prefix}{name}");
            if let Some(key) = self.keys.iter().find(|k| k.name == full) {
                self.values
                    .insert(key.name, (value, Source::File(path.to_owned())));
            } else if let toml::Value::Table(inner) = value
                && self
                    .keys
                    .iter()
                    .any(|k| k.name.starts_with(&format!("{full}.")))
            {
                self.read_table(&format!("{full}."), inner, path)?;
            } else {
                return Err(ConfigError::Unknown {
                    origin: path.display().to_string(),
                    key: full,
                });
            }
        }
        Ok(())
    }

    /// The file, if one was given.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The keys of this daemon.
    pub fn keys(&self) -> &'static [Key] {
        self.keys
    }

    /// The value of `key` and where it came from; `None` when no layer
    /// set it.
    pub fn get(&self, key: &str) -> Option<&(toml::Value, Source)> {
        self.values.get(key)
    }

    /// Where the value of `key` came from.
    pub fn source(&self, key: &str) -> Source {
        self.get(key)
            .map_or(Source::Default, |(_, source)| source.clone())
    }

    /// Sets `key` from another key `from` unless a layer set it already.
    pub fn derive(&mut self, key: &str, value: toml::Value, from: &'static str) {
        let Some(key) = self.keys.iter().find(|k| k.name == key) else {
            return;
        };
        if self.values.contains_key(key.name) {
            return;
        }
        let via = Box::new(self.source(from));
        self.values
            .insert(key.name, (value, Source::Derived { from, via }));
    }

    /// The resolved values as one nested TOML table.
    pub fn table(&self) -> toml::Table {
        let mut root = toml::Table::new();
        for (name, (value, _)) in &self.values {
            insert(&mut root, name, value.clone());
        }
        root
    }

    /// The values as the daemon's file struct (every field optional). A
    /// value of the wrong type is reported with its key and origin.
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let whole = toml::Value::Table(self.table()).try_into::<T>();
        let err = match whole {
            Ok(typed) => return Ok(typed),
            Err(err) => err,
        };
        // Find the key at fault: the first one that is wrong on its own.
        for (name, (value, _)) in &self.values {
            let mut alone = toml::Table::new();
            insert(&mut alone, name, value.clone());
            if let Err(err) = toml::Value::Table(alone).try_into::<T>() {
                return Err(self.key_error(name, Reason(err.message().trim().to_owned())));
            }
        }
        Err(ConfigError::Key {
            origin: self.origin(None),
            key: "configuration".into(),
            source: Box::new(Reason(err.message().trim().to_owned())),
        })
    }

    /// An error of `key` that names where its value came from (the file
    /// when no layer set it and there is one).
    pub fn key_error(
        &self,
        key: &str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ConfigError {
        let shown = self
            .keys
            .iter()
            .find(|k| k.name == key)
            .map_or_else(|| key.to_owned(), Key::shown);
        ConfigError::Key {
            origin: self.origin(Some(key)),
            key: shown,
            source: cause.into(),
        }
    }

    /// A required `key` that no layer set.
    pub fn missing(&self, key: &str) -> ConfigError {
        let how = self
            .keys
            .iter()
            .find(|k| k.name == key)
            .map_or_else(String::new, |k| {
                format!(" (in the file, as --{} or {})", k.flag, k.env)
            });
        self.key_error(key, Reason(format!("is required{how}")))
    }

    fn origin(&self, key: Option<&str>) -> String {
        let source = key.map_or(Source::Default, |key| self.source(key));
        match (source, &self.file) {
            (Source::File(path), _) => path.display().to_string(),
            (Source::Default, Some(path)) => path.display().to_string(),
            (Source::Default, None) => "configuration".to_owned(),
            (Source::Derived { via, .. }, _) => via.to_string(),
            (other, _) => other.to_string(),
        }
    }

    /// `path` (the value of `key`) is a file that can be opened.
    pub fn readable(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        std::fs::File::open(path).map(drop).map_err(|err| {
            let reason = match err.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                _ => err.to_string(),
            };
            self.key_error(key, Reason(format!("{}: {reason}", path.display())))
        })
    }

    /// `dir` (the value of `key`) is a directory, or one the daemon can
    /// make because its parent is: a typo is refused rather than a tree
    /// of directories made in the wrong place.
    pub fn dir_or_parent(&self, key: &str, dir: &Path) -> Result<(), ConfigError> {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if dir.is_dir() || parent.is_some_and(Path::is_dir) {
            return Ok(());
        }
        let reason = format!("{}: no such directory (nor its parent)", dir.display());
        Err(self.key_error(key, Reason(reason)))
    }

    /// The keys that cannot change live whose value differs in `new`.
    pub fn restart_only_changes(&self, new: &Layered) -> Vec<&'static str> {
        self.keys
            .iter()
            .filter(|k| !k.live)
            .filter(|k| self.get(k.name).map(|v| &v.0) != new.get(k.name).map(|v| &v.0))
            .map(|k| k.name)
            .collect()
    }

    /// This configuration with the live keys of `new`: what is in use
    /// after a reload.
    pub fn with_live_of(&self, new: &Layered) -> Layered {
        let mut next = self.clone();
        for key in self.keys.iter().filter(|k| k.live) {
            match new.values.get(key.name) {
                Some(value) => next.values.insert(key.name, value.clone()),
                None => next.values.remove(key.name),
            };
        }
        next
    }
}

/// Puts `value` at the dotted path `name` of `root`.
fn insert(root: &mut toml::Table, name: &str, value: toml::Value) {
    match name.split_once('.') {
        Some((table, rest)) => {
            let inner = root
                .entry(table)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = inner {
                insert(inner, rest, value);
            }
        }
        None => {
            root.insert(name.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests;
