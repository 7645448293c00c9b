//! Secrets per (app, environment): set, listed (never with values) and
//! unset by operators, sealed at rest with the key of [`keys`], opened only
//! to ship them to the environment's agents at deploy time, and sealed
//! again with a new key at start when the key is rotated.

pub mod keys;

use std::sync::Arc;

use slipway_proto::{
    agent::v1::Secret,
    control::v1::{SecretInfo, SecretVersion},
    secrets::MAX_PER_ENVIRONMENT,
};

use self::keys::{Keyring, OpenError, Sealed};
use crate::{
    catalog,
    error::Error,
    store::{
        Store,
        secrets::{self as repo, StoredSecret},
    },
};

/// Records (tombstones included) per (app, environment) at most: names
/// once set and then unset count too.
pub const MAX_RECORDS: usize = 10 * MAX_PER_ENVIRONMENT;

/// The control plane's secrets key, if one is configured.
#[derive(Clone, Default)]
pub struct SecretKeys(Option<Arc<Keyring>>);

impl SecretKeys {
    /// The keys of `keyring`.
    pub fn new(keyring: Option<Keyring>) -> Self {
        Self(keyring.map(Arc::new))
    }

    /// The keyring, or the error that says how to configure one.
    pub fn keyring(&self) -> Result<&Keyring, Error> {
        self.0.as_deref().ok_or_else(|| {
            Error::Precondition(
                "no secrets key is configured on the control plane: write 32 random bytes to a \
                 file (`head -c 32 /dev/urandom > /etc/slipway/secrets.key; chmod 600 ...`) and \
                 set `secrets_key_file` to it (or SLIPWAY_SECRETS_KEY to their base64), then \
                 restart"
                    .to_owned(),
            )
        })
    }
}

/// What a deployment ships: the values for the agents and their versions
/// for the record.
#[derive(Clone, Default)]
pub struct Shipment {
    /// Name and value, by name.
    pub secrets: Vec<Secret>,
    /// Name and version, by name.
    pub versions: Vec<SecretVersion>,
}

impl std::fmt::Debug for Shipment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.versions).finish()
    }
}

/// What binds a ciphertext to its record.
fn binding(app: &str, environment: &str, name: &str, version: u64) -> Vec<u8> {
    format!("slipway-secret\0{app}\0{environment}\0{name}\0{version}").into_bytes()
}

fn info(s: &StoredSecret) -> SecretInfo {
    SecretInfo {
        name: s.name.clone(),
        version: s.version,
        set_by: s.set_by.clone(),
        set_at: Some(pbjson_types::Timestamp {
            seconds: s.set_at,
            nanos: 0,
        }),
        key_id: s.key_id.clone(),
    }
}

/// Sets `name` in (app, environment) to `value` (checked by the caller),
/// as its next version.
pub async fn set(
    store: &Store,
    keys: &SecretKeys,
    (app, environment): (&str, &str),
    name: &str,
    value: &str,
    by: String,
) -> Result<SecretInfo, Error> {
    let keyring = keys.keyring()?;
    catalog::app(store, app)?;
    catalog::environment(store, environment)?;
    let records = repo::all(store, app, environment)?;
    let was = records.iter().find(|s| s.name == name);
    let live = records.iter().filter(|s| !s.removed).count();
    if was.is_none_or(|s| s.removed) && live >= MAX_PER_ENVIRONMENT {
        return Err(Error::Precondition(format!(
            "{app} in {environment} has {live} secrets, the most allowed; unset one first"
        )));
    }
    if was.is_none() && records.len() >= MAX_RECORDS {
        return Err(Error::Precondition(format!(
            "{app} in {environment} has used {MAX_RECORDS} secret names, the most allowed"
        )));
    }
    let version = was.map_or(1, |s| s.version + 1);
    let sealed = keyring.seal(&binding(app, environment, name, version), value.as_bytes());
    let secret = StoredSecret {
        name: name.to_owned(),
        version,
        set_by: by,
        set_at: slipway_proto::now().seconds,
        key_id: sealed.key_id,
        nonce: hex::encode(sealed.nonce),
        ciphertext: hex::encode(sealed.ciphertext),
        removed: false,
    };
    store
        .commit(repo::replace(app, environment, was, &secret))
        .await
        .map_err(conflict)?;
    Ok(info(&secret))
}

/// The live secrets of (app, environment), by name, without values.
pub fn list(
    store: &Store,
    keys: &SecretKeys,
    app: &str,
    environment: &str,
) -> Result<Vec<SecretInfo>, Error> {
    keys.keyring()?;
    catalog::app(store, app)?;
    catalog::environment(store, environment)?;
    let records = repo::all(store, app, environment)?;
    Ok(records.iter().filter(|s| !s.removed).map(info).collect())
}

