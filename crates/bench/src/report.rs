//! The bench report: serializable for tooling, printable as a table for people.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::args::Workload;

/// Result of one `m2mtrust bench` invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `--label`, to tell reports of different CSEs apart.
    pub label: Option<String>,
    /// CSEBase URL that was driven.
    pub url: String,
    /// Workload that ran.
    pub workload: Workload,
    /// Requests per measured phase (W1), enrolments per run (enrol), security associations
    /// per phase and run (maf-sae), or containers per run, each retrieved once per phase
    /// (direct-authz).
    pub count: u64,
    /// One run per `--clients` value, in the order given (W1; empty for enrol).
    pub runs: Vec<RunReport>,
    /// One run per `--clients` value, in the order given (enrol; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrol_runs: Vec<EnrolRunReport>,
    /// One run per `--clients` value, in the order given (maf-sae; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maf_sae_runs: Vec<MafSaeRunReport>,
    /// One run per `--clients` value, in the order given (direct-authz; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub direct_authz_runs: Vec<DirectAuthzRunReport>,
}

impl Report {
    /// Failed requests (and failed enrolments) over all runs and phases, for an exit status.
    pub fn errors(&self) -> u64 {
        let requests: u64 = self
            .runs
            .iter()
            .flat_map(|r| &r.phases)
            .map(|p| p.errors)
            .sum();
        let enrolments: u64 = self.enrol_runs.iter().map(|r| r.enrol.errors).sum();
        let associations: u64 = self
            .maf_sae_runs
            .iter()
            .map(|r| r.sae.errors + r.cached.errors)
            .sum();
        let authorizations: u64 = self
            .direct_authz_runs
            .iter()
            .map(|r| r.direct.errors + r.cached.errors)
            .sum();
        requests + enrolments + associations + authorizations
    }
}

/// One pass of the direct-authz workload at a given concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectAuthzRunReport {
    /// Concurrent clients, each on its own connection with the requester's certificate.
    pub clients: u32,
    /// AE-ID the requester sent every RETRIEVE from.
    pub requester: String,
    /// The DAS the consultation named (`dap`).
    pub das: String,
    /// Resource name of the run's `<accessControlPolicy>` (admin only).
    pub acp: String,
    /// Resource name of the run's `<dynamicAuthorizationConsultation>`.
    pub dac: String,
    /// Containers the run created below the CSEBase: one per request of a phase, plus the
    /// probe retrieved before the phases.
    pub containers: u64,
    /// First RETRIEVEs, as phase [`Phase::Direct`]: each refused by the static ACP, sent to
    /// the DAS by the CSE and permitted from its answer; `ok` counts 2000 responses.
    pub direct: PhaseReport,
    /// Second RETRIEVEs of the same containers, as phase [`Phase::Cached`]: permitted from the
    /// token and dynamic ACP the CSE kept from the first, without the DAS.
    pub cached: PhaseReport,
    /// What happened to the containers, the consultation and the ACP afterwards.
    pub cleanup: Cleanup,
    /// Whether this run registered the requester's AE, and what happened to it.
    pub requester_ae: RequesterAe,
    /// Connections opened during the whole run, setup and cleanup included (completed TLS
    /// handshakes, the admin's and the requester's).
    pub connections: u64,
}

/// The requester's `<AE>` in a direct-authz run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RequesterAe {
    /// It was registered already (4105); the run left it as it was.
    Existing,
    /// The run registered it.
    Registered {
        /// Its resource name.
        name: String,
        /// What happened to it afterwards.
        cleanup: Cleanup,
    },
}

