//! `m2mtrust maf …`: the M2M Authentication Function's operator tools (pre-provisioned master
//! credentials, TS-0003 §8.8.3.1) and the device side of the MAF-based security association
//! (§8.2.2.3: register a key for a target CSE at the MAF).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use m2mtrust_channel::KpsaId;
use m2mtrust_mef::Assignment;
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{StoreError, StoreExt};

use crate::admin::{DataArg, ae_ids, fail, key_from_hex, open_store};
use crate::datadir::DataDir;

/// `m2mtrust maf`.
#[derive(Debug, Subcommand)]
pub enum MafCommand {
    /// Run the MAF alone on its own data folder and listener (TS-0003 §8.8): MAF Handshake with
    /// pre-provisioned Km or CSE-ID/AE-ID certificates, client and key registration. Target
    /// CSEs retrieve keys from it (`[maf] remote_url` in their configuration).
    Serve(MafServeArgs),
    /// Pre-provisioned master credentials (Km, named by KmID) of MAF clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Device side: register a key at the MAF for a target (MAF Key Registration, §8.8.2.7)
    /// with the master credential `m2mtrust enrol --maf` obtained: by default a SAEF key
    /// (SUID 32) for `m2mtrust request --data DEVDIR --use-maf-key`; `--usage esprim|esdata` for
    /// end-to-end keys. The key and its Key Identifier are kept sealed in the device's folder.
    RegisterKey(crate::enrol::RegisterKeyArgs),
    /// Device side: retrieve a key a Source registered at the MAF with this device among its
    /// targets (MAF Key Retrieval, §8.8.2.8), e.g. an ESData key (`register-key --usage
    /// esdata`); kept sealed in `DEVDIR/maf-keys/<RelativeKeyID>.json`.
    RetrieveKey(crate::enrol::RetrieveKeyArgs),
}

/// `m2mtrust maf serve`.
#[derive(Debug, Args)]
pub struct MafServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// TLS listener.
    #[arg(
        long,
        env = "M2MTRUST_MAF",
        value_name = "ADDR",
        default_value = "127.0.0.1:8445"
    )]
    listen: std::net::SocketAddr,
    /// The MAF's FQDN: SNI, its certificate's name and the issuer part of every KmID and Key
    /// Identifier [default: maf.<SP domain>].
    #[arg(long, env = "M2MTRUST_MAF_FQDN", value_name = "FQDN")]
    fqdn: Option<String>,
    /// The M2M Service Provider ID (its domain is the administrating stakeholder served).
    #[arg(
        long,
        env = "M2MTRUST_SP_ID",
        value_name = "SP-ID",
        default_value = "//m2mtrust.example"
    )]
    sp_id: String,
    /// The IN-CSE's CSE-ID (how CSE-ID certificates of targets are read).
    #[arg(long, value_name = "ID", default_value = "/id-in")]
    in_cse_id: String,
    /// Extra trust anchor (PEM) for client certificates, e.g. the target CSE's CA. Repeatable;
    /// the data folder's CA is always trusted.
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<std::path::PathBuf>,
    /// Log filter [default: info; RUST_LOG also works].
    #[arg(long, env = "M2MTRUST_LOG", value_name = "FILTER")]
    log: Option<String>,
}

/// `m2mtrust maf client`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Add a pre-provisioned master credential and the identity its client is known by.
    Add(ClientAdd),
    /// List MAF clients (never their keys).
    List(DataArg),
    /// Remove a MAF client by KmID.
    Remove(ClientRemove),
}

/// `maf client add`.
#[derive(Debug, Args)]
pub struct ClientAdd {
    #[command(flatten)]
    data: DataArg,
    /// KmID, `relative@MAF-FQDN` (TS-0003 §10.6): the `psk_identity` of the MAF Handshake.
    #[arg(long, value_name = "KM_ID")]
    km_id: String,
    /// Km, hex; at least 16 bytes.
    #[arg(long, value_name = "HEX")]
    km_hex: String,
    /// AE-ID the client is (the Source MAF Client ID targets bind to).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "bind_cse_id",
        conflicts_with = "bind_cse_id"
    )]
    bind_ae_id: Vec<String>,
    /// CSE-ID the client is.
    #[arg(long, value_name = "ID")]
    bind_cse_id: Option<String>,
    /// Validity in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    valid_days: u32,
}

