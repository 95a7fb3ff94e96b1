//! The bootstrap handshake over real loopback sockets: PPSK and certificate RSPFs, interop with
//! `openssl s_client`, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use m2mtrust_channel::{CertifiedKey, IdentityRules, KpsaId, PskKey, TrustAnchors};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn};
use m2mtrust_mef::{
    Assignment, Bootstrap, BootstrapError, EnroleeCredential, EnroleeKeys, Enrollee, Enrolment,
    MemoryEnrollees, bootstrap,
};
use m2mtrust_model::CseId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SP: &str = "m2mtrust.example";
const MEF: &str = "mef.m2mtrust.example";
const KPM_ID: &str = "factory-0001@mef.m2mtrust.example";
const KPM_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const AE_CRED: &str = "33-/id-in/Cdev1";

struct Setup {
    ca: DevCa,
    mef: Bootstrap,
    enrollees: Arc<MemoryEnrollees>,
}

fn rules() -> IdentityRules {
    let in_cse = CseId::parse("/id-in").unwrap();
    IdentityRules::new(SP, in_cse.clone(), in_cse).unwrap()
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

fn ae_profile() -> CertProfile {
    CertProfile::AeId {
        ae_id: "Cdev1".into(),
        cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    }
}

fn in_a_day() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(1)
}

fn setup() -> Setup {
    let ca = DevCa::generate(SP).unwrap();
    let enrollees = Arc::new(MemoryEnrollees::new());
    enrollees.insert_kpm(
        KpsaId::parse(KPM_ID).unwrap(),
        Enrollee {
            kpm: Some(PskKey::from_hex(KPM_HEX).unwrap()),
            assignment: Assignment::CseId("/id-mn".into()),
            expires: in_a_day(),
        },
    );
    enrollees.insert_certificate(
        AE_CRED,
        Enrollee {
            kpm: None,
            assignment: Assignment::AeIds(vec!["Cdev1".into()]),
            expires: in_a_day(),
        },
    );
    let mef = Bootstrap::with_timeout(
        Fqdn::parse(MEF).unwrap(),
        certified(&ca, &CertProfile::Fqdn(MEF.into())),
        Some(anchors(&ca)),
        rules(),
        enrollees.clone(),
        Duration::from_secs(5),
    )
    .unwrap();
    Setup { ca, mef, enrollees }
}

fn psk(kpm_id: &str, hex: &str) -> EnroleeCredential {
    EnroleeCredential::Psk {
        kpm_id: KpsaId::parse(kpm_id).unwrap(),
        kpm: PskKey::from_hex(hex).unwrap(),
    }
}

type Outcome = (
    Result<Enrolment, BootstrapError>,
    Result<EnroleeKeys, BootstrapError>,
);

/// Runs both ends over a loopback connection. After the handshake the MEF side drops its stream,
/// so a client refused after the handshake sees the connection closed.
async fn run(
    mef: &Bootstrap,
    credential: EnroleeCredential,
    trust: Option<TrustAnchors>,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        mef.accept(tcp).await.map(|(_, e)| e)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        bootstrap(tcp, MEF, credential, trust).await.map(|(_, k)| k)
    };
    tokio::join!(server, client)
}

fn assert_ke_id_shape(ke_id: &KpsaId) {
    let (rel, fqdn) = ke_id.as_str().split_once('@').unwrap();
    assert_eq!(fqdn, MEF);
    assert_eq!(rel.len(), 32, "{ke_id}");
    assert!(
        rel.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{ke_id}"
    );
}

