//! Releases on real files in temp dirs: materialise, switch, roll back,
//! prune, and the refusals.

use std::{fs, os::unix::fs::MetadataExt};

use super::{fixture::*, *};

impl Fixture {
    /// A release whose `VERSION` file says `id`.
    fn manifest(&self, id: &str) -> Manifest {
        Manifest::from_wire(vec![
            self.file("VERSION", 0o644, id.as_bytes()),
            self.file("bin/run", 0o755, b"#!/bin/sh\necho run\n"),
            self.file("lib/deep/x.txt", 0o644, b"x"),
            self.link("lib/VERSION", "../VERSION"),
            self.link("latest", "lib/deep"),
        ])
        .unwrap()
    }

    fn materialise(&self, id: &str, manifest: &Manifest) -> Result<bool, ReleaseError> {
        self.materialise_with(id, manifest, false)
    }

    fn materialise_with(
        &self,
        id: &str,
        manifest: &Manifest,
        copy: bool,
    ) -> Result<bool, ReleaseError> {
        preflight(&self.store, manifest, &KnownObjects::default())?;
        let build = Build {
            copy,
            rebuild: false,
            progress: &mut |_, _| {},
            finish: &mut |_| Ok(()),
            prestaged: &mut |_, _| None,
        };
        materialise(
            &self.app,
            &self.store,
            id,
            &format!("d-{id}"),
            manifest,
            build,
        )
        .map(|placed| placed.is_new())
    }

    fn deploy(&self, id: &str) {
        let manifest = self.manifest(id);
        self.materialise(id, &manifest).unwrap();
        switch(&self.app, id).unwrap();
        self.assert_current(id);
    }

    /// `current` resolves to a complete release with the right content.
    fn assert_current(&self, id: &str) {
        assert_eq!(current_release(&self.app).unwrap().as_deref(), Some(id));
        let target = fs::read_link(self.app.current()).unwrap();
        assert_eq!(target, Path::new("releases").join(id), "relative target");
        let current = self.app.current();
        assert_eq!(fs::read(current.join("VERSION")).unwrap(), id.as_bytes());
        assert_eq!(
            fs::read(current.join("lib/VERSION")).unwrap(),
            id.as_bytes()
        );
        assert_eq!(fs::read(current.join("latest/x.txt")).unwrap(), b"x");
    }
}

#[test]
fn materialise_links_files_from_the_store_and_makes_symlinks() {
    let f = fixture();
    let manifest = f.manifest("r1");
    assert!(f.materialise("r1", &manifest).unwrap());
    let release = f.app.release("r1");
    let version = fs::metadata(release.join("VERSION")).unwrap();
    let stored = fs::metadata(f.store.path(&manifest.entries()[0].sha256, false)).unwrap();
    assert_eq!(
        version.ino(),
        stored.ino(),
        "a hard link to the store object"
    );
    assert_eq!(version.mode() & 0o777, 0o444);
    let run = fs::metadata(release.join("bin/run")).unwrap();
    assert_eq!(run.mode() & 0o777, 0o555);
    assert_eq!(
        fs::read_link(release.join("lib/VERSION")).unwrap(),
        Path::new("../VERSION")
    );
    let dir = fs::metadata(release.join("lib/deep")).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o755);
    assert!(fs::read_dir(f.app.staging()).unwrap().next().is_none());

    // Only complete releases are renamed into place, so one that exists is
    // reused as it is.
    assert!(!f.materialise("r1", &manifest).unwrap());
}

