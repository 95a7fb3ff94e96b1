//! `m2mtrust mef …`: the operator side of the M2M Enrolment Function. For now, the factory
//! credentials (Kpm) and what each enrolee will be assigned (TS-0003 §8.3.2.1).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use m2mtrust_channel::KpsaId;
use m2mtrust_mef::{Assignment, CERT_ENROLLEE_KIND, KPM_KIND, StoreEnrollees};
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{StoreError, StoreExt};

use crate::admin::{DataArg, ae_ids, fail, key_from_hex, open_store};
use crate::datadir::DataDir;

/// `m2mtrust mef`.
#[derive(Debug, Subcommand)]
pub enum MefCommand {
    /// Run the MEF alone on its own data folder and listener (TS-0003 §8.3): bootstrap of
    /// factory-PSK and certificate enrolees, the Enrolment Exchange, EST, the MEF procedures.
    /// Enrolees' keys stay here; the target CSE fetches them (`[mef] remote_url` in its
    /// configuration).
    Serve(MefServeArgs),
    /// Factory credentials of enrolees and their assignments.
    #[command(subcommand)]
    Enrollee(EnrolleeCommand),
}

/// `m2mtrust mef serve`.
#[derive(Debug, Args)]
pub struct MefServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// TLS listener.
    #[arg(
        long,
        env = "M2MTRUST_MEF",
        value_name = "ADDR",
        default_value = "127.0.0.1:8444"
    )]
    listen: std::net::SocketAddr,
    /// The MEF's FQDN: SNI, its certificate's name and the issuer part of every KeID
    /// [default: mef.<SP domain>].
    #[arg(long, env = "M2MTRUST_MEF_FQDN", value_name = "FQDN")]
    fqdn: Option<String>,
    /// The M2M Service Provider ID.
    #[arg(
        long,
        env = "M2MTRUST_SP_ID",
        value_name = "SP-ID",
        default_value = "//m2mtrust.example"
    )]
    sp_id: String,
    /// CSE-ID of the enrolment target (the IN-CSE devices register with); only it may fetch
    /// enrolees' keys.
    #[arg(long, value_name = "ID", default_value = "/id-in")]
    target_cse_id: String,
    /// URI of the target's <CSEBase>, given to devices in their securityProfile.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://127.0.0.1:8443/cse-in"
    )]
    target_cse_base: String,
    /// Extra trust anchor (PEM) for client certificates: the target CSE's CA, device makers'
    /// CAs. Repeatable; the data folder's CA is always trusted.
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<std::path::PathBuf>,
    /// Validity of certificates enrolled through EST, days.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    certificate_days: u32,
    /// Log filter [default: info; RUST_LOG also works].
    #[arg(long, env = "M2MTRUST_LOG", value_name = "FILTER")]
    log: Option<String>,
}

/// `m2mtrust mef enrollee`.
#[derive(Debug, Subcommand)]
pub enum EnrolleeCommand {
    /// Pre-register a factory PSK (Kpm, identified by its KpmID) and the identity the device
    /// will be assigned when it enrols. The key is sealed with the data folder's master key.
    Add(EnrolleeAdd),
    /// List enrollees (never their keys).
    List(DataArg),
    /// Remove an enrollee by KpmID or certificate Credential-ID.
    Remove(EnrolleeRemove),
}

