//! Drift of real release trees in temp dirs, built the way deploys build
//! them: hand edits, deletions, additions, type changes and symlinks found
//! by path; a tree as built and its shared links found clean; the bounds;
//! what cannot be checked; and a repair's discard and fresh tree.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt, symlink},
};

use slipway_proto::agent::v1::{DriftKind, FileEntry};

use super::*;
use crate::{
    activation::SharedPath,
    manifest::Manifest,
    release::{
        Build,
        fixture::{Fixture, fixture},
        materialise,
    },
};

fn shared_log() -> Vec<SharedPath> {
    vec![SharedPath {
        path: "log".into(),
        file: false,
        required: false,
    }]
}

impl Fixture {
    fn sample_files(&self) -> Vec<FileEntry> {
        vec![
            self.file("index.html", 0o644, b"<h1>v1</h1>\n"),
            self.file("bin/start", 0o755, b"#!/bin/sh\necho start\n"),
            self.file("config/app.toml", 0o644, b"port = 8080\n"),
            self.file("log/.gitkeep", 0o644, b""),
            self.link("public", "config"),
        ]
    }

    /// Builds release `id` as a deploy does (shared `log/` linked) and
    /// makes it current; returns whether it was built.
    fn build_current(&self, id: &str, files: Vec<FileEntry>, rebuild: bool) -> bool {
        let manifest = Manifest::from_wire(files).unwrap();
        crate::shared::prepare(&self.app, &shared_log()).unwrap();
        let build = Build {
            copy: false,
            rebuild,
            progress: &mut |_, _| {},
            finish: &mut |dir| Ok(crate::shared::link(dir, &shared_log()).map(drop)?),
            prestaged: &mut |_, _| None,
        };
        let built = materialise(&self.app, &self.store, id, "d-1", &manifest, build)
            .unwrap()
            .is_new();
        release::switch(&self.app, id).unwrap();
        built
    }

    fn drift_check(&self, limit: usize) -> Checked {
        check(&self.app, None, limit).unwrap()
    }

    fn current_dir(&self) -> std::path::PathBuf {
        self.app.current()
    }
}

fn found(checked: &Checked) -> Vec<(String, DriftKind)> {
    let (findings, _) = checked.report.findings();
    findings
        .into_iter()
        .map(|f| (f.path.clone(), f.kind()))
        .collect()
}

/// What a person at the host does: make the read-only file writable and
/// write through the release path (so through the hard link).
fn edit(path: &std::path::Path, content: &[u8]) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(path, content).unwrap();
}

#[test]
fn a_release_as_built_is_clean_shared_links_included() {
    let f = fixture();
    f.build_current("r1", f.sample_files(), false);
    let checked = f.drift_check(DEFAULT_FINDINGS);
    assert_eq!(checked.current.as_deref(), Some("r1"));
    assert_eq!(checked.checked.as_deref(), Some("r1"));
    assert_eq!(checked.unchecked, None);
    assert_eq!(found(&checked), []);
    assert_eq!(checked.report.total(), 0);
    // log/.gitkeep was replaced by the shared link and is not counted.
    assert_eq!(checked.report.files_checked, 4);
    assert_eq!(checked.releases, ["r1"]);
}

#[test]
fn hand_edits_deletions_additions_and_retypes_are_found_by_path() {
    let f = fixture();
    f.build_current("r1", f.sample_files(), false);
    let current = f.current_dir();
    edit(&current.join("index.html"), b"<h1>hacked</h1>\n");
    fs::remove_file(current.join("config/app.toml")).unwrap();
    fs::write(current.join("config/extra.toml"), "x = 1\n").unwrap();
    fs::create_dir(current.join("cache")).unwrap();
    fs::set_permissions(current.join("bin/start"), fs::Permissions::from_mode(0o444)).unwrap();
    fs::remove_file(current.join("public")).unwrap();
    symlink("bin", current.join("public")).unwrap();

    let checked = f.drift_check(DEFAULT_FINDINGS);
    assert_eq!(
        found(&checked),
        [
            ("bin/start".to_owned(), DriftKind::Modified),
            ("cache/".to_owned(), DriftKind::Added),
            ("config/app.toml".to_owned(), DriftKind::Missing),
            ("config/extra.toml".to_owned(), DriftKind::Added),
            ("index.html".to_owned(), DriftKind::Modified),
            ("public".to_owned(), DriftKind::Modified),
        ]
    );
    let (findings, truncated) = checked.report.findings();
    assert!(!truncated);
    assert_eq!(findings[0].detail, "executable bit unset, expected set");
    assert_eq!(
        findings[4].detail,
        "content differs (16 bytes, expected 12)"
    );
    assert_eq!(findings[5].detail, "symlink target bin differs");
    let counts = &checked.report.counts;
    assert_eq!(
        (counts.modified, counts.missing, counts.added),
        (3, 1, 2),
        "{counts:?}"
    );
    // The objects behind the modified files are the suspects.
    let index = f.sample_files()[0].sha256.clone();
    assert!(checked.report.suspects.contains(&index));

    // A directory where a file was, a file where a directory was.
    fs::remove_file(current.join("index.html")).unwrap();
    fs::create_dir(current.join("index.html")).unwrap();
    fs::remove_dir_all(current.join("bin")).unwrap();
    fs::write(current.join("bin"), "").unwrap();
    let checked = f.drift_check(DEFAULT_FINDINGS);
    let kinds = found(&checked);
    assert!(kinds.contains(&("index.html".to_owned(), DriftKind::TypeChanged)));
    assert!(kinds.contains(&("bin".to_owned(), DriftKind::TypeChanged)));
    assert!(kinds.contains(&("bin/start".to_owned(), DriftKind::Missing)));
}

