//! A control plane process on a 3-member etcd cluster (mutual TLS) deploys
//! to real agents, also while one member is SIGKILLed, and keeps its
//! records in etcd, not in its data directory.

use slipway_control_plane::store::{Backend, EtcdBackend, Tree};
use slipway_tests::{Cluster, assert_succeeded, etcd::EtcdCluster, repo::Change};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_on_etcd_deploys_while_a_member_is_down() {
    let mut etcd = EtcdCluster::start(3);
    let mut builder = Cluster::builder().agents(2).process_control_plane();
    for (key, value) in etcd.control_plane_env("e2e") {
        builder = builder.control_plane_env(key, &value);
    }
    let cluster = builder.start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    // A member dies while a deployment runs: the others carry on.
    cluster.repo.commit("two", &[Change::File("a.txt", b"b\n")]);
    let mut stream = cluster.deploy_stream("main").await;
    let first = stream.message().await.expect("stream").expect("an event");
    let first = first.event.expect("event set");
    etcd.kill(0);
    let (_, d2) = cluster.finish(vec![first], stream).await;
    assert_succeeded(&d2);
    let history = cluster.history().await;
    assert_eq!(
        history.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [d2.id.as_str(), d1.id.as_str()]
    );

    // The records are in etcd under the prefix.
    etcd.restart(0);
    let mut settings = etcd.settings();
    settings.prefix = "e2e".into();
    let store = EtcdBackend::open(&settings).expect("open etcd");
    let ids: Vec<Vec<u8>> = store
        .scan(Tree::Deployments, b"")
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ids, [d1.id.as_bytes().to_vec(), d2.id.as_bytes().to_vec()]);
}
