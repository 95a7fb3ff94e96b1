//! Errors that stop a bench run.

use crate::report::PhaseReport;

/// Why a bench run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The `--url` value is not a usable URL.
    #[error("invalid CSE URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URL scheme is neither http nor https.
    #[error("CSE URL {url:?} uses scheme {scheme:?}, but only http and https are supported")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },

    /// An argument is out of range.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument cannot be put into an HTTP header.
    #[error("{what} {value:?} cannot be sent as an HTTP header value")]
    InvalidHeader {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
    },

    /// A setup or cleanup request was answered, but not with the expected response status code.
    #[error("{step} was refused by the CSE: HTTP {status}, RSC {rsc}{}", dbg_suffix(.dbg))]
    Refused {
        /// Which step (e.g. "registering the AE").
        step: &'static str,
        /// HTTP status code.
        status: u16,
        /// X-M2M-RSC, or "none" when the header was missing.
        rsc: String,
        /// `m2m:dbg` of the response, or the start of a non-JSON body.
        dbg: Option<String>,
    },

    /// A setup procedure at the MAF (`--workload maf-sae`) was answered with an error
    /// Response Status Code.
    #[error("{step} was refused by the MAF: RSC {rsc}{}", dbg_suffix(.dbg))]
    MafRefused {
        /// Which step (e.g. "registering the MAF client").
        step: &'static str,
        /// The Response Status Code.
        rsc: u16,
        /// The MAF's `m2m:dbg`.
        dbg: Option<String>,
    },

    /// Part of a batch of setup requests (e.g. creating the containers of `--workload
    /// direct-authz`) failed.
    #[error("{step}: {failed} of {attempted} failed: {summary}")]
    SetupFailed {
        /// Which step.
        step: &'static str,
        /// Requests that failed.
        failed: u64,
        /// Requests sent.
        attempted: u64,
        /// Error kinds with counts and first examples.
        summary: String,
    },

    /// The CSE refused the requester even after consulting the DAS (`--workload direct-authz`):
    /// no DAS policy covers it, or the CSE could not reach the DAS.
    #[error(
        "the CSE refused {requester} a RETRIEVE of {target} with RSC 4103 after consulting the \
         DAS {das}{}. No DAS policy grants {requester}? run: {hint} (or the CSE could not reach \
         the DAS: see its log)",
        dbg_suffix(.dbg)
    )]
    NotGranted {
        /// The requester's AE-ID.
        requester: String,
        /// The refused resource.
        target: String,
        /// The consultation's DAS.
        das: String,
        /// `m2m:dbg` of the refusal.
        dbg: Option<String>,
        /// The command adding a policy that grants the requester.
        hint: String,
    },

    /// A setup request got no response at all.
    #[error("{step} got no response from {url}: {reason}")]
    Transport {
        /// Which step.
        step: &'static str,
        /// Request URL.
        url: String,
        /// Transport error, with its causes.
        reason: String,
    },

    /// A setup request could not be sent because the TLS handshake failed (wrong key,
    /// unknown KpsaID, refused certificate, name mismatch, ...).
    #[error("{step} failed at {url}: {reason}")]
    Handshake {
        /// Which step.
        step: &'static str,
        /// Request URL.
        url: String,
        /// The server name used and why the handshake failed.
        reason: String,
    },

    /// No request (or enrolment) of a whole run succeeded, which points at the server or the
    /// arguments, not at load.
    #[error("every request failed with {clients} client(s): {summary}")]
    AllFailed {
        /// Concurrency of the failed run.
        clients: u32,
        /// Error kinds with counts.
        summary: String,
    },

    /// A worker task died; only a bug in this crate can cause it.
    #[error("a bench worker task failed: {0}")]
    Worker(String),

    /// The report could not be written to stdout.
    #[error("writing the report failed: {0}")]
    Output(#[from] std::io::Error),

    /// The report could not be encoded as JSON.
    #[error("encoding the report as JSON failed: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    /// [`BenchError::AllFailed`] for a run whose `phases` had no success, naming every error
    /// kind with its count and first example.
    pub(crate) fn all_failed(clients: u32, phases: &[PhaseReport]) -> Self {
        let summary = phases
            .iter()
            .flat_map(|p| p.error_kinds.iter().map(move |e| (p.phase, e)))
            .map(|(phase, e)| match &e.example {
                Some(dbg) => format!("{phase}: {} x {} ({dbg})", e.count, e.kind),
                None => format!("{phase}: {} x {}", e.count, e.kind),
            })
            .collect::<Vec<_>>()
            .join("; ");
        BenchError::AllFailed { clients, summary }
    }
}

fn dbg_suffix(dbg: &Option<String>) -> String {
    dbg.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
}
