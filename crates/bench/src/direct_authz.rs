//! Workload `direct-authz`: direct dynamic authorization round trips per second through a CSE
//! and its Dynamic Authorization System (TS-0003 §7.3.2.2).
//!
//! Each run, the admin (the credential of `--url`) creates an `<accessControlPolicy>` that
//! grants only itself, a `<dynamicAuthorizationConsultation>` naming `--das`, and N containers
//! below the CSEBase linked to both (`acpi`, `daci`). The requester, an AE with its own
//! certificate and connections, then RETRIEVEs them:
//!
//! - phase `direct`: each container once. The static decision (§7.1) refuses; the CSE sends the
//!   DAS a Dynamic Authorization Request (NOTIFY, `sit` 1), takes the token and/or dynamic ACP
//!   information of its answer and decides again: one DAS round trip per request;
//! - phase `cached`: each container again, permitted from what the CSE kept of the first
//!   answer (the holder's token, the target's dynamic ACP), without the DAS.
//!
//! Before the phases every client retrieves one more container, the probe, untimed: the first
//! probe shows whether the DAS grants the requester at all, which turns a missing policy into
//! one clear error instead of N refusals, and every client's connection is open before the
//! clock starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode, Uri};
use indicatif::ProgressBar;
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::{BenchArgs, TlsArgs};
use crate::client::{
    Connections, Counting, CseClient, Reply, RequestIds, Scheme, SendError, Target,
};
use crate::error::BenchError;
use crate::progress;
use crate::report::{Cleanup, DirectAuthzRunReport, Phase, PhaseReport, RequesterAe};
use crate::stats::Tally;
use crate::tls::{self, CertFlags, HttpsConnector, Security};

/// Default `--das`: the DAS of `m2mtrust up`.
const DEFAULT_DAS: &str = "https://127.0.0.1:8446/das";

/// Default `--requester`.
const DEFAULT_REQUESTER: &str = "Cbench";

const RSC_OK: u16 = 2000;
const RSC_CREATED: u16 = 2001;
const RSC_DELETED: u16 = 2002;
const RSC_NO_PRIVILEGE: u16 = 4103;
const RSC_CONFLICT: u16 = 4105;

/// TS-0004 resource types the run creates.
const TY_ACP: u16 = 1;
const TY_AE: u16 = 2;
const TY_CONTAINER: u16 = 3;
const TY_DAC: u16 = 34;

/// Pause before each measured phase, so that every client's connection is back in its pool.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// accessControlOperations: create, retrieve, update, delete, notify, discovery.
const ALL_OPERATIONS: u8 = 63;

const STEP_CSE_BASE: &str = "retrieving the CSEBase";
const STEP_AE: &str = "registering the requester's AE";
const STEP_ACP: &str = "creating the admin-only ACP";
const STEP_DAC: &str = "creating the dynamicAuthorizationConsultation";
const STEP_CONTAINERS: &str = "creating the containers";
const STEP_PROBE: &str = "the probe RETRIEVE";
const STEP_WARM_UP: &str = "opening the requester's connections";

const REQUESTER_CERT: CertFlags = CertFlags {
    cert: "--requester-cert",
    key: "--requester-key",
    pair: "--requester-cert/--requester-key",
};

fn invalid(what: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidArgument {
        what,
        reason: reason.into(),
    }
}

fn header(what: &'static str, value: &str) -> Result<HeaderValue, BenchError> {
    HeaderValue::from_str(value).map_err(|_| BenchError::InvalidHeader {
        what,
        value: value.to_owned(),
    })
}

/// Arguments checked and both certificates read once for all runs, so that every mistake
/// shows before the first request.
pub(crate) struct Settings {
    target: Target,
    admin_connector: Counting<HttpsConnector>,
    requester_connector: Counting<HttpsConnector>,
    /// TLS handshakes completed by both connectors.
    connections: Connections,
    admin: String,
    admin_header: HeaderValue,
    requester: String,
    requester_header: HeaderValue,
    das: String,
    rvi: String,
    rvi_header: HeaderValue,
    count: u64,
    keep: bool,
    timeout: std::time::Duration,
}