/// One pass of the maf-sae workload at a given concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MafSaeRunReport {
    /// Concurrent clients.
    pub clients: u32,
    /// KmID of the master credential every MAF Handshake used.
    pub km_id: String,
    /// FQDN of the MAF, the issuer part of every Key Identifier.
    pub maf_name: String,
    /// The MAF's address, `https://host:port`.
    pub maf_url: String,
    /// CSE-ID every key was registered for (its one target ID).
    pub target_cse_id: String,
    /// Complete security associations, as phase [`Phase::Sae`]: `ok` counts CSE handshakes
    /// completed with a key just registered at the MAF (which the CSE had to retrieve from
    /// it), `req_per_s` of them per second, latency runs from the TCP connect to the MAF to the
    /// end of the CSE handshake, and `connections` counts the TCP connections opened (two per
    /// association that got as far as the CSE).
    pub sae: PhaseReport,
    /// Handshakes with keys the CSE already holds, as phase [`Phase::Cached`]: each client
    /// registers one key and completes one handshake with it before the phase starts (setup
    /// failures are counted here), then loops handshakes with it; latency runs from the TCP
    /// connect to the end of the handshake, one connection per handshake.
    pub cached: PhaseReport,
    /// Keys registered at the MAF during the run, both phases; they stay there (and in the
    /// CSE, once retrieved) until they expire.
    pub keys_registered: u64,
}

/// One pass of the enrol workload at a given concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolRunReport {
    /// Concurrent clients.
    pub clients: u32,
    /// KpmID every enrolment bootstrapped with.
    pub kpm_id: String,
    /// FQDN of the MEF, the issuer part of every KeID.
    pub mef_name: String,
    /// The enrolments, as phase [`Phase::Enrol`]: `ok` counts completed enrolments (Enrolment
    /// End received, its KeID matching the session's), `req_per_s` completed enrolments per
    /// second, latency runs from the TCP connect to the Enrolment End, and `connections` counts
    /// the TCP connections opened, one per attempt that reached the MEF.
    pub enrol: PhaseReport,
}

/// One pass of the workload at a given concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Concurrent clients.
    pub clients: u32,
    /// Originator that registered the AE.
    pub origin: String,
    /// AE-ID assigned by the CSE, used as originator afterwards.
    pub ae_id: String,
    /// Resource name of the AE below the CSEBase.
    pub ae_name: String,
    /// Measured phases in execution order.
    pub phases: Vec<PhaseReport>,
    /// What happened to the AE afterwards.
    pub cleanup: Cleanup,
    /// Connections opened during the whole run, setup and cleanup included (TCP connects over
    /// http, completed TLS handshakes over https); with keep-alive, about one per client.
    #[serde(default)]
    pub connections: u64,
}

/// Fate of the AE at the end of a run; a failed cleanup leaves data behind, so it is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cleanup {
    /// `--keep` was given.
    Kept,
    /// The AE deleted itself.
    Deleted,
    /// The AE could not delete itself, the admin originator could.
    DeletedByAdmin,
    /// Nobody could delete the AE.
    Failed {
        /// Responses or errors of the delete attempts.
        reason: String,
    },
}

/// A measured phase of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Creating contentInstances.
    Create,
    /// Retrieving the latest contentInstance.
    Retrieve,
    /// Complete enrolments: connect, bootstrap handshake, Enrolment Exchange.
    Enrol,
    /// Complete MAF-based security associations: MAF Handshake, Key Registration, handshake
    /// with the CSE.
    Sae,
    /// Handshakes with the CSE under keys it already holds (maf-sae); requests decided from
    /// grants the CSE already holds (direct-authz).
    Cached,
    /// Requests the CSE decides by asking a DAS (direct dynamic authorization).
    Direct,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Create => "create",
            Phase::Retrieve => "retrieve",
            Phase::Enrol => "enrol",
            Phase::Sae => "sae",
            Phase::Cached => "cached",
            Phase::Direct => "direct",
        })
    }
}

/// Counts and timings of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Which phase.
    pub phase: Phase,
    /// Requests answered with the expected response status code.
    pub ok: u64,
    /// Requests that failed or got another answer.
    pub errors: u64,
    /// Errors grouped by HTTP status and RSC (or transport error), most frequent first.
    pub error_kinds: Vec<ErrorCount>,
    /// Wall time of the phase, first request sent to last response read.
    pub elapsed_ms: f64,
    /// Successful requests per second of wall time.
    pub req_per_s: f64,
    /// Latency of successful requests, send to full body read; absent when none succeeded.
    pub latency: Option<Latency>,
    /// Connections opened during the phase (TCP connects over http, completed TLS handshakes
    /// over https). With keep-alive the first phase opens about one per client beyond the setup
    /// connection and later phases open none.
    #[serde(default)]
    pub connections: u64,
}