#[test]
fn findings_are_bounded_and_the_counts_exact() {
    let f = fixture();
    f.build_current("r1", f.sample_files(), false);
    let dir = f.current_dir().join("junk");
    fs::create_dir(&dir).unwrap();
    for i in 0..30 {
        fs::write(dir.join(format!("{i:02}")), "x").unwrap();
    }
    let checked = f.drift_check(5);
    let (findings, truncated) = checked.report.findings();
    assert!(truncated);
    assert_eq!(checked.report.counts.added, 30);
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["junk/00", "junk/01", "junk/02", "junk/03", "junk/04"]
    );
}

#[test]
fn what_cannot_be_checked_says_why() {
    let f = fixture();
    let nothing = f.drift_check(DEFAULT_FINDINGS);
    assert_eq!(
        (nothing.current, nothing.checked, nothing.unchecked),
        (None, None, None)
    );

    f.build_current("r1", f.sample_files(), false);
    crate::manifests::remove(&f.app, "r1");
    let unchecked = f.drift_check(DEFAULT_FINDINGS).unchecked.unwrap();
    assert!(
        unchecked.contains("no manifest is kept for release r1"),
        "{unchecked}"
    );

    fs::remove_file(f.current_dir()).unwrap();
    symlink("releases/r9", f.current_dir()).unwrap();
    let checked = f.drift_check(DEFAULT_FINDINGS);
    assert_eq!(checked.current.as_deref(), Some("r9"));
    assert!(
        checked
            .unchecked
            .unwrap()
            .contains("release r9 is not on disk")
    );

    fs::remove_file(f.current_dir()).unwrap();
    fs::create_dir(f.current_dir()).unwrap();
    let checked = f.drift_check(DEFAULT_FINDINGS);
    assert!(checked.unchecked.unwrap().contains("is not a symlink"));
}

#[test]
fn a_repair_discards_corrupted_objects_and_swaps_in_a_fresh_tree() {
    let f = fixture();
    let files = f.sample_files();
    f.build_current("r1", files.clone(), false);
    let current = f.current_dir();
    let index = &files[0];
    let start = &files[1];
    edit(&current.join("index.html"), b"<h1>hacked</h1>\n");
    edit(&current.join("bin/start"), b"#!/bin/sh\necho pwned\n");
    let before = fs::metadata(current.join("config/app.toml")).unwrap().ino();
    let tree = fs::metadata(f.app.release("r1")).unwrap().ino();

    // The edit went through the hard links into the store.
    let suspects = f.drift_check(DEFAULT_FINDINGS).report.suspects;
    let mut discarded = 0;
    for sha in &suspects {
        discarded += f.store.discard_if_corrupt(sha).unwrap();
    }
    assert_eq!(discarded, 2, "the object and the executable variant");
    let wanted = std::slice::from_ref(&index.sha256);
    assert_eq!(f.store.missing(wanted), wanted);
    assert!(
        f.store.contains(&start.sha256),
        "only start's .x copy was edited"
    );
    assert_eq!(f.store.discard_if_corrupt(&files[2].sha256).unwrap(), 0);

    // What the control plane ships again, then the fresh tree.
    f.put(b"<h1>v1</h1>\n");
    assert!(f.build_current("r1", files, true), "built again");
    let checked = f.drift_check(DEFAULT_FINDINGS);
    assert_eq!(found(&checked), []);
    assert_eq!(
        fs::read(current.join("index.html")).unwrap(),
        b"<h1>v1</h1>\n"
    );
    let after = fs::metadata(current.join("config/app.toml")).unwrap().ino();
    assert_eq!(before, after, "the same stored object, linked again");
    let fresh = fs::metadata(f.app.release("r1")).unwrap().ino();
    assert_ne!(tree, fresh, "a new directory took the release's place");
    assert!(fs::read_dir(f.app.trash()).unwrap().next().is_none());
    assert!(fs::read_dir(f.app.staging()).unwrap().next().is_none());
}
