//! Remote git sources on real servers over loopback: a repository of 2,000
//! files served by `git daemon` is mirrored, released and deployed to a
//! real agent; new commits pushed to it show as the environment being that
//! many commits behind, listed newest first.

use slipway_proto::{
    control::v1::{
        FetchSourceRequest, GetSourceStatusRequest, SourceStatus,
        source_service_client::SourceServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    git_server::GitDaemon,
    repo::{Change, assert_tree_matches},
};

/// The app's source status as a viewer reads it.
pub async fn source_status(cluster: &Cluster) -> SourceStatus {
    SourceServiceClient::new(cluster.channel(Role::Viewer).await)
        .get_source_status(GetSourceStatusRequest {
            app: APP.into(),
            max_commits: 0,
        })
        .await
        .expect("source status")
        .into_inner()
        .status
        .expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_daemon_source_of_2000_files_deploys_and_shows_the_commits_behind() {
    let cluster = Cluster::builder().agents(1).start().await;
    let names: Vec<String> = (0..2000)
        .map(|i| format!("src/{:02}/file-{i}.txt", i % 40))
        .collect();
    let contents: Vec<String> = (0..2000).map(|i| format!("file {i}\n")).collect();
    let files: Vec<Change<'_>> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| Change::File(n, c.as_bytes()))
        .collect();
    let first = cluster.repo.commit("two thousand files", &files);
    let base = cluster.repo.path().parent().expect("parent").to_owned();
    let daemon = GitDaemon::serve(&base).await;
    let url = daemon.url(cluster.repo.path());
    cluster.update_app(|app| app.repository = url.clone()).await;

    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let host = &cluster.agents[0];
    assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &first);
    let status = source_status(&cluster).await;
    assert!(status.remote);
    assert_eq!(status.repository, url);
    let fetch = status.last_fetch.expect("the release cut fetched");
    assert!(fetch.ok, "{}", fetch.error);
    assert!(fetch.objects >= 2000, "{fetch:?}");
    assert_eq!(status.tip.expect("tip").sha, first);
    let prod = &status.environments[0];
    assert_eq!(
        (prod.environment.as_str(), prod.commit.as_str()),
        (ENV, first.as_str())
    );
    assert_eq!(prod.behind, 0);

    let subjects = ["one", "two", "three"];
    let pushed: Vec<String> = subjects
        .iter()
        .map(|s| {
            cluster
                .repo
                .commit(s, &[Change::File("NEWS", s.as_bytes())])
        })
        .collect();
    let fetched = SourceServiceClient::new(cluster.channel(Role::Deployer).await)
        .fetch_source(FetchSourceRequest { app: APP.into() })
        .await
        .expect("fetch")
        .into_inner()
        .fetch
        .expect("outcome");
    assert!(fetched.ok, "{}", fetched.error);
    let status = source_status(&cluster).await;
    assert_eq!(status.tip.as_ref().expect("tip").sha, pushed[2]);
    let prod = &status.environments[0];
    assert_eq!(prod.behind, 3);
    assert!(!prod.diverged);
    let listed: Vec<(&str, &str)> = prod
        .undeployed
        .iter()
        .map(|c| (c.subject.as_str(), c.short_id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("three", &pushed[2][..7]),
            ("two", &pushed[1][..7]),
            ("one", &pushed[0][..7]),
        ]
    );
    assert!(prod.undeployed.iter().all(|c| c.author.contains('@')));
    cluster.shutdown().await;
}
