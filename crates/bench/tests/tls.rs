//! Workload W1 over https: the mock CSE behind the channel's TLS acceptor, with a PSK client and
//! a certificate client, counting the handshakes the server accepted.
#![allow(
    clippy::unwrap_used,
    reason = "mock server scaffolding: a panic fails the test"
)]

mod mock;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use m2mtrust_bench::{BenchError, Cleanup, Phase, Report};
use m2mtrust_channel::{
    Binding, CertifiedKey, Credentials, IdentityRules, KpsaId, PskCredential, PskKey, ServerConfig,
    TlsAcceptor, TrustAnchors,
};
use m2mtrust_crypto::{CertProfile, DevCa, Issued};
use m2mtrust_model::CseId;
use mock::{Mode, args, bench, get, start, start_tls};
use tempfile::TempDir;

const SP: &str = "m2mtrust.example";
const KPSA_ID: &str = "bench@mef.m2mtrust.example";
const KPSA: &str = "00112233445566778899aabbccddeeff";
const WRONG_KPSA: &str = "ffeeddccbbaa99887766554433221100";

struct Keys;

impl Credentials for Keys {
    fn psk(&self, id: &KpsaId) -> Option<PskCredential> {
        (id.as_str() == KPSA_ID).then(|| PskCredential {
            key: PskKey::from_hex(KPSA).unwrap(),
            bound: Binding::Ae("Cbench".into()),
        })
    }
}

fn rules() -> IdentityRules {
    let in_cse = CseId::parse("/id-in").unwrap();
    IdentityRules::new(SP, in_cse.clone(), in_cse).unwrap()
}

/// A PSK-only server, like an IN-CSE without certificates.
fn psk_acceptor() -> TlsAcceptor {
    TlsAcceptor::new(ServerConfig::new(rules()), Arc::new(Keys)).unwrap()
}

