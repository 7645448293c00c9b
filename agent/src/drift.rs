//! Drift of a release on disk: its tree walked and compared with the
//! manifest kept beside it, every file hashed as it streams (a symlink by
//! its target), what differs listed by path with exact counts and a bounded
//! list of findings. Links to shared paths, and what a manifest had at
//! their place, are not drift. Blocking.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    ffi::OsStr,
    fs::{self, FileType},
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::Path,
};

use sha2::{Digest, Sha256};
use slipway_proto::agent::v1::{DriftCounts, DriftFinding, DriftKind, FileEntry, FileKind};

use crate::{
    fsutil,
    layout::AppRoot,
    manifests,
    release::{self, ReleaseError},
    shared,
};

/// Findings listed when a request says 0.
pub const DEFAULT_FINDINGS: usize = 50;
/// Most findings a request may ask for.
pub const MAX_FINDINGS: usize = 1000;
/// Release ids listed at most.
pub const MAX_RELEASES: usize = 1000;
/// A finding's path is cut at this many bytes.
const MAX_PATH: usize = 1024;

/// How a release on disk compares with its manifest.
#[derive(Debug, Default)]
pub struct Report {
    /// Paths that differ, by kind.
    pub counts: DriftCounts,
    /// The findings with the smallest paths, at most `limit`.
    findings: BTreeMap<String, DriftFinding>,
    limit: usize,
    /// Files and symlinks compared.
    pub files_checked: u64,
    /// Bytes read to hash them.
    pub bytes_hashed: u64,
    /// Hashes of the stored objects that modified or retyped files were
    /// built from: the objects an edit through a hard link may have reached.
    pub suspects: BTreeSet<String>,
}

impl Report {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    fn found(&mut self, path: &str, kind: DriftKind, detail: impl Into<String>) {
        let counter = match kind {
            DriftKind::Modified => &mut self.counts.modified,
            DriftKind::Missing => &mut self.counts.missing,
            DriftKind::Added => &mut self.counts.added,
            DriftKind::TypeChanged => &mut self.counts.type_changed,
            DriftKind::Unreadable | DriftKind::Unspecified => &mut self.counts.unreadable,
        };
        *counter += 1;
        let path = cut(path);
        let finding = DriftFinding {
            path: path.clone(),
            kind: kind as i32,
            detail: detail.into(),
        };
        self.findings.insert(path, finding);
        if self.findings.len() > self.limit {
            self.findings.pop_last();
        }
    }

    /// Every finding counted.
    pub fn total(&self) -> u64 {
        let c = &self.counts;
        c.modified + c.missing + c.added + c.type_changed + c.unreadable
    }

    /// The listed findings, by path, and whether more were counted.
    pub fn findings(&self) -> (Vec<DriftFinding>, bool) {
        let listed: Vec<DriftFinding> = self.findings.values().cloned().collect();
        let truncated = self.total() > listed.len() as u64;
        (listed, truncated)
    }
}

/// The check of one app: what `current` is, which release was compared,
/// or why none could be, and the releases on disk.
#[derive(Debug, Default)]
pub struct Checked {
    /// What `current` points to.
    pub current: Option<String>,
    /// The release compared with its manifest.
    pub checked: Option<String>,
    /// Why the release's files could not be compared.
    pub unchecked: Option<String>,
    /// The comparison.
    pub report: Report,
    /// Release ids on disk, oldest first, at most [`MAX_RELEASES`].
    pub releases: Vec<String>,
    /// More releases were on disk than listed.
    pub releases_truncated: bool,
}

