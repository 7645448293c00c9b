//! Writing certificates and keys: private directories, atomic PEM files
//! that never replace an existing one unless asked.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

use super::Issued;

pub(super) fn paths_for(dir: &Path, stem: &str) -> Issued {
    Issued {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    }
}

pub(super) fn write_pair(
    issued: &Issued,
    cert: &str,
    key: &str,
    force: bool,
) -> anyhow::Result<()> {
    if !force {
        refuse_existing(&[issued.cert.clone(), issued.key.clone()])?;
    }
    write_pem(&issued.key, key, force)?;
    write_pem(&issued.cert, cert, force)
}

pub(super) fn refuse_existing(paths: &[PathBuf]) -> anyhow::Result<()> {
    let existing: Vec<String> = paths
        .iter()
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist{}; pass --force to replace {}",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}

/// Creates the directory private to its owner when it does not exist.
pub(super) fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Writes a PEM file atomically: a temporary file in the same directory
/// (mode 0600, kept for keys, 0644 for certificates), renamed into place.
/// Without `force` the rename refuses to replace an existing file.
pub(super) fn write_pem(path: &Path, pem: &str, force: bool) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let fail = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".slipctl-")
        .tempfile_in(dir)
        .with_context(fail)?;
    tmp.write_all(pem.as_bytes()).with_context(fail)?;
    let is_key = path.extension().is_some_and(|ext| ext == "key");
    let mode = if is_key { 0o600 } else { 0o644 };
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(fail)?;
    tmp.as_file().sync_all().with_context(fail)?;
    if force {
        tmp.persist(path)
            .map_err(|err| err.error)
            .with_context(fail)?;
    } else {
        tmp.persist_noclobber(path)
            .map_err(|err| err.error)
            .with_context(|| {
                format!(
                    "{} already exists; pass --force to replace it",
                    path.display()
                )
            })?;
    }
    Ok(())
}
