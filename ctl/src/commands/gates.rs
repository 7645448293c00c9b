//! Deploy gate flags of `env create|update`: what a deployment to the
//! environment waits for before it starts. Each flag given replaces one
//! field of the environment's gates.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::Args;
use slipway_proto::control::v1::{DeployFreeze, DeployGates, DeployWindow};

/// Deploy gate flags.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Deploy gates")]
pub struct GatesArgs {
    /// A deploy or rollback while another holds the lock waits in a FIFO queue instead of
    /// being refused
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub queue: Option<bool>,
    /// A newer queued deployment skips the older queued ones of the same app
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub latest_wins: Option<bool>,
    /// Approvals a deployment needs from operators other than its requester (0: none)
    #[arg(long, value_name = "N")]
    pub approvals: Option<u32>,
    /// Seconds a request for approval stays open (0: a day)
    #[arg(long, value_name = "SECONDS")]
    pub approval_expiry: Option<u32>,
    /// A deploy window, UTC: `mon-fri 09:00-17:00`, `sat,sun 10:00-12:00` or
    /// `09:00-17:00` (every day); repeat for several; replaces the windows
    #[arg(long, value_name = "WINDOW", value_parser = parse_window)]
    pub window: Vec<DeployWindow>,
    /// Remove every deploy window: deploys may start any time
    #[arg(long, conflicts_with = "window")]
    pub no_windows: bool,
    /// A deploy freeze: `2026-12-20..2027-01-02=holidays` (dates or times, UTC;
    /// the end excluded); repeat for several; replaces the freezes
    #[arg(long, value_name = "FREEZE", value_parser = parse_freeze)]
    pub freeze: Vec<DeployFreeze>,
    /// Remove every deploy freeze
    #[arg(long, conflicts_with = "freeze")]
    pub no_freezes: bool,
}

impl GatesArgs {
    /// `base` with every given flag applied.
    pub fn apply(&self, base: DeployGates) -> DeployGates {
        DeployGates {
            queue: self.queue.unwrap_or(base.queue),
            latest_wins: self.latest_wins.unwrap_or(base.latest_wins),
            approvals_required: self.approvals.unwrap_or(base.approvals_required),
            approval_expiry_seconds: self.approval_expiry.unwrap_or(base.approval_expiry_seconds),
            windows: match (self.no_windows, self.window.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => base.windows,
                (false, false) => self.window.clone(),
            },
            freezes: match (self.no_freezes, self.freeze.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => base.freezes,
                (false, false) => self.freeze.clone(),
            },
        }
    }
}

/// The gates in words: "queue (latest wins)", or "none".
pub fn describe(gates: &DeployGates) -> String {
    let mut parts = Vec::new();
    if gates.queue {
        parts.push(if gates.latest_wins {
            "queue (latest wins)".to_owned()
        } else {
            "queue".to_owned()
        });
    } else if gates.latest_wins {
        parts.push("latest wins for --queue deploys".to_owned());
    }
    if gates.approvals_required > 0 {
        let expiry = match gates.approval_expiry_seconds {
            0 => "a day".to_owned(),
            s => format!("{s} s"),
        };
        parts.push(format!(
            "{} approvals (requests expire after {expiry})",
            gates.approvals_required
        ));
    }
    for w in &gates.windows {
        let days = if w.days.is_empty() {
            "every day".to_owned()
        } else {
            w.days.join(",")
        };
        parts.push(format!("window {days} {}-{} UTC", w.start, w.end));
    }
    for f in &gates.freezes {
        let time = |t: Option<&pbjson_types::Timestamp>| crate::output::time(t);
        parts.push(format!(
            "freeze {} .. {}: {}",
            time(f.from.as_ref()),
            time(f.until.as_ref()),
            f.reason
        ));
    }
    if parts.is_empty() {
        return "none".to_owned();
    }
    parts.join(", ")
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `mon-fri 09:00-17:00`, `sat,sun 10:00-12:00` or `09:00-17:00`.
pub fn parse_window(text: &str) -> Result<DeployWindow, String> {
    let (days, times) = match text.trim().rsplit_once(' ') {
        Some((days, times)) => (days.trim(), times),
        None => ("", text.trim()),
    };
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("{times:?}: give HH:MM-HH:MM"))?;
    let index = |d: &str| {
        DAYS.iter()
            .position(|x| *x == d)
            .ok_or_else(|| format!("{d:?} is not a day; days are {}", DAYS.join(", ")))
    };
    let mut out = Vec::new();
    for part in days.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                out.extend(DAYS[a.min(b)..=a.max(b)].iter().map(|d| (*d).to_owned()));
            }
            None => out.push(DAYS[index(part)?].to_owned()),
        }
    }
    Ok(DeployWindow {
        days: out,
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

/// `2026-12-20..2027-01-02=holidays`; each end a date or a time (UTC).
pub fn parse_freeze(text: &str) -> Result<DeployFreeze, String> {
    let usage = || "give FROM..UNTIL=REASON".to_owned();
    let (range, reason) = text.split_once('=').ok_or_else(usage)?;
    let (from, until) = range.split_once("..").ok_or_else(usage)?;
    Ok(DeployFreeze {
        from: Some(parse_time(from)?),
        until: Some(parse_time(until)?),
        reason: reason.to_owned(),
    })
}

/// A time in UTC: `2026-12-01T02:00Z`, any RFC 3339 time, or a date
/// (`2026-12-01`: its midnight).
pub fn parse_time(text: &str) -> Result<pbjson_types::Timestamp, String> {
    let text = text.trim();
    let utc = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%MZ").map(|t| t.and_utc()))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| format!("{text:?}: give a UTC time such as 2026-12-01T02:00Z"))?;
    Ok(pbjson_types::Timestamp {
        seconds: utc.timestamp(),
        nanos: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_freezes_and_times_parse() {
        let w = parse_window("mon-wed,sat 09:00-17:00").unwrap();
        assert_eq!(w.days, ["mon", "tue", "wed", "sat"]);
        assert_eq!((w.start.as_str(), w.end.as_str()), ("09:00", "17:00"));
        assert!(parse_window("09:00-17:00").unwrap().days.is_empty());
        assert!(parse_window("funday 09:00-10:00").is_err());
        let f = parse_freeze("2026-12-20..2027-01-02=holidays").unwrap();
        assert_eq!(f.reason, "holidays");
        assert_eq!(
            parse_time("2026-12-01T02:00Z").unwrap().seconds,
            1_796_090_400
        );
        assert!(parse_time("tomorrow").is_err());
    }
}
