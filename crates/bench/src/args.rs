//! Command-line arguments of `m2mtrust bench`.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// A named, fixed request sequence, so runs against different CSEs measure the same thing.
#[derive(ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Register an AE, create a container, create N contentInstances, retrieve the latest N
    /// times, delete the AE.
    #[value(name = "W1")]
    W1,
    /// Enrol a device with an M2M Enrolment Function again and again (TS-0003 §8.3.2.1 PPSK
    /// RSPF): TCP connect, TLS-PSK bootstrap handshake with the factory Kpm, Enrolment
    /// Exchange; N enrolments in all per clients value, each on a new connection.
    #[value(name = "enrol")]
    #[serde(rename = "enrol")]
    Enrol,
    /// Establish security associations with a CSE through an M2M Authentication Function
    /// (TS-0003 §8.2.2.3 MAF-based SAEF): MAF Handshake with the client's Km, MAF Key
    /// Registration of the session's exported Kc (§8.8.2.7, SUID 32), then a TLS-PSK
    /// handshake with the CSE under the Key Identifier, for which the CSE retrieves Kc from
    /// the MAF; N of them per clients value. Then N handshakes with keys the CSE already holds.
    #[value(name = "maf-sae")]
    #[serde(rename = "maf-sae")]
    MafSae,
    /// Direct dynamic authorization round trips (TS-0003 §7.3.2.2): the admin creates N
    /// containers only it may use, each naming a consultation of `--das`; the requester
    /// (`--requester-cert`) RETRIEVEs each once, which the CSE refuses statically, asks the
    /// DAS about and permits. Then N RETRIEVEs of the same containers, decided from the
    /// grants the CSE cached.
    #[value(name = "direct-authz")]
    #[serde(rename = "direct-authz")]
    DirectAuthz,
}

impl Workload {
    /// The name `--workload` takes and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::Enrol => "enrol",
            Workload::MafSae => "maf-sae",
            Workload::DirectAuthz => "direct-authz",
        }
    }
}

/// `m2mtrust bench` arguments.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// CSEBase URL of the CSE under test: `http://...`, or `https://...` with a PSK
    /// (`--psk-id` and its key) or a client certificate (`--cert`, `--key`, `--ca`). With
    /// `--workload enrol`, the MEF's address instead: `https://host:port`; with
    /// `--workload maf-sae`, the CSE's TLS address: `https://host:port`. With `--workload
    /// direct-authz`, the CSEBase URL over https, and `--cert`/`--key` the admin's certificate.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/cse-in"
    )]
    pub url: String,

    /// Workload to run.
    #[arg(long, value_enum, ignore_case = true, default_value = "W1")]
    pub workload: Workload,

    /// Requests per measured phase (e.g. N creates, then N retrieves); with `--workload enrol`,
    /// enrolments per clients value; with `--workload maf-sae`, security associations per
    /// phase and clients value; with `--workload direct-authz`, containers (one DAS round trip
    /// each) per clients value.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,

    /// Concurrent clients, each on its own keep-alive connection (enrol: each enrolling one
    /// device at a time, on a new connection per enrolment); a comma list such as `1,8` runs
    /// the workload once per value and reports each.
    #[arg(short = 'c', long, value_name = "C[,C...]", value_delimiter = ',', default_value = "1",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Vec<u32>,

    /// Originator registering the AE [default: a fresh `Cbench-<random>` per run, so reruns and
    /// leftovers from `--keep` never collide].
    #[arg(long, value_name = "ID")]
    pub origin: Option<String>,

    /// Originator allowed to delete any resource; cleanup falls back to it when the AE cannot
    /// delete itself.
    #[arg(long, value_name = "ID", default_value = "CAdmin")]
    pub admin: String,

    /// oneM2M release version indicator sent as X-M2M-RVI.
    #[arg(long, value_name = "RVI", default_value = "3")]
    pub rvi: String,

    /// Leave the AE and its data on the CSE instead of deleting it at the end (direct-authz:
    /// the containers, consultation, ACP and requester AE).
    #[arg(long)]
    pub keep: bool,

    /// Per-request timeout (per enrolment with `--workload enrol`, per security association
    /// with `--workload maf-sae`): seconds, or a number with an `ms` or `s` suffix.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Don't draw progress bars.
    #[arg(long)]
    pub quiet: bool,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Name printed in the report (e.g. `m2mtrust` or `ACME`) to tell runs apart.
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,

    /// HTTPS credentials.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Bootstrap credential of `--workload enrol`.
    #[command(flatten)]
    pub enrol: EnrolArgs,

    /// MAF, master credential and key registration of `--workload maf-sae`.
    #[command(flatten)]
    pub maf_sae: MafSaeArgs,

    /// DAS and requester of `--workload direct-authz`.
    #[command(flatten)]
    pub direct_authz: DirectAuthzArgs,
}

