//! slipctl for people: contexts that switch between two real control
//! planes, a deploy's progress bars on a pseudo-terminal and its plain
//! timestamped lines in a pipe, and confirmation prompts answered y and n
//! over a pseudo-terminal (refused without one unless --yes).

use std::{
    path::Path,
    process::{Command, Output, Stdio},
};

use rexpect::{process::WaitStatus, session::spawn_command};
use slipway_proto::{
    control::v1::{DeploymentKind, MarkReleaseRequest, ReleaseMark},
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, slipctl};

/// Longest a pseudo-terminal session waits for the text it expects.
const PTY_TIMEOUT_MS: u64 = 120_000;

/// Runs `command` with no terminal; stdout, stderr and the exit code.
fn output(mut command: Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run slipctl");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `slipctl` with only the config home `xdg`: no connection flags.
fn ctl(xdg: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = slipctl::isolated(xdg);
    command.args(args);
    output(command)
}

/// How many hosts the control plane a command reached has.
fn hosts_seen(mut command: Command) -> usize {
    command.args(["-o", "json", "host", "list"]);
    let (code, stdout, stderr) = output(command);
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    json["hosts"].as_array().map_or(0, Vec::len)
}

fn add_context(xdg: &Path, name: &str, cluster: &Cluster) {
    let admin = cluster.pki.operator(Role::Admin);
    let endpoint = cluster.addr();
    let args = [
        "context",
        "add",
        name,
        "--endpoint",
        endpoint.as_str(),
        "--ca",
        admin.ca.to_str().expect("utf-8"),
        "--cert",
        admin.cert.to_str().expect("utf-8"),
        "--key",
        admin.key.to_str().expect("utf-8"),
    ];
    let (code, stdout, stderr) = ctl(xdg, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("added context {name}")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_switch_between_two_control_planes() {
    let one = Cluster::builder().agents(1).start().await;
    let two = Cluster::builder().agents(2).start().await;
    let xdg = tempfile::tempdir().expect("temp dir");
    let xdg = xdg.path();
    tokio::task::block_in_place(|| {
        add_context(xdg, "one", &one);
        add_context(xdg, "two", &two);
        let file = std::fs::read_to_string(xdg.join("slipway/config.toml")).expect("config");
        assert!(
            file.contains("current = \"one\""),
            "the first added is current: {file}"
        );

        let plain = || slipctl::isolated(xdg);
        assert_eq!(hosts_seen(plain()), 1, "the current context");
        let mut flag = plain();
        flag.args(["--context", "two"]);
        assert_eq!(hosts_seen(flag), 2, "--context");
        let mut env = plain();
        env.env("SLIPWAY_CONTEXT", "two");
        assert_eq!(hosts_seen(env), 2, "SLIPWAY_CONTEXT");
        let mut both = plain();
        both.env("SLIPWAY_CONTEXT", "two")
            .args(["--context", "one"]);
        assert_eq!(hosts_seen(both), 1, "the flag beats the variable");
        let mut endpoint = plain();
        endpoint.args(["--context", "two", "--endpoint", &two.addr()]);
        assert_eq!(hosts_seen(endpoint), 2, "a flag fills in over the context");

        let (code, stdout, _) = ctl(xdg, &["context", "use", "two"]);
        assert_eq!(code, Some(0));
        assert!(stdout.contains("now using context two"), "{stdout}");
        assert_eq!(hosts_seen(plain()), 2, "the new current context");
        let (_, list, _) = ctl(xdg, &["context", "list"]);
        let current: Vec<&str> = list.lines().filter(|l| l.starts_with('*')).collect();
        assert_eq!(current.len(), 1, "{list}");
        assert!(
            current[0].contains("two") && current[0].contains(&two.addr()),
            "{list}"
        );
        let (_, shown, _) = ctl(xdg, &["context", "show", "one"]);
        assert!(
            shown.contains(&one.addr()) && shown.contains("current   no"),
            "{shown}"
        );

        let (code, _, stderr) = ctl(xdg, &["--context", "gone", "host", "list"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("no context named \"gone\""), "{stderr}");
        let (code, _, stderr) = ctl(xdg, &["context", "add", "bad", "--pki-dir", "/nowhere"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("needs --endpoint"), "{stderr}");

        let (code, _, _) = ctl(xdg, &["context", "remove", "two"]);
        assert_eq!(code, Some(0));
        let (code, _, stderr) = ctl(xdg, &["host", "list"]);
        assert_eq!(code, Some(3), "no context, no certificates: {stderr}");
    });
    one.shutdown().await;
    two.shutdown().await;
}

/// A cluster of two hosts with one deployment of `v1` done and `v2`
/// committed.
async fn deployed_once() -> Cluster {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    cluster.commit_text("v2");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_into_a_pipe_prints_one_timestamped_line_per_event() {
    let cluster = deployed_once().await;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        let mut command = slipctl::command(&cluster, Role::Deployer);
        command.args(["deploy", "web", "--env", "prod", "--ref", "main"]);
        output(command)
    });
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stdout.contains('\x1b'),
        "no ANSI codes in a pipe: {stdout:?}"
    );
    let mut sequences = Vec::new();
    for line in stdout.lines() {
        let Some((time, rest)) = line.split_once(' ') else {
            continue;
        };
        if chrono::DateTime::parse_from_rfc3339(time).is_err() {
            continue;
        }
        assert!(
            time.ends_with('Z') && time.len() == 24,
            "UTC, milliseconds: {line}"
        );
        let sequence = rest
            .trim_start_matches(['>', ' '])
            .strip_prefix('#')
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("an event number: {line}"));
        sequences.push(sequence);
    }
    let deployment = cluster.history().await.remove(0);
    assert_succeeded(&deployment);
    let (events, _) = cluster.watch(&deployment.id).await;
    let expected: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences, expected,
        "one line per event, in order:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("id  {}", deployment.id)) || stdout.contains(&deployment.id),
        "the summary follows: {stdout}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_on_a_terminal_draws_bars_then_a_summary() {
    let cluster = deployed_once().await;
    let (status, screen) = tokio::task::block_in_place(|| {
        let mut command = slipctl::command(&cluster, Role::Deployer);
        command.args(["deploy", "web", "--env", "prod", "--ref", "main"]);
        let mut session = spawn_command(command, Some(PTY_TIMEOUT_MS)).expect("pty");
        let screen = session.exp_eof().expect("the deploy's output");
        (session.process().wait().expect("exit"), screen)
    });
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}\n{screen}"
    );
    assert!(screen.contains("\x1b["), "drawn with terminal controls");
    let text = strip_ansi(&screen);
    // The bars were drawn: a bar with a percent for each host and overall.
    for prefix in ["deployment", "web-1", "web-2"] {
        let bar = format!("{prefix:<12} [");
        assert!(text.contains(&bar), "a bar for {prefix}:\n{text}");
    }
    assert!(text.contains("] 100%"), "bars reach 100%:\n{text}");
    // Then the bars give way to one summary line per host, then the
    // deployment's summary.
    let last_bar = text.rfind("deployment   [").expect("a bar");
    let end = &text[last_bar..];
    for host in ["web-1", "web-2"] {
        let summary = format!("{host}  succeeded  done  100%  2 B sent");
        assert!(end.contains(&summary), "{summary:?} at the end:\n{end}");
    }
    assert!(end.contains("status       succeeded"), "{end}");
    cluster.shutdown().await;
}

