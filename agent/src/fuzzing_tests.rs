//! The fuzz entry points over a few hundred generated inputs each, so the
//! code the fuzz targets exercise runs on stable Rust in every test run.

use proptest::prelude::*;
use prost::Message;
use serde_json::{Value, json};
use slipway_proto::agent::v1::{FileEntry, FileKind, ReleaseManifest};

use crate::fuzzing;

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(300)
}

fn entry() -> impl Strategy<Value = FileEntry> {
    (
        "[ab./]{0,6}",
        0..4i32,
        any::<u32>(),
        0..5000u64,
        prop_oneof![Just(SHA.to_owned()), "[0-9a-fA-F]{0,65}"],
    )
        .prop_map(|(path, kind, mode, size, sha256)| FileEntry {
            path,
            kind,
            mode,
            size,
            sha256,
        })
}

/// `bytes` with the byte at each of `flips` (taken modulo the length)
/// replaced.
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    if !bytes.is_empty() {
        let len = bytes.len();
        for &(at, byte) in flips {
            bytes[at % len] = byte;
        }
    }
    bytes
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A record the journal really writes, or any JSON value.
fn record() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        (0..3u64, any::<u64>()).prop_map(|(version, token)| (
            "meta".to_owned(),
            json!({"version": version, "fencing_token": token, "previous_good": "r1"})
        )),
        ("[a-z0-9]{1,4}", 0..4usize).prop_map(|(id, state)| {
            let name = ["unfinished", "ready", "active", "failed"][state];
            (
                format!("release/{id}"),
                json!({
                    "state": name,
                    "created_unix": 1, "updated_unix": 2, "pinned": state == 2,
                }),
            )
        }),
        ("[a-z0-9]{1,4}", 0..3usize, any::<u64>()).prop_map(|(id, kind, seq)| {
            let kind = ["deploy", "rollback", "prepare"][kind];
            (
                format!("op/{id}/{kind}"),
                json!({
                    "deployment_id": id, "kind": kind, "release_id": "r1",
                    "status": "finished", "started_unix": 1, "seq": seq,
                    "events": [{"sequence": 1, "message": "done", "percent": 100}],
                }),
            )
        }),
        ("[a-z/]{0,10}", value()),
    ]
}

fn batch_line() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(record(), 0..4),
        prop::collection::vec("[a-z/]{0,8}", 0..2),
    )
        .prop_map(|(put, del)| {
            let put: serde_json::Map<String, Value> = put.into_iter().collect();
            let mut line = serde_json::to_vec(&json!({"put": put, "del": del})).unwrap();
            line.push(b'\n');
            line
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifests_from_any_bytes_are_decided_without_panicking(
        files in prop::collection::vec(entry(), 0..8),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let bytes = ReleaseManifest { files }.encode_to_vec();
        fuzzing::manifest(&mutate(bytes, &flips));
    }

    #[test]
    fn a_manifest_of_distinct_clean_names_is_accepted(
        names in prop::collection::btree_set("[a-z][a-z0-9_-]{0,8}", 1..8),
    ) {
        let files = names
            .into_iter()
            .map(|name| FileEntry {
                path: format!("dir/{name}"),
                kind: FileKind::Regular as i32,
                mode: 0o644,
                size: 1,
                sha256: SHA.to_owned(),
            })
            .collect();
        let bytes = ReleaseManifest { files }.encode_to_vec();
        prop_assert!(fuzzing::manifest(&bytes));
    }

    #[test]
    fn journal_logs_read_the_same_with_a_torn_last_line(
        lines in prop::collection::vec(batch_line(), 0..6),
        torn in batch_line(),
        cut in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..2),
    ) {
        let log = lines.concat();
        let accepted = fuzzing::journal_log(&log);
        // A crash in the middle of the next append changes nothing.
        let mut with_torn = log.clone();
        with_torn.extend_from_slice(&torn[..cut % torn.len()]);
        prop_assert_eq!(fuzzing::journal_log(&with_torn), accepted);
        fuzzing::journal_log(&mutate(log, &flips));
    }

    #[test]
    fn old_journal_json_files_are_decided_without_panicking(
        version in 0..3u64,
        records in prop::collection::vec(record(), 0..6),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..2),
    ) {
        // Only well-formed records: the catch-all arm of `record()` can name
        // a key "release/x" or "op/" with any value, which a version-1 file
        // rightly refuses.
        let releases: serde_json::Map<String, Value> = records
            .iter()
            .filter(|(_, v)| v.get("state").is_some_and(Value::is_string))
            .filter_map(|(k, v)| Some((k.strip_prefix("release/")?.to_owned(), v.clone())))
            .collect();
        let operations: Vec<Value> = records
            .iter()
            .filter(|(k, v)| k.starts_with("op/") && v.get("status") == Some(&json!("finished")))
            .map(|(_, v)| v.clone())
            .collect();
        let json = serde_json::to_vec(&json!({
            "version": version, "fencing_token": 3,
            "releases": releases, "operations": operations,
        }))
        .unwrap();
        let accepted = fuzzing::journal_json(&json);
        prop_assert_eq!(accepted, version == 1);
        fuzzing::journal_json(&mutate(json, &flips));
    }
}
