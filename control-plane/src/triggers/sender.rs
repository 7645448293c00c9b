//! Who sent a webhook delivery and whether it proves the app's secret, in
//! the three conventions git servers use: GitHub (`X-Hub-Signature-256:
//! sha256=<HMAC-SHA256 of the body, hex>`), Gitea and Forgejo
//! (`X-Gitea-Signature: <the same, bare hex>`) and GitLab (`X-Gitlab-Token:
//! <the secret itself>`). Each names its event and its delivery id in
//! headers of its own; `Idempotency-Key` is taken as the id when a sender
//! gives no other.

use ring::hmac;

/// The headers a delivery's checks read, by lowercase name.
pub trait Headers {
    /// The value of header `name` (lowercase), if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

/// A delivery's sender convention, event and id, before its proof is
/// checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender<'a> {
    /// `github`, `gitea` or `gitlab`.
    pub source: &'static str,
    /// The sender's event name (`push`, `Push Hook`, `ping`).
    pub event: &'a str,
    /// The sender's delivery id.
    pub delivery_id: Option<&'a str>,
    proof: Proof<'a>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Proof<'a> {
    /// Hex HMAC-SHA256 of the body.
    Signature(&'a str),
    /// The secret, sent as is.
    Token(&'a str),
}

/// Why a delivery is refused before its content is read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// No header of any convention.
    #[error(
        "no signature: send X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea) or X-Gitlab-Token (GitLab)"
    )]
    Unsigned,
    /// A signature or token that does not prove the app's secret.
    #[error("the {0} signature does not match the app's webhook secret")]
    BadSignature(&'static str),
}

impl<'a> Sender<'a> {
    /// The convention `headers` follow; GitHub's signature header wins when
    /// a sender (Gitea does) sends two.
    pub fn of(headers: &'a impl Headers) -> Result<Self, SenderError> {
        let idempotency = headers.get("idempotency-key");
        let named = |source, event: &str, delivery: &str, proof| Sender {
            source,
            event: headers.get(event).unwrap_or_default(),
            delivery_id: headers.get(delivery).or(idempotency),
            proof,
        };
        if let Some(sig) = headers.get("x-hub-signature-256") {
            let hex = sig.strip_prefix("sha256=").unwrap_or("");
            if headers.get("x-gitea-event").is_some() {
                return Ok(named(
                    "gitea",
                    "x-gitea-event",
                    "x-gitea-delivery",
                    Proof::Signature(hex),
                ));
            }
            return Ok(named(
                "github",
                "x-github-event",
                "x-github-delivery",
                Proof::Signature(hex),
            ));
        }
        if let Some(sig) = headers.get("x-gitea-signature") {
            return Ok(named(
                "gitea",
                "x-gitea-event",
                "x-gitea-delivery",
                Proof::Signature(sig),
            ));
        }
        if let Some(token) = headers.get("x-gitlab-token") {
            return Ok(named(
                "gitlab",
                "x-gitlab-event",
                "x-gitlab-event-uuid",
                Proof::Token(token),
            ));
        }
        Err(SenderError::Unsigned)
    }

    /// Whether the delivery proves `secret`: its signature is the body's
    /// HMAC-SHA256 under the secret, or its token is the secret (compared
    /// in constant time).
    pub fn verify(&self, secret: &[u8], body: &[u8]) -> Result<(), SenderError> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let proved = match self.proof {
            Proof::Signature(hex) => hex::decode(hex)
                .ok()
                .is_some_and(|tag| hmac::verify(&key, body, &tag).is_ok()),
            // The token against the secret, both through the MAC: equal
            // tags for equal inputs, compared in constant time.
            Proof::Token(token) => {
                let expected = hmac::sign(&key, secret);
                hmac::verify(&key, token.as_bytes(), expected.as_ref()).is_ok()
            }
        };
        if proved {
            Ok(())
        } else {
            Err(SenderError::BadSignature(self.source))
        }
    }
}

/// The GitHub-style signature of `body` under `secret`: `sha256=<hex>`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<&'static str, String>);

    impl Headers for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }

    fn map(pairs: &[(&'static str, &str)]) -> Map {
        Map(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    const SECRET: &[u8] = b"s3cret";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    #[test]
    fn github_signs_the_body() {
        let signature = github_signature(SECRET, BODY);
        let headers = map(&[
            ("x-hub-signature-256", &signature),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-1"),
        ]);
        let sender = Sender::of(&headers).unwrap();
        assert_eq!((sender.source, sender.event), ("github", "push"));
        assert_eq!(sender.delivery_id, Some("d-1"));
        assert_eq!(sender.verify(SECRET, BODY), Ok(()));
        assert_eq!(
            sender.verify(b"other", BODY),
            Err(SenderError::BadSignature("github"))
        );
        assert!(sender.verify(SECRET, b"{}").is_err(), "another body");
    }

    #[test]
    fn gitea_signs_with_bare_hex_and_may_send_both_headers() {
        let signature = github_signature(SECRET, BODY);
        let bare = signature.trim_start_matches("sha256=");
        let headers = map(&[
            ("x-gitea-signature", bare),
            ("x-gitea-event", "push"),
            ("x-gitea-delivery", "g-1"),
        ]);
        let sender = Sender::of(&headers).unwrap();
        assert_eq!((sender.source, sender.delivery_id), ("gitea", Some("g-1")));
        assert_eq!(sender.verify(SECRET, BODY), Ok(()));
        let both = map(&[
            ("x-hub-signature-256", &signature),
            ("x-gitea-signature", bare),
            ("x-gitea-event", "push"),
            ("x-gitea-delivery", "g-2"),
        ]);
        let sender = Sender::of(&both).unwrap();
        assert_eq!((sender.source, sender.delivery_id), ("gitea", Some("g-2")));
        assert_eq!(sender.verify(SECRET, BODY), Ok(()));
    }

    #[test]
    fn gitlab_sends_the_token_itself() {
        let headers = map(&[
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event", "Push Hook"),
            ("idempotency-key", "k-1"),
        ]);
        let sender = Sender::of(&headers).unwrap();
        assert_eq!((sender.source, sender.event), ("gitlab", "Push Hook"));
        assert_eq!(sender.delivery_id, Some("k-1"), "Idempotency-Key as the id");
        assert_eq!(sender.verify(SECRET, BODY), Ok(()));
        let wrong = map(&[("x-gitlab-token", "s3cre")]);
        assert!(Sender::of(&wrong).unwrap().verify(SECRET, BODY).is_err());
    }

    #[test]
    fn unsigned_and_malformed_are_refused() {
        assert_eq!(Sender::of(&map(&[])), Err(SenderError::Unsigned));
        let garbage = map(&[("x-hub-signature-256", "sha256=zz")]);
        assert!(Sender::of(&garbage).unwrap().verify(SECRET, BODY).is_err());
        let no_prefix = map(&[("x-hub-signature-256", "00")]);
        assert!(
            Sender::of(&no_prefix)
                .unwrap()
                .verify(SECRET, BODY)
                .is_err()
        );
    }
}
