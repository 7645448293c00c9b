//! The daemons' one configuration story, on the real binaries: every key
//! from the file, the environment or a flag, `--check-config` with the
//! source of each value, errors naming origin and key, and SIGHUP applying
//! the live keys under load without failing a call.

use std::{
    path::Path,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use slipway_proto::{
    control::v1::{
        CreateEnvironmentRequest, Environment, ListAppsRequest,
        app_service_client::AppServiceClient, environment_service_client::EnvironmentServiceClient,
    },
    identity::Role,
    tls::{self, Peer},
};
use slipway_tests::{
    TestPki,
    control_process::{ControlPlaneProcess, control_plane_binary},
    process::agent_binary,
};
use tonic::{Code, transport::Channel};

use crate::trust::hangup;

/// Runs `binary` with `args`, none of the daemons' variables inherited
/// but `env`.
fn run(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars() {
        if name.starts_with("SLIPWAY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the daemon")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_prints_every_value_of_the_control_plane_with_its_source() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("control-plane.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:1\"\nlog_level = \"warn\"\n\
             [limits]\nmessage_bytes = 2000\n"
        ),
    )
    .expect("write");
    let pki_dir = pki.dir().to_str().expect("utf-8");
    let file_arg = file.to_str().expect("utf-8");
    let args = [
        "--config",
        file_arg,
        "--pki-dir",
        pki_dir,
        "--listen",
        "127.0.0.1:2",
        "--check-config",
    ];
    let env = [("SLIPWAY_CP_LOG_LEVEL", "debug")];
    let out = run(control_plane_binary(), &args, &env);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", text(&out.stderr));
    let from_file = format!("# file:{}", file.display());
    for line in [
        "listen = \"127.0.0.1:2\"  # flag --listen".to_owned(),
        "log_level = \"debug\"  # env SLIPWAY_CP_LOG_LEVEL, live".to_owned(),
        format!("data_dir = {data:?}  {from_file}"),
        format!("limits.message_bytes = 2000  {from_file}, live"),
        "limits.description_bytes = 1024  # default, live".to_owned(),
        format!("tls.cert = \"{pki_dir}/control-plane.crt\"  # from pki_dir (flag --pki-dir)"),
        "cache_capacity_bytes = 67108864  # default".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in:\n{stdout}"
        );
    }
    // Every key has its line.
    assert_eq!(
        stdout.lines().filter(|l| !l.starts_with('#')).count(),
        slipway_control_plane::config::KEYS.len()
    );

    // The same, with a certificate that is not there: the error and 64.
    let missing = dir.path().join("missing.crt");
    let missing_arg = missing.to_str().expect("utf-8");
    let args = [
        "--config",
        file_arg,
        "--pki-dir",
        pki_dir,
        "--tls-cert",
        missing_arg,
        "--check-config",
    ];
    let out = run(control_plane_binary(), &args, &[]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("error: flag --tls-cert: [tls] cert: {missing_arg}: no such file")
    );

    std::fs::write(&file, "[tls]\ncert = \"/nonexistent/cp.crt\"\n").expect("write");
    let out = run(
        control_plane_binary(),
        &["--config", file_arg, "--pki-dir", pki_dir, "--check-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let expected = format!("error: {file_arg}: [tls] cert: /nonexistent/cp.crt: no such file");
    assert_eq!(text(&out.stderr).trim(), expected);
}

#[test]
fn check_config_prints_every_value_of_the_agent_with_its_source() {
    let pki = TestPki::new();
    let tls = pki.agent("web-1");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("agent.toml");
    let apps = dir.path().join("apps");
    std::fs::write(
        &file,
        format!(
            "host_name = \"web-1\"\napps_dir = {apps:?}\ndata_dir = {apps:?}\n\
             [tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n[hooks]\noutput_max_lines = 50\n",
            tls.ca, tls.cert, tls.key
        ),
    )
    .expect("write");
    let file_arg = file.to_str().expect("utf-8");
    let env = [
        ("SLIPWAY_AGENT_LISTEN", "127.0.0.1:3"),
        ("SLIPWAY_AGENT_HOST_NAME", "web-2"),
    ];
    let out = run(
        agent_binary(),
        &[
            "--config",
            file_arg,
            "--host-name",
            "web-1",
            "--check-config",
        ],
        &env,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", text(&out.stderr));
    let from_file = format!("# file:{}", file.display());
    for line in [
        "listen = \"127.0.0.1:3\"  # env SLIPWAY_AGENT_LISTEN".to_owned(),
        "host_name = \"web-1\"  # flag --host-name".to_owned(),
        format!("hooks.output_max_lines = 50  {from_file}"),
        format!("tls.cert = {:?}  {from_file}", tls.cert),
        "log_level = RUST_LOG, else info  # default, live".to_owned(),
        "metrics_listen = 127.0.0.1:9481  # default".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in:\n{stdout}"
        );
    }

    let out = run(
        agent_binary(),
        &[
            "--config",
            file_arg,
            "--allowed-root",
            "/nonexistent/apps",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let expected =
        "error: flag --allowed-root: allowed_roots: /nonexistent/apps is not a directory";
    assert_eq!(text(&out.stderr).trim(), expected);
}

/// Calls ListApps in a loop until `stop`, counting successes and failures.
fn load_task(
    channel: Channel,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut client = AppServiceClient::new(channel);
        let mut errors = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match client.list_apps(ListAppsRequest {}).await {
                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                Err(status) => {
                    errors.push(status.to_string());
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        errors
    })
}

/// Waits until `counter` passes `target` (the load goes on meanwhile).
async fn wait_count(counter: &AtomicU64, target: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::Relaxed) < target {
        assert!(
            std::time::Instant::now() < deadline,
            "the load made no progress"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn create_environment(
    client: &mut EnvironmentServiceClient<Channel>,
    name: &str,
    description_bytes: usize,
) -> Result<(), tonic::Status> {
    let environment = Environment {
        name: name.into(),
        description: "d".repeat(description_bytes),
        ..Default::default()
    };
    let request = CreateEnvironmentRequest {
        environment: Some(environment),
    };
    client.create_environment(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_applies_the_log_level_and_a_limit_and_names_a_restart_only_key() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("control-plane.toml");
    let write = |log_level: &str, drift: u32, description: u32| {
        let text = format!(
            "log_level = {log_level:?}\ndrift_every_seconds = {drift}\n\
             [limits]\ndescription_bytes = {description}\n"
        );
        std::fs::write(&file, text).expect("write the config");
    };
    write("info", 600, 1024);
    let env = vec![(
        "SLIPWAY_CP_CONFIG".to_owned(),
        file.to_string_lossy().into_owned(),
    )];
    let cp = ControlPlaneProcess::start_with(&pki, dir.path().join("data"), env).await;
    let addr = cp.addr.to_string();
    let channel = |role| {
        let material = TestPki::material(&pki.operator(role));
        tls::endpoint(&addr, Peer::ControlPlane, &material)
            .expect("endpoint")
            .connect_lazy()
    };
    let mut admin = EnvironmentServiceClient::new(channel(Role::Admin));
    create_environment(&mut admin, "wide", 200)
        .await
        .expect("200 bytes within 1024");

    let (stop, ok, failed) = (Arc::default(), Arc::new(AtomicU64::new(0)), Arc::default());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            load_task(
                channel(Role::Viewer),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
            )
        })
        .collect();
    wait_count(&ok, 200).await;

    write("info,slipway_proto=debug", 300, 100);
    hangup(cp.pid());
    cp.wait_for_log("SIGHUP: configuration reloaded", Duration::from_secs(30))
        .await;
    // The new filter is in effect: this line is at DEBUG.
    cp.wait_for_log("SIGHUP: debug logging in effect", Duration::from_secs(10))
        .await;
    cp.wait_for_log(
        "SIGHUP: drift_every_seconds changed, needs a restart; keeping the value in use",
        Duration::from_secs(10),
    )
    .await;
    let reloaded_at = ok.load(Ordering::Relaxed);
    wait_count(&ok, reloaded_at + 200).await;

    // The new limit is enforced: 200 bytes are now over it.
    let refused = create_environment(&mut admin, "narrow", 200)
        .await
        .expect_err("over 100 bytes");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("100 allowed"),
        "{}",
        refused.message()
    );
    create_environment(&mut admin, "short", 100)
        .await
        .expect("100 bytes within 100");

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("load task"));
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed calls: {errors:?}"
    );
    assert!(ok.load(Ordering::Relaxed) >= 400);
    // Before the SIGHUP the filter was info: no debug line from it.
    let log = cp.log();
    let before = log
        .split("SIGHUP: configuration reloaded")
        .next()
        .unwrap_or_default();
    assert!(
        !before.contains(" DEBUG "),
        "debug lines before the reload:\n{before}"
    );
}
