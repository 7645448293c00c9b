//! The audit trail over a real cluster: successful and refused mutating calls
//! are recorded with the caller's principal, role and certificate
//! fingerprint, filtered and paged newest first, and kept across a restart;
//! release marks round-trip and land in the trail.

use futures_util::StreamExt;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};
use slipway_proto::{
    control::v1::{
        AuditEvent, DeployRequest, GetReleaseRequest, ListAuditEventsRequest, ListReleasesRequest,
        MarkReleaseRequest, ReleaseMark, audit_service_client::AuditServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    repo::Change,
};
use tonic::{Code, transport::Channel};

const DEPLOY: &str = "slipway.control.v1.DeploymentService/Deploy";

/// Lowercase hex SHA-256 of the DER of the operator certificate of `role`.
fn fingerprint(cluster: &Cluster, role: Role) -> String {
    let paths = cluster.pki.operator(role);
    let der = CertificateDer::from_pem_file(&paths.cert).expect("read the certificate");
    hex::encode(Sha256::digest(der.as_ref()))
}

async fn audit_client(cluster: &Cluster) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(cluster.channel(Role::Admin).await)
}

/// Every entry matching `request`, following the page tokens.
async fn all_entries(
    client: &mut AuditServiceClient<Channel>,
    mut request: ListAuditEventsRequest,
) -> (Vec<AuditEvent>, usize) {
    let mut entries = Vec::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_audit_events(request.clone())
            .await
            .expect("list audit events")
            .into_inner();
        pages += 1;
        entries.extend(page.events);
        if page.next_page_token.is_empty() {
            return (entries, pages);
        }
        request.page_token = page.next_page_token;
    }
}