/// `mef enrollee add`.
#[derive(Debug, Args)]
pub struct EnrolleeAdd {
    #[command(flatten)]
    data: DataArg,
    /// KpmID, `relative@MEF-FQDN`: the `psk_identity` of the bootstrap handshake (PPSK
    /// enrolee, needs --kpm-hex).
    #[arg(
        long,
        value_name = "KPM_ID",
        requires = "kpm_hex",
        required_unless_present_any = ["certificate", "credential_id"],
        conflicts_with_all = ["certificate", "credential_id"]
    )]
    kpm_id: Option<String>,
    /// Kpm, hex; at least 16 bytes.
    #[arg(long, value_name = "HEX")]
    kpm_hex: Option<String>,
    /// A device certificate (PEM) the enrolee bootstraps with (certificate RSPF, §8.3.2.2); it is
    /// identified by its public key, Credential-ID `30-ni:///sha-256;…`.
    #[arg(long, value_name = "FILE", conflicts_with = "credential_id")]
    certificate: Option<std::path::PathBuf>,
    /// The Credential-ID of the enrolee's certificate (TS-0003 §10.4), e.g. `33-/id-in/Cdev1` for
    /// an AE-ID certificate or `32-/id-mn` for a CSE-ID certificate.
    #[arg(long, value_name = "ID")]
    credential_id: Option<String>,
    /// AE-ID the enrolee will be assigned; repeat for a list.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "assign_cse_id",
        conflicts_with = "assign_cse_id"
    )]
    assign_ae_id: Vec<String>,
    /// CSE-ID the enrolee will be assigned.
    #[arg(long, value_name = "ID")]
    assign_cse_id: Option<String>,
    /// Enrolment expiry (TS-0003 §10.7) in days from now.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    valid_days: u32,
}

/// `mef enrollee remove`.
#[derive(Debug, Args)]
pub struct EnrolleeRemove {
    #[command(flatten)]
    data: DataArg,
    /// KpmID.
    #[arg(long, value_name = "KPM_ID", required_unless_present = "credential_id")]
    kpm_id: Option<String>,
    /// Credential-ID of a certificate enrolee.
    #[arg(long, value_name = "ID", conflicts_with = "kpm_id")]
    credential_id: Option<String>,
}

