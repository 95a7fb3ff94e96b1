//! RFC 7030 EST for the M2M Enrolment Function (TS-0003 §8.3.6.2): the server functions
//! against the client functions and against the `openssl` command-line tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use m2mtrust_crypto::{CertProfile, DevCa, San};
use m2mtrust_mef::est::{EstError, EstServer, generate_csr, parse_certs_only, parse_csrattrs};
use openssl::pkcs7::Pkcs7;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509StoreContext};

const SP: &str = "m2mtrust.example";
const CHALLENGE: &str = "one-time-Zq3xV9pL2wK7";
const VALIDITY_DAYS: u32 = 30;

fn ae(ae_id: &str) -> CertProfile {
    CertProfile::AeId {
        ae_id: ae_id.to_owned(),
        cse_id: "/id-mn".to_owned(),
        sp_domain: SP.to_owned(),
    }
}

fn cse() -> CertProfile {
    CertProfile::CseId {
        cse_id: "/id-mn".to_owned(),
        in_cse_id: "/id-in".to_owned(),
        sp_domain: SP.to_owned(),
    }
}

fn server() -> EstServer {
    let ca = DevCa::generate(SP).unwrap();
    EstServer::new(Arc::new(ca), VALIDITY_DAYS).unwrap()
}

fn ca_der(server: &EstServer) -> Vec<u8> {
    X509::from_pem(server.ca().cert_pem().as_bytes())
        .unwrap()
        .to_der()
        .unwrap()
}

fn decode(body: &str) -> Vec<u8> {
    let compact: String = body.split_whitespace().collect();
    STANDARD.decode(compact).unwrap()
}

/// Runs the `openssl` tool and returns its standard output; fails the test on a non-zero exit.
fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CSR made by `openssl req`: key from `newkey` (`-newkey` argument, plus `-pkeyopt` for EC),
/// subjectAltName `san` (via `-addext`), challengePassword from the `[req_attributes]` of a
/// configuration file. Returns the `/simpleenroll` body.
fn openssl_csr(newkey: &[&str], san: Option<&str>, challenge: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = req_attributes\n\
         [dn]\nCN = enrolee\n[req_attributes]\n",
    );
    if let Some(c) = challenge {
        config.push_str(&format!("challengePassword = {c}\n"));
    }
    std::fs::write(dir.path().join("req.cnf"), config).unwrap();
    let mut args = vec!["req", "-new", "-nodes", "-config", "req.cnf"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-keyout", "key.pem", "-outform", "DER", "-out", "csr.der"]);
    let addext;
    if let Some(san) = san {
        addext = format!("subjectAltName={san}");
        args.extend_from_slice(&["-addext", &addext]);
    }
    openssl(&args, dir.path());
    let der = std::fs::read(dir.path().join("csr.der")).unwrap();
    STANDARD.encode(der)
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn uri_of(profile: &CertProfile) -> String {
    profile.subject_alt_names().unwrap()[0].to_string()
}

/// The certificate verifies against the EST CA and carries exactly the profile's SAN.
fn assert_issued_for(server: &EstServer, cert_pem: &str, profile: &CertProfile) {
    let cert = X509::from_pem(cert_pem.as_bytes()).unwrap();
    let ca = X509::from_pem(server.ca().cert_pem().as_bytes()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca).unwrap();
    let store = store.build();
    let mut ctx = X509StoreContext::new().unwrap();
    let verified = ctx
        .init(&store, &cert, &Stack::new().unwrap(), |c| {
            let ok = c.verify_cert()?;
            assert!(ok, "verification: {}", c.error());
            Ok(ok)
        })
        .unwrap();
    assert!(verified);
    let identity = m2mtrust_crypto::certificate_identity(cert_pem).unwrap();
    let found: Vec<San> = identity
        .dns
        .into_iter()
        .map(San::Dns)
        .chain(identity.uris.into_iter().map(San::Uri))
        .collect();
    assert_eq!(found, profile.subject_alt_names().unwrap());
}

#[test]
fn server_is_shareable_between_connections() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EstServer>();
    assert!(matches!(
        EstServer::new(Arc::new(DevCa::generate(SP).unwrap()), 0),
        Err(EstError::Issuance(_))
    ));
}

