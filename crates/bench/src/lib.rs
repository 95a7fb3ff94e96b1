//! Load tool for oneM2M HTTP CSEs and M2M Enrolment Functions.
//!
//! Drives any CSE by URL with a named workload and reports throughput and latency per phase,
//! so the same numbers can be taken from m2mtrust and from other CSEs and compared side by side.
//! Over `https://` it authenticates with a TLS-PSK or a client certificate (TS-0003 §8.2.2).
//! Workload `enrol` drives a MEF instead: complete PSK enrolments (TS-0003 §8.3.2.1) per second.
//! Workload `maf-sae` drives a CSE and its MAF: MAF-based security associations (TS-0003
//! §8.2.2.3) per second, and handshakes per second once the CSE holds the keys.
//! Workload `direct-authz` drives a CSE and its DAS: direct dynamic authorization round trips
//! (TS-0003 §7.3.2.2) per second, and requests per second decided from the grants the CSE kept.

mod args;
mod client;
mod direct_authz;
mod enrol;
mod error;
mod maf_sae;
mod progress;
mod report;
mod stats;
mod tls;
mod w1;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use hyper_util::client::legacy::connect::Connect;

pub use args::{BenchArgs, DirectAuthzArgs, EnrolArgs, MafSaeArgs, SecretText, TlsArgs, Workload};
pub use error::BenchError;
pub use report::{
    Cleanup, DirectAuthzRunReport, EnrolRunReport, ErrorCount, Latency, MafSaeRunReport, Phase,
    PhaseReport, Report, RequesterAe, RunReport,
};

use client::{Connections, Counting, Target};
use tls::Security;

/// Runs the workload, prints progress (indicatif, to stderr, hidden when stderr is not a terminal
/// or with `--quiet`) and a report table (or JSON with `--json`) to stdout; returns the report.
///
/// Failed requests, enrolments or associations are counted in the report ([`Report::errors`]); a run in which
/// none succeeded is [`BenchError::AllFailed`].
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let report = match args.workload {
        Workload::W1 => run_requests(args).await?,
        Workload::Enrol => run_enrolments(args).await?,
        Workload::MafSae => run_associations(args).await?,
        Workload::DirectAuthz => run_authorizations(args).await?,
    };
    print_report(&report, args.json)?;
    Ok(report)
}

/// W1 over http or https.
async fn run_requests(args: &BenchArgs) -> Result<Report, BenchError> {
    if let Some(flag) = args.enrol.first_given() {
        return Err(BenchError::InvalidArgument {
            what: flag,
            reason: "only used by --workload enrol".into(),
        });
    }
    if let Some(flag) = args.maf_sae.first_given() {
        return Err(BenchError::InvalidArgument {
            what: flag,
            reason: "only used by --workload maf-sae".into(),
        });
    }
    if let Some(flag) = args.direct_authz.first_given() {
        return Err(BenchError::InvalidArgument {
            what: flag,
            reason: "only used by --workload direct-authz".into(),
        });
    }
    let target = Target::parse(&args.url)?;
    let connections = Connections::default();
    match Security::from_args(&args.tls, &target)? {
        Security::Plain => {
            let connector = client::http_connector(args.timeout);
            let connector = Counting::new(connector, connections.clone());
            run_with(args, &target, connector, &connections).await
        }
        Security::Tls(settings) => {
            let connector = tls::HttpsConnector::new(settings, args.timeout)?;
            let connector = Counting::new(connector, connections.clone());
            run_with(args, &target, connector, &connections).await
        }
    }
}

/// The enrol workload, once per requested clients value.
async fn run_enrolments(args: &BenchArgs) -> Result<Report, BenchError> {
    let settings = Arc::new(enrol::Settings::from_args(args).await?);
    let hide_progress = args.quiet || !std::io::stderr().is_terminal();
    let mut enrol_runs = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        enrol_runs.push(enrol::run(&settings, clients, hide_progress).await?);
    }
    Ok(Report {
        label: args.label.clone(),
        url: settings.url().to_owned(),
        workload: Workload::Enrol,
        count: args.count,
        runs: Vec::new(),
        enrol_runs,
        maf_sae_runs: Vec::new(),
        direct_authz_runs: Vec::new(),
    })
}

/// The maf-sae workload, once per requested clients value, after making sure the MAF client
/// is registered.
async fn run_associations(args: &BenchArgs) -> Result<Report, BenchError> {
    let settings = Arc::new(maf_sae::Settings::from_args(args).await?);
    maf_sae::prepare(&settings).await?;
    let hide_progress = args.quiet || !std::io::stderr().is_terminal();
    let mut maf_sae_runs = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        maf_sae_runs.push(maf_sae::run(&settings, clients, hide_progress).await?);
    }
    Ok(Report {
        label: args.label.clone(),
        url: settings.url().to_owned(),
        workload: Workload::MafSae,
        count: args.count,
        runs: Vec::new(),
        enrol_runs: Vec::new(),
        maf_sae_runs,
        direct_authz_runs: Vec::new(),
    })
}

/// The direct-authz workload, once per requested clients value; each run sets up and removes
/// its own resources.
async fn run_authorizations(args: &BenchArgs) -> Result<Report, BenchError> {
    let settings = direct_authz::Settings::from_args(args)?;
    let hide_progress = args.quiet || !std::io::stderr().is_terminal();
    let mut direct_authz_runs = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        direct_authz_runs.push(direct_authz::run(&settings, clients, hide_progress).await?);
    }
    Ok(Report {
        label: args.label.clone(),
        url: settings.url().to_owned(),
        workload: Workload::DirectAuthz,
        count: args.count,
        runs: Vec::new(),
        enrol_runs: Vec::new(),
        maf_sae_runs: Vec::new(),
        direct_authz_runs,
    })
}

/// Runs W1 for every requested clients value over one connector type, which counts the
/// connections it opens in `connections`.
async fn run_with<C>(
    args: &BenchArgs,
    target: &Target,
    connector: C,
    connections: &Connections,
) -> Result<Report, BenchError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let settings = w1::Settings::from_args(args, target)?;
    let hide_progress = args.quiet || !std::io::stderr().is_terminal();
    let mut runs = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        let run = w1::run(
            &settings,
            clients,
            connector.clone(),
            connections,
            hide_progress,
        )
        .await?;
        runs.push(run);
    }
    Ok(Report {
        label: args.label.clone(),
        url: target.base.clone(),
        workload: Workload::W1,
        count: args.count,
        runs,
        enrol_runs: Vec::new(),
        maf_sae_runs: Vec::new(),
        direct_authz_runs: Vec::new(),
    })
}

fn print_report(report: &Report, json: bool) -> Result<(), BenchError> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(())
}
