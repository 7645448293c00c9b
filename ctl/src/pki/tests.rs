//! Tests of the PKI: what each certificate holds, file modes, refusals.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use super::*;
use x509_parser::prelude::{FromDer, X509Certificate};

fn parse(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    pem.contents
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_every_file_with_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let opts = InitOptions {
        sans: vec!["cp.example.com".into(), "10.0.0.7".into()],
        ..InitOptions::default()
    };
    let written = init(&pki, &opts).unwrap();
    assert_eq!(written.len(), 8);
    for path in &written {
        assert!(path.is_file(), "{}", path.display());
        let expected = if path.extension().unwrap() == "key" {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(path), expected, "{}", path.display());
    }
    assert_eq!(mode(&pki), 0o700);

    let der = parse(&pki.join("control-plane.crt"));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        Identity::from_der(&der).unwrap(),
        Identity::ControlPlane {
            name: "main".into()
        }
    );
    let info = describe(&pki.join("control-plane.crt")).unwrap();
    assert_eq!(info.dns_names, ["localhost", "main", "cp.example.com"]);
    assert_eq!(info.ip_addresses, ["127.0.0.1", "::1", "10.0.0.7"]);
    assert_eq!(info.usages, ["server"]);
    assert!(!cert.is_ca());

    let ca = describe(&pki.join(CA_CERT)).unwrap();
    assert_eq!(ca.kind.as_deref(), Some("ca"));
    assert_eq!(ca.subject, CA_COMMON_NAME);

    let admin = parse(&pki.join("operator-admin.crt"));
    assert_eq!(
        Identity::from_der(&admin).unwrap(),
        Identity::Operator {
            name: "admin".into(),
            role: Role::Admin
        }
    );
}

fn certs_in(path: &Path) -> Vec<Vec<u8>> {
    let pem = fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&pem)
        .map(|block| block.unwrap().contents)
        .collect()
}

fn rotation_error(err: &anyhow::Error) -> &RotationError {
    err.downcast_ref::<RotationError>()
        .unwrap_or_else(|| panic!("not a rotation error: {err:#}"))
}

#[test]
fn a_rotated_ca_is_bundled_before_the_old_one_and_signs_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init(dir, &InitOptions::default()).unwrap();
    let old_ca = parse(&dir.join(CA_CERT));
    let old_key = fs::read_to_string(dir.join(CA_KEY)).unwrap();

    let written = rotate_ca(dir).unwrap();
    assert_eq!(written.len(), 4);
    assert_eq!(mode(&dir.join(CA_PREVIOUS_KEY)), 0o600);
    assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
    assert_eq!(
        fs::read_to_string(dir.join(CA_PREVIOUS_KEY)).unwrap(),
        old_key
    );
    assert_ne!(fs::read_to_string(dir.join(CA_KEY)).unwrap(), old_key);
    assert_eq!(
        certs_in(&dir.join(CA_PREVIOUS_CERT)),
        std::slice::from_ref(&old_ca)
    );
    let bundle = certs_in(&dir.join(CA_CERT));
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[1], old_ca);
    let (_, new_ca) = X509Certificate::from_der(&bundle[0]).unwrap();
    let (_, old) = X509Certificate::from_der(&old_ca).unwrap();
    assert_ne!(new_ca.subject(), old.subject());
    assert!(new_ca.is_ca());

    let agent = issue_agent(dir, "web-2", &[], 30).unwrap();
    let der = parse(&agent.cert);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.issuer(), new_ca.subject());
    cert.verify_signature(Some(new_ca.public_key())).unwrap();
    assert!(cert.verify_signature(Some(old.public_key())).is_err());

    let again = rotate_ca(dir).unwrap_err();
    assert!(matches!(
        rotation_error(&again),
        RotationError::InProgress { .. }
    ));
    assert_eq!(
        certs_in(&dir.join(CA_CERT)),
        bundle,
        "a refusal changes nothing"
    );
}

#[test]
fn finishing_a_rotation_waits_for_every_certificate_then_drops_the_old_ca() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init(dir, &InitOptions::default()).unwrap();
    issue_agent(dir, "web-1", &[], 30).unwrap();
    let not_rotating = finish_rotation(dir).unwrap_err();
    assert!(matches!(
        rotation_error(&not_rotating),
        RotationError::NotRotating { .. }
    ));
    rotate_ca(dir).unwrap();
    let bundle = certs_in(&dir.join(CA_CERT));

    let refused = finish_rotation(dir).unwrap_err();
    let RotationError::OldCertificates { files } = rotation_error(&refused) else {
        panic!("{refused:#}");
    };
    assert_eq!(
        files,
        &[
            "agent-web-1.crt",
            "control-plane-client.crt",
            "control-plane.crt",
            "operator-admin.crt"
        ]
    );
    assert!(refused.to_string().contains("agent-web-1.crt"), "{refused}");
    assert_eq!(
        certs_in(&dir.join(CA_CERT)),
        bundle,
        "a refusal changes nothing"
    );
    assert!(dir.join(CA_PREVIOUS_KEY).exists());

    let force = IssueOptions {
        validity_days: 30,
        force: true,
    };
    issue_control_plane_with(dir, "main", &[], &force).unwrap();
    issue_agent_with(dir, "web-1", &[], &force).unwrap();
    let refused = finish_rotation(dir).unwrap_err();
    assert!(
        refused.to_string().contains("operator-admin.crt"),
        "{refused}"
    );
    issue_operator_with(dir, "admin", Role::Admin, &force).unwrap();

    finish_rotation(dir).unwrap();
    assert_eq!(certs_in(&dir.join(CA_CERT)), [bundle[0].clone()]);
    assert!(!dir.join(CA_PREVIOUS_KEY).exists());
    assert!(!dir.join(CA_PREVIOUS_CERT).exists());
    assert_eq!(mode(&dir.join(CA_CERT)), 0o644);
    // Signing goes on with the new CA, and a second rotation may start.
    issue_agent(dir, "web-3", &[], 30).unwrap();
    rotate_ca(dir).unwrap();
}

