//! Signatures of outgoing notifications: `Slipway-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the subscription's
//! secret>`. A receiver recomputes it, compares in constant time and
//! refuses a `t` too far from its clock (replays).

use ring::hmac;

/// The header carrying the signature.
pub const SIGNATURE: &str = "Slipway-Signature";
/// The header carrying the idempotency key (`<subscription id>:<cursor>`).
pub const IDEMPOTENCY_KEY: &str = "Slipway-Idempotency-Key";
/// The header carrying the event name.
pub const EVENT: &str = "Slipway-Event";

/// Hex HMAC-SHA256 of `message` keyed by `secret`.
pub fn mac(secret: &[u8], message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex::encode(hmac::sign(&key, message).as_ref())
}

/// The `Slipway-Signature` value of `body` sent at unix second `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={t},v1={}", mac(secret, &message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            mac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_covers_the_time_and_the_body() {
        let sig = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            format!("t=1700000000,v1={}", mac(b"secret", b"1700000000.{}"))
        );
        assert_ne!(sig, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(sig, signature(b"secret", 1_700_000_000, b"[]"));
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{}"));
    }
}
