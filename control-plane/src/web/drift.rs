//! The drift section of the Hosts page: per host, the latest finding kept
//! for each app (clean, drifted or unknown), how many paths differ from the
//! release's manifest and when the host was checked, read through the
//! DriftService that `slipctl drift` uses.

use slipway_proto::control::v1::{DriftState, HostDrift};

use super::{
    html::{self, data, num},
    i18n::{Lang, Msg},
};

/// The paths of a finding that differ from the manifest, every kind.
fn drifted_paths(f: &HostDrift) -> u64 {
    f.counts.as_ref().map_or(0, |c| {
        c.modified + c.missing + c.added + c.type_changed + c.unreadable
    })
}

fn state(lang: Lang, f: &HostDrift) -> String {
    let (class, msg) = match f.state() {
        DriftState::Clean => ("clean", Msg::DriftClean),
        DriftState::Drifted => ("drifted", Msg::DriftDrifted),
        _ => ("unknown", Msg::StatusUnknown),
    };
    format!("<span class=\"badge d-{class}\">{}</span>", msg.text(lang))
}

/// The section for `findings` (the kept ones, by app, environment, host),
/// shown by host.
pub fn section(lang: Lang, findings: &[HostDrift]) -> String {
    let title = format!("<h2 id=\"drift\">{}</h2>", Msg::Drift.text(lang));
    if findings.is_empty() {
        return format!("{title}<p class=\"empty\">{}</p>", Msg::NoDrift.text(lang));
    }
    let mut sorted: Vec<_> = findings.iter().collect();
    sorted.sort_by(|a, b| (&a.host, &a.app).cmp(&(&b.host, &b.app)));
    let rows: Vec<_> = sorted
        .iter()
        .map(|f| {
            vec![
                data(&f.host),
                data(&f.app),
                data(&f.environment),
                state(lang, f),
                num(drifted_paths(f)),
                data(&f.current_release),
                html::time(f.checked_at.as_ref()),
            ]
        })
        .collect();
    let heads = [
        Msg::Host,
        Msg::App,
        Msg::Environment,
        Msg::Status,
        Msg::DriftedPaths,
        Msg::Current,
        Msg::Checked,
    ];
    title + &html::table(lang, &heads, &rows, "drift")
}
