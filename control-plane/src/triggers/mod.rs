//! Triggers: what starts a deployment without an operator at the keyboard.
//! An app's webhook (its secret, made here and shown once) lets a git server
//! or a CI job announce a push; each environment that auto-deploys the
//! pushed branch gets a deployment of the pushed commit, recorded as
//! `webhook/<app>` ([`webhook`]).

pub mod push;
pub mod sender;
pub mod webhook;

use slipway_proto::{
    control::v1::{AutoDeploy, Triggers, WebhookDelivery},
    limits, validate,
};

use crate::{
    catalog,
    error::Error,
    notify::random_hex,
    store::{self, Store},
};

/// Deliveries a listing returns.
const LISTED_DELIVERIES: usize = 20;

/// Bytes of randomness in a webhook secret (shown as twice as many hex
/// digits).
const SECRET_BYTES: usize = 32;

/// The triggers of `app` as kept, or the defaults of an app that has none.
fn current(store: &Store, app: &str) -> Result<Triggers, Error> {
    catalog::app(store, app)?;
    Ok(
        store::triggers::get(store, app)?.unwrap_or_else(|| Triggers {
            app: app.to_owned(),
            webhook_path: format!("/hooks/{app}"),
            ..Triggers::default()
        }),
    )
}

/// The triggers of `app` and its latest deliveries, newest first.
pub fn get(store: &Store, app: &str) -> Result<(Triggers, Vec<WebhookDelivery>), Error> {
    let triggers = current(store, app)?;
    let mut deliveries = store::triggers::deliveries(store, app)?;
    deliveries.truncate(LISTED_DELIVERIES);
    Ok((triggers, deliveries))
}

/// Makes a new webhook secret for `app` (the old one stops working);
/// returns the triggers and the secret, which is not kept anywhere it can
/// be read back from through the API.
pub async fn rotate_secret(store: &Store, app: &str) -> Result<(Triggers, String), Error> {
    let mut triggers = current(store, app)?;
    let secret = random_hex(SECRET_BYTES);
    triggers.webhook_enabled = true;
    triggers.secret_created_at = Some(slipway_proto::now());
    store
        .commit(vec![
            store::triggers::put(&triggers),
            store::triggers::set_secret(app, secret.as_bytes()),
        ])
        .await?;
    Ok((triggers, secret))
}

/// Turns `app`'s webhook off and forgets its secret.
pub async fn disable(store: &Store, app: &str) -> Result<Triggers, Error> {
    let mut triggers = current(store, app)?;
    triggers.webhook_enabled = false;
    triggers.secret_created_at = None;
    store
        .commit(vec![
            store::triggers::put(&triggers),
            store::triggers::forget_secret(app),
        ])
        .await?;
    Ok(triggers)
}

/// Sets the branch `environment` auto-deploys for `app`; an empty branch
/// stops it.
pub async fn set_auto_deploy(
    store: &Store,
    app: &str,
    environment: &str,
    branch: &str,
) -> Result<Triggers, Error> {
    let mut triggers = current(store, app)?;
    catalog::environment(store, environment)?;
    if !branch.is_empty() {
        validate::bounded("branch", branch, limits::GIT_REF)?;
        let full = format!("refs/heads/{branch}");
        if !git2::Reference::is_valid_name(&full) {
            return Err(validate::InvalidField::new("branch", "is not a valid branch name").into());
        }
    }
    triggers
        .auto_deploy
        .retain(|a| a.environment != environment);
    if !branch.is_empty() {
        triggers.auto_deploy.push(AutoDeploy {
            environment: environment.to_owned(),
            branch: branch.to_owned(),
        });
        triggers
            .auto_deploy
            .sort_by(|a, b| a.environment.cmp(&b.environment));
    }
    store.commit(vec![store::triggers::put(&triggers)]).await?;
    Ok(triggers)
}
