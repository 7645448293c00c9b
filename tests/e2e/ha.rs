//! A highly available control plane: three replicas on a real 3-member etcd
//! cluster, real agents. The leader is SIGKILLed, or cut off from etcd, in
//! the middle of a rolling deploy (a hook on one host holds until the test
//! opens its gate): another replica takes over within seconds of the lease
//! expiring and finishes the deployment, with every event once, in order,
//! also for a watcher connected to a follower the whole time; the record
//! matches every host, and the agents hold the new leader's fencing token,
//! which refuses anything the old one could still send.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use slipway_proto::control::v1::{
    Deployment, DeploymentEvent, RolloutPolicy, RolloutStrategy, WatchDeploymentRequest,
    deployment_service_client::DeploymentServiceClient,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    events::wait_for_event,
    ha::{Ha, LEASE_TTL_SECONDS},
    spec,
};
use tokio::task::JoinHandle;

/// A rolling deploy (one host per batch) of a new commit, held in web-2's
/// hook: returns its id and the gate that lets web-2 go on.
async fn deploy_held_on_web_2(cluster: &Cluster) -> (String, std::path::PathBuf) {
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_size: 1,
        ..Default::default()
    };
    let mut stream = cluster
        .try_deploy_stream("main", Some(policy))
        .await
        .expect("deploy");
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "web-2's hook", |e| {
        e.host == "web-2" && e.message == "holding"
    })
    .await;
    (seen[0].deployment_id.clone(), gate)
}

/// Every event of deployment `id` from replica `i`'s stream, to its end.
fn watch_on(ha: &Ha, i: usize, id: &str) -> JoinHandle<Vec<DeploymentEvent>> {
    let mut client = DeploymentServiceClient::new(ha.channel(i));
    let id = id.to_owned();
    tokio::spawn(async move {
        let mut stream = client
            .watch_deployment(WatchDeploymentRequest {
                deployment_id: id,
                ..Default::default()
            })
            .await
            .expect("watch on a follower")
            .into_inner();
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item.expect("the follower's stream goes on through the failover");
            if let Some(event) = item.event {
                events.push(event);
            }
        }
        events
    })
}

/// What a deployment finished by a successor must show.
fn assert_finished_by_term_2(cluster: &Cluster, events: &[DeploymentEvent], d: &Deployment) {
    assert_succeeded(d);
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected, "no gap and no duplicate");
    let resumed: Vec<_> = events.iter().filter(|e| e.stage == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(
        resumed[0]
            .message
            .contains("a new leader (term 2) took over"),
        "{}",
        resumed[0].message
    );
    let number = d.id.trim_start_matches("dep-").parse::<u64>().expect("id");
    assert_eq!(d.fencing_token, (2 << 32) + number, "the new term's token");
    assert_eq!(
        events.iter().filter(|e| e.message == "holding").count(),
        1,
        "the held hook's line relayed once"
    );
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d.release.as_str()));
        let record = d.hosts.iter().find(|h| h.host == host.name).expect("host");
        assert!(record.switched, "{}: {record:?}", host.name);
    }
}

/// The agents hold the successor's token (or, for a host it never had to
/// call, an older one): the old leader's token is refused by each host the
/// successor touched.
async fn assert_agents_fenced(cluster: &Cluster, d: &Deployment) {
    let mut fenced = 0;
    for i in 0..cluster.agents.len() {
        let status = cluster.agent_status(i).await;
        assert!(status.fencing_token <= d.fencing_token, "{status:?}");
        if status.fencing_token == d.fencing_token {
            fenced += 1;
        }
    }
    assert!(fenced >= 2, "web-2 and web-3 went on under the new token");
}

fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_rollout_a_follower_resumes_it_and_its_watchers_miss_nothing() {
    let (mut cluster, mut ha) = Ha::start(Cluster::builder().agents(3), 3).await;
    let (id, gate) = deploy_held_on_web_2(&cluster).await;
    let watcher = watch_on(&ha, 1, &id);
    let killed = SystemTime::now();
    cluster.kill_control_plane();
    let (leader, _) = ha.wait_for_new_leader(1, "r0").await;
    let elected = SystemTime::now();
    assert_eq!(leader.term, 2, "{leader:?}");
    let successor = ha.index(&leader.id);
    let process = ha.replicas[successor].process.take().expect("running");
    cluster.use_control_plane(process);
    std::fs::write(&gate, b"go").expect("open the gate");
    let (events, d) = cluster.watch(&id).await;
    assert_finished_by_term_2(&cluster, &events, &d);
    let resumed = events
        .iter()
        .find(|e| e.stage == "resumed")
        .and_then(|e| e.time)
        .map(|t| SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32))
        .expect("resumed at");
    let followed = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the follower's stream ends with the deployment")
        .expect("watcher");
    assert_eq!(
        followed.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        "the follower's watcher saw every event once, in order"
    );
    assert_agents_fenced(&cluster, &d).await;
    let to_resumed = seconds(killed, resumed);
    eprintln!(
        "failover: lease TTL {LEASE_TTL_SECONDS} s; leader killed -> new leader seen {:.2} s, \
         -> rollout resumed {to_resumed:.2} s ({:.2} s after the lease expired at the latest)",
        seconds(killed, elected),
        to_resumed - LEASE_TTL_SECONDS as f64,
    );
    assert!(
        to_resumed <= LEASE_TTL_SECONDS as f64 + 5.0,
        "resumed within 5 s of the lease expiring: {to_resumed:.2} s after the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_cut_off_from_etcd_steps_down_before_a_successor_acts() {
    let (mut cluster, mut ha) = Ha::start(Cluster::builder().agents(3), 3).await;
    let (id, gate) = deploy_held_on_web_2(&cluster).await;
    ha.partition(0, true);
    let limit = Duration::from_secs(LEASE_TTL_SECONDS + 20);
    let status = cluster.control_plane_process().wait_exit(limit).await;
    assert!(!status.success(), "{status}");
    let log = cluster.control_plane_process().log();
    // When it stopped, by its own clock: it exits right after this line.
    let stepped_down = log
        .lines()
        .find(|l| l.contains("lost its leadership"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(SystemTime::from)
        .unwrap_or_else(|| panic!("no step-down line with a time in its log:\n{log}"));
    // Nobody else led before it stepped down: the term it led in is the
    // newest until a successor takes over, after its lease ran out.
    let (leader, _) = ha.wait_for_new_leader(1, "r0").await;
    assert_eq!(leader.term, 2, "{leader:?}");
    let successor = ha.index(&leader.id);
    let process = ha.replicas[successor].process.take().expect("running");
    cluster.use_control_plane(process);
    std::fs::write(&gate, b"go").expect("open the gate");
    let (events, d) = cluster.watch(&id).await;
    assert_finished_by_term_2(&cluster, &events, &d);
    let resumed = events
        .iter()
        .find(|e| e.stage == "resumed")
        .and_then(|e| e.time)
        .map(|t| SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32))
        .expect("resumed at");
    assert!(
        resumed > stepped_down,
        "the successor acted only after the old leader had stopped"
    );
    assert_agents_fenced(&cluster, &d).await;
    ha.partition(0, false);
}
