//! The manifest kept beside each release, `.slipway/manifests/<id>.pb`, so
//! that a later deploy can send only what changed against it.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write},
    path::PathBuf,
};

use prost::Message;
use slipway_proto::{
    agent::v1::{FileEntry, ReleaseManifest},
    validate::{self, InvalidField},
};

use crate::{
    fsutil::{FsError, io_err},
    layout::AppRoot,
};

fn path(app: &AppRoot, release_id: &str) -> PathBuf {
    app.root()
        .join(".slipway/manifests")
        .join(format!("{release_id}.pb"))
}

/// Writes the manifest of a release (temp file, fsync, rename). The
/// caller syncs the directory with the release itself.
pub fn save(app: &AppRoot, release_id: &str, files: &[FileEntry]) -> Result<(), FsError> {
    let target = path(app, release_id);
    let dir = target
        .parent()
        .expect("manifest path has a parent")
        .to_owned();
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let tmp = dir.join(format!(".{release_id}.{:016x}", rand::random::<u64>()));
    let body = ReleaseManifest {
        files: files.to_vec(),
    }
    .encode_to_vec();
    let written = (|| -> io::Result<()> {
        let mut file = fs::File::create_new(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_err("write the manifest", &target))
}

/// Whether a release's manifest is kept.
pub fn exists(app: &AppRoot, release_id: &str) -> bool {
    path(app, release_id).is_file()
}

/// The manifest kept for a release; None when there is none, or it cannot
/// be read (the caller then treats the release as having no manifest).
pub fn load(app: &AppRoot, release_id: &str) -> Option<Vec<FileEntry>> {
    let raw = fs::read(path(app, release_id)).ok()?;
    Some(ReleaseManifest::decode(raw.as_slice()).ok()?.files)
}

/// Forgets a pruned release's manifest.
pub fn remove(app: &AppRoot, release_id: &str) {
    let _ = fs::remove_file(path(app, release_id));
}

/// The whole manifest of a deploy that names `base`: the base's entries
/// without `removed`, with `changed` added or replacing same-path entries,
/// in path order. None when the base's manifest is not kept here (or the
/// release is gone), so the caller must send the whole manifest.
pub fn merge_with_base(
    app: &AppRoot,
    base: &str,
    changed: Vec<FileEntry>,
    removed: &[String],
) -> Result<Option<Vec<FileEntry>>, InvalidField> {
    validate::release_id("base_release", base)?;
    for (i, path) in removed.iter().enumerate() {
        validate::relative_path(&format!("removed_paths[{i}]"), path)?;
    }
    if !app.release(base).is_dir() {
        return Ok(None);
    }
    let Some(kept) = load(app, base) else {
        return Ok(None);
    };
    let mut files: BTreeMap<String, FileEntry> =
        kept.into_iter().map(|f| (f.path.clone(), f)).collect();
    for path in removed {
        files.remove(path);
    }
    for file in changed {
        files.insert(file.path.clone(), file);
    }
    Ok(Some(files.into_values().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_proto::agent::v1::FileKind;

    fn entry(path: &str, hash: char) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: FileKind::Regular as i32,
            mode: 0o644,
            size: 1,
            sha256: hash.to_string().repeat(64),
        }
    }

    #[test]
    fn a_delta_applies_to_the_kept_base() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        fs::create_dir_all(app.release("r1")).unwrap();
        save(
            &app,
            "r1",
            &[entry("a", 'a'), entry("b", 'b'), entry("c", 'c')],
        )
        .unwrap();
        let merged = merge_with_base(
            &app,
            "r1",
            vec![entry("b", 'f'), entry("d", 'd')],
            &["c".into()],
        )
        .unwrap()
        .unwrap();
        let summary: Vec<(String, char)> = merged
            .iter()
            .map(|f| (f.path.clone(), f.sha256.chars().next().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [("a".into(), 'a'), ("b".into(), 'f'), ("d".into(), 'd')]
        );
        assert_eq!(
            merge_with_base(&app, "r0", vec![], &[]).unwrap(),
            None,
            "unknown base"
        );
        assert!(merge_with_base(&app, "r1", vec![], &["../x".into()]).is_err());
    }
}
