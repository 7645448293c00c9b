//! Everything slipctl prints: aligned tables, `key  value` blocks, JSON, and
//! the formatting of times, sizes, durations and statuses. Renderers return
//! strings; [`emit`] writes them so a closed pipe ends the command quietly.

mod catalog;
mod deployments;
mod drift;
mod health;
mod history;
mod rollout;
pub mod source;
mod summary;

use std::{
    io::{self, IsTerminal, Write},
    sync::OnceLock,
};

use clap::ValueEnum;
use serde::Serialize;
use slipway_proto::control::v1::{DeploymentKind, DeploymentStatus};

pub use catalog::{app, apps, certs, environment, environments, host, hosts, release, releases};
pub use deployments::{deployment, deployments, event_line, fleet, queue};
pub use drift::{drift, drift_marker, drift_summary};
pub use health::health;
pub use history::{audit_events, event_lines, mark, rollbacks, stats};
pub use rollout::{locks, plan};
pub use summary::environment_status;

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables and lines for people.
    #[default]
    Text,
    /// Proto3 JSON, as grpcurl prints it.
    Json,
}

/// Writes `text` to stdout, adding a final newline when it lacks one.
pub fn emit(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    let mut write = || {
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().map_err(StdoutError)
}

/// Writing to stdout failed. Only this error, with
/// [`StdoutError::reader_left`], means the reader of a pipe left: a broken
/// pipe anywhere else (a TLS socket the control plane closed) is a failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout")]
pub struct StdoutError(#[source] pub io::Error);

impl StdoutError {
    /// `slipctl history | head`: the reader closed the pipe.
    pub fn reader_left(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes `value` as pretty proto3 JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    emit(&serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Writes `value` as one line of JSON (for NDJSON streams).
pub fn json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    emit(&serde_json::to_string(value)?)?;
    Ok(())
}

/// Columns aligned with two spaces between them; the last column is not
/// padded, so long messages do not push trailing blanks.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (none for a bare list).
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, indented by `indent` spaces. Widths are measured
    /// without ANSI colour codes, so coloured cells align.
    pub fn render_indented(&self, indent: usize) -> String {
        let mut builder = tabled::builder::Builder::default();
        if !self.headers.is_empty() {
            builder.push_record(self.headers.iter().map(String::as_str));
        }
        for row in &self.rows {
            builder.push_record(row.iter().map(String::as_str));
        }
        let mut table = builder.build();
        table
            .with(tabled::settings::Style::empty())
            .with(tabled::settings::Padding::new(0, 2, 0, 0));
        let margin = " ".repeat(indent);
        let mut out = String::new();
        for line in table.to_string().lines() {
            out.push_str(&margin);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The table as text.
    pub fn render(&self) -> String {
        self.render_indented(0)
    }
}

/// A `key  value` block, keys aligned; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let shown: Vec<&(&str, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    shown
        .into_iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// A protobuf timestamp as RFC 3339 UTC to the second; `-` when unset.
pub fn time(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// A duration in milliseconds: `450ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Seconds of uptime: `45s`, `12m`, `5h12m`, `3d04h`.
pub fn uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A status in lowercase words, as the CLI's flags spell it.
pub fn status_name(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Unspecified => "-",
        DeploymentStatus::Pending => "pending",
        DeploymentStatus::Running => "running",
        DeploymentStatus::Succeeded => "succeeded",
        DeploymentStatus::Failed => "failed",
        DeploymentStatus::Cancelled => "cancelled",
        DeploymentStatus::Interrupted => "interrupted",
        DeploymentStatus::Unknown => "unknown",
        DeploymentStatus::Queued => "queued",
        DeploymentStatus::AwaitingApproval => "awaiting_approval",
        DeploymentStatus::Scheduled => "scheduled",
    }
}

/// Whether the status will not change any more.
pub fn is_final(status: DeploymentStatus) -> bool {
    matches!(
        status,
        DeploymentStatus::Succeeded
            | DeploymentStatus::Failed
            | DeploymentStatus::Cancelled
            | DeploymentStatus::Interrupted
    )
}

/// A deployment kind in words.
pub fn kind_name(kind: DeploymentKind) -> &'static str {
    match kind {
        DeploymentKind::Unspecified => "-",
        DeploymentKind::Deploy => "deploy",
        DeploymentKind::Rollback => "rollback",
        DeploymentKind::Secrets => "secrets",
    }
}

/// `value`, or `-` when it is empty.
pub fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

/// ANSI styles, applied only when colour is on ([`set_color`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    /// Bold.
    Bold,
    /// Green: success.
    Green,
    /// Yellow: warning, in progress.
    Yellow,
    /// Red: failure.
    Red,
    /// Dim: detail.
    Dim,
}

/// When to colour the output (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it on.
    #[default]
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

static COLOR: OnceLock<bool> = OnceLock::new();

/// Decides colour once for the whole run, from `--color`, the environment
/// and whether stdout is a terminal.
pub fn set_color(choice: ColorChoice) {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if var("NO_COLOR").is_some() => false,
        ColorChoice::Auto if var("CLICOLOR_FORCE").is_some_and(|v| v != "0") => true,
        ColorChoice::Auto => io::stdout().is_terminal(),
    };
    let _ = COLOR.set(on);
}

/// Whether output is coloured (auto when [`set_color`] was not called).
pub fn color_enabled() -> bool {
    *COLOR.get_or_init(|| std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal())
}

/// `text` in `paint`, when colour is on.
pub fn paint(text: &str, paint: Paint) -> String {
    if !color_enabled() {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Bold => "1",
        Paint::Green => "32",
        Paint::Yellow => "33",
        Paint::Red => "31",
        Paint::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A status word coloured by outcome.
pub fn status_painted(status: DeploymentStatus) -> String {
    let name = status_name(status);
    match status {
        DeploymentStatus::Succeeded => paint(name, Paint::Green),
        DeploymentStatus::Failed | DeploymentStatus::Interrupted => paint(name, Paint::Red),
        DeploymentStatus::Cancelled | DeploymentStatus::Running | DeploymentStatus::Unknown => {
            paint(name, Paint::Yellow)
        }
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_do_not_pad_the_last_column() {
        let mut table = Table::new(&["NAME", "STATUS", "MESSAGE"]);
        table.row(vec!["web".into(), "ok".into(), "fine".into()]);
        table.row(vec!["api-server".into(), "failed".into(), String::new()]);
        assert_eq!(
            table.render(),
            "NAME        STATUS  MESSAGE\nweb         ok      fine\napi-server  failed\n"
        );
    }

    #[test]
    fn coloured_cells_align() {
        let mut table = Table::new(&["HOST", "STATE", "LOAD"]);
        table.row(vec![
            "web-1".into(),
            "\x1b[32mup\x1b[0m".into(),
            "0.1".into(),
        ]);
        table.row(vec!["web-22".into(), "unreachable".into(), "-".into()]);
        assert_eq!(
            table.render_indented(2),
            "  HOST    STATE        LOAD\n  web-1   \x1b[32mup\x1b[0m           0.1\n  web-22  unreachable  -\n"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration_ms(450), "450ms");
        assert_eq!(duration_ms(12_345), "12.3s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600), "3d04h");
        let ts = pbjson_types::Timestamp {
            seconds: 1_795_443_840,
            nanos: 5,
        };
        assert_eq!(time(Some(&ts)), "2026-11-23T14:24:00Z");
        assert_eq!(time(None), "-");
        assert_eq!(
            fields(&[("app", "web".into()), ("error", String::new())]),
            "app  web\n"
        );
    }
}
