//! Secrets over a real sled store: versions per name (an unset keeps its
//! number), the bound per environment, no value in the store's files, a
//! missing key named in the error, and a rotation that seals every secret
//! again with the new key.

use slipway_proto::control::v1::{App, Environment};

use super::{keys::Key, *};
use crate::store::{self, tests::scratch};

const CANARY: &str = "canary-91b2e7";

fn keys(byte: u8, previous: Option<u8>) -> SecretKeys {
    let key = |b: u8| Key::from_bytes(&[b; 32], "test").unwrap();
    SecretKeys::new(Some(Keyring::new(key(byte), previous.map(key))))
}

async fn seeded() -> (tempfile::TempDir, Store) {
    let (dir, store) = scratch();
    let app = App {
        name: "web".into(),
        ..Default::default()
    };
    let env = Environment {
        name: "prod".into(),
        ..Default::default()
    };
    let ops = vec![store::catalog::put(&app), store::catalog::put(&env)];
    store.commit(ops).await.unwrap();
    (dir, store)
}

fn grep(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(grep(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn versions_grow_per_name_and_values_stay_sealed() {
    let (dir, store) = seeded().await;
    let keys = keys(1, None);
    let target = ("web", "prod");
    let set = |v: &'static str| set(&store, &keys, target, "API_TOKEN", v, "alice".into());
    assert_eq!(set(CANARY).await.unwrap().version, 1);
    assert_eq!(set(CANARY).await.unwrap().version, 2);
    let listed = list(&store, &keys, "web", "prod").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].version, listed[0].set_by.as_str()), (2, "alice"));
    assert_eq!(
        unset(&store, &keys, target, "API_TOKEN", "bob".into())
            .await
            .unwrap(),
        2
    );
    assert!(list(&store, &keys, "web", "prod").unwrap().is_empty());
    assert!(
        shipment(&store, &keys, "web", "prod")
            .unwrap()
            .secrets
            .is_empty()
    );
    let again = unset(&store, &keys, target, "API_TOKEN", "bob".into()).await;
    assert!(matches!(again, Err(Error::NotFound { .. })));
    assert_eq!(set(CANARY).await.unwrap().version, 3);
    let shipped = shipment(&store, &keys, "web", "prod").unwrap();
    assert_eq!(shipped.secrets[0].value, CANARY);
    assert_eq!(shipped.versions[0].version, 3);
    assert!(!format!("{shipped:?}").contains(CANARY));
    // Unknown app or environment.
    let other = super::set(&store, &keys, ("api", "prod"), "K", "v", "a".into()).await;
    assert!(matches!(other, Err(Error::NotFound { .. })));
    drop(store);
    assert!(
        grep(dir.path(), CANARY).is_empty(),
        "the value is in the store's files"
    );
}

#[tokio::test]
async fn an_environment_holds_a_bounded_number() {
    let (_dir, store) = seeded().await;
    let keys = keys(1, None);
    for i in 0..MAX_PER_ENVIRONMENT {
        set(
            &store,
            &keys,
            ("web", "prod"),
            &format!("S{i}"),
            "v",
            "a".into(),
        )
        .await
        .unwrap();
    }
    let over = set(&store, &keys, ("web", "prod"), "ONE_MORE", "v", "a".into()).await;
    assert!(matches!(over, Err(Error::Precondition(_))), "{over:?}");
    // A new version of one that is there is fine.
    set(&store, &keys, ("web", "prod"), "S0", "v", "a".into())
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_key_every_call_says_how_to_configure_one() {
    let (_dir, store) = seeded().await;
    let none = SecretKeys::default();
    let err = set(&store, &none, ("web", "prod"), "K", "v", "a".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Precondition(m) if m.contains("secrets_key_file")),
        "{err}"
    );
    assert!(list(&store, &none, "web", "prod").is_err());
    // An environment without secrets ships nothing and needs no key.
    assert!(
        shipment(&store, &none, "web", "prod")
            .unwrap()
            .secrets
            .is_empty()
    );
}

#[tokio::test]
async fn a_rotation_seals_everything_again_with_the_new_key() {
    let (_dir, store) = seeded().await;
    let old = keys(1, None);
    set(&store, &old, ("web", "prod"), "A", CANARY, "a".into())
        .await
        .unwrap();
    // Only the new key: the old value cannot be opened, and says why.
    let new_only = keys(2, None);
    let err = shipment(&store, &new_only, "web", "prod").unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");
    let rotating = keys(2, Some(1));
    assert_eq!(rekey(&store, &rotating).await.unwrap(), 1);
    assert_eq!(rekey(&store, &rotating).await.unwrap(), 0);
    let shipped = shipment(&store, &new_only, "web", "prod").unwrap();
    assert_eq!(shipped.secrets[0].value, CANARY);
    let listed = list(&store, &new_only, "web", "prod").unwrap();
    assert_eq!(listed[0].key_id, new_only.keyring().unwrap().current_id());
}