#[test]
fn cacerts_is_a_certs_only_pkcs7_with_the_ca() {
    let server = server();
    let body = server.cacerts().unwrap();
    assert!(body.lines().all(|l| l.len() <= 76), "{body}");
    let der = decode(&body);

    let pkcs7 = Pkcs7::from_der(&der).unwrap();
    let certs = pkcs7.signed().unwrap().certificates().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs.get(0).unwrap().to_der().unwrap(), ca_der(&server));
    assert_eq!(
        parse_certs_only(body.as_bytes()).unwrap(),
        vec![ca_der(&server)]
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cacerts.p7"), &der).unwrap();
    let printed = openssl(
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.p7",
            "-print_certs",
        ],
        dir.path(),
    );
    assert!(
        printed.contains("m2mtrust development CA m2mtrust.example"),
        "{printed}"
    );
    assert_eq!(printed.matches("BEGIN CERTIFICATE").count(), 1, "{printed}");
}

#[test]
fn csrattrs_round_trip_and_asn1parse() {
    let server = server();
    for profile in [ae("Cabc"), cse()] {
        let body = server.csrattrs(&profile, CHALLENGE).unwrap();
        let attrs = parse_csrattrs(body.as_bytes()).unwrap();
        assert_eq!(attrs.challenge_password.as_deref(), Some(CHALLENGE));
        assert_eq!(
            attrs.subject_alt_names,
            profile.subject_alt_names().unwrap()
        );
        assert!(attrs.wants_ecdsa_sha256());
        assert!(attrs.wants_p256());
        assert_eq!(attrs.oids, vec!["1.2.840.10045.4.3.2".to_owned()]);
        assert_eq!(attrs.ec_curves, vec!["1.2.840.10045.3.1.7".to_owned()]);
        assert!(attrs.other_attributes.is_empty());
        assert!(attrs.other_extensions.is_empty());

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("attrs.der"), decode(&body)).unwrap();
        let parsed = openssl(
            &["asn1parse", "-inform", "DER", "-in", "attrs.der"],
            dir.path(),
        );
        for needle in [
            "challengePassword",
            CHALLENGE,
            "ecdsa-with-SHA256",
            "id-ecPublicKey",
            "prime256v1",
            "Extension Request",
            "X509v3 Subject Alternative Name",
        ] {
            assert!(parsed.contains(needle), "{needle} missing in\n{parsed}");
        }
    }
}

#[test]
fn csrattrs_refuses_an_empty_challenge() {
    let err = server().csrattrs(&ae("Cabc"), "").unwrap_err();
    assert!(matches!(err, EstError::InvalidChallenge), "{err:?}");
}

#[test]
fn parse_csrattrs_rejects_garbage() {
    for body in [&b"%%%"[..], b"MAMCAQE=", b"", b"MAA=x"] {
        assert!(parse_csrattrs(body).is_err(), "{body:?}");
    }
    // An empty CsrAttrs is valid (RFC 7030 §4.5.2: SIZE (0..MAX)).
    assert_eq!(parse_csrattrs(b"MAA=").unwrap(), Default::default());
}

