//! The MEF service over real loopback TLS: Enrolment Exchange, provisioning of the target,
//! `/fetchCredentials` authorization, EST refusals — each refusal leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{Duration, Utc};
use http::{Method, StatusCode};
use m2mtrust_channel::{CertifiedKey, IdentityRules, KpsaId, PskKey, TrustAnchors};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn, Sealer, SecretKey};
use m2mtrust_mef::client::{EnrolError, EnrolOptions, MefConnection, enrol};
use m2mtrust_mef::est;
use m2mtrust_mef::server::{MefConfig, MefService, TargetCse};
use m2mtrust_mef::target::{StoreProvisioning, ke_record_id};
use m2mtrust_mef::{
    Assignment, Bootstrap, EnroleeCredential, Enrollee, MemoryEnrollees, bootstrap,
};
use m2mtrust_model::{CseId, ResponseStatusCode};
use m2mtrust_store::{Durability, SqliteStore, Store, StoreExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const SP: &str = "m2mtrust.example";
const MEF: &str = "mef.m2mtrust.example";
const KPM_HEX: &str = "000102030405060708090a0b0c0d0e0f";

struct Mef {
    addr: std::net::SocketAddr,
    ca: DevCa,
    store: Arc<dyn Store>,
    enrollees: Arc<MemoryEnrollees>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn certified(ca: &DevCa, profile: &CertProfile) -> CertifiedKey {
    let issued = ca.issue(profile, 30).unwrap();
    CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap()
}

fn anchors(ca: &DevCa) -> TrustAnchors {
    TrustAnchors::from_pem(ca.cert_pem().as_bytes()).unwrap()
}

fn kpm_enrollee(m: &Mef, kpm_id: &str, ae: &str, expires: chrono::DateTime<Utc>) {
    m.enrollees.insert_kpm(
        KpsaId::parse(kpm_id).unwrap(),
        Enrollee {
            kpm: Some(PskKey::from_hex(KPM_HEX).unwrap()),
            assignment: Assignment::AeIds(vec![ae.into()]),
            expires,
        },
    );
}

async fn start() -> Mef {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate(SP).unwrap();
    let in_cse = CseId::parse("/id-in").unwrap();
    let rules = IdentityRules::new(SP, in_cse.clone(), in_cse.clone()).unwrap();
    let enrollees = Arc::new(MemoryEnrollees::new());
    let bootstrap = Bootstrap::new(
        Fqdn::parse(MEF).unwrap(),
        certified(&ca, &CertProfile::Fqdn(MEF.into())),
        Some(anchors(&ca)),
        rules,
        enrollees.clone(),
    )
    .unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("mef.sqlite"), Durability::Process).unwrap());
    let sealer = Arc::new(Sealer::from_key(SecretKey::generate(32).unwrap()).unwrap());
    let ca_for_est = DevCa::from_pem(ca.cert_pem(), ca.key_pem().expose_pem()).unwrap();
    let config = MefConfig {
        role: m2mtrust_mef::server::Role::Mef,
        maf: None,
        target: TargetCse {
            cse_id: in_cse,
            sp_domain: SP.into(),
            cse_base_uri: "https://127.0.0.1:8443/cse-in".into(),
        },
        base_uri: format!("https://{MEF}:8444"),
        est: Some(Arc::new(
            est::EstServer::new(Arc::new(ca_for_est), 30).unwrap(),
        )),
        procedures: None,
    };
    let provisioning = Arc::new(StoreProvisioning::new(store.clone(), sealer, true));
    let service = Arc::new(MefService::new(bootstrap, config, provisioning));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve(listener, async move {
        let _ = rx.await;
    }));
    Mef {
        addr,
        ca,
        store,
        enrollees,
        _dir: dir,
        _stop: tx,
    }
}

fn psk(kpm_id: &str) -> EnroleeCredential {
    EnroleeCredential::Psk {
        kpm_id: KpsaId::parse(kpm_id).unwrap(),
        kpm: PskKey::from_hex(KPM_HEX).unwrap(),
    }
}

