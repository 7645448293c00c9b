//! The store's trees (tables) and their names.

/// The trees (tables) of the store; each belongs to one repository
/// ([`Tree::Meta`] holds a few named values of several).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// name -> `App`
    Apps,
    /// name -> `Environment`
    Environments,
    /// name -> `Host`
    Hosts,
    /// app \0 id -> `Release`
    Releases,
    /// app \0 id -> `Manifest` (JSON)
    Manifests,
    /// id -> `Deployment`
    Deployments,
    /// id \0 be64(sequence) -> `DeploymentEvent`
    Events,
    /// app \0 environment -> deployment id holding the lock
    Locks,
    /// be64(u64::MAX - sequence) -> `AuditEvent`: key order is newest first
    Audit,
    /// name -> be64 counter (the last deployment number) or a format marker
    Meta,
    /// app \0 environment \0 be64(number) -> deployment id: every deployment
    /// of an app in an environment, oldest first
    DeploymentsByTarget,
    /// app \0 environment \0 be64(number) -> release id: the deployments
    /// that succeeded
    DeploymentsSucceeded,
    /// author \0 be64(number) -> deployment id
    DeploymentsByAuthor,
    /// deployment id -> empty: the deployments not finished
    DeploymentsOpen,
    /// deployment id \0 host -> empty: hosts whose outcome is unknown
    HostsUnknown,
    /// Revoked certificates and identities.
    Revocations,
    /// SHA-256 of a join token -> the host it enrolls and its expiry.
    JoinTokens,
    /// host \0 be64(unix milliseconds) -> `HealthSample`: raw samples
    HealthSamples,
    /// host \0 be64(unix seconds of the start) -> `HealthPoint`: 5-minute
    /// aggregates
    HealthAggregates,
    /// be64(cursor) -> `FeedItem`: the live feed, oldest first
    Feed,
    /// app \0 environment \0 host -> `HostDrift`: the latest drift finding
    DriftFindings,
    /// deployment id -> empty: the deployments that repair drift
    DriftRepairs,
    /// name -> `Subscription`: notification webhooks
    Subscriptions,
    /// subscription id -> its signing secret
    SubscriptionSecrets,
    /// subscription id -> be64(feed cursor handled last)
    SubscriptionCursors,
    /// subscription id \0 be64(sequence) -> `Delivery`: the latest attempts
    Deliveries,
    /// app -> `Triggers`: webhook and auto-deploy settings
    Triggers,
    /// app -> its webhook secret
    WebhookSecrets,
    /// app \0 delivery id -> `WebhookDelivery`: deliveries handled, for
    /// idempotency
    WebhookDeliveries,
    /// app \0 environment \0 be64(number) -> deployment id: the deployments
    /// waiting before they start, oldest first
    Queue,
    /// app \0 commit ":" spec hash -> `Build`: the last build of a commit
    /// with a build spec
    Builds,
    /// SHA-256 of a login link's token -> `LoginLink`
    LoginLinks,
    /// session id -> `DashboardSession`
    DashboardSessions,
    /// trigram (3 bytes of lower-cased text) ++ be64(deployment number) ->
    /// empty: the text index of deployments
    DeploymentsText,
    /// upgrade id -> `AgentUpgrade`: agent upgrades with their events
    AgentUpgrades,
    /// app \0 environment \0 name -> `StoredSecret` (JSON): the latest
    /// version of each secret, its value sealed
    Secrets,
}

impl Tree {
    pub(crate) const ALL: [Tree; 36] = [
        Tree::Apps,
        Tree::Environments,
        Tree::Hosts,
        Tree::Releases,
        Tree::Manifests,
        Tree::Deployments,
        Tree::Events,
        Tree::Locks,
        Tree::Audit,
        Tree::Meta,
        Tree::DeploymentsByTarget,
        Tree::DeploymentsSucceeded,
        Tree::DeploymentsByAuthor,
        Tree::DeploymentsOpen,
        Tree::HostsUnknown,
        Tree::Revocations,
        Tree::JoinTokens,
        Tree::HealthSamples,
        Tree::HealthAggregates,
        Tree::Feed,
        Tree::DriftFindings,
        Tree::DriftRepairs,
        Tree::Subscriptions,
        Tree::SubscriptionSecrets,
        Tree::SubscriptionCursors,
        Tree::Deliveries,
        Tree::Triggers,
        Tree::WebhookSecrets,
        Tree::WebhookDeliveries,
        Tree::Queue,
        Tree::Builds,
        Tree::LoginLinks,
        Tree::DashboardSessions,
        Tree::DeploymentsText,
        Tree::AgentUpgrades,
        Tree::Secrets,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tree::Apps => "apps",
            Tree::Environments => "environments",
            Tree::Hosts => "hosts",
            Tree::Releases => "releases",
            Tree::Manifests => "manifests",
            Tree::Deployments => "deployments",
            Tree::Events => "events",
            Tree::Locks => "locks",
            Tree::Audit => "audit",
            Tree::Meta => "meta",
            Tree::DeploymentsByTarget => "deployments_by_target",
            Tree::DeploymentsSucceeded => "deployments_succeeded",
            Tree::DeploymentsByAuthor => "deployments_by_author",
            Tree::DeploymentsOpen => "deployments_open",
            Tree::HostsUnknown => "hosts_unknown",
            Tree::Revocations => "revocations",
            Tree::JoinTokens => "join_tokens",
            Tree::HealthSamples => "health_samples",
            Tree::HealthAggregates => "health_aggregates",
            Tree::Feed => "feed",
            Tree::DriftFindings => "drift_findings",
            Tree::DriftRepairs => "drift_repairs",
            Tree::Subscriptions => "subscriptions",
            Tree::SubscriptionSecrets => "subscription_secrets",
            Tree::SubscriptionCursors => "subscription_cursors",
            Tree::Deliveries => "deliveries",
            Tree::Triggers => "triggers",
            Tree::WebhookSecrets => "webhook_secrets",
            Tree::WebhookDeliveries => "webhook_deliveries",
            Tree::Queue => "queue",
            Tree::Builds => "builds",
            Tree::LoginLinks => "login_links",
            Tree::DashboardSessions => "dashboard_sessions",
            Tree::DeploymentsText => "deployments_text",
            Tree::AgentUpgrades => "agent_upgrades",
            Tree::Secrets => "secrets",
        }
    }

    pub(crate) fn index(self) -> usize {
        Tree::ALL
            .iter()
            .position(|t| *t == self)
            .unwrap_or_default()
    }
}
