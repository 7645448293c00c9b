//! CancelOperation at a real agent: a deploy held in a long before-activate
//! hook is cancelled; the hook's whole process group is gone by the time
//! the call answers, the operation ends failed "cancelled", and `current`
//! stays on the old release. The app takes the next deployment as usual.

use std::time::Duration;

use futures_util::StreamExt;
use slipway_proto::agent::v1::{CancelOperationRequest, ProgressEvent, ReleaseState};
use slipway_tests::{
    Cluster, assert_succeeded,
    direct::{agent_deploy, app_target, outcome},
    process::Probe,
    repo::Change,
    spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_cancel_kills_a_running_hook_group_and_keeps_current() {
    let gate = tempfile::tempdir().expect("temp dir");
    let pass = gate.path().join("pass");
    let (sh_pid, child_pid) = (gate.path().join("sh.pid"), gate.path().join("child.pid"));
    // Passes while the gate file exists; otherwise records its pids and
    // holds for ten minutes with a child in its process group.
    let hold = format!(
        "[ -f '{}' ] && exit 0; echo $$ > '{}'; sleep 600 & echo $! > '{}'; echo holding; wait",
        pass.display(),
        sh_pid.display(),
        child_pid.display()
    );
    let cluster = Cluster::builder()
        .agents(1)
        .activation(spec::hooks(vec![spec::before_activate("hold", &hold)]))
        .start()
        .await;
    let host = &cluster.agents[0];
    std::fs::write(&pass, b"").expect("open the gate");
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    std::fs::remove_file(&pass).expect("close the gate");
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let r2 = cluster.create_release("main").await;
    let token = cluster.holder_token(0).await;
    cluster.agent_upload(0, &r2, token).await.expect("upload");
    let mut request = cluster.agent_deploy_request("dep-cancelled", &r2.id).await;
    request.fencing_token = token;
    let mut stream = cluster
        .agent_client(0)
        .deploy(request.clone())
        .await
        .expect("deploy")
        .into_inner();
    let mut seen: Vec<ProgressEvent> = Vec::new();
    let holding = async {
        while let Some(item) = stream.next().await {
            let event = item.expect("event").event.expect("event set");
            seen.push(event.clone());
            if event.output == "stdout" && event.message == "holding" {
                return;
            }
        }
        panic!("the deploy ended before its hook held: {seen:#?}");
    };
    tokio::time::timeout(Duration::from_secs(60), holding)
        .await
        .expect("the hook holds within a minute");
    // Both pids were written before the line that was just seen.
    let sh = Probe::from_pidfile(&sh_pid).expect("the hook's shell runs");
    let child = Probe::from_pidfile(&child_pid).expect("its child runs");
    assert_eq!(
        cluster.agent_status(0).await.running_deployment,
        "dep-cancelled"
    );

    let answer = cluster
        .agent_client(0)
        .cancel_operation(CancelOperationRequest {
            app: Some(app_target()),
            deployment_id: "dep-cancelled".into(),
            grace_seconds: 5,
            fencing_token: token,
            fencing_epoch: String::new(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert!(answer.cancelled, "{answer:?}");
    assert_eq!(answer.current_release, d1.release);
    // The answer came once nothing of the operation runs.
    assert!(!sh.is_alive(), "the hook's shell {} still runs", sh.pid);
    assert!(!child.is_alive(), "its child {} still runs", child.pid);
    let status = cluster.agent_status(0).await;
    assert_eq!(status.running_deployment, "");
    assert_eq!(status.current_release, d1.release);
    let r2_state = status
        .releases
        .iter()
        .find(|r| r.id == r2.id)
        .map(|r| r.state());
    assert_eq!(r2_state, Some(ReleaseState::Failed));
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));

    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        let mut rest = Vec::new();
        while let Some(item) = stream.next().await {
            rest.push(item.expect("event").event.expect("event set"));
        }
        rest
    })
    .await
    .expect("the stream ends");
    seen.extend(rest);
    let done = outcome(&seen);
    assert!(!done.success);
    assert!(
        done.error
            .contains("cancelled during before-activate hook \"hold\""),
        "{}",
        done.error
    );
    assert_eq!(done.current_release, d1.release);

    // Over: a repeat replays the outcome, a second cancel finds nothing.
    let mut agent = cluster.agent_client(0);
    let replay = agent_deploy(&mut agent, request).await.expect("replay");
    assert_eq!(replay, seen);
    let again = agent
        .cancel_operation(CancelOperationRequest {
            app: Some(app_target()),
            deployment_id: "dep-cancelled".into(),
            grace_seconds: 0,
            fencing_token: token,
            fencing_epoch: String::new(),
        })
        .await
        .expect("cancel again")
        .into_inner();
    assert!(!again.cancelled);

    // The app takes the next deployment through the control plane.
    std::fs::write(&pass, b"").expect("open the gate");
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    assert_eq!(host.current().as_deref(), Some(r2.id.as_str()));
    cluster.shutdown().await;
}