#[tokio::test]
async fn psk_bootstrap_derives_same_ke_and_ke_id() {
    let s = setup();
    let (srv, cli) = run(&s.mef, psk(KPM_ID, KPM_HEX), None).await;
    let srv = srv.unwrap();
    let cli = cli.unwrap();
    assert_eq!(srv.ke, cli.ke);
    assert_eq!(srv.ke.len(), 32);
    assert_eq!(srv.ke_id, cli.ke_id);
    assert_ke_id_shape(&srv.ke_id);
    assert_eq!(srv.enrolee, format!("10-{KPM_ID}"));
    assert_eq!(srv.assignment, Assignment::CseId("/id-mn".into()));
    // Secrets never appear in Debug output.
    let shown = format!("{srv:?} {cli:?}");
    assert!(!shown.contains(&srv.ke.expose_hex()), "{shown}");

    // A second bootstrap yields a fresh Ke and KeID.
    let (srv2, _) = run(&s.mef, psk(KPM_ID, KPM_HEX), None).await;
    let srv2 = srv2.unwrap();
    assert_ne!(srv2.ke, srv.ke);
    assert_ne!(srv2.ke_id, srv.ke_id);
}

fn openssl_available() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: the `openssl` binary is not installed; s_client interop not tested");
    }
    ok
}

#[tokio::test]
async fn openssl_s_client_psk_bootstrap_exports_same_keying_material() {
    if !openssl_available() {
        return;
    }
    let s = setup();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-tls1_2",
            "-cipher",
            "PSK-AES128-CBC-SHA256",
            "-psk_identity",
            KPM_ID,
            "-psk",
            KPM_HEX,
            "-keymatexport",
            "EXPORTER-oneM2M-Bootstrap",
            "-keymatexportlen",
            "48",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A short line, then EOF; with -ign_eof s_client stays until the server closes.
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"hello\n").await;
    drop(stdin);
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (stream, enrolment) = s.mef.accept(tcp).await.unwrap();
    // Close the session; s_client (with -ign_eof) then exits on the server's close.
    drop(stream);
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut out))
        .await
        .expect("s_client did not exit")
        .unwrap();
    let _ = child.kill().await;
    let printed = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Keying material:"))
        .unwrap_or_else(|| panic!("no keying material in s_client output:\n{out}"))
        .trim()
        .to_ascii_uppercase();
    let expected = format!(
        "{}{}",
        enrolment.ke_id.relative(),
        enrolment.ke.expose_hex().to_ascii_uppercase()
    );
    assert_eq!(printed.len(), 96, "{printed}");
    assert_eq!(printed, expected);
    assert_ke_id_shape(&enrolment.ke_id);
}

#[tokio::test]
async fn certificate_bootstrap_derives_same_ke() {
    let s = setup();
    let cert = certified(&s.ca, &ae_profile());
    let (srv, cli) = run(
        &s.mef,
        EnroleeCredential::Certificate(cert),
        Some(anchors(&s.ca)),
    )
    .await;
    let srv = srv.unwrap();
    let cli = cli.unwrap();
    assert_eq!(srv.enrolee, AE_CRED);
    assert_eq!(srv.assignment, Assignment::AeIds(vec!["Cdev1".into()]));
    assert_eq!(srv.ke, cli.ke);
    assert_eq!(srv.ke_id, cli.ke_id);
    assert_ke_id_shape(&srv.ke_id);
}

#[tokio::test]
async fn wrong_kpm_is_refused() {
    let s = setup();
    let (srv, cli) = run(
        &s.mef,
        psk(KPM_ID, "ffffffffffffffffffffffffffffffff"),
        None,
    )
    .await;
    let err = srv.unwrap_err();
    assert!(matches!(err, BootstrapError::WrongKpm), "{err:?}");
    assert!(cli.is_err());
}