fn deploy_request(environment: &str) -> DeployRequest {
    DeployRequest {
        app: APP.into(),
        environment: environment.into(),
        git_ref: "main".into(),
        message: "audited".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_and_refused_calls_are_recorded_with_the_certificate() {
    let mut cluster = Cluster::builder().agents(2).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);

    // A viewer may not deploy.
    let refused = cluster
        .deployments(Role::Viewer)
        .await
        .deploy(deploy_request(ENV))
        .await
        .expect_err("a viewer deploying");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A deployer may; the entry names the deployment it started.
    let events: Vec<_> = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(deploy_request(ENV))
        .await
        .expect("deploy")
        .into_inner()
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await;
    let deployment = cluster.deployment(&events[0].deployment_id).await;
    assert_succeeded(&deployment);

    // A deploy to an environment that does not exist.
    let missing = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(deploy_request("staging"))
        .await
        .expect_err("unknown environment");
    assert_eq!(missing.code(), Code::NotFound);

    let mut client = audit_client(&cluster).await;
    let (newest, _) = all_entries(
        &mut client,
        ListAuditEventsRequest {
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    let [not_found, started, denied] = &newest[..3] else {
        panic!("three deploy entries first: {newest:#?}")
    };

    assert_eq!(denied.method, DEPLOY);
    assert_eq!(denied.actor, "viewer/viewer-op");
    assert_eq!(denied.role, "viewer");
    assert_eq!(denied.outcome, "PermissionDenied");
    assert_eq!(denied.target, "app web, environment prod");
    assert_eq!(denied.message, refused.message());
    assert_eq!(
        denied.certificate_sha256,
        fingerprint(&cluster, Role::Viewer)
    );

    assert_eq!(started.method, DEPLOY);
    assert_eq!(started.actor, "deployer/deployer-op");
    assert_eq!(started.role, "deployer");
    assert_eq!(started.outcome, "OK");
    assert!(
        started.message.contains(&deployment.id),
        "names the deployment: {}",
        started.message
    );
    assert_eq!(
        started.certificate_sha256,
        fingerprint(&cluster, Role::Deployer)
    );
    assert_ne!(started.certificate_sha256, denied.certificate_sha256);

    assert_eq!(not_found.outcome, "NotFound");
    assert_eq!(not_found.target, "app web, environment staging");
    assert_eq!(not_found.message, missing.message());

    // The cluster's own setup is in the trail too: app, environment, hosts,
    // by the admin, numbered from 1 without gaps, newest first.
    let seqs: Vec<u64> = newest.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=newest.len() as u64).rev().collect();
    assert_eq!(seqs, expected);
    let oldest = newest.last().expect("entries");
    assert_eq!(
        (
            oldest.method.as_str(),
            oldest.target.as_str(),
            oldest.actor.as_str()
        ),
        (
            "slipway.control.v1.AppService/CreateApp",
            "app web",
            "admin/admin"
        )
    );
    assert_eq!(
        oldest.certificate_sha256,
        fingerprint(&cluster, Role::Admin)
    );
    for e in &newest {
        assert!(e.time.is_some(), "{e:?}");
    }
    let times: Vec<(i64, i32)> = newest
        .iter()
        .map(|e| e.time.map(|t| (t.seconds, t.nanos)).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Filters: actor (bare name or principal), method part, time window.
    let (by_viewer, _) = all_entries(
        &mut client,
        ListAuditEventsRequest {
            actor: "viewer-op".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_viewer, std::slice::from_ref(denied));
    let (hosts, pages) = all_entries(
        &mut client,
        ListAuditEventsRequest {
            method: "HostService/AddHost".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(hosts.len(), 2, "{hosts:#?}");
    assert_eq!(pages, 2);
    assert!(hosts.iter().all(|e| e.outcome == "OK"));
    let (window, _) = all_entries(
        &mut client,
        ListAuditEventsRequest {
            since: denied.time,
            until: not_found.time,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(window, [started.clone(), denied.clone()]);

    // Only an admin reads the trail; reading it is not recorded.
    let status = AuditServiceClient::new(cluster.channel(Role::Deployer).await)
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .expect_err("a deployer reading the trail");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .list_audit_events(ListAuditEventsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);

    // Durable: a restarted control plane has every entry and goes on
    // numbering after them.
    cluster.restart_control_plane().await;
    let mut client = audit_client(&cluster).await;
    let (after, _) = all_entries(&mut client, ListAuditEventsRequest::default()).await;
    assert_eq!(after, newest);
    let refused = cluster
        .deployments(Role::Viewer)
        .await
        .deploy(deploy_request(ENV))
        .await
        .expect_err("a viewer deploying again");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let (latest, _) = all_entries(
        &mut client,
        ListAuditEventsRequest {
            page_size: 1,
            actor: "viewer/viewer-op".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].sequence, newest[0].sequence + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_marks_round_trip_and_are_audited() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let mut releases = cluster.releases(Role::Deployer).await;
    let mark = |mark: ReleaseMark, reason: &str| MarkReleaseRequest {
        app: APP.into(),
        release_id: d1.release.clone(),
        mark: mark as i32,
        reason: reason.into(),
    };
    let viewer = cluster.releases(Role::Viewer).await;
    let stored = || {
        let mut viewer = viewer.clone();
        let id = d1.release.clone();
        async move {
            let shown = viewer
                .get_release(GetReleaseRequest {
                    app: APP.into(),
                    id: id.clone(),
                    include_manifest: false,
                })
                .await
                .expect("get release")
                .into_inner()
                .release
                .expect("release set");
            let listed = viewer
                .list_releases(ListReleasesRequest {
                    app: APP.into(),
                    limit: 0,
                })
                .await
                .expect("list releases")
                .into_inner()
                .releases
                .into_iter()
                .find(|r| r.id == id)
                .expect("listed");
            assert_eq!(
                (shown.mark, &shown.mark_reason),
                (listed.mark, &listed.mark_reason)
            );
            (shown.mark(), shown.mark_reason)
        }
    };

    let bad = releases
        .mark_release(mark(ReleaseMark::Bad, "breaks checkout"))
        .await
        .expect("mark bad")
        .into_inner()
        .release
        .expect("release set");
    assert_eq!(bad.mark(), ReleaseMark::Bad);
    assert_eq!(bad.mark_reason, "by deployer/deployer-op: breaks checkout");
    assert_eq!(
        stored().await,
        (
            ReleaseMark::Bad,
            "by deployer/deployer-op: breaks checkout".to_owned()
        )
    );

    releases
        .mark_release(mark(ReleaseMark::Good, "fixed upstream"))
        .await
        .expect("mark good");
    assert_eq!(
        stored().await,
        (
            ReleaseMark::Good,
            "by deployer/deployer-op: fixed upstream".to_owned()
        )
    );
    releases
        .mark_release(mark(ReleaseMark::Unspecified, ""))
        .await
        .expect("clear");
    assert_eq!(stored().await, (ReleaseMark::Unspecified, String::new()));

    // Refusals change nothing.
    let status = cluster
        .releases(Role::Viewer)
        .await
        .mark_release(mark(ReleaseMark::Bad, "viewer"))
        .await
        .expect_err("a viewer marking");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = releases
        .mark_release(MarkReleaseRequest {
            release_id: "no-such-release".into(),
            ..mark(ReleaseMark::Bad, "")
        })
        .await
        .expect_err("unknown release");
    assert_eq!(status.code(), Code::NotFound);
    let status = releases
        .mark_release(MarkReleaseRequest {
            mark: 7,
            ..mark(ReleaseMark::Bad, "")
        })
        .await
        .expect_err("unknown mark");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(stored().await, (ReleaseMark::Unspecified, String::new()));

    let (trail, _) = all_entries(
        &mut audit_client(&cluster).await,
        ListAuditEventsRequest {
            method: "MarkRelease".into(),
            ..Default::default()
        },
    )
    .await;
    let summary: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|e| (e.actor.as_str(), e.outcome.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        &summary[3..],
        [
            ("deployer/deployer-op", "OK", "mark cleared"),
            ("deployer/deployer-op", "OK", "marked good"),
            ("deployer/deployer-op", "OK", "marked bad"),
        ]
    );
    let outcomes: Vec<&str> = trail[..3].iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["InvalidArgument", "NotFound", "PermissionDenied"]
    );
    let target = format!("release {} of app {APP}", d1.release);
    assert!(trail[3..].iter().all(|e| e.target == target), "{trail:#?}");
    cluster.shutdown().await;
}
