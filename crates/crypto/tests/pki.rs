//! Development PKI: certificate profiles of TS-0003 §10.1.1, chain verification with OpenSSL,
//! CSR issuance (§10.1.4) and revocation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use m2mtrust_crypto::pki::{CseIdName, certificate_identity};
use m2mtrust_crypto::{CertProfile, DevCa, PkiError};
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509StoreContext};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, SanType};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const SP: &str = "m2mtrust.example";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// Generating keys is cheap, but one CA for most tests keeps them independent of order.
fn ca() -> &'static DevCa {
    static CA: OnceLock<DevCa> = OnceLock::new();
    CA.get_or_init(|| DevCa::generate_at(SP, now()).unwrap())
}

fn cse_mn() -> CertProfile {
    CertProfile::CseId {
        cse_id: "/id-mn".into(),
        in_cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    }
}

fn ae(ae_id: &str) -> CertProfile {
    CertProfile::AeId {
        ae_id: ae_id.into(),
        cse_id: "/id-mn".into(),
        sp_domain: SP.into(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// Verifies `leaf_pem` against `ca_pem` with OpenSSL at `at`, optionally checking `crl_pem`.
fn openssl_verify(
    ca_pem: &str,
    leaf_pem: &str,
    at: DateTime<Utc>,
    crl_pem: Option<&str>,
) -> Result<(), String> {
    let mut store = X509StoreBuilder::new().unwrap();
    store
        .add_cert(X509::from_pem(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    if let Some(crl) = crl_pem {
        let path = dir.path().join("ca.crl");
        std::fs::write(&path, crl).unwrap();
        let lookup = store.add_lookup(X509Lookup::file()).unwrap();
        lookup
            .load_crl_file(&path, openssl::ssl::SslFiletype::PEM)
            .unwrap();
        store.set_flags(X509VerifyFlags::CRL_CHECK).unwrap();
    }
    let mut param = openssl::x509::verify::X509VerifyParam::new().unwrap();
    param.set_time(at.timestamp());
    if crl_pem.is_some() {
        param.set_flags(X509VerifyFlags::CRL_CHECK).unwrap();
    }
    store.set_param(&param).unwrap();
    let store = store.build();
    let leaf = X509::from_pem(leaf_pem.as_bytes()).unwrap();
    let chain = Stack::new().unwrap();
    let mut ctx = X509StoreContext::new().unwrap();
    ctx.init(&store, &leaf, &chain, |c| {
        Ok(if c.verify_cert()? {
            Ok(())
        } else {
            Err(c.error().to_string())
        })
    })
    .unwrap()
}

/// Key usage, basic constraints and signature algorithm of a leaf, per TS-0003 §10.1.1.1.
fn check_common_profile(cert_pem: &str) {
    let der = der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ku = cert.key_usage().unwrap().expect("keyUsage present").value;
    assert!(ku.digital_signature());
    assert!(!ku.key_cert_sign());
    assert!(!cert.is_ca());
    // ecdsa-with-SHA256
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2"
    );
    // id-ecPublicKey with secp256r1, uncompressed point (65 bytes starting with 0x04).
    let spki = cert.public_key();
    assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .unwrap()
        .as_oid()
        .unwrap();
    assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
    assert_eq!(spki.subject_public_key.data.len(), 65);
    assert_eq!(spki.subject_public_key.data[0], 0x04);
    // No wildcards anywhere.
    let id = certificate_identity(cert_pem).unwrap();
    assert!(id.dns.iter().chain(&id.uris).all(|n| !n.contains('*')));
}

#[test]
fn ca_certificate_profile() {
    let der = der(ca().cert_pem());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.is_ca());
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let nc = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::NameConstraints(nc) => Some((e.critical, nc)),
            _ => None,
        })
        .expect("nameConstraints present");
    assert!(nc.0, "nameConstraints is critical");
    let permitted: Vec<_> =
        nc.1.permitted_subtrees
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| &s.base)
            .collect();
    assert_eq!(permitted, vec![&GeneralName::URI(SP)]);
    // Self-signed: verifies against itself.
    openssl_verify(ca().cert_pem(), ca().cert_pem(), now(), None).unwrap();
    assert!(format!("{:?}", ca()).contains("<redacted>"));
    assert!(!format!("{:?}", ca()).contains("PRIVATE KEY"));
}

/// A profile and the dNSName, URI and iPAddress SANs expected in its certificate.
type ProfileCase = (
    CertProfile,
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<IpAddr>,
);

