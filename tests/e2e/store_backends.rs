//! The store backends side by side: the same assertions against sled and a
//! real etcd (mutual TLS), then what only etcd has: the limits, the fence
//! and the change watch (across a member restart in a 3-member cluster).

use slipway_control_plane::store::{
    Backend, EtcdBackend, Fence, Op, SledBackend, StoreError, Tree,
};
use slipway_tests::etcd::EtcdCluster;

fn put(tree: Tree, k: &[u8], v: &[u8]) -> Op {
    Op::Put(tree, k.to_vec(), v.to_vec())
}

fn keys(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<Vec<u8>> {
    entries.into_iter().map(|(k, _)| k).collect()
}

fn get(b: &dyn Backend, k: &[u8]) -> Option<Vec<u8>> {
    b.get(Tree::Meta, k).unwrap()
}

/// Every assertion both backends must pass.
fn conformance(b: &dyn Backend) {
    atomic_batches(b);
    expectations(b);
    deletions(b);
    ops_see_earlier_ops_of_their_batch(b);
    ordered_scans(b);
    long_ranges(b);
}

fn atomic_batches(b: &dyn Backend) {
    b.commit(&[Op::Create(Tree::Apps, b"web".to_vec(), b"1".to_vec())])
        .unwrap();
    let err = b
        .commit(&[
            put(Tree::Hosts, b"h1", b"x"),
            Op::Create(Tree::Apps, b"web".to_vec(), b"2".to_vec()),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Exists { tree: Tree::Apps, key } if key == "web"),
        "{err:?}"
    );
    assert_eq!(b.get(Tree::Hosts, b"h1").unwrap(), None);
    assert_eq!(
        b.get(Tree::Apps, b"web").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    // Trees are apart: the same key elsewhere is another record.
    assert_eq!(b.get(Tree::Environments, b"web").unwrap(), None);
}

fn expectations(b: &dyn Backend) {
    let expect = |v: Option<&[u8]>| Op::Expect(Tree::Meta, b"n".to_vec(), v.map(<[u8]>::to_vec));
    b.commit(&[expect(None), put(Tree::Meta, b"n", b"1")])
        .unwrap();
    let err = b
        .commit(&[expect(None), put(Tree::Meta, b"n", b"2")])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { tree: Tree::Meta, key } if key == "n"),
        "{err:?}"
    );
    let err = b
        .commit(&[expect(Some(b"0")), put(Tree::Meta, b"n", b"2")])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    b.commit(&[expect(Some(b"1")), put(Tree::Meta, b"n", b"2")])
        .unwrap();
    assert_eq!(get(b, b"n").as_deref(), Some(&b"2"[..]));
    // The first failing op names the error: a Create before an Expect.
    b.commit(&[put(Tree::Meta, b"c", b"1")]).unwrap();
    let err = b
        .commit(&[
            Op::Create(Tree::Meta, b"c".to_vec(), b"2".to_vec()),
            expect(Some(b"0")),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }), "{err:?}");
}

fn deletions(b: &dyn Backend) {
    b.commit(&[put(Tree::Meta, b"d1", b"a"), put(Tree::Meta, b"d2", b"b")])
        .unwrap();
    b.commit(&[
        Op::DeleteIf(Tree::Meta, b"d1".to_vec(), b"a".to_vec()),
        Op::DeleteIf(Tree::Meta, b"d2".to_vec(), b"other".to_vec()),
        Op::DeleteIf(Tree::Meta, b"absent".to_vec(), b"a".to_vec()),
        put(Tree::Meta, b"d3", b"c"),
    ])
    .unwrap();
    assert_eq!(get(b, b"d1"), None);
    assert_eq!(get(b, b"d2").as_deref(), Some(&b"b"[..]));
    assert_eq!(get(b, b"d3").as_deref(), Some(&b"c"[..]));
    b.commit(&[Op::Delete(Tree::Meta, b"d2".to_vec())]).unwrap();
    assert_eq!(get(b, b"d2"), None);
}

