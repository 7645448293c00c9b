//! Apps, environments and hosts as an operator asks for them, converted
//! from the wire with `TryFrom` and checked (names, enums, bounded strings)
//! before anything is recorded. What needs the store or the filesystem (the
//! environment exists, the repository is trusted and opens) is checked by
//! [`crate::catalog`].

use crate::sources::{Location, Transport};
use slipway_proto::{
    control::v1::{
        AddHostRequest, App, CreateAppRequest, CreateEnvironmentRequest, Environment, Host,
        SourceCredentials, UpdateAppRequest, UpdateEnvironmentRequest,
    },
    limits,
    tls::https_uri,
    validate::{self, InvalidField, bounded, count},
};

/// An app's settings, checked.
#[derive(Clone, Debug)]
pub struct AppSpec(pub App);

/// An environment's settings, checked.
#[derive(Clone, Debug)]
pub struct EnvironmentSpec(pub Environment);

/// A host to register, checked.
#[derive(Clone, Debug)]
pub struct HostSpec(pub Host);

fn missing(field: &str) -> InvalidField {
    InvalidField::new(field, "missing")
}

impl TryFrom<App> for AppSpec {
    type Error = InvalidField;

    fn try_from(app: App) -> Result<Self, InvalidField> {
        validate::name("app.name", &app.name)?;
        bounded("app.repository", &app.repository, limits::PATH)?;
        bounded("app.default_branch", &app.default_branch, limits::GIT_REF)?;
        if !app.deploy_root.is_empty() {
            validate::absolute_path("app.deploy_root", &app.deploy_root)?;
        }
        if let Some(spec) = &app.activation {
            slipway_proto::secrets::spec("app.activation", spec)?;
        }
        if let Some(credentials) = &app.credentials {
            check_credentials(&app.repository, credentials)?;
        }
        crate::sources::tags::check_pattern(&app.release_tag_pattern)
            .map_err(|e| InvalidField::new("app.release_tag_pattern", e))?;
        if let Some(build) = &app.build {
            crate::sources::build::check("app.build", build)?;
        }
        Ok(Self(app))
    }
}

/// Credentials are for an https repository: a token, or a user name with a
/// password, or a clear alone; each within its bound. Messages never quote
/// a value.
fn check_credentials(repository: &str, c: &SourceCredentials) -> Result<(), InvalidField> {
    let field = "app.credentials";
    bounded("app.credentials.username", &c.username, MAX_USERNAME)?;
    for (value, what) in [(&c.password, "password"), (&c.token, "token")] {
        if value.len() > MAX_SECRET {
            return Err(InvalidField::new(
                field,
                format!("the {what} is longer than {MAX_SECRET} bytes"),
            ));
        }
    }
    let given = !c.username.is_empty() || !c.password.is_empty() || !c.token.is_empty();
    if c.clear {
        return if given {
            Err(InvalidField::new(field, "clear goes alone, without values"))
        } else {
            Ok(())
        };
    }
    if !matches!(
        Location::parse(repository),
        Ok(Location::Remote {
            transport: Transport::Https,
            ..
        })
    ) {
        return Err(InvalidField::new(
            field,
            "credentials are for https:// repositories (ssh uses a deploy key; git:// and local paths take none)",
        ));
    }
    match (
        c.token.is_empty(),
        c.password.is_empty(),
        c.username.is_empty(),
    ) {
        (false, false, _) => Err(InvalidField::new(
            field,
            "give a token or a password, not both",
        )),
        (true, true, _) => Err(InvalidField::new(
            field,
            "give a token, or a user name and a password",
        )),
        (true, false, true) => Err(InvalidField::new(field, "a password needs a user name")),
        _ => Ok(()),
    }
}

/// Longest user name held.
const MAX_USERNAME: usize = 256;
/// Longest password or token held.
const MAX_SECRET: usize = 4096;

impl TryFrom<CreateAppRequest> for AppSpec {
    type Error = InvalidField;

    fn try_from(req: CreateAppRequest) -> Result<Self, InvalidField> {
        req.app.ok_or_else(|| missing("app"))?.try_into()
    }
}

impl TryFrom<UpdateAppRequest> for AppSpec {
    type Error = InvalidField;

    fn try_from(req: UpdateAppRequest) -> Result<Self, InvalidField> {
        req.app.ok_or_else(|| missing("app"))?.try_into()
    }
}

impl TryFrom<Environment> for EnvironmentSpec {
    type Error = InvalidField;

    fn try_from(env: Environment) -> Result<Self, InvalidField> {
        validate::name("environment.name", &env.name)?;
        bounded(
            "environment.description",
            &env.description,
            limits::live().description_bytes,
        )?;
        if let Some(policy) = &env.rollout_policy {
            crate::policy::validate("environment.rollout_policy", policy)?;
        }
        let gates = env.gates.clone().unwrap_or_default();
        if gates.approvals_required > crate::deployment::MAX_REQUIRED {
            return Err(InvalidField::new(
                "environment.gates.approvals_required",
                format!("must be at most {}", crate::deployment::MAX_REQUIRED),
            ));
        }
        if gates.approval_expiry_seconds > crate::deployment::MAX_EXPIRY_SECONDS {
            return Err(InvalidField::new(
                "environment.gates.approval_expiry_seconds",
                format!(
                    "must be at most {} (30 days)",
                    crate::deployment::MAX_EXPIRY_SECONDS
                ),
            ));
        }
        crate::windows::validate(&gates)?;
        Ok(Self(env))
    }
}

