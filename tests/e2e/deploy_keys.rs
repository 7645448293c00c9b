//! Deploy keys against a real private sshd on loopback: a key created with
//! slipctl is refused until the server authorizes it (an authentication
//! error), then fetches, releases and deploys; the first connection pins
//! the server's host key, and a changed one is refused with both
//! fingerprints until the new key is pinned with `--known-host`. A
//! successful deployment pushes its release tag with the key.

use slipway_proto::identity::Role;
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::APP,
    repo::{Change, assert_tree_matches},
    slipctl,
    sshd::Sshd,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_key_fetches_over_ssh_and_the_host_key_is_pinned() {
    let cluster = Cluster::builder().agents(1).start().await;
    let commit = cluster
        .repo
        .commit("first", &[Change::File("index.html", b"<h1>ssh</h1>\n")]);
    let sshd = Sshd::serve().await;
    let url = sshd.url(cluster.repo.path());
    cluster.update_app(|app| app.repository = url.clone()).await;
    let run = |role, args: &[&str]| slipctl::run(&cluster, role, args);

    let (ok, created, err) = run(Role::Admin, &["source", "key", "create", APP]);
    assert!(ok, "{err}");
    let public_key = created.lines().next().expect("public key line").to_owned();
    assert!(public_key.starts_with("ssh-ed25519 "), "{created}");
    assert!(created.contains("SHA256:"), "{created}");
    let (ok, _, err) = run(Role::Deployer, &["source", "key", "create", APP]);
    assert!(!ok && err.contains("permission denied"), "{err}");

    // Not yet authorized on the server: an authentication failure.
    let (ok, out, err) = run(Role::Admin, &["source", "key", "test", APP]);
    assert!(
        !ok && out.starts_with("failed (authentication)"),
        "{out}{err}"
    );

    sshd.authorize(&public_key);
    let (ok, out, err) = run(Role::Admin, &["source", "key", "test", APP]);
    assert!(ok && out.starts_with("ok: the remote listed"), "{out}{err}");
    let (ok, shown, err) = run(Role::Viewer, &["source", "key", "show", APP]);
    assert!(ok, "{err}");
    assert!(shown.contains(&sshd.host_fingerprint()), "{shown}");
    assert!(!shown.contains("last used  never"), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");

    // The key may write: each successful deployment tags its commit.
    cluster.update_app(|app| app.release_tags = true).await;
    let (events, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let tagged = events
        .iter()
        .find(|e| e.stage == "tag")
        .unwrap_or_else(|| panic!("no tag event: {events:?}"));
    assert!(tagged.message.starts_with("tagged "), "{}", tagged.message);
    let tags = git2::Repository::open(cluster.repo.path())
        .expect("open")
        .tag_names(Some("release_*"))
        .expect("tags");
    let tag = tags
        .get(0)
        .ok()
        .flatten()
        .expect("a release tag")
        .to_owned();
    assert_eq!(tag.len(), "release_20261129_090507".len(), "{tag}");
    let tagged_commit = git2::Repository::open(cluster.repo.path())
        .expect("open")
        .revparse_single(&tag)
        .and_then(|o| o.peel_to_commit())
        .expect("tag")
        .id()
        .to_string();
    assert_eq!(tagged_commit, commit);
    assert_tree_matches(
        &cluster.agents[0].app_root().join("current"),
        &cluster.repo,
        &commit,
    );

    // The server's key changes: refused, both fingerprints shown.
    let pinned = sshd.host_fingerprint();
    sshd.new_host_key();
    let offered = sshd.host_fingerprint();
    let (ok, out, err) = run(Role::Deployer, &["source", "fetch", APP]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("host key changed") && out.contains(&pinned) && out.contains(&offered),
        "{out}{err}"
    );
    let (ok, out, _) = run(Role::Admin, &["source", "key", "test", APP]);
    assert!(!ok && out.starts_with("failed (host key changed)"), "{out}");

    // Pinning the new key lets it through again.
    let new_key = sshd.host_key();
    let (ok, out, err) = run(
        Role::Admin,
        &["source", "key", "test", APP, "--known-host", &new_key],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(Role::Deployer, &["source", "fetch", APP]);
    assert!(ok, "{out}{err}");

    // Revoked: no key to show.
    let (ok, _, err) = run(Role::Admin, &["source", "key", "revoke", APP]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(Role::Viewer, &["source", "key", "show", APP]);
    assert!(!ok && err.contains("not found"), "{err}");
    cluster.shutdown().await;
}
