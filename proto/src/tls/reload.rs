//! Certificates replaced without a restart: on SIGHUP and when the PEM
//! files change on disk, each daemon reloads its material; handshakes from
//! then on use the new files, connections already open carry on. A file
//! that does not parse leaves the material in use. Also warns as the
//! daemon's own certificate nears its expiry (30, 7 and 1 days).

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use x509_parser::{certificate::X509Certificate, prelude::FromDer};

use super::TlsMaterial;

/// How often the files are looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(10);

/// Days before expiry at which a warning is logged, once each.
const WARN_DAYS: [i64; 3] = [30, 7, 1];

/// What the files looked like: modification time, length and inode of each.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(material: &TlsMaterial) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let Some(paths) = material.paths() else {
        return Vec::new();
    };
    [&paths.ca, &paths.cert, &paths.key]
        .into_iter()
        .map(|path: &std::path::PathBuf| {
            let meta = std::fs::metadata(Path::new(path)).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

/// What the logs and the fleet status say of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// Serial, hex.
    pub serial: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

impl CertSummary {
    /// Whether less than a third of the validity is left at `now`.
    pub fn renewal_due(&self, now: i64) -> bool {
        let lifetime = (self.not_after - self.not_before).max(1);
        (self.not_after - now) * 3 < lifetime
    }
}

/// Serial and validity of a DER certificate.
pub fn summary(der: &[u8]) -> Option<CertSummary> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(CertSummary {
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// A certificate's serial (hex) and expiry (Unix seconds).
pub fn serial_and_expiry(der: &[u8]) -> Option<(String, i64)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((
        cert.raw_serial_as_string(),
        cert.validity().not_after.timestamp(),
    ))
}

struct Watched {
    name: &'static str,
    material: TlsMaterial,
    stamp: Stamp,
    warned_days: Option<i64>,
}

/// Keeps several named materials fresh (the control plane has one for its
/// listener and one for dialing agents).
pub struct Reloader {
    watched: Vec<Watched>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.watched.iter().map(|w| w.name).collect();
        f.debug_struct("Reloader").field("watched", &names).finish()
    }
}

impl Reloader {
    /// Watches `materials`, each with the name its logs use.
    pub fn new(materials: impl IntoIterator<Item = (&'static str, TlsMaterial)>) -> Self {
        let watched = materials
            .into_iter()
            .map(|(name, material)| Watched {
                name,
                stamp: stamp(&material),
                material,
                warned_days: None,
            })
            .collect();
        let mut reloader = Self { watched };
        reloader.warn_expiry();
        reloader
    }

    /// Reloads what changed: every material when `forced` (SIGHUP), else
    /// those whose files changed since the last look. Returns the names of
    /// the materials now in use that were not before.
    pub fn check(&mut self, forced: bool) -> Vec<&'static str> {
        let mut changed = Vec::new();
        for watched in &mut self.watched {
            let now = stamp(&watched.material);
            if !forced && now == watched.stamp {
                continue;
            }
            watched.stamp = now;
            match watched.material.reload() {
                Ok(true) => {
                    let (serial, expiry) = serial_and_expiry(&watched.material.leaf_der())
                        .unwrap_or_else(|| ("?".into(), 0));
                    tracing::info!(
                        material = watched.name,
                        serial,
                        expires = %expiry_text(expiry),
                        "reloaded TLS certificates: new connections use them"
                    );
                    watched.warned_days = None;
                    changed.push(watched.name);
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(
                    material = watched.name,
                    error = %crate::daemon::chain(&err),
                    "cannot reload TLS certificates; keeping the ones in use"
                ),
            }
        }
        self.warn_expiry();
        changed
    }

    fn warn_expiry(&mut self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for watched in &mut self.watched {
            let Some((serial, expiry)) = serial_and_expiry(&watched.material.leaf_der()) else {
                continue;
            };
            let days_left = (expiry - now).div_euclid(86_400);
            let Some(threshold) = WARN_DAYS.into_iter().filter(|d| days_left < *d).min() else {
                continue;
            };
            if watched
                .warned_days
                .is_some_and(|warned| warned <= threshold)
            {
                continue;
            }
            watched.warned_days = Some(threshold);
            tracing::warn!(
                material = watched.name,
                serial,
                expires = %expiry_text(expiry),
                days_left,
                "this daemon's certificate expires soon: issue a new one and send SIGHUP"
            );
        }
    }

    /// Reloads on every SIGHUP and every [`POLL_EVERY`], calling
    /// `on_change` with what changed; runs until the task is dropped.
    pub async fn run(mut self, on_change: impl Fn(&[&'static str]) + Send) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; certificates reload when their files change");
                None
            }
        };
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let forced = tokio::select! {
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    tracing::info!("SIGHUP: reloading TLS certificates");
                    true
                }
                _ = tick.tick() => false,
            };
            let changed = self.check(forced);
            if !changed.is_empty() {
                on_change(&changed);
            }
        }
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`, for logs.
fn expiry_text(seconds: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(seconds)
        .map_or_else(|_| seconds.to_string(), |time| time.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let cert = CertSummary {
            serial: "01".into(),
            not_before: 0,
            not_after: 30 * 86_400,
        };
        assert!(!cert.renewal_due(0));
        assert!(!cert.renewal_due(19 * 86_400));
        assert!(cert.renewal_due(21 * 86_400));
        assert!(cert.renewal_due(31 * 86_400));
    }
}