impl Settings {
    /// Checks the arguments of `--workload direct-authz` and reads the admin's and the
    /// requester's credentials.
    pub fn from_args(args: &BenchArgs) -> Result<Self, BenchError> {
        if args.count == 0 {
            return Err(invalid("--count", "must be at least 1"));
        }
        if args.clients.contains(&0) {
            return Err(invalid("--clients", "every value must be at least 1"));
        }
        // Flags of other workloads would be silently ignored; refuse them instead.
        if let Some(flag) = args.enrol.first_given() {
            return Err(invalid(flag, "only used by --workload enrol"));
        }
        if let Some(flag) = args.maf_sae.first_given() {
            return Err(invalid(flag, "only used by --workload maf-sae"));
        }
        if args.origin.is_some() {
            return Err(invalid(
                "--origin",
                "only used by --workload W1; the requester is --requester",
            ));
        }
        let target = Target::parse(&args.url)?;
        if target.scheme != Scheme::Https {
            return Err(invalid(
                "--url",
                "--workload direct-authz needs the CSE's https:// URL: the requester \
                 authenticates with its certificate",
            ));
        }
        let a = &args.direct_authz;
        let (Some(cert), Some(key)) = (&a.requester_cert, &a.requester_key) else {
            return Err(invalid(
                if a.requester_cert.is_none() {
                    "--requester-cert"
                } else {
                    "--requester-key"
                },
                "required with --workload direct-authz: the requester's AE certificate \
                 (`m2mtrust cert issue --ae-id Cbench`) and its private key",
            ));
        };
        let Some(ca) = &args.tls.ca else {
            return Err(invalid(
                "--ca",
                "required with --workload direct-authz: the CA certificate the CSE's \
                 certificate must chain to, for the requester's connections",
            ));
        };
        let requester = a.requester.as_deref().unwrap_or(DEFAULT_REQUESTER);
        check_requester(requester)?;
        let das = a.das.as_deref().unwrap_or(DEFAULT_DAS);
        check_das(das)?;

        // With a PSK the admin's connections check no server certificate; --ca is then the
        // requester's alone, and the PSK checks must not refuse it.
        let admin_tls = if args.tls.psk_id.is_some() {
            TlsArgs {
                ca: None,
                ..args.tls.clone()
            }
        } else {
            args.tls.clone()
        };
        let admin_settings = match Security::from_args(&admin_tls, &target)? {
            Security::Tls(settings) => settings,
            Security::Plain => {
                return Err(invalid("--url", "the admin needs an https:// URL"));
            }
        };
        let requester_settings = tls::certificate_settings(
            &REQUESTER_CERT,
            cert,
            key,
            ca,
            args.tls.server_name.clone(),
        )?;
        let connections = Connections::default();
        Ok(Self {
            admin_connector: Counting::new(
                HttpsConnector::new(admin_settings, args.timeout)?,
                connections.clone(),
            ),
            requester_connector: Counting::new(
                HttpsConnector::new(requester_settings, args.timeout)?,
                connections.clone(),
            ),
            connections,
            target,
            admin: args.admin.clone(),
            admin_header: header("--admin", &args.admin)?,
            requester: requester.to_owned(),
            requester_header: header("--requester", requester)?,
            das: das.to_owned(),
            rvi: args.rvi.clone(),
            rvi_header: header("--rvi", &args.rvi)?,
            count: args.count,
            keep: args.keep,
            timeout: args.timeout,
        })
    }

    /// The CSEBase URL, as reports name it.
    pub fn url(&self) -> &str {
        &self.target.base
    }

    fn pool(
        &self,
        connector: &Counting<HttpsConnector>,
        clients: u32,
        ids: &Arc<RequestIds>,
    ) -> Vec<CseClient<Counting<HttpsConnector>>> {
        (0..clients.max(1))
            .map(|_| {
                CseClient::new(
                    connector.clone(),
                    self.timeout,
                    self.rvi_header.clone(),
                    ids.clone(),
                )
            })
            .collect()
    }
}

