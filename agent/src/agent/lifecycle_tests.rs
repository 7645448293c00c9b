//! Deploys and rollbacks with shared paths, hooks and health checks end to
//! end below gRPC: the environment hooks see, switching back on failure,
//! release states.

use std::{os::unix::fs::MetadataExt, time::Duration};

use futures_util::StreamExt;
use slipway_proto::agent::v1::{AppStatus, LogLevel, ReleaseState, Stage};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{
    tests::{Fixture, fixture, result},
    *,
};
use crate::activation::{Activation, HealthCheck, Hook, Point, Probe, SharedPath};

pub(super) fn hook(point: Point, name: &str, command: &str) -> Hook {
    Hook {
        point,
        name: name.into(),
        command: command.into(),
        timeout: Duration::from_secs(30),
    }
}

pub(super) fn check(probe: Probe) -> Option<HealthCheck> {
    Some(HealthCheck {
        probe,
        attempts: 2,
        interval: Duration::from_millis(10),
        deadline: Duration::from_secs(30),
        probe_interval: Duration::from_secs(30),
    })
}

pub(super) async fn status(f: &Fixture) -> AppStatus {
    let mut status = f.agent.status(vec![f.app()], true).await.unwrap();
    status.apps.remove(0)
}

pub(super) fn states(app: &AppStatus) -> Vec<(String, ReleaseState)> {
    app.releases
        .iter()
        .map(|r| (r.id.clone(), r.state()))
        .collect()
}

pub(super) fn lines(f: &Fixture, name: &str) -> Vec<String> {
    std::fs::read_to_string(f.dir.path().join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn shared_paths_and_hooks_with_their_environment() {
    let f = fixture().await;
    let app = f.app();
    let activation = Activation {
        shared: vec![
            SharedPath {
                path: "log".into(),
                file: false,
                required: false,
            },
            SharedPath {
                path: ".env".into(),
                file: true,
                required: true,
            },
        ],
        hooks: vec![
            hook(
                Point::BeforeActivate,
                "before-activate",
                "env | grep -v -e ^PWD= -e ^SHLVL= -e ^_= | sort > log/env-$SLIPWAY_RELEASE_ID",
            ),
            hook(
                Point::AfterActivate,
                "restart",
                "echo restarting $SLIPWAY_RELEASE_ID; echo slow >&2",
            ),
        ],
        health: None,
        copy: true,
        ..Activation::default()
    };

    let events = f.deploy_with("d1", "r1", activation.clone(), 5).await;
    let done = result(&events);
    assert!(!done.success);
    let env_file = app.shared().join(".env");
    assert!(
        done.error.contains(&format!(
            "required shared file .env is missing: create {} on this host",
            env_file.display()
        )),
        "{}",
        done.error
    );
    assert_eq!(events.last().unwrap().stage(), Stage::LinkShared);
    assert!(!app.release("r1").exists(), "nothing built");
    assert_eq!(status(&f).await.current_release, "");

    std::fs::write(&env_file, "SECRET=1\n").unwrap();
    let events = f.deploy_with("d2", "r1", activation.clone(), 5).await;
    assert!(result(&events).success, "{events:#?}");
    let release = app.release("r1");
    assert_eq!(
        std::fs::read_link(release.join("log")).unwrap(),
        std::path::Path::new("../../shared/log")
    );
    assert_eq!(
        std::fs::read(app.current().join(".env")).unwrap(),
        b"SECRET=1\n"
    );
    let env = std::fs::read_to_string(app.shared().join("log/env-r1")).unwrap();
    // The clean environment: nothing of the agent's (or the test's) own.
    let instance = env
        .lines()
        .find_map(|l| l.strip_prefix("SLIPWAY_AGENT_INSTANCE="))
        .expect("the instance id");
    assert_eq!(instance.len(), 32, "{env}");
    let want = format!(
        "HOME={}\nLANG=C.UTF-8\nPATH={}\nSLIPWAY_AGENT_INSTANCE={instance}\n\
         SLIPWAY_APP=web\nSLIPWAY_DEPLOYMENT_ID=d2\nSLIPWAY_ENVIRONMENT=test\n\
         SLIPWAY_HOST=web-1\nSLIPWAY_PREVIOUS_RELEASE=\nSLIPWAY_RELEASE_DIR={}\nSLIPWAY_RELEASE_ID=r1\n",
        app.root().display(),
        crate::hook_env::DEFAULT_PATH,
        release.display()
    );
    assert_eq!(env, want);
    let restart: Vec<(&str, &str, LogLevel)> = events
        .iter()
        .filter(|e| e.stage() == Stage::Hook && e.step == "restart" && !e.output.is_empty())
        .map(|e| (e.output.as_str(), e.message.as_str(), e.level()))
        .collect();
    assert!(
        restart.contains(&("stdout", "restarting r1", LogLevel::Info)),
        "{restart:?}"
    );
    assert!(
        restart.contains(&("stderr", "slow", LogLevel::Warn)),
        "{restart:?}"
    );
    assert!(events.iter().any(|e| e.stage() == Stage::LinkShared));
    // Copy mode: private, writable files.
    let version = std::fs::metadata(release.join("VERSION")).unwrap();
    assert_eq!((version.nlink(), version.mode() & 0o777), (1, 0o644));

    let events = f.deploy_with("d3", "r2", activation, 5).await;
    assert!(result(&events).success);
    let env = std::fs::read_to_string(app.shared().join("log/env-r2")).unwrap();
    assert!(env.contains("SLIPWAY_PREVIOUS_RELEASE=r1\n"), "{env}");
    assert!(
        app.shared().join("log/env-r1").exists(),
        "shared across releases"
    );
}

#[tokio::test]
async fn a_failed_before_activate_hook_leaves_current_and_is_cleaned_up_later() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    let failing = Activation {
        hooks: vec![hook(
            Point::BeforeActivate,
            "migrate",
            "echo 'no database'; exit 7",
        )],
        ..Activation::default()
    };
    let events = f.deploy_with("d2", "r2", failing, 5).await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert_eq!(
        done.error,
        "a deploy of release r2 for app web failed: before-activate hook \"migrate\" failed \
         (exit status: 7)\nlast output:\nno database"
    );
    assert_eq!(events.last().unwrap().stage(), Stage::Hook);
    let app = status(&f).await;
    assert_eq!(app.current_release, "r1");
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Failed)
        ]
    );
    f.deploy("d3", "r3").await;
    let ids: Vec<_> = status(&f)
        .await
        .releases
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r1", "r3"], "the failed release was removed");
}

