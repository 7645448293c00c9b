//! Remote git sources on real servers over loopback: a repository of 2,000
//! files served by `git daemon` is mirrored, released and deployed to a
//! real agent; new commits pushed to it show as the environment being that
//! many commits behind, listed newest first. An https source behind
//! `git http-backend` with basic authentication refuses wrong credentials
//! with a clear error, and the right ones appear in no answer, event, audit
//! entry, log line or store file.

use slipway_proto::{
    control::v1::{
        FetchSourceRequest, GetAppRequest, GetSourceStatusRequest, ListAppsRequest,
        ListAuditEventsRequest, SourceCredentials, SourceStatus, UpdateAppRequest,
        source_service_client::SourceServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    git_https::{GitHttps, HttpsCa},
    git_server::GitDaemon,
    repo::{Change, assert_tree_matches},
    slipctl,
};
use tonic::Code;

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

    // git:// is read-only: the release tag cannot be pushed, which the
    // deployment reports and survives.
    cluster.update_app(|app| app.release_tags = true).await;
    let (events, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let tag = events
        .iter()
        .find(|e| e.stage == "tag")
        .unwrap_or_else(|| panic!("no tag event: {events:?}"));
    assert!(
        tag.message.contains("tagging the release as release_"),
        "{}",
        tag.message
    );
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
    let (ok, out, err) = slipctl::run(&cluster, Role::Deployer, &["source", "fetch", APP]);
    assert!(ok && out.starts_with("fetched "), "{out}{err}");
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

    // slipctl shows the same, as a table and as JSON.
    let (ok, out, err) = slipctl::run(&cluster, Role::Viewer, &["source", "status", APP]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(ENV))
        .unwrap_or_else(|| panic!("no {ENV} row: {out}"));
    assert!(row.trim_end().ends_with(" 3"), "{row}");
    assert!(out.contains(&url) && out.contains("three"), "{out}");
    let (ok, out, err) = slipctl::run(
        &cluster,
        Role::Viewer,
        &["source", "status", APP, "--commits", "2", "-o", "json"],
    );
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let env = &json["status"]["environments"][0];
    assert_eq!(env["behind"], 3);
    assert_eq!(env["undeployed"].as_array().map(Vec::len), Some(2));
    cluster.shutdown().await;
}

/// Every file under `dir` except the sources vault, which holds the
/// credentials on purpose.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "sources") {
                    stack.push(path);
                }
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_source_needs_the_right_credentials_and_never_shows_them() {
    let ca = HttpsCa::new();
    let ca_file = ca.cert_file().display().to_string();
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .control_plane_env("SLIPWAY_CP_SOURCE_HTTPS_CA_FILE", &ca_file)
        .start()
        .await;
    let canary = format!(
        "canary{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let commit = cluster
        .repo
        .commit("first", &[Change::File("index.html", b"<h1>hi</h1>\n")]);
    let base = cluster.repo.path().parent().expect("parent").to_owned();
    let server = GitHttps::serve(&ca, &base, "ci", &canary).await;
    let url = server.url(cluster.repo.path());
    let mut apps = cluster.apps(Role::Admin).await;

    // Credentials go in their own field, never in the URL.
    let mut app = apps
        .get_app(GetAppRequest { name: APP.into() })
        .await
        .expect("app")
        .into_inner()
        .app
        .expect("app");
    app.repository = url.replace("https://", &format!("https://ci:{canary}@"));
    let refused = apps
        .update_app(UpdateAppRequest {
            app: Some(app.clone()),
        })
        .await
        .expect_err("credentials in the URL");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("app.credentials"), "{refused:?}");
    assert!(!refused.message().contains(&canary));

    // Wrong credentials: the fetch and the release cut say so.
    app.repository = url.clone();
    app.credentials = Some(SourceCredentials {
        username: "ci".into(),
        password: "not-the-password".into(),
        ..Default::default()
    });
    apps.update_app(UpdateAppRequest {
        app: Some(app.clone()),
    })
    .await
    .expect("update");
    let mut sources = SourceServiceClient::new(cluster.channel(Role::Deployer).await);
    let fetch = sources
        .fetch_source(FetchSourceRequest { app: APP.into() })
        .await
        .expect("fetch")
        .into_inner()
        .fetch
        .expect("outcome");
    assert!(!fetch.ok);
    assert!(
        fetch.error.contains("authentication failed"),
        "{}",
        fetch.error
    );
    let cut = cluster
        .cut_release("main")
        .await
        .expect_err("wrong credentials");
    assert_eq!(cut.code(), Code::FailedPrecondition);
    assert!(cut.message().contains("authentication failed"), "{cut:?}");

    // The right ones: mirrored, released, deployed.
    app.credentials = Some(SourceCredentials {
        username: "ci".into(),
        password: canary.clone(),
        ..Default::default()
    });
    apps.update_app(UpdateAppRequest { app: Some(app) })
        .await
        .expect("update");
    let (events, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    assert_tree_matches(
        &cluster.agents[0].app_root().join("current"),
        &cluster.repo,
        &commit,
    );
    let status = source_status(&cluster).await;
    assert!(status.credentials_set && status.last_fetch.as_ref().is_some_and(|f| f.ok));

    // The secret is in no answer, event, audit entry, log line or store file.
    let shown = apps
        .list_apps(ListAppsRequest {})
        .await
        .expect("apps")
        .into_inner();
    assert!(shown.apps.iter().all(|a| a.credentials.is_none()));
    let audit = cluster
        .audit()
        .await
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .expect("audit")
        .into_inner();
    for (what, text) in [
        ("apps", format!("{shown:?}")),
        ("status", format!("{status:?}")),
        ("events", format!("{events:?}")),
        ("audit", format!("{audit:?}")),
        ("log", cluster.control_plane_process().log()),
    ] {
        assert!(!text.contains(&canary), "the secret is in the {what}");
    }
    let files = files_holding(&cluster.data_dir, canary.as_bytes());
    assert!(files.is_empty(), "the secret is in {files:?}");
    cluster.shutdown().await;
}
