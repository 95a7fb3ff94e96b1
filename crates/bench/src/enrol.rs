//! Workload `enrol`: complete enrolments per second against an M2M Enrolment Function.
//!
//! One enrolment is what a device does once in its life (TS-0003 §8.3.2.1, PPSK RSPF): a new
//! TCP connection, the TLS-PSK bootstrap handshake with the factory KpmID and Kpm, the RFC 5705
//! export of Ke and KeID (§10.3.1, §10.3.4), and the Enrolment Exchange (Tables 8.3.2.1-1 to
//! 8.3.2.1-4), which ends only after the MEF has durably recorded Ke and delivered the target's
//! key. The client side is the device's own code, [`m2mtrust_mef::client::enrol`], so the bench
//! measures exactly what a device experiences. The same KpmID may enrol again and again; each
//! enrolment gets a fresh KeID and leaves its record in the MEF.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use m2mtrust_channel::{KpsaId, PskKey};
use m2mtrust_crypto::Fqdn;
use m2mtrust_mef::EnroleeCredential;
use m2mtrust_mef::client::{EnrolError, EnrolOptions, enrol};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::client::Endpoint;
use crate::error::BenchError;
use crate::progress;
use crate::report::{EnrolRunReport, Phase};
use crate::stats::Tally;
use crate::tls::key_file;

/// Arguments checked, the key read and the MEF address resolved once for all runs, so that
/// every mistake shows before the first enrolment and no run measures name resolution.
pub(crate) struct Settings {
    /// The MEF URL as reported, `https://host:port`.
    url: String,
    addr: SocketAddr,
    /// TLS server name and KeID issuer.
    mef_name: Fqdn,
    kpm_id: KpsaId,
    kpm: PskKey,
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
    /// Checks the arguments of `--workload enrol`, reads Kpm and resolves the MEF's address.
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
                "not used by --workload enrol, which authenticates with --kpm-id and --kpm-file",
            ));
        }
        if args.origin.is_some() {
            return Err(invalid("--origin", "only used by --workload W1"));
        }
        if args.keep {
            return Err(invalid(
                "--keep",
                "only used by --workload W1; enrolments are always kept by the MEF",
            ));
        }
        if let Some(flag) = args.maf_sae.first_given() {
            return Err(invalid(flag, "only used by --workload maf-sae"));
        }
        if let Some(flag) = args.direct_authz.first_given() {
            return Err(invalid(flag, "only used by --workload direct-authz"));
        }
        let mef = mef_url(&args.url)?;

        let enrol = &args.enrol;
        let Some(id) = &enrol.kpm_id else {
            return Err(invalid(
                "--kpm-id",
                "required with --workload enrol: the KpmID of a factory credential the MEF \
                 knows (`m2mtrust mef enrollee add`)",
            ));
        };
        let kpm_id = KpsaId::parse(id).map_err(|e| invalid("--kpm-id", format!("{id:?}: {e}")))?;
        let Some(path) = &enrol.kpm_file else {
            return Err(invalid(
                "--kpm-file",
                "required with --workload enrol: the file holding Kpm in hex",
            ));
        };
        let kpm = key_file("--kpm-file", path)?;
        let mef_name = match &enrol.mef_name {
            Some(name) => {
                Fqdn::parse(name).map_err(|e| invalid("--mef-name", format!("{name:?}: {e}")))?
            }
            None => Fqdn::parse(kpm_id.issuer()).map_err(|e| {
                invalid(
                    "--kpm-id",
                    format!("its FQDN part cannot name the MEF ({e}); give --mef-name"),
                )
            })?,
        };

        let addr = mef.resolve("resolving the MEF address").await?;
        Ok(Self {
            url: mef.url,
            addr,
            mef_name,
            kpm_id,
            kpm,
            count: args.count,
            timeout: args.timeout,
        })
    }

    /// The MEF URL, `https://host:port`, as reports name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn credential(&self) -> EnroleeCredential {
        EnroleeCredential::Psk {
            kpm_id: self.kpm_id.clone(),
            kpm: self.kpm.clone(),
        }
    }
}

/// The MEF's TLS listener, `https://host[:port][/]`.
fn mef_url(url: &str) -> Result<Endpoint, BenchError> {
    Endpoint::parse(url, "--workload enrol connects to the MEF's TLS listener")
}

/// Why one enrolment failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("TCP connect failed: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Enrol(EnrolError),
    #[error("no complete enrolment within {0:?}")]
    Timeout(Duration),
}

