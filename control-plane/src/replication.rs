//! A replica on etcd: it relays what other replicas record to its own
//! streams, campaigns for leadership, and when it wins, fences the store on
//! its leader key, takes over what the last leader left and starts the
//! leader's work. When it loses leadership it exits at once: a process
//! that stops is the one sure way to stop every rollout it drives before
//! another replica starts driving them.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    Config, Context,
    cluster::{
        Cluster, EtcdView, ReplicaInfo, StoreView,
        election::{Campaign, Won},
    },
    events::EventHub,
    leading::{self, LeaderWork},
    store::{EtcdBackend, EtcdSettings, Fence, Tree},
};

/// The exit status of a replica that lost its leadership (EX_TEMPFAIL: its
/// supervisor starts it again, as a follower).
pub const EXIT_LOST_LEADERSHIP: i32 = 75;

/// This replica's place in a cluster on `backend`.
pub fn cluster(
    backend: &EtcdBackend,
    settings: &EtcdSettings,
    me: ReplicaInfo,
) -> Result<Cluster, crate::store::EtcdOpenError> {
    let view = EtcdView {
        client: backend.client(),
        prefix: backend.prefix().to_owned(),
        options: crate::store::etcd_connect_options(settings)?,
    };
    Ok(Cluster::replicated(me, StoreView::Etcd(Box::new(view))))
}

/// The replica's tasks.
pub struct Replica {
    relay: JoinHandle<()>,
    campaign: JoinHandle<()>,
    work: Arc<Mutex<Option<(LeaderWork, Won)>>>,
    client: etcd_client::Client,
}

impl Replica {
    /// Relays changes, campaigns, and returns once the first election
    /// attempt is over (this replica leads and took over, or another leads)
    /// or, if etcd does not answer, after two lease times.
    pub async fn start(
        ctx: &Context,
        backend: Arc<EtcdBackend>,
        config: &Config,
        stop: &CancellationToken,
    ) -> Self {
        let relay = relay(&backend, ctx.events.clone());
        let client = backend.client();
        let StoreView::Etcd(view) = ctx.cluster.store() else {
            unreachable!("a replica on etcd has an etcd view");
        };
        let campaign = Campaign {
            etcd: (**view).clone(),
            cluster: ctx.cluster.clone(),
            ttl: config.cluster.lease_ttl,
        };
        let work = Arc::new(Mutex::new(None));
        let take_over = {
            let (ctx, config, stop, work) =
                (ctx.clone(), config.clone(), stop.clone(), work.clone());
            move |won: Won| async move {
                backend.set_fence(Some(Fence {
                    key: won.leader_key.clone(),
                    create_revision: won.create_revision,
                }));
                ctx.store.set_term(won.term);
                if let Err(err) = leading::take_over(&ctx).await {
                    let err = slipway_proto::daemon::chain(&err);
                    tracing::error!(error = %err, "taking over as leader failed; exiting");
                    std::process::exit(EXIT_LOST_LEADERSHIP);
                }
                *work.lock().await = Some((LeaderWork::start(&ctx, &config, &stop), won));
            }
        };
        let (settled, first) = tokio::sync::oneshot::channel();
        let campaign = tokio::spawn(async move {
            let lost = campaign.run(take_over, settled).await;
            tracing::error!("{lost}; exiting so that it stops acting before another replica leads");
            std::process::exit(EXIT_LOST_LEADERSHIP);
        });
        let wait = config.cluster.lease_ttl * 2;
        if tokio::time::timeout(wait, first).await.is_err() {
            tracing::warn!(
                ?wait,
                "no election result yet; serving as a follower meanwhile"
            );
        }
        Self {
            relay,
            campaign,
            work,
            client,
        }
    }

    /// Stops campaigning and the leader's work (`stop` cancelled first),
    /// then gives up leadership at once, so that another replica need not
    /// wait for the lease to expire.
    pub async fn stop(self) {
        self.campaign.abort();
        let _ = self.campaign.await;
        self.relay.abort();
        let Some((work, won)) = self.work.lock().await.take() else {
            return;
        };
        work.stop().await;
        let resign = etcd_client::Txn::new()
            .when([etcd_client::Compare::create_revision(
                won.leader_key.clone(),
                etcd_client::CompareOp::Equal,
                won.create_revision,
            )])
            .and_then([etcd_client::TxnOp::delete(won.leader_key, None)]);
        let mut client = self.client;
        match tokio::time::timeout(RESIGN_WAIT, client.txn(resign)).await {
            Ok(Ok(_)) => tracing::info!(term = won.term, "resigned the leadership"),
            _ => tracing::warn!("could not resign; the lease expires instead"),
        }
    }
}

/// Wakes this replica's streams for every event, record and feed item any
/// replica commits, from the store's watches.
fn relay(backend: &EtcdBackend, hub: EventHub) -> JoinHandle<()> {
    let mut events = backend.watch(Tree::Events);
    let mut records = backend.watch(Tree::Deployments);
    let mut feed = backend.watch(Tree::Feed);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(key) = events.recv() => {
                    if let Some((id, sequence)) = crate::store::events::parse_key(&key) {
                        hub.published(&id, sequence);
                    }
                }
                Some(key) = records.recv() => {
                    if let Ok(id) = String::from_utf8(key) {
                        hub.published(&id, u64::MAX);
                    }
                }
                Some(key) = feed.recv() => {
                    hub.feed().observed(crate::store::feed::cursor_of(&key));
                }
                else => break,
            }
        }
    })
}

/// How long a stopping leader waits for etcd to delete its leader key.
pub const RESIGN_WAIT: Duration = Duration::from_secs(2);