/// Runs `args` on a pseudo-terminal, waits for the question, answers
/// `answer`; the exit code and everything printed.
fn answer(cluster: &Cluster, args: &[&str], question: &str, answer: &str) -> (i32, String) {
    let mut command = slipctl::command(cluster, Role::Admin);
    command.args(args);
    let mut session = spawn_command(command, Some(PTY_TIMEOUT_MS)).expect("pty");
    let before = session.exp_string(question).expect("the question");
    session.send_line(answer).expect("answer");
    let after = session.exp_eof().expect("the rest");
    let code = match session.process().wait().expect("exit") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("{other:?}"),
    };
    (code, format!("{before}{question}{after}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_asks_first_and_no_changes_nothing() {
    let cluster = deployed_once().await;
    let (_, second) = cluster.deploy("main").await;
    assert_succeeded(&second);
    let args = ["rollback", "web", "--env", "prod"];
    let question = "roll back web in prod to the previous good release? [y/N] ";

    let (code, screen) = tokio::task::block_in_place(|| answer(&cluster, &args, question, "n"));
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("not confirmed; nothing was done"),
        "{screen}"
    );
    assert_eq!(cluster.history().await.len(), 2, "no rollback recorded");

    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        let mut command = slipctl::command(&cluster, Role::Admin);
        command.args(args);
        output(command)
    });
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert_eq!(cluster.history().await.len(), 2, "no rollback recorded");

    let (code, screen) = tokio::task::block_in_place(|| answer(&cluster, &args, question, "y"));
    assert_eq!(code, 0, "{screen}");
    let rollback = cluster.history().await.remove(0);
    assert_eq!(rollback.kind(), DeploymentKind::Rollback);
    assert_succeeded(&rollback);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_a_release_marked_bad_names_the_mark_and_asks() {
    let cluster = deployed_once().await;
    let first = cluster.history().await.remove(0);
    cluster
        .releases(Role::Deployer)
        .await
        .mark_release(MarkReleaseRequest {
            app: "web".into(),
            release_id: first.release.clone(),
            mark: ReleaseMark::Bad as i32,
            reason: "broke checkout".into(),
        })
        .await
        .expect("mark");
    let args = [
        "deploy",
        "web",
        "--env",
        "prod",
        "--release",
        &first.release,
    ];
    let (code, _, stderr) = tokio::task::block_in_place(|| {
        let mut command = slipctl::command(&cluster, Role::Deployer);
        command.args(args);
        output(command)
    });
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is marked bad (by deployer/") && stderr.contains("broke checkout"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert_eq!(cluster.history().await.len(), 1, "nothing deployed");

    let question = format!(
        "deploy release {} marked bad to prod? [y/N] ",
        first.release
    );
    let (code, screen) = tokio::task::block_in_place(|| answer(&cluster, &args, &question, "yes"));
    assert_eq!(code, 0, "{screen}");
    let again = cluster.history().await.remove(0);
    assert_succeeded(&again);
    assert_eq!(again.release, first.release);
    cluster.shutdown().await;
}

/// `text` without its ANSI escape sequences (colours, cursor moves).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_6_while_a_host_does_not_answer() {
    let mut cluster = Cluster::builder().agents(2).start().await;
    let status = |cluster: &Cluster| {
        tokio::task::block_in_place(|| {
            let mut command = slipctl::command(cluster, Role::Viewer);
            command.arg("status");
            output(command)
        })
    };
    let (code, stdout, stderr) = status(&cluster);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let stopped = cluster.agents[1].server.take().expect("in-process agent");
    stopped.shutdown().await;
    let (code, stdout, stderr) = status(&cluster);
    assert_eq!(code, Some(6), "partial: {stdout}{stderr}");
    assert!(stdout.contains("web-2"), "{stdout}");
    cluster.shutdown().await;
}
