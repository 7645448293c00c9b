//! What the audit trail records of each mutating request (its method, the
//! role it needs and what it acts on) and the bounds of each: every string a
//! caller controls has a maximum length from [`limits`], checked before the
//! call does anything. The formats themselves (a name's characters, an
//! absolute path) are checked where the request becomes a domain value.

use slipway_proto::{
    agent::v1::ActivationSpec,
    control::v1::*,
    identity::Role,
    limits,
    validate::{InvalidField, activation, bounded, count},
};

use super::Audited;
use crate::audit::app_env;

macro_rules! audited {
    ($request:ty, $method:literal, $role:ident, |$r:ident| $target:expr, |$b:ident| $bounds:expr) => {
        impl Audited for $request {
            const METHOD: &'static str = $method;
            const ROLE: Role = Role::$role;
            fn target(&self) -> String {
                let $r = self;
                $target
            }
            fn bounds(&self) -> Result<(), InvalidField> {
                let $b = self;
                $bounds
            }
        }
    };
}

fn app_bounds(app: Option<&App>) -> Result<(), InvalidField> {
    let Some(app) = app else { return Ok(()) };
    bounded("app.name", &app.name, limits::NAME)?;
    bounded("app.repository", &app.repository, limits::PATH)?;
    bounded("app.default_branch", &app.default_branch, limits::GIT_REF)?;
    bounded("app.deploy_root", &app.deploy_root, limits::PATH)?;
    let spec = app.activation.as_ref();
    spec.map_or(Ok(()), |s: &ActivationSpec| activation("app.activation", s))
}

fn environment_bounds(env: Option<&Environment>) -> Result<(), InvalidField> {
    let Some(env) = env else { return Ok(()) };
    bounded("environment.name", &env.name, limits::NAME)?;
    bounded(
        "environment.description",
        &env.description,
        limits::DESCRIPTION,
    )
}

fn host_bounds(host: Option<&Host>) -> Result<(), InvalidField> {
    let Some(host) = host else { return Ok(()) };
    bounded("host.name", &host.name, limits::HOST_NAME)?;
    bounded("host.address", &host.address, limits::URL)?;
    bounded("host.environment", &host.environment, limits::NAME)?;
    count("host.labels", host.labels.len(), limits::LABELS)?;
    for (key, value) in &host.labels {
        bounded("host.labels key", key, limits::LABEL_KEY)?;
        bounded("host.labels value", value, limits::LABEL_VALUE)?;
    }
    Ok(())
}

fn deploy_bounds(d: &DeployRequest) -> Result<(), InvalidField> {
    start_bounds(&d.app, &d.environment, &d.release_id, &d.message)?;
    bounded("git_ref", &d.git_ref, limits::GIT_REF)
}

fn start_bounds(app: &str, env: &str, release: &str, message: &str) -> Result<(), InvalidField> {
    bounded("app", app, limits::NAME)?;
    bounded("environment", env, limits::NAME)?;
    bounded("release_id", release, limits::RELEASE_ID)?;
    bounded("message", message, limits::MESSAGE)
}

audited!(
    CreateAppRequest,
    "AppService/CreateApp",
    Admin,
    |r| format!("app {}", r.app.as_ref().map_or("", |a| &a.name)),
    |r| app_bounds(r.app.as_ref())
);
audited!(
    UpdateAppRequest,
    "AppService/UpdateApp",
    Admin,
    |r| format!("app {}", r.app.as_ref().map_or("", |a| &a.name)),
    |r| app_bounds(r.app.as_ref())
);
audited!(
    CreateEnvironmentRequest,
    "EnvironmentService/CreateEnvironment",
    Admin,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    ),
    |r| environment_bounds(r.environment.as_ref())
);
audited!(
    UpdateEnvironmentRequest,
    "EnvironmentService/UpdateEnvironment",
    Admin,
    |r| format!(
        "environment {}",
        r.environment.as_ref().map_or("", |e| &e.name)
    ),
    |r| environment_bounds(r.environment.as_ref())
);
audited!(
    AddHostRequest,
    "HostService/AddHost",
    Admin,
    |r| r.host.as_ref().map_or_else(String::new, |h| format!(
        "host {}, environment {}, address {}",
        h.name, h.environment, h.address
    )),
    |r| host_bounds(r.host.as_ref())
);
audited!(
    RemoveHostRequest,
    "HostService/RemoveHost",
    Admin,
    |r| format!("host {}", r.name),
    |r| bounded("name", &r.name, limits::HOST_NAME)
);
audited!(
    CreateReleaseRequest,
    "ReleaseService/CreateRelease",
    Deployer,
    |r| format!("app {}, ref {}", r.app, r.git_ref),
    |r| {
        bounded("app", &r.app, limits::NAME)?;
        bounded("git_ref", &r.git_ref, limits::GIT_REF)
    }
);
audited!(
    MarkReleaseRequest,
    "ReleaseService/MarkRelease",
    Deployer,
    |r| format!("release {} of app {}", r.release_id, r.app),
    |r| start_bounds(&r.app, "", &r.release_id, &r.reason)
);
audited!(
    PinReleaseRequest,
    "ReleaseService/PinRelease",
    Deployer,
    |r| format!(
        "release {} of app {}, environment {}",
        r.id, r.app, r.environment
    ),
    |r| start_bounds(&r.app, &r.environment, &r.id, "")
);
// Audited: planning cuts the release when the ref has none yet.
audited!(
    PlanDeploymentRequest,
    "DeploymentService/PlanDeployment",
    Deployer,
    |r| r
        .deploy
        .as_ref()
        .map_or_else(String::new, |d| app_env(&d.app, &d.environment)),
    |r| r.deploy.as_ref().map_or(Ok(()), deploy_bounds)
);
audited!(
    CancelDeploymentRequest,
    "DeploymentService/CancelDeployment",
    Deployer,
    |r| format!("deployment {}", r.deployment_id),
    |r| {
        bounded("deployment_id", &r.deployment_id, limits::DEPLOYMENT_ID)?;
        bounded("reason", &r.reason, limits::MESSAGE)
    }
);
audited!(
    DeployRequest,
    "DeploymentService/Deploy",
    Deployer,
    |r| app_env(&r.app, &r.environment),
    |r| deploy_bounds(r)
);
audited!(
    RollbackRequest,
    "DeploymentService/Rollback",
    Deployer,
    |r| app_env(&r.app, &r.environment),
    |r| start_bounds(&r.app, &r.environment, &r.release_id, &r.message)
);
audited!(
    ReleaseLockRequest,
    "LockService/ReleaseLock",
    Admin,
    |r| app_env(&r.app, &r.environment),
    |r| start_bounds(&r.app, &r.environment, "", &r.reason)
);
