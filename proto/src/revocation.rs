//! Revoked certificates, as both daemons enforce them: by fingerprint (one
//! certificate) or by identity (every certificate of that identity issued
//! up to the moment of revocation, so a name can be issued again later).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use x509_parser::{certificate::X509Certificate, prelude::FromDer, time::ASN1Time};

use crate::{agent::v1::RevokedCertificate, identity::Identity, tls::fingerprint};

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

impl RevocationList {
    /// The list as the control plane sends it to agents.
    pub fn from_wire(revision: u64, entries: &[RevokedCertificate]) -> Self {
        let mut list = RevocationList {
            revision,
            ..Default::default()
        };
        for entry in entries {
            if !entry.fingerprint.is_empty() {
                list.fingerprints
                    .insert(entry.fingerprint.clone(), entry.reason.clone());
            } else if !entry.identity.is_empty() {
                list.identities.insert(
                    entry.identity.clone(),
                    (entry.issued_up_to_unix, entry.reason.clone()),
                );
            }
        }
        list
    }

    /// The entries to send, fingerprints first, each group sorted.
    pub fn to_wire(&self) -> Vec<RevokedCertificate> {
        let mut fingerprints: Vec<_> = self.fingerprints.iter().collect();
        fingerprints.sort();
        let mut identities: Vec<_> = self.identities.iter().collect();
        identities.sort();
        let by_fingerprint =
            fingerprints
                .into_iter()
                .map(|(fingerprint, reason)| RevokedCertificate {
                    fingerprint: fingerprint.clone(),
                    reason: reason.clone(),
                    ..Default::default()
                });
        let by_identity =
            identities
                .into_iter()
                .map(|(identity, (up_to, reason))| RevokedCertificate {
                    identity: identity.clone(),
                    issued_up_to_unix: *up_to,
                    reason: reason.clone(),
                    ..Default::default()
                });
        by_fingerprint.chain(by_identity).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_round_trips() {
        let mut list = RevocationList {
            revision: 3,
            ..Default::default()
        };
        list.fingerprints
            .insert("SHA256:ab".into(), "lost laptop".into());
        list.identities
            .insert("admin/alice".into(), (1_700_000_000, "left".into()));
        assert_eq!(RevocationList::from_wire(3, &list.to_wire()), list);
    }
}
