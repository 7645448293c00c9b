//! What a feed item becomes for a subscription: its event name, whether the
//! subscription wants it, and the body in the subscription's format
//! (generic JSON, schema [`SCHEMA`], or a Slack-compatible `{"text": ...}`).

use slipway_proto::control::v1::{
    DeploymentKind, DeploymentStatus, DriftState, FeedItem, FeedKind, HostHealthState,
    NotificationFormat, Subscription,
};

/// The schema of the generic JSON body.
pub const SCHEMA: &str = "slipway.notification/v1";

/// The events a subscription may name.
pub const EVENTS: [&str; 10] = [
    "deployment.started",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.cancelled",
    "deployment.rolled_back",
    "approval.requested",
    "host.down",
    "host.degraded",
    "host.recovered",
    "drift.found",
];

/// The event of a test delivery.
pub const TEST_EVENT: &str = "test";

/// The event `item` is, if it is one.
pub fn event(item: &FeedItem) -> Option<&'static str> {
    match item.kind() {
        FeedKind::Deployment => deployment_event(item),
        FeedKind::Health => health_event(item),
        FeedKind::Drift if item.drift() == DriftState::Drifted => Some("drift.found"),
        FeedKind::Drift | FeedKind::Host | FeedKind::Unspecified => None,
    }
}

/// A host that went down or degraded, or came back from either; a host
/// seen for the first time is not news.
fn health_event(item: &FeedItem) -> Option<&'static str> {
    let was_bad = matches!(
        item.previous_health(),
        HostHealthState::Down | HostHealthState::Degraded
    );
    match item.health() {
        HostHealthState::Down => Some("host.down"),
        HostHealthState::Degraded => Some("host.degraded"),
        HostHealthState::Healthy if was_bad => Some("host.recovered"),
        _ => None,
    }
}

fn deployment_event(item: &FeedItem) -> Option<&'static str> {
    let rollback = item.deployment_kind() == DeploymentKind::Rollback;
    match item.status() {
        DeploymentStatus::Pending => Some("deployment.started"),
        DeploymentStatus::AwaitingApproval => Some("approval.requested"),
        DeploymentStatus::Succeeded if rollback => Some("deployment.rolled_back"),
        DeploymentStatus::Succeeded => Some("deployment.succeeded"),
        DeploymentStatus::Failed | DeploymentStatus::Interrupted => Some("deployment.failed"),
        DeploymentStatus::Cancelled => Some("deployment.cancelled"),
        _ => None,
    }
}

/// The event `item` is for `sub`, if `sub` wants it.
pub fn wanted(sub: &Subscription, item: &FeedItem) -> Option<&'static str> {
    let event = event(item)?;
    let pass = |want: &str, have: &str| want.is_empty() || want == have;
    (pass(&sub.app, &item.app)
        && pass(&sub.environment, &item.environment)
        && (sub.events.is_empty() || sub.events.iter().any(|e| e == event)))
    .then_some(event)
}

/// `SUCCEEDED` as `succeeded`.
fn status(item: &FeedItem) -> String {
    let name = item.status().as_str_name();
    name.trim_start_matches("DEPLOYMENT_STATUS_")
        .to_ascii_lowercase()
}

