//! The fault fixtures against real servers: proxies in front of agents that
//! count, cut, blackhole and refuse; a control plane process killed with
//! SIGKILL and restarted on the same address and sled directory.

use std::time::{Duration, Instant};

use slipway_proto::{
    agent::v1::{GetStatusRequest, GetStatusResponse, agent_service_client::AgentServiceClient},
    control::v1::{ListDeploymentsRequest, ListHostsRequest},
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, direct::app_target, repo::Change};
use tonic::{Code, Status, transport::Channel};

/// A deadline that a blackholed call must run into.
const SHORT: Duration = Duration::from_millis(300);

/// A deadline that a healthy loopback call never runs into.
const LONG: Duration = Duration::from_secs(10);

/// GetStatus with a client-side deadline (sent as `grpc-timeout` and enforced
/// by tonic's channel), and the same bound around the whole call in case the
/// connection itself is what hangs.
async fn status(
    client: &mut AgentServiceClient<Channel>,
    deadline: Duration,
) -> Result<GetStatusResponse, Status> {
    let mut request = tonic::Request::new(GetStatusRequest {
        apps: vec![app_target()],
        ..Default::default()
    });
    request.set_timeout(deadline);
    match tokio::time::timeout(deadline, client.get_status(request)).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded("client-side bound")),
    }
}

