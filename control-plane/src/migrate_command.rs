//! `slipway-control-plane migrate`: copies a whole store between backends
//! (sled to etcd, or etcd to sled) with the library's
//! [`store::migrate`](crate::store::migrate), then prints what it checked.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::store::{
    Backend, EtcdBackend, EtcdSettings, EtcdTls, SledBackend,
    etcd::{DEFAULT_MAX_TXN_OPS, DEFAULT_PREFIX},
    migrate::{self, MigrateError},
};

/// sled's page cache while migrating.
const CACHE_BYTES: u64 = 64 << 20;

/// The flags of `migrate`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The store to copy: sled:DIR or etcd:URL[,URL...].
    #[arg(long, value_name = "STORE", value_parser = parse_location)]
    pub from: Location,
    /// The store to fill, which must hold no record: sled:DIR (absent or
    /// empty) or etcd:URL[,URL...] (nothing under the prefix).
    #[arg(long, value_name = "STORE", value_parser = parse_location)]
    pub to: Location,
    /// CA of the etcd members' certificates (https:// endpoints).
    #[arg(long, value_name = "FILE", requires_all = ["etcd_cert", "etcd_key"])]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_ca", "etcd_key"])]
    pub etcd_cert: Option<PathBuf>,
    /// Its key.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_ca", "etcd_cert"])]
    pub etcd_key: Option<PathBuf>,
    /// The prefix of the store's keys in etcd (the replicas' store.etcd.prefix).
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Operations per etcd transaction; must not exceed the members'
    /// --max-txn-ops.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TXN_OPS)]
    pub max_txn_ops: usize,
}

/// One side of a migration.
#[derive(Clone, Debug)]
pub enum Location {
    /// A sled data directory.
    Sled(PathBuf),
    /// etcd client URLs.
    Etcd(Vec<String>),
}

fn parse_location(text: &str) -> Result<Location, String> {
    match text.split_once(':') {
        Some(("sled", dir)) if !dir.is_empty() => Ok(Location::Sled(PathBuf::from(dir))),
        Some(("etcd", urls)) => {
            let urls: Vec<String> = urls
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            if urls.is_empty() {
                return Err("etcd: needs at least one client URL".into());
            }
            Ok(Location::Etcd(urls))
        }
        _ => Err("expected sled:DIR or etcd:URL[,URL...]".into()),
    }
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sled source is not a store.
    #[error("{0} holds no sled store")]
    NoSource(String),
    /// The sled target directory has files.
    #[error("the target directory {0} is not empty; give a new or empty directory")]
    TargetDirNotEmpty(String),
    /// sled's lock is held.
    #[error("the sled store in {0} is in use; stop the control plane running on it, then migrate")]
    InUse(String),
    /// Opening a sled store failed otherwise.
    #[error("cannot open the sled store")]
    Sled(#[source] crate::store::OpenError),
    /// Opening etcd failed.
    #[error("cannot open the etcd store")]
    Etcd(#[source] crate::store::EtcdOpenError),
    /// Reading a directory failed.
    #[error("cannot read {path}")]
    Io {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The migration itself failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Opens both sides, migrates and returns the lines to print. Blocking.
pub fn run(args: &MigrateArgs) -> Result<Vec<String>, Error> {
    let from = open(args, &args.from, Side::Source)?;
    let to = open(args, &args.to, Side::Target)?;
    let migrated = migrate::migrate(from.as_ref(), to.as_ref())?;
    let mut lines: Vec<String> = migrated
        .digest
        .trees
        .iter()
        .filter(|t| t.count > 0)
        .map(|t| format!("  {:<24} {:>10}", t.tree.name(), t.count))
        .collect();
    lines.push(migrated.summary());
    Ok(lines)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
}

fn open(args: &MigrateArgs, location: &Location, side: Side) -> Result<Arc<dyn Backend>, Error> {
    match location {
        Location::Sled(dir) => open_sled(dir, side),
        Location::Etcd(urls) => {
            let mut settings = EtcdSettings::new(urls.clone());
            settings.prefix = args.prefix.clone();
            settings.max_txn_ops = args.max_txn_ops;
            if let (Some(ca), Some(cert), Some(key)) =
                (&args.etcd_ca, &args.etcd_cert, &args.etcd_key)
            {
                settings.tls = Some(EtcdTls {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            Ok(Arc::new(EtcdBackend::open(&settings).map_err(Error::Etcd)?))
        }
    }
}

fn open_sled(dir: &Path, side: Side) -> Result<Arc<dyn Backend>, Error> {
    let shown = dir.display().to_string();
    match side {
        // Opening would make an empty store where there is none.
        Side::Source if !dir.join("db").is_file() => return Err(Error::NoSource(shown)),
        Side::Target if has_entries(dir)? => return Err(Error::TargetDirNotEmpty(shown)),
        _ => {}
    }
    match SledBackend::open(dir, CACHE_BYTES) {
        Ok(backend) => Ok(Arc::new(backend)),
        Err(err) if locked(&err) => Err(Error::InUse(shown)),
        Err(err) => Err(Error::Sled(err)),
    }
}

/// Whether sled failed on its directory lock (it says so only in text).
fn locked(err: &crate::store::OpenError) -> bool {
    matches!(err, crate::store::OpenError::Io { source: sled::Error::Io(io), .. }
        if io.to_string().contains("could not acquire lock"))
}

fn has_entries(dir: &Path) -> Result<bool, Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Io {
            path: dir.display().to_string(),
            source,
        }),
    }
}
