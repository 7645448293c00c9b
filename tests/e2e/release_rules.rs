//! Release-cut rules on a real cluster: names that are not UTF-8, symlinks
//! no agent accepts and files past the app's size limit are refused when
//! the release is cut, with the path shown and nothing recorded; a file
//! larger than what the control plane reads whole ships in chunks and lands
//! byte for byte.

use slipway_proto::{
    control::v1::{CreateReleaseRequest, ListReleasesRequest},
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::APP,
    repo::{Change, assert_tree_matches},
};
use tonic::Code;

/// Cuts a release of `main`, expecting a refusal; returns its message after
/// checking that no release was recorded.
async fn refused_cut(cluster: &Cluster) -> String {
    let mut releases = cluster.releases(Role::Deployer).await;
    let status = releases
        .create_release(CreateReleaseRequest {
            app: APP.into(),
            git_ref: "main".into(),
            build: false,
        })
        .await
        .expect_err("the cut is refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let listed = releases
        .list_releases(ListReleasesRequest {
            app: APP.into(),
            ..Default::default()
        })
        .await
        .expect("list releases")
        .into_inner()
        .releases;
    assert!(listed.is_empty(), "{listed:?}");
    status.message().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_utf8_are_refused_at_cut() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit(
        "bytes",
        &[
            Change::RawName(b"n\xff", b"one"),
            Change::RawName(b"n\xfe", b"two"),
            Change::File("ok.txt", b"three"),
        ],
    );
    let message = refused_cut(&cluster).await;
    assert!(
        message.contains("n\\xfe") && message.contains("UTF-8"),
        "{message}"
    );
    assert!(cluster.agents[0].current().is_none());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_no_agent_accepts_is_refused_at_cut() {
    let cluster = Cluster::builder().agents(1).start().await;
    // Inside the release lexically, but `..` applies to wherever `s` points.
    cluster.repo.commit(
        "link",
        &[
            Change::Link("a/s", ".."),
            Change::Link("a/escape", "s/../x"),
        ],
    );
    let message = refused_cut(&cluster).await;
    assert!(message.contains("a/escape"), "{message}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_file_size_limit_is_enforced_and_large_files_ship_in_chunks() {
    let cluster = Cluster::builder().agents(2).start().await;
    let content: Vec<u8> = (0..(9 << 20) + 3).map(|i: u32| (i % 251) as u8).collect();
    let sha = cluster.repo.commit(
        "big",
        &[
            Change::File("data/big.bin", &content),
            Change::File("small.txt", b"s"),
        ],
    );
    cluster.update_app(|app| app.max_file_bytes = 8 << 20).await;
    let message = refused_cut(&cluster).await;
    assert!(
        message.contains("data/big.bin") && message.contains(&(8u64 << 20).to_string()),
        "{message}"
    );

    cluster
        .update_app(|app| app.max_file_bytes = 16 << 20)
        .await;
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    for host in &cluster.agents {
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &sha);
    }
    cluster.shutdown().await;
}