fn ops_see_earlier_ops_of_their_batch(b: &dyn Backend) {
    let err = b
        .commit(&[
            put(Tree::Meta, b"s1", b"a"),
            Op::Create(Tree::Meta, b"s1".to_vec(), b"b".to_vec()),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }), "{err:?}");
    assert_eq!(get(b, b"s1"), None);
    b.commit(&[
        put(Tree::Meta, b"s1", b"a"),
        Op::Expect(Tree::Meta, b"s1".to_vec(), Some(b"a".to_vec())),
        Op::DeleteIf(Tree::Meta, b"s1".to_vec(), b"a".to_vec()),
        Op::Create(Tree::Meta, b"s1".to_vec(), b"c".to_vec()),
    ])
    .unwrap();
    assert_eq!(get(b, b"s1").as_deref(), Some(&b"c"[..]));
}

fn ordered_scans(b: &dyn Backend) {
    let all = ["a\x001", "a\x002", "a\x003", "b\x001", "\x00", "a"];
    let ops: Vec<Op> = all
        .iter()
        .map(|k| put(Tree::Audit, k.as_bytes(), k.as_bytes()))
        .collect();
    b.commit(&ops).unwrap();
    let k = |s: &str| s.as_bytes().to_vec();
    assert_eq!(
        keys(b.scan(Tree::Audit, b"a\x00").unwrap()),
        vec![k("a\x001"), k("a\x002"), k("a\x003")]
    );
    assert_eq!(keys(b.scan(Tree::Audit, b"").unwrap()).len(), all.len());
    assert_eq!(
        keys(b.scan_after(Tree::Audit, b"a\x00", b"a\x001", 1).unwrap()),
        vec![k("a\x002")]
    );
    assert_eq!(
        keys(b.scan_after(Tree::Audit, b"a\x00", b"a\x00", 10).unwrap()),
        vec![k("a\x001"), k("a\x002"), k("a\x003")]
    );
    assert_eq!(
        keys(b.scan_rev(Tree::Audit, b"a\x00", None, 10).unwrap()),
        vec![k("a\x003"), k("a\x002"), k("a\x001")]
    );
    assert_eq!(
        keys(
            b.scan_rev(Tree::Audit, b"a\x00", Some(b"a\x003"), 1)
                .unwrap()
        ),
        vec![k("a\x002")]
    );
    assert_eq!(
        keys(b.scan_rev(Tree::Audit, b"a\x00", Some(b"z"), 1).unwrap()),
        vec![k("a\x003")]
    );
    assert_eq!(b.scan(Tree::Feed, b"").unwrap(), Vec::new());
}

/// More entries than one page of a range read, in both directions.
fn long_ranges(b: &dyn Backend) {
    let key = |i: u32| {
        let mut k = b"r".to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        k
    };
    let total = 2_500u32;
    let ops: Vec<Op> = (0..total)
        .map(|i| put(Tree::Events, &key(i), &[7; 100]))
        .collect();
    for chunk in ops.chunks(b.max_batch_ops().min(1000)) {
        b.commit(chunk).unwrap();
    }
    let all = keys(b.scan(Tree::Events, b"r").unwrap());
    assert_eq!(all, (0..total).map(key).collect::<Vec<_>>());
    let after = keys(b.scan_after(Tree::Events, b"r", &key(10), 1_500).unwrap());
    assert_eq!(after, (11..1_511).map(key).collect::<Vec<_>>());
    let back = keys(
        b.scan_rev(Tree::Events, b"r", Some(&key(2_000)), 1_200)
            .unwrap(),
    );
    assert_eq!(back, (800..2_000).rev().map(key).collect::<Vec<_>>());
}

#[test]
fn sled_backend_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SledBackend::open(dir.path(), 8 << 20).unwrap();
    conformance(&backend);
}

#[test]
fn etcd_backend_conformance() {
    let etcd = EtcdCluster::start(1);
    let backend = EtcdBackend::open(&etcd.settings()).unwrap();
    conformance(&backend);
    // Another prefix is another store on the same cluster.
    let mut settings = etcd.settings();
    settings.prefix = "other".into();
    let other = EtcdBackend::open(&settings).unwrap();
    assert_eq!(other.get(Tree::Apps, b"web").unwrap(), None);
    assert!(backend.size_on_disk().unwrap() > 0);
}

