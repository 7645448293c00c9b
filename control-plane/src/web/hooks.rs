//! A deployment page's per-host parts: each host's hook output in its own
//! section (followed live by the page's script), and a hint for a failed
//! host chosen by the stage it failed in.

use std::fmt::Write as _;

use slipway_proto::control::v1::{Deployment, DeploymentEvent, EventKind, HostProgress};

use super::{
    html::{data, esc},
    i18n::{Lang, Msg},
};

/// Whether `e` is a line a hook printed.
fn hook_line(e: &DeploymentEvent) -> bool {
    e.kind() == EventKind::Log && !e.host.is_empty() && !e.step.is_empty()
}

/// One line of a host's hook output: `step [stream] text`.
pub fn line(e: &DeploymentEvent) -> String {
    let stream = if e.output.is_empty() {
        String::new()
    } else {
        format!(" [{}]", e.output)
    };
    let text = format!("{}{stream} {}", e.step, e.message);
    format!(
        "<li data-seq=\"{}\">{}</li>",
        e.sequence,
        data(text.trim_end())
    )
}

/// The hook output sections, one per host of `d`, with the lines among
/// `events`.
pub fn sections(lang: Lang, d: &Deployment, events: &[DeploymentEvent]) -> String {
    let mut out = format!("<h2>{}</h2>", Msg::HookOutput.text(lang));
    for h in &d.hosts {
        let lines: String = events
            .iter()
            .filter(|e| hook_line(e) && e.host == h.host)
            .map(line)
            .collect();
        let empty = if lines.is_empty() {
            format!("<p class=\"empty\">{}</p>", Msg::NoHookOutput.text(lang))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<section class=\"hooks\" data-hooks=\"{name}\"><h3>{host}</h3>{empty}<ol class=\"log\" tabindex=\"0\" aria-label=\"{label} {name}\">{lines}</ol></section>",
            name = esc(&h.host),
            host = data(&h.host),
            label = Msg::HookOutput.text(lang),
        );
    }
    out
}

/// The stage a host was in when it failed: its last event's stage before
/// the one that recorded the failure.
fn failed_in<'a>(events: &'a [DeploymentEvent], host: &str) -> Option<&'a str> {
    events
        .iter()
        .rev()
        .filter(|e| e.host == host)
        .map(|e| e.stage.as_str())
        .find(|stage| !matches!(*stage, "failed" | "" | "cancelled" | "interrupted"))
}

/// What to do about a host that failed in `stage`.
pub fn hint(h: &HostProgress, stage: Option<&str>) -> Option<Msg> {
    if h.error.is_empty() {
        return None;
    }
    Some(match stage.unwrap_or_default() {
        "hook" => Msg::HintHook,
        "health_check" | "revert" => Msg::HintHealth,
        "transfer" | "materialise" => Msg::HintTransfer,
        "link_shared" => Msg::HintShared,
        "activate" => Msg::HintActivate,
        _ => Msg::HintOther,
    })
}

/// A host's error with its hint, the stage it failed in read from `events`.
pub fn error(lang: Lang, h: &HostProgress, events: &[DeploymentEvent]) -> String {
    match hint(h, failed_in(events, &h.host)) {
        Some(msg) => format!(
            "{}<br><small class=\"hint\">{}</small>",
            data(&h.error),
            msg.text(lang)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_host_gets_the_hint_of_the_stage_it_failed_in() {
        let host = |error: &str| HostProgress {
            host: "web-1".into(),
            stage: "failed".into(),
            error: error.into(),
            ..Default::default()
        };
        let event = |host: &str, stage: &str| DeploymentEvent {
            host: host.into(),
            stage: stage.into(),
            ..Default::default()
        };
        assert_eq!(hint(&host(""), Some("hook")), None);
        assert_eq!(hint(&host("exit 1"), Some("hook")), Some(Msg::HintHook));
        assert_eq!(hint(&host("503"), Some("revert")), Some(Msg::HintHealth));
        assert_eq!(hint(&host("x"), None), Some(Msg::HintOther));
        let events = [
            event("web-1", "materialise"),
            event("web-1", "hook"),
            event("web-2", "transfer"),
            event("web-1", "failed"),
        ];
        assert_eq!(failed_in(&events, "web-1"), Some("hook"));
        assert!(error(Lang::En, &host("exit 1"), &events).contains(Msg::HintHook.text(Lang::En)));
    }
}
