//! Revoked certificates, as both daemons enforce them: by fingerprint (one
//! certificate) or by identity (every certificate of that identity issued
//! up to the moment of revocation, so a name can be issued again later).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use x509_parser::{certificate::X509Certificate, prelude::FromDer, time::ASN1Time};

use crate::{identity::Identity, tls::fingerprint};

/// The revocation list. Cheap to clone into a [`Revocations`] handle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// Revoked fingerprints (`SHA256:<hex>`), each with its reason.
    pub fingerprints: HashMap<String, String>,
    /// Revoked identities (`admin/alice`, `agent/web-2`): certificates whose
    /// validity starts at or before the second given (Unix time) are
    /// revoked, with the reason.
    pub identities: HashMap<String, (i64, String)>,
    /// Counts changes; agents report the revision they hold.
    pub revision: u64,
}

impl RevocationList {
    /// Why the certificate `der` is revoked, if it is.
    pub fn check(&self, der: &[u8]) -> Option<String> {
        let fingerprint = fingerprint(der);
        if let Some(reason) = self.fingerprints.get(&fingerprint) {
            return Some(format!("certificate {fingerprint} is revoked: {reason}"));
        }
        if self.identities.is_empty() {
            return None;
        }
        let identity = Identity::from_der(der).ok()?;
        let (before, reason) = self.identities.get(&identity.principal())?;
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        (cert.validity().not_before.timestamp() <= *before).then(|| {
            format!(
                "certificates of {identity} issued up to {} are revoked: {reason}",
                ASN1Time::from_timestamp(*before)
                    .map_or_else(|_| before.to_string(), |time| time.to_string())
            )
        })
    }
}

/// A shared, replaceable revocation list: what the TLS verifiers and the
/// request interceptors consult on every handshake and call.
#[derive(Clone, Debug, Default)]
pub struct Revocations(Arc<RwLock<Arc<RevocationList>>>);

impl Revocations {
    /// The list in force.
    pub fn get(&self) -> Arc<RevocationList> {
        self.0.read().expect("revocations lock").clone()
    }

    /// Replaces the list.
    pub fn set(&self, list: RevocationList) {
        *self.0.write().expect("revocations lock") = Arc::new(list);
    }

    /// Why `der` is revoked, if it is.
    pub fn check(&self, der: &[u8]) -> Option<String> {
        self.get().check(der)
    }
}