/// A MEF session of an entity holding a certificate (an enrolment target or any other client).
async fn cert_session(m: &Mef, profile: CertProfile) -> MefConnection {
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let (stream, _) = bootstrap(
        tcp,
        MEF,
        EnroleeCredential::Certificate(certified(&m.ca, &profile)),
        Some(anchors(&m.ca)),
    )
    .await
    .unwrap();
    MefConnection::open(stream, MEF).await.unwrap()
}

async fn psk_session(m: &Mef, kpm_id: &str) -> MefConnection {
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let (stream, _) = bootstrap(tcp, MEF, psk(kpm_id), None).await.unwrap();
    MefConnection::open(stream, MEF).await.unwrap()
}

fn cse_profile(cse: &str) -> CertProfile {
    CertProfile::CseId {
        cse_id: cse.into(),
        in_cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    }
}

fn ae_profile(ae: &str) -> CertProfile {
    CertProfile::AeId {
        ae_id: ae.into(),
        cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    }
}

fn credential_count(m: &Mef) -> usize {
    m.store.read(|r| r.credentials()).unwrap().len()
}

#[tokio::test]
async fn enrolment_provisions_the_target_and_only_the_target_fetches_the_key() {
    let m = start().await;
    let kpm_id = "f1@mef.m2mtrust.example";
    kpm_enrollee(&m, kpm_id, "Cdev1", Utc::now() + Duration::days(1));
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let enrolled = enrol(tcp, MEF, psk(kpm_id), None, &EnrolOptions::default())
        .await
        .unwrap();
    let p = &enrolled.profile;
    assert_eq!(p.enrolee_id, vec!["Cdev1".to_string()]);
    assert_eq!(p.target_id, "/id-in");
    assert_eq!(p.target_fqdn, "id-in.m2mtrust.example");
    assert_eq!(p.suid, 22);
    let ke_id = KpsaId::parse(&p.key_id).unwrap();
    // The target's credential and the enrolment record, in the store.
    let psk_record = m
        .store
        .read(|r| r.credential(&format!("12-{ke_id}")))
        .unwrap()
        .unwrap();
    assert_eq!(psk_record.kind, "psk");
    assert_eq!(psk_record.bound_ids, vec!["Cdev1".to_string()]);
    assert!(psk_record.expires.is_some());
    let sealed = psk_record.sealed_secret.unwrap();
    assert!(
        !sealed
            .windows(16)
            .any(|w| w == &enrolled.key.expose_bytes()[..16]),
        "the target key is stored sealed"
    );
    assert!(
        m.store
            .read(|r| r.credential(&ke_record_id(&ke_id)))
            .unwrap()
            .is_some()
    );

    // The enrolment target (the IN-CSE, by its CSE-ID certificate) fetches the same key.
    let mut target = cert_session(&m, cse_profile("/id-in")).await;
    let path = format!("/fetchCredentials/{ke_id}/22");
    let r = target.send(Method::GET, &path, None).await.unwrap();
    assert_eq!(r.status, ResponseStatusCode::OK, "{:?}", r.content);
    let body = &r.content.unwrap()["sec:fetchCredRsp"];
    assert_eq!(body["status"], json!(true));
    assert_eq!(
        B64.decode(body["credential"].as_str().unwrap()).unwrap(),
        enrolled.key.expose_bytes()
    );
    assert_eq!(body["enroleeID"], json!(["Cdev1"]));
    // SUID 23: the ESPrim key, the one the device derived too.
    let r = target
        .send(Method::GET, &format!("/fetchCredentials/{ke_id}/23"), None)
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatusCode::OK, "{:?}", r.content);
    let body = &r.content.unwrap()["sec:fetchCredRsp"];
    assert_eq!(
        B64.decode(body["credential"].as_str().unwrap()).unwrap(),
        enrolled.esprim_key.expose_bytes()
    );
    assert_ne!(
        enrolled.esprim_key.expose_bytes(),
        enrolled.key.expose_bytes()
    );
    // Another SUID, even by the target: refused.
    for suid in ["21", "24", "32"] {
        let r = target
            .send(
                Method::GET,
                &format!("/fetchCredentials/{ke_id}/{suid}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            r.status,
            ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
            "{suid}"
        );
    }
    // Unknown and malformed KeIDs.
    let r = target
        .send(
            Method::GET,
            "/fetchCredentials/00112233445566778899AABBCCDDEEFF@mef.m2mtrust.example/22",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatusCode::NOT_FOUND);
    assert_eq!(
        r.content.unwrap()["sec:fetchCredRsp"]["status"],
        json!(false)
    );
    let r = target
        .send(Method::GET, "/fetchCredentials/no-issuer/22", None)
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);

    // Not the target: another CSE, an AE. Refused, and no key in the answer.
    for profile in [cse_profile("/id-mn"), ae_profile("Cother")] {
        let mut other = cert_session(&m, profile).await;
        let r = other.send(Method::GET, &path, None).await.unwrap();
        assert_eq!(r.status, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
        let body = &r.content.unwrap()["sec:fetchCredRsp"];
        assert_eq!(body["status"], json!(false));
        assert!(body.get("credential").is_none());
        assert!(body["errorString"].as_str().unwrap().contains("target"));
    }
    // A non-enrolee has no Enrolment Exchange.
    let r = target
        .send(
            Method::POST,
            "/mef/enrolment",
            Some(&json!({"sec:enrReq": {}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
}

#[tokio::test]
async fn expired_enrolment_is_refused_and_stores_nothing() {
    let m = start().await;
    let kpm_id = "old@mef.m2mtrust.example";
    kpm_enrollee(&m, kpm_id, "Cold", Utc::now() - Duration::seconds(1));
    let before = credential_count(&m);
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let err = enrol(tcp, MEF, psk(kpm_id), None, &EnrolOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrolError::Bootstrap(_)), "{err:?}");
    assert_eq!(credential_count(&m), before);
}

#[tokio::test]
async fn out_of_order_and_malformed_exchange_messages_are_refused() {
    let m = start().await;
    let kpm_id = "f2@mef.m2mtrust.example";
    kpm_enrollee(&m, kpm_id, "Cdev2", Utc::now() + Duration::days(1));
    let mut s = psk_session(&m, kpm_id).await;
    let bad: [Value; 4] = [
        json!({"sec:enrAck": {"instructionType": "CertificateEnrolment", "status": true}}),
        json!({"sec:enrReq": {"surprise": true}}),
        json!({"sec:enrReq": {}, "extra": 1}),
        json!({"other": {}}),
    ];
    for body in &bad {
        let r = s
            .send(Method::POST, "/mef/enrolment", Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{body}");
        assert!(r.content.unwrap()["m2m:dbg"].is_string());
    }
    let r = s.send(Method::GET, "/nowhere", None).await.unwrap();
    assert_eq!(r.status, ResponseStatusCode::NOT_FOUND);
    let (status, _, _) = s
        .raw(
            Method::POST,
            "/mef/enrolment",
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing was provisioned by any of these.
    assert_eq!(credential_count(&m), 0);
    // The exchange still works after the refusals.
    let r = s
        .send(
            Method::POST,
            "/mef/enrolment",
            Some(&json!({"sec:enrReq": {"nodeID": "urn:dev:ops:0002"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatusCode::OK, "{:?}", r.content);
    assert!(r.content.unwrap()["sec:enrEnd"]["securityProfile"]["keyID"].is_string());
    assert_eq!(credential_count(&m), 2);
}

#[tokio::test]
async fn est_refuses_bad_csrs_and_foreign_identities() {
    let m = start().await;
    let kpm_id = "f3@mef.m2mtrust.example";
    kpm_enrollee(&m, kpm_id, "Cdev3", Utc::now() + Duration::days(1));
    let mut s = psk_session(&m, kpm_id).await;
    let r = s
        .send(
            Method::POST,
            "/mef/enrolment",
            Some(&json!({"sec:enrReq": {"certificateEnrolmentIndication": true}})),
        )
        .await
        .unwrap();
    let instr = &r.content.unwrap()["sec:enrInstr"];
    assert_eq!(instr["instructionType"], json!("CertificateEnrolment"));
    assert_eq!(instr["certSubjectID"], json!("Cdev3"));
    assert_eq!(instr["certSubjectType"], json!(3));
    assert!(
        instr["URI"]
            .as_str()
            .unwrap()
            .starts_with("https://mef.m2mtrust.example:8444/.well-known/est")
    );

    let (status, _, body) = s
        .raw(Method::GET, "/.well-known/est/csrattrs", None, Vec::new())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let attrs = est::parse_csrattrs(&body).unwrap();
    let challenge = attrs.challenge_password.clone().unwrap();
    let enroll = |body: Vec<u8>| (Method::POST, "/.well-known/est/simpleenroll", body);

    // Malformed CSR.
    let (method, path, b) = enroll(b"not base64 at all!".to_vec());
    let (status, _, _) = s
        .raw(method, path, Some("application/pkcs10"), b)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A CSR for an identity this enrolee was not assigned.
    let (csr, _) = est::generate_csr(&ae_profile("Csomeoneelse"), Some(&challenge)).unwrap();
    let (method, path, b) = enroll(csr.into_bytes());
    let (status, _, text) = s
        .raw(method, path, Some("application/pkcs10"), b)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&text)
    );
    // The right identity without the challenge, or with another one.
    for ch in [None, Some("guessed")] {
        let (csr, _) = est::generate_csr(&ae_profile("Cdev3"), ch).unwrap();
        let (method, path, b) = enroll(csr.into_bytes());
        let (status, _, _) = s
            .raw(method, path, Some("application/pkcs10"), b)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Re-enrolment needs a certificate-authenticated session.
    let (csr, _) = est::generate_csr(&ae_profile("Cdev3"), Some(&challenge)).unwrap();
    let (status, _, _) = s
        .raw(
            Method::POST,
            "/.well-known/est/simplereenroll",
            Some("application/pkcs10"),
            csr.clone().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was provisioned by the refusals; then the right CSR is certified.
    // Only the enrolment record (Ke, written when the exchange started).
    assert_eq!(credential_count(&m), 1);
    let (status, _, body) = s
        .raw(
            Method::POST,
            "/.well-known/est/simpleenroll",
            Some("application/pkcs10"),
            csr.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let certs = est::parse_certs_only(&body).unwrap();
    let id = m2mtrust_crypto::pki::certificate_identity_der(&certs[0]).unwrap();
    assert_eq!(
        id.uris,
        vec!["https://m2mtrust.example/id-in/Cdev3".to_string()]
    );
    // The challenge was one-time.
    let (csr, _) = est::generate_csr(&ae_profile("Cdev3"), Some(&challenge)).unwrap();
    let (status, _, _) = s
        .raw(
            Method::POST,
            "/.well-known/est/simpleenroll",
            Some("application/pkcs10"),
            csr.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn certificate_from_est_authenticates_the_next_mef_session_and_re_enrols() {
    let m = start().await;
    let kpm_id = "f4@mef.m2mtrust.example";
    kpm_enrollee(&m, kpm_id, "Cdev4", Utc::now() + Duration::days(1));
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let options = EnrolOptions {
        certificate: true,
        ..EnrolOptions::default()
    };
    let enrolled = enrol(tcp, MEF, psk(kpm_id), None, &options).await.unwrap();
    let cert = enrolled.certificate.unwrap();
    // §8.3.6.2.2 step k: the new certificate authenticates the client to the MEF.
    let certified = CertifiedKey::from_pem(
        cert.chain_pem.as_bytes(),
        cert.key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    let (stream, _) = bootstrap(
        tcp,
        MEF,
        EnroleeCredential::Certificate(certified),
        Some(TrustAnchors::from_pem(cert.ca_pem.as_bytes()).unwrap()),
    )
    .await
    .unwrap();
    let mut s = MefConnection::open(stream, MEF).await.unwrap();
    let (status, _, body) = s
        .raw(Method::GET, "/.well-known/est/csrattrs", None, Vec::new())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let attrs = est::parse_csrattrs(&body).unwrap();
    let (csr, _) =
        est::generate_csr(&ae_profile("Cdev4"), attrs.challenge_password.as_deref()).unwrap();
    let (status, _, body) = s
        .raw(
            Method::POST,
            "/.well-known/est/simplereenroll",
            Some("application/pkcs10"),
            csr.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}
