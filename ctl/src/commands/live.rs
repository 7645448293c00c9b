//! How a followed deployment's events are shown as they arrive: on a
//! terminal, one bar per host (stage, percent, bytes sent) and an overall bar,
//! collapsed to one summary line per host when the deployment ends; into a
//! pipe, one plain line per event after its RFC 3339 UTC time; with `-o json`,
//! one JSON object per event.

use std::{
    collections::BTreeMap,
    io::{self, IsTerminal},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_proto::control::v1::{DeploymentEvent, DeploymentStatus, EventKind, LogLevel};

use crate::output::{self, Output};

/// Most hosts given their own bar; the rest show in the overall bar only.
const MAX_HOST_BARS: usize = 64;

/// Where events go.
pub(crate) enum Live {
    /// One JSON object per line.
    Json,
    /// Timestamped plain lines.
    Lines,
    /// Bars on a terminal.
    Bars(Bars),
}

impl Live {
    /// Bars when stdout is a terminal and the output is text.
    pub(crate) fn new(output: Output) -> Self {
        match output {
            Output::Json => Live::Json,
            Output::Text if io::stdout().is_terminal() => Live::Bars(Bars::new()),
            Output::Text => Live::Lines,
        }
    }

    /// Shows one event.
    pub(crate) fn event(&mut self, event: &DeploymentEvent) -> anyhow::Result<()> {
        match self {
            Live::Json => output::json_line(&serde_json::json!({ "event": event })),
            Live::Lines => Ok(output::emit(&timestamped(event))?),
            Live::Bars(bars) => {
                bars.event(event);
                Ok(())
            }
        }
    }

    /// The deployment ended (or the stream did): bars give way to a summary
    /// line per host.
    pub(crate) fn finish(&mut self) -> anyhow::Result<()> {
        if let Live::Bars(bars) = self {
            let summary = bars.collapse();
            if !summary.is_empty() {
                output::emit(&summary)?;
            }
        }
        Ok(())
    }
}

/// `2026-11-29T14:55:51.123Z  #12   web-2 ...`: the event's own time (when
/// the control plane recorded it), so a replay shows when things happened.
pub(crate) fn timestamped(event: &DeploymentEvent) -> String {
    let time = event
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{time} {}", output::event_line(event))
}

/// What one host's bar shows.
#[derive(Default)]
struct HostState {
    stage: String,
    percent: u32,
    bytes: u64,
    outcome: String,
}

/// The bars of one deployment.
pub(crate) struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: BTreeMap<String, (ProgressBar, HostState)>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = multi.add(ProgressBar::new(100).with_style(style()));
        overall.set_prefix("deployment");
        overall.set_message("starting");
        Self {
            multi,
            overall,
            hosts: BTreeMap::new(),
        }
    }

    fn event(&mut self, event: &DeploymentEvent) {
        if event.host.is_empty() {
            if event.status() == DeploymentStatus::Succeeded {
                self.overall.set_position(100);
            }
            let stage = output::or_dash(&event.stage);
            let message = match event.kind() {
                EventKind::Status => format!("{} {stage}", output::status_name(event.status())),
                _ => stage,
            };
            self.overall.set_message(message);
        } else {
            self.host(event);
        }
        // What a person must read stays above the bars.
        let noteworthy = event.kind() == EventKind::Status && event.host.is_empty()
            || matches!(event.level(), LogLevel::Warn | LogLevel::Error)
            || !event.step.is_empty();
        if noteworthy {
            let _ = self.multi.println(output::event_line(event));
        }
    }

    fn host(&mut self, event: &DeploymentEvent) {
        if !self.hosts.contains_key(&event.host) && self.hosts.len() >= MAX_HOST_BARS {
            return;
        }
        let (bar, state) = self.hosts.entry(event.host.clone()).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(&self.overall, ProgressBar::new(100).with_style(style()));
            bar.set_prefix(event.host.clone());
            (bar, HostState::default())
        });
        if !event.stage.is_empty() {
            state.stage = event.stage.clone();
        }
        if event.kind() != EventKind::Log {
            state.percent = event.percent.min(100);
        }
        if event.host_bytes_sent > 0 {
            state.bytes = event.host_bytes_sent;
        }
        if event.kind() == EventKind::Status {
            state.outcome = output::status_name(event.status()).to_owned();
        }
        bar.set_position(u64::from(state.percent));
        bar.set_message(host_message(state));
        // The whole moves as its hosts do.
        let total: u64 = self.hosts.values().map(|(_, s)| u64::from(s.percent)).sum();
        self.overall
            .set_position(total / self.hosts.len().max(1) as u64);
    }

    /// Clears the bars and returns one line per host and one for the whole.
    fn collapse(&mut self) -> String {
        let mut table = output::Table::new(&[]);
        for (host, (bar, state)) in &self.hosts {
            bar.finish_and_clear();
            table.row(vec![
                host.clone(),
                output::or_dash(&state.outcome),
                output::or_dash(&state.stage),
                format!("{}%", state.percent),
                format!("{} sent", output::bytes(state.bytes)),
            ]);
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
        table.render()
    }
}

fn host_message(state: &HostState) -> String {
    let mut message = output::or_dash(&state.stage);
    if state.bytes > 0 {
        message.push_str(&format!("  {} sent", output::bytes(state.bytes)));
    }
    if !state.outcome.is_empty() {
        message.push_str(&format!("  [{}]", state.outcome));
    }
    message
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:<12} [{bar:30}] {pos:>3}%  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_lines_start_with_the_events_time() {
        let event = DeploymentEvent {
            sequence: 3,
            host: "web-1".into(),
            stage: "transfer".into(),
            percent: 40,
            time: Some(pbjson_types::Timestamp {
                seconds: 1_795_443_840,
                nanos: 123_000_000,
            }),
            ..Default::default()
        };
        assert_eq!(
            timestamped(&event),
            "2026-11-23T14:24:00.123Z   #3    web-1        transfer     40%"
        );
    }
}
