//! Apps, environments and hosts: validated, then recorded.

use slipway_proto::{
    control::v1::{App, Environment, Host},
    validate::{self, InvalidField},
};

use crate::{
    domain::catalog::{AppSpec, EnvironmentSpec, HostSpec},
    error::Error,
    git,
    sources::SourceRoots,
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

/// Registers an app after checking its repository is trusted and opens.
pub async fn create_app(
    store: &Store,
    sources: &SourceRoots,
    AppSpec(mut app): AppSpec,
) -> Result<App, Error> {
    check_repository(sources, &app).await?;
    app.created_at = Some(slipway_proto::now());
    create(store, "app", &app).await?;
    Ok(app)
}

/// Replaces an app's settings, keeping its creation time.
pub async fn update_app(
    store: &Store,
    sources: &SourceRoots,
    AppSpec(mut app): AppSpec,
) -> Result<App, Error> {
    let existing = self::app(store, &app.name)?;
    check_repository(sources, &app).await?;
    app.created_at = existing.created_at;
    store.commit(vec![records::put(&app)]).await?;
    Ok(app)
}

/// The repository is under a trusted directory and opens.
async fn check_repository(sources: &SourceRoots, app: &App) -> Result<(), Error> {
    sources
        .check(&app.repository)
        .map_err(|e| InvalidField::new("app.repository", e.to_string()))?;
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
