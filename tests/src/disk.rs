//! What an agent left on disk under an app root: releases, staging
//! leftovers, the journal, the content store, links and modes.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Release ids under `<root>/releases/`, sorted (oldest first).
pub fn releases(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = match std::fs::read_dir(root.join("releases")) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("list {}/releases: {err}", root.display()),
    };
    ids.sort();
    ids
}

/// Entries left in `<root>/.slipway/staging` (none when it does not exist).
pub fn staging_leftovers(root: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(root.join(".slipway/staging")) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("list staging under {}: {err}", root.display()),
    }
}

/// Release states that must not survive an agent restart: the operation
/// that had them is over.
const UNSETTLED: &[&str] = &[
    "unfinished",
    "running",
    "in_progress",
    "in-progress",
    "pending",
    "started",
    "building",
    "materialising",
    "materializing",
    "activating",
];

/// The journal's records: `<root>/.slipway/journal.log` (one JSON batch of
/// `put` records and `del` keys per line) folded into one object.
pub fn journal_records(root: &Path) -> serde_json::Value {
    let path = root.join(".slipway/journal.log");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    let mut records = serde_json::Map::new();
    for line in text.lines() {
        let batch: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("{} has a bad line: {err}", path.display()));
        for key in batch["del"].as_array().into_iter().flatten() {
            records.remove(key.as_str().expect("keys are strings"));
        }
        for (key, value) in batch["put"].as_object().into_iter().flatten() {
            records.insert(key.clone(), value.clone());
        }
    }
    serde_json::Value::Object(records)
}

/// Reads the journal's records (see [`journal_records`]), asserts that no
/// `state`/`status`/`phase` value in them is one of an operation in flight;
/// returns them for further checks.
pub fn assert_journal_settled(root: &Path) -> serde_json::Value {
    let journal = journal_records(root);
    let mut found = Vec::new();
    collect_states(&journal, "", &mut found);
    let unsettled: Vec<&(String, String)> = found
        .iter()
        .filter(|(_, value)| UNSETTLED.contains(&value.to_lowercase().as_str()))
        .collect();
    assert!(
        unsettled.is_empty(),
        "the journal still records work in flight: {unsettled:?}\n{journal:#}"
    );
    journal
}

fn collect_states(value: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{at}.{key}");
                if let (true, Some(text)) = (
                    matches!(key.as_str(), "state" | "status" | "phase"),
                    value.as_str(),
                ) {
                    out.push((here.clone(), text.to_owned()));
                }
                collect_states(value, &here, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_states(item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Files under `<root>/.slipway` (store, temp files) whose name starts with
/// `sha256`.
pub fn objects_named(root: &Path, sha256: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.join(".slipway")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(sha256) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Every regular file under `dir` (symlinks are not followed), sorted.
pub fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Hard link count of a file.
pub fn nlink(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).expect("stat").nlink()
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

/// Lines of a text file the hooks append to; empty when it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("read {}: {err}", path.display()),
    }
}
