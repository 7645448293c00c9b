//! A release manifest from the wire, validated before anything touches the
//! filesystem: clean relative paths, known kinds, hashes, no duplicates, no
//! path that is both a file and a directory, and the symlink target rule.

use std::collections::{BTreeSet, HashMap};

use slipway_proto::{
    agent::v1::{FileEntry, FileKind},
    validate::{self, InvalidField},
};

/// Longest symlink target accepted, in bytes (Linux's PATH_MAX).
pub const MAX_SYMLINK_TARGET: u64 = 4096;

/// What an entry is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; executable when any x bit of its mode is set.
    File {
        /// Linked from the store's executable variant.
        executable: bool,
    },
    /// A symbolic link whose target is the object's content.
    Symlink,
}

/// One validated path of a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index in the request, for error messages (`files[3]`).
    pub index: usize,
    /// Relative, clean, '/'-separated path.
    pub path: String,
    /// File or symlink.
    pub kind: EntryKind,
    /// Content hash.
    pub sha256: String,
}

/// A validated release manifest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    entries: Vec<Entry>,
    /// The entries as they came, kept beside the release as the base of
    /// later deploys.
    wire: Vec<FileEntry>,
}

impl Manifest {
    /// Validates the request's `files`, naming the first bad field.
    pub fn from_wire(files: Vec<FileEntry>) -> Result<Self, InvalidField> {
        let wire = files.clone();
        let mut entries = Vec::with_capacity(files.len());
        let mut by_path: HashMap<String, usize> = HashMap::with_capacity(files.len());
        for (index, file) in files.into_iter().enumerate() {
            let field = |name: &str| format!("files[{index}].{name}");
            validate::relative_path(&field("path"), &file.path)?;
            validate::sha256(&field("sha256"), &file.sha256)?;
            let kind = match FileKind::try_from(file.kind) {
                Ok(FileKind::Regular) => EntryKind::File {
                    executable: file.mode & 0o111 != 0,
                },
                Ok(FileKind::Symlink) if file.size > MAX_SYMLINK_TARGET => {
                    return Err(InvalidField::new(
                        field("size"),
                        format!("a symlink target may be at most {MAX_SYMLINK_TARGET} bytes"),
                    ));
                }
                Ok(FileKind::Symlink) => EntryKind::Symlink,
                _ => {
                    return Err(InvalidField::new(
                        field("kind"),
                        "must be FILE_KIND_REGULAR or FILE_KIND_SYMLINK",
                    ));
                }
            };
            if let Some(first) = by_path.insert(file.path.clone(), index) {
                return Err(InvalidField::new(
                    field("path"),
                    format!("{:?} is listed twice (also files[{first}].path)", file.path),
                ));
            }
            entries.push(Entry {
                index,
                path: file.path,
                kind,
                sha256: file.sha256,
            });
        }
        // A file's ancestors must not be entries themselves: "a" as a file
        // and "a/b" cannot both exist.
        for entry in &entries {
            for (cut, _) in entry.path.match_indices('/') {
                if let Some(&parent) = by_path.get(&entry.path[..cut]) {
                    return Err(InvalidField::new(
                        format!("files[{parent}].path"),
                        format!(
                            "{:?} is a file but files[{}].path {:?} needs it to be a directory",
                            &entry.path[..cut],
                            entry.index,
                            entry.path
                        ),
                    ));
                }
            }
        }
        Ok(Self { entries, wire })
    }

    /// The entries as they came over the wire.
    pub fn wire(&self) -> &[FileEntry] {
        &self.wire
    }

    /// The entries in request order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every distinct content hash, in first-use order.
    pub fn hashes(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.entries
            .iter()
            .filter(|e| seen.insert(e.sha256.as_str()))
            .map(|e| e.sha256.clone())
            .collect()
    }

    /// Every directory the entries need, parents before children.
    pub fn dirs(&self) -> BTreeSet<&str> {
        // A parent is a strict prefix of its children, so it sorts first.
        self.entries
            .iter()
            .flat_map(|e| e.path.match_indices('/').map(|(cut, _)| &e.path[..cut]))
            .collect()
    }
}

/// Checks a symlink target from the store for the entry at `link`.
///
/// UTF-8, then [`validate::symlink_target`]: relative, `../` components only
/// at the start, staying inside the release.
pub fn check_symlink_target(entry: &Entry, target: &[u8]) -> Result<String, InvalidField> {
    let fail = |reason: String| InvalidField::new(format!("files[{}]", entry.index), reason);
    let target = std::str::from_utf8(target).map_err(|_| {
        fail(format!(
            "symlink {:?} has a target that is not UTF-8",
            entry.path
        ))
    })?;
    // The rule is shared with the control plane, which refuses at release
    // cut what no agent would accept.
    validate::symlink_target(&format!("files[{}]", entry.index), &entry.path, target)?;
    Ok(target.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn file(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: FileKind::Regular as i32,
            mode: 0o644,
            size: 1,
            sha256: SHA.into(),
        }
    }

    fn err(files: Vec<FileEntry>) -> InvalidField {
        Manifest::from_wire(files).unwrap_err()
    }

    #[test]
    fn accepts_a_clean_manifest() {
        let mut run = file("bin/run");
        run.mode = 0o755;
        let manifest = Manifest::from_wire(vec![file("a/b/c.txt"), run, file("a-b")]).unwrap();
        assert_eq!(manifest.len(), 3);
        assert_eq!(manifest.hashes(), vec![SHA.to_owned()]);
        assert_eq!(
            manifest.dirs().into_iter().collect::<Vec<_>>(),
            ["a", "a/b", "bin"]
        );
        assert_eq!(
            manifest.entries()[1].kind,
            EntryKind::File { executable: true }
        );
    }

    #[test]
    fn rejects_bad_paths_naming_the_field() {
        for bad in ["../x", "/etc/passwd", "a/../../x", "a//b", ""] {
            let e = err(vec![file("ok"), file(bad)]);
            assert_eq!(e.field, "files[1].path", "{bad}");
        }
    }

    #[test]
    fn rejects_bad_hash_kind_duplicates_and_file_dir_clashes() {
        let mut bad_hash = file("a");
        bad_hash.sha256 = "ABC".into();
        assert_eq!(err(vec![bad_hash]).field, "files[0].sha256");
        let mut no_kind = file("a");
        no_kind.kind = FileKind::Unspecified as i32;
        assert_eq!(err(vec![no_kind]).field, "files[0].kind");
        assert_eq!(
            err(vec![file("a"), file("b"), file("a")]).field,
            "files[2].path"
        );
        let clash = err(vec![file("a/b/c"), file("a/b")]);
        assert_eq!(clash.field, "files[1].path");
        assert!(
            clash.reason.contains("needs it to be a directory"),
            "{clash}"
        );
    }

    #[test]
    fn symlink_targets_must_stay_inside() {
        let entry = |path: &str| Entry {
            index: 4,
            path: path.into(),
            kind: EntryKind::Symlink,
            sha256: SHA.into(),
        };
        for ok in ["b", "./b", "../b", "../c/d", ".."] {
            assert_eq!(
                check_symlink_target(&entry("d/l"), ok.as_bytes()).unwrap(),
                ok
            );
        }
        // `s/../x` stays inside lexically but `..` would apply to wherever
        // `s` points.
        for bad in ["../../x", "/etc/passwd", "s/../..", "s/../x", "", "a\0b"] {
            let e = check_symlink_target(&entry("d/l"), bad.as_bytes()).unwrap_err();
            assert_eq!(e.field, "files[4]", "{bad}");
        }
    }
}
