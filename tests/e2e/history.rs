//! Reading the past over real deployments: history filters and page tokens,
//! one deployment's events filtered and paged, statistics over a mix of
//! outcomes, and the rollback timeline.

use std::collections::HashSet;

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::ActivationSpec,
    control::v1::{
        DeployRequest, Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus,
        GetDeploymentStatsRequest, GetRollbackTimelineRequest, ListDeploymentEventsRequest,
        ListDeploymentsRequest, LogLevel, RolloutPolicy, StatsPeriod,
        deployment_service_client::DeploymentServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    repo::Change,
    spec,
};
use tonic::{Code, transport::Channel};

/// A before-activate hook that prints a few lines (one on stderr) and fails
/// when the release holds a file named `fail`.
fn gated_cluster(agents: usize) -> slipway_tests::cluster::Builder {
    Cluster::builder().agents(agents).activation(spec::hooks(vec![
        spec::before_activate(
            "announce",
            r#"for i in 1 2 3; do echo "line-$i of $SLIPWAY_RELEASE_ID"; done; echo "note-on-stderr" >&2"#,
        ),
        spec::before_activate(
            "gate",
            r#"if [ -f fail ]; then echo "gate says no" >&2; exit 3; fi"#,
        ),
    ]))
}

/// Deploys `main` as the deployer operator with `message`.
async fn deploy_as_deployer(cluster: &Cluster, message: &str) -> Deployment {
    let events: Vec<DeploymentEvent> = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: "main".into(),
            message: message.into(),
            ..Default::default()
        })
        .await
        .expect("deploy")
        .into_inner()
        .map(|r| r.expect("event").event.expect("event set"))
        .collect()
        .await;
    cluster.deployment(&events[0].deployment_id).await
}

/// Every page of a listing, following next_page_token; returns the ids of
/// each page.
async fn walk(
    client: &mut DeploymentServiceClient<Channel>,
    mut request: ListDeploymentsRequest,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = client
            .list_deployments(request.clone())
            .await
            .expect("list deployments")
            .into_inner();
        pages.push(page.deployments.iter().map(|d| d.id.clone()).collect());
        if page.next_page_token.is_empty() {
            return pages;
        }
        request.page_token = page.next_page_token;
    }
}

async fn ids(
    client: &mut DeploymentServiceClient<Channel>,
    request: ListDeploymentsRequest,
) -> Vec<String> {
    walk(client, request).await.concat()
}

