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
    /// Requests per measured phase.
    pub count: u64,
    /// One run per `--clients` value, in the order given.
    pub runs: Vec<RunReport>,
}

impl Report {
    /// Failed requests over all runs and phases, for an exit status.
    pub fn errors(&self) -> u64 {
        self.runs
            .iter()
            .flat_map(|r| &r.phases)
            .map(|p| p.errors)
            .sum()
    }
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
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Create => "create",
            Phase::Retrieve => "retrieve",
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
    /// e.g. `HTTP 403 RSC 4103`, or the transport error.
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
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workload {:?} on {}, {} requests per phase",
            self.workload, self.url, self.count
        )?;
        if let Some(label) = &self.label {
            write!(f, " [{label}]")?;
        }
        writeln!(f)?;

        let label_width = self
            .label
            .as_ref()
            .map(|l| l.chars().count().max("label".len()));
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
        }
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
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