#[test]
fn etcd_refuses_batches_and_values_over_its_limits() {
    let etcd = EtcdCluster::start(1);
    let mut settings = etcd.settings();
    settings.max_txn_ops = 64;
    let backend = EtcdBackend::open(&settings).unwrap();
    let ops: Vec<Op> = (0..63u8).map(|i| put(Tree::Meta, &[i], b"v")).collect();
    let err = backend.commit(&ops).unwrap_err();
    assert!(
        matches!(err, StoreError::BatchTooLarge { ops: 63, limit: 62 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_txn_ops"), "{err}");
    assert_eq!(backend.get(Tree::Meta, &[0]).unwrap(), None);
    backend.commit(&ops[..62]).unwrap();
    let big = vec![0u8; (1 << 20) + 1];
    let err = backend
        .commit(&[
            put(Tree::Meta, b"small", b"1"),
            put(Tree::Manifests, b"m", &big),
        ])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ValueTooLarge {
                tree: Tree::Manifests,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(backend.get(Tree::Meta, b"small").unwrap(), None);
}

/// The leadership record of these tests, written with the raw client.
async fn campaign(backend: &EtcdBackend, key: &[u8]) -> i64 {
    let mut client = backend.client();
    client
        .put(key.to_vec(), b"me".to_vec(), None)
        .await
        .unwrap();
    let resp = client.get(key.to_vec(), None).await.unwrap();
    resp.kvs()[0].create_revision()
}

#[tokio::test(flavor = "current_thread")]
async fn a_fenced_commit_fails_once_the_fence_key_is_created_again() {
    let etcd = EtcdCluster::start(1);
    let backend = EtcdBackend::open(&etcd.settings()).unwrap();
    let key = format!("{}/leader", backend.prefix()).into_bytes();
    let create_revision = campaign(&backend, &key).await;
    backend.set_fence(Some(Fence {
        key: key.clone(),
        create_revision,
    }));
    // Called straight from a current-thread runtime: the backend never
    // blocks on the caller's runtime.
    backend.commit(&[put(Tree::Meta, b"a", b"1")]).unwrap();
    // Another process takes over: the key is deleted and created again.
    let mut client = backend.client();
    client.delete(key.clone(), None).await.unwrap();
    campaign(&backend, &key).await;
    let err = backend
        .commit(&[
            put(Tree::Meta, b"b", b"1"),
            Op::Create(Tree::Meta, b"a".to_vec(), vec![]),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced), "{err:?}");
    assert!(err.to_string().contains("no longer the leader"), "{err}");
    assert_eq!(backend.get(Tree::Meta, b"b").unwrap(), None);
    // Without the key at all, still fenced.
    client.delete(key.clone(), None).await.unwrap();
    let err = backend.commit(&[put(Tree::Meta, b"b", b"1")]).unwrap_err();
    assert!(matches!(err, StoreError::Fenced), "{err:?}");
    backend.set_fence(None);
    backend.commit(&[put(Tree::Meta, b"b", b"1")]).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_watch_sees_every_put_in_order_across_a_member_restart() {
    let mut etcd = EtcdCluster::start(3);
    let backend = EtcdBackend::open(&etcd.settings()).unwrap();
    let mut watch = backend.watch(Tree::Deployments);
    let key = |i: u32| format!("d{i:04}").into_bytes();
    for i in 0..20 {
        backend
            .commit(&[
                put(Tree::Deployments, &key(i), b"x"),
                // Other trees and deletions are not reported.
                put(Tree::Events, &key(i), b"x"),
                Op::Delete(Tree::Deployments, b"gone".to_vec()),
            ])
            .unwrap();
    }
    for i in 0..20 {
        assert_eq!(watch.recv().await.unwrap(), key(i));
    }
    for member in 0..3 {
        etcd.kill(member);
        for i in 0..10 {
            let i = 20 + member as u32 * 10 + i;
            backend
                .commit(&[put(Tree::Deployments, &key(i), b"y")])
                .unwrap();
        }
        etcd.restart(member);
    }
    for i in 20..50 {
        assert_eq!(watch.recv().await.unwrap(), key(i));
    }
}
