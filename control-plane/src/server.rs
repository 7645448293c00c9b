//! Start-up and serving: the store opened and its indexes checked,
//! interrupted deployments reconciled, then the operator services (with
//! health and reflection) served over mutual TLS until shutdown.

use std::{future::Future, sync::Arc};

use slipway_proto::observe::Readiness;
use slipway_proto::{
    control::v1::{
        agent_upgrade_service_server::AgentUpgradeServiceServer,
        app_service_server::AppServiceServer, approval_service_server::ApprovalServiceServer,
        audit_service_server::AuditServiceServer,
        certificate_service_server::CertificateServiceServer,
        cluster_service_server::ClusterServiceServer,
        dashboard_service_server::DashboardServiceServer,
        deploy_key_service_server::DeployKeyServiceServer,
        deployment_service_server::DeploymentServiceServer,
        drift_service_server::DriftServiceServer,
        environment_service_server::EnvironmentServiceServer,
        feed_service_server::FeedServiceServer, host_service_server::HostServiceServer,
        lock_service_server::LockServiceServer,
        notification_service_server::NotificationServiceServer,
        queue_service_server::QueueServiceServer, release_service_server::ReleaseServiceServer,
        secret_service_server::SecretServiceServer, source_service_server::SourceServiceServer,
        trigger_service_server::TriggerServiceServer,
    },
    revocation::Revocations,
    tls::{self, Peer, TlsMaterial},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Server};

use crate::{
    Config, Context, agents, api, auth, error, events, observe, running, signing::Signer, store,
};

