//! Network faults between the control plane and one agent: a byte-transparent
//! TCP proxy that a test can cut, blackhole or make refuse connections, in the
//! manner of Octopus Tentacle's TCP killers. It passes TLS and HTTP/2 through
//! untouched; the control plane checks the agent's certificate against the
//! host's name, not the address, so the proxy's address can be registered as
//! the host's.
//!
//! ```ignore
//! let cluster = Cluster::builder().agents(2).fault_proxies().start().await;
//! let proxy = cluster.proxy(0);
//! proxy.blackhole(true);
//! // ... the agent behind it stops answering ...
//! proxy.blackhole(false);
//! proxy.cut().await; // every live connection reset at once
//! ```

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use slipway_proto::{agent::v1::agent_service_client::AgentServiceClient, tls};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{ReadHalf, WriteHalf},
    },
    sync::{oneshot, watch},
    task::{JoinHandle, JoinSet},
};
use tonic::transport::Channel;

use crate::{Cluster, TestPki};

/// How long the `wait_*` helpers wait before they fail the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a proxy has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted, including refused ones.
    pub accepted: u64,
    /// Connections closed at once because [`FaultProxy::refuse`] was on.
    pub refused: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections reset by [`FaultProxy::cut`].
    pub cut: u64,
    /// Bytes forwarded client -> upstream (control plane -> agent), counted
    /// as each chunk is handed on.
    pub to_upstream: u64,
    /// Bytes forwarded upstream -> client (agent -> control plane).
    pub to_client: u64,
}

/// A TCP proxy on `127.0.0.1:0` in front of one upstream (an agent), with
/// switches for faults. Dropping it closes the listener and every connection.
pub struct FaultProxy {
    /// Where it listens: register this as the host's address.
    pub addr: SocketAddr,
    /// Where it forwards to.
    pub upstream: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    stats: watch::Sender<ProxyStats>,
    blackhole: watch::Sender<bool>,
    refuse: AtomicBool,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
}

/// Handles on one open connection, for [`FaultProxy::cut`].
struct Live {
    cut: oneshot::Sender<()>,
    /// Resolves (with an error) once both sockets are closed.
    closed: oneshot::Receiver<()>,
}

#[derive(Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, direction: Direction, n: usize) {
        self.stats.send_modify(|s| match direction {
            Direction::ToUpstream => s.to_upstream += n as u64,
            Direction::ToClient => s.to_client += n as u64,
        });
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            stats: watch::Sender::new(ProxyStats::default()),
            blackhole: watch::Sender::new(false),
            refuse: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Self {
            addr,
            upstream,
            shared,
            task,
        }
    }

    /// Resets every live connection at once, both directions (SO_LINGER 0,
    /// so the peers see a reset, not a clean end), and keeps accepting new
    /// ones. Returns when all of them are closed, with how many there were.
    pub async fn cut(&self) -> usize {
        let live: Vec<Live> = self.shared.live().drain().map(|(_, l)| l).collect();
        let n = live.len();
        let (cuts, closed): (Vec<_>, Vec<_>) = live.into_iter().map(|l| (l.cut, l.closed)).unzip();
        for cut in cuts {
            let _ = cut.send(());
        }
        for closed in closed {
            let _ = closed.await;
        }
        self.shared.stats.send_modify(|s| s.cut += n as u64);
        n
    }

    /// While on, connections (new and existing) stay open but not a byte is
    /// forwarded in either direction: an agent that stops answering, or a
    /// network that drops every packet. Bytes already read are held and
    /// delivered when it is switched off, as TCP would retransmit them.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
    }

    /// While on, new connections are accepted and reset at once (existing
    /// ones are untouched): a host whose port refuses.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.borrow()
    }

    /// Waits until `ready` holds for the counters and returns them; fails the
    /// test, naming `what`, after `limit`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        ready: impl FnMut(&ProxyStats) -> bool,
    ) -> ProxyStats {
        let mut stats = self.shared.stats.subscribe();
        match tokio::time::timeout(limit, stats.wait_for(ready)).await {
            Ok(Ok(stats)) => *stats,
            Ok(Err(_)) => unreachable!("the proxy owns the sender"),
            Err(_) => panic!(
                "proxy {} -> {}: {what} did not happen within {limit:?}; stats: {:?}",
                self.addr,
                self.upstream,
                self.stats()
            ),
        }
    }

    /// Waits (up to [`WAIT`]) until at least `n` connections were accepted.
    pub async fn wait_accepted(&self, n: u64) -> ProxyStats {
        self.wait_for(&format!("{n} connections accepted"), WAIT, |s| {
            s.accepted >= n
        })
        .await
    }

    /// Waits (up to [`WAIT`]) until at least `n` bytes went to the upstream,
    /// e.g. to cut a transfer midway.
    pub async fn wait_to_upstream(&self, n: u64) -> ProxyStats {
        self.wait_for(&format!("{n} bytes to upstream"), WAIT, |s| {
            s.to_upstream >= n
        })
        .await
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every pipe.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut pipes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let inbound = match accepted {
                    Ok((inbound, _)) => inbound,
                    Err(err) => {
                        eprintln!("fault proxy -> {upstream}: accept failed: {err}");
                        return;
                    }
                };
                if shared.refuse.load(Ordering::SeqCst) {
                    // Counted before the reset, so that a client that saw it
                    // refused also sees it counted.
                    shared.stats.send_modify(|s| {
                        s.accepted += 1;
                        s.refused += 1;
                    });
                    reset(&inbound);
                    drop(inbound);
                    continue;
                }
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let (cut, cut_rx) = oneshot::channel();
                let (closed_tx, closed) = oneshot::channel();
                // Registered before it is counted, so that a test that saw it
                // accepted can cut it.
                shared.live().insert(id, Live { cut, closed });
                shared.stats.send_modify(|s| {
                    s.accepted += 1;
                    s.open += 1;
                });
                let shared = shared.clone();
                pipes.spawn(async move {
                    pipe(inbound, upstream, &shared, cut_rx).await;
                    // Both sockets are closed by now; only then may `cut`
                    // (waiting on `closed_tx`) return.
                    shared.live().remove(&id);
                    shared.stats.send_modify(|s| s.open -= 1);
                    drop(closed_tx);
                });
            }
            Some(_) = pipes.join_next(), if !pipes.is_empty() => {}
        }
    }
}

