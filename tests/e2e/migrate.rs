//! `slipway-control-plane migrate`: a control plane's sled store copied into
//! a real 3-member etcd cluster by the real binary, then a control plane on
//! etcd serving the same history and deploying again under the same store
//! id (the agents' fencing epoch). A store in use and a target prefix with
//! records are refused.

use std::{path::Path, process::Output};

use slipway_control_plane::store::{Backend, EtcdBackend, Tree, migrate};
use slipway_tests::{
    Cluster, assert_succeeded,
    control_process::{ControlPlaneProcess, control_plane_binary},
    etcd::EtcdCluster,
    repo::Change,
};

/// The prefix the store is migrated under.
const PREFIX: &str = "moved";

/// Runs `migrate` from the sled store in `dir` into `etcd` under [`PREFIX`].
async fn migrate_into(dir: &Path, etcd: &EtcdCluster) -> Output {
    let tls = etcd.client_tls();
    let mut command = std::process::Command::new(control_plane_binary());
    command
        .arg("migrate")
        .arg(format!("--from=sled:{}", dir.display()))
        .arg(format!("--to=etcd:{}", etcd.endpoints().join(",")))
        .arg("--etcd-ca")
        .arg(&tls.ca)
        .arg("--etcd-cert")
        .arg(&tls.cert)
        .arg("--etcd-key")
        .arg(&tls.key)
        .args(["--prefix", PREFIX]);
    tokio::task::spawn_blocking(move || command.output().expect("run migrate"))
        .await
        .expect("migrate task")
}

/// The migration failed and said `why` on stderr.
fn assert_refused(output: &std::process::Output, why: &str) {
    assert!(!output.status.success(), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(why), "{stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn etcd_store(etcd: &EtcdCluster) -> EtcdBackend {
    let mut settings = etcd.settings();
    settings.prefix = PREFIX.into();
    EtcdBackend::open(&settings).expect("open etcd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_store_migrated_into_etcd_keeps_its_history_and_deploys_again() {
    let etcd = EtcdCluster::start(3);
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (events, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let history = cluster.history().await;
    let data_dir = cluster.data_dir.clone();

    // While the control plane runs on it, the store is refused.
    let busy = migrate_into(&data_dir, &etcd).await;
    assert_refused(&busy, "is in use; stop the control plane");

    cluster.control_plane_process().terminate().await;
    let moved = migrate_into(&data_dir, &etcd).await;
    let out = text(&moved.stdout);
    assert!(moved.status.success(), "{out}\n{}", text(&moved.stderr));
    let summary = out.lines().last().expect("a summary line");
    assert!(summary.starts_with("migrated "), "{out}");
    assert!(
        summary.contains(" records in 36 trees (sha256 ")
            && summary.ends_with("— counts and content hash match"),
        "{out}"
    );
    let hash = summary
        .split("(sha256 ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("a hash");
    assert!(out.contains("deployments"), "{out}");

    // etcd holds what the line says, and the store id of the sled store.
    let store = etcd_store(&etcd);
    let copied = migrate::digest(&store).expect("digest etcd");
    assert_eq!(copied.hex(), hash);
    let sled = slipway_control_plane::store::SledBackend::open(&data_dir, 8 << 20).expect("sled");
    let store_id = sled.get(Tree::Meta, b"store-id").expect("read");
    assert!(store_id.is_some());
    assert_eq!(store.get(Tree::Meta, b"store-id").expect("read"), store_id);
    drop(sled);

    // A second migration into the same prefix is refused and writes nothing.
    let again = migrate_into(&data_dir, &etcd).await;
    assert_refused(&again, "already holds records");
    assert_eq!(migrate::digest(&store).expect("digest etcd"), copied);
    drop(store);

    // A control plane on etcd serves the same history, record and events.
    let env = etcd
        .control_plane_env(PREFIX)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let on_etcd = ControlPlaneProcess::start_with(&cluster.pki, data_dir, env).await;
    drop(cluster.use_control_plane(on_etcd));
    assert_eq!(cluster.history().await, history);
    assert_eq!(cluster.deployment(&d1.id).await, d1);
    let (replayed, _) = cluster.watch(&d1.id).await;
    assert_eq!(replayed, events);

    // And deploys again: the agents take its fencing tokens.
    cluster.repo.commit("two", &[Change::File("a.txt", b"b\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    for agent in &cluster.agents {
        assert_eq!(agent.current().as_deref(), Some(d2.release.as_str()));
    }
    let ids: Vec<String> = cluster.history().await.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, [d2.id.clone(), d1.id.clone()]);
    cluster.shutdown().await;
}
