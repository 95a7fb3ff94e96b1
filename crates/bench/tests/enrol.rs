//! Workload `enrol` against a real MEF started in-process on a loopback port, with its SQLite
//! store: every completed enrolment must be recorded there, and every failure counted.
#![allow(
    clippy::unwrap_used,
    reason = "test scaffolding: a panic fails the test"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use m2mtrust_bench::{BenchArgs, BenchError, Phase, Report, Workload};
use m2mtrust_channel::{CertifiedKey, IdentityRules, KpsaId, PskKey, TrustAnchors};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn, Sealer, SecretKey};
use m2mtrust_mef::server::{MefConfig, MefService, TargetCse};
use m2mtrust_mef::target::{KE_KIND, StoreProvisioning};
use m2mtrust_mef::{Assignment, Bootstrap, Enrollee, MemoryEnrollees};
use m2mtrust_model::CseId;
use m2mtrust_store::{CredentialRecord, Durability, SqliteStore, Store, StoreExt};
use tokio::net::{TcpListener, TcpStream};

const SP: &str = "m2mtrust.example";
const MEF: &str = "mef.m2mtrust.example";
const KPM_ID: &str = "factory-1@mef.m2mtrust.example";
const KPM_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const WRONG_KPM_HEX: &str = "ffeeddccbbaa99887766554433221100";

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

/// A MEF serving on a loopback port until dropped.
struct Mef {
    url: String,
    addr: std::net::SocketAddr,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Mef {
    /// Writes `hex` into a key file in the MEF's temporary folder.
    fn key_file(&self, name: &str, hex: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        path
    }

    /// The Ke records (`ke:<KeID>`) the MEF has stored.
    fn ke_records(&self) -> Vec<CredentialRecord> {
        let all = self.store.read(|r| r.credentials()).unwrap();
        all.into_iter().filter(|c| c.kind == KE_KIND).collect()
    }

    fn credentials(&self) -> Vec<CredentialRecord> {
        self.store.read(|r| r.credentials()).unwrap()
    }
}

/// The MEF as `m2mtrust up` builds it, minus EST and the MEF procedures: PSK bootstrap with one
/// registered factory credential, Ke and the target key recorded in a durable SQLite store.
async fn start_mef() -> Mef {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate(SP).unwrap();
    let issued = ca.issue(&CertProfile::Fqdn(MEF.into()), 30).unwrap();
    let certificate = CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let trust = TrustAnchors::from_pem(ca.cert_pem().as_bytes()).unwrap();
    let in_cse = CseId::parse("/id-in").unwrap();
    let rules = IdentityRules::new(SP, in_cse.clone(), in_cse.clone()).unwrap();
    let enrollees = Arc::new(MemoryEnrollees::new());
    enrollees.insert_kpm(
        KpsaId::parse(KPM_ID).unwrap(),
        Enrollee {
            kpm: Some(PskKey::from_hex(KPM_HEX).unwrap()),
            assignment: Assignment::AeIds(vec!["Cdev".into()]),
            expires: chrono::Utc::now() + chrono::Duration::days(1),
        },
    );
    let bootstrap = Bootstrap::new(
        Fqdn::parse(MEF).unwrap(),
        certificate,
        Some(trust),
        rules,
        enrollees,
    )
    .unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("mef.sqlite"), Durability::Full).unwrap());
    let sealer = Arc::new(Sealer::from_key(SecretKey::generate(32).unwrap()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = MefConfig {
        role: m2mtrust_mef::server::Role::Mef,
        maf: None,
        target: TargetCse {
            cse_id: in_cse,
            sp_domain: SP.into(),
            cse_base_uri: "https://127.0.0.1:8443/cse-in".into(),
        },
        base_uri: format!("https://{MEF}:{}", addr.port()),
        est: None,
        procedures: None,
    };
    let provisioning = Arc::new(StoreProvisioning::new(store.clone(), sealer, true));
    let service = Arc::new(MefService::new(bootstrap, config, provisioning));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve(listener, async move {
        let _ = stopped.await;
    }));
    Mef {
        url: format!("https://{addr}"),
        addr,
        store,
        dir,
        _stop: stop,
    }
}

fn args(argv: &[&str]) -> BenchArgs {
    let mut full = vec!["bench", "--quiet", "--workload", "enrol"];
    full.extend_from_slice(argv);
    Cmd::try_parse_from(full).unwrap().bench
}