/// Checks `release` (by default the one `current` points to) of `app`
/// against the manifest kept beside it, listing at most `limit` findings.
pub fn check(app: &AppRoot, release: Option<&str>, limit: usize) -> Result<Checked, ReleaseError> {
    let mut checked = Checked {
        report: Report::new(limit),
        ..Checked::default()
    };
    match release::current_release(app) {
        Ok(current) => checked.current = current,
        Err(err @ ReleaseError::CurrentNotSymlink { .. }) => {
            checked.unchecked = Some(err.to_string());
        }
        Err(err) => return Err(err),
    }
    let mut ids = release::list(app)?;
    checked.releases_truncated = ids.len() > MAX_RELEASES;
    ids.truncate(MAX_RELEASES);
    checked.releases = ids;
    let Some(target) = release
        .map(str::to_owned)
        .or_else(|| checked.current.clone())
    else {
        return Ok(checked);
    };
    let dir = app.release(&target);
    if !dir.is_dir() {
        checked.unchecked = Some(format!(
            "release {target} is not on disk ({} is missing)",
            dir.display()
        ));
    } else if let Some(manifest) = manifests::load(app, &target) {
        checked.report = compare(&dir, &manifest, limit)?;
        checked.checked = Some(target);
    } else {
        checked.unchecked = Some(format!(
            "no manifest is kept for release {target}, so its files cannot be checked; \
             a repair rebuilds it with one"
        ));
    }
    Ok(checked)
}

/// What a manifest path is.
#[derive(Clone, Copy)]
enum Expected<'a> {
    File {
        sha256: &'a str,
        size: u64,
        executable: bool,
    },
    Symlink {
        sha256: &'a str,
    },
}

impl<'a> Expected<'a> {
    fn of(entry: &'a FileEntry) -> Self {
        if entry.kind == FileKind::Symlink as i32 {
            Expected::Symlink {
                sha256: &entry.sha256,
            }
        } else {
            Expected::File {
                sha256: &entry.sha256,
                size: entry.size,
                executable: entry.mode & 0o111 != 0,
            }
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Expected::File { .. } => "a regular file",
            Expected::Symlink { .. } => "a symlink",
        }
    }
}

/// The walk of one release tree.
struct Walk<'a> {
    files: HashMap<&'a str, Expected<'a>>,
    dirs: HashSet<&'a str>,
    /// Paths a shared link replaced: the manifest's entries there are not
    /// missing.
    shared: Vec<String>,
    report: Report,
}

