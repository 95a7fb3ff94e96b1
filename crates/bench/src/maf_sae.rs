//! Workload `maf-sae`: MAF-based security associations with a CSE per second (TS-0003
//! §8.2.2.3, MAF-based Security Association Establishment Framework).
//!
//! One association is what Entity A does to talk to Entity B (the CSE) with a key distributed
//! by an M2M Authentication Function:
//!
//! 1. a new TCP connection to the MAF and the MAF Handshake (§8.8.2.2) with the client's
//!    pre-provisioned master credential: `psk_identity` = KmID, `psk` = Km;
//! 2. the RFC 5705 export `EXPORTER-oneM2M-Connection` of that session, split into KcID and
//!    Kc (§10.3.1);
//! 3. MAF Key Registration (§8.8.2.7) without Key Value, SUID 32, the CSE as the one target:
//!    the MAF stores its own copy of the export and names the key `hex(KcID)@MAF-FQDN`;
//! 4. a new TCP connection to the CSE and a TLS-PSK handshake with `psk_identity` = that Key
//!    Identifier and `psk` = Kc (§8.2.2.3 steps b-g), during which the CSE retrieves Kc from
//!    the MAF (Key Retrieval, §8.8.2.8). The completed handshake ends the association.
//!
//! Phase `sae` measures all four steps; phase `cached` measures step 4 alone with keys the CSE
//! already holds (each client registers one key and completes one handshake with it before
//! the phase starts). The device side is the MEF crate's client library
//! ([`m2mtrust_mef::session`]), so the bench measures what a device experiences.
//!
//! A MAF Key Registration needs a MAF Client Registration for the same administrating
//! stakeholder (§8.8.2.7 pre-condition); [`prepare`] makes one before the first run, or finds
//! the existing one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use m2mtrust_channel::{ClientConfig, HandshakeError, KpsaId, PskKey, TlsConnector};
use m2mtrust_crypto::Fqdn;
use m2mtrust_mef::EnroleeCredential;
use m2mtrust_mef::procedures::types::Suid;
use m2mtrust_mef::session::{
    KeyRegistrationRequest, KeyValue, MefSession, RegistrationRequest, SessionError, maf_register,
    maf_register_key,
};
use m2mtrust_model::{CseId, ResponseStatusCode};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::client::Endpoint;
use crate::error::BenchError;
use crate::progress;
use crate::report::{MafSaeRunReport, Phase};
use crate::stats::Tally;
use crate::tls::key_file;

/// TS-0003 Table 8.8.1-1 (TS-0004 m2m:suid 32): a MAF-distributed key for the SAEF.
const SAEF_SUID: Suid = Suid(32);

/// Proposed lifetime of every registered key: long enough for any run, short enough that
/// the keys a run leaves at the MAF and the CSE go away by themselves.
const KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// Proposed lifetime of the MAF Client Registration made by [`prepare`].
const REGISTRATION_LIFETIME: chrono::Duration = chrono::Duration::days(1);

/// Default `--admin-fqdn`.
const DEFAULT_ADMIN_FQDN: &str = "m2mtrust.example";

/// Default `--target-cse-id`.
const DEFAULT_TARGET_CSE_ID: &str = "/id-in";

/// Arguments checked, Km read and both addresses resolved once for all runs, so that every
/// mistake shows before the first association and no run measures name resolution.
pub(crate) struct Settings {
    cse: Endpoint,
    cse_addr: SocketAddr,
    maf: Endpoint,
    maf_addr: SocketAddr,
    /// TLS server name of the MAF and issuer of every Key Identifier.
    maf_name: Fqdn,
    km_id: KpsaId,
    km: PskKey,
    admin_fqdn: Fqdn,
    target_cse_id: CseId,
    count: u64,
    timeout: Duration,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidArgument {
        what,
        reason: reason.into(),
    }
}

