//! Runtime actions and drains: a rolling deploy of the demo app, one host
//! per batch, under continuous load from wrk through a load balancer, ten
//! times, with no failed request and a drain and a restore of every host in
//! each deployment's log; and a drain past its timeout failing the host
//! before its switch.

use std::{net::SocketAddr, path::Path, process::Stdio};

use slipway_proto::{
    agent::v1::{
        ActivationSpec, Drain, DrainCall, HealthCheck, HttpCall, RuntimeAction, SignalAction,
        drain_call, runtime_action,
    },
    control::v1::{DeploymentEvent, DeploymentStatus, RolloutPolicy, RolloutStrategy},
};
use slipway_tests::{Cluster, assert_succeeded, balancer::Balancer, cluster::AgentHost};

/// The demo app of one host, killed when dropped.
struct DemoApp {
    _child: tokio::process::Child,
    addr: SocketAddr,
}

impl DemoApp {
    /// Starts it on `host`'s app root; pid and port files in its apps dir.
    async fn start(host: &AgentHost) -> Self {
        let (pid_file, port_file) = (
            host.apps_dir.join("demo.pid"),
            host.apps_dir.join("demo.port"),
        );
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_slipway-demo-app"))
            .arg("--root")
            .arg(host.app_root())
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the demo app");
        // The port file is renamed into place after the pid file is written.
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().parse::<u16>().expect("port");
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("the demo app exited: {status}");
            }
            tokio::task::yield_now().await;
        };
        Self {
            _child: child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

fn command(text: &str) -> DrainCall {
    DrainCall {
        call: Some(drain_call::Call::Command(text.to_owned())),
    }
}

/// A check that the app serves this release's index.html, i.e. it was
/// reloaded; the app's port is in `<apps dir>/demo.port` ($HOME/..).
fn serves_this_release() -> HealthCheck {
    HealthCheck {
        command: r#"test "$(curl -fsS "http://127.0.0.1:$(cat "$HOME/../demo.port")/")" = "$(cat index.html)""#.into(),
        attempts: 50,
        interval_ms: 100,
        timeout_seconds: 30,
        ..Default::default()
    }
}

fn rolling() -> RolloutPolicy {
    RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_size: 1,
        ..Default::default()
    }
}

fn stage_events<'a>(
    events: &'a [DeploymentEvent],
    host: &str,
    stage: &str,
) -> Vec<&'a DeploymentEvent> {
    (events.iter())
        .filter(|e| e.host == host && e.stage == stage)
        .collect()
}