/// One kind of error and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// e.g. `HTTP 403 RSC 4103`, or the transport error; for enrolments e.g.
    /// `bootstrap wrong_kpm` or `MEF RSC 4103`.
    pub kind: String,
    /// Occurrences.
    pub count: u64,
    /// `m2m:dbg` (or body text) of the first occurrence, which usually says why.
    pub example: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile; 0 in reports written before it was added.
    #[serde(default)]
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.workload {
            Workload::W1 => write!(
                f,
                "workload {} on {}, {} requests per phase",
                self.workload.name(),
                self.url,
                self.count
            )?,
            Workload::Enrol => {
                write!(
                    f,
                    "workload {} on {}, {} enrolments per run",
                    self.workload.name(),
                    self.url,
                    self.count
                )?;
                if let Some(run) = self.enrol_runs.first() {
                    write!(f, " as {} with MEF {}", run.kpm_id, run.mef_name)?;
                }
            }
            Workload::MafSae => {
                write!(
                    f,
                    "workload {} on {}, {} security associations per phase",
                    self.workload.name(),
                    self.url,
                    self.count
                )?;
                if let Some(run) = self.maf_sae_runs.first() {
                    write!(
                        f,
                        " as {} via MAF {} ({}) for {}",
                        run.km_id, run.maf_name, run.maf_url, run.target_cse_id
                    )?;
                }
            }
            Workload::DirectAuthz => {
                write!(
                    f,
                    "workload {} on {}, {} requests per phase",
                    self.workload.name(),
                    self.url,
                    self.count
                )?;
                if let Some(run) = self.direct_authz_runs.first() {
                    write!(f, " as {} with DAS {}", run.requester, run.das)?;
                }
            }
        }
        if let Some(label) = &self.label {
            write!(f, " [{label}]")?;
        }
        writeln!(f)?;

        let label_width = self
            .label
            .as_ref()
            .map(|l| l.chars().count().max("label".len()));
        match self.workload {
            Workload::W1 => self.fmt_requests(f, label_width),
            Workload::Enrol => self.fmt_enrolments(f, label_width),
            Workload::MafSae => self.fmt_associations(f, label_width),
            Workload::DirectAuthz => self.fmt_authorizations(f, label_width),
        }
    }
}

impl Report {
    /// The W1 table: one row per run and phase, then errors, connections and cleanup.
    fn fmt_requests(&self, f: &mut fmt::Formatter<'_>, label_width: Option<usize>) -> fmt::Result {
        if let Some(w) = label_width {
            write!(f, "{:<w$}  ", "label")?;
        }
        writeln!(
            f,
            "{:>7}  {:<8}  {:>7}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}  {:>8}  {:>5}",
            "clients",
            "phase",
            "ok",
            "errors",
            "elapsed_s",
            "req/s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "conns"
        )?;
        for run in &self.runs {
            for p in &run.phases {
                if let (Some(w), Some(label)) = (label_width, &self.label) {
                    write!(f, "{label:<w$}  ")?;
                }
                write!(
                    f,
                    "{:>7}  {:<8}  {:>7}  {:>6}  {:>9.3}  {:>9.1}",
                    run.clients,
                    p.phase,
                    p.ok,
                    p.errors,
                    p.elapsed_ms / 1000.0,
                    p.req_per_s
                )?;
                match &p.latency {
                    Some(l) => write!(
                        f,
                        "  {:>8.3}  {:>8.3}  {:>8.3}",
                        l.p50_ms, l.p99_ms, l.max_ms
                    )?,
                    None => write!(f, "  {:>8}  {:>8}  {:>8}", "-", "-", "-")?,
                }
                writeln!(f, "  {:>5}", p.connections)?;
            }
        }
        for run in &self.runs {
            for p in &run.phases {
                for e in &p.error_kinds {
                    write!(
                        f,
                        "errors (c={} {}): {} x {}",
                        run.clients, p.phase, e.count, e.kind
                    )?;
                    match &e.example {
                        Some(dbg) => writeln!(f, ": {dbg}")?,
                        None => writeln!(f)?,
                    }
                }
            }
        }
        for run in &self.runs {
            writeln!(
                f,
                "connections (c={}): {} opened in all, setup and cleanup included",
                run.clients, run.connections
            )?;
            write!(f, "cleanup (c={}): AE {} ", run.clients, run.ae_name)?;
            match &run.cleanup {
                Cleanup::Kept => writeln!(f, "kept (originator {})", run.ae_id)?,
                Cleanup::Deleted => writeln!(f, "deleted")?,
                Cleanup::DeletedByAdmin => writeln!(f, "deleted by the admin originator")?,
                Cleanup::Failed { reason } => writeln!(f, "NOT deleted: {reason}")?,
            }
        }
        Ok(())
    }