fn time(item: &FeedItem) -> String {
    item.time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The body of notification `key` about `item`, in `sub`'s format.
pub fn body(sub: &Subscription, item: &FeedItem, event: &str, key: &str) -> Vec<u8> {
    let value = match sub.format() {
        NotificationFormat::Slack => serde_json::json!({ "text": text(item, event) }),
        NotificationFormat::Json | NotificationFormat::Unspecified => serde_json::json!({
            "schema": SCHEMA,
            "event": event,
            "idempotency_key": key,
            "cursor": item.cursor,
            "time": time(item),
            "app": item.app,
            "environment": item.environment,
            "deployment_id": item.deployment_id,
            "host": item.host,
            "release": item.release,
            "status": status(item),
            "message": item.message,
        }),
    };
    value.to_string().into_bytes()
}

/// One readable line: `slipway deployment.failed: web in prod, release r1
/// (dep-0000000007): why`.
fn text(item: &FeedItem, event: &str) -> String {
    let mut line = format!("slipway {event}:");
    if !item.app.is_empty() {
        line.push_str(&format!(" {}", item.app));
    }
    if !item.environment.is_empty() {
        line.push_str(&format!(" in {}", item.environment));
    }
    if !item.host.is_empty() {
        line.push_str(&format!(" on {}", item.host));
    }
    if !item.release.is_empty() {
        line.push_str(&format!(", release {}", item.release));
    }
    if !item.deployment_id.is_empty() {
        line.push_str(&format!(" ({})", item.deployment_id));
    }
    if !item.message.is_empty() {
        line.push_str(&format!(": {}", item.message));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> FeedItem {
        FeedItem {
            cursor: 12,
            kind: FeedKind::Deployment as i32,
            app: "web".into(),
            environment: "prod".into(),
            deployment_id: "dep-0000000007".into(),
            status: DeploymentStatus::Failed as i32,
            release: "r1".into(),
            message: "hook failed".into(),
            time: Some(pbjson_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_deployment_renders_as_versioned_json() {
        let sub = Subscription::default();
        let event = wanted(&sub, &failed()).expect("wanted");
        let body = body(&sub, &failed(), event, "s1:12");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "schema": "slipway.notification/v1",
                "event": "deployment.failed",
                "idempotency_key": "s1:12",
                "cursor": 12,
                "time": "2023-11-14T22:13:20.000Z",
                "app": "web",
                "environment": "prod",
                "deployment_id": "dep-0000000007",
                "host": "",
                "release": "r1",
                "status": "failed",
                "message": "hook failed",
            })
        );
    }

    #[test]
    fn a_deployment_awaiting_approval_is_approval_requested_and_a_queued_one_nothing() {
        let item = |status: DeploymentStatus| FeedItem {
            kind: FeedKind::Deployment as i32,
            status: status as i32,
            ..Default::default()
        };
        let awaiting = item(DeploymentStatus::AwaitingApproval);
        assert_eq!(event(&awaiting), Some("approval.requested"));
        assert_eq!(event(&item(DeploymentStatus::Queued)), None);
    }

    #[test]
    fn health_changes_are_news_except_a_host_seen_for_the_first_time() {
        use HostHealthState::{Degraded, Down, Healthy, Unknown};
        let health = |from: HostHealthState, to: HostHealthState| FeedItem {
            kind: FeedKind::Health as i32,
            host: "web-1".into(),
            previous_health: from as i32,
            health: to as i32,
            ..Default::default()
        };
        assert_eq!(event(&health(Healthy, Down)), Some("host.down"));
        assert_eq!(event(&health(Healthy, Degraded)), Some("host.degraded"));
        assert_eq!(event(&health(Down, Healthy)), Some("host.recovered"));
        assert_eq!(event(&health(Degraded, Healthy)), Some("host.recovered"));
        assert_eq!(event(&health(Unknown, Healthy)), None);
    }

    #[test]
    fn drift_found_is_news_and_drift_cleared_is_not() {
        let drift = |state: DriftState| FeedItem {
            kind: FeedKind::Drift as i32,
            drift: state as i32,
            ..Default::default()
        };
        assert_eq!(event(&drift(DriftState::Drifted)), Some("drift.found"));
        assert_eq!(event(&drift(DriftState::Clean)), None);
    }

    #[test]
    fn slack_gets_one_readable_line() {
        let sub = Subscription {
            format: NotificationFormat::Slack as i32,
            ..Default::default()
        };
        let body = body(&sub, &failed(), "deployment.failed", "s1:12");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["text"],
            "slipway deployment.failed: web in prod, release r1 (dep-0000000007): hook failed"
        );
    }

    #[test]
    fn filters_choose_app_environment_and_events() {
        let item = failed();
        let with = |app: &str, env: &str, events: &[&str]| Subscription {
            app: app.into(),
            environment: env.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        };
        assert!(wanted(&with("web", "prod", &["deployment.failed"]), &item).is_some());
        assert!(wanted(&with("api", "", &[]), &item).is_none());
        assert!(wanted(&with("", "test", &[]), &item).is_none());
        assert!(wanted(&with("", "", &["deployment.succeeded"]), &item).is_none());
        let running = FeedItem {
            status: DeploymentStatus::Running as i32,
            ..failed()
        };
        assert!(event(&running).is_none(), "running is no event");
        let rollback = FeedItem {
            status: DeploymentStatus::Succeeded as i32,
            deployment_kind: DeploymentKind::Rollback as i32,
            ..failed()
        };
        assert_eq!(event(&rollback), Some("deployment.rolled_back"));
    }
}
