//! Migration between two sled stores: the copy, the refusal of a target
//! with records, and the verification catching a changed value.

use std::sync::Arc;

use super::*;
use crate::store::SledBackend;

fn sled(dir: &tempfile::TempDir) -> Arc<SledBackend> {
    Arc::new(SledBackend::open(dir.path(), 1 << 20).unwrap())
}

/// A source with records in several trees, the empty key included.
fn filled() -> (tempfile::TempDir, Arc<SledBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let backend = sled(&dir);
    let mut ops = vec![
        Op::Put(Tree::Meta, b"store-id".to_vec(), b"abc".to_vec()),
        Op::Put(Tree::Meta, Vec::new(), b"empty key".to_vec()),
    ];
    for n in 0..2_500u32 {
        ops.push(Op::Put(
            Tree::Events,
            n.to_be_bytes().to_vec(),
            vec![7; 300],
        ));
    }
    ops.push(Op::Put(Tree::Apps, b"web".to_vec(), b"\x01app".to_vec()));
    backend.commit(&ops).unwrap();
    (dir, backend)
}

#[test]
fn a_store_is_copied_tree_by_tree_with_its_store_id() {
    let (_src, from) = filled();
    let dst = tempfile::tempdir().unwrap();
    let to = sled(&dst);
    let migrated = migrate(from.as_ref(), to.as_ref()).unwrap();
    assert_eq!(migrated.digest.records(), 2_503);
    assert_eq!(migrated.digest, digest(to.as_ref()).unwrap());
    assert_eq!(
        to.get(Tree::Meta, b"store-id").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(
        to.get(Tree::Meta, b"").unwrap().as_deref(),
        Some(&b"empty key"[..])
    );
    let summary = migrated.summary();
    assert!(
        summary.starts_with("migrated 2,503 records in 36 trees (sha256 "),
        "{summary}"
    );
    assert!(
        summary.ends_with("counts and content hash match"),
        "{summary}"
    );
}

#[test]
fn batches_stay_within_the_byte_budget() {
    let (_src, from) = filled();
    let dst = tempfile::tempdir().unwrap();
    let to = sled(&dst);
    let limits = Limits {
        ops: 1_000,
        bytes: 100_000,
    };
    let batches = copy(from.as_ref(), to.as_ref(), limits).unwrap();
    // 2,500 events of about 400 bytes each: about 250 per batch.
    assert!(batches >= 10, "{batches} batches");
    verify(from.as_ref(), to.as_ref()).unwrap();
}

#[test]
fn a_target_with_records_is_refused_and_nothing_is_written() {
    let (_src, from) = filled();
    let dst = tempfile::tempdir().unwrap();
    let to = sled(&dst);
    to.commit(&[Op::Put(Tree::Locks, b"web\0prod".to_vec(), b"d1".to_vec())])
        .unwrap();
    let before = digest(to.as_ref()).unwrap();
    let err = migrate(from.as_ref(), to.as_ref()).unwrap_err();
    assert!(
        matches!(err, MigrateError::TargetNotEmpty { tree: "locks" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(digest(to.as_ref()).unwrap(), before);
}

#[test]
fn verification_names_the_tree_whose_value_or_count_changed() {
    let (_src, from) = filled();
    let dst = tempfile::tempdir().unwrap();
    let to = sled(&dst);
    migrate(from.as_ref(), to.as_ref()).unwrap();

    to.commit(&[Op::Put(
        Tree::Apps,
        b"web".to_vec(),
        b"\x01changed".to_vec(),
    )])
    .unwrap();
    let err = verify(from.as_ref(), to.as_ref()).unwrap_err();
    let MigrateError::Mismatch(difference) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        difference,
        Difference::Content {
            tree: "apps",
            count: 1
        }
    );
    assert!(difference.to_string().contains("tree apps differs"));

    to.commit(&[
        Op::Put(Tree::Apps, b"web".to_vec(), b"\x01app".to_vec()),
        Op::Delete(Tree::Events, 7u32.to_be_bytes().to_vec()),
    ])
    .unwrap();
    let source = digest(from.as_ref()).unwrap();
    let target = digest(to.as_ref()).unwrap();
    assert_eq!(
        compare(&source, &target),
        Err(Difference::Count {
            tree: "events",
            source_count: 2_500,
            target_count: 2_499
        })
    );
}

#[test]
fn counts_are_printed_with_thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(12_345), "12,345");
    assert_eq!(thousands(1_000_000), "1,000,000");
}
