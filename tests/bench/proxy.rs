//! A byte-counting TCP proxy on loopback. Put in front of an agent (or of
//! sshd for the baseline), it measures what really crosses the wire: TLS,
//! HTTP/2 and gRPC framing, manifests and contents alike. It is transparent
//! to TLS: the agent's certificate names the host (DNS SAN) and 127.0.0.1.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::{JoinHandle, JoinSet},
};

#[derive(Default)]
struct Counters {
    /// Client -> upstream (control plane -> agent; rsync client -> target).
    to_upstream: AtomicU64,
    /// Upstream -> client.
    to_client: AtomicU64,
    open: AtomicUsize,
}

/// Bytes seen so far, both directions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub to_upstream: u64,
    pub to_client: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, rhs: Traffic) -> Traffic {
        Traffic {
            to_upstream: self.to_upstream - rhs.to_upstream,
            to_client: self.to_client - rhs.to_client,
        }
    }
}

pub struct CountingProxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            // Dropped (aborting every pipe) when the proxy is dropped.
            let mut pipes = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => {
                            pipes.spawn(pipe(inbound, upstream, shared.clone()));
                        }
                        Err(err) => {
                            eprintln!("proxy {addr}: accept failed: {err}");
                            return;
                        }
                    },
                    Some(_) = pipes.join_next(), if !pipes.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    pub fn traffic(&self) -> Traffic {
        Traffic {
            to_upstream: self.counters.to_upstream.load(Ordering::Relaxed),
            to_client: self.counters.to_client.load(Ordering::Relaxed),
        }
    }

    /// Waits (bounded) until no connection is open, so that a step's
    /// connection close is counted with that step. False on timeout.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.counters.open.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn pipe(inbound: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) {
    counters.open.fetch_add(1, Ordering::AcqRel);
    let _guard = OpenGuard(counters.clone());
    let Ok(outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    // Both legs without Nagle, as tonic and ssh use them: the proxy must not
    // add latency of its own.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let _ = tokio::join!(
        copy(in_read, out_write, &counters.to_upstream),
        copy(out_read, in_write, &counters.to_client),
    );
}

/// Copies until EOF or an error, counting; then closes the write side (also
/// on error, by dropping it), which ends the other direction too.
async fn copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        to.write_all(&buf[..n]).await?;
    }
}