    /// The enrol table: one row per run, then failures and what the runs left in the MEF.
    fn fmt_enrolments(
        &self,
        f: &mut fmt::Formatter<'_>,
        label_width: Option<usize>,
    ) -> fmt::Result {
        if let Some(w) = label_width {
            write!(f, "{:<w$}  ", "label")?;
        }
        writeln!(
            f,
            "{:>7}  {:>7}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>5}",
            "clients",
            "ok",
            "errors",
            "elapsed_s",
            "enrol/s",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "conns"
        )?;
        for run in &self.enrol_runs {
            let e = &run.enrol;
            if let (Some(w), Some(label)) = (label_width, &self.label) {
                write!(f, "{label:<w$}  ")?;
            }
            write!(
                f,
                "{:>7}  {:>7}  {:>6}  {:>9.3}  {:>9.1}",
                run.clients,
                e.ok,
                e.errors,
                e.elapsed_ms / 1000.0,
                e.req_per_s
            )?;
            match &e.latency {
                Some(l) => write!(
                    f,
                    "  {:>8.3}  {:>8.3}  {:>8.3}  {:>8.3}",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                )?,
                None => write!(f, "  {:>8}  {:>8}  {:>8}  {:>8}", "-", "-", "-", "-")?,
            }
            writeln!(f, "  {:>5}", e.connections)?;
        }
        for run in &self.enrol_runs {
            for e in &run.enrol.error_kinds {
                write!(
                    f,
                    "errors (c={} {}): {} x {}",
                    run.clients, run.enrol.phase, e.count, e.kind
                )?;
                match &e.example {
                    Some(example) => writeln!(f, ": {example}")?,
                    None => writeln!(f)?,
                }
            }
        }
        let enrolled: u64 = self.enrol_runs.iter().map(|r| r.enrol.ok).sum();
        if enrolled > 0 {
            // Enrolments are not undone: the MEF keeps each Ke record until it expires.
            writeln!(
                f,
                "left behind: {enrolled} enrolment(s) recorded by the MEF (ke:<KeID> records)"
            )?;
        }
        Ok(())
    }

    /// The maf-sae table: one row per run and phase (with p90), then failures and what the
    /// runs left in the MAF.
    fn fmt_associations(
        &self,
        f: &mut fmt::Formatter<'_>,
        label_width: Option<usize>,
    ) -> fmt::Result {
        let rows: Vec<(u32, &PhaseReport)> = self
            .maf_sae_runs
            .iter()
            .flat_map(|r| [(r.clients, &r.sae), (r.clients, &r.cached)])
            .collect();
        self.fmt_phase_rows(f, label_width, "per_s", &rows)?;
        // Every association registered a key at the MAF (and the CSE keeps what it retrieved)
        // until the key expires; the bench cannot delete them for the CSE.
        let registered: u64 = self.maf_sae_runs.iter().map(|r| r.keys_registered).sum();
        if registered > 0 {
            writeln!(
                f,
                "left behind: {registered} key registration(s) at the MAF (SUID 32, expiring \
                 after 1 h) and the keys the CSE retrieved"
            )?;
        }
        Ok(())
    }
}