impl TryFrom<CreateEnvironmentRequest> for EnvironmentSpec {
    type Error = InvalidField;

    fn try_from(req: CreateEnvironmentRequest) -> Result<Self, InvalidField> {
        req.environment
            .ok_or_else(|| missing("environment"))?
            .try_into()
    }
}

impl TryFrom<UpdateEnvironmentRequest> for EnvironmentSpec {
    type Error = InvalidField;

    fn try_from(req: UpdateEnvironmentRequest) -> Result<Self, InvalidField> {
        req.environment
            .ok_or_else(|| missing("environment"))?
            .try_into()
    }
}

impl TryFrom<Host> for HostSpec {
    type Error = InvalidField;

    fn try_from(host: Host) -> Result<Self, InvalidField> {
        validate::host_name("host.name", &host.name)?;
        bounded("host.address", &host.address, limits::URL)?;
        https_uri(&host.address).map_err(|e| InvalidField::new("host.address", e.to_string()))?;
        validate::name("host.environment", &host.environment)?;
        count("host.labels", host.labels.len(), limits::LABELS)?;
        for (key, value) in &host.labels {
            bounded("host.labels key", key, limits::LABEL_KEY)?;
            bounded("host.labels value", value, limits::LABEL_VALUE)?;
        }
        Ok(Self(host))
    }
}

/// A host to add, and whether to issue it a join token.
#[derive(Debug)]
pub struct NewHost {
    /// The host.
    pub host: HostSpec,
    /// Issue a one-time join token for its agent's enrollment.
    pub enroll: bool,
}

impl TryFrom<AddHostRequest> for NewHost {
    type Error = InvalidField;

    fn try_from(req: AddHostRequest) -> Result<Self, InvalidField> {
        Ok(Self {
            host: req.host.ok_or_else(|| missing("host"))?.try_into()?,
            enroll: req.enroll,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: std::fmt::Debug>(result: Result<T, InvalidField>) -> String {
        result.expect_err("refused").field
    }

    #[test]
    fn credentials_are_for_https_alone_and_never_quoted_back() {
        let app = |repository: &str, c: SourceCredentials| App {
            name: "web".into(),
            repository: repository.into(),
            credentials: Some(c),
            ..Default::default()
        };
        let token = |t: &str| SourceCredentials {
            token: t.into(),
            ..Default::default()
        };
        assert!(AppSpec::try_from(app("https://git.example.com/web.git", token("s3cret"))).is_ok());
        for (repository, credentials) in [
            ("git://git.example.com/web.git", token("s3cret")),
            ("git@git.example.com:web.git", token("s3cret")),
            ("/srv/git/web.git", token("s3cret")),
            (
                "https://git.example.com/web.git",
                SourceCredentials::default(),
            ),
            (
                "https://git.example.com/web.git",
                SourceCredentials {
                    password: "s3cret".into(),
                    ..Default::default()
                },
            ),
            (
                "https://git.example.com/web.git",
                SourceCredentials {
                    clear: true,
                    ..token("s3cret")
                },
            ),
            ("https://git.example.com/web.git", token(&"s".repeat(5000))),
        ] {
            let err = AppSpec::try_from(app(repository, credentials)).expect_err("refused");
            assert_eq!(err.field, "app.credentials", "{repository}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        let clear = SourceCredentials {
            clear: true,
            ..Default::default()
        };
        assert!(AppSpec::try_from(app("git://x/web.git", clear)).is_ok());
        let bad_pattern = App {
            name: "web".into(),
            release_tag_pattern: "%Q".into(),
            ..Default::default()
        };
        assert_eq!(
            field(AppSpec::try_from(bad_pattern)),
            "app.release_tag_pattern"
        );
    }

    #[test]
    fn requests_become_checked_specs_or_name_the_bad_field() {
        assert_eq!(
            field(AppSpec::try_from(CreateAppRequest { app: None })),
            "app"
        );
        let app = |name: &str, repository: String| App {
            name: name.into(),
            repository,
            ..Default::default()
        };
        assert!(AppSpec::try_from(app("web", "/srv/git/web".into())).is_ok());
        assert_eq!(
            field(AppSpec::try_from(app(&"w".repeat(64), String::new()))),
            "app.name"
        );
        let long_repo = app("web", format!("/{}", "r".repeat(limits::PATH)));
        assert_eq!(field(AppSpec::try_from(long_repo)), "app.repository");

        let env = Environment {
            name: "prod".into(),
            description: "d".repeat(limits::DESCRIPTION + 1),
            ..Default::default()
        };
        assert_eq!(
            field(EnvironmentSpec::try_from(env)),
            "environment.description"
        );

        let mut host = Host {
            name: "web-1".into(),
            address: "10.0.0.1:7444".into(),
            environment: "prod".into(),
            ..Default::default()
        };
        assert!(HostSpec::try_from(host.clone()).is_ok());
        host.labels = (0..=limits::LABELS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(field(HostSpec::try_from(host)), "host.labels");
    }
}
