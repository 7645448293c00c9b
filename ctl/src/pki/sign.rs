//! Signing leaf certificates: keys, names, validity, serials and the checks
//! on the names a certificate may carry.

use std::net::IpAddr;

use anyhow::{Context, bail};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use slipway_proto::{identity::Identity, validate};

use super::BACKDATE;
/// Signs a leaf certificate; returns (certificate PEM, key PEM).
pub(super) fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    common: &str,
    identity: &Identity,
    dns: &[String],
    ips: &[IpAddr],
    usages: &[ExtendedKeyUsagePurpose],
    days: u32,
) -> anyhow::Result<(String, String)> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(common);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, days);
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().as_str().try_into()?));
    for name in dns {
        let ia5 = name
            .as_str()
            .try_into()
            .with_context(|| format!("{name:?} cannot be a DNS name in a certificate"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("cannot sign the certificate of {identity}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub(super) fn new_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("cannot generate a P-256 key")
}

pub(super) fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

pub(super) fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(days));
}

pub(super) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and of a fixed length when DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

pub(super) fn check_days(days: u32) -> anyhow::Result<()> {
    if days == 0 {
        bail!("validity must be at least 1 day");
    }
    Ok(())
}

/// Sorts `--san` values into DNS names and IP addresses.
pub(super) fn split_sans(sans: &[String]) -> anyhow::Result<(Vec<String>, Vec<IpAddr>)> {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for san in sans {
        if let Ok(ip) = san.parse::<IpAddr>() {
            ips.push(ip);
        } else {
            validate::host_name("--san", san)?;
            dns.push(san.clone());
        }
    }
    Ok((dns, ips))
}

/// An agent certificate names its own host only: a DNS SAN must be the host
/// name or share its first label (`web-3`, `web-3.example.com`), so no
/// certificate of one host can pass for another's address.
pub(super) fn refuse_other_hosts(host: &str, dns: &[String]) -> anyhow::Result<()> {
    let label = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    if let Some(other) = dns.iter().find(|name| label(name) != label(host)) {
        bail!(
            "--san {other} names another host than {host}: an agent certificate may name only \
             its own host ({host}, {host}.<domain>) and IP addresses"
        );
    }
    Ok(())
}

/// Removes repeated items, keeping the first of each in order.
pub(super) fn dedup<T: PartialEq>(items: &mut Vec<T>) {
    let mut unique: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    *items = unique;
}
