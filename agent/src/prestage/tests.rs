//! Prestaged trees on real files: a patched tree is the tree built afresh,
//! for generated pairs of manifests; a tree is handed over only when worth
//! it, stops for a deploy, and is dropped when an object is found bad.

use std::{
    collections::BTreeMap,
    fs,
    ops::ControlFlow,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
};

use proptest::prelude::*;
use slipway_proto::agent::v1::FileEntry;

use super::*;
use crate::release::{Patch, fixture::*};

/// What a tree is, entry by entry: directories with their mode, files with
/// the inode they link (so the object) and mode, symlinks with the target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else if meta.is_symlink() {
                format!("symlink -> {}", fs::read_link(&path).unwrap().display())
            } else {
                format!("file {mode:o} inode {}", meta.ino())
            };
            found.insert(name, what);
        }
    }
    found
}

/// A manifest of `entries` (path → (symlink?, content index, executable?)),
/// its contents stored in `f`: a symlink's target is a sibling name.
fn manifest(f: &Fixture, entries: &BTreeMap<String, (bool, u8, bool)>) -> Manifest {
    let files: Vec<FileEntry> = entries
        .iter()
        .map(|(path, &(link, content, executable))| match link {
            true => f.link(path, &format!("t{content}")),
            false => {
                let mode = if executable { 0o755 } else { 0o644 };
                f.file(path, mode, format!("content {content}\n").as_bytes())
            }
        })
        .collect();
    Manifest::from_wire(files).unwrap()
}

/// Paths over a small alphabet, so that generated pairs share, move and
/// turn files into directories and back; no path is also another's
/// directory.
fn entries() -> impl Strategy<Value = BTreeMap<String, (bool, u8, bool)>> {
    let path = "[ab]{1,2}(/[ab]{1,2}){0,2}";
    prop::collection::btree_map(path, (any::<bool>(), 0..3u8, any::<bool>()), 0..12).prop_map(
        |mut map| {
            let paths: Vec<String> = map.keys().cloned().collect();
            map.retain(|p, _| !paths.iter().any(|q| q.starts_with(&format!("{p}/"))));
            map
        },
    )
}