struct Pki {
    ca: DevCa,
    server: Issued,
    client: Issued,
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let ca = DevCa::generate(SP).unwrap();
        let server = ca.issue(&CertProfile::dev_server(&[SP], None), 30).unwrap();
        let client = ca
            .issue(
                &CertProfile::AeId {
                    ae_id: "Cbench".into(),
                    cse_id: "/id-in".into(),
                    sp_domain: SP.into(),
                },
                30,
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = Self {
            ca,
            server,
            client,
            dir,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.cert_pem()).unwrap();
        std::fs::write(pki.path("client.pem"), &pki.client.chain_pem).unwrap();
        std::fs::write(pki.path("client.key"), pki.client.key_pem.expose_pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// PSK and certificate clients on one port, as the m2mtrust HTTPS listener offers.
    fn acceptor(&self) -> TlsAcceptor {
        let mut config = ServerConfig::new(rules());
        config.certificate = Some(
            CertifiedKey::from_pem(
                self.server.chain_pem.as_bytes(),
                self.server.key_pem.expose_pem().as_bytes(),
            )
            .unwrap(),
        );
        config.client_trust = Some(TrustAnchors::from_pem(self.ca.cert_pem().as_bytes()).unwrap());
        TlsAcceptor::new(config, Arc::new(Keys)).unwrap()
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Checks counts, then returns the TLS handshakes the server accepted.
fn assert_complete(report: &Report, mock: &mock::MockCse, n: u64) -> u64 {
    assert_eq!(report.errors(), 0, "{report}");
    let run = &report.runs[0];
    let phases: Vec<_> = run
        .phases
        .iter()
        .map(|p| (p.phase, p.ok, p.errors))
        .collect();
    assert_eq!(phases, [(Phase::Create, n, 0), (Phase::Retrieve, n, 0)]);
    assert_eq!(run.cleanup, Cleanup::Deleted);
    let c = &mock.counts;
    assert_eq!(
        (
            get(&c.ae),
            get(&c.cnt),
            get(&c.cin),
            get(&c.la),
            get(&c.delete)
        ),
        (1, 1, n, n, 1)
    );
    assert_eq!(get(&c.bad), 0, "malformed requests reached the server");
    assert_eq!(get(&c.refused_handshakes), 0);
    let handshakes = get(&c.handshakes);
    assert_eq!(run.connections, handshakes, "report and server disagree");
    handshakes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_over_psk_keeps_its_connections() {
    let (url, mock) = start_tls(Mode::default(), psk_acceptor()).await;
    let report = bench(
        &url,
        &[
            "-n",
            "100",
            "-c",
            "4",
            "--psk-id",
            KPSA_ID,
            "--psk-key-hex",
            KPSA,
        ],
    )
    .await
    .unwrap();

    let handshakes = assert_complete(&report, &mock, 100);
    // 204 requests from 4 clients: about one handshake per client, not one per request.
    assert!((1..=8).contains(&handshakes), "{handshakes} handshakes");
    assert!(handshakes <= get(&mock.counts.connections));
    let retrieve = &report.runs[0].phases[1];
    assert!(retrieve.connections <= 4, "{retrieve:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psk_key_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("kpsa.hex");
    std::fs::write(&key_file, format!("{KPSA}\n")).unwrap();
    let (url, mock) = start_tls(Mode::default(), psk_acceptor()).await;
    let report = bench(
        &url,
        &[
            "-n",
            "10",
            "--psk-id",
            KPSA_ID,
            "--psk-key-file",
            text(&key_file),
        ],
    )
    .await
    .unwrap();
    let handshakes = assert_complete(&report, &mock, 10);
    assert!((1..=3).contains(&handshakes), "{handshakes} handshakes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_psk_is_a_handshake_error_at_setup() {
    let (url, mock) = start_tls(Mode::default(), psk_acceptor()).await;
    let err = bench(
        &url,
        &["-n", "5", "--psk-id", KPSA_ID, "--psk-key-hex", WRONG_KPSA],
    )
    .await
    .unwrap_err();

    assert!(matches!(err, BenchError::Handshake { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("registering the AE failed at https://"),
        "{msg}"
    );
    assert!(msg.contains("pre-shared keys differ"), "{msg}");
    assert!(!msg.contains(WRONG_KPSA), "{msg}");
    assert_eq!(get(&mock.counts.handshakes), 0);
    assert_eq!(get(&mock.counts.ae), 0);

    let err = bench(
        &url,
        &[
            "-n",
            "5",
            "--psk-id",
            "nobody@mef.m2mtrust.example",
            "--psk-key-hex",
            KPSA,
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("does not know our KpsaID"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_over_a_client_certificate() {
    let pki = Pki::new();
    let (url, mock) = start_tls(Mode::default(), pki.acceptor()).await;
    let report = bench(
        &url,
        &[
            "-n",
            "50",
            "-c",
            "2",
            "--cert",
            text(&pki.path("client.pem")),
            "--key",
            text(&pki.path("client.key")),
            "--ca",
            text(&pki.path("ca.pem")),
            "--server-name",
            SP,
        ],
    )
    .await
    .unwrap();
    let handshakes = assert_complete(&report, &mock, 50);
    assert!((1..=6).contains(&handshakes), "{handshakes} handshakes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_must_name_the_server() {
    let pki = Pki::new();
    let (url, mock) = start_tls(Mode::default(), pki.acceptor()).await;
    let cert_args = |name: &'static str| {
        [
            "-n",
            "1",
            "--cert",
            text(&pki.path("client.pem")),
            "--key",
            text(&pki.path("client.key")),
            "--ca",
            text(&pki.path("ca.pem")),
            "--server-name",
            name,
        ]
        .map(str::to_owned)
    };
    let argv = cert_args("other.example");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let err = bench(&url, &argv).await.unwrap_err();
    assert!(matches!(err, BenchError::Handshake { .. }), "{err:?}");
    assert!(err.to_string().contains("name mismatch"), "{err}");
    assert_eq!(get(&mock.counts.ae), 0);
}

#[tokio::test]
async fn https_without_credentials_is_an_argument_error() {
    let err = bench("https://127.0.0.1:1/cse-in", &[]).await.unwrap_err();
    assert!(
        matches!(err, BenchError::InvalidArgument { what: "--url", .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("https needs a credential"),
        "{err}"
    );

    // A certificate without --ca is refused before anything is sent.
    let pki = Pki::new();
    let err = bench(
        "https://127.0.0.1:1/cse-in",
        &[
            "--cert",
            text(&pki.path("client.pem")),
            "--key",
            text(&pki.path("client.key")),
        ],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BenchError::InvalidArgument { what: "--ca", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn http_with_tls_options_is_an_argument_error() {
    let (url, mock) = start(Mode::default()).await;
    let err = bench(&url, &["--psk-id", KPSA_ID, "--psk-key-hex", KPSA])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::InvalidArgument {
                what: "--psk-id",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("need an https:// URL"), "{err}");
    assert_eq!(get(&mock.counts.connections), 0);
}

#[test]
fn psk_flags_parse_and_hide_the_key() {
    let a = args(
        "https://h/cse-in",
        &["--psk-id", KPSA_ID, "--psk-key-hex", KPSA],
    );
    assert_eq!(a.tls.psk_id.as_deref(), Some(KPSA_ID));
    assert_eq!(
        a.tls.psk_key_hex.as_ref().map(|k| k.expose_secret()),
        Some(KPSA)
    );
    let debug = format!("{a:?}");
    assert!(!debug.contains(KPSA), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");

    let both =
        mock::Cmd::try_parse_from(["bench", "--psk-key-hex", KPSA, "--psk-key-file", "k.hex"]);
    assert!(both.is_err());
}

/// Mock numbers, http against PSK and certificate on the same in-process mock (which shares
/// the CPU with the bench): `cargo test --release -p m2mtrust-bench --test tls -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn mock_throughput() {
    let load = ["-n", "5000", "-c", "1,8"];
    let (url, _mock) = start(Mode::default()).await;
    bench(&url, &[&load[..], &["--label", "http"]].concat())
        .await
        .unwrap();

    let (url, _mock) = start_tls(Mode::default(), psk_acceptor()).await;
    let psk = ["--label", "psk", "--psk-id", KPSA_ID, "--psk-key-hex", KPSA];
    bench(&url, &[&load[..], &psk].concat()).await.unwrap();

    let pki = Pki::new();
    let (url, _mock) = start_tls(Mode::default(), pki.acceptor()).await;
    let (cert, key, ca) = (
        pki.path("client.pem"),
        pki.path("client.key"),
        pki.path("ca.pem"),
    );
    let certificate = [
        "--label",
        "cert",
        "--cert",
        text(&cert),
        "--key",
        text(&key),
        "--ca",
        text(&ca),
        "--server-name",
        SP,
    ];
    bench(&url, &[&load[..], &certificate].concat())
        .await
        .unwrap();
}
