//! End-to-end handshakes over 127.0.0.1: PSK (§8.2.2.1), certificates (§8.2.2.2), refusals,
//! SNI and key export (§10.3.1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{Ca, San, Validity};
use common::*;
use m2mtrust_channel::{
    Binding, CertificateProblem, ClientConfig, CredentialKind, HandshakeError, LABEL_BOOTSTRAP,
    LABEL_CONNECTION, PSK_CIPHERS, ServerConfig, TlsAcceptor, TlsConnector, export_keying_material,
    public_key_identifier,
};
use m2mtrust_model::Authentication;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion};
use tokio::net::{TcpListener, TcpStream};

fn psk_server() -> ServerConfig {
    let mut cfg = ServerConfig::new(rules());
    cfg.handshake_timeout = Duration::from_secs(5);
    cfg
}

#[tokio::test]
async fn psk_happy_path_reports_identity_binding_and_credential_id() {
    let (srv, cli) = pair(
        psk_server(),
        creds(),
        psk_client(KPSA_ID, KEY_HEX),
        SERVER_NAME,
    )
    .await;
    cli.unwrap();
    let (_, est) = srv.unwrap();
    assert_eq!(est.kind, CredentialKind::Psk);
    assert_eq!(est.credential_id, format!("12-{KPSA_ID}"));
    assert_eq!(est.kpsa_id.as_ref().map(|k| k.as_str()), Some(KPSA_ID));
    assert_eq!(est.binding, Binding::Ae("Cdev1".into()));
    assert_eq!(
        est.cipher, "PSK-AES128-CBC-SHA256",
        "mandatory suite preferred"
    );
    assert_eq!(est.sni.as_deref(), Some(SERVER_NAME));
    assert!(est.peer_addr.unwrap().ip().is_loopback());
    let id = est.peer_identity();
    assert_eq!(
        id.authentication,
        Authentication::Credential {
            credential_id: format!("12-{KPSA_ID}"),
            bound_ids: vec!["Cdev1".into()],
        }
    );
}

#[tokio::test]
async fn every_psk_suite_negotiates() {
    for suite in PSK_CIPHERS {
        let mut client = psk_client(KPSA_ID, KEY_HEX);
        client.ciphers = vec![suite.to_string()];
        let (srv, cli) = pair(psk_server(), creds(), client, SERVER_NAME).await;
        cli.unwrap();
        assert_eq!(srv.unwrap().1.cipher, *suite);
    }
}

#[tokio::test]
async fn psk_identity_hint_reaches_the_client() {
    let mut cfg = psk_server();
    cfg.psk_identity_hint = Some("id-in.m2mtrust.example".into());
    let (srv, cli) = pair(cfg, creds(), psk_client(KPSA_ID, KEY_HEX), SERVER_NAME).await;
    srv.unwrap();
    let cli = cli.unwrap();
    assert_eq!(
        cli.ssl().psk_identity_hint(),
        Some(&b"id-in.m2mtrust.example"[..])
    );
}

#[tokio::test]
async fn wrong_psk_is_refused() {
    let (srv, cli) = pair(
        psk_server(),
        creds(),
        psk_client(KPSA_ID, "ffffffffffffffffffffffffffffffff"),
        SERVER_NAME,
    )
    .await;
    let e = srv.unwrap_err();
    assert!(matches!(e, HandshakeError::BadKeyOrMac), "{e:?}");
    assert_eq!(e.reason(), "bad_key_or_mac");
    let e = cli.unwrap_err();
    assert!(matches!(e, HandshakeError::BadKeyOrMac), "{e:?}");
}

#[tokio::test]
async fn unknown_kpsa_id_is_refused() {
    let (srv, cli) = pair(
        psk_server(),
        creds(),
        psk_client("other@mef.m2mtrust.example", KEY_HEX),
        SERVER_NAME,
    )
    .await;
    let e = srv.unwrap_err();
    assert!(
        matches!(&e, HandshakeError::UnknownIdentity(id) if id == "other@mef.m2mtrust.example"),
        "{e:?}"
    );
    let e = cli.unwrap_err();
    assert!(matches!(e, HandshakeError::IdentityRefusedByPeer), "{e:?}");
}