/// Compares the tree at `release` with `manifest`.
fn compare(release: &Path, manifest: &[FileEntry], limit: usize) -> Result<Report, ReleaseError> {
    let mut walk = Walk {
        files: manifest
            .iter()
            .map(|e| (e.path.as_str(), Expected::of(e)))
            .collect(),
        dirs: manifest
            .iter()
            .flat_map(|e| e.path.match_indices('/').map(|(cut, _)| &e.path[..cut]))
            .collect(),
        shared: Vec::new(),
        report: Report::new(limit),
    };
    // Directories still to read: where, the path relative to the release,
    // and whether the manifest has it.
    let mut stack = vec![(release.to_owned(), String::new(), true)];
    while let Some((dir, rel, expected)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if rel.is_empty() => return Err(release::io_err("read", &dir)(err)),
            Err(err) => {
                walk.report
                    .found(&rel, DriftKind::Unreadable, format!("cannot list: {err}"));
                continue;
            }
        };
        let mut empty = true;
        for entry in entries {
            empty = false;
            let entry = entry.map_err(release::io_err("read", &dir))?;
            let path = join(&rel, &entry.file_name());
            let kind = entry
                .file_type()
                .map_err(release::io_err("inspect", &entry.path()))?;
            if let Some(subdir) = walk.entry(&entry.path(), &path, kind) {
                stack.push((entry.path(), path, subdir));
            }
        }
        if empty && !expected {
            walk.report
                .found(&format!("{rel}/"), DriftKind::Added, "an empty directory");
        }
    }
    let mut missing: Vec<&str> = walk.files.keys().copied().collect();
    missing.sort_unstable();
    for path in missing {
        let shadowed = walk.shared.iter().any(|s| {
            path == s
                || path
                    .strip_prefix(s.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
        if !shadowed {
            walk.report.found(path, DriftKind::Missing, "not on disk");
        }
    }
    Ok(walk.report)
}

impl Walk<'_> {
    /// Compares one entry; returns whether to descend into it (as a
    /// directory the manifest has, or not) when it is a directory.
    fn entry(&mut self, full: &Path, path: &str, kind: FileType) -> Option<bool> {
        let expected = self.files.remove(path);
        if kind.is_symlink() {
            self.symlink(full, path, expected);
            return None;
        }
        if kind.is_dir() {
            return match expected {
                Some(expected) => {
                    let detail = format!("a directory, expected {}", expected.noun());
                    self.report.found(path, DriftKind::TypeChanged, detail);
                    None
                }
                None => Some(self.dirs.contains(path)),
            };
        }
        let noun = if kind.is_file() {
            "a regular file"
        } else {
            "a special file"
        };
        match expected {
            Some(Expected::File {
                sha256,
                size,
                executable,
            }) if kind.is_file() => self.file(full, path, sha256, size, executable),
            Some(expected) => {
                let detail = format!("{noun}, expected {}", expected.noun());
                self.report.found(path, DriftKind::TypeChanged, detail);
            }
            None if self.dirs.contains(path) => {
                let detail = format!("{noun}, expected a directory");
                self.report.found(path, DriftKind::TypeChanged, detail);
            }
            None => self.report.found(path, DriftKind::Added, noun),
        }
        None
    }

    fn file(&mut self, full: &Path, path: &str, sha256: &str, size: u64, executable: bool) {
        self.report.files_checked += 1;
        let meta = match fs::symlink_metadata(full) {
            Ok(meta) => meta,
            Err(err) => {
                self.report
                    .found(path, DriftKind::Unreadable, err.to_string());
                return;
            }
        };
        let differs = if meta.len() != size {
            Some(format!(
                "content differs ({} bytes, expected {size})",
                meta.len()
            ))
        } else {
            match fsutil::hash_file(full) {
                Ok((hash, read)) => {
                    self.report.bytes_hashed += read;
                    (hash != sha256).then(|| "content differs".to_owned())
                }
                Err(err) => {
                    self.report
                        .found(path, DriftKind::Unreadable, err.to_string());
                    return;
                }
            }
        };
        let on_disk = meta.permissions().mode() & 0o111 != 0;
        let differs = differs.or_else(|| {
            (on_disk != executable).then(|| {
                let said = |set: bool| if set { "set" } else { "unset" };
                format!(
                    "executable bit {}, expected {}",
                    said(on_disk),
                    said(executable)
                )
            })
        });
        if let Some(detail) = differs {
            self.suspects(sha256);
            self.report.found(path, DriftKind::Modified, detail);
        }
    }

    fn symlink(&mut self, full: &Path, path: &str, expected: Option<Expected<'_>>) {
        let target = match fs::read_link(full) {
            Ok(target) => target,
            Err(err) => {
                self.report
                    .found(path, DriftKind::Unreadable, err.to_string());
                return;
            }
        };
        if target == shared::target(path) {
            self.shared.push(path.to_owned());
            return;
        }
        let shown = target.display();
        match expected {
            Some(Expected::Symlink { sha256 }) => {
                self.report.files_checked += 1;
                let hash = hex::encode(Sha256::digest(target.as_os_str().as_bytes()));
                if hash != sha256 {
                    let detail = format!("symlink target {shown} differs");
                    self.report.found(path, DriftKind::Modified, detail);
                }
            }
            Some(expected @ Expected::File { sha256, .. }) => {
                self.suspects(sha256);
                let detail = format!("a symlink to {shown}, expected {}", expected.noun());
                self.report.found(path, DriftKind::TypeChanged, detail);
            }
            None if self.dirs.contains(path) => {
                let detail = format!("a symlink to {shown}, expected a directory");
                self.report.found(path, DriftKind::TypeChanged, detail);
            }
            None => {
                let detail = format!("a symlink to {shown}");
                self.report.found(path, DriftKind::Added, detail);
            }
        }
    }

    fn suspects(&mut self, sha256: &str) {
        self.report.suspects.insert(sha256.to_owned());
    }
}

/// `rel/name`, the name lossily when it is not UTF-8.
fn join(rel: &str, name: &OsStr) -> String {
    let name = name.to_string_lossy();
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// `path` cut to [`MAX_PATH`] bytes on a character boundary, marked `…`.
fn cut(path: &str) -> String {
    if path.len() <= MAX_PATH {
        return path.to_owned();
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
mod tests;