fn no_progress() -> impl FnMut(usize, usize) -> ControlFlow<()> {
    |_, _| ControlFlow::Continue(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_patched_tree_is_the_tree_built_afresh(from in entries(), to in entries()) {
        let f = fixture();
        let (from, to) = (manifest(&f, &from), manifest(&f, &to));
        let (patched, fresh) = (f.app.staging().join("patched"), f.app.staging().join("fresh"));
        release::build_tree(&f.store, &patched, &from, false, &mut no_progress()).unwrap();
        let patch = release::patch_tree(&f.store, &patched, &from, &to, &mut no_progress())
            .unwrap();
        release::build_tree(&f.store, &fresh, &to, false, &mut no_progress()).unwrap();
        prop_assert_eq!(snapshot(&patched), snapshot(&fresh));
        let key = |e: &crate::manifest::Entry| format!("{} {:?} {}", e.path, e.kind, e.sha256);
        let before: std::collections::HashSet<_> = from.entries().iter().map(key).collect();
        let unchanged = to.entries().iter().filter(|e| before.contains(&key(e))).count();
        prop_assert!(patch.placed + unchanged == to.len(), "{:?}", patch);
    }
}

/// A tree of 40 files with `a/f07` holding content `seven`.
fn forty(f: &Fixture, seven: u8) -> Manifest {
    let mut entries: BTreeMap<String, (bool, u8, bool)> = (0..40)
        .map(|i| (format!("a/f{i:02}"), (false, 0, false)))
        .collect();
    entries.insert("a/f07".into(), (false, seven, false));
    manifest(f, &entries)
}

/// A tree of 40 files, and the same with one changed.
fn pair(f: &Fixture) -> (Manifest, Manifest) {
    (forty(f, 0), forty(f, 1))
}

#[test]
fn a_ready_tree_is_handed_over_once_and_only_when_worth_patching() {
    let f = fixture();
    let (r1, r2) = pair(&f);
    let prestage = Prestage::new(true, Duration::ZERO);
    assert_eq!(prestage.ready(&f.app), None);
    prestage.start(&f.app, "r1", r1.clone());
    prestage.settle(&f.app);
    assert_eq!(prestage.ready(&f.app).as_deref(), Some("r1"));

    // A manifest sharing nothing with r1 would be built afresh: the tree stays.
    let other = manifest(&f, &[("z".to_owned(), (false, 2, false))].into());
    let dest = f.app.staging().join("r9");
    assert!(prestage.take(&f.app, &dest, &other).is_none());
    assert!(!dest.exists());

    let dest = f.app.staging().join("r2");
    let taken = prestage.take(&f.app, &dest, &r2).expect("handed over");
    assert_eq!((taken.release_id.as_str(), &taken.manifest), ("r1", &r1));
    let fresh = f.app.staging().join("fresh");
    release::build_tree(&f.store, &fresh, &r1, false, &mut no_progress()).unwrap();
    assert_eq!(
        snapshot(&dest),
        snapshot(&fresh),
        "the tree of r1, complete"
    );
    assert_eq!(prestage.ready(&f.app), None);
    assert!(
        prestage
            .take(&f.app, &f.app.staging().join("again"), &r2)
            .is_none()
    );
}

#[test]
fn a_take_stops_a_build_and_the_next_build_clears_what_it_left() {
    let f = fixture();
    let (r1, r2) = pair(&f);
    let prestage = Prestage::new(true, Duration::ZERO);
    prestage.start(&f.app, "r1", r1.clone());
    // Whether the build had begun or not, it stops: nothing is ready.
    assert!(
        prestage
            .take(&f.app, &f.app.staging().join("x"), &r2)
            .is_none()
    );
    prestage.settle(&f.app);
    assert_eq!(prestage.ready(&f.app), None);

    prestage.start(&f.app, "r2", r2.clone());
    prestage.settle(&f.app);
    assert_eq!(prestage.ready(&f.app).as_deref(), Some("r2"));
    let left: Vec<_> = fs::read_dir(f.app.spare()).unwrap().collect();
    assert_eq!(left.len(), 1, "only r2's tree: {left:?}");

    // A newer tree replaces the ready one, which is removed.
    prestage.start(&f.app, "r1", r1);
    prestage.settle(&f.app);
    assert_eq!(prestage.ready(&f.app).as_deref(), Some("r1"));
    assert_eq!(fs::read_dir(f.app.spare()).unwrap().count(), 1);
}

#[test]
fn a_forgotten_tree_is_not_handed_over_and_nothing_is_built_when_off() {
    let f = fixture();
    let (r1, r2) = pair(&f);
    let prestage = Prestage::new(true, Duration::ZERO);
    prestage.start(&f.app, "r1", r1.clone());
    prestage.settle(&f.app);
    prestage.forget(&f.app);
    assert_eq!(prestage.ready(&f.app), None);
    assert!(
        prestage
            .take(&f.app, &f.app.staging().join("r2"), &r2)
            .is_none()
    );

    let off = Prestage::new(false, Duration::ZERO);
    off.start(&f.app, "r1", r1);
    off.settle(&f.app);
    assert_eq!(off.ready(&f.app), None);
}

#[test]
fn materialise_patches_a_handed_over_tree_and_builds_afresh_when_patching_fails() {
    let f = fixture();
    let (r1, r2) = pair(&f);
    let prestage = Prestage::new(true, Duration::ZERO);
    let place = |id: &str, manifest: &Manifest| {
        let build = release::Build {
            copy: false,
            rebuild: false,
            progress: &mut |_, _| {},
            finish: &mut |_| Ok(()),
            prestaged: &mut |staging, wanted| prestage.take(&f.app, staging, wanted),
        };
        release::materialise(&f.app, &f.store, id, "d", manifest, build).unwrap()
    };
    prestage.start(&f.app, "r1", r1.clone());
    prestage.settle(&f.app);
    let placed = place("r2", &r2);
    let patch = Patch {
        placed: 1,
        removed: 1,
    };
    assert_eq!(
        placed,
        release::Placed::Patched {
            from: "r1".into(),
            patch
        }
    );
    let fresh = f.app.staging().join("fresh");
    release::build_tree(&f.store, &fresh, &r2, false, &mut no_progress()).unwrap();
    assert_eq!(snapshot(&f.app.release("r2")), snapshot(&fresh));
    fs::remove_dir_all(&fresh).unwrap();

    // A tree someone changed under .slipway/spare cannot be patched (the
    // file to replace is gone): the release is built afresh, and whole.
    prestage.start(&f.app, "r1", r1);
    prestage.settle(&f.app);
    let spare = fs::read_dir(f.app.spare())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(spare.join("a/f07")).unwrap();
    let r3 = forty(&f, 2);
    assert_eq!(place("r3", &r3), release::Placed::Built);
    release::build_tree(&f.store, &fresh, &r3, false, &mut no_progress()).unwrap();
    assert_eq!(snapshot(&f.app.release("r3")), snapshot(&fresh));
}

#[test]
fn a_build_waits_for_the_app_to_stay_idle_and_a_take_ends_the_wait() {
    let f = fixture();
    let (r1, r2) = pair(&f);
    // An hour: only the take can end the wait before the test times out.
    let prestage = Prestage::new(true, Duration::from_secs(3600));
    prestage.start(&f.app, "r1", r1);
    assert!(
        prestage
            .take(&f.app, &f.app.staging().join("r2"), &r2)
            .is_none()
    );
    prestage.settle(&f.app);
    assert_eq!(prestage.ready(&f.app), None);
    assert_eq!(
        fs::read_dir(f.app.spare()).unwrap().count(),
        0,
        "nothing built"
    );
}