impl Failure {
    /// Short, low-cardinality description used to group failures; the full message of the
    /// first occurrence goes into the report as its example.
    fn kind(&self) -> String {
        match self {
            Failure::Connect(e) => format!("TCP connect {:?}", e.kind()),
            Failure::Timeout(_) => "timeout".into(),
            Failure::Enrol(EnrolError::Bootstrap(e)) => format!("bootstrap {}", e.reason()),
            Failure::Enrol(EnrolError::Refused { rsc, .. }) => format!("MEF RSC {rsc}"),
            Failure::Enrol(EnrolError::Transport(_)) => "MEF session".into(),
            Failure::Enrol(EnrolError::Protocol { .. }) => "protocol".into(),
            Failure::Enrol(_) => "enrolment".into(),
        }
    }
}

/// One pass of the workload with `clients` concurrent clients, `settings.count` enrolments in
/// all. A run in which no enrolment succeeded is an error, as in W1.
pub(crate) async fn run(
    settings: &Arc<Settings>,
    clients: u32,
    hide_progress: bool,
) -> Result<EnrolRunReport, BenchError> {
    let bar = progress::bar_in(
        settings.count,
        format!("c={clients} enrol"),
        "enrol/s",
        hide_progress,
    );
    let next = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for _ in 0..clients.max(1) {
        let (settings, next, connections, bar) = (
            settings.clone(),
            next.clone(),
            connections.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < settings.count {
                match enrol_once(&settings, &connections).await {
                    Ok(latency) => tally.ok(latency),
                    Err(failure) => tally.error(failure.kind(), || Some(failure.to_string())),
                }
                bar.inc(1);
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.map_err(|e| BenchError::Worker(e.to_string()))?);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let enrol = total.into_phase(Phase::Enrol, elapsed, connections.load(Ordering::Relaxed));
    if enrol.ok == 0 {
        return Err(BenchError::all_failed(
            clients,
            std::slice::from_ref(&enrol),
        ));
    }
    Ok(EnrolRunReport {
        clients,
        kpm_id: settings.kpm_id.to_string(),
        mef_name: settings.mef_name.to_string(),
        enrol,
    })
}

/// One complete enrolment on a new connection; returns how long it took, from the TCP connect
/// to the Enrolment End with the target key derived.
async fn enrol_once(settings: &Settings, connections: &AtomicU64) -> Result<Duration, Failure> {
    let started = Instant::now();
    let attempt = async {
        let tcp = TcpStream::connect(settings.addr)
            .await
            .map_err(Failure::Connect)?;
        connections.fetch_add(1, Ordering::Relaxed);
        // The handshake and the exchange are small request/response flights; Nagle's
        // algorithm would only add delay (the MEF side sets the same).
        tcp.set_nodelay(true).map_err(Failure::Connect)?;
        enrol(
            tcp,
            settings.mef_name.as_str(),
            settings.credential(),
            None,
            &EnrolOptions::default(),
        )
        .await
        .map_err(Failure::Enrol)
    };
    match tokio::time::timeout(settings.timeout, attempt).await {
        Ok(Ok(_enrolled)) => Ok(started.elapsed()),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::Timeout(settings.timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mef_urls_are_https_host_and_port() {
        let ok = |url: &str| {
            let e = mef_url(url).unwrap();
            (e.url, e.host, e.port)
        };
        assert_eq!(
            ok("https://127.0.0.1:8444"),
            ("https://127.0.0.1:8444".into(), "127.0.0.1".into(), 8444)
        );
        assert_eq!(
            ok("https://mef.example/"),
            ("https://mef.example:443".into(), "mef.example".into(), 443)
        );
        assert_eq!(ok("https://[::1]:8444").1, "::1");
        for bad in [
            "http://127.0.0.1:8444",
            "127.0.0.1:8444",
            "https://127.0.0.1:8444/cse-in",
            "https://127.0.0.1:8444/?x=1",
            "https://",
        ] {
            assert!(mef_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failures_group_by_stable_kind() {
        let refused = Failure::Enrol(EnrolError::Refused {
            what: "the enrolment request",
            rsc: 4103,
            message: "no".into(),
        });
        assert_eq!(refused.kind(), "MEF RSC 4103");
        let wrong = Failure::Enrol(EnrolError::Bootstrap(
            m2mtrust_mef::BootstrapError::WrongKpm,
        ));
        assert_eq!(wrong.kind(), "bootstrap wrong_kpm");
        assert_eq!(wrong.to_string(), "wrong Kpm: the pre-shared keys differ");
        let timeout = Failure::Timeout(Duration::from_millis(200));
        assert_eq!(timeout.kind(), "timeout");
        assert_eq!(timeout.to_string(), "no complete enrolment within 200ms");
        let refused_connect = Failure::Connect(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(refused_connect.kind(), "TCP connect ConnectionRefused");
    }
}
