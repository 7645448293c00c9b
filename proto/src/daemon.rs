//! What both daemons do the same way at start and stop: the crypto provider,
//! logging, and the shutdown signal; and the man page their packages ship.

use std::{process, time::Duration};

use tracing_subscriber::EnvFilter;

/// How long a daemon drains in-flight calls after the first signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Exit code for a bad configuration (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// Whether the command line is `--print-man` (see [`print_man`]).
pub fn man_requested() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "--print-man")
}

/// Writes the roff man page of a daemon's command line to stdout
/// (`--print-man`, hidden: the package and the release tarball ship it).
pub fn print_man(command: clap::Command) -> process::ExitCode {
    match clap_mangen::Man::new(command).render(&mut std::io::stdout().lock()) {
        Ok(()) => process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the man page: {err}");
            process::ExitCode::FAILURE
        }
    }
}

/// Installs ring as the process-wide rustls provider. Safe to call more than
/// once (tests start several servers in one process).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Logs to stderr, filtered by `level` (the `log_level` key), else
/// `RUST_LOG`, else `info`; `json` selects one JSON object per line for log
/// shippers. Colours only on a terminal, and never with `NO_COLOR` set.
/// The returned handle changes the filter while the daemon runs (SIGHUP).
pub fn init_tracing(json: bool, level: Option<&str>) -> LogHandle {
    use std::io::IsTerminal as _;
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
    LogHandle(handle)
}

/// The filter for `level`, else `RUST_LOG`, else `info`. `level` was
/// checked with the configuration; an unusable one falls back likewise.
fn filter(level: Option<&str>) -> EnvFilter {
    level
        .and_then(|level| EnvFilter::try_new(level).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Changes the log filter of a running daemon.
#[derive(Clone, Debug)]
pub struct LogHandle(tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>);

impl LogHandle {
    /// Filters by `level` from now on (none: `RUST_LOG`, else `info`).
    pub fn set(&self, level: Option<&str>) -> Result<(), tracing_subscriber::reload::Error> {
        self.0.reload(filter(level))
    }
}

/// Resolves on the first SIGINT or SIGTERM. A second signal ends the process
/// at once, for an operator who does not want to wait for the drain. The
/// handlers are installed when this is called, not when it is first polled,
/// so a signal that comes early (systemd stopping a unit that just said
/// READY) drains instead of killing the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let first = Signals::listen();
    async move {
        first.recv().await;
        tracing::info!("shutting down; a second signal exits at once");
        let second = Signals::listen();
        tokio::spawn(async move {
            second.recv().await;
            tracing::warn!("second signal: exiting without draining");
            process::exit(130);
        });
    }
}

/// SIGINT and SIGTERM, listened to from creation on.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind, name| {
            signal(kind)
                .map_err(|err| tracing::error!(%err, "cannot listen for {name}"))
                .ok()
        };
        Self {
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    async fn recv(mut self) {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
        }
    }
}

/// `err` and its causes joined with ": ", the way a person reads them.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Tells systemd, when it started this daemon as `Type=notify`, what state
/// it is in; without `NOTIFY_SOCKET` these do nothing.
pub mod systemd {
    use sd_notify::NotifyState;

    /// The daemon serves its API: `READY=1`, and, when the unit sets
    /// `WatchdogSec=`, a ping at half that interval for as long as the
    /// runtime runs (a wedged runtime misses them and systemd restarts it).
    pub fn ready() {
        notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
        if let Some(interval) = sd_notify::watchdog_enabled()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(interval / 2);
                loop {
                    tick.tick().await;
                    notify(&[NotifyState::Watchdog]);
                }
            });
        }
    }

    /// The daemon drains before it stops: `STOPPING=1`.
    pub fn stopping() {
        notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    }

    fn notify(state: &[NotifyState<'_>]) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        if let Err(err) = sd_notify::notify(state) {
            tracing::warn!(error = %err, "cannot notify systemd");
        }
    }
}