/// The factory bootstrap credential `--workload enrol` enrols with (TS-0003 §8.3.2.1 PPSK
/// RSPF): the KpmID is the TLS-PSK identity and Kpm the key of every bootstrap handshake.
/// The MEF must know it (`m2mtrust mef enrollee add`); each enrolment gets a fresh KeID.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Enrolment (--workload enrol)")]
pub struct EnrolArgs {
    /// KpmID of the factory credential (`name@mef.fqdn`), sent as the TLS-PSK identity of
    /// every bootstrap handshake.
    #[arg(long, value_name = "KPM_ID")]
    pub kpm_id: Option<String>,

    /// File holding Kpm, the key of `--kpm-id`, in hex (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub kpm_file: Option<PathBuf>,

    /// FQDN of the MEF: the TLS server name and the issuer part of every KeID [default: the
    /// FQDN part of `--kpm-id`].
    #[arg(long, value_name = "FQDN")]
    pub mef_name: Option<String>,
}

impl EnrolArgs {
    /// The first enrolment flag given, to name it in an error.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            ("--kpm-id", self.kpm_id.is_some()),
            ("--kpm-file", self.kpm_file.is_some()),
            ("--mef-name", self.mef_name.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// What `--workload maf-sae` needs besides the CSE's address (TS-0003 §8.2.2.3): the MAF, a
/// pre-provisioned master credential of a MAF Client (§8.8.3.1, `m2mtrust maf client add`),
/// and the parameters of every MAF Key Registration (§8.8.2.7).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "MAF-based security association (--workload maf-sae)")]
pub struct MafSaeArgs {
    /// The MAF's TLS address, `https://host:port`.
    #[arg(long, value_name = "URL")]
    pub maf: Option<String>,

    /// KmID of the master credential (`name@maf.fqdn`), sent as the TLS-PSK identity of every
    /// MAF Handshake.
    #[arg(long, value_name = "KM_ID")]
    pub km_id: Option<String>,

    /// File holding Km, the key of `--km-id`, in hex (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub km_file: Option<PathBuf>,

    /// FQDN of the MAF: the TLS server name, the `fqdn` of every request and the issuer part of
    /// every Key Identifier [default: the FQDN part of `--km-id`].
    #[arg(long, value_name = "FQDN")]
    pub maf_name: Option<String>,

    /// The administrating stakeholder the client registers with and its keys are registered
    /// for (`adminFQDN`) [default: m2mtrust.example].
    #[arg(long, value_name = "FQDN")]
    pub admin_fqdn: Option<String>,

    /// CSE-ID of the CSE under test, the one target ID (`tids`) of every registered key
    /// [default: /id-in].
    #[arg(long, value_name = "CSE_ID")]
    pub target_cse_id: Option<String>,
}

impl MafSaeArgs {
    /// The first flag given, to name it in an error.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            ("--maf", self.maf.is_some()),
            ("--km-id", self.km_id.is_some()),
            ("--km-file", self.km_file.is_some()),
            ("--maf-name", self.maf_name.is_some()),
            ("--admin-fqdn", self.admin_fqdn.is_some()),
            ("--target-cse-id", self.target_cse_id.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// What `--workload direct-authz` needs besides the admin credential of `--url` (TS-0003
/// §7.3.2.2): the DAS the bench's consultation names, and the requester's AE certificate. The
/// DAS must grant the requester RETRIEVE on the bench's containers, e.g. `m2mtrust das policy
/// add --data DIR --originator /id-in/Cbench --target '/id-in/cse-in/*' --operations 2 --grant
/// both`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Direct dynamic authorization (--workload direct-authz)")]
pub struct DirectAuthzArgs {
    /// Point of access of the DAS (`dap` of the bench's <dynamicAuthorizationConsultation>),
    /// as the CSE reaches it [default: https://127.0.0.1:8446/das].
    #[arg(long, value_name = "URL")]
    pub das: Option<String>,

    /// AE-ID of the requester, a C-type AE-ID of its certificate (`m2mtrust cert issue --ae-id
    /// ID`) [default: Cbench].
    ///
    /// The DAS must have a policy granting it RETRIEVE below the CSEBase:
    /// `m2mtrust das policy add --data DIR --originator /id-in/Cbench --target
    /// '/id-in/cse-in/*' --operations 2 --grant both`.
    #[arg(long, value_name = "ID")]
    pub requester: Option<String>,

    /// The requester's certificate chain, PEM, leaf first; checked against `--ca` and
    /// `--server-name` like the admin's.
    #[arg(long, value_name = "FILE")]
    pub requester_cert: Option<PathBuf>,

    /// Private key of `--requester-cert`, PEM (EC P-256).
    #[arg(long, value_name = "FILE")]
    pub requester_key: Option<PathBuf>,
}

impl DirectAuthzArgs {
    /// The first flag given, to name it in an error.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            ("--das", self.das.is_some()),
            ("--requester", self.requester.is_some()),
            ("--requester-cert", self.requester_cert.is_some()),
            ("--requester-key", self.requester_key.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// HTTPS credentials: a TLS-PSK (TS-0003 §8.2.2.1) or a client certificate (§8.2.2.2). Only
/// with an `https://` URL, and then exactly one of the two.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTPS")]
pub struct TlsArgs {
    /// KpsaID of a pre-provisioned key (`name@issuer.fqdn`), sent as the TLS-PSK identity; the
    /// key authenticates the server too, so no server certificate is checked.
    #[arg(long, value_name = "KPSA_ID")]
    pub psk_id: Option<String>,

    /// The key of `--psk-id`, in hex.
    #[arg(long, value_name = "HEX", value_parser = secret_text, conflicts_with = "psk_key_file")]
    pub psk_key_hex: Option<SecretText>,

    /// File holding the key of `--psk-id` in hex (surrounding whitespace is ignored), so the
    /// key stays out of the process list.
    #[arg(long, value_name = "FILE")]
    pub psk_key_file: Option<PathBuf>,

    /// Client certificate chain, PEM, leaf first (an AE-ID or CSE-ID certificate).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Private key of `--cert`, PEM (EC P-256).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// CA certificate(s), PEM, the server certificate must chain to; required with `--cert`.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Server name sent in SNI and matched against the server certificate [default: the URL
    /// host; an IP address sends no SNI and is matched against IP SANs].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// The first TLS flag given, to name it in an error.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            ("--psk-id", self.psk_id.is_some()),
            ("--psk-key-hex", self.psk_key_hex.is_some()),
            ("--psk-key-file", self.psk_key_file.is_some()),
            ("--cert", self.cert.is_some()),
            ("--key", self.key.is_some()),
            ("--ca", self.ca.is_some()),
            ("--server-name", self.server_name.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// A secret given on the command line; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret. Callers must not log or print it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Takes the value as is: it is checked later, by code that never echoes it.
fn secret_text(text: &str) -> Result<SecretText, Infallible> {
    Ok(SecretText::new(text))
}

/// Parses `30`, `30s`, `1.5s` or `500ms`; zero is refused since every request would time out.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 30, 30s or 500ms)"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5m").is_err());
    }
}