impl Report {
    /// A phase table with p90 (header, one row per clients value and phase, then the failures
    /// of each phase by kind), the rate column titled `rate`.
    fn fmt_phase_rows(
        &self,
        f: &mut fmt::Formatter<'_>,
        label_width: Option<usize>,
        rate: &str,
        rows: &[(u32, &PhaseReport)],
    ) -> fmt::Result {
        if let Some(w) = label_width {
            write!(f, "{:<w$}  ", "label")?;
        }
        writeln!(
            f,
            "{:>7}  {:<6}  {:>7}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>5}",
            "clients",
            "phase",
            "ok",
            "errors",
            "elapsed_s",
            rate,
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "conns"
        )?;
        for (clients, p) in rows {
            if let (Some(w), Some(label)) = (label_width, &self.label) {
                write!(f, "{label:<w$}  ")?;
            }
            write!(
                f,
                "{:>7}  {:<6}  {:>7}  {:>6}  {:>9.3}  {:>9.1}",
                clients,
                p.phase,
                p.ok,
                p.errors,
                p.elapsed_ms / 1000.0,
                p.req_per_s
            )?;
            match &p.latency {
                Some(l) => write!(
                    f,
                    "  {:>8.3}  {:>8.3}  {:>8.3}  {:>8.3}",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                )?,
                None => write!(f, "  {:>8}  {:>8}  {:>8}  {:>8}", "-", "-", "-", "-")?,
            }
            writeln!(f, "  {:>5}", p.connections)?;
        }
        for (clients, p) in rows {
            for e in &p.error_kinds {
                write!(
                    f,
                    "errors (c={} {}): {} x {}",
                    clients, p.phase, e.count, e.kind
                )?;
                match &e.example {
                    Some(example) => writeln!(f, ": {example}")?,
                    None => writeln!(f)?,
                }
            }
        }
        Ok(())
    }

