//! A small HTTP load balancer for the zero-downtime test: it spreads GETs
//! over its backends round robin, and `POST /backends/<name>/drain` stops
//! sending new requests to one and answers once its requests in flight have
//! finished; `POST /backends/<name>/restore` puts it back. Every drain and
//! restore is logged in order.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Bytes of a request head read at most.
const MAX_HEAD: usize = 8 << 10;

struct Backend {
    name: String,
    addr: SocketAddr,
    drained: bool,
    in_flight: watch::Sender<usize>,
}

struct State {
    backends: Mutex<(Vec<Backend>, usize)>,
    client: reqwest::Client,
    log: Mutex<Vec<String>>,
}

/// A running balancer.
pub struct Balancer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Starts one in front of `(name, address)` backends.
    pub async fn start(backends: Vec<(String, SocketAddr)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let backends = backends
            .into_iter()
            .map(|(name, addr)| Backend {
                name,
                addr,
                drained: false,
                in_flight: watch::channel(0).0,
            })
            .collect();
        let state = Arc::new(State {
            backends: Mutex::new((backends, 0)),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            log: Mutex::default(),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, serving.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// Drains and restores so far: `drain web-1`, `restore web-1`, ...
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    loop {
        let Some(text) = next_request(&mut stream, &mut buffer).await else {
            return;
        };
        let mut words = text.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
        let (status, body) = match (method, path.strip_prefix("/backends/")) {
            ("POST", Some(rest)) => admin(&state, rest).await,
            ("GET", _) => forward(&state, path).await,
            _ => (405, "method not allowed".to_owned()),
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// `<name>/drain` or `<name>/restore`.
async fn admin(state: &State, rest: &str) -> (u16, String) {
    let Some((name, verb)) = rest.split_once('/') else {
        return (404, "no such path".into());
    };
    let waiting = {
        let mut guard = state.backends.lock().expect("backends");
        let Some(backend) = guard.0.iter_mut().find(|b| b.name == name) else {
            return (404, format!("no backend {name}"));
        };
        match verb {
            "drain" => backend.drained = true,
            "restore" => backend.drained = false,
            _ => return (404, format!("no action {verb}")),
        }
        backend.in_flight.subscribe()
    };
    if verb == "drain" {
        let mut waiting = waiting;
        let _ = waiting.wait_for(|n| *n == 0).await;
    }
    state
        .log
        .lock()
        .expect("log")
        .push(format!("{verb} {name}"));
    (200, format!("{verb} {name}"))
}

/// The next backend not drained, its count of requests in flight raised.
fn pick(state: &State) -> Option<(SocketAddr, watch::Sender<usize>)> {
    let mut guard = state.backends.lock().expect("backends");
    let (backends, next) = &mut *guard;
    for _ in 0..backends.len() {
        *next = (*next + 1) % backends.len();
        let backend = &backends[*next];
        if !backend.drained {
            backend.in_flight.send_modify(|n| *n += 1);
            return Some((backend.addr, backend.in_flight.clone()));
        }
    }
    None
}

async fn forward(state: &State, path: &str) -> (u16, String) {
    let Some((addr, in_flight)) = pick(state) else {
        return (503, "every backend is drained".into());
    };
    let answer = async {
        let response = state
            .client
            .get(format!("http://{addr}{path}"))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    }
    .await;
    in_flight.send_modify(|n| *n -= 1);
    answer.unwrap_or_else(|err| (502, format!("backend {addr}: {err}")))
}

/// The head of the next HTTP request (without a body) on a keep-alive
/// connection, `buffer` holding what was read past it; None when the
/// client left or sent more than 8 KiB of head.
pub async fn next_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let end = head(stream, buffer).await?;
    let request: Vec<u8> = buffer.drain(..end).collect();
    Some(String::from_utf8_lossy(&request).into_owned())
}

async fn head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 2048];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}