#[test]
fn a_ca_key_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init(dir, &InitOptions::default()).unwrap();
    fs::write(dir.join(CA_KEY), new_key().unwrap().serialize_pem()).unwrap();
    let err = issue_agent(dir, "web-1", &[], 30).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err:#}");
    assert!(!dir.join("agent-web-1.crt").exists());
    assert!(rotate_ca(dir).is_err());
    assert!(!dir.join(CA_PREVIOUS_KEY).exists());
}

#[test]
fn reloaded_ca_issues_verifiable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &InitOptions::default()).unwrap();
    let agent = issue_agent(dir.path(), "web-1", &["192.0.2.1".into()], 30).unwrap();
    assert_eq!(agent.cert, dir.path().join("agent-web-1.crt"));
    assert_eq!(mode(&agent.key), 0o600);
    let operator = issue_operator(dir.path(), "alice", Role::Deployer, 30).unwrap();

    let ca_der = parse(&dir.path().join(CA_CERT));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    for (path, identity) in [
        (
            &agent.cert,
            Identity::Agent {
                host: "web-1".into(),
            },
        ),
        (
            &operator.cert,
            Identity::Operator {
                name: "alice".into(),
                role: Role::Deployer,
            },
        ),
    ] {
        let der = parse(path);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(Identity::from_der(&der).unwrap(), identity);
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(lifetime, 30 * 86_400 + 300);
    }
    let info = describe(&agent.cert).unwrap();
    assert_eq!(info.dns_names, ["web-1"]);
    assert_eq!(info.ip_addresses, ["192.0.2.1"]);
}

#[test]
fn an_agent_certificate_names_only_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &InitOptions::default()).unwrap();
    let err = issue_agent(dir.path(), "web-3", &["web-2".to_owned()], 30).unwrap_err();
    assert!(
        err.to_string()
            .contains("--san web-2 names another host than web-3"),
        "{err}"
    );
    assert!(
        !dir.path().join("agent-web-3.crt").exists(),
        "nothing written"
    );
    let sans = ["web-3.example.com".to_owned(), "10.0.0.3".to_owned()];
    issue_agent(dir.path(), "web-3", &sans, 30).unwrap();
}

#[test]
fn the_control_plane_is_renewed_from_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &InitOptions::default()).unwrap();
    let ca = fs::read(dir.path().join(CA_CERT)).unwrap();
    let before = fs::read(dir.path().join("control-plane.crt")).unwrap();
    let opts = IssueOptions::default();
    let refused = issue_control_plane_with(dir.path(), "main", &[], &opts).unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    let forced = IssueOptions {
        force: true,
        ..opts
    };
    issue_control_plane_with(dir.path(), "main", &[], &forced).unwrap();
    assert_ne!(
        fs::read(dir.path().join("control-plane.crt")).unwrap(),
        before
    );
    assert_eq!(fs::read(dir.path().join(CA_CERT)).unwrap(), ca, "same CA");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &InitOptions::default()).unwrap();
    let ca_before = fs::read(dir.path().join(CA_KEY)).unwrap();
    let err = init(dir.path(), &InitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_before);

    issue_agent(dir.path(), "web-1", &[], 5).unwrap();
    let key_before = fs::read(dir.path().join("agent-web-1.key")).unwrap();
    let err = issue_agent(dir.path(), "web-1", &[], 5).unwrap_err();
    assert!(err.to_string().contains("agent-web-1"), "{err}");
    assert_eq!(
        fs::read(dir.path().join("agent-web-1.key")).unwrap(),
        key_before
    );

    let opts = IssueOptions {
        validity_days: 5,
        force: true,
    };
    issue_agent_with(dir.path(), "web-1", &[], &opts).unwrap();
    assert_ne!(
        fs::read(dir.path().join("agent-web-1.key")).unwrap(),
        key_before
    );

    let forced = InitOptions {
        force: true,
        ..InitOptions::default()
    };
    init(dir.path(), &forced).unwrap();
    assert_ne!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_before);
    assert_eq!(mode(&dir.path().join(CA_KEY)), 0o600);
}

#[test]
fn rejects_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &InitOptions::default()).unwrap();
    assert!(issue_agent(dir.path(), "Web_1", &[], 5).is_err());
    assert!(issue_agent(dir.path(), "web-1", &["not a name".into()], 5).is_err());
    assert!(issue_operator(dir.path(), "../x", Role::Admin, 5).is_err());
    assert!(issue_operator(dir.path(), "carol", Role::Admin, 0).is_err());
    assert!(issue_agent(&dir.path().join("missing"), "web-1", &[], 5).is_err());
}
