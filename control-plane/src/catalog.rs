//! Apps, environments and hosts: validated, then recorded.

use slipway_proto::{
    control::v1::{App, Environment, Host, SourceCredentials},
    validate::{self, InvalidField},
};

use crate::{
    domain::catalog::{AppSpec, EnvironmentSpec, HostSpec},
    error::Error,
    git,
    sources::{Credentials, Sources},
    store::{
        Store, StoreError,
        catalog::{self as records, Named},
        revocations,
    },
};

/// Records a new `record`; one of the same kind and name is AlreadyExists.
async fn create(store: &Store, what: &'static str, record: &impl Named) -> Result<(), Error> {
    let name = record.name();
    store
        .commit(vec![records::create(record)])
        .await
        .map_err(|err| match err {
            StoreError::Exists { .. } => Error::AlreadyExists {
                what,
                name: name.to_owned(),
            },
            err => err.into(),
        })
}

/// Registers an app after checking its repository (a trusted local one
/// opens; a remote one is fetched later). Credentials are held apart from
/// the record, which never carries them.
pub async fn create_app(
    store: &Store,
    sources: &Sources,
    AppSpec(mut app): AppSpec,
) -> Result<App, Error> {
    let credentials = app.credentials.take();
    check_repository(sources, &app).await?;
    app.created_at = Some(slipway_proto::now());
    create(store, "app", &app).await?;
    // A name used before starts afresh: no mirror, credentials or fetch.
    sources.vault().forget(&app.name).map_err(vault_failed)?;
    hold_credentials(sources, &app.name, credentials)?;
    Ok(app)
}

/// Replaces an app's settings, keeping its creation time. Credentials not
/// given are kept, unless the repository changes: they are never sent to
/// another server than the one they were given for.
pub async fn update_app(
    store: &Store,
    sources: &Sources,
    AppSpec(mut app): AppSpec,
) -> Result<App, Error> {
    let credentials = app.credentials.take();
    let existing = self::app(store, &app.name)?;
    check_repository(sources, &app).await?;
    app.created_at = existing.created_at;
    store.commit(vec![records::put(&app)]).await?;
    if existing.repository != app.repository {
        sources
            .vault()
            .forget_remote(&app.name)
            .map_err(vault_failed)?;
    }
    hold_credentials(sources, &app.name, credentials)?;
    Ok(app)
}

/// Holds, forgets or keeps (None) the https credentials of `app`.
fn hold_credentials(
    sources: &Sources,
    app: &str,
    credentials: Option<SourceCredentials>,
) -> Result<(), Error> {
    let Some(c) = credentials else {
        return Ok(());
    };
    let held = if c.clear {
        None
    } else if c.token.is_empty() {
        Some(Credentials {
            username: c.username,
            password: c.password,
        })
    } else {
        Some(Credentials {
            username: if c.username.is_empty() {
                "x-token".into()
            } else {
                c.username
            },
            password: c.token,
        })
    };
    sources
        .vault()
        .set_credentials(app, held.as_ref())
        .map_err(vault_failed)
}

fn vault_failed(err: crate::sources::vault::VaultError) -> Error {
    tracing::error!(error = %slipway_proto::daemon::chain(&err), "the sources vault failed");
    Error::Precondition("the control plane could not record the app's source settings".into())
}

/// A local repository is under a trusted directory and opens; a remote
/// one is well formed (credentials only for https).
async fn check_repository(sources: &Sources, app: &App) -> Result<(), Error> {
    let location = sources
        .check(&app.repository)
        .map_err(|e| InvalidField::new("app.repository", e.to_string()))?;
    if location.is_remote() {
        return Ok(());
    }
    let source = app.repository.clone();
    tokio::task::spawn_blocking(move || git::open(&source).map(drop))
        .await
        .map_err(|_| Error::Precondition("checking the repository failed".into()))?
        .map_err(|e| InvalidField::new("app.repository", e.to_string()))?;
    Ok(())
}

/// One app.
pub fn app(store: &Store, name: &str) -> Result<App, Error> {
    validate::name("name", name)?;
    records::get(store, name)?.ok_or_else(|| Error::not_found("app", name))
}

/// Every app by name.
pub fn apps(store: &Store) -> Result<Vec<App>, Error> {
    Ok(records::list(store)?)
}

/// Registers an environment.
pub async fn create_environment(
    store: &Store,
    EnvironmentSpec(mut env): EnvironmentSpec,
) -> Result<Environment, Error> {
    env.created_at = Some(slipway_proto::now());
    create(store, "environment", &env).await?;
    Ok(env)
}

/// Replaces an environment's description and rollout policy.
pub async fn update_environment(
    store: &Store,
    EnvironmentSpec(env): EnvironmentSpec,
) -> Result<Environment, Error> {
    let current = environment(store, &env.name)?;
    let updated = Environment {
        description: env.description,
        rollout_policy: env.rollout_policy,
        gates: env.gates,
        ..current
    };
    store.commit(vec![records::put(&updated)]).await?;
    Ok(updated)
}

/// One environment.
pub fn environment(store: &Store, name: &str) -> Result<Environment, Error> {
    validate::name("name", name)?;
    records::get(store, name)?.ok_or_else(|| Error::not_found("environment", name))
}

/// Every environment by name.
pub fn environments(store: &Store) -> Result<Vec<Environment>, Error> {
    Ok(records::list(store)?)
}

/// Registers a host in an existing environment.
pub async fn add_host(store: &Store, HostSpec(mut host): HostSpec) -> Result<Host, Error> {
    environment(store, &host.environment)?;
    host.created_at = Some(slipway_proto::now());
    create(store, "host", &host).await?;
    Ok(host)
}

/// Unregisters a host and, in the same write, revokes every certificate
/// of its agent issued up to now.
pub async fn remove_host(store: &Store, name: &str) -> Result<Host, Error> {
    let host = self::host(store, name)?;
    store
        .commit(vec![
            records::remove::<Host>(name),
            revocations::host_removed(name),
        ])
        .await?;
    Ok(host)
}

/// One host.
pub fn host(store: &Store, name: &str) -> Result<Host, Error> {
    validate::host_name("name", name)?;
    records::get(store, name)?.ok_or_else(|| Error::not_found("host", name))
}

/// Hosts by name, of one environment when `environment` is not empty.
pub fn hosts(store: &Store, environment: &str) -> Result<Vec<Host>, Error> {
    if !environment.is_empty() {
        self::environment(store, environment)?;
    }
    let hosts: Vec<Host> = records::list(store)?;
    Ok(hosts
        .into_iter()
        .filter(|h| environment.is_empty() || h.environment == environment)
        .collect())
}