#[tokio::test]
async fn a_failed_after_activate_hook_switches_back_and_restarts_the_previous() {
    let f = fixture().await;
    let log = f.dir.path().join("activated");
    let activation = Activation {
        hooks: vec![hook(
            Point::AfterActivate,
            "after-activate",
            &format!(
                "echo \"$SLIPWAY_RELEASE_ID prev=$SLIPWAY_PREVIOUS_RELEASE\" >> {}; \
                 test \"$SLIPWAY_RELEASE_ID\" != r2 || {{ echo 'port in use' >&2; exit 1; }}",
                log.display()
            ),
        )],
        ..Activation::default()
    };
    assert!(result(&f.deploy_with("d1", "r1", activation.clone(), 5).await).success);
    let events = f.deploy_with("d2", "r2", activation, 5).await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r1", "r1")
    );
    assert!(
        done.error.contains(
            "after-activate hook failed (exit status: 1); current was switched back to r1"
        ),
        "{}",
        done.error
    );
    assert!(
        done.error.ends_with("last output:\nport in use"),
        "{}",
        done.error
    );
    assert!(events.iter().any(|e| e.stage() == Stage::Revert));
    assert_eq!(
        lines(&f, "activated"),
        ["r1 prev=", "r2 prev=r1", "r1 prev=r2"]
    );
    let app = status(&f).await;
    assert_eq!(app.current_release, "r1");
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Failed)
        ]
    );
    assert_eq!(app.previous_release, "");
}

/// Answers every request with `answer`.
async fn http(answer: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            // Read the request first: closing with unread data resets the
            // connection before the client reads the answer.
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn the_health_check_decides_and_a_failure_switches_back() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    let broken = Activation {
        health: check(Probe::Http(
            http("HTTP/1.1 503 Service Unavailable\r\n\r\nwarming up").await,
        )),
        ..Activation::default()
    };
    let events = f.deploy_with("d2", "r2", broken, 5).await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert!(
        done.error.contains("failed after 2 attempts: answered HTTP/1.1 503 Service Unavailable: warming up; current was switched back to r1"),
        "{}",
        done.error
    );
    assert_eq!(events.last().unwrap().stage(), Stage::HealthCheck);
    let attempts = events
        .iter()
        .filter(|e| {
            e.stage() == Stage::HealthCheck && e.step == "health-check" && e.result.is_none()
        })
        .count();
    assert_eq!(attempts, 2);

    let healthy = Activation {
        health: check(Probe::Http(http("HTTP/1.1 204 No Content\r\n\r\n").await)),
        ..Activation::default()
    };
    assert!(result(&f.deploy_with("d3", "r3", healthy, 5).await).success);
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r3", "r1")
    );
}

#[tokio::test]
async fn a_first_release_that_fails_its_check_leaves_no_current() {
    let f = fixture().await;
    let failing = Activation {
        health: check(Probe::Command("echo 'no pid file' >&2; exit 1".into())),
        ..Activation::default()
    };
    let events = f.deploy_with("d1", "r1", failing, 5).await;
    let done = result(&events);
    assert!(!done.success);
    assert!(done.error.contains("current was removed"), "{}", done.error);
    assert!(
        done.error.ends_with("last output:\nno pid file"),
        "{}",
        done.error
    );
    let app = status(&f).await;
    assert_eq!(app.current_release, "");
    assert_eq!(states(&app), [("r1".to_owned(), ReleaseState::Failed)]);
}

#[tokio::test]
async fn a_rollback_runs_its_checks_and_switches_back_when_they_fail() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.deploy("d2", "r2").await;
    let plan = |deployment: &str, command: &str| RollbackPlan {
        app: f.app(),
        deployment_id: deployment.into(),
        release_id: "r1".into(),
        activation: Activation {
            health: check(Probe::Command(command.into())),
            ..Activation::default()
        },
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    };
    let events: Vec<_> = f
        .agent
        .rollback(plan("d3", "test \"$SLIPWAY_RELEASE_ID\" != r1"))
        .await
        .unwrap()
        .collect()
        .await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r2");
    assert!(
        done.error.contains("current was switched back to r2"),
        "{}",
        done.error
    );

    let events: Vec<_> = f
        .agent
        .rollback(plan("d4", "true"))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&events).success);
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r1", "r2")
    );
}