impl Settings {
    /// Checks the arguments of `--workload maf-sae`, reads Km and resolves the CSE's and the
    /// MAF's addresses.
    pub async fn from_args(args: &BenchArgs) -> Result<Self, BenchError> {
        if args.count == 0 {
            return Err(invalid("--count", "must be at least 1"));
        }
        if args.clients.contains(&0) {
            return Err(invalid("--clients", "every value must be at least 1"));
        }
        // Flags of other workloads would be silently ignored; refuse them instead.
        if let Some(flag) = args.tls.first_given() {
            return Err(invalid(
                flag,
                "not used by --workload maf-sae, which authenticates to the CSE with keys it \
                 registers at the MAF (--km-id and --km-file)",
            ));
        }
        if let Some(flag) = args.enrol.first_given() {
            return Err(invalid(flag, "only used by --workload enrol"));
        }
        if let Some(flag) = args.direct_authz.first_given() {
            return Err(invalid(flag, "only used by --workload direct-authz"));
        }
        if args.origin.is_some() {
            return Err(invalid("--origin", "only used by --workload W1"));
        }
        if args.keep {
            return Err(invalid(
                "--keep",
                "only used by --workload W1; registered keys stay at the MAF until they expire",
            ));
        }
        let cse = Endpoint::parse(
            &args.url,
            "--workload maf-sae connects to the CSE's TLS listener",
        )?;
        let a = &args.maf_sae;
        let Some(maf_url) = &a.maf else {
            return Err(invalid(
                "--maf",
                "required with --workload maf-sae: the MAF's address, https://host:port",
            ));
        };
        let maf = Endpoint::parse(maf_url, "--maf names the MAF's TLS listener")?;
        let Some(id) = &a.km_id else {
            return Err(invalid(
                "--km-id",
                "required with --workload maf-sae: the KmID of a master credential the MAF \
                 knows (`m2mtrust maf client add`)",
            ));
        };
        let km_id = KpsaId::parse(id).map_err(|e| invalid("--km-id", format!("{id:?}: {e}")))?;
        let Some(path) = &a.km_file else {
            return Err(invalid(
                "--km-file",
                "required with --workload maf-sae: the file holding Km in hex",
            ));
        };
        let km = key_file("--km-file", path)?;
        let maf_name = match &a.maf_name {
            Some(name) => {
                Fqdn::parse(name).map_err(|e| invalid("--maf-name", format!("{name:?}: {e}")))?
            }
            None => Fqdn::parse(km_id.issuer()).map_err(|e| {
                invalid(
                    "--km-id",
                    format!("its FQDN part cannot name the MAF ({e}); give --maf-name"),
                )
            })?,
        };
        let admin = a.admin_fqdn.as_deref().unwrap_or(DEFAULT_ADMIN_FQDN);
        let admin_fqdn =
            Fqdn::parse(admin).map_err(|e| invalid("--admin-fqdn", format!("{admin:?}: {e}")))?;
        let target = a.target_cse_id.as_deref().unwrap_or(DEFAULT_TARGET_CSE_ID);
        let target_cse_id = CseId::parse(target)
            .map_err(|e| invalid("--target-cse-id", format!("{target:?}: {e}")))?;

        let cse_addr = cse.resolve("resolving the CSE address").await?;
        let maf_addr = maf.resolve("resolving the MAF address").await?;
        Ok(Self {
            cse,
            cse_addr,
            maf,
            maf_addr,
            maf_name,
            km_id,
            km,
            admin_fqdn,
            target_cse_id,
            count: args.count,
            timeout: args.timeout,
        })
    }

    /// The CSE URL, `https://host:port`, as reports name it.
    pub fn url(&self) -> &str {
        &self.cse.url
    }

    fn credential(&self) -> EnroleeCredential {
        EnroleeCredential::Psk {
            kpm_id: self.km_id.clone(),
            kpm: self.km.clone(),
        }
    }

    /// Table 8.8.2.7-1 without Key Value: the key is the session's export.
    fn key_request(&self) -> KeyRegistrationRequest {
        KeyRegistrationRequest {
            admin_fqdn: self.admin_fqdn.clone(),
            expiration: Utc::now() + KEY_LIFETIME,
            labels: None,
            suid: SAEF_SUID,
            target_ids: vec![self.target_cse_id.to_string()],
        }
    }

    /// TCP connect (nodelay, counted) and MAF Handshake.
    async fn maf_session(&self, connections: &AtomicU64) -> Result<MefSession, Failure> {
        let tcp = TcpStream::connect(self.maf_addr)
            .await
            .map_err(Failure::MafConnect)?;
        connections.fetch_add(1, Ordering::Relaxed);
        // Small request/response flights; Nagle's algorithm would only add delay.
        tcp.set_nodelay(true).map_err(Failure::MafConnect)?;
        MefSession::connect(tcp, self.maf_name.as_str(), self.credential(), None)
            .await
            .map_err(Failure::Maf)
    }
}

