//! Points in time on the command line (`--since`, `--until`): RFC 3339
//! (`2026-11-23T14:24:00Z`), a UTC date (`2026-11-23`), or an age counted back
//! from now (`90s`, `15m`, `1h30m`, `3d`, `1w`).

use chrono::{DateTime, NaiveDate, Utc};
use pbjson_types::Timestamp;

/// Parses a point in time relative to the current clock; a clap value parser.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    parse_at(text, Utc::now())
}

/// Parses a point in time, counting ages back from `now`.
pub fn parse_at(text: &str, now: DateTime<Utc>) -> Result<Timestamp, String> {
    let text = text.trim();
    let at = if let Some(age) = age(text) {
        age.and_then(|age| now.checked_sub_signed(age))
            .ok_or_else(|| format!("{text:?} reaches too far back"))?
    } else if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        at.with_timezone(&Utc)
    } else if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    } else {
        return Err(format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-23T14:24:00Z), a date \
             (2026-11-23) or an age such as 30m, 1h30m, 3d, 1w"
        ));
    };
    Ok(Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    })
}

/// `Some` when `text` is an age (`90s`, `1h30m`, `2h 15m`, `3d`, `1w`); the
/// inner `None` when it overflows.
fn age(text: &str) -> Option<Option<chrono::Duration>> {
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    match humantime::parse_duration(text) {
        Ok(age) => Some(chrono::Duration::from_std(age).ok()),
        Err(humantime::DurationError::NumberOverflow) => Some(None),
        Err(_) => None,
    }
}

/// A timestamp as RFC 3339 UTC, to the second unless it has a fraction.
pub fn format(ts: &Timestamp) -> String {
    DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T14:24:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| format(&parse_at(s, now).unwrap());
        assert_eq!(at("2026-11-20T08:00:00Z"), "2026-11-20T08:00:00Z");
        assert_eq!(at("2026-11-20T10:00:00+02:00"), "2026-11-20T08:00:00Z");
        assert_eq!(at("2026-11-20"), "2026-11-20T00:00:00Z");
        assert_eq!(at("90s"), "2026-11-23T14:22:30Z");
        assert_eq!(at("2h"), "2026-11-23T12:24:00Z");
        assert_eq!(at("3d"), "2026-11-20T14:24:00Z");
        assert_eq!(at("1w"), "2026-11-16T14:24:00Z");
        assert_eq!(at("1h30m"), "2026-11-23T12:54:00Z");
        assert_eq!(at("2h 15m"), "2026-11-23T12:09:00Z");
        for bad in [
            "",
            "h",
            "2x",
            "-2h",
            "yesterday",
            "2026-13-01",
            "99999999999999999999d",
        ] {
            assert!(parse_at(bad, now).is_err(), "{bad:?}");
        }
    }
}