/// Unsets `name` in (app, environment); returns the version removed.
pub async fn unset(
    store: &Store,
    keys: &SecretKeys,
    (app, environment): (&str, &str),
    name: &str,
    by: String,
) -> Result<u64, Error> {
    keys.keyring()?;
    let was = repo::get(store, app, environment, name)?
        .filter(|s| !s.removed)
        .ok_or_else(|| Error::not_found("secret", format!("{app}/{environment}/{name}")))?;
    let tombstone = StoredSecret {
        name: name.to_owned(),
        version: was.version,
        set_by: by,
        set_at: slipway_proto::now().seconds,
        key_id: String::new(),
        nonce: String::new(),
        ciphertext: String::new(),
        removed: true,
    };
    store
        .commit(repo::replace(app, environment, Some(&was), &tombstone))
        .await
        .map_err(conflict)?;
    Ok(was.version)
}

fn conflict(err: crate::store::StoreError) -> Error {
    match err {
        crate::store::StoreError::Conflict { .. } => Error::Precondition(
            "the secret changed meanwhile (another set or unset); try again".to_owned(),
        ),
        other => other.into(),
    }
}

fn sealed(s: &StoredSecret) -> Sealed {
    Sealed {
        key_id: s.key_id.clone(),
        nonce: hex::decode(&s.nonce).unwrap_or_default(),
        ciphertext: hex::decode(&s.ciphertext).unwrap_or_default(),
    }
}

/// The secrets of (app, environment) opened for shipping; empty (and no
/// key needed) when it has none.
pub fn shipment(
    store: &Store,
    keys: &SecretKeys,
    app: &str,
    environment: &str,
) -> Result<Shipment, Error> {
    let records: Vec<StoredSecret> = repo::all(store, app, environment)?
        .into_iter()
        .filter(|s| !s.removed)
        .collect();
    if records.is_empty() {
        return Ok(Shipment::default());
    }
    let keyring = keys.keyring()?;
    let mut shipment = Shipment::default();
    for s in records {
        let opened = keyring
            .open(&binding(app, environment, &s.name, s.version), &sealed(&s))
            .map_err(|err| unopened(&s.name, &err))?;
        let value = String::from_utf8(opened.to_vec())
            .map_err(|_| Error::Precondition(format!("secret {} is not UTF-8", s.name)))?;
        shipment.versions.push(SecretVersion {
            name: s.name.clone(),
            version: s.version,
        });
        shipment.secrets.push(Secret {
            name: s.name,
            value,
        });
    }
    Ok(shipment)
}

fn unopened(name: &str, err: &OpenError) -> Error {
    Error::Precondition(format!("secret {name} cannot be opened: {err}"))
}

/// The secrets key could not be loaded, or what the previous key sealed
/// could not be sealed again with it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The key is unusable.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// Sealing again failed.
    #[error("cannot seal the secrets again with the current secrets key")]
    Rekey(#[source] Error),
}

/// The keys of the key files (`secrets_key_file` and the previous one), or
/// of the environment; what the previous key of a rotation sealed is
/// sealed again with the current key before anything else runs.
pub async fn start(
    store: &Store,
    config: &crate::config::Config,
) -> Result<SecretKeys, StartError> {
    let (file, previous) = (&config.secrets_key_file, &config.secrets_previous_key_file);
    let keys = SecretKeys::new(Keyring::load(file.as_deref(), previous.as_deref())?);
    let resealed = rekey(store, &keys).await.map_err(StartError::Rekey)?;
    if resealed > 0 {
        tracing::info!(
            resealed,
            "secrets sealed again with the current secrets key"
        );
    }
    Ok(keys)
}

/// Seals again with the current key every secret sealed with another
/// (the previous key of a rotation); returns how many. Run at start.
pub async fn rekey(store: &Store, keys: &SecretKeys) -> Result<usize, Error> {
    let Ok(keyring) = keys.keyring() else {
        return Ok(0);
    };
    let mut count = 0;
    for (app, environment, s) in repo::everything(store)? {
        if s.removed || s.key_id == keyring.current_id() {
            continue;
        }
        let bound = binding(&app, &environment, &s.name, s.version);
        let opened = keyring
            .open(&bound, &sealed(&s))
            .map_err(|err| unopened(&s.name, &err))?;
        let resealed = keyring.seal(&bound, &opened);
        let new = StoredSecret {
            key_id: resealed.key_id,
            nonce: hex::encode(resealed.nonce),
            ciphertext: hex::encode(resealed.ciphertext),
            ..s.clone()
        };
        store
            .commit(repo::replace(&app, &environment, Some(&s), &new))
            .await?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests;