async fn bench(url: &str, key: &std::path::Path, extra: &[&str]) -> Result<Report, BenchError> {
    let key = key.to_str().unwrap();
    let mut argv = vec!["--url", url, "--kpm-id", KPM_ID, "--kpm-file", key];
    argv.extend_from_slice(extra);
    m2mtrust_bench::run(&args(&argv)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_enrolment_completes_and_is_recorded_by_the_mef() {
    let mef = start_mef().await;
    let key = mef.key_file("kpm.hex", KPM_HEX);
    let report = bench(&mef.url, &key, &["-n", "40", "-c", "4", "--json"])
        .await
        .unwrap();

    assert_eq!(report.workload, Workload::Enrol);
    assert_eq!(report.url, mef.url);
    assert_eq!(report.count, 40);
    assert!(report.runs.is_empty());
    assert_eq!(report.enrol_runs.len(), 1);
    let run = &report.enrol_runs[0];
    assert_eq!(run.clients, 4);
    assert_eq!(run.kpm_id, KPM_ID);
    assert_eq!(run.mef_name, MEF, "defaults to the FQDN part of the KpmID");
    let e = &run.enrol;
    assert_eq!(e.phase, Phase::Enrol);
    assert_eq!((e.ok, e.errors), (40, 0), "{report}");
    assert!(e.error_kinds.is_empty());
    assert_eq!(e.connections, 40, "one new connection per enrolment");
    assert!(e.req_per_s > 0.0 && e.elapsed_ms > 0.0);
    let l = e.latency.unwrap();
    assert!(0.0 < l.p50_ms && l.p50_ms <= l.p90_ms, "{l:?}");
    assert!(l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms, "{l:?}");
    assert_eq!(report.errors(), 0);

    // One Ke record per enrolment, each under a fresh KeID of this MEF, bound to the assigned
    // AE-ID, with the target CSE's credential `12-<KeID>` written next to it.
    let records = mef.ke_records();
    assert_eq!(records.len(), 40);
    let all: Vec<String> = mef.credentials().into_iter().map(|c| c.id).collect();
    for r in &records {
        let ke_id = r.id.strip_prefix("ke:").unwrap();
        let ke_id = KpsaId::parse(ke_id).unwrap();
        assert_eq!(ke_id.issuer(), MEF);
        assert_eq!(r.bound_ids, ["Cdev"]);
        assert!(r.sealed_secret.is_some());
        let target = m2mtrust_channel::kpsa_credential_id(&ke_id);
        assert!(all.contains(&target), "no {target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn comma_list_runs_once_per_clients_value() {
    let mef = start_mef().await;
    let key = mef.key_file("kpm.hex", KPM_HEX);
    let report = bench(
        &mef.url,
        &key,
        &["-n", "6", "-c", "1,3", "--mef-name", "MEF.m2mtrust.example"],
    )
    .await
    .unwrap();

    let runs: Vec<_> = report
        .enrol_runs
        .iter()
        .map(|r| (r.clients, r.enrol.ok, r.enrol.errors))
        .collect();
    assert_eq!(runs, [(1, 6, 0), (3, 6, 0)]);
    assert_eq!(report.enrol_runs[0].mef_name, MEF);
    assert_eq!(mef.ke_records().len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_kpm_fails_every_enrolment_and_counts_them() {
    let mef = start_mef().await;
    let key = mef.key_file("wrong.hex", WRONG_KPM_HEX);
    let err = bench(&mef.url, &key, &["-n", "40", "-c", "4"])
        .await
        .unwrap_err();

    // As in W1, a run without a single success is an error, which names the failure counts.
    assert!(
        matches!(err, BenchError::AllFailed { clients: 4, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("enrol: 40 x bootstrap wrong_kpm (wrong Kpm: the pre-shared keys differ)"),
        "{msg}"
    );
    assert!(
        !msg.contains(WRONG_KPM_HEX) && !msg.contains(KPM_HEX),
        "{msg}"
    );
    assert!(mef.ke_records().is_empty());
}

/// A TCP relay in front of the MEF that closes every `nth` connection right after accepting
/// it, so a known share of enrolments fails.
async fn flaky_relay(mef: std::net::SocketAddr, nth: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if accepted.fetch_add(1, Ordering::SeqCst) % nth == nth - 1 {
                drop(inbound);
                continue;
            }
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(mef).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    format!("https://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_among_successes_are_reported_not_hidden() {
    let mef = start_mef().await;
    let key = mef.key_file("kpm.hex", KPM_HEX);
    let relay = flaky_relay(mef.addr, 4).await;
    let report = bench(&relay, &key, &["-n", "40", "-c", "4"]).await.unwrap();

    let e = &report.enrol_runs[0].enrol;
    assert_eq!((e.ok, e.errors), (30, 10), "{report}");
    assert_eq!(e.connections, 40);
    assert_eq!(e.error_kinds.len(), 1, "{:?}", e.error_kinds);
    assert_eq!(e.error_kinds[0].count, 10);
    assert!(
        e.error_kinds[0].kind.starts_with("bootstrap "),
        "{:?}",
        e.error_kinds
    );
    assert!(e.error_kinds[0].example.is_some());
    // The command exits non-zero on any counted failure.
    assert_eq!(report.errors(), 10);
    let text = report.to_string();
    assert!(
        text.contains("errors (c=4 enrol): 10 x bootstrap "),
        "{text}"
    );
    assert_eq!(mef.ke_records().len(), 30);
}

#[tokio::test]
async fn an_unreachable_mef_fails_every_enrolment() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("kpm.hex");
    std::fs::write(&key, KPM_HEX).unwrap();
    let err = bench(&url, &key, &["-n", "3"]).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BenchError::AllFailed { clients: 1, .. }));
    assert!(
        msg.contains("enrol: 3 x TCP connect ConnectionRefused"),
        "{msg}"
    );
}

#[tokio::test]
async fn mistakes_are_named_before_the_first_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("kpm.hex");
    std::fs::write(&key, KPM_HEX).unwrap();
    let key = key.to_str().unwrap();
    let bad_key = dir.path().join("bad.hex");
    std::fs::write(&bad_key, "not hex").unwrap();
    let bad_key = bad_key.to_str().unwrap();
    let url = "https://127.0.0.1:1";
    let cases: &[(&[&str], &str)] = &[
        (&["--url", url, "--kpm-file", key], "--kpm-id"),
        (&["--url", url, "--kpm-id", KPM_ID], "--kpm-file"),
        (
            &["--url", url, "--kpm-id", "no-at-sign", "--kpm-file", key],
            "--kpm-id",
        ),
        (
            &["--url", url, "--kpm-id", KPM_ID, "--kpm-file", bad_key],
            "--kpm-file",
        ),
        (
            &[
                "--url",
                url,
                "--kpm-id",
                KPM_ID,
                "--kpm-file",
                key,
                "--mef-name",
                "a b",
            ],
            "--mef-name",
        ),
        (
            &[
                "--url",
                url,
                "--kpm-id",
                KPM_ID,
                "--kpm-file",
                key,
                "--psk-id",
                KPM_ID,
            ],
            "--psk-id",
        ),
        (
            &[
                "--url",
                url,
                "--kpm-id",
                KPM_ID,
                "--kpm-file",
                key,
                "--origin",
                "Cx",
            ],
            "--origin",
        ),
        (
            &[
                "--url",
                url,
                "--kpm-id",
                KPM_ID,
                "--kpm-file",
                key,
                "--keep",
            ],
            "--keep",
        ),
    ];
    for (argv, flag) in cases {
        let err = m2mtrust_bench::run(&args(argv)).await.unwrap_err();
        assert!(
            matches!(&err, BenchError::InvalidArgument { what, .. } if what == flag),
            "{argv:?}: {err:?}"
        );
        assert!(!err.to_string().contains(KPM_HEX), "{err}");
    }

    // The default URL is a CSE's, not a MEF's.
    let err = m2mtrust_bench::run(&args(&["--kpm-id", KPM_ID, "--kpm-file", key]))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::InvalidUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("https://host:port"), "{err}");

    // W1 refuses the enrolment flags instead of ignoring them.
    let argv = ["bench", "--quiet", "--kpm-id", KPM_ID];
    let w1 = Cmd::try_parse_from(argv).unwrap().bench;
    let err = m2mtrust_bench::run(&w1).await.unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::InvalidArgument {
                what: "--kpm-id",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn workload_names_parse() {
    for name in ["enrol", "ENROL"] {
        let a = Cmd::try_parse_from(["bench", "--workload", name]).unwrap();
        assert_eq!(a.bench.workload, Workload::Enrol);
    }
    assert_eq!(Workload::Enrol.name(), "enrol");
    assert_eq!(
        serde_json::to_value(Workload::Enrol).unwrap(),
        serde_json::json!("enrol")
    );
}