#[tokio::test]
async fn unknown_kpm_id_is_refused() {
    let s = setup();
    let (srv, cli) = run(&s.mef, psk("stranger@mef.m2mtrust.example", KPM_HEX), None).await;
    let err = srv.unwrap_err();
    assert!(
        matches!(&err, BootstrapError::UnknownKpmId(id) if id == "stranger@mef.m2mtrust.example"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "unknown_kpm_id");
    assert!(
        matches!(cli, Err(BootstrapError::UnknownKpmId(_))),
        "{cli:?}"
    );
}

#[tokio::test]
async fn expired_psk_enrolment_is_refused() {
    let s = setup();
    s.enrollees.insert_kpm(
        KpsaId::parse(KPM_ID).unwrap(),
        Enrollee {
            kpm: Some(PskKey::from_hex(KPM_HEX).unwrap()),
            assignment: Assignment::CseId("/id-mn".into()),
            expires: Utc::now() - chrono::Duration::seconds(1),
        },
    );
    let (srv, cli) = run(&s.mef, psk(KPM_ID, KPM_HEX), None).await;
    let err = srv.unwrap_err();
    assert!(matches!(err, BootstrapError::Expired { .. }), "{err:?}");
    assert_eq!(err.reason(), "enrolment_expired");
    assert!(cli.is_err());
}

#[tokio::test]
async fn expired_certificate_enrolment_is_refused() {
    let s = setup();
    s.enrollees.insert_certificate(
        AE_CRED,
        Enrollee {
            kpm: None,
            assignment: Assignment::AeIds(vec!["Cdev1".into()]),
            expires: Utc::now() - chrono::Duration::seconds(1),
        },
    );
    let cert = certified(&s.ca, &ae_profile());
    let (srv, _cli) = run(
        &s.mef,
        EnroleeCredential::Certificate(cert),
        Some(anchors(&s.ca)),
    )
    .await;
    let err = srv.unwrap_err();
    assert!(
        matches!(&err, BootstrapError::Expired { enrolee, .. } if enrolee == AE_CRED),
        "{err:?}"
    );
}

#[tokio::test]
async fn unregistered_certificate_is_refused() {
    let s = setup();
    s.enrollees.remove_certificate(AE_CRED);
    let cert = certified(&s.ca, &ae_profile());
    let (srv, _cli) = run(
        &s.mef,
        EnroleeCredential::Certificate(cert),
        Some(anchors(&s.ca)),
    )
    .await;
    let err = srv.unwrap_err();
    assert!(
        matches!(&err, BootstrapError::UnknownCertificate(id) if id == AE_CRED),
        "{err:?}"
    );
}

#[tokio::test]
async fn certificate_from_untrusted_ca_is_refused() {
    let s = setup();
    let rogue = DevCa::generate(SP).unwrap();
    let cert = certified(&rogue, &ae_profile());
    let (srv, cli) = run(
        &s.mef,
        EnroleeCredential::Certificate(cert),
        Some(anchors(&s.ca)),
    )
    .await;
    let err = srv.unwrap_err();
    assert!(
        matches!(err, BootstrapError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert_eq!(err.reason(), "certificate_untrusted");
    assert!(cli.is_err());
}

#[tokio::test]
async fn enrolee_refuses_mef_certificate_from_untrusted_ca() {
    let s = setup();
    let rogue = DevCa::generate(SP).unwrap();
    let cert = certified(&s.ca, &ae_profile());
    let (srv, cli) = run(
        &s.mef,
        EnroleeCredential::Certificate(cert),
        Some(anchors(&rogue)),
    )
    .await;
    assert!(srv.is_err());
    let err = cli.unwrap_err();
    assert!(
        matches!(err, BootstrapError::UntrustedCertificate { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn certificate_enrolee_needs_mef_trust_and_valid_name() {
    let s = setup();
    let cert = certified(&s.ca, &ae_profile());
    let (_l, tcp) = tcp_pair().await;
    let err = bootstrap(tcp, MEF, EnroleeCredential::Certificate(cert), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BootstrapError::MissingMefTrust), "{err:?}");
    let (_l, tcp) = tcp_pair().await;
    let err = bootstrap(tcp, "not a name", psk(KPM_ID, KPM_HEX), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BootstrapError::InvalidMefName(_)), "{err:?}");
}

async fn tcp_pair() -> (TcpListener, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    (l, c)
}
