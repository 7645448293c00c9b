//! What the audit trail records of each mutating request: its method, the
//! role it needs and what it acts on.

use slipway_proto::{control::v1::*, identity::Role};

use super::Audited;
use crate::audit::app_env;

macro_rules! audited {
    ($request:ty, $method:literal, $role:ident, |$r:ident| $target:expr) => {
        impl Audited for $request {
            const METHOD: &'static str = $method;
            const ROLE: Role = Role::$role;
            fn target(&self) -> String {
                let $r = self;
                $target
            }
        }
    };
}

audited!(CreateAppRequest, "AppService/CreateApp", Admin, |r| {
    format!("app {}", r.app.as_ref().map_or("", |a| &a.name))
});
audited!(UpdateAppRequest, "AppService/UpdateApp", Admin, |r| {
    format!("app {}", r.app.as_ref().map_or("", |a| &a.name))
});
audited!(
    CreateEnvironmentRequest,
    "EnvironmentService/CreateEnvironment",
    Admin,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    )
);
audited!(
    UpdateEnvironmentRequest,
    "EnvironmentService/UpdateEnvironment",
    Admin,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    )
);
audited!(AddHostRequest, "HostService/AddHost", Admin, |r| {
    r.host.as_ref().map_or_else(String::new, |h| {
        format!(
            "host {}, environment {}, address {}",
            h.name, h.environment, h.address
        )
    })
});
audited!(RemoveHostRequest, "HostService/RemoveHost", Admin, |r| {
    format!("host {}", r.name)
});
audited!(
    ResetFencingRequest,
    "HostService/ResetFencing",
    Admin,
    |r| format!("app {} on host {}", r.app, r.host)
);
audited!(
    CreateReleaseRequest,
    "ReleaseService/CreateRelease",
    Deployer,
    |r| format!("app {}, ref {}", r.app, r.git_ref)
);
audited!(
    MarkReleaseRequest,
    "ReleaseService/MarkRelease",
    Deployer,
    |r| format!("release {} of app {}", r.release_id, r.app)
);
audited!(
    PinReleaseRequest,
    "ReleaseService/PinRelease",
    Deployer,
    |r| {
        format!(
            "release {} of app {}, environment {}",
            r.id, r.app, r.environment
        )
    }
);
// Audited: planning cuts the release when the ref has none yet.
audited!(
    PlanDeploymentRequest,
    "DeploymentService/PlanDeployment",
    Deployer,
    |r| r
        .deploy
        .as_ref()
        .map_or_else(String::new, |d| app_env(&d.app, &d.environment))
);
audited!(
    CancelDeploymentRequest,
    "DeploymentService/CancelDeployment",
    Deployer,
    |r| format!("deployment {}", r.deployment_id)
);
audited!(DeployRequest, "DeploymentService/Deploy", Deployer, |r| {
    app_env(&r.app, &r.environment)
});
audited!(
    RollbackRequest,
    "DeploymentService/Rollback",
    Deployer,
    |r| app_env(&r.app, &r.environment)
);
audited!(ReleaseLockRequest, "LockService/ReleaseLock", Admin, |r| {
    app_env(&r.app, &r.environment)
});
audited!(
    RevokeCertificateRequest,
    "CertificateService/RevokeCertificate",
    Admin,
    |r| if r.fingerprint.is_empty() {
        format!("identity {}", r.identity)
    } else {
        format!("certificate {}", r.fingerprint)
    }
);