/// A client built directly on OpenSSL, so it can send a psk_identity the typed API refuses.
async fn raw_psk_client(addr: std::net::SocketAddr, identity: &'static [u8]) -> Result<(), String> {
    let mut b = SslContext::builder(SslMethod::tls_client()).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_cipher_list("PSK-AES128-CBC-SHA256").unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_psk_client_callback(move |_, _, id_out, psk_out| {
        id_out[..identity.len()].copy_from_slice(identity);
        id_out[identity.len()] = 0;
        psk_out[..16].copy_from_slice(&[0u8; 16]);
        Ok(16)
    });
    let ctx = b.build();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = tokio_openssl::SslStream::new(Ssl::new(&ctx).unwrap(), tcp).unwrap();
    Pin::new(&mut s).connect().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn malformed_kpsa_id_is_refused_before_lookup() {
    for bad in [
        &b"no-at-sign"[..],
        b"a b@mef.example",
        b"dev1@-bad-.example",
        b"\xff\xfe@x.example",
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::new(psk_server(), Arc::new(creds())).unwrap();
        let server = async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await
        };
        let (srv, cli) = tokio::join!(server, raw_psk_client(addr, bad));
        let e = srv.unwrap_err();
        assert!(
            matches!(e, HandshakeError::MalformedIdentity(_)),
            "{bad:?}: {e:?}"
        );
        assert_eq!(e.reason(), "malformed_psk_identity");
        let msg = cli.unwrap_err();
        assert!(msg.contains("unknown psk identity"), "{msg}");
    }
}

#[tokio::test]
async fn cse_id_certificate_binds_the_cse() {
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "MN-CSE",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
    cli.unwrap();
    let (_, est) = srv.unwrap();
    assert_eq!(est.kind, CredentialKind::Certificate);
    assert_eq!(est.binding, Binding::Cse("/id-mn".into()));
    assert_eq!(est.credential_id, "32-/id-mn");
    assert_eq!(
        est.cipher, "ECDHE-ECDSA-AES128-SHA256",
        "mandatory suite preferred"
    );
    assert_eq!(
        est.peer_identity().authentication,
        Authentication::Credential {
            credential_id: "32-/id-mn".into(),
            bound_ids: vec!["/id-mn".into()],
        }
    );
}

#[tokio::test]
async fn ae_id_certificates_bind_the_ae() {
    let pki = ServerPki::new();
    let cases = [
        (
            "https://m2mtrust.example/id-in/Cabc",
            "33-/id-in/Cabc",
            "Cabc",
        ),
        (
            "https://m2mtrust.example/id-mn/Cxyz",
            "33-/id-mn/Cxyz",
            "/id-mn/Cxyz",
        ),
        ("https://m2mtrust.example/Sapp", "33-Sapp", "Sapp"),
    ];
    for (i, (uri, cred, bound)) in cases.into_iter().enumerate() {
        let leaf = pki
            .ca
            .leaf("AE", &[San::Uri(uri)], Validity::Current, 10 + i as u64);
        let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
        cli.unwrap();
        let (_, est) = srv.unwrap();
        assert_eq!(est.credential_id, cred);
        assert_eq!(est.binding, Binding::Ae(bound.into()));
    }
}

#[tokio::test]
async fn certificate_without_onem2m_identity_is_mapped_by_its_public_key_identifier() {
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "device",
        &[San::Dns("device.example.org")],
        Validity::Current,
        3,
    );
    let ni = public_key_identifier(certified(&leaf).leaf().unwrap()).unwrap();
    assert!(
        ni.starts_with("ni:///sha-256;") && !ni.contains('='),
        "{ni}"
    );
    let cred_id = format!("30-{ni}");

    // Unmapped: refused.
    let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert!(
        matches!(&e, HandshakeError::UnknownCertificate(id) if *id == cred_id),
        "{e:?}"
    );
    assert!(cli.is_err());

    // Mapped by the caller.
    let mut c = creds();
    c.certs.insert(
        cred_id.clone(),
        Binding::AeList(vec!["Ca".into(), "Cb".into()]),
    );
    let (srv, cli) = pair(pki.server_config(), c, pki.client(&leaf), SERVER_NAME).await;
    cli.unwrap();
    let (_, est) = srv.unwrap();
    assert_eq!(est.credential_id, cred_id);
    assert_eq!(est.binding, Binding::AeList(vec!["Ca".into(), "Cb".into()]));
}

