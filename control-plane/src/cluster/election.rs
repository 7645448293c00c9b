//! Leader election on etcd. Each replica holds a lease it keeps alive and
//! registers itself under it. A replica becomes leader by creating the
//! leader key under its lease, in the transaction that raises the
//! leadership term; the others watch that key and campaign again when it
//! goes (its holder's lease expired or was revoked).
//!
//! A leader must stop acting before anyone else can start. etcd expires a
//! lease at the earliest its TTL after the last keep-alive it received; the
//! leader counts its TTL from when it *sent* the last keep-alive that was
//! answered, which is earlier, and gives up leadership (the process exits)
//! when that runs out. Every store write of the leader is fenced on its
//! leader key too, so a write that would land after a successor took over
//! is refused by etcd.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use etcd_client::{Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::{oneshot, watch};

use super::{Cluster, EtcdView, Leader, Role, keys, status::decode_leader};

/// The default time a leader's lease runs without a keep-alive.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How long a replica waits before it campaigns again after losing its
/// session with etcd.
const RETRY: Duration = Duration::from_millis(500);

/// Won leadership: what the new leader fences its writes on.
#[derive(Clone, Debug)]
pub struct Won {
    /// The new term.
    pub term: u64,
    /// The full leader key.
    pub leader_key: Vec<u8>,
    /// The leader key's create revision: it changes with every leader.
    pub create_revision: i64,
}

/// Leadership, once won, was lost.
#[derive(Debug, thiserror::Error)]
#[error(
    "this replica lost its leadership in term {term}: its lease with etcd could not be kept alive within {ttl:?}"
)]
pub struct Lost {
    /// The term it led.
    pub term: u64,
    /// The lease's TTL.
    pub ttl: Duration,
}

/// A replica's campaign.
pub struct Campaign {
    /// etcd.
    pub etcd: EtcdView,
    /// This replica's role, updated as the campaign goes.
    pub cluster: Cluster,
    /// The lease's TTL.
    pub ttl: Duration,
}

