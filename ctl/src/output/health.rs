//! `slipctl health`: per host its state, uptime, response-time percentiles
//! and error rate over the range, then a sparkline per metric (one
//! character per step, a blank where nothing was sampled) with the range of
//! its values, and each app's latest probe.

use slipway_proto::{
    agent::v1::AppHealthState,
    control::v1::{GetHealthSeriesResponse, HealthPoint, HostHealthSeries, HostHealthState},
};

use super::{Paint, Table, bytes, paint, time};

/// The eight levels of a sparkline, lowest first.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The whole answer as text.
pub fn health(answer: &GetHealthSeriesResponse) -> String {
    if answer.hosts.is_empty() {
        return "no hosts match\n".to_owned();
    }
    let mut table = Table::new(&[
        "HOST", "ENV", "STATE", "UPTIME", "P50", "P95", "ERRORS", "SAMPLES",
    ]);
    for host in &answer.hosts {
        let summary = host.summary.unwrap_or_default();
        let probed = summary.probes > 0;
        let or_dash = |shown: String| if probed { shown } else { "-".to_owned() };
        table.row(vec![
            host.host.clone(),
            host.environment.clone(),
            state_painted(host.state()),
            if summary.samples == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", summary.uptime_percent)
            },
            or_dash(ms(summary.response_p50_ms)),
            or_dash(ms(summary.response_p95_ms)),
            or_dash(format!("{:.1}%", summary.error_rate_percent)),
            summary.samples.to_string(),
        ]);
    }
    let mut out = table.render();
    let step = u64::from(answer.step_seconds.max(1));
    let from = answer.from.as_ref().map_or(0, |t| t.seconds);
    let to = answer.to.as_ref().map_or(0, |t| t.seconds);
    let width = usize::try_from((to - from).max(0) as u64 / step).unwrap_or(0);
    out.push_str(&format!(
        "\n{} .. {}, {} per character, sampled every {}\n",
        time(answer.from.as_ref()),
        time(answer.to.as_ref()),
        super::duration_ms(step * 1000),
        super::duration_ms(answer.sample_interval_ms.into()),
    ));
    for host in &answer.hosts {
        out.push('\n');
        out.push_str(&host_block(host, from, step, width));
    }
    out
}

fn state_painted(state: HostHealthState) -> String {
    let name = state_name(state);
    match state {
        HostHealthState::Healthy => paint(name, Paint::Green),
        HostHealthState::Degraded => paint(name, Paint::Yellow),
        HostHealthState::Down => paint(name, Paint::Red),
        _ => name.to_owned(),
    }
}

/// A host state in lowercase words.
pub fn state_name(state: HostHealthState) -> &'static str {
    match state {
        HostHealthState::Healthy => "healthy",
        HostHealthState::Degraded => "degraded",
        HostHealthState::Down => "down",
        HostHealthState::Unknown | HostHealthState::Unspecified => "unknown",
    }
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

/// One value of a point per metric; None where the point has none.
type Metric = (
    &'static str,
    fn(&HealthPoint) -> Option<f64>,
    fn(f64) -> String,
    bool,
);

const METRICS: [Metric; 6] = [
    ("uptime", uptime, percent, true),
    ("response", response, ms, false),
    ("errors", errors, percent, true),
    ("load", load, two_places, false),
    ("mem avail", memory, whole_bytes, false),
    ("disk free", disk, whole_bytes, false),
];

fn uptime(p: &HealthPoint) -> Option<f64> {
    (p.samples > 0).then(|| 100.0 * f64::from(p.reachable) / f64::from(p.samples))
}

fn response(p: &HealthPoint) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u32);
    for app in &p.apps {
        if let Some(range) = &app.response_ms {
            sum += range.avg * f64::from(app.ok);
            n += app.ok;
        }
    }
    (n > 0).then(|| sum / f64::from(n))
}

fn errors(p: &HealthPoint) -> Option<f64> {
    let (ok, failed) = p
        .apps
        .iter()
        .fold((0u32, 0u32), |(o, e), a| (o + a.ok, e + a.errors));
    (ok + failed > 0).then(|| 100.0 * f64::from(failed) / f64::from(ok + failed))
}

fn load(p: &HealthPoint) -> Option<f64> {
    p.load_average.as_ref().map(|r| r.avg)
}

fn memory(p: &HealthPoint) -> Option<f64> {
    p.memory_available_bytes.as_ref().map(|r| r.avg)
}

fn disk(p: &HealthPoint) -> Option<f64> {
    p.disk_free_bytes.as_ref().map(|r| r.avg)
}

fn percent(v: f64) -> String {
    format!("{v:.1}%")
}

fn two_places(v: f64) -> String {
    format!("{v:.2}")
}

fn whole_bytes(v: f64) -> String {
    bytes(v.max(0.0) as u64)
}

/// A host's sparklines and its apps' latest probes.
fn host_block(host: &HostHealthSeries, from: i64, step: u64, width: usize) -> String {
    let mut out = format!("{} ({})\n", host.host, state_name(host.state()));
    let mut lines = Table::new(&[]);
    for (name, value, shown, percentage) in METRICS {
        let mut slots: Vec<Option<f64>> = vec![None; width];
        for point in &host.points {
            let at = point.time.as_ref().map_or(0, |t| t.seconds) - from;
            let slot = usize::try_from(at.max(0) as u64 / step).unwrap_or(usize::MAX);
            if let (Some(cell), Some(v)) = (slots.get_mut(slot), value(point)) {
                *cell = Some(v);
            }
        }
        let seen: Vec<f64> = slots.iter().flatten().copied().collect();
        if seen.is_empty() {
            continue;
        }
        let low = seen.iter().copied().fold(f64::INFINITY, f64::min);
        let high = seen.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let scale = if percentage {
            (0.0, 100.0)
        } else {
            (low, high)
        };
        let range = if low == high {
            shown(low)
        } else {
            format!("{} .. {}", shown(low), shown(high))
        };
        lines.row(vec![name.to_owned(), sparkline(&slots, scale), range]);
    }
    out.push_str(&lines.render_indented(2));
    if let Some(latest) = &host.latest {
        if !latest.reachable {
            out.push_str(&format!("  agent: {}\n", latest.error));
        }
        for app in &latest.apps {
            let line = match AppHealthState::try_from(app.state) {
                Ok(AppHealthState::Healthy) => {
                    format!(
                        "app {}: passing in {} (release {})",
                        app.app,
                        ms(app.response_ms),
                        app.release_id
                    )
                }
                Ok(AppHealthState::Failing) => {
                    format!(
                        "app {}: failing: {} (release {})",
                        app.app, app.error, app.release_id
                    )
                }
                _ => format!("app {}: not probed yet", app.app),
            };
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// One character per slot: its value's level between `low` and `high`, a
/// blank for no value; the middle level when all values are the same.
pub fn sparkline(slots: &[Option<f64>], (low, high): (f64, f64)) -> String {
    slots
        .iter()
        .map(|slot| match slot {
            None => ' ',
            Some(_) if high <= low => LEVELS[LEVELS.len() / 2],
            Some(v) => {
                let at = ((v - low) / (high - low)).clamp(0.0, 1.0);
                LEVELS[((at * (LEVELS.len() - 1) as f64).round()) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