/// `maf client remove`.
#[derive(Debug, Args)]
pub struct ClientRemove {
    #[command(flatten)]
    data: DataArg,
    /// KmID.
    #[arg(long, value_name = "KM_ID")]
    km_id: String,
}

/// Runs a `maf` subcommand.
pub async fn run(cmd: MafCommand) -> ExitCode {
    let cmd = match cmd {
        MafCommand::Client(c) => c,
        MafCommand::Serve(args) => return serve(args).await,
        MafCommand::RegisterKey(args) => return crate::enrol::register_key(args).await,
        MafCommand::RetrieveKey(args) => return crate::enrol::retrieve_key(args).await,
    };
    match cmd {
        ClientCommand::Add(a) => {
            let km_id = match KpsaId::parse(&a.km_id) {
                Ok(k) => k,
                Err(e) => return fail(format!("--km-id: {e}"), 2),
            };
            let km = match key_from_hex(&a.km_hex, "--km-hex") {
                Ok(k) => k,
                Err(e) => return fail(e, 2),
            };
            let assignment = if let Some(cse) = &a.bind_cse_id {
                match CseId::parse(cse) {
                    Ok(c) => Assignment::CseId(c.to_string()),
                    Err(e) => return fail(format!("--bind-cse-id: {e}"), 2),
                }
            } else {
                match ae_ids(&a.bind_ae_id, "--bind-ae-id") {
                    Ok(ids) => Assignment::AeIds(ids),
                    Err(e) => return fail(e, 2),
                }
            };
            let result = async {
                let dir = DataDir::open(&a.data.data)?;
                let store = open_store(&dir)?;
                let sealer = Arc::new(dir.sealer()?);
                let now = Timestamp::now();
                let expires = now.plus_secs(i64::from(a.valid_days) * 86_400);
                let record = m2mtrust_maf::km_record(
                    &sealer,
                    &km_id,
                    km.expose_bytes(),
                    &assignment,
                    now,
                    expires,
                )
                .map_err(|e| e.to_string())?;
                let id = record.id.clone();
                match store.write(move |w| w.put_credential(&record)).await {
                    Ok(()) => Ok(id),
                    Err(StoreError::Duplicate(_)) => {
                        Err(format!("MAF client {id} exists; remove it first"))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            .await;
            match result {
                Ok(id) => {
                    println!("added {id} ({assignment:?})");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        ClientCommand::List(d) => {
            let store = match DataDir::open(&d.data).and_then(|dir| open_store(&dir)) {
                Ok(s) => s,
                Err(e) => return fail(e, 1),
            };
            match store.read(|r| r.credentials()) {
                Ok(list) => {
                    println!("{:<48} {:<8} {:<24} expires", "client", "binding", "bound");
                    for c in list.into_iter().filter(|c| c.kind == m2mtrust_maf::KM_KIND) {
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
        ClientCommand::Remove(r) => {
            let km_id = match KpsaId::parse(&r.km_id) {
                Ok(k) => k,
                Err(e) => return fail(format!("--km-id: {e}"), 2),
            };
            let id = m2mtrust_maf::km_credential_id(&km_id);
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
                Ok(false) => fail(format!("no MAF client {id}"), 1),
                Err(e) => fail(e, 1),
            }
        }
    }
}

async fn serve(args: MafServeArgs) -> ExitCode {
    if let Err(e) = crate::serve::init_logging(args.log.as_deref(), None) {
        return fail(e, 2);
    }
    let (alone, ca, sp, in_cse) = match crate::mef_serve::Alone::open(
        &args.data.data,
        args.listen,
        ("--sp-id", &args.sp_id),
        ("--in-cse-id", &args.in_cse_id),
    )
    .await
    {
        Ok(a) => a,
        Err((e, code)) => return fail(e, code),
    };
    let sp_domain = sp.domain().to_string();
    let params = crate::mef_serve::MafParams {
        fqdn: args
            .fqdn
            .clone()
            .unwrap_or_else(|| format!("maf.{sp_domain}")),
        sp_domain,
        in_cse,
        trust_anchors: args.trust_anchor.clone(),
        mef: None,
    };
    let maf = match crate::mef_serve::build_maf_with(
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
    match alone.run("maf", &params.fqdn, maf).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}
