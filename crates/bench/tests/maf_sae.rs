//! Workload `maf-sae` against a real MAF started in-process on a loopback port (built as
//! `m2mtrust up` builds it: `MafClients`, the MAF procedures, `MefService` in `Role::Maf`) and
//! a stand-in for the CSE: a TLS-PSK acceptor whose credentials come from the MAF by Key
//! Retrieval over `RemoteMef`, with its CSE-ID certificate, as the CSE's do (the CSE's own
//! credential table lives in the cli crate), and are kept once retrieved.
#![allow(
    clippy::unwrap_used,
    reason = "test scaffolding: a panic fails the test"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use m2mtrust_bench::{BenchArgs, BenchError, Phase, Report, Workload};
use m2mtrust_channel::{
    Binding, CertifiedKey, Credentials, IdentityRules, KpsaId, PskCredential, PskKey, ServerConfig,
    TlsAcceptor, TrustAnchors,
};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn, Sealer, SecretKey};
use m2mtrust_mef::procedures::{AdminPolicy, MemoryRegistry, Policy, Procedures};
use m2mtrust_mef::remote::RemoteMef;
use m2mtrust_mef::server::{MefConfig, MefService, Role, TargetCse};
use m2mtrust_mef::target::StoreProvisioning;
use m2mtrust_mef::{Assignment, Bootstrap};
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{Durability, SqliteStore, Store, StoreExt};
use tokio::net::TcpListener;

const SP: &str = "m2mtrust.example";
const MAF: &str = "maf.m2mtrust.example";
const KM_ID: &str = "bench@maf.m2mtrust.example";
const KM_HEX: &str = "00112233445566778899aabbccddeeff";
const WRONG_KM_HEX: &str = "ffeeddccbbaa99887766554433221100";
const IN_CSE: &str = "/id-in";

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

