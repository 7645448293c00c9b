//! A webhook receiver for notification tests: a loopback HTTP/1.1 listener
//! that checks each request's `Slipway-Signature` with the subscription's
//! secret, answers 200 while up and 503 while down, and keeps every request
//! it took and how many it refused, for tests to wait on.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use ring::hmac;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Bytes of headers or body a request may have.
const MAX_REQUEST: usize = 1 << 20;

/// A request the receiver took.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `Slipway-Idempotency-Key` header.
    pub key: String,
    /// The `Slipway-Event` header.
    pub event: String,
    /// The body, parsed.
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    up: bool,
    /// The secret signatures are checked with.
    secret: Vec<u8>,
    taken: Vec<Received>,
    /// Idempotency keys of the requests refused while down.
    refused: Vec<String>,
    /// Requests whose signature did not verify.
    bad_signatures: usize,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:0`, up.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            up: true,
            ..State::default()
        }));
        let changed = watch::Sender::new(0);
        let task = tokio::spawn(accept(listener, state.clone(), changed.clone()));
        Self {
            addr,
            state,
            changed,
            task,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/slipway", self.addr)
    }

    /// Checks signatures with `secret` from now on.
    pub fn set_secret(&self, secret: &str) {
        self.state.lock().unwrap().secret = secret.as_bytes().to_vec();
    }

    /// Answers 200 (`true`) or 503 (`false`) from now on.
    pub fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }

    /// The requests taken so far.
    pub fn taken(&self) -> Vec<Received> {
        self.state.lock().unwrap().taken.clone()
    }

    /// The keys of the requests refused so far.
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> usize {
        self.state.lock().unwrap().bad_signatures
    }

    /// Waits until `done` holds of (taken, refused), at most `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[Received], &[String]) -> bool,
    ) -> bool {
        let mut changed = self.changed.subscribe();
        tokio::time::timeout(within, async {
            loop {
                changed.borrow_and_update();
                {
                    let state = self.state.lock().unwrap();
                    if done(&state.taken, &state.refused) {
                        return;
                    }
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}

async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, changed: watch::Sender<u64>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (state, changed) = (state.clone(), changed.clone());
        tokio::spawn(async move {
            let _ = serve(stream, &state, &changed).await;
        });
    }
}

/// Answers every request of one connection.
async fn serve(
    mut stream: TcpStream,
    state: &Mutex<State>,
    changed: &watch::Sender<u64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some((headers, body)) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let code = handle(state, &headers, &body);
        changed.send_modify(|n| *n += 1);
        let reason = if code == 200 { "OK" } else { "Unavailable" };
        let answer = format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\n\r\n");
        stream.write_all(answer.as_bytes()).await?;
    }
}

/// Reads one request: its header lines (lowercase names) and its body.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(Vec<(String, String)>, Vec<u8>)>> {
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_REQUEST || !fill(stream, buf).await? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < end + 4 + length {
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    }
    let body = buf[end + 4..end + 4 + length].to_vec();
    buf.drain(..end + 4 + length);
    Ok(Some((headers, body)))
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks and keeps one request; the status code to answer.
fn handle(state: &Mutex<State>, headers: &[(String, String)], body: &[u8]) -> u16 {
    let mut state = state.lock().unwrap();
    let key = header(headers, "slipway-idempotency-key")
        .unwrap_or_default()
        .to_owned();
    let signature = header(headers, "slipway-signature").unwrap_or_default();
    if !verify(&state.secret, signature, body) {
        state.bad_signatures += 1;
        return 401;
    }
    if !state.up {
        state.refused.push(key);
        return 503;
    }
    let received = Received {
        key,
        event: header(headers, "slipway-event")
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(body).unwrap_or_default(),
    };
    state.taken.push(received);
    200
}

/// Verifies `t=<unix seconds>,v1=<hex HMAC-SHA256("<t>.<body>")>` and that
/// `t` is within five minutes of now.
pub fn verify(secret: &[u8], signature: &str, body: &[u8]) -> bool {
    let field = |name: &str| {
        signature
            .split(',')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let (Ok(sent), Ok(mac)) = (t.parse::<i64>(), hex::decode(v1)) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - sent).abs() > 300 {
        return false;
    }
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &message, &mac).is_ok()
}
