//! Deploy windows and freezes of an environment: whether a deploy may start
//! at a given moment (and, if not, a message that says why and when it
//! may), and the checks of the windows and freezes an admin sets.

use std::time::SystemTime;

use chrono::{DateTime, Datelike, Timelike, Utc};
use slipway_proto::{
    control::v1::{DeployGates, DeployWindow},
    validate::InvalidField,
};

/// Windows an environment may declare at most.
const MAX_WINDOWS: usize = 20;
/// Freezes an environment may declare at most.
const MAX_FREEZES: usize = 50;
/// Longest reason of a freeze.
const MAX_REASON: usize = 256;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes after midnight of `HH:MM`.
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

fn seconds(t: Option<&pbjson_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds)
}

fn open_in(window: &DeployWindow, at: &DateTime<Utc>) -> bool {
    let day = DAYS[at.weekday().num_days_from_monday() as usize];
    let now = at.hour() * 60 + at.minute();
    let on_day = window.days.is_empty() || window.days.iter().any(|d| d == day);
    let (Some(start), Some(end)) = (minutes(&window.start), minutes(&window.end)) else {
        return false;
    };
    on_day && start <= now && now < end
}

/// Why a deploy may not start at `at`, or None when it may.
pub fn refusal(gates: &DeployGates, at: SystemTime) -> Option<String> {
    let at_utc = DateTime::<Utc>::from(at);
    let when = at_utc.format("%Y-%m-%d %H:%M UTC (%a)");
    let secs = at_utc.timestamp();
    if let Some(freeze) = gates
        .freezes
        .iter()
        .find(|f| seconds(f.from.as_ref()) <= secs && secs < seconds(f.until.as_ref()))
    {
        let until = DateTime::<Utc>::from_timestamp(seconds(freeze.until.as_ref()), 0)
            .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        return Some(format!(
            "{when} is inside a deploy freeze until {until}: {}; an admin may deploy anyway with --force",
            freeze.reason
        ));
    }
    if gates.windows.is_empty() || gates.windows.iter().any(|w| open_in(w, &at_utc)) {
        return None;
    }
    let windows: Vec<String> = gates.windows.iter().map(describe).collect();
    Some(format!(
        "{when} is outside the deploy windows ({}); an admin may deploy anyway with --force",
        windows.join(", ")
    ))
}

/// `mon,tue 09:00-17:00 UTC`, or `every day 09:00-17:00 UTC`.
pub fn describe(window: &DeployWindow) -> String {
    let days = if window.days.is_empty() {
        "every day".to_owned()
    } else {
        window.days.join(",")
    };
    format!("{days} {}-{} UTC", window.start, window.end)
}

/// Checks the windows and freezes of `gates`.
pub fn validate(gates: &DeployGates) -> Result<(), InvalidField> {
    let field = "environment.gates";
    if gates.windows.len() > MAX_WINDOWS || gates.freezes.len() > MAX_FREEZES {
        return Err(InvalidField::new(
            field,
            format!("at most {MAX_WINDOWS} windows and {MAX_FREEZES} freezes"),
        ));
    }
    for w in &gates.windows {
        let (start, end) = (minutes(&w.start), minutes(&w.end));
        if !matches!((start, end), (Some(s), Some(e)) if s < e) {
            return Err(InvalidField::new(
                format!("{field}.windows"),
                format!(
                    "{:?}-{:?}: start and end are HH:MM UTC, start before end",
                    w.start, w.end
                ),
            ));
        }
        if w.days.len() > DAYS.len() || w.days.iter().any(|d| !DAYS.contains(&d.as_str())) {
            return Err(InvalidField::new(
                format!("{field}.windows.days"),
                format!("days are {}", DAYS.join(", ")),
            ));
        }
    }
    for f in &gates.freezes {
        if seconds(f.from.as_ref()) >= seconds(f.until.as_ref()) || f.reason.len() > MAX_REASON {
            return Err(InvalidField::new(
                format!("{field}.freezes"),
                format!(
                    "a freeze ends after it starts and its reason is at most {MAX_REASON} bytes"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_proto::control::v1::DeployFreeze;

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
            .into()
    }

    #[test]
    fn windows_and_freezes_decide() {
        let mut gates = DeployGates {
            windows: vec![DeployWindow {
                days: vec!["mon".into(), "tue".into()],
                start: "09:00".into(),
                end: "17:00".into(),
            }],
            ..Default::default()
        };
        // 2026-11-30 is a Monday.
        assert_eq!(refusal(&gates, at("2026-11-30T10:00:00Z")), None);
        let late = refusal(&gates, at("2026-11-30T17:00:00Z")).unwrap();
        assert!(
            late.contains("outside the deploy windows (mon,tue 09:00-17:00 UTC)"),
            "{late}"
        );
        assert!(
            refusal(&gates, at("2026-12-02T10:00:00Z")).is_some(),
            "a Wednesday"
        );
        gates.freezes.push(DeployFreeze {
            from: Some(slipway_proto::timestamp(at("2026-11-30T00:00:00Z"))),
            until: Some(slipway_proto::timestamp(at("2026-12-01T00:00:00Z"))),
            reason: "black friday".into(),
        });
        let frozen = refusal(&gates, at("2026-11-30T10:00:00Z")).unwrap();
        assert!(
            frozen.contains("freeze until 2026-12-01 00:00 UTC: black friday"),
            "{frozen}"
        );
        assert!(validate(&gates).is_ok());
        gates.windows[0].end = "08:00".into();
        assert!(validate(&gates).is_err());
    }
}