/// A MAF and a CSE stand-in serving on loopback ports until dropped.
struct Setup {
    maf_url: String,
    cse_url: String,
    /// Key Retrievals the CSE made (one per key it did not hold yet).
    retrievals: Arc<AtomicU64>,
    /// Handshakes the CSE completed.
    handshakes: Arc<AtomicU64>,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Setup {
    /// Writes `hex` into a key file in the temporary folder.
    fn key_file(&self, name: &str, hex: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        path
    }
}

/// The CSE's side of §8.2.2.3 steps c-g: an unknown Key Identifier of its MAF is retrieved
/// from the MAF (blocking, inside the handshake) and kept for later handshakes.
struct MafKeys {
    maf: RemoteMef,
    kept: Mutex<HashMap<String, PskKey>>,
    retrievals: Arc<AtomicU64>,
}

impl Credentials for MafKeys {
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential> {
        let bound = Binding::Unbound;
        if let Some(key) = self.kept.lock().unwrap().get(kpsa_id.as_str()) {
            return Some(PskCredential {
                key: key.clone(),
                bound,
            });
        }
        if !self.maf.issues(kpsa_id) {
            return None;
        }
        let fetched = self.maf.retrieve_key_blocking(kpsa_id).ok()?;
        self.retrievals.fetch_add(1, Ordering::SeqCst);
        m2mtrust_maf::check_retrieved(fetched.suid?, fetched.expires, chrono::Utc::now()).ok()?;
        let key = PskKey::new(fetched.key.expose_bytes().to_vec()).ok()?;
        self.kept
            .lock()
            .unwrap()
            .insert(kpsa_id.to_string(), key.clone());
        Some(PskCredential { key, bound })
    }
}

/// The MAF as `m2mtrust up` builds it (`build_maf_with`: pre-provisioned Km `KM_ID` bound to
/// AE-ID `Cbench`, SP domain as the one administrating stakeholder), and the CSE `/id-in`
/// retrieving keys from it.
async fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate(SP).unwrap();
    let issued = ca.issue(&CertProfile::Fqdn(MAF.into()), 30).unwrap();
    let maf_certificate = CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let trust = TrustAnchors::from_pem(ca.cert_pem().as_bytes()).unwrap();
    let in_cse = CseId::parse(IN_CSE).unwrap();
    let rules = IdentityRules::new(SP, in_cse.clone(), in_cse.clone()).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("maf.sqlite"), Durability::Full).unwrap());
    let sealer = Arc::new(Sealer::from_key(SecretKey::generate(32).unwrap()).unwrap());

    // `m2mtrust maf client add --km-id KM_ID --km-hex KM_HEX --bind-ae-id Cbench`.
    let km_id = KpsaId::parse(KM_ID).unwrap();
    let km = PskKey::from_hex(KM_HEX).unwrap();
    let now = Timestamp::now();
    let record = m2mtrust_maf::km_record(
        &sealer,
        &km_id,
        km.expose_secret(),
        &Assignment::AeIds(vec!["Cbench".into()]),
        now,
        now.plus_secs(86_400),
    )
    .unwrap();
    store
        .write(move |w| w.put_credential(&record))
        .await
        .unwrap();

    let fqdn = Fqdn::parse(MAF).unwrap();
    let clients = Arc::new(m2mtrust_maf::MafClients::new(
        store.clone(),
        sealer.clone(),
        fqdn.clone(),
        None,
    ));
    let bootstrap = Bootstrap::new(
        fqdn.clone(),
        maf_certificate,
        Some(trust.clone()),
        rules.clone(),
        clients,
    )
    .unwrap()
    .for_maf();
    let policy = Policy::default().with_admin(
        Fqdn::parse(SP).unwrap(),
        AdminPolicy {
            client_config: Some(serde_json::json!({"targetID": IN_CSE})),
            initial_commands: Vec::new(),
            allow_updates: true,
        },
    );
    let procedures = Procedures::maf(fqdn.clone(), Arc::new(MemoryRegistry::new()), policy);
    let maf_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maf_addr = maf_listener.local_addr().unwrap();
    let config = MefConfig {
        role: Role::Maf,
        maf: None,
        target: TargetCse {
            cse_id: in_cse.clone(),
            sp_domain: SP.into(),
            cse_base_uri: String::new(),
        },
        base_uri: format!("https://{MAF}:{}", maf_addr.port()),
        est: None,
        procedures: Some(Arc::new(procedures)),
    };
    let provisioning = Arc::new(StoreProvisioning::new(store, sealer, false));
    let maf = Arc::new(MefService::new(bootstrap, config, provisioning));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(maf.serve(maf_listener, async move {
        let _ = stopped.await;
    }));

    // The CSE: a CSE-ID certificate to authenticate to the MAF with, PSK handshakes only.
    let issued = ca
        .issue(
            &CertProfile::CseId {
                cse_id: IN_CSE.into(),
                in_cse_id: IN_CSE.into(),
                sp_domain: SP.into(),
            },
            30,
        )
        .unwrap();
    let cse_certificate = CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let retrievals = Arc::new(AtomicU64::new(0));
    let credentials = Arc::new(MafKeys {
        maf: RemoteMef::new(
            maf_addr.to_string(),
            MAF.into(),
            cse_certificate,
            trust,
            Duration::from_secs(5),
        ),
        kept: Mutex::new(HashMap::new()),
        retrievals: retrievals.clone(),
    });
    let acceptor = Arc::new(TlsAcceptor::new(ServerConfig::new(rules), credentials).unwrap());
    let cse_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cse_addr = cse_listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicU64::new(0));
    let completed = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = cse_listener.accept().await {
            let (acceptor, completed) = (acceptor.clone(), completed.clone());
            tokio::spawn(async move {
                if acceptor.accept(tcp).await.is_ok() {
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });

    Setup {
        maf_url: format!("https://{maf_addr}"),
        cse_url: format!("https://{cse_addr}"),
        retrievals,
        handshakes,
        dir,
        _stop: stop,
    }
}

fn args(argv: &[&str]) -> BenchArgs {
    let mut full = vec!["bench", "--quiet", "--workload", "maf-sae"];
    full.extend_from_slice(argv);
    Cmd::try_parse_from(full).unwrap().bench
}

async fn bench(setup: &Setup, km_hex: &str, extra: &[&str]) -> Result<Report, BenchError> {
    let key = setup.key_file("km.hex", km_hex);
    let key = key.to_str().unwrap();
    let mut argv = vec![
        "--url",
        &setup.cse_url,
        "--maf",
        &setup.maf_url,
        "--km-id",
        KM_ID,
        "--km-file",
        key,
    ];
    argv.extend_from_slice(extra);
    m2mtrust_bench::run(&args(&argv)).await
}

/// The counter once it reaches `expected`, or its value after 5 s.
async fn settled(counter: &AtomicU64, expected: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = counter.load(Ordering::SeqCst);
        if now >= expected || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_association_completes_and_cached_keys_are_not_retrieved_again() {
    let setup = start().await;
    let report = bench(&setup, KM_HEX, &["-n", "12", "--json"])
        .await
        .unwrap();

    assert_eq!(report.workload, Workload::MafSae);
    assert_eq!(report.url, setup.cse_url);
    assert_eq!(report.count, 12);
    assert!(report.runs.is_empty() && report.enrol_runs.is_empty());
    assert_eq!(report.maf_sae_runs.len(), 1);
    let run = &report.maf_sae_runs[0];
    assert_eq!(run.clients, 1);
    assert_eq!(run.km_id, KM_ID);
    assert_eq!(run.maf_name, MAF, "defaults to the FQDN part of the KmID");
    assert_eq!(run.maf_url, setup.maf_url);
    assert_eq!(run.target_cse_id, IN_CSE);

    let sae = &run.sae;
    assert_eq!(sae.phase, Phase::Sae);
    assert_eq!((sae.ok, sae.errors), (12, 0), "{report}");
    assert_eq!(sae.connections, 24, "one to the MAF, one to the CSE");
    let cached = &run.cached;
    assert_eq!(cached.phase, Phase::Cached);
    assert_eq!((cached.ok, cached.errors), (12, 0), "{report}");
    assert_eq!(cached.connections, 12, "one per handshake");
    for p in [sae, cached] {
        let l = p.latency.unwrap();
        assert!(0.0 < l.p50_ms && l.p50_ms <= l.p90_ms, "{l:?}");
        assert!(l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms, "{l:?}");
        assert!(p.req_per_s > 0.0);
    }
    // One key per association plus the cached phase's own, each retrieved exactly once.
    assert_eq!(run.keys_registered, 13);
    assert_eq!(setup.retrievals.load(Ordering::SeqCst), 13);
    // The CSE side counts a handshake when its accept task finishes, which may be just after
    // the client saw it complete.
    assert_eq!(settled(&setup.handshakes, 12 + 1 + 12).await, 12 + 1 + 12);
    assert_eq!(report.errors(), 0);

    let text = report.to_string();
    assert!(
        text.starts_with(&format!(
            "workload maf-sae on {}, 12 security associations per phase as {KM_ID} via MAF \
             {MAF} ({}) for {IN_CSE}\n",
            setup.cse_url, setup.maf_url
        )),
        "{text}"
    );
    assert!(text.contains("      1  sae          12       0"), "{text}");
    assert!(text.contains("      1  cached       12       0"), "{text}");
    assert!(
        text.contains("left behind: 13 key registration(s)"),
        "{text}"
    );

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["workload"], "maf-sae");
    assert_eq!(json["maf_sae_runs"][0]["sae"]["phase"], "sae");
    assert_eq!(json["maf_sae_runs"][0]["cached"]["phase"], "cached");
    assert!(json.get("enrol_runs").is_none(), "{json}");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn comma_list_runs_once_per_clients_value_and_counts_every_attempt() {
    let setup = start().await;
    // The client registration of the first invocation is found, not repeated, by the second.
    bench(&setup, KM_HEX, &["-n", "2"]).await.unwrap();
    let report = bench(
        &setup,
        KM_HEX,
        &["-n", "9", "-c", "1,3", "--maf-name", "MAF.m2mtrust.example"],
    )
    .await
    .unwrap();

    let clients: Vec<u32> = report.maf_sae_runs.iter().map(|r| r.clients).collect();
    assert_eq!(clients, [1, 3]);
    assert_eq!(report.maf_sae_runs[0].maf_name, MAF);
    for run in &report.maf_sae_runs {
        // Concurrent first handshakes may find the CSE's retrieval busy (it retrieves one key
        // at a time and refuses the others); whatever happens, every attempt is either a
        // success or a counted failure.
        assert_eq!(run.sae.ok + run.sae.errors, 9, "{report}");
        let setup: u64 = run
            .cached
            .error_kinds
            .iter()
            .filter(|e| e.kind.starts_with("setup "))
            .map(|e| e.count)
            .sum();
        assert_eq!(run.cached.ok + run.cached.errors, 9 + setup, "{report}");
        assert!(run.sae.ok > 0 && run.cached.ok > 0, "{report}");
        let counted: u64 = run.sae.error_kinds.iter().map(|e| e.count).sum();
        assert_eq!(counted, run.sae.errors);
    }
    let all: u64 = report
        .maf_sae_runs
        .iter()
        .map(|r| r.sae.errors + r.cached.errors)
        .sum();
    assert_eq!(report.errors(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_for_another_cse_are_refused_by_the_cse_and_counted() {
    let setup = start().await;
    let err = bench(&setup, KM_HEX, &["-n", "3", "--target-cse-id", "/id-other"])
        .await
        .unwrap_err();

    // The MAF registers the keys, but will not give them to /id-in: the CSE does not know the
    // Key Identifier and the handshake fails.
    assert!(
        matches!(err, BenchError::AllFailed { clients: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("sae: 3 x CSE handshake psk_identity_refused_by_peer"),
        "{msg}"
    );
    assert!(
        msg.contains("cached: 1 x setup CSE handshake psk_identity_refused_by_peer"),
        "{msg}"
    );
    assert_eq!(setup.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_km_or_an_unknown_stakeholder_stops_before_the_first_association() {
    let setup = start().await;
    let err = bench(&setup, WRONG_KM_HEX, &["-n", "3"]).await.unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::Handshake {
                step: "registering the MAF client",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("wrong Kpm"), "{msg}");
    assert!(
        !msg.contains(WRONG_KM_HEX) && !msg.contains(KM_HEX),
        "{msg}"
    );

    let err = bench(
        &setup,
        KM_HEX,
        &["-n", "3", "--admin-fqdn", "other.example"],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::MafRefused {
                step: "registering the MAF client",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(setup.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_cse_fails_every_association() {
    let setup = start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cse = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    let key = setup.key_file("km.hex", KM_HEX);
    let argv = [
        "--url",
        &cse,
        "--maf",
        &setup.maf_url,
        "--km-id",
        KM_ID,
        "--km-file",
        key.to_str().unwrap(),
        "-n",
        "3",
    ];
    let err = m2mtrust_bench::run(&args(&argv)).await.unwrap_err();
    assert!(matches!(err, BenchError::AllFailed { clients: 1, .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("sae: 3 x CSE TCP connect ConnectionRefused"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_unreachable_maf_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maf = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("km.hex");
    std::fs::write(&key, KM_HEX).unwrap();
    let argv = [
        "--url",
        "https://127.0.0.1:1",
        "--maf",
        &maf,
        "--km-id",
        KM_ID,
        "--km-file",
        key.to_str().unwrap(),
    ];
    let err = m2mtrust_bench::run(&args(&argv)).await.unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::Transport {
                step: "registering the MAF client",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ConnectionRefused") || err.to_string().contains("refused"));
}

#[tokio::test]
async fn mistakes_are_named_before_the_first_association() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("km.hex");
    std::fs::write(&key, KM_HEX).unwrap();
    let key = key.to_str().unwrap();
    let bad_key = dir.path().join("bad.hex");
    std::fs::write(&bad_key, "not hex").unwrap();
    let bad_key = bad_key.to_str().unwrap();
    let cse = "https://127.0.0.1:1";
    let maf = "https://127.0.0.1:2";
    let ok: [&str; 8] = [
        "--url",
        cse,
        "--maf",
        maf,
        "--km-id",
        KM_ID,
        "--km-file",
        key,
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = ok.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--url", cse, "--km-id", KM_ID, "--km-file", key],
            "--maf",
        ),
        (
            vec!["--url", cse, "--maf", maf, "--km-file", key],
            "--km-id",
        ),
        (
            vec!["--url", cse, "--maf", maf, "--km-id", KM_ID],
            "--km-file",
        ),
        (
            vec![
                "--url",
                cse,
                "--maf",
                maf,
                "--km-id",
                "no-at",
                "--km-file",
                key,
            ],
            "--km-id",
        ),
        (
            vec![
                "--url",
                cse,
                "--maf",
                maf,
                "--km-id",
                KM_ID,
                "--km-file",
                bad_key,
            ],
            "--km-file",
        ),
        (with(&["--maf-name", "a b"]), "--maf-name"),
        (with(&["--admin-fqdn", "a b"]), "--admin-fqdn"),
        (with(&["--target-cse-id", "//sp/id-in"]), "--target-cse-id"),
        (with(&["--psk-id", KM_ID]), "--psk-id"),
        (with(&["--kpm-id", KM_ID]), "--kpm-id"),
        (with(&["--origin", "Cx"]), "--origin"),
        (with(&["--keep"]), "--keep"),
    ];
    for (argv, flag) in &cases {
        let err = m2mtrust_bench::run(&args(argv)).await.unwrap_err();
        assert!(
            matches!(&err, BenchError::InvalidArgument { what, .. } if what == flag),
            "{argv:?}: {err:?}"
        );
        assert!(!err.to_string().contains(KM_HEX), "{err}");
    }

    // The default URL is a CSEBase over http, not a TLS listener; so is a path.
    for url in [
        "http://127.0.0.1:8080/cse-in",
        "https://127.0.0.1:8443/cse-in",
    ] {
        let mut argv = ok.to_vec();
        argv[1] = url;
        let err = m2mtrust_bench::run(&args(&argv)).await.unwrap_err();
        assert!(matches!(err, BenchError::InvalidUrl { .. }), "{err:?}");
        assert!(err.to_string().contains("CSE's TLS listener"), "{err}");
    }
    let mut argv = ok.to_vec();
    argv[3] = "http://127.0.0.1:8445";
    let err = m2mtrust_bench::run(&args(&argv)).await.unwrap_err();
    assert!(err.to_string().contains("MAF's TLS listener"), "{err}");

    // W1 and enrol refuse the maf-sae flags instead of ignoring them.
    let w1 = Cmd::try_parse_from(["bench", "--quiet", "--maf", maf])
        .unwrap()
        .bench;
    let err = m2mtrust_bench::run(&w1).await.unwrap_err();
    assert!(
        matches!(err, BenchError::InvalidArgument { what: "--maf", .. }),
        "{err:?}"
    );
    let enrol = Cmd::try_parse_from([
        "bench",
        "--quiet",
        "--workload",
        "enrol",
        "--url",
        maf,
        "--kpm-id",
        KM_ID,
        "--kpm-file",
        key,
        "--km-id",
        KM_ID,
    ])
    .unwrap()
    .bench;
    let err = m2mtrust_bench::run(&enrol).await.unwrap_err();
    assert!(
        matches!(
            err,
            BenchError::InvalidArgument {
                what: "--km-id",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn workload_names_parse() {
    for name in ["maf-sae", "MAF-SAE"] {
        let a = Cmd::try_parse_from(["bench", "--workload", name]).unwrap();
        assert_eq!(a.bench.workload, Workload::MafSae);
    }
    assert_eq!(Workload::MafSae.name(), "maf-sae");
    assert_eq!(
        serde_json::to_value(Workload::MafSae).unwrap(),
        serde_json::json!("maf-sae")
    );
}
