//! What the audit trail records of each mutating request (its method, the
//! role it needs and what it acts on) and the domain value each becomes.
//! Apps, environments and hosts become checked specs
//! ([`crate::domain::catalog`]), deploys and rollbacks a
//! [`Start`]; the others are [`Checked`] here: every string a caller
//! controls within its bound from [`limits`], the rest checked where it
//! meets the store.

use slipway_proto::{
    control::v1::*,
    identity::Role,
    limits,
    validate::{self, InvalidField, bounded},
};

use super::{Audited, Checked};
use crate::{
    audit::app_env,
    deployment::Start,
    domain::catalog::{AppSpec, EnvironmentSpec, NewHost},
};

macro_rules! audited {
    ($request:ty, $method:literal, $role:ident, $domain:ty, |$r:ident| $target:expr) => {
        impl Audited for $request {
            const METHOD: &'static str = $method;
            const ROLE: Role = Role::$role;
            type Domain = $domain;
            fn target(&self) -> String {
                let $r = self;
                $target
            }
        }
    };
}

/// `Checked<$request>` from the bounds `$bounds` of `$b`.
macro_rules! checked {
    ($request:ty, |$b:ident| $bounds:expr) => {
        impl TryFrom<$request> for Checked<$request> {
            type Error = InvalidField;
            fn try_from($b: $request) -> Result<Self, InvalidField> {
                $bounds?;
                Ok(Checked($b))
            }
        }
    };
}

fn start_bounds(app: &str, env: &str, release: &str, message: &str) -> Result<(), InvalidField> {
    bounded("app", app, limits::NAME)?;
    bounded("environment", env, limits::NAME)?;
    bounded("release_id", release, limits::RELEASE_ID)?;
    bounded("message", message, limits::live().message_bytes)
}

audited!(
    CreateAppRequest,
    "AppService/CreateApp",
    Admin,
    AppSpec,
    |r| format!("app {}", r.app.as_ref().map_or("", |a| &a.name))
);
audited!(
    UpdateAppRequest,
    "AppService/UpdateApp",
    Admin,
    AppSpec,
    |r| format!("app {}", r.app.as_ref().map_or("", |a| &a.name))
);
audited!(
    CreateEnvironmentRequest,
    "EnvironmentService/CreateEnvironment",
    Admin,
    EnvironmentSpec,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    )
);
audited!(
    UpdateEnvironmentRequest,
    "EnvironmentService/UpdateEnvironment",
    Admin,
    EnvironmentSpec,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    )
);
audited!(AddHostRequest, "HostService/AddHost", Admin, NewHost, |r| r
    .host
    .as_ref()
    .map_or_else(String::new, |h| format!(
        "host {}, environment {}, address {}",
        h.name, h.environment, h.address
    )));
audited!(
    RemoveHostRequest,
    "HostService/RemoveHost",
    Admin,
    Checked<Self>,
    |r| format!("host {}", r.name)
);
checked!(RemoveHostRequest, |r| bounded(
    "name",
    &r.name,
    limits::HOST_NAME
));
audited!(
    ResetFencingRequest,
    "HostService/ResetFencing",
    Admin,
    Checked<Self>,
    |r| format!("app {} on host {}", r.app, r.host)
);
checked!(ResetFencingRequest, |r| {
    bounded("host", &r.host, limits::HOST_NAME).and_then(|()| bounded("app", &r.app, limits::NAME))
});
audited!(
    CreateReleaseRequest,
    "ReleaseService/CreateRelease",
    Deployer,
    Checked<Self>,
    |r| format!("app {}, ref {}", r.app, r.git_ref)
);
checked!(CreateReleaseRequest, |r| bounded(
    "app",
    &r.app,
    limits::NAME
)
.and_then(|()| bounded("git_ref", &r.git_ref, limits::GIT_REF)));
audited!(
    MarkReleaseRequest,
    "ReleaseService/MarkRelease",
    Deployer,
    Checked<Self>,
    |r| format!("release {} of app {}", r.release_id, r.app)
);
checked!(MarkReleaseRequest, |r| start_bounds(
    &r.app,
    "",
    &r.release_id,
    &r.reason
));
audited!(
    PinReleaseRequest,
    "ReleaseService/PinRelease",
    Deployer,
    Checked<Self>,
    |r| format!(
        "release {} of app {}, environment {}",
        r.id, r.app, r.environment
    )
);
checked!(PinReleaseRequest, |r| start_bounds(
    &r.app,
    &r.environment,
    &r.id,
    ""
));
// Audited: planning cuts the release when the ref has none yet. Planning
// converts the deploy into a `Start` itself.
audited!(
    PlanDeploymentRequest,
    "DeploymentService/PlanDeployment",
    Deployer,
    Checked<Self>,
    |r| r
        .deploy
        .as_ref()
        .map_or_else(String::new, |d| app_env(&d.app, &d.environment))
);
checked!(PlanDeploymentRequest, |r| r
    .deploy
    .as_ref()
    .map_or(Ok(()), |d| Start::try_from(d.clone()).map(drop)));