/// §8.8.2.7 pre-condition: a MAF Client Registration of the client for `--admin-fqdn`. Made
/// once before the first run; an existing one (a previous bench, `m2mtrust maf register-key`)
/// is used as it is.
pub(crate) async fn prepare(settings: &Settings) -> Result<(), BenchError> {
    let step = "registering the MAF client";
    let fail = |failure: Failure| match failure {
        Failure::Maf(SessionError::Refused { rsc, dbg, .. }) => BenchError::MafRefused {
            step,
            rsc: rsc.0,
            dbg: (!dbg.is_empty()).then_some(dbg),
        },
        Failure::Maf(SessionError::Bootstrap(e)) => BenchError::Handshake {
            step,
            url: settings.maf.url.clone(),
            reason: format!("server name {}: {e}", settings.maf_name),
        },
        other => BenchError::Transport {
            step,
            url: settings.maf.url.clone(),
            reason: other.to_string(),
        },
    };
    let connections = AtomicU64::new(0);
    let attempt = async {
        let mut session = settings.maf_session(&connections).await?;
        let request = RegistrationRequest {
            admin_fqdn: settings.admin_fqdn.clone(),
            expiration: Utc::now() + REGISTRATION_LIFETIME,
            labels: None,
        };
        match maf_register(session.connection(), &settings.maf_name, &request).await {
            Ok(_) => Ok(()),
            Err(e) if e.rsc() == Some(ResponseStatusCode::ORIGINATOR_HAS_ALREADY_REGISTERED) => {
                Ok(())
            }
            Err(e) => Err(Failure::Maf(e)),
        }
    };
    match tokio::time::timeout(settings.timeout, attempt).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(Failure::Timeout(settings.timeout))),
    }
}

/// Why one association (or one handshake) failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("TCP connect to the MAF failed: {0}")]
    MafConnect(std::io::Error),
    #[error("MAF: {0}")]
    Maf(SessionError),
    #[error("the MAF named the exported key {got}, not hex(KcID) {expected}")]
    RkiMismatch { got: String, expected: String },
    #[error("the MAF's Key Identifier {0:?} is not a KpsaID")]
    KeyId(String),
    #[error("TLS client configuration: {0}")]
    Config(String),
    #[error("TCP connect to the CSE failed: {0}")]
    CseConnect(std::io::Error),
    #[error("CSE handshake: {0}")]
    Cse(HandshakeError),
    #[error("not completed within {0:?}")]
    Timeout(Duration),
}

impl Failure {
    /// Short, low-cardinality description used to group failures; the full message of the
    /// first occurrence goes into the report as its example.
    fn kind(&self) -> String {
        match self {
            Failure::MafConnect(e) => format!("MAF TCP connect {:?}", e.kind()),
            Failure::Maf(SessionError::Bootstrap(e)) => format!("MAF handshake {}", e.reason()),
            Failure::Maf(SessionError::Refused { rsc, .. }) => format!("MAF RSC {}", rsc.0),
            Failure::Maf(SessionError::Export(_)) => "MAF key export".into(),
            Failure::Maf(SessionError::Connection(_)) => "MAF session".into(),
            Failure::Maf(_) | Failure::KeyId(_) => "MAF protocol".into(),
            Failure::RkiMismatch { .. } => "rki mismatch".into(),
            Failure::Config(_) => "client config".into(),
            Failure::CseConnect(e) => format!("CSE TCP connect {:?}", e.kind()),
            Failure::Cse(e) => format!("CSE handshake {}", e.reason()),
            Failure::Timeout(_) => "timeout".into(),
        }
    }
}

/// Counters shared by the workers of one run.
#[derive(Default)]
struct Counters {
    /// TCP connections opened, to the MAF and to the CSE.
    connections: AtomicU64,
    /// Keys the MAF registered.
    registered: AtomicU64,
}

