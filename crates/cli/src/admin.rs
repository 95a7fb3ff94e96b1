//! `m2mtrust credential …` and `m2mtrust cert …`: managing credentials and certificates on a data
//! folder, also while the server runs (the server reads credentials at each handshake).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use m2mtrust_crypto::{CertProfile, CredentialId, KpsaId, SecretKey};
use m2mtrust_model::{CseId, Home, Originator, SpId, Timestamp};
use m2mtrust_store::{CredentialRecord, Durability, Store, StoreError, StoreExt};

use crate::datadir::{DEV_CERT_DAYS, DataDir};

/// The data folder option shared by the management commands.
#[derive(Debug, Args)]
pub struct DataArg {
    /// Data folder of the server [default: m2mtrust-data].
    #[arg(
        long,
        env = "M2MTRUST_DATA",
        value_name = "DIR",
        default_value = "m2mtrust-data"
    )]
    pub(crate) data: PathBuf,
}

/// `m2mtrust credential`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Add a pre-provisioned symmetric key (TS-0003 §8.2.2.1) bound to an AE-ID or a CSE-ID.
    ///
    /// The key is sealed with the data folder's master key; its Credential-ID is `12-<KpsaID>`.
    AddPsk(AddPsk),
    /// Add a pairwiseESPrimKey (TS-0003 §8.4.2 Phase A, provisioned): end-to-end protected
    /// requests (ESPrim) under this key identifier are taken as coming from the bound AE-ID or
    /// CSE-ID (an AE of another CSE in SP-relative form, e.g. /id-mn/Cae1).
    AddEsprim(AddEsprim),
    /// List credentials (never their keys).
    List(DataArg),
    /// Remove a credential by KpsaID or Credential-ID.
    Remove(Remove),
}

/// `credential add-psk`.
#[derive(Debug, Args)]
pub struct AddPsk {
    #[command(flatten)]
    data: DataArg,
    /// KpsaID, `relative@issuer-FQDN` (TS-0003 §10.5); the TLS `psk_identity`.
    #[arg(long, value_name = "KPSA_ID")]
    id: String,
    /// The key, hex; at least 16 bytes.
    #[arg(long, value_name = "HEX")]
    key_hex: String,
    /// The AE-ID the key authenticates; repeat for a list of AE-IDs.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "cse_id",
        conflicts_with = "cse_id"
    )]
    ae_id: Vec<String>,
    /// The CSE-ID the key authenticates (pre-assigned CSE-ID for CSE registration).
    #[arg(long, value_name = "ID")]
    cse_id: Option<String>,
}

/// `credential add-esprim`.
#[derive(Debug, Args)]
pub struct AddEsprim {
    #[command(flatten)]
    data: DataArg,
    /// The pairwiseESPrimKeyID (`kid` of the ESPrim Objects), `relative@issuer-FQDN`.
    #[arg(long, value_name = "KID")]
    kid: String,
    /// The key, hex; at least 16 bytes.
    #[arg(long, value_name = "HEX")]
    key_hex: String,
    /// The AE-ID the key is associated with (§7.2.2: the inner From must be it).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "cse_id",
        conflicts_with = "cse_id"
    )]
    ae_id: Option<String>,
    /// The CSE-ID the key is associated with.
    #[arg(long, value_name = "ID")]
    cse_id: Option<String>,
    /// Lifetime of the key (pairwiseESPrimKeyLifetime), seconds [default: no expiry].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(1..))]
    valid_secs: Option<i64>,
}

/// `credential remove`.
#[derive(Debug, Args)]
pub struct Remove {
    #[command(flatten)]
    data: DataArg,
    /// KpsaID or Credential-ID (`12-…`).
    #[arg(long, value_name = "ID")]
    id: String,
}

/// `m2mtrust cert`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate from the data folder's development CA (TS-0003 §10.1.1 profiles).
    ///
    /// Writes `PREFIX.pem` (certificate and CA chain) and `PREFIX-key.pem` (mode 0600).
    Issue(CertIssue),
}

/// `cert issue`.
#[derive(Debug, Args)]
pub struct CertIssue {
    #[command(flatten)]
    data: DataArg,
    /// AE-ID certificate (URI SAN `https://<sp>/<registrar>/<AE-ID>`).
    #[arg(long, value_name = "ID", group = "subject")]
    ae_id: Option<String>,
    /// CSE-ID certificate (dNSName SAN `<cse-id>.<in-cse-id>.<sp-domain>`).
    #[arg(long, value_name = "ID", group = "subject")]
    cse_id: Option<String>,
    /// FQDN certificate (dNSName SAN = the name).
    #[arg(long, value_name = "NAME", group = "subject")]
    fqdn: Option<String>,
    /// Output prefix.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = DEV_CERT_DAYS)]
    days: u32,
    /// The M2M SP-ID the names are in.
    #[arg(long, env = "M2MTRUST_SP_ID", default_value = "//m2mtrust.example")]
    sp_id: String,
    /// The IN-CSE's CSE-ID (registrar of AEs, root of CSE-ID names).
    #[arg(long, env = "M2MTRUST_CSE_ID", default_value = "/id-in")]
    in_cse_id: String,
}