/// The whole client flow of §8.3.6.2.2 for one profile.
fn enrol(profile: &CertProfile) {
    let server = server();
    let cas = parse_certs_only(server.cacerts().unwrap().as_bytes()).unwrap();
    let attrs = parse_csrattrs(server.csrattrs(profile, CHALLENGE).unwrap().as_bytes()).unwrap();
    let (body, key) = generate_csr(profile, attrs.challenge_password.as_deref()).unwrap();
    assert!(key.expose_pem().contains("PRIVATE KEY"));

    let issued = server.enroll(body.as_bytes(), profile, CHALLENGE).unwrap();
    assert_issued_for(&server, &issued.cert_pem, profile);
    assert!(issued.chain_pem.starts_with(&issued.cert_pem));
    assert!(issued.chain_pem.ends_with(server.ca().cert_pem()));

    let certs = parse_certs_only(issued.pkcs7_base64.as_bytes()).unwrap();
    let cert_der = X509::from_pem(issued.cert_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(certs, vec![cert_der, cas[0].clone()]);

    // The issued certificate is for the generated key.
    let cert = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    let private = openssl::pkey::PKey::private_key_from_pem(key.expose_pem().as_bytes()).unwrap();
    assert!(cert.public_key().unwrap().public_eq(&private));
}

#[test]
fn enroll_ae_id() {
    enrol(&ae("Cabc"));
}

#[test]
fn enroll_s_type_ae_id() {
    enrol(&ae("Sabc"));
}

#[test]
fn enroll_cse_id() {
    enrol(&cse());
}

#[test]
fn generated_csr_verifies_with_openssl() {
    let (body, _key) = generate_csr(&ae("Cabc"), Some(CHALLENGE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("csr.der"), decode(&body)).unwrap();
    let text = openssl(
        &[
            "req", "-inform", "DER", "-in", "csr.der", "-verify", "-noout", "-text",
        ],
        dir.path(),
    );
    assert!(text.contains(CHALLENGE), "{text}");
    assert!(
        text.contains("URI:https://m2mtrust.example/id-mn/Cabc"),
        "{text}"
    );
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
}

#[test]
fn accepts_a_csr_from_openssl_req() {
    let server = server();
    let profile = ae("Cabc");
    let body = openssl_csr(P256, Some(&uri_of(&profile)), Some(CHALLENGE));
    let issued = server.enroll(body.as_bytes(), &profile, CHALLENGE).unwrap();
    assert_issued_for(&server, &issued.cert_pem, &profile);

    // Line-wrapped bodies with CRLF are accepted too.
    let wrapped: String = body
        .as_bytes()
        .chunks(64)
        .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
        .collect();
    server
        .enroll(wrapped.as_bytes(), &profile, CHALLENGE)
        .unwrap();
}

#[test]
fn accepts_a_csr_from_openssl_req_for_a_cse() {
    let server = server();
    let profile = cse();
    let body = openssl_csr(
        P256,
        Some("DNS:id-mn.id-in.m2mtrust.example"),
        Some(CHALLENGE),
    );
    let issued = server.enroll(body.as_bytes(), &profile, CHALLENGE).unwrap();
    assert_issued_for(&server, &issued.cert_pem, &profile);
}

#[test]
fn rejects_non_base64() {
    let err = server()
        .enroll(b"this is not base64!", &ae("Cabc"), CHALLENGE)
        .unwrap_err();
    assert!(matches!(err, EstError::Base64(_)), "{err:?}");
    assert_eq!(err.http_status(), 400);
    assert_eq!(err.reason(), "bad_base64");
}

#[test]
fn rejects_base64_of_garbage() {
    let server = server();
    for garbage in [
        &b"garbage, not DER"[..],
        &[0x30, 0x03, 0x02, 0x01, 0x00],
        &[],
    ] {
        let body = STANDARD.encode(garbage);
        let err = server
            .enroll(body.as_bytes(), &ae("Cabc"), CHALLENGE)
            .unwrap_err();
        assert!(matches!(err, EstError::NotPkcs10(_)), "{err:?}");
        assert_eq!(err.http_status(), 400);
    }
    // A valid request followed by trailing bytes.
    let (body, _) = generate_csr(&ae("Cabc"), Some(CHALLENGE)).unwrap();
    let mut der = decode(&body);
    der.push(0);
    let err = server
        .enroll(STANDARD.encode(der).as_bytes(), &ae("Cabc"), CHALLENGE)
        .unwrap_err();
    assert!(matches!(err, EstError::NotPkcs10(_)), "{err:?}");
}

#[test]
fn rejects_a_tampered_signature() {
    let server = server();
    let profile = ae("Cabc");
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    let der = decode(&body);

    // A changed byte in the signed request info (the AE-ID in the subjectAltName).
    let mut info = der.clone();
    let pos = info
        .windows(4)
        .rposition(|w| w == b"Cabc")
        .expect("AE-ID in the request");
    info[pos + 3] = b'd';
    // A changed byte in the signature value.
    let mut sig = der.clone();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;

    for tampered in [info, sig] {
        let err = server
            .enroll(STANDARD.encode(tampered).as_bytes(), &profile, CHALLENGE)
            .unwrap_err();
        assert!(matches!(err, EstError::BadSignature), "{err:?}");
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn rejects_rsa_2048() {
    let profile = ae("Cabc");
    let body = openssl_csr(
        &["-newkey", "rsa:2048"],
        Some(&uri_of(&profile)),
        Some(CHALLENGE),
    );
    let err = server()
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    match &err {
        EstError::KeyNotP256 { found } => {
            assert!(found.contains("1.2.840.113549.1.1.1"), "{found}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.http_status(), 400);
    assert_eq!(err.reason(), "key_not_p256");
}

#[test]
fn rejects_p384() {
    let profile = ae("Cabc");
    let body = openssl_csr(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        Some(&uri_of(&profile)),
        Some(CHALLENGE),
    );
    let err = server()
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    match &err {
        // secp384r1; the default digest is SHA-256, so only the key check catches it.
        EstError::KeyNotP256 { found } => assert!(found.contains("1.3.132.0.34"), "{found}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_p256_signed_with_sha384() {
    let profile = ae("Cabc");
    let mut newkey = P256.to_vec();
    newkey.push("-sha384");
    let body = openssl_csr(&newkey, Some(&uri_of(&profile)), Some(CHALLENGE));
    let err = server()
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    assert!(
        matches!(err, EstError::SignatureAlgorithm { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_a_missing_challenge_password() {
    let server = server();
    let profile = ae("Cabc");
    let (body, _) = generate_csr(&profile, None).unwrap();
    let err = server
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    assert!(matches!(err, EstError::MissingChallengePassword), "{err:?}");
    assert_eq!(err.http_status(), 403);
    assert_eq!(err.reason(), "challenge_password_missing");

    let body = openssl_csr(P256, Some(&uri_of(&profile)), None);
    let err = server
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    assert!(matches!(err, EstError::MissingChallengePassword), "{err:?}");
}

#[test]
fn rejects_a_wrong_challenge_password() {
    let server = server();
    let profile = ae("Cabc");
    for wrong in ["one-time-Zq3xV9pL2wK8", "one-time-Zq3xV9pL2wK", "x"] {
        let (body, _) = generate_csr(&profile, Some(wrong)).unwrap();
        let err = server
            .enroll(body.as_bytes(), &profile, CHALLENGE)
            .unwrap_err();
        assert!(matches!(err, EstError::WrongChallengePassword), "{err:?}");
        assert_eq!(err.http_status(), 403);
    }
    let body = openssl_csr(P256, Some(&uri_of(&profile)), Some("guessed"));
    let err = server
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    assert!(matches!(err, EstError::WrongChallengePassword), "{err:?}");
    // An empty expected challenge never matches.
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    let err = server.enroll(body.as_bytes(), &profile, "").unwrap_err();
    assert!(matches!(err, EstError::InvalidChallenge), "{err:?}");
}

#[test]
fn rejects_the_identity_of_another_ae() {
    let server = server();
    let (body, _) = generate_csr(&ae("Cother"), Some(CHALLENGE)).unwrap();
    let err = server
        .enroll(body.as_bytes(), &ae("Cabc"), CHALLENGE)
        .unwrap_err();
    match &err {
        EstError::IdentityNotAssigned { expected, found } => {
            assert_eq!(
                expected,
                &vec!["URI:https://m2mtrust.example/id-mn/Cabc".to_owned()]
            );
            assert_eq!(
                found,
                &vec!["URI:https://m2mtrust.example/id-mn/Cother".to_owned()]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.http_status(), 403);
    assert_eq!(err.reason(), "identity_not_assigned");
    let message = err.to_string();
    assert!(
        message.contains("Cabc") && message.contains("Cother"),
        "{message}"
    );
}

#[test]
fn rejects_an_extra_san() {
    let profile = ae("Cabc");
    let san = format!("{},DNS:extra.m2mtrust.example", uri_of(&profile));
    let body = openssl_csr(P256, Some(&san), Some(CHALLENGE));
    let err = server()
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    match &err {
        EstError::IdentityNotAssigned { found, .. } => assert_eq!(found.len(), 2, "{found:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_a_request_without_san() {
    let profile = ae("Cabc");
    let body = openssl_csr(P256, None, Some(CHALLENGE));
    let err = server()
        .enroll(body.as_bytes(), &profile, CHALLENGE)
        .unwrap_err();
    match &err {
        EstError::IdentityNotAssigned { expected, found } => {
            assert_eq!(expected.len(), 1);
            assert!(found.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reenroll_keeps_the_identity_of_the_current_certificate() {
    let server = server();
    let profile = ae("Cabc");
    let current = server.ca().issue(&profile, VALIDITY_DAYS).unwrap();
    let current_der = X509::from_pem(current.cert_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    let issued = server
        .reenroll(body.as_bytes(), &profile, CHALLENGE, &current_der)
        .unwrap();
    assert_issued_for(&server, &issued.cert_pem, &profile);
    assert_ne!(issued.cert_pem, current.cert_pem);
}

#[test]
fn reenroll_rejects_a_san_other_than_the_current_certificate() {
    let server = server();
    let profile = ae("Cabc");
    let current = server.ca().issue(&ae("Cother"), VALIDITY_DAYS).unwrap();
    let current_der = X509::from_pem(current.cert_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    let err = server
        .reenroll(body.as_bytes(), &profile, CHALLENGE, &current_der)
        .unwrap_err();
    match &err {
        EstError::IdentityChanged { current, requested } => {
            assert_eq!(
                current,
                &vec!["URI:https://m2mtrust.example/id-mn/Cother".to_owned()]
            );
            assert_eq!(
                requested,
                &vec!["URI:https://m2mtrust.example/id-mn/Cabc".to_owned()]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.http_status(), 403);
    assert_eq!(err.reason(), "identity_changed");
}

#[test]
fn reenroll_needs_a_current_certificate() {
    let server = server();
    let profile = ae("Cabc");
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    for current in [&[][..], b"not a certificate"] {
        let err = server
            .reenroll(body.as_bytes(), &profile, CHALLENGE, current)
            .unwrap_err();
        assert!(
            matches!(err, EstError::NotCertificateAuthenticated),
            "{err:?}"
        );
        assert_eq!(err.reason(), "not_certificate_authenticated");
    }
}

#[test]
fn parse_certs_only_rejects_other_input() {
    assert!(matches!(
        parse_certs_only(b"!!").unwrap_err(),
        EstError::Base64(_)
    ));
    assert!(matches!(
        parse_certs_only(STANDARD.encode(b"junk").as_bytes()).unwrap_err(),
        EstError::NotCertsOnly(_)
    ));
}

#[test]
fn enroll_never_panics_on_truncated_or_mutated_requests() {
    let server = server();
    let profile = ae("Cabc");
    let (body, _) = generate_csr(&profile, Some(CHALLENGE)).unwrap();
    let der = decode(&body);
    for n in 0..der.len() {
        let truncated = STANDARD.encode(&der[..n]);
        assert!(
            server
                .enroll(truncated.as_bytes(), &profile, CHALLENGE)
                .is_err()
        );
        let mut mutated = der.clone();
        mutated[n] ^= 0xff;
        let _ = server.enroll(STANDARD.encode(mutated).as_bytes(), &profile, CHALLENGE);
    }
}