/// Concurrent calls (HTTP/2 streams) one operator connection may hold open.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// An idle connection is pinged this often...
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// ...and closed when the ping is not answered within this.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the control plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] store::OpenError),
    /// etcd could not be reached.
    #[error(transparent)]
    OpenEtcd(#[from] store::EtcdOpenError),
    /// TLS files could not be read.
    #[error(transparent)]
    Tls(#[from] slipway_proto::tls::TlsError),
    /// The stored revocation list could not be read.
    #[error("cannot read the revocation list")]
    Revocations(#[source] store::StoreError),
    /// The CA key for signing agents' certificates is unusable.
    #[error(transparent)]
    Signing(#[from] crate::signing::SignError),
    /// Reconciling interrupted deployments failed.
    #[error("reconciling interrupted deployments failed")]
    Reconcile(#[source] error::Error),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The sources settings are unusable.
    #[error(transparent)]
    Sources(#[from] crate::sources::SourcesConfigError),
    /// The secrets key is unusable, or sealing again with it failed.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::StartError),
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
}

/// The operator services, each reported SERVING by `grpc.health.v1`.
const SERVICES: [&str; 20] = [
    slipway_proto::control::v1::app_service_server::SERVICE_NAME,
    slipway_proto::control::v1::environment_service_server::SERVICE_NAME,
    slipway_proto::control::v1::host_service_server::SERVICE_NAME,
    slipway_proto::control::v1::release_service_server::SERVICE_NAME,
    slipway_proto::control::v1::deployment_service_server::SERVICE_NAME,
    slipway_proto::control::v1::audit_service_server::SERVICE_NAME,
    slipway_proto::control::v1::lock_service_server::SERVICE_NAME,
    slipway_proto::control::v1::feed_service_server::SERVICE_NAME,
    slipway_proto::control::v1::queue_service_server::SERVICE_NAME,
    slipway_proto::control::v1::secret_service_server::SERVICE_NAME,
    slipway_proto::control::v1::approval_service_server::SERVICE_NAME,
    slipway_proto::control::v1::notification_service_server::SERVICE_NAME,
    slipway_proto::control::v1::certificate_service_server::SERVICE_NAME,
    slipway_proto::control::v1::drift_service_server::SERVICE_NAME,
    slipway_proto::control::v1::dashboard_service_server::SERVICE_NAME,
    slipway_proto::control::v1::trigger_service_server::SERVICE_NAME,
    slipway_proto::control::v1::source_service_server::SERVICE_NAME,
    slipway_proto::control::v1::deploy_key_service_server::SERVICE_NAME,
    slipway_proto::control::v1::agent_upgrade_service_server::SERVICE_NAME,
    slipway_proto::control::v1::cluster_service_server::SERVICE_NAME,
];

/// Binds `config.listen` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve(config, listener, shutdown).await
}

/// Serves on a bound listener until `shutdown` resolves; binds the
/// enrollment and metrics listeners the configuration names.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listeners = Listeners {
        api: listener,
        enroll: bind(config.enroll_listen).await?,
        metrics: bind(config.metrics_listen).await?,
        web: bind(config.web_listen).await?,
    };
    serve_with(config, listeners, shutdown).await
}

async fn bind(addr: Option<std::net::SocketAddr>) -> Result<Option<TcpListener>, Error> {
    match addr {
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| Error::Bind { addr, source }),
        None => Ok(None),
    }
}

/// The bound listeners of a control plane.
#[derive(Debug)]
pub struct Listeners {
    /// The operator API.
    pub api: TcpListener,
    /// Enrollment, served when the control plane holds a CA key.
    pub enroll: Option<TcpListener>,
    /// `/metrics`, `/healthz` and `/readyz`.
    pub metrics: Option<TcpListener>,
    /// HTTPS: the webhooks of git servers and CI.
    pub web: Option<TcpListener>,
}

/// Serves the operator API, and enrollment and metrics when their
/// listeners are given, until `shutdown` resolves.
pub async fn serve_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let Listeners {
        api: listener,
        enroll,
        metrics: metrics_listener,
        web,
    } = listeners;
    let signer = match &config.signing {
        Some(paths) => Some(Arc::new(Signer::load(paths)?)),
        None => None,
    };
    let server_tls = TlsMaterial::load(&config.tls)?;
    let agent_tls = TlsMaterial::load(&config.agent_tls)?;
    let (dir, cache) = (&config.data_dir, config.cache_capacity_bytes);
    let etcd = match &config.etcd {
        Some(settings) => Some(Arc::new(store::EtcdBackend::open(settings)?)),
        None => None,
    };
    let backend: Arc<dyn store::Backend> = match &etcd {
        Some(etcd) => etcd.clone(),
        None => Arc::new(store::SledBackend::open(dir, cache)?),
    };
    let revocations = Revocations::default();
    let metrics = Arc::new(observe::Metrics::new());
    let store = store::Store::new(backend).timed(metrics.commit_timer());
    // The epoch of this control plane's fencing tokens on every agent.
    let epoch = store::identity::ensure(&store)
        .await
        .map_err(|err| Error::Reconcile(err.into()))?;
    let advertise = match config.cluster.advertise.as_str() {
        "" => listener
            .local_addr()
            .map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
        given => given.to_owned(),
    };
    let me = crate::cluster::ReplicaInfo::this_process(&config.cluster.replica_id, &advertise);
    let cluster = match (&etcd, &config.etcd) {
        (Some(backend), Some(settings)) => crate::replication::cluster(backend, settings, me)?,
        _ => crate::cluster::Cluster::single(me),
    };
    let ctx = Context {
        cluster,
        secret_keys: crate::secrets::start(&store, &config).await?,
        store,
        events: events::EventHub::default(),
        agents: agents::Agents::new(agent_tls.clone(), revocations.clone(), epoch),
        running: running::Running::default(),
        revocations: revocations.clone(),
        sources: crate::sources::Sources::new(
            config.source_roots.clone(),
            &config.data_dir,
            config.sources.clone(),
        )?
        .with_builds(&config.builds, &config.data_dir)?,
        signer,
        metrics,
        health: Arc::new(observe::health::Health::new(config.health_sample_every)),
        notifiers: crate::notify::Notifiers::new(config.notify_retry_max),
        waiting: Default::default(),
        agent_binaries: crate::upgrades::Staging::new(&config.data_dir),
    };
    // The metrics listener answers until the drain is over (`/readyz`
    // says 503 meanwhile), and stops whichever way this returns.
    let exporter_stop = CancellationToken::new();
    let _stop_exporter = exporter_stop.clone().drop_guard();
    let readiness = Readiness::default();
    let exporter = metrics_listener.map(|listener| {
        let reads = (
            ctx.store.clone(),
            ctx.agents.contacts().clone(),
            ctx.cluster.clone(),
        );
        let (metrics, stop) = (ctx.metrics.clone(), exporter_stop.clone());
        observe::spawn_listener(metrics, reads, listener, readiness.clone(), stop)
    });
    crate::trust::load(&ctx).map_err(Error::Revocations)?;
    if !ctx.sources.roots().is_restricted() {
        tracing::warn!(
            "no source_roots configured: an admin may point an app at any repository this process can read"
        );
    }
    let indexed = store::deployments::ensure_indexes(&ctx.store)
        .await
        .map_err(|err| Error::Reconcile(err.into()))?;
    if indexed > 0 {
        tracing::info!(
            indexed,
            "indexed the deployments of a store from an earlier version"
        );
    }
    let indexed = crate::history::ensure_text_index(&ctx.store)
        .await
        .map_err(Error::Reconcile)?;
    if indexed > 0 {
        tracing::info!(indexed, "built the text index of the deployment history");
    }
    // The only replica on the embedded store leads from the start: what the
    // last run left is resumed before anything is served.
    if ctx.cluster.is_leader() {
        crate::leading::take_over(&ctx)
            .await
            .map_err(Error::Reconcile)?;
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for service in SERVICES {
        health
            .set_service_status(service, tonic_health::ServingStatus::Serving)
            .await;
    }
    // Only the control plane's own services (grpcurl 1.8.6 speaks v1alpha).
    let reflection = || {
        let own =
            slipway_proto::reflection::descriptor_set(slipway_proto::reflection::CONTROL_PACKAGE);
        tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(own)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("descriptor set is valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("descriptor set is valid");

    // Operator requests are small: a small decode limit. Answers (a release
    // with its manifest) may be large.
    let decode = slipway_proto::limits::OPERATOR_MESSAGE_BYTES;
    let encode = slipway_proto::MAX_MESSAGE_BYTES;
    // Refusals of the authentication interceptor go to the audit trail.
    let refusals: Arc<dyn Fn(auth::Refusal) + Send + Sync> = {
        let store = ctx.store.clone();
        Arc::new(move |refusal| crate::audit::refused(&store, refusal))
    };
    macro_rules! operator_service {
        ($server:ident, $svc:expr) => {
            InterceptedService::new(
                $server::new($svc)
                    .max_decoding_message_size(decode)
                    .max_encoding_message_size(encode),
                auth::Authenticate::new(ctx.revocations.clone()).on_refusal(refusals.clone()),
            )
        };
    }
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "control plane serving");
    let tls = tls::server_config(&server_tls, Peer::AnyIdentity, revocations);

    let router = Server::builder()
        .layer(tower::util::MapRequestLayer::new(
            auth::tag_method::<tonic::body::Body>,
        ))
        .layer(ctx.metrics.grpc().layer())
        .layer(crate::cluster::gate::GateLayer(ctx.cluster.clone()))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(operator_service!(AppServiceServer, api::Apps(ctx.clone())))
        .add_service(operator_service!(
            EnvironmentServiceServer,
            api::Environments(ctx.clone())
        ))
        .add_service(operator_service!(
            HostServiceServer,
            api::Hosts(ctx.clone())
        ))
        .add_service(operator_service!(
            ReleaseServiceServer,
            api::Releases(ctx.clone())
        ))
        .add_service(operator_service!(
            AuditServiceServer,
            api::AuditTrail(ctx.clone())
        ))
        .add_service(operator_service!(
            LockServiceServer,
            api::Locks(ctx.clone())
        ))
        .add_service(operator_service!(
            CertificateServiceServer,
            api::Certificates(ctx.clone())
        ))
        .add_service(operator_service!(
            DeploymentServiceServer,
            api::Deployments(ctx.clone())
        ))
        .add_service(operator_service!(
            DriftServiceServer,
            api::Drift(ctx.clone())
        ))
        .add_service(operator_service!(FeedServiceServer, api::Feed(ctx.clone())))
        .add_service(operator_service!(
            QueueServiceServer,
            api::Queue(ctx.clone())
        ))
        .add_service(operator_service!(
            SecretServiceServer,
            api::Secrets(ctx.clone())
        ))
        .add_service(operator_service!(
            ApprovalServiceServer,
            api::Approvals(ctx.clone())
        ))
        .add_service(operator_service!(
            NotificationServiceServer,
            api::Notifications(ctx.clone())
        ))
        .add_service(operator_service!(
            TriggerServiceServer,
            api::Triggers(ctx.clone())
        ))
        .add_service(operator_service!(
            SourceServiceServer,
            api::Sources(ctx.clone())
        ))
        .add_service(operator_service!(
            DeployKeyServiceServer,
            api::DeployKeys(ctx.clone())
        ))
        .add_service(operator_service!(
            DashboardServiceServer,
            api::Dashboard(ctx.clone())
        ))
        .add_service(operator_service!(
            AgentUpgradeServiceServer,
            api::AgentUpgrades(ctx.clone())
        ))
        .add_service(operator_service!(
            ClusterServiceServer,
            api::Cluster(ctx.clone())
        ));
    let listener_material = server_tls.clone();
    let reload = {
        let agents = ctx.agents.clone();
        let reloader = tls::Reloader::new([("listener", server_tls), ("agents", agent_tls)]);
        tokio::spawn(reloader.run(move |changed| {
            if changed.contains(&"agents") {
                agents.forget_all();
            }
        }))
    };
    let stop = CancellationToken::new();
    let enrollment = match enroll {
        Some(listener) if ctx.signer.is_some() => {
            let (ctx, material, stop) = (ctx.clone(), listener_material.clone(), stop.clone());
            Some(tokio::spawn(async move {
                api::enrollment::serve(ctx, &material, listener, stop.cancelled_owned()).await
            }))
        }
        Some(_) => {
            tracing::warn!("an enrollment address is set but no CA key: enrollment is off");
            None
        }
        None => None,
    };
    let web = web.map(|listener| {
        let (ctx, material, stop) = (ctx.clone(), listener_material.clone(), stop.clone());
        tokio::spawn(async move {
            crate::web::serve(ctx, &material, listener, stop.cancelled_owned()).await;
        })
    });
    let work = match etcd {
        Some(backend) => {
            Work::Replica(crate::replication::Replica::start(&ctx, backend, &config, &stop).await)
        }
        None => Work::Leader(crate::leading::LeaderWork::start(&ctx, &config, &stop)),
    };
    let shutdown = {
        let (stop, readiness) = (stop.clone(), readiness.clone());
        async move {
            shutdown.await;
            readiness.set_stopping();
            stop.cancel();
        }
    };
    readiness.set_ready();
    let served = router
        .serve_with_incoming_shutdown(tls::Incoming::new(listener, tls), shutdown)
        .await;
    readiness.set_stopping();
    stop.cancel();
    if let Some(enrollment) = enrollment
        && let Ok(Err(err)) = enrollment.await
    {
        tracing::error!(error = %slipway_proto::daemon::chain(&err), "the enrollment listener failed");
    }
    if let Some(web) = web {
        let _ = web.await;
    }
    // Waited for: the tasks hold the store, which must be closed before
    // this returns (a new control plane may open the same directory).
    reload.abort();
    match work {
        Work::Leader(work) => work.stop().await,
        Work::Replica(replica) => replica.stop().await,
    }
    exporter_stop.cancel();
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    Ok(served?)
}

/// What runs beside the API: the leader's work on the embedded store, a
/// replica's campaign (and the leader's work once it wins) on etcd.
// One value per process, held for its life: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Work {
    Leader(crate::leading::LeaderWork),
    Replica(crate::replication::Replica),
}