#[test]
fn profiles_have_the_expected_names() {
    let in_cse = CertProfile::CseId {
        cse_id: "/id-in".into(),
        in_cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    };
    let cases: Vec<ProfileCase> = vec![
        (
            cse_mn(),
            vec!["id-mn.id-in.m2mtrust.example"],
            vec![],
            vec![],
        ),
        (in_cse, vec!["id-in.m2mtrust.example"], vec![], vec![]),
        (
            ae("Cabc"),
            vec![],
            vec!["https://m2mtrust.example/id-mn/Cabc"],
            vec![],
        ),
        (
            ae("Sabc"),
            vec![],
            vec!["https://m2mtrust.example/Sabc"],
            vec![],
        ),
        (
            CertProfile::Fqdn("mef.m2mtrust.example".into()),
            vec!["mef.m2mtrust.example"],
            vec![],
            vec![],
        ),
        (
            CertProfile::dev_server(
                &["cse.m2mtrust.example"],
                Some(CseIdName {
                    cse_id: "/id-in".into(),
                    in_cse_id: "/id-in".into(),
                    sp_domain: SP.into(),
                }),
            ),
            vec![
                "id-in.m2mtrust.example",
                "cse.m2mtrust.example",
                "localhost",
            ],
            vec![],
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        ),
    ];
    for (profile, dns, uris, ips) in cases {
        let issued = ca().issue_at(&profile, now(), 30).unwrap();
        let id = certificate_identity(&issued.cert_pem).unwrap();
        assert_eq!(id.dns, dns, "{profile:?}");
        assert_eq!(id.uris, uris, "{profile:?}");
        assert_eq!(id.ips, ips, "{profile:?}");
        assert!(!id.is_ca);
        assert_eq!(id.not_after, now() + Duration::days(30));
        assert!(id.not_before < now());
        assert!(id.public_key_id.starts_with("ni:///sha-256;"));
        check_common_profile(&issued.cert_pem);
        openssl_verify(ca().cert_pem(), &issued.cert_pem, now(), None).unwrap();
        // The chain is the leaf then the CA.
        let ca_id = certificate_identity(ca().cert_pem()).unwrap();
        assert!(issued.chain_pem.starts_with(&issued.cert_pem));
        assert!(issued.chain_pem.ends_with(ca().cert_pem()));
        assert!(ca_id.is_ca);
        // The key belongs to the certificate.
        let cert = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
        let key = openssl::pkey::PKey::private_key_from_pem(issued.key_pem.expose_pem().as_bytes())
            .unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert_eq!(format!("{:?}", issued.key_pem), "<redacted>");
    }
}

#[test]
fn invalid_profiles_are_rejected() {
    let bad = [
        CertProfile::Fqdn("*.m2mtrust.example".into()),
        CertProfile::Fqdn("".into()),
        CertProfile::CseId {
            cse_id: "id-mn".into(),
            in_cse_id: "/id-in".into(),
            sp_domain: SP.into(),
        },
        ae("Xabc"),
        CertProfile::Server {
            fqdn: vec![],
            ip: vec![],
            cse_id: None,
        },
    ];
    for profile in bad {
        assert!(ca().issue_at(&profile, now(), 30).is_err(), "{profile:?}");
    }
    assert!(matches!(
        ca().issue_at(&cse_mn(), now(), 0),
        Err(PkiError::ZeroValidity)
    ));
    // An AE-ID in another SP domain would violate the CA's URI name constraint.
    let other = CertProfile::AeId {
        ae_id: "Cabc".into(),
        cse_id: "/id-mn".into(),
        sp_domain: "other.example".into(),
    };
    assert!(matches!(
        ca().issue_at(&other, now(), 30),
        Err(PkiError::OutsideNameConstraints { .. })
    ));
}

#[test]
fn validity_is_enforced_by_openssl() {
    let issued = ca().issue_at(&cse_mn(), now(), 1).unwrap();
    openssl_verify(
        ca().cert_pem(),
        &issued.cert_pem,
        now() + Duration::hours(23),
        None,
    )
    .unwrap();
    let err = openssl_verify(
        ca().cert_pem(),
        &issued.cert_pem,
        now() + Duration::days(2),
        None,
    )
    .unwrap_err();
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn leaf_of_another_ca_does_not_verify() {
    let other = DevCa::generate_at(SP, now()).unwrap();
    let issued = other.issue_at(&cse_mn(), now(), 30).unwrap();
    let err = openssl_verify(ca().cert_pem(), &issued.cert_pem, now(), None).unwrap_err();
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );
}

