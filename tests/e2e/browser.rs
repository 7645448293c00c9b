//! The dashboard in real headless Chromium (Debian's `chromium`, driven by
//! Playwright for Python from `tests/browser/`): log in with a one-time
//! link (a second use refused), deploy to 3 real agents through the form
//! and watch it reach 100% live across a dropped event connection, filter
//! the history and export CSV, roll back with the confirmation, a viewer's
//! forged POST refused, a POST without the CSRF token refused, 360 px
//! layout, axe-core, Arabic right-to-left. Screenshots of each page in both
//! languages are written under the target directory and printed. A missing
//! browser or Playwright fails the test.

use std::{path::PathBuf, process::Command};

use slipway_proto::identity::Role;
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    slipctl, spec,
};

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifact directory");
    dir
}

fn python() -> String {
    std::env::var("SLIPWAY_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let cluster = Cluster::builder().agents(3).start().await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    cluster.commit_text("v2 from the browser");
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    let scratch = tempfile::tempdir().expect("a temp dir");
    let result = scratch.path().join("result.json");
    let operator = |role| {
        let paths = cluster.pki.operator(role);
        serde_json::json!({"cert": paths.cert, "key": paths.key})
    };
    let config = serde_json::json!({
        "base": format!("https://127.0.0.1:{}", cluster.web_addr().port()),
        "endpoint": cluster.addr(),
        "slipctl": slipctl::binary(),
        "ca": cluster.pki.operator(Role::Admin).ca,
        "operators": {"deployer": operator(Role::Deployer), "viewer": operator(Role::Viewer)},
        "app": APP,
        "env": ENV,
        "hosts": cluster.agents.len(),
        "gate": gate,
        "rollback_to": first.release,
        "axe": concat!(env!("CARGO_MANIFEST_DIR"), "/browser/vendor/axe.min.js"),
        "artifacts": artifacts(),
        "result": result,
    });
    let config_path = scratch.path().join("story.json");
    std::fs::write(&config_path, config.to_string()).expect("write the story's config");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/dashboard_story.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .arg(config_path)
            .output()
            .expect("run python3 (Playwright is installed by .ci/run)")
    })
    .await
    .expect("the browser story ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser story failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result).expect("the story's result")).expect("JSON");
    let rollback = cluster
        .deployment(result["rollback"].as_str().expect("an id"))
        .await;
    assert_succeeded(&rollback);
    assert_eq!(rollback.release, first.release);
    for agent in &cluster.agents {
        assert_eq!(agent.current().as_deref(), Some(first.release.as_str()));
    }
    cluster.shutdown().await;
}