    /// The direct-authz table: one row per run and phase (with p90), then failures,
    /// connections and what became of the run's resources.
    fn fmt_authorizations(
        &self,
        f: &mut fmt::Formatter<'_>,
        label_width: Option<usize>,
    ) -> fmt::Result {
        let rows: Vec<(u32, &PhaseReport)> = self
            .direct_authz_runs
            .iter()
            .flat_map(|r| [(r.clients, &r.direct), (r.clients, &r.cached)])
            .collect();
        self.fmt_phase_rows(f, label_width, "req/s", &rows)?;
        for run in &self.direct_authz_runs {
            writeln!(
                f,
                "connections (c={}): {} opened in all, setup and cleanup included",
                run.clients, run.connections
            )?;
            write!(
                f,
                "cleanup (c={}): {} containers, dac {} and ACP {} ",
                run.clients, run.containers, run.dac, run.acp
            )?;
            match &run.cleanup {
                Cleanup::Kept => writeln!(f, "kept")?,
                Cleanup::Deleted => writeln!(f, "deleted")?,
                Cleanup::DeletedByAdmin => writeln!(f, "deleted by the admin originator")?,
                Cleanup::Failed { reason } => writeln!(f, "NOT all deleted: {reason}")?,
            }
            write!(f, "requester (c={}): AE {} ", run.clients, run.requester)?;
            match &run.requester_ae {
                RequesterAe::Existing => writeln!(f, "was registered already, left as it was")?,
                RequesterAe::Registered { name, cleanup } => {
                    write!(f, "registered as {name}, ")?;
                    match cleanup {
                        Cleanup::Kept => writeln!(f, "kept")?,
                        Cleanup::Deleted => writeln!(f, "deleted")?,
                        Cleanup::DeletedByAdmin => writeln!(f, "deleted by the admin originator")?,
                        Cleanup::Failed { reason } => writeln!(f, "NOT deleted: {reason}")?,
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            label: Some("ACME".into()),
            url: "http://127.0.0.1:18080/cse-in".into(),
            workload: Workload::W1,
            count: 10,
            runs: vec![RunReport {
                clients: 8,
                origin: "Cbench-1".into(),
                ae_id: "Cbench-1".into(),
                ae_name: "bench-1".into(),
                phases: vec![
                    PhaseReport {
                        phase: Phase::Create,
                        ok: 7,
                        errors: 3,
                        error_kinds: vec![ErrorCount {
                            kind: "HTTP 403 RSC 4103".into(),
                            count: 3,
                            example: Some("no privilege".into()),
                        }],
                        elapsed_ms: 1234.5,
                        req_per_s: 5.67,
                        latency: Some(Latency {
                            p50_ms: 1.2345,
                            p90_ms: 5.0,
                            p99_ms: 9.0,
                            max_ms: 12.0,
                        }),
                        connections: 7,
                    },
                    PhaseReport {
                        phase: Phase::Retrieve,
                        ok: 0,
                        errors: 0,
                        error_kinds: vec![],
                        elapsed_ms: 0.0,
                        req_per_s: 0.0,
                        latency: None,
                        connections: 0,
                    },
                ],
                cleanup: Cleanup::DeletedByAdmin,
                connections: 8,
            }],
            enrol_runs: vec![],
            maf_sae_runs: vec![],
            direct_authz_runs: vec![],
        }
    }

    fn enrol_sample() -> Report {
        Report {
            label: None,
            url: "https://127.0.0.1:8444".into(),
            workload: Workload::Enrol,
            count: 40,
            runs: vec![],
            enrol_runs: vec![EnrolRunReport {
                clients: 4,
                kpm_id: "factory-1@mef.m2mtrust.example".into(),
                mef_name: "mef.m2mtrust.example".into(),
                enrol: PhaseReport {
                    phase: Phase::Enrol,
                    ok: 38,
                    errors: 2,
                    error_kinds: vec![ErrorCount {
                        kind: "bootstrap wrong_kpm".into(),
                        count: 2,
                        example: Some("wrong Kpm: the pre-shared keys differ".into()),
                    }],
                    elapsed_ms: 2000.0,
                    req_per_s: 19.0,
                    latency: Some(Latency {
                        p50_ms: 10.0,
                        p90_ms: 20.0,
                        p99_ms: 30.0,
                        max_ms: 40.0,
                    }),
                    connections: 40,
                },
            }],
            maf_sae_runs: vec![],
            direct_authz_runs: vec![],
        }
    }

    fn direct_authz_sample() -> Report {
        let phase = |phase, ok, errors, error_kinds, req_per_s, connections| PhaseReport {
            phase,
            ok,
            errors,
            error_kinds,
            elapsed_ms: 1500.0,
            req_per_s,
            latency: Some(Latency {
                p50_ms: 1.5,
                p90_ms: 2.5,
                p99_ms: 4.0,
                max_ms: 9.0,
            }),
            connections,
        };
        Report {
            label: None,
            url: "https://127.0.0.1:8443/cse-in".into(),
            workload: Workload::DirectAuthz,
            count: 100,
            runs: vec![],
            enrol_runs: vec![],
            maf_sae_runs: vec![],
            direct_authz_runs: vec![DirectAuthzRunReport {
                clients: 8,
                requester: "Cbench".into(),
                das: "https://127.0.0.1:8446/das".into(),
                acp: "bench-acp-1".into(),
                dac: "bench-dac-1".into(),
                containers: 101,
                direct: phase(
                    Phase::Direct,
                    99,
                    1,
                    vec![ErrorCount {
                        kind: "HTTP 403 RSC 4103".into(),
                        count: 1,
                        example: Some("no privilege".into()),
                    }],
                    66.0,
                    0,
                ),
                cached: phase(Phase::Cached, 100, 0, vec![], 1234.56, 0),
                cleanup: Cleanup::Deleted,
                requester_ae: RequesterAe::Registered {
                    name: "bench-1".into(),
                    cleanup: Cleanup::Deleted,
                },
                connections: 17,
            }],
        }
    }

    #[test]
    fn direct_authz_table_lists_both_phases_and_cleanup() {
        let report = direct_authz_sample();
        let text = report.to_string();
        assert!(
            text.starts_with(
                "workload direct-authz on https://127.0.0.1:8443/cse-in, 100 requests per phase \
                 as Cbench with DAS https://127.0.0.1:8446/das\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("      8  direct       99       1      1.500       66.0     1.500     2.500     4.000     9.000      0\n"),
            "{text}"
        );
        assert!(
            text.contains("      8  cached      100       0      1.500     1234.6     1.500     2.500     4.000     9.000      0\n"),
            "{text}"
        );
        assert!(
            text.contains("errors (c=8 direct): 1 x HTTP 403 RSC 4103: no privilege"),
            "{text}"
        );
        assert!(
            text.contains("connections (c=8): 17 opened in all"),
            "{text}"
        );
        assert!(
            text.contains(
                "cleanup (c=8): 101 containers, dac bench-dac-1 and ACP bench-acp-1 deleted\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("requester (c=8): AE Cbench registered as bench-1, deleted\n"),
            "{text}"
        );
        assert_eq!(report.errors(), 1);

        let mut existing = report;
        existing.direct_authz_runs[0].requester_ae = RequesterAe::Existing;
        existing.direct_authz_runs[0].cleanup = Cleanup::Failed {
            reason: "1 of 103 deletions failed".into(),
        };
        let text = existing.to_string();
        assert!(
            text.contains("requester (c=8): AE Cbench was registered already, left as it was"),
            "{text}"
        );
        assert!(
            text.contains("ACP bench-acp-1 NOT all deleted: 1 of 103 deletions failed"),
            "{text}"
        );
    }

    #[test]
    fn direct_authz_json_round_trips() {
        let report = direct_authz_sample();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["workload"], "direct-authz");
        let run = &json["direct_authz_runs"][0];
        assert_eq!(run["direct"]["phase"], "direct");
        assert_eq!(run["cached"]["phase"], "cached");
        assert_eq!(run["cleanup"]["status"], "deleted");
        assert_eq!(run["requester_ae"]["status"], "registered");
        assert_eq!(run["requester_ae"]["cleanup"]["status"], "deleted");
        assert!(json.get("maf_sae_runs").is_none(), "{json}");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn table_lists_phases_errors_and_cleanup() {
        let text = sample().to_string();
        assert!(text.contains("[ACME]"), "{text}");
        assert!(text.contains("ACME         8  create          7       3      1.234        5.7     1.234     9.000    12.000      7\n"), "{text}");
        assert!(
            text.contains("connections (c=8): 8 opened in all"),
            "{text}"
        );
        assert!(
            text.contains("errors (c=8 create): 3 x HTTP 403 RSC 4103: no privilege"),
            "{text}"
        );
        assert!(
            text.contains("cleanup (c=8): AE bench-1 deleted by the admin originator"),
            "{text}"
        );
        assert_eq!(sample().errors(), 3);
    }

    #[test]
    fn json_round_trips() {
        let report = sample();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["workload"], "W1");
        assert_eq!(json["runs"][0]["phases"][0]["phase"], "create");
        assert_eq!(json["runs"][0]["cleanup"]["status"], "deleted_by_admin");
        assert!(json.get("enrol_runs").is_none(), "{json}");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn enrol_table_lists_percentiles_and_failures() {
        let report = enrol_sample();
        let text = report.to_string();
        assert!(
            text.starts_with(
                "workload enrol on https://127.0.0.1:8444, 40 enrolments per run as \
                 factory-1@mef.m2mtrust.example with MEF mef.m2mtrust.example\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("      4       38       2      2.000       19.0    10.000    20.000    30.000    40.000     40\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "errors (c=4 enrol): 2 x bootstrap wrong_kpm: wrong Kpm: the pre-shared keys differ"
            ),
            "{text}"
        );
        assert!(text.contains("left behind: 38 enrolment(s)"), "{text}");
        assert!(!text.contains("cleanup"), "{text}");
        assert_eq!(report.errors(), 2);
    }

    #[test]
    fn enrol_json_round_trips() {
        let report = enrol_sample();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["workload"], "enrol");
        assert_eq!(json["enrol_runs"][0]["enrol"]["phase"], "enrol");
        assert_eq!(json["enrol_runs"][0]["enrol"]["latency"]["p90_ms"], 20.0);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