/// Steps 1-3: MAF Handshake, export, Key Registration. Returns a connector that offers the
/// registered Key Identifier and Kc to the CSE.
async fn register_key(settings: &Settings, counters: &Counters) -> Result<TlsConnector, Failure> {
    let mut session = settings.maf_session(&counters.connections).await?;
    let (conn, export) = session.parts();
    let key = maf_register_key(
        conn,
        &settings.maf_name,
        &settings.key_request(),
        KeyValue::Exported(export),
    )
    .await
    .map_err(Failure::Maf)?;
    counters.registered.fetch_add(1, Ordering::Relaxed);
    // TS-0003 §8.3.5.2.7 step 6 (as §8.8.2.7 step 8): the MAF names an exported key by
    // hex(KcID); another name would mean a different export (or a collision, which 128 random
    // bits make practically impossible).
    let expected = export.relative_key_id_hex();
    if key.relative_key_id != expected {
        return Err(Failure::RkiMismatch {
            got: key.relative_key_id,
            expected,
        });
    }
    let kid = KpsaId::parse(&key.key_id).map_err(|_| Failure::KeyId(key.key_id.clone()))?;
    let kc =
        PskKey::new(key.key.expose_bytes().to_vec()).map_err(|e| Failure::Config(e.to_string()))?;
    let mut config = ClientConfig::psk(kid, kc);
    config.handshake_timeout = settings.timeout;
    TlsConnector::new(config).map_err(|e| Failure::Config(e.to_string()))
}

/// Step 4: a new TCP connection to the CSE and the TLS-PSK handshake; the connection is
/// closed as soon as the handshake completes.
async fn handshake(
    settings: &Settings,
    connector: &TlsConnector,
    counters: &Counters,
) -> Result<(), Failure> {
    let tcp = TcpStream::connect(settings.cse_addr)
        .await
        .map_err(Failure::CseConnect)?;
    counters.connections.fetch_add(1, Ordering::Relaxed);
    tcp.set_nodelay(true).map_err(Failure::CseConnect)?;
    let stream = connector
        .connect(tcp, &settings.cse.host)
        .await
        .map_err(Failure::Cse)?;
    drop(stream);
    Ok(())
}

/// Runs `work` within the timeout and returns how long it took.
async fn timed<F>(timeout: Duration, work: F) -> Result<Duration, Failure>
where
    F: Future<Output = Result<(), Failure>>,
{
    let started = Instant::now();
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// One complete association (steps 1-4).
async fn associate(settings: &Settings, counters: &Counters) -> Result<Duration, Failure> {
    timed(settings.timeout, async {
        let connector = register_key(settings, counters).await?;
        handshake(settings, &connector, counters).await
    })
    .await
}

/// One pass of the workload with `clients` concurrent clients: `settings.count` associations,
/// then `settings.count` cached handshakes. A phase in which nothing succeeded makes the run
/// an error, as in W1.
pub(crate) async fn run(
    settings: &Arc<Settings>,
    clients: u32,
    hide_progress: bool,
) -> Result<MafSaeRunReport, BenchError> {
    let counters = Arc::new(Counters::default());
    let sae = sae_phase(settings, clients, &counters, hide_progress).await?;
    let cached = cached_phase(settings, clients, &counters, hide_progress).await?;
    if sae.ok == 0 || cached.ok == 0 {
        return Err(BenchError::all_failed(clients, &[sae, cached]));
    }
    Ok(MafSaeRunReport {
        clients,
        km_id: settings.km_id.to_string(),
        maf_name: settings.maf_name.to_string(),
        maf_url: settings.maf.url.clone(),
        target_cse_id: settings.target_cse_id.to_string(),
        sae,
        cached,
        keys_registered: counters.registered.load(Ordering::Relaxed),
    })
}

/// Phase `sae`: complete associations, each on new connections.
async fn sae_phase(
    settings: &Arc<Settings>,
    clients: u32,
    counters: &Arc<Counters>,
    hide_progress: bool,
) -> Result<crate::report::PhaseReport, BenchError> {
    let bar = progress::bar_in(
        settings.count,
        format!("c={clients} sae"),
        "sae/s",
        hide_progress,
    );
    let next = Arc::new(AtomicU64::new(0));
    let connections_before = counters.connections.load(Ordering::Relaxed);
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for _ in 0..clients.max(1) {
        let (settings, next, counters, bar) = (
            settings.clone(),
            next.clone(),
            counters.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < settings.count {
                match associate(&settings, &counters).await {
                    Ok(latency) => tally.ok(latency),
                    Err(failure) => tally.error(failure.kind(), || Some(failure.to_string())),
                }
                bar.inc(1);
            }
            tally
        });
    }
    let total = join(workers).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let connections = counters.connections.load(Ordering::Relaxed) - connections_before;
    Ok(total.into_phase(Phase::Sae, elapsed, connections))
}