impl Campaign {
    /// Follows until this replica wins, runs `take_over` (it must fence the
    /// store and resume what the last leader left), then leads until its
    /// lease can no longer be kept alive: returns only then. `settled` is
    /// told once the first attempt is over: this replica leads (and took
    /// over) or another does, so that serving starts in a known role.
    pub async fn run<F, Fut>(self, take_over: F, settled: oneshot::Sender<()>) -> Lost
    where
        F: FnOnce(Won) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut settled = Some(settled);
        let (session, won) = loop {
            match self.follow(&mut settled).await {
                Ok(pair) => break pair,
                Err(err) => {
                    tracing::warn!(error = %err, "lost the session with etcd; campaigning again");
                    self.cluster.set_role(Role::Follower { leader: None });
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let term = won.term;
        tracing::info!(term, "this replica leads");
        take_over(won).await;
        self.cluster.set_role(Role::Leader { term });
        if let Some(settled) = settled.take() {
            let _ = settled.send(());
        }
        session.expired().await;
        Lost {
            term,
            ttl: self.ttl,
        }
    }

    /// Opens a session and follows the leader until this replica wins.
    async fn follow(
        &self,
        settled: &mut Option<oneshot::Sender<()>>,
    ) -> Result<(Session, Won), etcd_client::Error> {
        let session = Session::open(&self.etcd, &self.cluster, self.ttl).await?;
        loop {
            let (leader, revision) = match self.try_lead(session.lease).await? {
                Ok(won) => return Ok((session, won)),
                Err(found) => found,
            };
            self.cluster.set_role(Role::Follower {
                leader: leader.clone(),
            });
            if let Some(settled) = settled.take() {
                let _ = settled.send(());
            }
            tokio::select! {
                gone = self.leader_gone(revision) => gone?,
                () = session.expired() => {
                    return Err(etcd_client::Error::LeaseKeepAliveError(
                        "the lease expired while following".into(),
                    ));
                }
            }
        }
    }

    /// One attempt: creates the leader key and raises the term if no one
    /// leads; else the leader as stored and the revision read at.
    async fn try_lead(
        &self,
        lease: i64,
    ) -> Result<Result<Won, (Option<Leader>, i64)>, etcd_client::Error> {
        let mut client = self.etcd.client.clone();
        let (leader_key, term_key) = (
            keys::leader(&self.etcd.prefix),
            keys::term(&self.etcd.prefix),
        );
        let read = client.get(term_key.clone(), None).await?;
        let (last, term_revision) = read.kvs().first().map_or((0, 0), |kv| {
            let term = std::str::from_utf8(kv.value())
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
            (term, kv.mod_revision())
        });
        let term = last + 1;
        let me = Leader {
            replica: self.cluster.me().clone(),
            term,
        };
        let value = serde_json::to_vec(&me).expect("the leader serialises");
        let txn = Txn::new()
            .when([
                Compare::create_revision(leader_key.clone(), CompareOp::Equal, 0),
                Compare::mod_revision(term_key.clone(), CompareOp::Equal, term_revision),
            ])
            .and_then([
                TxnOp::put(
                    leader_key.clone(),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::put(term_key, term.to_string(), None),
            ])
            .or_else([TxnOp::get(leader_key.clone(), None)]);
        let answer = client.txn(txn).await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        if answer.succeeded() {
            return Ok(Ok(Won {
                term,
                leader_key: leader_key.into_bytes(),
                create_revision: revision,
            }));
        }
        let leader = answer.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().and_then(|kv| decode_leader(kv.value())),
            _ => None,
        });
        Ok(Err((leader, revision)))
    }

    /// Waits until the leader key is deleted after `revision`, keeping the
    /// follower's idea of the leader current meanwhile.
    async fn leader_gone(&self, revision: i64) -> Result<(), etcd_client::Error> {
        let options = etcd_client::WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = self
            .etcd
            .client
            .clone()
            .watch(keys::leader(&self.etcd.prefix), Some(options))
            .await?;
        while let Some(answer) = stream.message().await? {
            for event in answer.events() {
                match event.event_type() {
                    EventType::Delete => return Ok(()),
                    EventType::Put => {
                        let leader = event.kv().and_then(|kv| decode_leader(kv.value()));
                        self.cluster.set_role(Role::Follower { leader });
                    }
                }
            }
        }
        // The watch ended: campaign again, which reads the key anew.
        Ok(())
    }
}

/// A lease kept alive, with this replica registered under it.
struct Session {
    lease: i64,
    /// Until when the lease is known to be alive.
    valid_until: watch::Receiver<Instant>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Session {
    async fn open(
        etcd: &EtcdView,
        cluster: &Cluster,
        ttl: Duration,
    ) -> Result<Self, etcd_client::Error> {
        let mut client = etcd.client.clone();
        let sent = Instant::now();
        let lease = client
            .lease_grant(
                i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
                None,
            )
            .await?
            .id();
        let registration = serde_json::to_vec(cluster.me()).expect("replicas serialise");
        client
            .put(
                keys::replica(&etcd.prefix, &cluster.me().id),
                registration,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        let (tx, valid_until) = watch::channel(sent + ttl);
        let keeper = tokio::spawn(keep_alive(etcd.client.clone(), lease, ttl, tx));
        Ok(Self {
            lease,
            valid_until,
            keeper,
        })
    }

    /// Resolves when the lease may have expired: its TTL ran out since the
    /// last keep-alive that was answered was sent (less a margin for the
    /// timers of this process).
    async fn expired(&self) {
        let mut valid_until = self.valid_until.clone();
        loop {
            let until = *valid_until.borrow_and_update();
            let margin = (until.saturating_duration_since(Instant::now()) / 10)
                .min(Duration::from_millis(500));
            let deadline = until.checked_sub(margin).unwrap_or(until);
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {
                    if *valid_until.borrow() <= until {
                        return;
                    }
                }
                changed = valid_until.changed() => {
                    if changed.is_err() {
                        // The keeper gave up: wait out what is left.
                        let until = *valid_until.borrow();
                        tokio::time::sleep_until(until.checked_sub(margin).unwrap_or(until).into()).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Sends a keep-alive every third of the TTL and moves `valid_until` to the
/// send time plus the TTL each time one is answered; re-opens the stream
/// after a failure, until the lease is gone.
async fn keep_alive(
    mut client: etcd_client::Client,
    lease: i64,
    ttl: Duration,
    valid_until: watch::Sender<Instant>,
) {
    let every = ttl / 3;
    let mut stream = None;
    loop {
        let started = Instant::now();
        if stream.is_none() {
            stream = tokio::time::timeout(every, client.lease_keep_alive(lease))
                .await
                .ok()
                .and_then(Result::ok);
        }
        if let Some((keeper, answers)) = stream.as_mut() {
            let sent = Instant::now();
            let answered = tokio::time::timeout(every, async {
                keeper.keep_alive().await?;
                answers.message().await
            })
            .await;
            match answered {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                    valid_until.send_replace(sent + ttl);
                }
                Ok(Ok(Some(_))) => {
                    tracing::error!(lease, "etcd says the lease has expired");
                    valid_until.send_replace(Instant::now());
                    return;
                }
                _ => stream = None,
            }
        }
        if Instant::now() > *valid_until.borrow() {
            return;
        }
        tokio::time::sleep_until((started + every).into()).await;
    }
}