fn cert_problem(e: &HandshakeError) -> Option<CertificateProblem> {
    match e {
        HandshakeError::Certificate { problem, .. } => Some(*problem),
        _ => None,
    }
}

#[tokio::test]
async fn certificate_from_untrusted_ca_is_refused() {
    let pki = ServerPki::new();
    let rogue = Ca::new("rogue CA");
    let leaf = rogue.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert_eq!(
        cert_problem(&e),
        Some(CertificateProblem::Untrusted),
        "{e:?}"
    );
    assert_eq!(e.reason(), "certificate_untrusted");
    let e = cli.unwrap_err();
    assert!(
        matches!(&e, HandshakeError::PeerAlert(a) if a.contains("unknown ca")),
        "{e:?}"
    );
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Expired,
        2,
    );
    let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert_eq!(cert_problem(&e), Some(CertificateProblem::Expired), "{e:?}");
    assert!(cli.is_err());
}

#[tokio::test]
async fn revoked_certificate_is_refused_with_crl() {
    let pki = ServerPki::new();
    let revoked = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        66,
    );
    let good = pki.ca.leaf(
        "MN2",
        &[San::Dns("id-mn2.id-in.m2mtrust.example")],
        Validity::Current,
        67,
    );
    let crl = pki.ca.crl(&[66]);
    let config = || {
        let mut cfg = pki.server_config();
        cfg.client_trust
            .as_mut()
            .unwrap()
            .add_crl_pem(crl.as_bytes())
            .unwrap();
        cfg
    };

    // Without the CRL the same certificate is accepted: the refusal below is the CRL's doing.
    let (srv, _) = pair(
        pki.server_config(),
        creds(),
        pki.client(&revoked),
        SERVER_NAME,
    )
    .await;
    srv.unwrap();

    let (srv, cli) = pair(config(), creds(), pki.client(&revoked), SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert_eq!(cert_problem(&e), Some(CertificateProblem::Revoked), "{e:?}");
    assert_eq!(e.reason(), "certificate_revoked");
    assert!(cli.is_err());

    let (srv, cli) = pair(config(), creds(), pki.client(&good), SERVER_NAME).await;
    cli.unwrap();
    assert_eq!(srv.unwrap().1.binding, Binding::Cse("/id-mn2".into()));
}

#[tokio::test]
async fn crl_checking_fails_closed_for_an_issuer_without_crl() {
    let pki = ServerPki::new();
    let other = Ca::new("second CA");
    let leaf = other.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        5,
    );
    let mut cfg = pki.server_config();
    let trust = cfg.client_trust.as_mut().unwrap();
    trust.add_pem(other.cert_pem.as_bytes()).unwrap();
    trust.add_crl_pem(pki.ca.crl(&[]).as_bytes()).unwrap();
    let (srv, _) = pair(cfg, creds(), pki.client(&leaf), SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert_eq!(
        cert_problem(&e),
        Some(CertificateProblem::CrlUnavailable),
        "{e:?}"
    );
}