audited!(
    CancelDeploymentRequest,
    "DeploymentService/CancelDeployment",
    Deployer,
    Checked<Self>,
    |r| format!("deployment {}", r.deployment_id)
);
checked!(CancelDeploymentRequest, |r| bounded(
    "deployment_id",
    &r.deployment_id,
    limits::DEPLOYMENT_ID
)
.and_then(|()| bounded(
    "reason",
    &r.reason,
    limits::live().message_bytes
)));
audited!(
    DeployRequest,
    "DeploymentService/Deploy",
    Deployer,
    Start,
    |r| if r.force {
        format!(
            "{}, forced past windows and freezes",
            app_env(&r.app, &r.environment)
        )
    } else {
        app_env(&r.app, &r.environment)
    }
);
audited!(
    RollbackRequest,
    "DeploymentService/Rollback",
    Deployer,
    Start,
    |r| app_env(&r.app, &r.environment)
);
audited!(
    ReleaseLockRequest,
    "LockService/ReleaseLock",
    Admin,
    Checked<Self>,
    |r| app_env(&r.app, &r.environment)
);
checked!(ReleaseLockRequest, |r| start_bounds(
    &r.app,
    &r.environment,
    "",
    &r.reason
));
audited!(
    RevokeCertificateRequest,
    "CertificateService/RevokeCertificate",
    Admin,
    Checked<Self>,
    |r| if r.fingerprint.is_empty() {
        format!("identity {}", r.identity)
    } else {
        format!("certificate {}", r.fingerprint)
    }
);
checked!(RevokeCertificateRequest, |r| {
    bounded("fingerprint", &r.fingerprint, limits::NAME + 8)
        .and_then(|()| bounded("identity", &r.identity, limits::HOST_NAME + 32))
        .and_then(|()| bounded("reason", &r.reason, limits::live().message_bytes))
});
audited!(
    RenewAgentCertificateRequest,
    "HostService/RenewAgentCertificate",
    Admin,
    Checked<Self>,
    |r| format!("host {}", r.host)
);
checked!(RenewAgentCertificateRequest, |r| bounded(
    "host",
    &r.host,
    limits::HOST_NAME
));
audited!(
    RepairDriftRequest,
    "DriftService/RepairDrift",
    Deployer,
    Checked<Self>,
    |r| app_env(&r.app, &r.environment)
);
checked!(RepairDriftRequest, |r| start_bounds(
    &r.app,
    &r.environment,
    "",
    &r.message
));
audited!(
    CreateSubscriptionRequest,
    "NotificationService/CreateSubscription",
    Admin,
    crate::notify::spec::NewSubscription,
    |r| format!("subscription {}", r.name)
);
audited!(
    DeleteSubscriptionRequest,
    "NotificationService/DeleteSubscription",
    Admin,
    Checked<Self>,
    |r| format!("subscription {}", r.name)
);
checked!(DeleteSubscriptionRequest, |r| validate::name(
    "name", &r.name
));
audited!(
    TestSubscriptionRequest,
    "NotificationService/TestSubscription",
    Admin,
    Checked<Self>,
    |r| format!("subscription {}", r.name)
);
checked!(TestSubscriptionRequest, |r| validate::name("name", &r.name));
audited!(
    RotateWebhookSecretRequest,
    "TriggerService/RotateWebhookSecret",
    Admin,
    Checked<Self>,
    |r| format!("app {}", r.app)
);
checked!(RotateWebhookSecretRequest, |r| validate::name(
    "app", &r.app
));
audited!(
    DisableWebhookRequest,
    "TriggerService/DisableWebhook",
    Admin,
    Checked<Self>,
    |r| format!("app {}", r.app)
);
checked!(DisableWebhookRequest, |r| validate::name("app", &r.app));
audited!(
    SetAutoDeployRequest,
    "TriggerService/SetAutoDeploy",
    Admin,
    Checked<Self>,
    |r| format!("app {}, environment {}", r.app, r.environment)
);
checked!(SetAutoDeployRequest, |r| validate::name("app", &r.app)
    .and_then(|()| validate::name("environment", &r.environment))
    .and_then(|()| bounded("branch", &r.branch, limits::GIT_REF)));
