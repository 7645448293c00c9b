//! The tokens of one-time login links: `<id>.<expiry>.<mac>`, where the id
//! is 16 random bytes (hex), the expiry is in Unix seconds, and the mac is
//! the hex HMAC-SHA256 of `<id>.<expiry>` keyed by the control plane's link
//! key (generated at first use and kept in the store). A token whose mac
//! does not match is refused before the store is asked; one past its expiry
//! is refused even if its record is still there.

use ring::hmac;

use crate::store::{Store, StoreError, dashboard};

/// Length of a link key in bytes.
const KEY_LEN: usize = 32;

/// Why a token is refused before its record is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not of the link format, or its signature does not match.
    Tampered,
    /// Its expiry has passed.
    Expired,
}

fn mac(key: &[u8], id: &str, expires_unix: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&key, format!("{id}.{expires_unix}").as_bytes()).as_ref())
}

/// A new token valid until `expires_unix`, signed with `key`.
pub fn sign(key: &[u8], expires_unix: u64) -> String {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let mac = mac(key, &id, expires_unix);
    format!("{id}.{expires_unix}.{mac}")
}

/// Checks `token`'s signature with `key`, then its expiry against `now`.
pub fn verify(key: &[u8], token: &str, now: u64) -> Result<(), Fault> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expiry), Some(presented)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Fault::Tampered);
    };
    let expires_unix: u64 = expiry.parse().map_err(|_| Fault::Tampered)?;
    let presented = hex::decode(presented).map_err(|_| Fault::Tampered)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    // ring compares in constant time.
    hmac::verify(&key, format!("{id}.{expires_unix}").as_bytes(), &presented)
        .map_err(|_| Fault::Tampered)?;
    if expires_unix <= now {
        return Err(Fault::Expired);
    }
    Ok(())
}

/// The link key, generated and stored at first use.
pub async fn key(store: &Store) -> Result<Vec<u8>, StoreError> {
    dashboard::link_key(store, || rand::random::<[u8; KEY_LEN]>().to_vec()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(KEY, 1_000);
        assert_eq!(verify(KEY, &token, 999), Ok(()));
        assert_eq!(verify(KEY, &token, 1_000), Err(Fault::Expired));
        assert_eq!(verify(KEY, &token, 5_000), Err(Fault::Expired));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = sign(KEY, 1_000);
        let (id, rest) = token.split_once('.').unwrap();
        let (_, mac) = rest.split_once('.').unwrap();
        // A later expiry with the old signature.
        let extended = format!("{id}.99999.{mac}");
        assert_eq!(verify(KEY, &extended, 10), Err(Fault::Tampered));
        // Another id with the old signature.
        let other = format!("{}.1000.{mac}", "0".repeat(32));
        assert_eq!(verify(KEY, &other, 10), Err(Fault::Tampered));
        // One flipped hex digit of the signature.
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(verify(KEY, &flipped, 10), Err(Fault::Tampered));
        // Another key; not the format at all.
        assert_eq!(verify(b"other key", &token, 10), Err(Fault::Tampered));
        for junk in ["", "abc", "a.b.c", "a.1.zz", "a.-1.00"] {
            assert_eq!(verify(KEY, junk, 10), Err(Fault::Tampered), "{junk}");
        }
    }

    #[tokio::test]
    async fn the_key_is_generated_once_and_kept() {
        let (_dir, store) = scratch();
        let first = key(&store).await.unwrap();
        assert_eq!(first.len(), KEY_LEN);
        assert_eq!(key(&store).await.unwrap(), first);
    }
}
