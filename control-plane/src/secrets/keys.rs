//! The key that encrypts secrets at rest, kept outside the store: a file of
//! 32 random bytes (`secrets_key_file`) or `SLIPWAY_SECRETS_KEY` (base64),
//! plus, while a key is rotated, the previous one. Each ciphertext records
//! the id of its key (the first 8 bytes of the key's SHA-256, in hex), so
//! values sealed with the previous key still open and can be sealed again
//! with the current one. ChaCha20-Poly1305 (ring) with a random 96-bit
//! nonce; the associated data binds a ciphertext to its app, environment,
//! name and version, so a value moved to another record does not open.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The environment variable holding the key (base64 of 32 bytes).
pub const KEY_ENV: &str = "SLIPWAY_SECRETS_KEY";
/// The environment variable holding the previous key during a rotation.
pub const PREVIOUS_KEY_ENV: &str = "SLIPWAY_SECRETS_PREVIOUS_KEY";
/// Bytes of a key.
pub const KEY_BYTES: usize = 32;

/// A key could not be loaded; the message never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read the secrets key file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is not 32 bytes.
    #[error(
        "{from} must hold exactly {KEY_BYTES} bytes (make one with `head -c 32 /dev/urandom > FILE`, or base64 of 32 bytes in {KEY_ENV})"
    )]
    Length {
        /// Where it came from.
        from: String,
    },
    /// The key file can be read by others.
    #[error("the secrets key file {} is readable by group or others (mode {mode:o}); chmod 600 it", path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// One key and its id.
pub struct Key {
    id: String,
    key: LessSafeKey,
}

impl Key {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8], from: &str) -> Result<Self, KeyError> {
        if bytes.len() != KEY_BYTES {
            return Err(KeyError::Length {
                from: from.to_owned(),
            });
        }
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| KeyError::Length {
            from: from.to_owned(),
        })?;
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    /// Reads a key file: 32 raw bytes, readable by its owner only.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read)?);
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a key from base64 text.
    pub fn from_base64(text: &str, from: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Length {
                from: from.to_owned(),
            })?;
        Self::from_bytes(&bytes, from)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value: its key's id, the nonce and the ciphertext with its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// Random nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Opening a sealed value failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Its key is neither the current nor the previous one.
    #[error(
        "it was sealed with key {0}, which is not configured (set secrets_previous_key_file to it while rotating)"
    )]
    UnknownKey(String),
    /// The ciphertext or its binding is wrong.
    #[error(
        "it does not decrypt with key {0}: the store or the key is not the one it was sealed with"
    )]
    Corrupt(String),
}

/// The current key and, during a rotation, the previous one.
pub struct Keyring {
    current: Key,
    previous: Option<Key>,
    rng: SystemRandom,
}

impl Keyring {
    /// A keyring of `current` (and `previous`).
    pub fn new(current: Key, previous: Option<Key>) -> Self {
        Self {
            current,
            previous,
            rng: SystemRandom::new(),
        }
    }

    /// The keyring from the key files, or from the environment variables
    /// when no file is given; None when no key is configured at all.
    pub fn load(
        file: Option<&Path>,
        previous_file: Option<&Path>,
    ) -> Result<Option<Self>, KeyError> {
        let current = match (file, std::env::var(KEY_ENV)) {
            (Some(path), _) => Key::from_file(path)?,
            (None, Ok(text)) => Key::from_base64(&Zeroizing::new(text), KEY_ENV)?,
            (None, Err(_)) => return Ok(None),
        };
        let previous = match (previous_file, std::env::var(PREVIOUS_KEY_ENV)) {
            (Some(path), _) => Some(Key::from_file(path)?),
            (None, Ok(text)) => Some(Key::from_base64(&Zeroizing::new(text), PREVIOUS_KEY_ENV)?),
            (None, Err(_)) => None,
        };
        Ok(Some(Self::new(current, previous)))
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `value` with the current key, bound to `binding`.
    pub fn seal(&self, binding: &[u8], value: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut ciphertext = value.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding),
                &mut ciphertext,
            )
            .expect("a value of at most 64 KiB seals");
        Sealed {
            key_id: self.current.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens `sealed`, bound to `binding`, with whichever key sealed it.
    pub fn open(&self, binding: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let corrupt = || OpenError::Corrupt(sealed.key_id.clone());
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| corrupt())?;
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(binding), &mut buf)
            .map_err(|_| corrupt())?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes(&[byte; 32], "test").unwrap()
    }

    #[test]
    fn sealed_values_open_bound_to_their_record_only() {
        let ring = Keyring::new(key(1), None);
        let sealed = ring.seal(b"web\0prod\0K\x001", b"canary");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"canary"));
        assert_eq!(
            &**ring.open(b"web\0prod\0K\x001", &sealed).unwrap(),
            b"canary"
        );
        assert!(matches!(
            ring.open(b"web\0test\0K\x001", &sealed),
            Err(OpenError::Corrupt(_))
        ));
    }

    #[test]
    fn the_previous_key_opens_what_it_sealed_and_others_are_named() {
        let old = Keyring::new(key(1), None);
        let sealed = old.seal(b"b", b"v");
        let rotated = Keyring::new(key(2), Some(key(1)));
        assert_eq!(&**rotated.open(b"b", &sealed).unwrap(), b"v");
        assert_eq!(rotated.seal(b"b", b"v").key_id, key(2).id);
        let other = Keyring::new(key(3), None);
        let err = other.open(b"b", &sealed).unwrap_err();
        assert!(matches!(err, OpenError::UnknownKey(_)), "{err}");
    }

    #[test]
    fn keys_are_32_bytes_and_files_private() {
        assert!(Key::from_bytes(&[0; 31], "x").is_err());
        assert!(Key::from_base64("not base64!", "x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, [7u8; 32]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Key::from_file(&path),
            Err(KeyError::Exposed { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Key::from_file(&path).unwrap().id, key(7).id);
    }
}