/// A C-type AE-ID relative to the CSE: the form an AE registers with (TS-0001 §10.1.1.2.2).
fn check_requester(id: &str) -> Result<(), BenchError> {
    let valid = id.len() > 1
        && id.starts_with('C')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "--requester",
            format!(
                "{id:?} is not a C-type AE-ID such as Cbench (a 'C', then letters, digits, \
                 '-', '_' or '.')"
            ),
        ))
    }
}

/// The DAS's point of access is stored in `dap` as given; check it here, since a typo would
/// only show as refusals once the CSE fails to reach it.
fn check_das(url: &str) -> Result<(), BenchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid("--das", format!("{url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
        return Err(invalid(
            "--das",
            format!("{url:?} is not an absolute URL such as {DEFAULT_DAS}"),
        ));
    }
    Ok(())
}

type Client = CseClient<Counting<HttpsConnector>>;

/// One request of a batch.
#[derive(Clone)]
struct Job {
    method: Method,
    uri: Uri,
    origin: HeaderValue,
    ty: Option<u16>,
    body: Bytes,
    /// The answer that counts as success.
    rsc: u16,
    status: StatusCode,
}

impl Job {
    fn retrieve(uri: Uri, origin: &HeaderValue) -> Self {
        Self {
            method: Method::GET,
            uri,
            origin: origin.clone(),
            ty: None,
            body: Bytes::new(),
            rsc: RSC_OK,
            status: StatusCode::OK,
        }
    }

    fn delete(uri: Uri, origin: &HeaderValue) -> Self {
        Self {
            method: Method::DELETE,
            uri,
            origin: origin.clone(),
            ty: None,
            body: Bytes::new(),
            rsc: RSC_DELETED,
            status: StatusCode::OK,
        }
    }

    fn create(uri: Uri, origin: &HeaderValue, ty: u16, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            uri,
            origin: origin.clone(),
            ty: Some(ty),
            body: Bytes::from(body.to_string()),
            rsc: RSC_CREATED,
            status: StatusCode::CREATED,
        }
    }

    async fn send(&self, client: &Client) -> Result<Reply, SendError> {
        client
            .send(
                self.method.clone(),
                &self.uri,
                &self.origin,
                self.ty,
                self.body.clone(),
            )
            .await
    }

    /// Sends a setup request that must get its expected answer.
    async fn setup(&self, client: &Client, step: &'static str) -> Result<Reply, BenchError> {
        let reply = self
            .send(client)
            .await
            .map_err(|e| transport_error(step, &self.uri, &e))?;
        if reply.is(self.rsc, self.status) {
            Ok(reply)
        } else {
            Err(reply.refused(step))
        }
    }
}

/// A setup request that got no response: failed handshakes are told apart, since a refused
/// certificate is the usual mistake.
fn transport_error(step: &'static str, uri: &Uri, err: &SendError) -> BenchError {
    match err.handshake_failure() {
        Some(reason) => BenchError::Handshake {
            step,
            url: uri.to_string(),
            reason,
        },
        None => BenchError::Transport {
            step,
            url: uri.to_string(),
            reason: err.to_string(),
        },
    }
}

/// Whether the CSE answered with Response Status Code `rsc`, whatever the HTTP status.
fn has_rsc(reply: &Reply, rsc: u16) -> bool {
    reply
        .rsc
        .as_deref()
        .is_some_and(|got| got.trim() == rsc.to_string())
}

/// Sends every job once, spread over the clients of `pool`, each client sending one at a
/// time; returns the tally and the indices of the jobs that got their expected answer.
async fn spread(
    pool: &[Client],
    jobs: &Arc<Vec<Job>>,
    bar: ProgressBar,
) -> Result<(Tally, Vec<usize>), BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for client in pool {
        let (client, jobs, next, bar) = (client.clone(), jobs.clone(), next.clone(), bar.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(index) else {
                    break;
                };
                match job.send(&client).await {
                    Ok(reply) if reply.is(job.rsc, job.status) => {
                        tally.ok(reply.latency);
                        done.push(index);
                    }
                    Ok(reply) => tally.error(reply.kind(), || reply.dbg()),
                    Err(err) => tally.error(err.to_string(), || None),
                }
                bar.inc(1);
            }
            (tally, done)
        });
    }
    let mut total = Tally::default();
    let mut done = Vec::with_capacity(jobs.len());
    while let Some(joined) = workers.join_next().await {
        let (tally, indices) = joined.map_err(|e| BenchError::Worker(e.to_string()))?;
        total.merge(tally);
        done.extend(indices);
    }
    bar.finish_and_clear();
    Ok((total, done))
}