/// Repeats `call` until it succeeds (within [`LONG`]); each failure must be
/// one that a broken connection gives. Returns the failures' codes.
async fn until_ok(what: &str, mut call: impl AsyncFnMut() -> Result<(), Status>) -> Vec<Code> {
    let deadline = Instant::now() + LONG;
    let mut failed = Vec::new();
    loop {
        let Err(err) = call().await else {
            return failed;
        };
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::Cancelled | Code::Unknown
            ),
            "{what}: {err:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{what}: still failing after {LONG:?}: {err:?}"
        );
        failed.push(err.code());
        // Lets the connection task run; no timed wait.
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_through_proxies_is_counted() {
    let cluster = Cluster::builder().agents(2).fault_proxies().start().await;
    cluster
        .repo
        .commit("one", &[Change::File("index.html", &[b'x'; 20_000])]);

    let (_, deployment) = cluster.deploy("main").await;

    assert_succeeded(&deployment);
    let hosts = cluster
        .hosts(Role::Viewer)
        .await
        .list_hosts(ListHostsRequest::default())
        .await
        .expect("list hosts")
        .into_inner()
        .hosts;
    for (i, agent) in cluster.agents.iter().enumerate() {
        let proxy = cluster.proxy(i);
        let host = hosts.iter().find(|h| h.name == agent.name).expect("host");
        assert_eq!(host.address, proxy.addr.to_string(), "registered via proxy");
        assert_eq!(
            agent.current().as_deref(),
            Some(deployment.release.as_str())
        );
        let stats = proxy.stats();
        assert!(stats.accepted >= 1, "{}: {stats:?}", agent.name);
        // The 20 kB file went through (compressed or not, plus TLS framing,
        // it is more than a handshake), and the agent answered.
        assert!(stats.to_upstream > 5_000, "{}: {stats:?}", agent.name);
        assert!(stats.to_client > 1_000, "{}: {stats:?}", agent.name);
        assert_eq!((stats.refused, stats.cut), (0, 0), "{stats:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_for_chosen_agents_only() {
    let cluster = Cluster::builder().agents(2).fault_proxy(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);

    let (_, deployment) = cluster.deploy("main").await;

    assert_succeeded(&deployment);
    assert!(cluster.agents[0].proxy.is_none());
    assert_eq!(
        cluster.agents[0].registered_addr(),
        cluster.agents[0].addr()
    );
    assert_eq!(cluster.agents[1].registered_addr(), cluster.proxy(1).addr);
    assert!(cluster.proxy(1).stats().to_upstream > 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_while_idle_then_the_client_and_deploys_recover() {
    let cluster = Cluster::builder().agents(1).fault_proxies().start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let proxy = cluster.proxy(0);
    let mut client = cluster.proxied_agent_client(0);
    status(&mut client, LONG)
        .await
        .expect("status before the cut");
    let before = proxy.stats();
    assert!(
        before.open >= 1,
        "the client's connection is open: {before:?}"
    );

    let cut = proxy.cut().await;

    let after_cut = proxy.stats();
    assert!(cut >= 1, "{after_cut:?}");
    assert_eq!(after_cut.open, 0, "every connection closed: {after_cut:?}");
    assert_eq!(after_cut.cut, cut as u64);
    // Until tonic's connection task has seen the reset, calls on the old
    // connection fail (Unknown "connection reset", Cancelled "connection
    // closed", Unavailable): seen here from none to two. Then the channel
    // dials again by itself.
    let failed = until_ok("GetStatus after the cut", async || {
        status(&mut client, LONG).await.map(drop)
    })
    .await;
    eprintln!("calls that failed after the cut before tonic reconnected: {failed:?}");
    let reconnected = proxy.wait_accepted(before.accepted + 1).await;
    assert!(reconnected.open >= 1, "{reconnected:?}");

    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    assert_eq!(proxy.stats().cut, cut as u64, "no further cuts");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_times_calls_out_and_lifting_it_restores_them() {
    let cluster = Cluster::builder().agents(1).fault_proxies().start().await;
    let proxy = cluster.proxy(0);
    let mut client = cluster.proxied_agent_client(0);
    status(&mut client, LONG).await.expect("status before");
    let before = proxy.stats();

    proxy.blackhole(true);

    let err = status(&mut client, SHORT)
        .await
        .expect_err("an existing connection is blackholed");
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    // Taken after the blackhole began (a write in flight at that moment may
    // still be counted, so not `before`).
    let blackholed = proxy.stats();
    // A new connection is accepted, but its TLS handshake goes nowhere.
    let mut fresh = cluster.proxied_agent_client(0);
    let err = status(&mut fresh, SHORT)
        .await
        .expect_err("a new connection is blackholed");
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    let during = proxy.wait_accepted(before.accepted + 1).await;
    assert_eq!(
        (during.to_upstream, during.to_client),
        (blackholed.to_upstream, blackholed.to_client),
        "not a byte forwarded while blackholed, though both clients wrote"
    );

    proxy.blackhole(false);

    status(&mut client, LONG)
        .await
        .expect("the old connection answers again");
    status(&mut fresh, LONG)
        .await
        .expect("the held handshake completes");
    let after = proxy.stats();
    assert_eq!(
        after.accepted, during.accepted,
        "both connections survived the blackhole: {after:?}"
    );
    assert_eq!(after.cut, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_resets_new_connections_only_while_on() {
    let cluster = Cluster::builder().agents(1).fault_proxies().start().await;
    let proxy = cluster.proxy(0);
    let mut old = cluster.proxied_agent_client(0);
    status(&mut old, LONG).await.expect("status before");

    proxy.refuse(true);

    let mut fresh = cluster.proxied_agent_client(0);
    let err = status(&mut fresh, LONG)
        .await
        .expect_err("a new connection is refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(proxy.stats().refused >= 1, "{:?}", proxy.stats());
    status(&mut old, LONG)
        .await
        .expect("an existing connection is untouched");

    proxy.refuse(false);

    status(&mut fresh, LONG)
        .await
        .expect("new connections work again");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_with_sigkill_restarts_with_its_history() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_control_plane()
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    cluster.repo.commit("two", &[Change::File("a.txt", b"b\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let before = cluster.history().await;
    assert_eq!(before, vec![d2.clone(), d1.clone()]);
    let addr = cluster.addr();
    let pid = cluster.control_plane_process().pid();
    let mut held = cluster.deployments(Role::Viewer).await;

    cluster.kill_control_plane();

    let err = cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect_err("nobody answers while it is dead");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    cluster.restart_control_plane().await;

    assert_eq!(cluster.addr(), addr, "same address");
    assert_ne!(cluster.control_plane_process().pid(), pid, "a new process");
    assert_eq!(cluster.history().await, before, "history survived kill -9");
    // A client made before the kill reconnects by itself, after failing
    // while it still holds the dead connection.
    let mut again = Vec::new();
    until_ok(
        "ListDeployments on a client made before the kill",
        async || {
            again = held
                .list_deployments(ListDeploymentsRequest::default())
                .await?
                .into_inner()
                .deployments;
            Ok(())
        },
    )
    .await;
    assert_eq!(again, before);
    // And the restarted control plane deploys.
    cluster
        .repo
        .commit("three", &[Change::File("a.txt", b"c\n")]);
    let (_, d3) = cluster.deploy("main").await;
    assert_succeeded(&d3);
    assert_eq!(d3.previous_release, d2.release);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d3.release.as_str()));
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_process_restarts_gracefully_too() {
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    // Running: SIGTERM, drain, start again.
    cluster.restart_control_plane().await;

    assert_eq!(cluster.history().await, vec![d1]);
    assert!(
        cluster
            .control_plane_process()
            .log()
            .contains("stopped with SIGTERM"),
        "{}",
        cluster.control_plane_process().log()
    );
    cluster.shutdown().await;
}