/// OpenSSL enforces the CA's URI name constraint on the scheme-ful AE-ID URI, and rejects a
/// scheme-less one (the reason for the `https://` form).
#[test]
fn uri_name_constraint_is_enforced() {
    let ca_key = KeyPair::from_pem(ca().key_pem().expose_pem()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca().cert_pem(), ca_key).unwrap();
    for (uri, expected) in [
        ("https://m2mtrust.example/id-mn/Cabc", None),
        (
            "https://evil.example/id-mn/Cabc",
            Some("permitted subtree violation"),
        ),
        (
            "//m2mtrust.example/id-mn/Cabc",
            Some("unsupported or invalid name syntax"),
        ),
    ] {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.not_before =
            time::OffsetDateTime::from_unix_timestamp(now().timestamp() - 60).unwrap();
        params.not_after =
            time::OffsetDateTime::from_unix_timestamp(now().timestamp() + 86400).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let result = openssl_verify(ca().cert_pem(), &cert.pem(), now(), None);
        match expected {
            None => result.unwrap(),
            Some(msg) => assert!(result.unwrap_err().contains(msg), "{uri}"),
        }
    }
}

fn csr(sans: Vec<SanType>) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[test]
fn csr_happy_path() {
    let csr_pem = csr(vec![SanType::URI(
        "https://m2mtrust.example/id-mn/Cabc".try_into().unwrap(),
    )]);
    let issued = ca()
        .issue_from_csr_at(&csr_pem, &ae("Cabc"), now(), 30)
        .unwrap();
    let id = certificate_identity(&issued.cert_pem).unwrap();
    assert_eq!(id.uris, vec!["https://m2mtrust.example/id-mn/Cabc"]);
    check_common_profile(&issued.cert_pem);
    openssl_verify(ca().cert_pem(), &issued.cert_pem, now(), None).unwrap();
    // The certificate carries the CSR's key.
    let req = openssl::x509::X509Req::from_pem(csr_pem.as_bytes()).unwrap();
    let cert = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert!(
        cert.public_key()
            .unwrap()
            .public_eq(&req.public_key().unwrap())
    );

    // DNS names compare case-insensitively.
    let csr_pem = csr(vec![SanType::DnsName(
        "ID-MN.id-in.m2mtrust.example".try_into().unwrap(),
    )]);
    ca().issue_from_csr_at(&csr_pem, &cse_mn(), now(), 30)
        .unwrap();
}

#[test]
fn csr_san_mismatch_is_rejected() {
    let cases = [
        // Another AE-ID.
        vec![SanType::URI(
            "https://m2mtrust.example/id-mn/Cother".try_into().unwrap(),
        )],
        // The right AE-ID plus an extra name.
        vec![
            SanType::URI("https://m2mtrust.example/id-mn/Cabc".try_into().unwrap()),
            SanType::DnsName("extra.example".try_into().unwrap()),
        ],
        // The scheme-less absolute AE-ID.
        vec![SanType::URI(
            "//m2mtrust.example/id-mn/Cabc".try_into().unwrap(),
        )],
        // Right text, wrong name type.
        vec![SanType::DnsName("m2mtrust.example".try_into().unwrap())],
    ];
    for sans in cases {
        let err = ca()
            .issue_from_csr_at(&csr(sans), &ae("Cabc"), now(), 30)
            .unwrap_err();
        assert!(matches!(err, PkiError::SanMismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("URI:https://m2mtrust.example/id-mn/Cabc"),
            "{err}"
        );
    }
    let err = ca()
        .issue_from_csr_at(&csr(vec![]), &ae("Cabc"), now(), 30)
        .unwrap_err();
    assert!(matches!(err, PkiError::CsrMissingSan { .. }), "{err}");
}

#[test]
fn csr_with_bad_signature_or_key_is_rejected() {
    let csr_pem = csr(vec![SanType::DnsName(
        "id-mn.id-in.m2mtrust.example".try_into().unwrap(),
    )]);
    // Flip a bit of the signature (the last bytes of the DER).
    let mut der = der_of_csr(&csr_pem);
    let last = der.len() - 2;
    der[last] ^= 0x01;
    let tampered = pem_of_csr(&der);
    let err = ca()
        .issue_from_csr_at(&tampered, &cse_mn(), now(), 30)
        .unwrap_err();
    assert!(matches!(err, PkiError::Csr(_)), "{err}");
    assert!(matches!(
        ca().issue_from_csr_at("not a csr", &cse_mn(), now(), 30),
        Err(PkiError::Csr(_))
    ));

    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::DnsName(
        "id-mn.id-in.m2mtrust.example".try_into().unwrap(),
    )];
    let ed = params.serialize_request(&key).unwrap().pem().unwrap();
    assert!(matches!(
        ca().issue_from_csr_at(&ed, &cse_mn(), now(), 30),
        Err(PkiError::CsrKeyAlgorithm)
    ));
}