/// Closes with a reset rather than a FIN: the peer's next read or write fails
/// with ECONNRESET, as when a middlebox or a crashed host kills a connection.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// How a relay ended.
enum End {
    /// Both sides closed cleanly.
    Clean,
    /// One side failed (reset, broken pipe).
    Broken,
}

/// Forwards one connection until it ends or is cut; closes both sockets
/// before it returns.
async fn pipe(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    shared: &Shared,
    mut cut: oneshot::Receiver<()>,
) {
    // Without Nagle on both legs, as tonic dials: the proxy adds no latency.
    let _ = inbound.set_nodelay(true);
    let outbound = tokio::select! {
        outbound = TcpStream::connect(upstream) => outbound,
        _ = &mut cut => {
            reset(&inbound);
            return;
        }
    };
    let Ok(mut outbound) = outbound else {
        // The upstream is down: the client sees a reset, as from a dead host.
        reset(&inbound);
        return;
    };
    let _ = outbound.set_nodelay(true);
    let reset_both = {
        let relay = relay(&mut inbound, &mut outbound, shared);
        tokio::select! {
            _ = &mut cut => true,
            end = relay => matches!(end, End::Broken),
        }
    };
    if reset_both {
        reset(&inbound);
        reset(&outbound);
    }
}

async fn relay(inbound: &mut TcpStream, outbound: &mut TcpStream, shared: &Shared) -> End {
    let (mut in_read, mut in_write) = inbound.split();
    let (mut out_read, mut out_write) = outbound.split();
    let up = copy(&mut in_read, &mut out_write, shared, Direction::ToUpstream);
    let down = copy(&mut out_read, &mut in_write, shared, Direction::ToClient);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let result = tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                r
            }
            r = &mut down, if !down_done => {
                down_done = true;
                r
            }
        };
        if result.is_err() {
            return End::Broken;
        }
    }
    End::Clean
}

/// Copies until EOF (then half-closes the other side) or an error, counting
/// forwarded bytes and holding everything while the blackhole is on.
async fn copy(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    shared: &Shared,
    direction: Direction,
) -> std::io::Result<()> {
    let mut hole = shared.blackhole.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Not reading while blackholed lets the sender's writes back up in
        // the kernel's buffers, as with a host that stopped answering.
        let _ = hole.wait_for(|on| !on).await;
        let read = from.read(&mut buf).await;
        // Whatever was read (data, EOF, an error) is held until it ends.
        let _ = hole.wait_for(|on| !on).await;
        let n = read?;
        if n == 0 {
            return to.shutdown().await;
        }
        // Counted before the write, so that a peer that received the bytes
        // also sees them counted.
        shared.count(direction, n);
        to.write_all(&buf[..n]).await?;
    }
}

impl Cluster {
    /// The fault proxy in front of agent `index` (0-based, as in `agents`).
    pub fn proxy(&self, index: usize) -> &FaultProxy {
        let agent = &self.agents[index];
        agent.proxy.as_ref().unwrap_or_else(|| {
            panic!(
                "agent {} has no fault proxy (Builder::fault_proxies)",
                agent.name
            )
        })
    }

    /// An AgentService client for agent `index` that goes through its fault
    /// proxy, with the control plane's client certificate. Like the control
    /// plane, it checks the agent's certificate against the host name.
    pub fn proxied_agent_client(&self, index: usize) -> AgentServiceClient<Channel> {
        let host = &self.agents[index];
        let material = TestPki::material(&self.pki.control_plane_client());
        let channel = tls::endpoint(
            &self.proxy(index).addr.to_string(),
            tls::Peer::Agent(host.name.clone()),
            &material,
        )
        .expect("endpoint")
        .connect_lazy();
        AgentServiceClient::new(channel)
    }
}