/// Five deployments: two deploys, a rollback, a failed deploy, and a deploy
/// by another operator; newest first.
async fn five_deployments(cluster: &Cluster) -> [Deployment; 5] {
    cluster
        .repo
        .commit("first", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    cluster
        .repo
        .commit("second", &[Change::File("a.txt", b"2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let (_, d3) = cluster.rollback("").await;
    assert_succeeded(&d3);
    cluster
        .repo
        .commit("third", &[Change::File("fail", b"broken\n")]);
    let (_, d4) = cluster.deploy("main").await;
    assert_eq!(d4.status, DeploymentStatus::Failed as i32, "{d4:?}");
    cluster.repo.commit("fourth", &[Change::Delete("fail")]);
    let d5 = deploy_as_deployer(cluster, "Hotfix CHECKOUT-42").await;
    assert_succeeded(&d5);
    [d5, d4, d3, d2, d1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_and_page_tokens_over_real_deployments() {
    let cluster = gated_cluster(1).start().await;
    let all = five_deployments(&cluster).await;
    let [d5, d4, d3, d2, d1] = &all;
    let all_ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
    let mut client = cluster.deployments(Role::Viewer).await;

    // A walk with pages of two returns every deployment exactly once,
    // newest first.
    let pages = walk(
        &mut client,
        ListDeploymentsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), all_ids);
    let unique: HashSet<&String> = pages.iter().flatten().collect();
    assert_eq!(unique.len(), all_ids.len());

    // The same with a filter: the three succeeded deploys, one per page.
    let deploys = ListDeploymentsRequest {
        kind: DeploymentKind::Deploy as i32,
        status: DeploymentStatus::Succeeded as i32,
        app: APP.into(),
        environment: ENV.into(),
        page_size: 1,
        ..Default::default()
    };
    let pages = walk(&mut client, deploys).await;
    assert_eq!(
        pages,
        [[d5.id.as_str()], [d2.id.as_str()], [d1.id.as_str()]]
    );

    let only = |kind: DeploymentKind| ListDeploymentsRequest {
        kind: kind as i32,
        ..Default::default()
    };
    assert_eq!(
        ids(&mut client, only(DeploymentKind::Rollback)).await,
        [d3.id.as_str()]
    );
    assert_eq!(
        ids(&mut client, only(DeploymentKind::Deploy)).await,
        [
            d5.id.as_str(),
            d4.id.as_str(),
            d2.id.as_str(),
            d1.id.as_str()
        ]
    );
    let failed = ListDeploymentsRequest {
        status: DeploymentStatus::Failed as i32,
        ..Default::default()
    };
    assert_eq!(ids(&mut client, failed).await, [d4.id.as_str()]);

    // Authors: the bare name or the whole principal.
    let by = |author: &str| ListDeploymentsRequest {
        author: author.into(),
        ..Default::default()
    };
    assert_eq!(ids(&mut client, by("deployer-op")).await, [d5.id.as_str()]);
    assert_eq!(
        ids(&mut client, by("deployer/deployer-op")).await,
        [d5.id.as_str()]
    );
    assert_eq!(
        ids(&mut client, by("admin/admin")).await,
        [
            d4.id.as_str(),
            d3.id.as_str(),
            d2.id.as_str(),
            d1.id.as_str()
        ]
    );
    assert!(ids(&mut client, by("nobody")).await.is_empty());

    // Text: the commit (filled from the release), the release id, the
    // message, ignoring case.
    let listed = client
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .deployments;
    for d in &listed {
        assert_eq!(d.commit.len(), 40, "{}: commit filled in", d.id);
        assert_eq!(d.git_ref, "main", "{}: ref filled in", d.id);
    }
    let commit_of = |id: &str| {
        listed
            .iter()
            .find(|d| d.id == id)
            .expect("listed")
            .commit
            .clone()
    };
    let grep = |text: &str| ListDeploymentsRequest {
        text: text.into(),
        ..Default::default()
    };
    assert_eq!(
        ids(&mut client, grep(&commit_of(&d4.id)[..10])).await,
        [d4.id.as_str()]
    );
    assert_eq!(
        ids(&mut client, grep(&d1.release)).await,
        [d3.id.as_str(), d1.id.as_str()]
    );
    assert_eq!(
        ids(&mut client, grep("checkout-42")).await,
        [d5.id.as_str()]
    );
    assert!(ids(&mut client, grep("no such text")).await.is_empty());

    // Time: since is inclusive, until exclusive, on started_at.
    let since = ListDeploymentsRequest {
        since: d3.started_at,
        ..Default::default()
    };
    assert_eq!(
        ids(&mut client, since).await,
        [d5.id.as_str(), d4.id.as_str(), d3.id.as_str()]
    );
    let until = ListDeploymentsRequest {
        until: d3.started_at,
        ..Default::default()
    };
    assert_eq!(
        ids(&mut client, until).await,
        [d2.id.as_str(), d1.id.as_str()]
    );
    let window = ListDeploymentsRequest {
        since: d2.started_at,
        until: d4.started_at,
        ..Default::default()
    };
    assert_eq!(
        ids(&mut client, window).await,
        [d3.id.as_str(), d2.id.as_str()]
    );

    // Bad filters are refused with INVALID_ARGUMENT.
    for bad in [
        ListDeploymentsRequest {
            page_token: "../etc".into(),
            ..Default::default()
        },
        ListDeploymentsRequest {
            since: d4.started_at,
            until: d2.started_at,
            ..Default::default()
        },
        ListDeploymentsRequest {
            kind: 9,
            ..Default::default()
        },
    ] {
        let status = client.list_deployments(bad).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_events_filter_by_host_level_step_and_text_in_pages() {
    let cluster = gated_cluster(2).start().await;
    cluster
        .repo
        .commit("broken", &[Change::File("fail", b"broken\n")]);
    let (streamed, failed) = cluster.deploy("main").await;
    assert_eq!(failed.status, DeploymentStatus::Failed as i32);
    let mut client = cluster.deployments(Role::Viewer).await;
    let list = |request: ListDeploymentEventsRequest| {
        let mut client = client.clone();
        async move {
            let mut request = request;
            let mut pages = Vec::new();
            loop {
                let page = client
                    .list_deployment_events(request.clone())
                    .await
                    .expect("list events")
                    .into_inner();
                pages.push(page.events);
                if page.next_page_token.is_empty() {
                    return pages;
                }
                request.page_token = page.next_page_token;
            }
        }
    };
    let request = |change: fn(&mut ListDeploymentEventsRequest)| {
        let mut request = ListDeploymentEventsRequest {
            deployment_id: failed.id.clone(),
            ..Default::default()
        };
        change(&mut request);
        request
    };
    let expect = |wanted: &dyn Fn(&DeploymentEvent) -> bool| -> Vec<DeploymentEvent> {
        streamed.iter().filter(|e| wanted(e)).cloned().collect()
    };

    // Unfiltered: exactly what the stream delivered, in one page.
    let pages = list(request(|_| {})).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0], streamed);

    // Pages of three, in sequence order, add up to the whole log.
    let pages = list(request(|r| r.page_size = 3)).await;
    assert!(pages.len() > 2);
    assert!(pages.iter().all(|p| !p.is_empty() && p.len() <= 3));
    assert_eq!(pages.concat(), streamed);

    let web2 = list(request(|r| {
        r.host = "web-2".into();
        r.page_size = 2;
    }))
    .await
    .concat();
    assert!(!web2.is_empty());
    assert_eq!(web2, expect(&|e| e.host == "web-2"));

    let announce = list(request(|r| r.step = "announce".into())).await.concat();
    assert_eq!(announce, expect(&|e| e.step == "announce"));
    assert!(
        announce
            .iter()
            .filter(|e| e.message.contains("line-2 of"))
            .count()
            == 2,
        "one line-2 per host: {announce:?}"
    );

    let errors = list(request(|r| r.min_level = LogLevel::Error as i32))
        .await
        .concat();
    assert!(!errors.is_empty());
    assert_eq!(errors, expect(&|e| e.level >= LogLevel::Error as i32));
    let warnings = list(request(|r| r.min_level = LogLevel::Warn as i32))
        .await
        .concat();
    assert!(warnings.len() >= errors.len());
    assert_eq!(warnings, expect(&|e| e.level >= LogLevel::Warn as i32));

    // Text ignores case and combines with the other filters.
    let lines = list(request(|r| {
        r.text = "LINE-3 OF".into();
        r.host = "web-1".into();
    }))
    .await
    .concat();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].host, "web-1");
    assert_eq!(lines[0].step, "announce");
    let gate = list(request(|r| r.text = "gate says no".into()))
        .await
        .concat();
    assert!(!gate.is_empty());
    assert_eq!(
        gate,
        expect(&|e| e.message.to_lowercase().contains("gate says no"))
    );

    let status = client
        .list_deployment_events(ListDeploymentEventsRequest {
            deployment_id: "dep-9999999999".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown deployment");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .list_deployment_events(request(|r| r.page_token = "x".into()))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_a_mix_of_outcomes() {
    let cluster = gated_cluster(1).start().await;
    let all = five_deployments(&cluster).await;
    let [_, d4, _, _, _] = &all;
    let mut client = cluster.deployments(Role::Viewer).await;
    let stats = client
        .get_deployment_stats(GetDeploymentStatsRequest::default())
        .await
        .expect("stats")
        .into_inner()
        .stats;
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!((s.app.as_str(), s.environment.as_str()), (APP, ENV));
    assert_eq!(
        (s.total, s.succeeded, s.failed, s.cancelled, s.rollbacks),
        (5, 4, 1, 0, 1)
    );
    assert!((s.success_rate - 0.8).abs() < 1e-9, "{}", s.success_rate);
    let mean = all.iter().map(|d| d.duration_ms).sum::<u64>() / 5;
    assert_eq!(s.mean_duration_ms, mean);

    let since = client
        .get_deployment_stats(GetDeploymentStatsRequest {
            app: APP.into(),
            environment: ENV.into(),
            since: d4.started_at,
            ..Default::default()
        })
        .await
        .expect("stats since")
        .into_inner()
        .stats;
    assert_eq!(since.len(), 1);
    assert_eq!(
        (since[0].total, since[0].succeeded, since[0].failed),
        (2, 1, 1)
    );
    assert!((since[0].success_rate - 0.5).abs() < 1e-9);

    // Per day: today's row counts them all, with the p95 of the durations
    // and the rollback's time to recovery; `until` leaves out the newest.
    let by_day = client
        .get_deployment_stats(GetDeploymentStatsRequest {
            by: StatsPeriod::Day as i32,
            ..Default::default()
        })
        .await
        .expect("stats by day")
        .into_inner()
        .stats;
    let today = |d: &Deployment| d.started_at.unwrap().seconds.div_euclid(86_400) * 86_400;
    let days: std::collections::BTreeSet<i64> = all.iter().map(today).collect();
    assert_eq!(by_day.len(), days.len(), "{by_day:#?}");
    assert_eq!(by_day.iter().map(|s| s.total).sum::<u64>(), 5);
    let day = by_day.last().unwrap();
    assert_eq!(day.period_start.unwrap().seconds, *days.last().unwrap());
    if by_day.len() == 1 {
        let slowest = all.iter().map(|d| d.duration_ms).max().unwrap();
        assert_eq!(day.p95_duration_ms, slowest, "nearest rank of five");
        assert_eq!(day.recoveries, 1, "{day:#?}");
        assert!(day.mean_time_to_recovery_ms > 0, "{day:#?}");
    }
    let until = client
        .get_deployment_stats(GetDeploymentStatsRequest {
            until: d4.started_at,
            ..Default::default()
        })
        .await
        .expect("stats until")
        .into_inner()
        .stats;
    assert_eq!(until[0].total, 3);
    let status = client
        .get_deployment_stats(GetDeploymentStatsRequest {
            by: 99,
            ..Default::default()
        })
        .await
        .expect_err("no such period");
    assert_eq!(status.code(), Code::InvalidArgument);

    let status = client
        .get_deployment_stats(GetDeploymentStatsRequest {
            app: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown app");
    assert_eq!(status.code(), Code::NotFound);
    cluster.shutdown().await;
}

fn millis_between(from: &Deployment, to: &Deployment) -> u64 {
    let (a, b) = (from.finished_at.unwrap(), to.finished_at.unwrap());
    let ms = (b.seconds - a.seconds) * 1000 + i64::from(b.nanos - a.nanos) / 1_000_000;
    u64::try_from(ms).expect("in order")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_timeline_after_deploys_and_rollbacks() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    let (_, r1) = cluster.rollback("").await;
    cluster
        .repo
        .commit("three", &[Change::File("a.txt", b"3\n")]);
    let (_, d3) = cluster.deploy("main").await;
    let (_, r2) = cluster.rollback(&d1.release).await;
    for d in [&d1, &d2, &r1, &d3, &r2] {
        assert_succeeded(d);
    }

    let mut client = cluster.deployments(Role::Viewer).await;
    let timeline = client
        .get_rollback_timeline(GetRollbackTimelineRequest {
            app: APP.into(),
            environment: ENV.into(),
        })
        .await
        .expect("timeline")
        .into_inner()
        .rollbacks;
    let ids: Vec<&str> = timeline
        .iter()
        .map(|e| e.rollback.as_ref().expect("rollback").id.as_str())
        .collect();
    assert_eq!(ids, [r2.id.as_str(), r1.id.as_str()], "newest first");
    for (entry, rollback, undone) in [(&timeline[0], &r2, &d3), (&timeline[1], &r1, &d2)] {
        assert!(!entry.automatic);
        assert_eq!(entry.reason, "roll back", "the operator's message");
        assert_eq!(entry.from_release, undone.release);
        assert_eq!(entry.to_release, d1.release);
        assert_eq!(entry.undone_deployment, undone.id);
        let expected = millis_between(undone, rollback);
        assert_eq!(entry.time_to_recovery_ms, expected);
    }

    for (app, environment, code) in [
        ("nope", ENV, Code::NotFound),
        (APP, "nope", Code::NotFound),
        (APP, "", Code::InvalidArgument),
    ] {
        let status = client
            .get_rollback_timeline(GetRollbackTimelineRequest {
                app: app.into(),
                environment: environment.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{app} {environment}: {status:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rollback_in_the_timeline_carries_the_failure() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster
        .repo
        .commit("good", &[Change::File("a.txt", b"1\n")]);
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    // web-2 fails its health check on any other release, and switches
    // itself back; web-1 took the release and is rolled back automatically.
    cluster
        .update_app(|app| {
            app.activation = Some(ActivationSpec {
                health_check: Some(spec::health_command(
                    &format!(
                        r#"case "$SLIPWAY_RELEASE_DIR" in */web-2/*) [ "$SLIPWAY_RELEASE_ID" = "{}" ] || {{ echo "web-2 is sick"; exit 1; }};; esac"#,
                        good.release
                    ),
                    1,
                    10,
                )),
                ..Default::default()
            });
        })
        .await;
    cluster
        .repo
        .commit("sick", &[Change::File("a.txt", b"2\n")]);
    let (_, failed) = cluster
        .deploy_with(
            "main",
            RolloutPolicy {
                auto_rollback: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(failed.status, DeploymentStatus::Failed as i32, "{failed:?}");
    assert!(!failed.rolled_back_by.is_empty(), "{failed:?}");
    let rollback = cluster.deployment(&failed.rolled_back_by).await;
    assert_succeeded(&rollback);

    let timeline = cluster
        .deployments(Role::Viewer)
        .await
        .get_rollback_timeline(GetRollbackTimelineRequest {
            app: APP.into(),
            environment: ENV.into(),
        })
        .await
        .expect("timeline")
        .into_inner()
        .rollbacks;
    assert_eq!(timeline.len(), 1, "{timeline:#?}");
    let entry = &timeline[0];
    assert_eq!(
        entry.rollback.as_ref().map(|r| r.id.as_str()),
        Some(rollback.id.as_str())
    );
    assert!(entry.automatic);
    assert_eq!(entry.reason, failed.error, "the failure that triggered it");
    assert!(entry.reason.contains("web-2"), "{}", entry.reason);
    assert_eq!(entry.from_release, failed.release);
    assert_eq!(entry.to_release, good.release);
    assert_eq!(entry.undone_deployment, failed.id);
    let (start, end) = (failed.started_at.unwrap(), rollback.finished_at.unwrap());
    let from_start =
        (end.seconds - start.seconds) * 1000 + i64::from(end.nanos - start.nanos) / 1_000_000;
    assert_eq!(
        entry.time_to_recovery_ms,
        u64::try_from(from_start).expect("in order"),
        "from the start of the deployment it undid"
    );
    cluster.shutdown().await;
}