audited!(
    FetchSourceRequest,
    "SourceService/FetchSource",
    Deployer,
    Checked<Self>,
    |r| format!("app {}", r.app)
);
checked!(FetchSourceRequest, |r| bounded("app", &r.app, limits::NAME));
/// Admin calls on one app's deploy key, audited as acting on the app.
macro_rules! deploy_key_calls {
    ($($request:ty => $method:literal),* $(,)?) => {
        $(audited!($request, $method, Admin, Checked<Self>, |r| format!("app {}", r.app));)*
    };
}
deploy_key_calls!(
    CreateDeployKeyRequest => "DeployKeyService/CreateDeployKey",
    TestDeployKeyRequest => "DeployKeyService/TestDeployKey",
    RotateDeployKeyRequest => "DeployKeyService/RotateDeployKey",
    RevokeDeployKeyRequest => "DeployKeyService/RevokeDeployKey",
);
checked!(CreateDeployKeyRequest, |r| app_and_host_key(
    &r.app,
    &r.known_host
));
checked!(TestDeployKeyRequest, |r| app_and_host_key(
    &r.app,
    &r.known_host
));
checked!(RotateDeployKeyRequest, |r| bounded(
    "app",
    &r.app,
    limits::NAME
));
checked!(RevokeDeployKeyRequest, |r| bounded(
    "app",
    &r.app,
    limits::NAME
));

fn app_and_host_key(app: &str, known_host: &str) -> Result<(), InvalidField> {
    bounded("app", app, limits::NAME)?;
    bounded("known_host", known_host, MAX_HOST_KEY_LINE)
}

/// Longest OpenSSH host key line accepted (an RSA 16384-bit key fits).
const MAX_HOST_KEY_LINE: usize = 4096;
audited!(
    ApproveDeploymentRequest,
    "ApprovalService/ApproveDeployment",
    Deployer,
    Checked<Self>,
    |r| if r.admin_override {
        format!("deployment {}, admin override", r.deployment_id)
    } else {
        format!("deployment {}", r.deployment_id)
    }
);
checked!(ApproveDeploymentRequest, |r| bounded(
    "deployment_id",
    &r.deployment_id,
    limits::DEPLOYMENT_ID
)
.and_then(|()| bounded(
    "message",
    &r.message,
    limits::live().message_bytes
)));
audited!(
    RejectDeploymentRequest,
    "ApprovalService/RejectDeployment",
    Deployer,
    Checked<Self>,
    |r| format!("deployment {}", r.deployment_id)
);
checked!(RejectDeploymentRequest, |r| bounded(
    "deployment_id",
    &r.deployment_id,
    limits::DEPLOYMENT_ID
)
.and_then(|()| bounded("message", &r.message, limits::live().message_bytes))
.and_then(|()| match r.message.trim().is_empty() {
    true => Err(InvalidField::new(
        "message",
        "is required: say why it is rejected"
    )),
    false => Ok(()),
}));
audited!(
    CreateLoginLinkRequest,
    "DashboardService/CreateLoginLink",
    Viewer,
    Checked<Self>,
    |_r| "dashboard".to_owned()
);
checked!(CreateLoginLinkRequest, |_r| Ok::<(), InvalidField>(()));
audited!(
    RevokeSessionRequest,
    "DashboardService/RevokeSession",
    Admin,
    Checked<Self>,
    |r| format!("dashboard session {}", r.id)
);
checked!(RevokeSessionRequest, |r| bounded("id", &r.id, limits::NAME));