#[tokio::test]
async fn client_without_certificate_or_psk_is_refused() {
    let pki = ServerPki::new();
    let mut client = pki.client(&pki.server);
    client.certificate = None;
    let (srv, cli) = pair(pki.server_config(), creds(), client, SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert!(matches!(e, HandshakeError::NoClientCredential), "{e:?}");
    assert!(cli.is_err());

    // A server that does not verify client certificates still refuses an anonymous client.
    let mut cfg = pki.server_config();
    cfg.client_trust = None;
    let mut client = pki.client(&pki.server);
    client.certificate = None;
    let (srv, cli) = pair(cfg, creds(), client, SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert!(matches!(e, HandshakeError::NoClientCredential), "{e:?}");
    assert!(
        matches!(cli, Err(HandshakeError::Io(_))),
        "no data flows: {cli:?}"
    );
}

#[tokio::test]
async fn psk_and_certificate_clients_share_one_port() {
    // The server requests client certificates (FAIL_IF_NO_PEER_CERT) yet PSK clients, which have
    // none, still get in: no CertificateRequest is sent with PSK suites.
    let pki = ServerPki::new();
    let acceptor = TlsAcceptor::new(pki.server_config(), Arc::new(creds())).unwrap();
    let psk = TlsConnector::new(psk_client(KPSA_ID, KEY_HEX)).unwrap();
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let cert = TlsConnector::new(pki.client(&leaf)).unwrap();
    let (srv, cli) = pair_with(&acceptor, &psk, SERVER_NAME).await;
    cli.unwrap();
    assert_eq!(srv.unwrap().1.credential_id, format!("12-{KPSA_ID}"));
    let (srv, cli) = pair_with(&acceptor, &cert, SERVER_NAME).await;
    cli.unwrap();
    assert_eq!(srv.unwrap().1.credential_id, "32-/id-mn");

    // A client holding both a PSK and a certificate: the server prefers the PSK suite.
    let mut both = pki.client(&leaf);
    both.psk = psk_client(KPSA_ID, KEY_HEX).psk;
    both.ciphers = m2mtrust_channel::DEFAULT_CIPHERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let both = TlsConnector::new(both).unwrap();
    let (srv, cli) = pair_with(&acceptor, &both, SERVER_NAME).await;
    cli.unwrap();
    assert_eq!(srv.unwrap().1.kind, CredentialKind::Psk);
}

#[tokio::test]
async fn suite_mismatch_is_refused() {
    let mut cfg = psk_server();
    cfg.ciphers = vec!["PSK-AES128-CBC-SHA256".into()];
    let mut client = psk_client(KPSA_ID, KEY_HEX);
    client.ciphers = vec!["PSK-AES128-GCM-SHA256".into()];
    let (srv, cli) = pair(cfg, creds(), client, SERVER_NAME).await;
    let e = srv.unwrap_err();
    assert!(matches!(e, HandshakeError::NoSharedCipher), "{e:?}");
    assert_eq!(e.reason(), "no_shared_cipher");
    assert!(matches!(cli.unwrap_err(), HandshakeError::PeerAlert(_)));
}

#[tokio::test]
async fn sni_picks_the_server_certificate() {
    let pki = ServerPki::new();
    let mef = pki.ca.leaf(
        "MEF",
        &[San::Dns("mef.m2mtrust.example")],
        Validity::Current,
        7,
    );
    let mut cfg = pki.server_config();
    cfg.sni_certificates = vec![("MEF.m2mtrust.example".into(), certified(&mef))];
    let client_leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let acceptor = TlsAcceptor::new(cfg, Arc::new(creds())).unwrap();
    let connector = TlsConnector::new(pki.client(&client_leaf)).unwrap();

    let san = |s: &m2mtrust_channel::TlsStream| {
        let c = s.ssl().peer_certificate().unwrap();
        c.subject_alt_names()
            .unwrap()
            .iter()
            .filter_map(|n| n.dnsname().map(String::from))
            .collect::<Vec<_>>()
    };
    let (srv, cli) = pair_with(&acceptor, &connector, "mef.m2mtrust.example").await;
    assert_eq!(san(&cli.unwrap()), ["mef.m2mtrust.example"]);
    let (_, est) = srv.unwrap();
    assert_eq!(est.sni.as_deref(), Some("mef.m2mtrust.example"));
    assert_eq!(
        est.binding,
        Binding::Cse("/id-mn".into()),
        "client verification survives the switch"
    );

    let (srv, cli) = pair_with(&acceptor, &connector, SERVER_NAME).await;
    assert_eq!(san(&cli.unwrap()), [SERVER_NAME]);
    srv.unwrap();

    // PSK still works after a switch (the PSK callback lives in every context).
    let psk = TlsConnector::new(psk_client(KPSA_ID, KEY_HEX)).unwrap();
    let (srv, cli) = pair_with(&acceptor, &psk, "mef.m2mtrust.example").await;
    cli.unwrap();
    assert_eq!(srv.unwrap().1.kind, CredentialKind::Psk);
}

#[tokio::test]
async fn client_checks_the_server_name() {
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (_, cli) = pair(
        pki.server_config(),
        creds(),
        pki.client(&leaf),
        "id-other.m2mtrust.example",
    )
    .await;
    let e = cli.unwrap_err();
    assert_eq!(
        cert_problem(&e),
        Some(CertificateProblem::NameMismatch),
        "{e:?}"
    );

    // A server certificate from a CA the client does not trust.
    let rogue = Ca::new("rogue");
    let mut client = pki.client(&leaf);
    client.trust_anchors = Some(anchors(&rogue));
    let (_, cli) = pair(pki.server_config(), creds(), client, SERVER_NAME).await;
    assert_eq!(
        cert_problem(&cli.unwrap_err()),
        Some(CertificateProblem::Untrusted)
    );
}

#[tokio::test]
async fn exported_keys_are_identical_on_both_ends() {
    // PSK
    let (srv, cli) = pair(
        psk_server(),
        creds(),
        psk_client(KPSA_ID, KEY_HEX),
        SERVER_NAME,
    )
    .await;
    let (s, _) = srv.unwrap();
    let c = cli.unwrap();
    let a = export_keying_material(s.ssl(), LABEL_BOOTSTRAP).unwrap();
    let b = export_keying_material(c.ssl(), LABEL_BOOTSTRAP).unwrap();
    assert_eq!(a.expose_secret(), b.expose_secret());
    assert_ne!(a.expose_secret(), &[0u8; 48]);
    let (ka, kb) = (a.split(), b.split());
    assert_eq!(ka.id, kb.id);
    assert_eq!(ka.key.expose_secret(), kb.key.expose_secret());
    assert_eq!(&a.expose_secret()[..16], &ka.id);
    let other = export_keying_material(s.ssl(), LABEL_CONNECTION).unwrap();
    assert_ne!(other.expose_secret(), a.expose_secret());

    // Certificates
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (srv, cli) = pair(pki.server_config(), creds(), pki.client(&leaf), SERVER_NAME).await;
    let (s, _) = srv.unwrap();
    let c = cli.unwrap();
    let a = export_keying_material(s.ssl(), LABEL_CONNECTION).unwrap();
    let b = export_keying_material(c.ssl(), LABEL_CONNECTION).unwrap();
    assert_eq!(a.expose_secret(), b.expose_secret());
}

#[tokio::test]
async fn silent_client_times_out() {
    let mut cfg = psk_server();
    cfg.handshake_timeout = Duration::from_millis(200);
    let acceptor = TlsAcceptor::new(cfg, Arc::new(creds())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _idle = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let e = acceptor.accept(tcp).await.unwrap_err();
    assert!(matches!(e, HandshakeError::Timeout(_)), "{e:?}");
}

#[test]
fn configuration_mistakes_are_refused() {
    let mut cfg = ServerConfig::new(rules());
    cfg.ciphers = vec!["PSK-AES128-CBC-SHA256".into(), "NO-SUCH-SUITE".into()];
    let e = TlsAcceptor::new(cfg, Arc::new(creds())).unwrap_err();
    assert!(e.to_string().contains("NO-SUCH-SUITE"), "{e}");

    // A certificate client without trust anchors has no usable suite.
    let pki = ServerPki::new();
    let mut client = pki.client(&pki.server);
    client.trust_anchors = None;
    assert!(TlsConnector::new(client).is_err());

    // A PSK-only client never offers certificate suites, even if asked to.
    let mut client = psk_client(KPSA_ID, KEY_HEX);
    client.ciphers = vec!["ECDHE-ECDSA-AES128-SHA256".into()];
    assert!(TlsConnector::new(client).is_err());

    let _ = ClientConfig::psk; // keep the import used
}

#[test]
fn secrets_do_not_reach_debug_output() {
    let c = creds();
    let cred =
        m2mtrust_channel::Credentials::psk(&c, &m2mtrust_channel::KpsaId::parse(KPSA_ID).unwrap())
            .unwrap();
    let shown = format!("{cred:?} {:?}", psk_client(KPSA_ID, KEY_HEX));
    assert!(!shown.contains("00112233"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let pki = ServerPki::new();
    let shown = format!("{:?}", pki.server_config());
    assert!(!shown.contains("PRIVATE"), "{shown}");
}
