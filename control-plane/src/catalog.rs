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
    store::{Op, Store, StoreError, Tree, encode_proto},
};

fn create_op(tree: Tree, name: &str, msg: &impl prost::Message) -> Op {
    Op::Create(tree, name.as_bytes().to_vec(), encode_proto(msg))
}

async fn create(store: &Store, op: Op, what: &'static str, name: &str) -> Result<(), Error> {
    store.commit(vec![op]).await.map_err(|err| match err {
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
    create(
        store,
        create_op(Tree::Apps, &app.name, &app),
        "app",
        &app.name,
    )
    .await?;
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
    store
        .commit(vec![Op::Put(
            Tree::Apps,
            app.name.clone().into_bytes(),
            encode_proto(&app),
        )])
        .await?;
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
    store
        .get(Tree::Apps, name.as_bytes())?
        .ok_or_else(|| Error::not_found("app", name))
}

/// Every app by name.
pub fn apps(store: &Store) -> Result<Vec<App>, Error> {
    Ok(store.list(Tree::Apps, b"")?)
}

/// Registers an environment.
pub async fn create_environment(
    store: &Store,
    EnvironmentSpec(mut env): EnvironmentSpec,
) -> Result<Environment, Error> {
    env.created_at = Some(slipway_proto::now());
    create(
        store,
        create_op(Tree::Environments, &env.name, &env),
        "environment",
        &env.name,
    )
    .await?;
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
        ..current
    };
    store
        .commit(vec![crate::store::Op::Put(
            Tree::Environments,
            updated.name.clone().into_bytes(),
            crate::store::encode_proto(&updated),
        )])
        .await?;
    Ok(updated)
}

/// One environment.
pub fn environment(store: &Store, name: &str) -> Result<Environment, Error> {
    validate::name("name", name)?;
    store
        .get(Tree::Environments, name.as_bytes())?
        .ok_or_else(|| Error::not_found("environment", name))
}

/// Every environment by name.
pub fn environments(store: &Store) -> Result<Vec<Environment>, Error> {
    Ok(store.list(Tree::Environments, b"")?)
}

/// Registers a host in an existing environment.
pub async fn add_host(store: &Store, HostSpec(mut host): HostSpec) -> Result<Host, Error> {
    environment(store, &host.environment)?;
    host.created_at = Some(slipway_proto::now());
    create(
        store,
        create_op(Tree::Hosts, &host.name, &host),
        "host",
        &host.name,
    )
    .await?;
    Ok(host)
}

/// Unregisters a host and, in the same write, revokes every certificate
/// of its agent issued up to now.
pub async fn remove_host(store: &Store, name: &str) -> Result<Host, Error> {
    let host = self::host(store, name)?;
    store
        .commit(vec![
            Op::Delete(Tree::Hosts, name.as_bytes().to_vec()),
            crate::store::revocations::host_removed(name),
        ])
        .await?;
    Ok(host)
}

/// One host.
pub fn host(store: &Store, name: &str) -> Result<Host, Error> {
    validate::host_name("name", name)?;
    store
        .get(Tree::Hosts, name.as_bytes())?
        .ok_or_else(|| Error::not_found("host", name))
}

/// Hosts by name, of one environment when `environment` is not empty.
pub fn hosts(store: &Store, environment: &str) -> Result<Vec<Host>, Error> {
    if !environment.is_empty() {
        self::environment(store, environment)?;
    }
    let hosts: Vec<Host> = store.list(Tree::Hosts, b"")?;
    Ok(hosts
        .into_iter()
        .filter(|h| environment.is_empty() || h.environment == environment)
        .collect())
}