/// Runs a `mef` subcommand.
pub async fn run(cmd: MefCommand) -> ExitCode {
    let cmd = match cmd {
        MefCommand::Enrollee(cmd) => cmd,
        MefCommand::Serve(args) => return serve(args).await,
    };
    match cmd {
        EnrolleeCommand::Add(a) => {
            let factory = match (&a.kpm_id, &a.kpm_hex) {
                (Some(id), Some(hex)) => {
                    let kpm_id = match KpsaId::parse(id) {
                        Ok(k) => k,
                        Err(e) => return fail(format!("--kpm-id: {e}"), 2),
                    };
                    let kpm = match key_from_hex(hex, "--kpm-hex") {
                        Ok(k) => k,
                        Err(e) => return fail(e, 2),
                    };
                    Some((kpm_id, kpm))
                }
                _ => None,
            };
            let cert_id = match (&a.certificate, &a.credential_id) {
                (Some(path), _) => match certificate_credential_id(path) {
                    Ok(id) => Some(id),
                    Err(e) => return fail(format!("--certificate: {e}"), 2),
                },
                (None, Some(id)) => match id.split_once('-') {
                    Some((t, v)) if matches!(t, "30" | "31" | "32" | "33") && !v.is_empty() => {
                        Some(id.clone())
                    }
                    _ => {
                        return fail(
                            format!("--credential-id {id:?}: expected 30-, 31-, 32- or 33-<value>"),
                            2,
                        );
                    }
                },
                (None, None) => None,
            };
            let assignment = if let Some(cse) = &a.assign_cse_id {
                match CseId::parse(cse) {
                    Ok(c) => Assignment::CseId(c.to_string()),
                    Err(e) => return fail(format!("--assign-cse-id: {e}"), 2),
                }
            } else {
                match ae_ids(&a.assign_ae_id, "--assign-ae-id") {
                    Ok(ids) => Assignment::AeIds(ids),
                    Err(e) => return fail(e, 2),
                }
            };
            let result = async {
                let dir = DataDir::open(&a.data.data)?;
                let store = open_store(&dir)?;
                let enrollees = StoreEnrollees::new(store.clone(), Arc::new(dir.sealer()?));
                let now = Timestamp::now();
                let expires = now.plus_secs(i64::from(a.valid_days) * 86_400);
                let record = match (&factory, &cert_id) {
                    (Some((kpm_id, kpm)), _) => enrollees
                        .record(kpm_id, kpm.expose_bytes(), &assignment, now, expires)
                        .map_err(|e| e.to_string())?,
                    (None, Some(id)) => {
                        StoreEnrollees::certificate_record(id, &assignment, now, expires)
                    }
                    (None, None) => return Err("no enrolee credential given".to_string()),
                };
                let id = record.id.clone();
                match store.write(move |w| w.put_credential(&record)).await {
                    Ok(()) => Ok((id, expires)),
                    Err(StoreError::Duplicate(_)) => {
                        Err(format!("enrollee {id} exists; remove it first"))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            .await;
            match result {
                Ok((id, expires)) => {
                    println!(
                        "added {id} ({assignment:?}), enrolment expires {}",
                        expires.to_onem2m()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        EnrolleeCommand::List(d) => {
            let store = match DataDir::open(&d.data).and_then(|dir| open_store(&dir)) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            match store.read(|r| r.credentials()) {
                Ok(list) => {
                    println!(
                        "{:<48} {:<8} {:<24} expires",
                        "enrollee", "binding", "assigned"
                    );
                    for c in list
                        .into_iter()
                        .filter(|c| c.kind == KPM_KIND || c.kind == CERT_ENROLLEE_KIND)
                    {
                        let expires = c
                            .expires
                            .map(|t| t.to_onem2m())
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{:<48} {:<8} {:<24} {expires}",
                            c.id,
                            c.binding,
                            c.bound_ids.join(",")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        EnrolleeCommand::Remove(r) => {
            let id = match (&r.kpm_id, &r.credential_id) {
                (Some(k), _) => match KpsaId::parse(k) {
                    Ok(k) => StoreEnrollees::kpm_credential_id(&k),
                    Err(e) => return fail(format!("--kpm-id: {e}"), 2),
                },
                (None, Some(id)) => id.clone(),
                (None, None) => return fail("give --kpm-id or --credential-id", 2),
            };
            let store = match DataDir::open(&r.data.data).and_then(|dir| open_store(&dir)) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            let key = id.clone();
            match store.write(move |w| w.remove_credential(&key)).await {
                Ok(true) => {
                    println!("removed {id}");
                    ExitCode::SUCCESS
                }
                Ok(false) => fail(format!("no enrollee {id}"), 1),
                Err(e) => fail(e, 1),
            }
        }
    }
}

/// The Credential-ID a device certificate is known by at the MEF: `30-` and the RFC 6920
/// identifier of its public key (TS-0003 §10.1.2, §10.4).
fn certificate_credential_id(path: &std::path::Path) -> Result<String, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let cert =
        openssl::x509::X509::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    let id = m2mtrust_channel::public_key_identifier(&cert)
        .ok_or_else(|| format!("{}: no usable public key", path.display()))?;
    Ok(format!("30-{id}"))
}

async fn serve(args: MefServeArgs) -> ExitCode {
    if let Err(e) = crate::serve::init_logging(args.log.as_deref(), None) {
        return fail(e, 2);
    }
    let (alone, ca, sp, target) = match crate::mef_serve::Alone::open(
        &args.data.data,
        args.listen,
        ("--sp-id", &args.sp_id),
        ("--target-cse-id", &args.target_cse_id),
    )
    .await
    {
        Ok(a) => a,
        Err((e, code)) => return fail(e, code),
    };
    let sp_domain = sp.domain().to_string();
    let params = crate::mef_serve::MefParams {
        fqdn: args
            .fqdn
            .clone()
            .unwrap_or_else(|| format!("mef.{sp_domain}")),
        sp_domain: sp_domain.clone(),
        target: m2mtrust_mef::server::TargetCse {
            cse_id: target,
            sp_domain,
            cse_base_uri: args.target_cse_base.clone(),
        },
        trust_anchors: args.trust_anchor.clone(),
        certificate_days: args.certificate_days,
        local_target: false,
        maf: None,
    };
    let mef = match crate::mef_serve::build_with(
        &params,
        &alone.dir,
        ca,
        &alone.sealer,
        &alone.store,
        alone.local,
    ) {
        Ok(m) => m,
        Err(e) => return fail(e, 1),
    };
    match alone.run("mef", &params.fqdn, mef).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}
