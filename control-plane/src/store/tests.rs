//! The backend and the typed store over a real sled database: atomic
//! batches, reverse scans, expectations, key order.

use std::path::Path;

use super::*;
use slipway_proto::control::v1::App;

fn store(dir: &Path) -> Store {
    Store::new(Arc::new(SledBackend::open(dir, 8 << 20).unwrap()))
}

/// A store in a new temporary directory, for the repositories' tests.
pub(crate) fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    (dir, store)
}

#[tokio::test]
async fn batches_are_atomic_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path());
        let app = App {
            name: "web".into(),
            ..Default::default()
        };
        s.commit(vec![Op::Create(
            Tree::Apps,
            b"web".to_vec(),
            encode_proto(&app),
        )])
        .await
        .unwrap();
        // A batch with a conflicting create writes nothing at all.
        let err = s
            .commit(vec![
                Op::Put(Tree::Hosts, b"h1".to_vec(), encode_proto(&app)),
                Op::Create(Tree::Apps, b"web".to_vec(), encode_proto(&app)),
            ])
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Exists {
                tree: Tree::Apps,
                ..
            }
        ));
        assert!(s.get_raw(Tree::Hosts, b"h1").unwrap().is_none());
    }
    let s = store(dir.path());
    let app: App = s.get(Tree::Apps, b"web").unwrap().unwrap();
    assert_eq!(app.name, "web");
}

#[test]
fn prefix_ends_bound_every_key_under_the_prefix() {
    assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
    assert_eq!(prefix_end(b""), None);
}

#[tokio::test]
async fn reverse_scans_stay_inside_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let ops = ["a\x001", "a\x002", "a\x003", "b\x001", "\x00"]
        .iter()
        .map(|k| Op::Put(Tree::Meta, k.as_bytes().to_vec(), k.as_bytes().to_vec()))
        .collect();
    s.commit(ops).await.unwrap();
    let keys = |before: Option<&[u8]>, limit| -> Vec<Vec<u8>> {
        s.scan_rev_raw(Tree::Meta, b"a\x00", before, limit)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        keys(None, 10),
        vec![b"a\x003".to_vec(), b"a\x002".to_vec(), b"a\x001".to_vec()]
    );
    assert_eq!(keys(Some(b"a\x003"), 1), vec![b"a\x002".to_vec()]);
    assert_eq!(keys(Some(b"z"), 1), vec![b"a\x003".to_vec()]);
}

#[tokio::test]
async fn an_expectation_that_fails_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let put = |v: &[u8]| Op::Put(Tree::Meta, b"n".to_vec(), v.to_vec());
    let expect = |v: Option<&[u8]>| Op::Expect(Tree::Meta, b"n".to_vec(), v.map(<[u8]>::to_vec));
    s.commit(vec![expect(None), put(b"1")]).await.unwrap();
    let err = s.commit(vec![expect(None), put(b"2")]).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            tree: Tree::Meta,
            ..
        }
    ));
    s.commit(vec![expect(Some(b"1")), put(b"2")]).await.unwrap();
    assert_eq!(
        s.get_raw(Tree::Meta, b"n").unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

#[test]
fn event_keys_sort_by_sequence() {
    assert!(event_key("d1", 2) < event_key("d1", 10));
    assert!(event_key("d1", 255) < event_key("d1", 256));
}