/// Phase `cached`: every client first registers a key and completes one handshake with it
/// (so that the CSE has retrieved Kc), untimed and one client at a time; then the clients
/// share `settings.count` handshakes under their keys. Setup failures are counted as
/// `setup …` errors of the phase.
async fn cached_phase(
    settings: &Arc<Settings>,
    clients: u32,
    counters: &Arc<Counters>,
    hide_progress: bool,
) -> Result<crate::report::PhaseReport, BenchError> {
    // One client after the other: the setup is not measured, and concurrent first handshakes
    // could meet a CSE that retrieves one key at a time, leaving the phase with fewer clients
    // than asked for.
    let mut setup_errors = Tally::default();
    let mut connectors = Vec::new();
    for _ in 0..clients.max(1) {
        let mut connector = None;
        let warm_up = timed(settings.timeout, async {
            let c = register_key(settings, counters).await?;
            handshake(settings, &c, counters).await?;
            connector = Some(c);
            Ok(())
        })
        .await;
        match (warm_up, connector) {
            (Ok(_), Some(connector)) => connectors.push(connector),
            (Ok(_), None) => {}
            (Err(failure), _) => setup_errors.error(format!("setup {}", failure.kind()), || {
                Some(failure.to_string())
            }),
        }
    }

    let bar = progress::bar_in(
        settings.count,
        format!("c={clients} cached"),
        "hs/s",
        hide_progress,
    );
    let next = Arc::new(AtomicU64::new(0));
    let connections_before = counters.connections.load(Ordering::Relaxed);
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for connector in connectors {
        let (settings, next, counters, bar) = (
            settings.clone(),
            next.clone(),
            counters.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < settings.count {
                let attempt = timed(
                    settings.timeout,
                    handshake(&settings, &connector, &counters),
                );
                match attempt.await {
                    Ok(latency) => tally.ok(latency),
                    Err(failure) => tally.error(failure.kind(), || Some(failure.to_string())),
                }
                bar.inc(1);
            }
            tally
        });
    }
    let mut total = join(workers).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    total.merge(setup_errors);
    let connections = counters.connections.load(Ordering::Relaxed) - connections_before;
    Ok(total.into_phase(Phase::Cached, elapsed, connections))
}

/// Merges the tallies of all workers.
async fn join(mut workers: JoinSet<Tally>) -> Result<Tally, BenchError> {
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.map_err(|e| BenchError::Worker(e.to_string()))?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_group_by_stable_kind() {
        let refused = Failure::Maf(SessionError::Refused {
            procedure: "MAF Key Registration",
            rsc: ResponseStatusCode(4000),
            dbg: "no".into(),
        });
        assert_eq!(refused.kind(), "MAF RSC 4000");
        let wrong = Failure::Maf(SessionError::Bootstrap(
            m2mtrust_mef::BootstrapError::WrongKpm,
        ));
        assert_eq!(wrong.kind(), "MAF handshake wrong_kpm");
        let unknown = Failure::Cse(HandshakeError::UnknownIdentity("x@maf.example".into()));
        assert_eq!(unknown.kind(), "CSE handshake unknown_psk_identity");
        let timeout = Failure::Timeout(Duration::from_millis(200));
        assert_eq!(timeout.kind(), "timeout");
        assert_eq!(timeout.to_string(), "not completed within 200ms");
        let refused_connect = Failure::CseConnect(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(refused_connect.kind(), "CSE TCP connect ConnectionRefused");
        let mismatch = Failure::RkiMismatch {
            got: "AA".into(),
            expected: "BB".into(),
        };
        assert_eq!(mismatch.kind(), "rki mismatch");
    }

    #[test]
    fn saef_suid_is_the_maf_key_for_the_saef() {
        assert_eq!(
            SAEF_SUID.maf_key_usage(),
            Some(m2mtrust_mef::procedures::types::KeyUsage::Saef)
        );
    }
}