/// Runs wrk against `url` until `stop` resolves; its report.
async fn wrk_during(url: String, dir: &Path, stop: impl Future<Output = ()>) -> String {
    // A short pause between requests keeps the load steady on a small
    // machine; the connections stay open across every deploy.
    let script = dir.join("pace.lua");
    std::fs::write(&script, "function delay()\n  return 2\nend\n").expect("script");
    let wrk = tokio::process::Command::new("wrk")
        .args(["-t1", "-c4", "-d3600s", "--timeout", "30s", "-s"])
        .arg(&script)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wrk (apt-get install wrk)");
    stop.await;
    let pid = wrk.id().expect("pid").to_string();
    // wrk prints its report on SIGINT.
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(sent.expect("kill").success());
    let out = wrk.wait_with_output().await.expect("wrk output");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_rolling_deploys_under_load_fail_no_request() {
    let cluster = Cluster::builder().agents(3).start().await;
    cluster.commit_text("v1");
    assert_succeeded(&cluster.deploy("main").await.1);
    let mut apps = Vec::new();
    for host in &cluster.agents {
        apps.push(DemoApp::start(host).await);
    }
    let backends = (cluster.agents.iter())
        .zip(&apps)
        .map(|(host, app)| (host.name.clone(), app.addr))
        .collect();
    let lb = Balancer::start(backends).await;
    // One setting for every host: each agent puts its own name for {host}.
    let lb_call = |verb: &str| DrainCall {
        call: Some(drain_call::Call::Http(HttpCall {
            url: format!("http://{}/backends/{{host}}/{verb}", lb.addr),
            method: "POST".into(),
        })),
    };
    cluster
        .update_app(|app| {
            app.activation = Some(ActivationSpec {
                runtime_action: Some(RuntimeAction {
                    action: Some(runtime_action::Action::Command(
                        r#"kill -HUP "$(cat "$HOME/../demo.pid")""#.into(),
                    )),
                    timeout_seconds: 10,
                }),
                drain: Some(Drain {
                    drain: Some(lb_call("drain")),
                    restore: Some(lb_call("restore")),
                    timeout_seconds: 30,
                }),
                health_check: Some(serves_this_release()),
                ..Default::default()
            });
        })
        .await;

    let work = tempfile::tempdir().expect("temp dir");
    let deploys = async {
        for i in 2..=11 {
            cluster.commit_text(&format!("v{i}"));
            let (events, deployment) = cluster.deploy_with("main", rolling()).await;
            assert_succeeded(&deployment);
            for host in &cluster.agents {
                let drain = stage_events(&events, &host.name, "drain");
                let restore = stage_events(&events, &host.name, "restore");
                assert!(
                    !drain.is_empty() && !restore.is_empty(),
                    "{}: {events:#?}",
                    host.name
                );
                assert!(drain[0].sequence < restore[0].sequence);
                assert!(!stage_events(&events, &host.name, "runtime_action").is_empty());
            }
        }
    };
    let report = wrk_during(format!("http://{}/", lb.addr), work.path(), deploys).await;
    println!("wrk across 10 rolling deploys of 3 hosts:\n{report}");
    let requests: u64 = (report.lines())
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .expect("a request count");
    assert!(requests > 0, "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    // Each host drained and restored once per deploy, one host at a time.
    let log = lb.log();
    assert_eq!(log.len(), 10 * 3 * 2, "{log:?}");
    for pair in log.chunks(2) {
        let host = pair[0].strip_prefix("drain ").expect("a drain first");
        assert_eq!(pair[1], format!("restore {host}"), "{log:?}");
    }
    let body = reqwest::get(format!("http://{}/", lb.addr))
        .await
        .expect("get");
    assert_eq!(body.text().await.expect("body"), "v11");
    drop(apps);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_drain_past_its_timeout_fails_the_host_before_its_switch() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    assert_succeeded(&cluster.deploy("main").await.1);
    let host = &cluster.agents[0];
    let app = DemoApp::start(host).await;
    // One host: an absolute pid file, signalled by the agent itself.
    let pid_file = host.apps_dir.join("demo.pid").display().to_string();
    let spec = |drain: &str| ActivationSpec {
        runtime_action: Some(RuntimeAction {
            action: Some(runtime_action::Action::Signal(SignalAction {
                pid_file: pid_file.clone(),
                signal: "HUP".into(),
            })),
            timeout_seconds: 0,
        }),
        drain: Some(Drain {
            drain: Some(command(drain)),
            restore: Some(command("true")),
            timeout_seconds: 2,
        }),
        health_check: Some(serves_this_release()),
        ..Default::default()
    };
    cluster
        .update_app(|app| app.activation = Some(spec("true")))
        .await;
    cluster.commit_text("v2");
    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let served = || async {
        let answer = reqwest::get(format!("http://{}/", app.addr))
            .await
            .expect("get");
        answer.text().await.expect("body")
    };
    assert_eq!(served().await, "v2", "reloaded by SIGHUP");

    cluster
        .update_app(|app| app.activation = Some(spec("sleep 30")))
        .await;
    cluster.commit_text("v3");
    let (events, failed) = cluster.deploy("main").await;
    assert_eq!(failed.status(), DeploymentStatus::Failed);
    assert_eq!(host.current().as_deref(), Some(deployed.release.as_str()));
    assert!(
        failed.error.contains("drain command timed out"),
        "{}",
        failed.error
    );
    let drain = stage_events(&events, &host.name, "drain");
    assert!(
        drain
            .iter()
            .any(|e| e.message.contains("current was not switched")),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| {
        e.message
            .contains(&format!("current now points to {}", failed.release))
    }));
    assert_eq!(served().await, "v2");
    cluster.shutdown().await;
}
