//! The repository trust boundary on a real control plane: with source
//! roots configured, an admin can point an app only at a repository under
//! one of them (symlinks resolved); relative paths are refused always; a
//! source root that does not exist stops the control plane at start.

use std::process::Command;

use slipway_control_plane::sources::SourceRoots;
use slipway_proto::{
    control::v1::{App, CreateAppRequest, ListAppsRequest, app_service_client::AppServiceClient},
    identity::Role,
    tls,
};
use slipway_tests::{TestPki, control_process::control_plane_binary, server};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_may_use_only_repositories_under_the_trusted_roots() {
    let pki = TestPki::new();
    let work = tempfile::tempdir().expect("temp dir");
    let trusted = work.path().join("trusted");
    let outside = work.path().join("outside");
    for repo in [trusted.join("web.git"), outside.join("other.git")] {
        git2::Repository::init_bare(&repo).expect("git init");
    }
    std::os::unix::fs::symlink(outside.join("other.git"), trusted.join("escape.git"))
        .expect("symlink");
    let mut config = server::control_plane_config(
        pki.control_plane(),
        pki.control_plane_client(),
        work.path().join("store"),
    );
    config.source_roots = SourceRoots::new(std::slice::from_ref(&trusted)).expect("roots");
    let cp = server::serve_control_plane(config).await;
    let channel = tls::endpoint(
        &cp.addr.to_string(),
        tls::Peer::ControlPlane,
        &TestPki::material(&pki.operator(Role::Admin)),
    )
    .expect("endpoint")
    .connect_lazy();
    let mut apps = AppServiceClient::new(channel);
    let create = |name: &str, repository: String| CreateAppRequest {
        app: Some(App {
            name: name.into(),
            repository,
            ..Default::default()
        }),
    };

    for (repository, wanted) in [
        (
            outside.join("other.git").display().to_string(),
            "not under a trusted",
        ),
        (
            trusted.join("escape.git").display().to_string(),
            "not under a trusted",
        ),
        ("trusted/web.git".to_owned(), "relative"),
    ] {
        let status = apps
            .create_app(create("bad", repository.clone()))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{repository}: {status:?}"
        );
        assert!(
            status.message().contains("app.repository") && status.message().contains(wanted),
            "{repository}: {}",
            status.message()
        );
    }
    apps.create_app(create("web", trusted.join("web.git").display().to_string()))
        .await
        .expect("a trusted repository");
    let names: Vec<String> = apps
        .list_apps(ListAppsRequest {})
        .await
        .expect("list")
        .into_inner()
        .apps
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["web"]);
    cp.shutdown().await;
}

#[test]
fn a_missing_source_root_stops_the_control_plane_at_start() {
    let pki = TestPki::new();
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(control_plane_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(data.path())
        .arg("--pki-dir")
        .arg(pki.dir())
        .args(["--source-root", "/nonexistent/slipway-sources"])
        .env_remove("SLIPWAY_CP_CONFIG")
        .output()
        .expect("run the control plane");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/slipway-sources"), "{stderr}");
}

#[test]
fn an_unreadable_certificate_stops_the_control_plane_naming_the_file_and_section() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("control-plane.toml");
    let missing = dir.path().join("missing-ca.crt");
    let agent_tls = pki.control_plane_client();
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nmetrics_listen = \"off\"\n\
             [tls]\nca = {missing:?}\ncert = {cert:?}\nkey = {key:?}\n\
             [agent_tls]\nca = {aca:?}\ncert = {acert:?}\nkey = {akey:?}\n",
            data = dir.path().join("data"),
            cert = pki.control_plane().cert,
            key = pki.control_plane().key,
            aca = agent_tls.ca,
            acert = agent_tls.cert,
            akey = agent_tls.key,
        ),
    )
    .expect("write the config");
    let output = Command::new(control_plane_binary())
        .arg("--config")
        .arg(&config)
        .env_remove("SLIPWAY_CP_CONFIG")
        .output()
        .expect("run the control plane");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}: [tls] ca: {}: no such file",
        config.display(),
        missing.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
}
