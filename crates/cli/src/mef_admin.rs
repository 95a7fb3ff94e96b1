//! `m2mtrust mef …`: the operator side of the M2M Enrolment Function. For now, the factory
//! credentials (Kpm) and what each enrolee will be assigned (TS-0003 §8.3.2.1).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use m2mtrust_channel::KpsaId;
use m2mtrust_mef::{Assignment, KPM_KIND, StoreEnrollees};
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{StoreError, StoreExt};

use crate::admin::{DataArg, ae_ids, fail, key_from_hex, open_store};
use crate::datadir::DataDir;

/// `m2mtrust mef`.
#[derive(Debug, Subcommand)]
pub enum MefCommand {
    /// Factory credentials of enrolees and their assignments.
    #[command(subcommand)]
    Enrollee(EnrolleeCommand),
}

/// `m2mtrust mef enrollee`.
#[derive(Debug, Subcommand)]
pub enum EnrolleeCommand {
    /// Pre-register a factory PSK (Kpm, identified by its KpmID) and the identity the device
    /// will be assigned when it enrols. The key is sealed with the data folder's master key.
    Add(EnrolleeAdd),
    /// List enrollees (never their keys).
    List(DataArg),
    /// Remove an enrollee by KpmID.
    Remove(EnrolleeRemove),
}

/// `mef enrollee add`.
#[derive(Debug, Args)]
pub struct EnrolleeAdd {
    #[command(flatten)]
    data: DataArg,
    /// KpmID, `relative@MEF-FQDN`: the `psk_identity` of the bootstrap handshake.
    #[arg(long, value_name = "KPM_ID")]
    kpm_id: String,
    /// Kpm, hex; at least 16 bytes.
    #[arg(long, value_name = "HEX")]
    kpm_hex: String,
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
    #[arg(long, value_name = "KPM_ID")]
    kpm_id: String,
}

/// Runs a `mef` subcommand.
pub async fn run(cmd: MefCommand) -> ExitCode {
    let MefCommand::Enrollee(cmd) = cmd;
    match cmd {
        EnrolleeCommand::Add(a) => {
            let kpm_id = match KpsaId::parse(&a.kpm_id) {
                Ok(k) => k,
                Err(e) => return fail(format!("--kpm-id: {e}"), 2),
            };
            let kpm = match key_from_hex(&a.kpm_hex, "--kpm-hex") {
                Ok(k) => k,
                Err(e) => return fail(e, 2),
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
                let record = enrollees
                    .record(&kpm_id, kpm.expose_bytes(), &assignment, now, expires)
                    .map_err(|e| e.to_string())?;
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
                    for c in list.into_iter().filter(|c| c.kind == KPM_KIND) {
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
            let kpm_id = match KpsaId::parse(&r.kpm_id) {
                Ok(k) => k,
                Err(e) => return fail(format!("--kpm-id: {e}"), 2),
            };
            let id = StoreEnrollees::kpm_credential_id(&kpm_id);
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