/// rcgen derives the key algorithm from the signature algorithm: a P-384 key signed with
/// ecdsa-with-SHA256 must still be refused (the profile requires P-256).
#[test]
fn csr_with_p384_key_signed_with_sha256_is_rejected() {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::stack::Stack as OsslStack;
    use openssl::x509::X509ReqBuilder;
    use openssl::x509::extension::SubjectAlternativeName;
    let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut b = X509ReqBuilder::new().unwrap();
    b.set_pubkey(&key).unwrap();
    let san = SubjectAlternativeName::new()
        .dns("id-mn.id-in.m2mtrust.example")
        .build(&b.x509v3_context(None))
        .unwrap();
    let mut exts = OsslStack::new().unwrap();
    exts.push(san).unwrap();
    b.add_extensions(&exts).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    assert!(matches!(
        ca().issue_from_csr_at(&pem, &cse_mn(), now(), 30),
        Err(PkiError::CsrKeyAlgorithm)
    ));
}

fn der_of_csr(pem: &str) -> Vec<u8> {
    openssl::x509::X509Req::from_pem(pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap()
}

fn pem_of_csr(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

#[test]
fn crl_lists_revoked_serial_and_openssl_rejects_it() {
    let mut ca = DevCa::generate_at(SP, now()).unwrap();
    let revoked = ca.issue_at(&cse_mn(), now(), 30).unwrap();
    let good = ca.issue_at(&ae("Cabc"), now(), 30).unwrap();
    let revoked_serial = certificate_identity(&revoked.cert_pem).unwrap().serial;
    ca.revoke(revoked_serial.clone(), now());
    ca.revoke(revoked_serial.clone(), now()); // idempotent
    assert_eq!(ca.revoked().len(), 1);
    let crl_pem = ca.crl_pem(now()).unwrap();

    let crl = openssl::x509::X509Crl::from_pem(crl_pem.as_bytes()).unwrap();
    let listed: Vec<Vec<u8>> = crl
        .get_revoked()
        .unwrap()
        .iter()
        .map(|r| r.serial_number().to_bn().unwrap().to_vec())
        .collect();
    assert_eq!(listed, vec![revoked_serial.as_bytes().to_vec()]);
    let ca_cert = X509::from_pem(ca.cert_pem().as_bytes()).unwrap();
    assert!(crl.verify(&ca_cert.public_key().unwrap()).unwrap());

    let err = openssl_verify(ca.cert_pem(), &revoked.cert_pem, now(), Some(&crl_pem)).unwrap_err();
    assert!(err.contains("revoked"), "{err}");
    openssl_verify(ca.cert_pem(), &good.cert_pem, now(), Some(&crl_pem)).unwrap();

    // An empty CRL lets both through.
    let empty = ca.crl_pem_for(&[], now()).unwrap();
    openssl_verify(ca.cert_pem(), &revoked.cert_pem, now(), Some(&empty)).unwrap();
}

#[test]
fn ca_round_trips_through_pem() {
    let loaded = DevCa::from_pem(ca().cert_pem(), ca().key_pem().expose_pem()).unwrap();
    let issued = loaded.issue_at(&ae("Sxyz"), now(), 30).unwrap();
    openssl_verify(ca().cert_pem(), &issued.cert_pem, now(), None).unwrap();
    // The URI constraint is read back from the certificate.
    let other = CertProfile::AeId {
        ae_id: "Sxyz".into(),
        cse_id: String::new(),
        sp_domain: "other.example".into(),
    };
    assert!(matches!(
        loaded.issue_at(&other, now(), 30),
        Err(PkiError::OutsideNameConstraints { .. })
    ));

    let leaf = ca().issue_at(&cse_mn(), now(), 30).unwrap();
    assert!(matches!(
        DevCa::from_pem(&leaf.cert_pem, leaf.key_pem.expose_pem()),
        Err(PkiError::NotCa)
    ));
    let other_ca = DevCa::generate_at(SP, now()).unwrap();
    assert!(matches!(
        DevCa::from_pem(ca().cert_pem(), other_ca.key_pem().expose_pem()),
        Err(PkiError::KeyMismatch)
    ));
    assert!(matches!(
        DevCa::from_pem("junk", "junk"),
        Err(PkiError::Pem(_))
    ));
}