/// Error kinds of a tally with counts and first examples, for a message.
fn summary(tally: Tally) -> String {
    let report = tally.into_phase(Phase::Direct, std::time::Duration::ZERO, 0);
    report
        .error_kinds
        .iter()
        .map(|e| match &e.example {
            Some(example) => format!("{} x {} ({example})", e.count, e.kind),
            None => format!("{} x {}", e.count, e.kind),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a run created, so that cleanup removes exactly that, also after a failed setup.
#[derive(Default)]
struct Created {
    /// The requester's AE, when this run registered it: its URI and name.
    ae: Option<(Uri, String)>,
    acp: Option<Uri>,
    dac: Option<Uri>,
    containers: Vec<Uri>,
}

/// The CSE-ID and CSEBase name, for the policy command of an error; `m2mtrust up`'s when the
/// CSEBase does not say.
struct CseNames {
    csi: String,
    base: String,
}

impl CseNames {
    /// The `das policy add` command that would grant the requester.
    fn policy_command(&self, requester: &str) -> String {
        format!(
            "m2mtrust das policy add --data DIR --originator {}/{requester} --target '{}/{}/*' \
             --operations 2 --grant both",
            self.csi, self.csi, self.base
        )
    }
}

/// One pass of the workload with `clients` concurrent clients: setup, the probe, phases
/// `direct` and `cached`, cleanup. A run in which no measured request succeeded is an error,
/// as in W1.
pub(crate) async fn run(
    settings: &Settings,
    clients: u32,
    hide_progress: bool,
) -> Result<DirectAuthzRunReport, BenchError> {
    let opened_before = settings.connections.count();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let ids = Arc::new(RequestIds::new(format!("bench-{run_id}")));
    let admins = settings.pool(&settings.admin_connector, clients, &ids);
    let requesters = settings.pool(&settings.requester_connector, clients, &ids);
    let (Some(admin), Some(requester)) = (admins.first(), requesters.first()) else {
        return Err(invalid("--clients", "no client"));
    };
    let base = settings.target.uri("")?;

    // The CSE's names, and a first check of the admin's credential.
    let cb = Job::retrieve(base.clone(), &settings.admin_header)
        .setup(admin, STEP_CSE_BASE)
        .await?;
    let cb = cb.json().unwrap_or_default();
    let names = CseNames {
        csi: cb["m2m:cb"]["csi"].as_str().unwrap_or("/id-in").to_owned(),
        base: cb["m2m:cb"]["rn"].as_str().unwrap_or("cse-in").to_owned(),
    };

    // The requester registers over its own certificate; an AE-ID registered before (4105)
    // is used as it is.
    let ae_name = format!("bench-{run_id}");
    let ae =
        json!({"m2m:ae": {"rn": ae_name, "api": "Nbench", "rr": false, "srv": [settings.rvi]}});
    let register = Job::create(base.clone(), &settings.requester_header, TY_AE, &ae);
    let reply = register
        .send(requester)
        .await
        .map_err(|e| transport_error(STEP_AE, &base, &e))?;
    let mut created = Created::default();
    let requester_id = if reply.is(RSC_CREATED, StatusCode::CREATED) {
        created.ae = Some((settings.target.uri(&ae_name)?, ae_name.clone()));
        // Later requests come from the AE-ID the CSE assigned (one that cannot be sent as a
        // header would be a CSE bug; the requester's own then shows what the CSE thinks).
        reply
            .json()
            .and_then(|v| v["m2m:ae"]["aei"].as_str().map(str::to_owned))
            .filter(|aei| HeaderValue::from_str(aei).is_ok())
            .unwrap_or_else(|| settings.requester.clone())
    } else if has_rsc(&reply, RSC_CONFLICT) {
        tracing::debug!(requester = %settings.requester, "requester AE already registered");
        settings.requester.clone()
    } else {
        return Err(reply.refused(STEP_AE));
    };
    let requester_header = header("--requester", &requester_id)?;

    let measured = measure(
        settings,
        clients,
        &run_id,
        &names,
        &requester_id,
        &requester_header,
        &admins,
        &requesters,
        &mut created,
        hide_progress,
    )
    .await;
    let cleanup = cleanup(settings, clients, &admins, &created, hide_progress).await;
    let requester_ae = match &created.ae {
        None => RequesterAe::Existing,
        Some((uri, name)) => RequesterAe::Registered {
            name: name.clone(),
            cleanup: cleanup_ae(settings, requester, admin, uri, &requester_header).await,
        },
    };
    tracing::debug!(?cleanup, ?requester_ae, "cleanup");
    let (direct, cached) = measured?;
    if direct.ok == 0 && cached.ok == 0 {
        return Err(BenchError::all_failed(clients, &[direct, cached]));
    }
    Ok(DirectAuthzRunReport {
        clients,
        requester: requester_id,
        das: settings.das.clone(),
        acp: format!("bench-acp-{run_id}"),
        dac: format!("bench-dac-{run_id}"),
        containers: created.containers.len() as u64,
        direct,
        cached,
        cleanup,
        requester_ae,
        connections: settings.connections.count().saturating_sub(opened_before),
    })
}

/// Setup by the admin, the probe, and the two measured phases; records in `created` what it
/// created.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the run's state, passed apart so `created` stays borrowable"
)]
async fn measure(
    settings: &Settings,
    clients: u32,
    run_id: &str,
    names: &CseNames,
    requester_id: &str,
    requester_header: &HeaderValue,
    admins: &[Client],
    requesters: &[Client],
    created: &mut Created,
    hide_progress: bool,
) -> Result<(PhaseReport, PhaseReport), BenchError> {
    let base = settings.target.uri("")?;
    let admin_header = &settings.admin_header;
    let (Some(admin), Some(requester)) = (admins.first(), requesters.first()) else {
        return Err(invalid("--clients", "no client"));
    };

    // TS-0003 §7.1: the static policy grants the admin alone, so every RETRIEVE of the
    // requester is refused before the consultation applies.
    let acp_name = format!("bench-acp-{run_id}");
    let admin_only = json!({"acr": [{"acor": [settings.admin], "acop": ALL_OPERATIONS}]});
    let acp = json!({"m2m:acp": {"rn": acp_name, "pv": admin_only, "pvs": admin_only}});
    let reply = Job::create(base.clone(), admin_header, TY_ACP, &acp)
        .setup(admin, STEP_ACP)
        .await?;
    created.acp = Some(settings.target.uri(&acp_name)?);
    let acp_ri = resource_id(&reply, "m2m:acp", STEP_ACP)?;

    // TS-0003 §7.3.2.2 step 2: the consultation the CSE follows after the refusal.
    let dac_name = format!("bench-dac-{run_id}");
    let dac = json!({"m2m:dac": {"rn": dac_name, "dae": true, "dap": [settings.das]}});
    let reply = Job::create(base.clone(), admin_header, TY_DAC, &dac)
        .setup(admin, STEP_DAC)
        .await?;
    created.dac = Some(settings.target.uri(&dac_name)?);
    let dac_ri = resource_id(&reply, "m2m:dac", STEP_DAC)?;

    // N containers and the probe, the probe last.
    let names_of = |i: u64| format!("bench-{run_id}-{i:06}");
    let probe_name = format!("bench-{run_id}-probe");
    let container_names: Vec<String> = (0..settings.count)
        .map(names_of)
        .chain([probe_name.clone()])
        .collect();
    let creates: Vec<Job> = container_names
        .iter()
        .map(|rn| {
            let cnt = json!({"m2m:cnt": {"rn": rn, "acpi": [acp_ri], "daci": [dac_ri]}});
            Job::create(base.clone(), admin_header, TY_CONTAINER, &cnt)
        })
        .collect();
    let uris = container_names
        .iter()
        .map(|rn| settings.target.uri(rn))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = progress::bar(
        creates.len() as u64,
        format!("c={clients} setup"),
        hide_progress,
    );
    let (tally, mut done) = spread(admins, &Arc::new(creates), bar).await?;
    done.sort_unstable();
    created.containers = done.iter().filter_map(|&i| uris.get(i).cloned()).collect();
    if !tally.errors.is_empty() {
        let failed = tally.errors.values().map(|(n, _)| n).sum();
        return Err(BenchError::SetupFailed {
            step: STEP_CONTAINERS,
            failed,
            attempted: uris.len() as u64,
            summary: summary(tally),
        });
    }
    let Some((probe_uri, measured_uris)) = uris.split_last() else {
        return Err(invalid("--count", "must be at least 1"));
    };

    // The probe: the first consultation, alone.
    let probe = Job::retrieve(probe_uri.clone(), requester_header);
    let reply = probe
        .send(requester)
        .await
        .map_err(|e| transport_error(STEP_PROBE, probe_uri, &e))?;
    if has_rsc(&reply, RSC_NO_PRIVILEGE) {
        return Err(BenchError::NotGranted {
            requester: requester_id.to_owned(),
            target: probe_uri.to_string(),
            das: settings.das.clone(),
            dbg: reply.dbg(),
            hint: names.policy_command(requester_id),
        });
    }
    if !reply.is(RSC_OK, StatusCode::OK) {
        return Err(reply.refused(STEP_PROBE));
    }
    // Every other client opens its connection with the probe, now a cached decision.
    let mut warm_up = JoinSet::new();
    for client in requesters.iter().skip(1) {
        let (client, probe) = (client.clone(), probe.clone());
        warm_up.spawn(async move { (probe.send(&client).await, probe.uri) });
    }
    while let Some(joined) = warm_up.join_next().await {
        let (sent, uri) = joined.map_err(|e| BenchError::Worker(e.to_string()))?;
        let reply = sent.map_err(|e| transport_error(STEP_WARM_UP, &uri, &e))?;
        if !reply.is(RSC_OK, StatusCode::OK) {
            return Err(reply.refused(STEP_WARM_UP));
        }
    }

    let retrieves: Arc<Vec<Job>> = Arc::new(
        measured_uris
            .iter()
            .map(|uri| Job::retrieve(uri.clone(), requester_header))
            .collect(),
    );
    let direct = timed_phase(
        settings,
        Phase::Direct,
        clients,
        requesters,
        &retrieves,
        hide_progress,
    )
    .await?;
    let cached = timed_phase(
        settings,
        Phase::Cached,
        clients,
        requesters,
        &retrieves,
        hide_progress,
    )
    .await?;
    Ok((direct, cached))
}

/// One measured phase: every RETRIEVE once, spread over the requester's clients.
async fn timed_phase(
    settings: &Settings,
    phase: Phase,
    clients: u32,
    requesters: &[Client],
    retrieves: &Arc<Vec<Job>>,
    hide_progress: bool,
) -> Result<PhaseReport, BenchError> {
    let bar = progress::bar(
        settings.count,
        format!("c={clients} {phase}"),
        hide_progress,
    );
    // hyper hands a connection back to its pool shortly after the response was read, and a
    // request sent before that opens a new one; let the last untimed exchange settle so the
    // phase measures authorization, not a TLS handshake.
    tokio::time::sleep(SETTLE).await;
    let opened_before = settings.connections.count();
    let started = Instant::now();
    let (tally, _) = spread(requesters, retrieves, bar).await?;
    let elapsed = started.elapsed();
    let opened = settings.connections.count().saturating_sub(opened_before);
    Ok(tally.into_phase(phase, elapsed, opened))
}

/// The `ri` of a created resource, which `acpi` and `daci` must name.
fn resource_id(reply: &Reply, short_name: &str, step: &'static str) -> Result<String, BenchError> {
    reply
        .json()
        .and_then(|v| v[short_name]["ri"].as_str().map(str::to_owned))
        .ok_or_else(|| BenchError::Refused {
            step,
            status: reply.status.as_u16(),
            rsc: reply.rsc_or_none(),
            dbg: Some(format!("the response names no {short_name} ri")),
        })
}

/// Deletes, as the admin, the containers, the consultation and the ACP the run created, in
/// that order: the ACP last, since the containers name it.
async fn cleanup(
    settings: &Settings,
    clients: u32,
    admins: &[Client],
    created: &Created,
    hide_progress: bool,
) -> Cleanup {
    if settings.keep {
        return Cleanup::Kept;
    }
    let mut tally = Tally::default();
    let mut attempted = 0;
    let deletes: Vec<Job> = created
        .containers
        .iter()
        .map(|uri| Job::delete(uri.clone(), &settings.admin_header))
        .collect();
    if !deletes.is_empty() {
        attempted += deletes.len();
        let bar = progress::bar(
            deletes.len() as u64,
            format!("c={clients} cleanup"),
            hide_progress,
        );
        match spread(admins, &Arc::new(deletes), bar).await {
            Ok((deleted, _)) => tally.merge(deleted),
            Err(err) => tally.error(err.to_string(), || None),
        }
    }
    let rest: Vec<Job> = [&created.dac, &created.acp]
        .into_iter()
        .flatten()
        .map(|uri| Job::delete(uri.clone(), &settings.admin_header))
        .collect();
    attempted += rest.len();
    let bar = ProgressBar::hidden();
    match spread(admins.get(..1).unwrap_or_default(), &Arc::new(rest), bar).await {
        Ok((deleted, _)) => tally.merge(deleted),
        Err(err) => tally.error(err.to_string(), || None),
    }
    if tally.errors.is_empty() {
        Cleanup::Deleted
    } else {
        let failed: u64 = tally.errors.values().map(|(n, _)| n).sum();
        Cleanup::Failed {
            reason: format!(
                "{failed} of {attempted} deletions failed: {}",
                summary(tally)
            ),
        }
    }
}

/// Deletes the requester's AE as itself, falling back to the admin, as W1 does.
async fn cleanup_ae(
    settings: &Settings,
    requester: &Client,
    admin: &Client,
    uri: &Uri,
    requester_header: &HeaderValue,
) -> Cleanup {
    if settings.keep {
        return Cleanup::Kept;
    }
    let attempt = |client: &Client, origin: &HeaderValue| {
        let job = Job::delete(uri.clone(), origin);
        let client = client.clone();
        async move {
            match job.send(&client).await {
                Ok(reply) if reply.is(job.rsc, job.status) => Ok(()),
                Ok(reply) => Err(match reply.dbg() {
                    Some(dbg) => format!("{}: {dbg}", reply.kind()),
                    None => reply.kind(),
                }),
                Err(err) => Err(err.to_string()),
            }
        }
    };
    let as_requester = match attempt(requester, requester_header).await {
        Ok(()) => return Cleanup::Deleted,
        Err(why) => why,
    };
    match attempt(admin, &settings.admin_header).await {
        Ok(()) => Cleanup::DeletedByAdmin,
        Err(as_admin) => Cleanup::Failed {
            reason: format!(
                "as {}: {as_requester}; as {}: {as_admin}",
                settings.requester, settings.admin
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Workload;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        bench: BenchArgs,
    }

    /// Arguments of a direct-authz run with all required flags, plus `extra`.
    fn args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec![
            "bench",
            "--quiet",
            "--workload",
            "direct-authz",
            "--url",
            "https://127.0.0.1:8443/cse-in",
            "--cert",
            "/nonexistent/admin.pem",
            "--key",
            "/nonexistent/admin-key.pem",
            "--ca",
            "/nonexistent/ca.pem",
            "--requester-cert",
            "/nonexistent/Cbench.pem",
            "--requester-key",
            "/nonexistent/Cbench-key.pem",
        ];
        argv.extend_from_slice(extra);
        Cmd::try_parse_from(argv).unwrap().bench
    }

    /// The flag `from_args` names in its error.
    fn refused(args: &BenchArgs) -> (&'static str, String) {
        match Settings::from_args(args) {
            Err(BenchError::InvalidArgument { what, reason }) => (what, reason),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn flags_parse_with_their_defaults() {
        let a = args(&[]);
        assert_eq!(a.workload, Workload::DirectAuthz);
        assert_eq!(a.direct_authz.das, None);
        assert_eq!(a.direct_authz.requester, None);
        let a = args(&["--das", "https://das.example/das", "--requester", "Cother"]);
        assert_eq!(
            a.direct_authz.das.as_deref(),
            Some("https://das.example/das")
        );
        assert_eq!(a.direct_authz.requester.as_deref(), Some("Cother"));
        assert_eq!(
            a.direct_authz.first_given(),
            Some("--das"),
            "first in declaration order"
        );
    }

    #[test]
    fn mistakes_are_named_before_the_first_request() {
        let mut no_cert = args(&[]);
        no_cert.direct_authz.requester_cert = None;
        assert_eq!(refused(&no_cert).0, "--requester-cert");
        let mut no_key = args(&[]);
        no_key.direct_authz.requester_key = None;
        assert_eq!(refused(&no_key).0, "--requester-key");
        let mut no_ca = args(&[]);
        no_ca.tls.ca = None;
        assert_eq!(refused(&no_ca).0, "--ca");
        let mut plain = args(&[]);
        plain.url = "http://127.0.0.1:8080/cse-in".into();
        assert_eq!(refused(&plain).0, "--url");
        assert_eq!(refused(&args(&["--requester", "bench"])).0, "--requester");
        assert_eq!(refused(&args(&["--das", "127.0.0.1:8446"])).0, "--das");
        assert_eq!(refused(&args(&["--origin", "Cx"])).0, "--origin");
        assert_eq!(refused(&args(&["--kpm-id", "a@b.example"])).0, "--kpm-id");
        assert_eq!(refused(&args(&["--maf", "https://h:1"])).0, "--maf");
        // Everything checked, then the files are read: the admin's first.
        let (what, reason) = refused(&args(&[]));
        assert_eq!(what, "--cert", "{reason}");
        assert!(
            reason.contains("cannot read /nonexistent/admin.pem"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn other_workloads_refuse_the_direct_authz_flags() {
        for (workload, flag, value) in [
            ("W1", "--das", "https://127.0.0.1:8446/das"),
            ("enrol", "--requester", "Cbench"),
            ("maf-sae", "--requester-cert", "Cbench.pem"),
            ("W1", "--requester-key", "Cbench-key.pem"),
        ] {
            let a = Cmd::try_parse_from(["bench", "--quiet", "--workload", workload, flag, value])
                .unwrap()
                .bench;
            match crate::run(&a).await {
                Err(BenchError::InvalidArgument { what, reason }) => {
                    assert_eq!(what, flag, "{workload}: {reason}");
                    assert!(reason.contains("--workload direct-authz"), "{reason}");
                }
                other => panic!("{workload} {flag}: {other:?}"),
            }
        }
    }

    #[test]
    fn requester_must_be_a_c_type_ae_id() {
        assert!(check_requester("Cbench").is_ok());
        assert!(check_requester("Cbench-2.a_b").is_ok());
        for bad in ["", "C", "bench", "Sbench", "/id-in/Cbench", "C bench"] {
            let err = check_requester(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid --requester"), "{bad}: {err}");
        }
    }

    #[test]
    fn das_must_be_an_absolute_url() {
        assert!(check_das(DEFAULT_DAS).is_ok());
        assert!(check_das("http://das.example:8080/das").is_ok());
        for bad in ["127.0.0.1:8446/das", "ftp://h/das", "/das", ""] {
            let err = check_das(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid --das"), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_command_names_the_requester_and_the_cse_base() {
        let names = CseNames {
            csi: "/id-in".into(),
            base: "cse-in".into(),
        };
        assert_eq!(
            names.policy_command("Cbench"),
            "m2mtrust das policy add --data DIR --originator /id-in/Cbench \
             --target '/id-in/cse-in/*' --operations 2 --grant both"
        );
    }
}
