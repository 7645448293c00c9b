//! Bounds on what a caller controls, replayed against a real control plane
//! process: oversized requests from the weakest roles are refused with the
//! right code, the store on disk barely grows, the audit trail stays
//! readable (by `slipctl audit` too), malformed protobuf is
//! INVALID_ARGUMENT, and an entry edited in the store breaks the trail's
//! hash chain where `slipctl audit verify` shows it.

use std::path::Path;

use bytes::BufMut;
use slipway_control_plane::store::{SledBackend, Store, audit};
use slipway_proto::{
    control::v1::{
        App, AuditEvent, CreateAppRequest, CreateAppResponse, DeployRequest,
        ListAuditEventsRequest, VerifyAuditTrailRequest,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster,
    cluster::{APP, ENV},
    slipctl,
};
use tonic::{
    Code,
    codec::{Codec, EncodeBuf, Encoder},
};

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                disk_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Runs `slipctl` as the admin with `args`; its exit success and stdout.
fn run_slipctl(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = slipctl::run(cluster, Role::Admin, args);
    assert!(stderr.len() < 4096, "slipctl stderr: {stderr}");
    (ok, stdout)
}

fn app_named(name: String) -> CreateAppRequest {
    CreateAppRequest {
        app: Some(App {
            name,
            repository: "/nonexistent".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_the_store_barely_grows() {
    let cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .start()
        .await;
    let before = disk_bytes(&cluster.data_dir);
    let mut viewer = cluster.apps(Role::Viewer).await;
    let mut admin = cluster.apps(Role::Admin).await;
    let mut deployer = cluster.deployments(Role::Deployer).await;

    // The attack as reported: a 30 MB name from a viewer. The decode limit
    // refuses it before any handler runs.
    let status = viewer
        .create_app(app_named("a".repeat(30 << 20)))
        .await
        .expect_err("30 MB request");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // Just under the decode limit, ten times: refused (role, then bounds),
    // each recorded with a bounded target.
    let big = "a".repeat(900 << 10);
    for _ in 0..5 {
        let status = viewer
            .create_app(app_named(big.clone()))
            .await
            .expect_err("viewer");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let status = admin
            .create_app(app_named(big.clone()))
            .await
            .expect_err("admin, long name");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("app.name") && status.message().contains("63"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 512, "the refusal echoes the name");
    }

    // A deployer's 4 MB deploy message, and one under the decode limit.
    let deploy = |message: String| DeployRequest {
        app: APP.into(),
        environment: ENV.into(),
        message,
        ..Default::default()
    };
    let status = deployer
        .deploy(deploy("m".repeat(4 << 20)))
        .await
        .expect_err("4 MB message");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let status = deployer
        .deploy(deploy("m".repeat(800 << 10)))
        .await
        .expect_err("800 KB message");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("message") && status.message().contains("4096"),
        "{}",
        status.message()
    );

    let grown = disk_bytes(&cluster.data_dir).saturating_sub(before);
    // Unbounded, the ten audited refusals alone would write 9 MB.
    assert!(grown < 2 << 20, "the store grew by {grown} bytes");

    // The trail is readable, its fields bounded, nothing was created.
    let trail = cluster
        .audit()
        .await
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .expect("list the trail")
        .into_inner();
    let refused: Vec<&AuditEvent> = trail
        .events
        .iter()
        .filter(|e| e.method.ends_with("CreateApp") && e.outcome != "OK")
        .collect();
    assert_eq!(refused.len(), 10);
    for e in &refused {
        assert!(e.target.len() <= 1100 && e.message.len() <= 1100, "{e:?}");
    }
    let deploys = trail.events.iter().filter(|e| e.method.ends_with("Deploy"));
    assert_eq!(deploys.count(), 1, "only the decodable deploy is recorded");
    let (ok, stdout) = run_slipctl(&cluster, &["audit", "--limit", "100"]);
    assert!(ok, "slipctl audit failed: {stdout}");
    assert!(stdout.contains("CreateApp"), "{stdout}");
    cluster.shutdown().await;
}

/// Sends raw bytes as the request and decodes the answer with Slipway's
/// codec.
#[derive(Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = CreateAppResponse;
    type Encoder = RawEncoder;
    type Decoder = <slipway_proto::codec::Codec<(), CreateAppResponse> as Codec>::Decoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        slipway_proto::codec::Codec::<(), CreateAppResponse>::default().decoder()
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_invalid_argument() {
    let cluster = Cluster::builder().agents(0).start().await;
    let mut grpc = tonic::client::Grpc::new(cluster.channel(Role::Admin).await);
    grpc.ready().await.expect("channel ready");
    // Field 1 (app), length-delimited, claims 100 bytes and carries 2.
    let garbage = vec![0x0a, 100, b'a', b'b'];
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/slipway.control.v1.AppService/CreateApp",
    );
    let status = grpc
        .unary(tonic::Request::new(garbage), path, RawCodec)
        .await
        .expect_err("malformed request");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("protobuf"),
        "{}",
        status.message()
    );
    // Still serving.
    let apps = cluster
        .apps(Role::Viewer)
        .await
        .list_apps(slipway_proto::control::v1::ListAppsRequest {})
        .await
        .expect("list apps")
        .into_inner()
        .apps;
    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, [APP], "nothing was created");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_entry_edited_in_the_store_breaks_the_chain() {
    let mut cluster = Cluster::builder()
        .agents(1)
        .process_control_plane()
        .start()
        .await;
    let mut viewer = cluster.apps(Role::Viewer).await;
    for i in 0..5 {
        let status = viewer
            .create_app(app_named(format!("x{i}")))
            .await
            .expect_err("viewer may not create apps");
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    let verified = cluster
        .audit()
        .await
        .verify_audit_trail(VerifyAuditTrailRequest {})
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(verified.broken_sequence, 0, "{verified:?}");
    let total = verified.verified;
    assert!(total >= 5, "{verified:?}");
    let (ok, stdout) = run_slipctl(&cluster, &["audit", "verify"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains(&format!("{total} entries verified")),
        "{stdout}"
    );

    // Stop the control plane, turn one refusal into a success, restart.
    let edited = total - 2;
    cluster.control_plane_process().terminate().await;
    {
        let backend = SledBackend::open(&cluster.data_dir, 8 << 20).expect("open the store");
        let store = Store::new(std::sync::Arc::new(backend));
        let mut entry = audit::get(&store, edited)
            .expect("read")
            .expect("entry present");
        assert_eq!(entry.outcome, "PermissionDenied");
        entry.outcome = "OK".into();
        store
            .commit(vec![audit::overwrite(&entry)])
            .await
            .expect("write");
    }
    cluster.control_plane_process().restart().await;

    let broken = cluster
        .audit()
        .await
        .verify_audit_trail(VerifyAuditTrailRequest {})
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(broken.broken_sequence, edited, "{broken:?}");
    let (ok, stdout) = run_slipctl(&cluster, &["audit", "verify"]);
    assert!(!ok, "verify must fail: {stdout}");
    assert!(
        stdout.contains(&format!("broken link at entry {edited}")),
        "{stdout}"
    );
    cluster.shutdown().await;
}