fn home(sp_id: &str, cse_id: &str) -> Result<Home, String> {
    Ok(Home {
        sp_id: SpId::parse(sp_id).map_err(|e| format!("--sp-id: {e}"))?,
        cse_id: CseId::parse(cse_id).map_err(|e| format!("--in-cse-id: {e}"))?,
        cse_base_name: "cse-in".into(),
    })
}

pub(crate) fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

pub(crate) fn open_store(dir: &DataDir) -> Result<std::sync::Arc<dyn Store>, String> {
    Ok(std::sync::Arc::new(dir.store(Durability::Full)?))
}

/// A key given in hex on the command line; at least 16 bytes.
pub(crate) fn key_from_hex(hex: &str, flag: &str) -> Result<SecretKey, String> {
    match SecretKey::from_hex(hex) {
        Ok(k) if k.len() >= 16 => Ok(k),
        Ok(_) => Err(format!("{flag}: the key must be at least 16 bytes")),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// AE-IDs given on the command line, checked and in canonical form (`Cabc`, `Sabc`).
pub(crate) fn ae_ids(list: &[String], flag: &str) -> Result<Vec<String>, String> {
    let home = m2mtrust_cse::CseConfig::default().home;
    list.iter()
        .map(|ae| match Originator::parse(ae, &home) {
            Ok(o) if o.is_ae() => Ok(o.canonical()),
            _ => Err(format!("{flag}: {ae:?} is not an AE-ID (C… or S…)")),
        })
        .collect()
}

/// Runs a `credential` subcommand.
pub async fn credential(cmd: CredentialCommand) -> ExitCode {
    match cmd {
        CredentialCommand::AddPsk(a) => {
            let kpsa = match KpsaId::parse(&a.id) {
                Ok(k) => k,
                Err(e) => return fail(format!("--id: {e}"), 2),
            };
            let key = match key_from_hex(&a.key_hex, "--key-hex") {
                Ok(k) => k,
                Err(e) => return fail(e, 2),
            };
            // Validate and normalise the bound identities.
            let (binding, bound_ids) = if let Some(cse) = &a.cse_id {
                match CseId::parse(cse) {
                    Ok(c) => ("cse", vec![c.to_string()]),
                    Err(e) => return fail(format!("--cse-id: {e}"), 2),
                }
            } else {
                match ae_ids(&a.ae_id, "--ae-id") {
                    Ok(ids) => (if ids.len() == 1 { "ae" } else { "ae-list" }, ids),
                    Err(e) => return fail(e, 2),
                }
            };
            let dir = match DataDir::open(&a.data.data) {
                Ok(d) => d,
                Err(e) => return fail(e, 1),
            };
            let id = CredentialId::kpsa(&kpsa).to_string();
            let sealed = match dir.sealer().and_then(|s| {
                s.seal(key.expose_bytes(), id.as_bytes())
                    .map_err(|e| e.to_string())
            }) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            let record = CredentialRecord {
                id: id.clone(),
                kind: "psk".into(),
                sealed_secret: Some(sealed),
                binding: binding.into(),
                bound_ids: bound_ids.clone(),
                created: Timestamp::now(),
                expires: None,
            };
            let store = match open_store(&dir) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            match store.write(move |w| w.put_credential(&record)).await {
                Ok(()) => {
                    println!("added {id} ({binding} {})", bound_ids.join(", "));
                    ExitCode::SUCCESS
                }
                Err(StoreError::Duplicate(_)) => {
                    fail(format!("credential {id} exists; remove it first"), 1)
                }
                Err(e) => fail(e, 1),
            }
        }
        CredentialCommand::AddEsprim(a) => {
            if let Err(e) = KpsaId::parse(&a.kid) {
                return fail(format!("--kid: {e}"), 2);
            }
            let key = match key_from_hex(&a.key_hex, "--key-hex") {
                Ok(k) => k,
                Err(e) => return fail(e, 2),
            };
            let (binding, identity) = match (&a.cse_id, &a.ae_id) {
                (Some(cse), _) => match CseId::parse(cse) {
                    Ok(c) => ("cse", c.to_string()),
                    Err(e) => return fail(format!("--cse-id: {e}"), 2),
                },
                (None, Some(ae)) => match ae_ids(std::slice::from_ref(ae), "--ae-id") {
                    Ok(mut ids) => ("ae", ids.remove(0)),
                    Err(e) => return fail(e, 2),
                },
                (None, None) => return fail("give --ae-id or --cse-id", 2),
            };
            let id = match crate::esprim_keys::credential_id(&a.kid) {
                Ok(id) => id,
                Err(e) => return fail(e, 2),
            };
            let dir = match DataDir::open(&a.data.data) {
                Ok(d) => d,
                Err(e) => return fail(e, 1),
            };
            let sealed = match dir.sealer().and_then(|s| {
                s.seal(key.expose_bytes(), id.as_bytes())
                    .map_err(|e| e.to_string())
            }) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            let now = Timestamp::now();
            let record = CredentialRecord {
                id: id.clone(),
                kind: crate::esprim_keys::KIND.into(),
                sealed_secret: Some(sealed),
                binding: binding.into(),
                bound_ids: vec![identity.clone()],
                created: now,
                expires: a.valid_secs.map(|s| now.plus_secs(s)),
            };
            let store = match open_store(&dir) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            match store.write(move |w| w.put_credential(&record)).await {
                Ok(()) => {
                    println!("added {id} (esprim key of {identity})");
                    ExitCode::SUCCESS
                }
                Err(StoreError::Duplicate(_)) => {
                    fail(format!("credential {id} exists; remove it first"), 1)
                }
                Err(e) => fail(e, 1),
            }
        }
        CredentialCommand::List(d) => {
            let store = match DataDir::open(&d.data).and_then(|dir| open_store(&dir)) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            match store.read(|r| r.credentials()) {
                Ok(list) => {
                    println!(
                        "{:<48} {:<6} {:<8} {:<24} added",
                        "credential-id", "kind", "binding", "bound to"
                    );
                    for c in list {
                        println!(
                            "{:<48} {:<6} {:<8} {:<24} {}",
                            c.id,
                            c.kind,
                            c.binding,
                            c.bound_ids.join(","),
                            c.created.to_onem2m()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        CredentialCommand::Remove(r) => {
            // `<type>-<value>` is a Credential-ID; anything else must be a KpsaID.
            let id = match CredentialId::parse(&r.id) {
                Ok(c) => c.to_string(),
                Err(_) => match KpsaId::parse(&r.id) {
                    Ok(k) => CredentialId::kpsa(&k).to_string(),
                    Err(e) => {
                        return fail(
                            format!("--id: neither a Credential-ID nor a KpsaID: {e}"),
                            2,
                        );
                    }
                },
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
                Ok(false) => fail(format!("no credential {id}"), 1),
                Err(e) => fail(e, 1),
            }
        }
    }
}

/// Runs a `cert` subcommand.
pub fn cert(cmd: CertCommand) -> ExitCode {
    let CertCommand::Issue(c) = cmd;
    let home = match home(&c.sp_id, &c.in_cse_id) {
        Ok(h) => h,
        Err(e) => return fail(e, 2),
    };
    let sp = home.sp_id.domain().to_string();
    let profile = if let Some(ae) = &c.ae_id {
        match Originator::parse(ae, &home) {
            Ok(o) if o.is_ae() => CertProfile::AeId {
                ae_id: o.canonical(),
                cse_id: home.cse_id.to_string(),
                sp_domain: sp,
            },
            _ => return fail(format!("--ae-id: {ae:?} is not an AE-ID (C… or S…)"), 2),
        }
    } else if let Some(cse) = &c.cse_id {
        match CseId::parse(cse) {
            Ok(id) => CertProfile::CseId {
                cse_id: id.to_string(),
                in_cse_id: home.cse_id.to_string(),
                sp_domain: sp,
            },
            Err(e) => return fail(format!("--cse-id: {e}"), 2),
        }
    } else if let Some(name) = &c.fqdn {
        CertProfile::Fqdn(name.clone())
    } else {
        return fail("give one of --ae-id, --cse-id, --fqdn", 2);
    };
    let result = DataDir::open(&c.data.data).and_then(|dir| {
        let sealer = dir.sealer()?;
        let ca = dir.dev_ca(&sealer, &home)?;
        let issued = ca.issue(&profile, c.days).map_err(|e| e.to_string())?;
        let paths = DataDir::export(&c.out, &issued.chain_pem, issued.key_pem.expose_pem())?;
        Ok((paths, dir.ca_path()))
    });
    match result {
        Ok(((cert, key), ca)) => {
            println!(
                "certificate {}\nkey         {}\nCA          {}",
                cert.display(),
                key.display(),
                ca.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}