#[test]
fn switch_and_rollback_keep_current_on_a_complete_release() {
    let f = fixture();
    assert_eq!(current_release(&f.app).unwrap(), None);
    f.deploy("r1");
    f.deploy("r2");
    switch(&f.app, "r1").unwrap();
    f.assert_current("r1");
    let leftovers: Vec<_> = fs::read_dir(f.app.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(".current."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let err = switch(&f.app, "r9").unwrap_err();
    assert_eq!(err.to_string(), "release r9 is not on this host");
    f.assert_current("r1");
}

#[test]
fn a_failed_materialise_leaves_no_release_and_current_untouched() {
    let f = fixture();
    f.deploy("r1");
    let mut manifest = f.manifest("r2");
    // Lose an object after preflight, as a disk error would.
    let lost = f.store.path(&manifest.entries()[2].sha256, false);
    preflight(&f.store, &manifest, &KnownObjects::default()).unwrap();
    fs::remove_file(&lost).unwrap();
    let build = Build {
        copy: false,
        rebuild: false,
        progress: &mut |_, _| {},
        finish: &mut |_| Ok(()),
        prestaged: &mut |_, _| None,
    };
    let err = materialise(&f.app, &f.store, "r2", "d-r2", &manifest, build).unwrap_err();
    assert!(matches!(err, ReleaseError::Io { .. }), "{err}");
    assert!(!f.app.release("r2").exists());
    assert!(fs::read_dir(f.app.staging()).unwrap().next().is_none());
    f.assert_current("r1");
    manifest = f.manifest("r2");
    assert!(f.materialise("r2", &manifest).unwrap());
}

#[test]
fn missing_objects_and_escaping_symlinks_are_refused_before_building() {
    let f = fixture();
    let mut missing = f.file("a", 0o644, b"a");
    missing.sha256 = "ab".repeat(32);
    let manifest = Manifest::from_wire(vec![missing, f.file("b", 0o644, b"b")]).unwrap();
    let err = preflight(&f.store, &manifest, &KnownObjects::default()).unwrap_err();
    assert_eq!(err.to_string(), "1 objects are missing; upload them first");

    for target in ["../../etc/passwd", "/etc/passwd", "lib/s/../.."] {
        let manifest = Manifest::from_wire(vec![
            f.file("lib/x", 0o644, b"x"),
            f.link("lib/evil", target),
        ])
        .unwrap();
        let err = preflight(&f.store, &manifest, &KnownObjects::default()).unwrap_err();
        assert!(
            matches!(&err, ReleaseError::Invalid(e) if e.field == "files[1]"),
            "{target}: {err}"
        );
    }
    assert!(list(&f.app).unwrap().is_empty());
}

#[test]
fn a_current_that_is_not_a_symlink_is_left_alone() {
    let f = fixture();
    f.materialise("r1", &f.manifest("r1")).unwrap();
    fs::create_dir(f.app.current()).unwrap();
    let err = switch(&f.app, "r1").unwrap_err();
    assert!(
        matches!(err, ReleaseError::CurrentNotSymlink { .. }),
        "{err}"
    );
    assert!(fs::symlink_metadata(f.app.current()).unwrap().is_dir());
}

#[test]
fn copy_mode_makes_private_writable_copies() {
    let f = fixture();
    let manifest = f.manifest("r1");
    assert!(f.materialise_with("r1", &manifest, true).unwrap());
    let release = f.app.release("r1");
    let version = fs::metadata(release.join("VERSION")).unwrap();
    assert_eq!(version.nlink(), 1, "not linked to the store");
    assert_eq!(version.mode() & 0o777, 0o644);
    let run = fs::metadata(release.join("bin/run")).unwrap();
    assert_eq!((run.nlink(), run.mode() & 0o777), (1, 0o755));
    // The app may edit its files; the store and other releases do not see it.
    fs::write(release.join("VERSION"), b"edited").unwrap();
    let stored = f.store.path(&manifest.entries()[0].sha256, false);
    assert_eq!(fs::read(stored).unwrap(), b"r1");
    assert_eq!(
        fs::read_link(release.join("lib/VERSION")).unwrap(),
        Path::new("../VERSION"),
        "symlinks are kept"
    );
}

#[test]
fn identical_files_are_stored_once_across_releases() {
    let f = fixture();
    f.deploy("r1");
    f.deploy("r2");
    let one = fs::metadata(f.app.release("r1").join("bin/run")).unwrap();
    let two = fs::metadata(f.app.release("r2").join("bin/run")).unwrap();
    assert_eq!(one.ino(), two.ino(), "one stored object behind both");
}

#[test]
fn the_staging_step_runs_before_publishing_and_its_failure_publishes_nothing() {
    let f = fixture();
    let manifest = f.manifest("r1");
    let build = Build {
        copy: false,
        rebuild: false,
        progress: &mut |_, _| {},
        finish: &mut |staging| {
            assert!(staging.starts_with(f.app.staging()));
            Err(ReleaseError::NotOnHost {
                release_id: "x".into(),
            })
        },
        prestaged: &mut |_, _| None,
    };
    assert!(materialise(&f.app, &f.store, "r1", "d1", &manifest, build).is_err());
    assert!(!f.app.release("r1").exists());
    assert!(fs::read_dir(f.app.staging()).unwrap().next().is_none());
}

#[test]
fn leftovers_are_cleared_and_current_can_be_removed() {
    let f = fixture();
    f.deploy("r1");
    fs::create_dir(f.app.staging().join("r9.d9")).unwrap();
    symlink("releases/r1", f.app.root().join(".current.0000")).unwrap();
    assert_eq!(clear_dir(&f.app.staging()).unwrap(), 1);
    assert_eq!(clear_current_temps(&f.app).unwrap(), 1);
    remove_current(&f.app).unwrap();
    assert_eq!(current_release(&f.app).unwrap(), None);
    remove_current(&f.app).unwrap();
}

#[test]
fn staging_names_fit_in_a_directory_entry() {
    assert_eq!(staging_name("r1", "d1"), "r1.d1");
    let long = staging_name(&"r".repeat(128), &"d".repeat(128));
    assert_eq!(long.len(), 128 + 1 + 16);
}

#[test]
fn sizes_count_regular_files() {
    let f = fixture();
    f.deploy("r1");
    let expected = 2 + "#!/bin/sh\necho run\n".len() as u64 + 1;
    assert_eq!(size(&f.app.release("r1")).unwrap(), expected);
}
