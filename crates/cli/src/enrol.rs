//! `m2mtrust enrol`: the device side of remote security provisioning (TS-0003 §8.3.2). The
//! device bootstraps with its factory PSK or certificate, runs the Enrolment Exchange (and EST
//! when asked to), and keeps what it was given in its data folder, secrets sealed:
//!
//! ```text
//! DEVDIR/keys/master.key          seals the secrets below (mode 0600)
//! DEVDIR/enrolment.json           securityProfile + the target key, sealed
//! DEVDIR/pki/ca.pem               the MEF's CA certificates (EST /cacerts) or --mef-ca
//! DEVDIR/pki/device.pem           the EST-enrolled certificate chain (with --certificate)
//! DEVDIR/pki/device-key.sealed    its private key, sealed
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use m2mtrust_channel::{CertifiedKey, KpsaId, PskKey, TrustAnchors};
use m2mtrust_crypto::{PrivateKeyPem, Sealer, SecretKey};
use m2mtrust_mef::EnroleeCredential;
use m2mtrust_mef::client::{EnrolOptions, Enrolled, enrol};
use m2mtrust_mef::exchange::SecurityProfile;
use serde::{Deserialize, Serialize};

use crate::config::https_address;
use crate::datadir::{DataDir, write_private};

/// `m2mtrust enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The device's data folder, where the enrolment is stored.
    #[arg(long, value_name = "DEVDIR", env = "M2MTRUST_DATA")]
    data: PathBuf,
    /// The MEF: `https://host:port` (default port 8444).
    #[arg(long, value_name = "URL")]
    mef: String,
    /// The MEF's FQDN (SNI, its certificate name, the issuer of KeID) [default: the FQDN of
    /// --kpm-id, else the URL host].
    #[arg(long, value_name = "FQDN")]
    mef_name: Option<String>,
    /// KpmID of the factory PSK, `relative@MEF-FQDN` (PPSK bootstrap, §8.3.2.1).
    #[arg(
        long,
        value_name = "KPM_ID",
        requires = "kpm_file",
        conflicts_with = "cert"
    )]
    kpm_id: Option<String>,
    /// File holding Kpm in hex.
    #[arg(long, value_name = "FILE")]
    kpm_file: Option<PathBuf>,
    /// Device certificate chain, PEM (certificate bootstrap, §8.3.2.2).
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        required_unless_present = "kpm_id"
    )]
    cert: Option<PathBuf>,
    /// Private key of --cert, PEM.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// CA certificate the MEF's certificate must chain to (needed with --cert; kept as the
    /// device's trust anchor).
    #[arg(long, value_name = "FILE")]
    mef_ca: Option<PathBuf>,
    /// Also obtain a certificate for the assigned identity through EST (RFC 7030).
    #[arg(long)]
    certificate: bool,
    /// The device's M2M-Node-ID, sent to the MEF.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Also enrol for the MAF at this address (`https://host:port`, default port 8445): the
    /// device registers there with its remotely provisioned key and keeps the KmID it is
    /// assigned (`m2mtrust maf register-key` then uses it).
    #[arg(long, value_name = "URL")]
    maf: Option<String>,
}

/// What `enrolment.json` holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEnrolment {
    /// The securityProfile the MEF returned.
    pub security_profile: SecurityProfile,
    /// The target key, sealed with the device's master key (AAD = KeID), base64.
    pub sealed_key: String,
    /// The pairwiseESPrimKey for the target (SUID 23), sealed (AAD = `esprim:` KeID), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_esprim_key: Option<String>,
    /// Whether `pki/device.pem` holds an enrolled certificate.
    pub certificate: bool,
    /// The MAF master credential, when enrolled for a MAF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf: Option<StoredMaf>,
}

/// A MAF master credential kept by the device.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMaf {
    /// The MAF's FQDN.
    pub maf_fqdn: String,
    /// The administrating stakeholder registered with.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// The MAF Client Registration ID.
    pub registration_id: String,
    /// KmID.
    #[serde(rename = "kmID")]
    pub km_id: String,
    /// Km sealed with the device's master key (AAD = KmID), base64.
    pub sealed_km: String,
}

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Runs `m2mtrust enrol`.
pub async fn run(args: EnrolArgs) -> ExitCode {
    let (credential, kpm_fqdn) = match credential(&args) {
        Ok(c) => c,
        Err(e) => return fail(e, 2),
    };
    let (addr, url_host) = match https_address(&args.mef, 8444) {
        Ok(a) => a,
        Err(e) => return fail(format!("--mef: {e}"), 2),
    };
    let mef_name = args.mef_name.clone().or(kpm_fqdn).unwrap_or(url_host);
    let mef_trust = match &args.mef_ca {
        Some(p) => match read(p).and_then(|pem| {
            TrustAnchors::from_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))
        }) {
            Ok(t) => Some(t),
            Err(e) => return fail(format!("--mef-ca: {e}"), 2),
        },
        None => None,
    };
    let dir = match DataDir::open(&args.data) {
        Ok(d) => d,
        Err(e) => return fail(e, 1),
    };
    let sealer = match dir.sealer() {
        Ok(s) => s,
        Err(e) => return fail(e, 1),
    };
    let tcp = match tokio::net::TcpStream::connect(&addr).await {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot connect to the MEF at {addr}: {e}"), 1),
    };
    let _ = tcp.set_nodelay(true);
    let maf_address = match args.maf.as_deref().map(|u| https_address(u, 8445)) {
        Some(Ok((addr, _))) => Some(addr),
        Some(Err(e)) => return fail(format!("--maf: {e}"), 2),
        None => None,
    };
    let options = EnrolOptions {
        node_id: args.node_id.clone(),
        location: None,
        certificate: args.certificate,
        maf_address,
    };
    let enrolled = match enrol(tcp, &mef_name, credential, mef_trust, &options).await {
        Ok(e) => e,
        Err(e) => return fail(format!("enrolment failed: {e}"), 1),
    };
    match store(&dir, &sealer, &enrolled, args.mef_ca.as_deref()) {
        Ok(()) => {}
        Err(e) => return fail(e, 1),
    }
    let p = &enrolled.profile;
    println!("enrolled with {mef_name}");
    println!("  identity     {}", p.enrolee_id.join(", "));
    println!("  key ID       {}", p.key_id);
    println!("  target       {} ({})", p.target_id, p.cse_base_uri);
    println!("  expires      {}", p.expiration_time);
    if let Some(m) = &enrolled.maf {
        println!("  MAF KmID     {} ({})", m.km_id, m.maf_fqdn);
    } else if args.maf.is_some() {
        println!(
            "  MAF          not enrolled: {}",
            enrolled
                .maf_error
                .as_deref()
                .unwrap_or("the MEF gave no MAF instruction")
        );
    }
    if enrolled.certificate.is_some() {
        println!(
            "  certificate  {}",
            dir.root().join("pki/device.pem").display()
        );
    }
    println!(
        "  stored in    {}",
        dir.root().join("enrolment.json").display()
    );
    ExitCode::SUCCESS
}

fn credential(args: &EnrolArgs) -> Result<(EnroleeCredential, Option<String>), String> {
    if let (Some(id), Some(file)) = (&args.kpm_id, &args.kpm_file) {
        let kpm_id = KpsaId::parse(id).map_err(|e| format!("--kpm-id {id:?}: {e}"))?;
        let hex = String::from_utf8(read(file)?)
            .map_err(|_| format!("{} is not text", file.display()))?;
        let kpm = PskKey::from_hex(hex.trim()).map_err(|e| format!("--kpm-file: {e}"))?;
        let fqdn = kpm_id.issuer().to_owned();
        return Ok((EnroleeCredential::Psk { kpm_id, kpm }, Some(fqdn)));
    }
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Err("give --kpm-id and --kpm-file, or --cert and --key".into());
    };
    if args.mef_ca.is_none() {
        return Err("a certificate enrolment needs --mef-ca to verify the MEF".into());
    }
    let certified = CertifiedKey::from_pem(&read(cert)?, &read(key)?)
        .map_err(|e| format!("--cert/--key: {e}"))?;
    Ok((EnroleeCredential::Certificate(certified), None))
}

fn store(
    dir: &DataDir,
    sealer: &Sealer,
    enrolled: &Enrolled,
    mef_ca: Option<&Path>,
) -> Result<(), String> {
    let p = &enrolled.profile;
    let sealed = sealer
        .seal(enrolled.key.expose_bytes(), p.key_id.as_bytes())
        .map_err(|e| e.to_string())?;
    let ca_path = dir.root().join("pki/ca.pem");
    if let Some(cert) = &enrolled.certificate {
        std::fs::write(&ca_path, &cert.ca_pem)
            .map_err(|e| format!("cannot write {}: {e}", ca_path.display()))?;
        let cert_path = dir.root().join("pki/device.pem");
        std::fs::write(&cert_path, &cert.chain_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        let key_sealed = sealer
            .seal(cert.key_pem.expose_pem().as_bytes(), b"pki/device-key")
            .map_err(|e| e.to_string())?;
        write_private(&dir.root().join("pki/device-key.sealed"), &key_sealed)?;
    } else if let Some(ca) = mef_ca {
        std::fs::copy(ca, &ca_path)
            .map_err(|e| format!("cannot copy {} to {}: {e}", ca.display(), ca_path.display()))?;
    }
    let maf = match &enrolled.maf {
        Some(m) => {
            let km_id = m.km_id.to_string();
            let sealed = sealer
                .seal(m.km.expose_bytes(), km_id.as_bytes())
                .map_err(|e| e.to_string())?;
            Some(StoredMaf {
                maf_fqdn: m.maf_fqdn.clone(),
                admin_fqdn: m.admin_fqdn.clone(),
                registration_id: m.registration_id.clone(),
                km_id,
                sealed_km: B64.encode(sealed),
            })
        }
        None => None,
    };
    let sealed_esprim = sealer
        .seal(
            enrolled.esprim_key.expose_bytes(),
            format!("esprim:{}", p.key_id).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let stored = StoredEnrolment {
        security_profile: p.clone(),
        sealed_key: B64.encode(sealed),
        sealed_esprim_key: Some(B64.encode(sealed_esprim)),
        certificate: enrolled.certificate.is_some(),
        maf,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
    write_private(&dir.root().join("enrolment.json"), &json)
}

/// A device's stored enrolment, opened: what `m2mtrust request --data DEVDIR` connects with.
pub struct DeviceCredentials {
    /// KeID and the target key.
    pub psk: Option<(KpsaId, PskKey)>,
    /// The EST certificate chain and key.
    pub certificate: Option<(Vec<u8>, PrivateKeyPem)>,
    /// `pki/ca.pem`, when present.
    pub ca: Option<PathBuf>,
}

/// Opens the enrolment stored in `root`.
/// A JSON file of the device folder; errors name the file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    serde_json::from_slice(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// The device's master key, which seals what its folder keeps.
fn device_sealer(root: &Path) -> Result<Sealer, String> {
    Sealer::load_or_create(&root.join("keys/master.key")).map_err(|e| e.to_string())
}

/// Opens the base64 sealed key `field` of the file at `path`, sealed with `aad`.
fn unseal(
    sealer: &Sealer,
    path: &Path,
    field: &str,
    sealed: &str,
    aad: &str,
) -> Result<SecretKey, String> {
    let sealed = B64
        .decode(sealed)
        .map_err(|e| format!("{}: {field}: {e}", path.display()))?;
    sealer
        .open(&sealed, aad.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn load(root: &Path) -> Result<DeviceCredentials, String> {
    let path = root.join("enrolment.json");
    let stored: StoredEnrolment = read_json(&path)?;
    let sealer = device_sealer(root)?;
    let key_id = &stored.security_profile.key_id;
    let key = unseal(&sealer, &path, "sealedKey", &stored.sealed_key, key_id)?;
    let kpsa = KpsaId::parse(key_id).map_err(|e| format!("{}: keyID: {e}", path.display()))?;
    let psk = PskKey::new(key.expose_bytes().to_vec()).map_err(|e| e.to_string())?;
    let certificate = if stored.certificate {
        let chain = read(&root.join("pki/device.pem"))?;
        let key = sealer
            .open(
                &read(&root.join("pki/device-key.sealed"))?,
                b"pki/device-key",
            )
            .map_err(|e| format!("pki/device-key.sealed: {e}"))?;
        let key = String::from_utf8(key.expose_bytes().to_vec())
            .map_err(|_| "pki/device-key.sealed does not hold a PEM key".to_string())?;
        Some((chain, PrivateKeyPem::new(key)))
    } else {
        None
    };
    let ca = Some(root.join("pki/ca.pem")).filter(|p| p.exists());
    Ok(DeviceCredentials {
        psk: Some((kpsa, psk)),
        certificate,
        ca,
    })
}

/// How a device reaches the MAF: its data folder, the MAF, and the master credential.
#[derive(Debug, Args)]
pub struct MafAccess {
    /// The device's data folder (`m2mtrust enrol --maf` filled it).
    #[arg(long, value_name = "DEVDIR", env = "M2MTRUST_DATA")]
    data: PathBuf,
    /// The MAF: `https://host:port` (default port 8445).
    #[arg(long, value_name = "URL")]
    maf: String,
    /// A pre-provisioned master credential instead of the one `enrol --maf` obtained: its KmID
    /// (`relative@MAF-FQDN`).
    #[arg(long, value_name = "KM_ID", requires = "km_file")]
    km_id: Option<String>,
    /// File holding that Km in hex.
    #[arg(long, value_name = "FILE", requires = "km_id")]
    km_file: Option<PathBuf>,
    /// With --km-id: the administrating stakeholder the client registered with.
    #[arg(long, value_name = "FQDN", default_value = "m2mtrust.example")]
    admin_fqdn: String,
}

/// `m2mtrust maf register-key`.
#[derive(Debug, Args)]
pub struct RegisterKeyArgs {
    #[command(flatten)]
    access: MafAccess,
    /// The target: the CSE-ID of the CSE a SAEF or ESPrim key is for, or the AE-ID or CSE-ID
    /// allowed to retrieve an ESData key.
    #[arg(long, value_name = "ID", default_value = "/id-in")]
    target: String,
    /// Lifetime of the key in seconds (the MAF may shorten it).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(1..))]
    valid_secs: u32,
    /// What the key is for: `saef` (SUID 32, a TLS-PSK association with the target; kept in
    /// `maf-key.json` for `request --use-maf-key`), `esprim` (SUID 33, end-to-end security of
    /// primitives with the target; kept in `maf-esprim-key.json` for `request --esprim-maf`) or
    /// `esdata` (SUID 34, content for the target; kept in `maf-esdata-key.json`).
    #[arg(long, value_enum, default_value = "saef")]
    usage: MafKeyUsage,
}

/// The use of a MAF-distributed key (its Security Usage Identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MafKeyUsage {
    /// SUID 32: security association establishment.
    Saef,
    /// SUID 33: ESPrim; the pairwiseESPrimKey is derived from the key.
    Esprim,
    /// SUID 34: ESData encryption (AES key wrapping of content for the targets, which
    /// retrieve the key with `m2mtrust maf retrieve-key`).
    Esdata,
}

impl MafKeyUsage {
    fn suid(self) -> u16 {
        match self {
            Self::Saef => m2mtrust_maf::MAF_SAEF_SUID as u16,
            Self::Esprim => m2mtrust_maf::MAF_ESPRIM_SUID as u16,
            Self::Esdata => 34,
        }
    }

    fn file(self) -> &'static str {
        match self {
            Self::Saef => "maf-key.json",
            Self::Esprim => "maf-esprim-key.json",
            Self::Esdata => "maf-esdata-key.json",
        }
    }
}

/// `m2mtrust maf retrieve-key`.
#[derive(Debug, Args)]
pub struct RetrieveKeyArgs {
    #[command(flatten)]
    access: MafAccess,
    /// The Key Identifier of the key (`RelativeKeyID@MAF-FQDN`) a Source registered with this
    /// device among its targets.
    #[arg(long, value_name = "KEY_ID")]
    key_id: String,
}

/// Runs `m2mtrust maf retrieve-key`: MAF Key Retrieval (§8.8.2.8) of a key registered for
/// this device; the key is kept sealed in `maf-keys/<RelativeKeyID>.json`.
pub async fn retrieve_key(args: RetrieveKeyArgs) -> ExitCode {
    let runtime = |e: String| (e, 1u8);
    let result = async {
        let (mut session, maf, _, sealer) = maf_session(
            &args.access.data,
            &args.access.maf,
            &args.access.km_id,
            &args.access.km_file,
            &args.access.admin_fqdn,
        )
        .await?;
        let (conn, _) = session.parts();
        let key = m2mtrust_mef::session::maf_retrieve_key(conn, &maf, &args.key_id)
            .await
            .map_err(|e| runtime(format!("the MAF refused: {e}")))?;
        let kid = key.key_id.clone();
        let sealed = sealer
            .seal(key.key.expose_bytes(), kid.as_bytes())
            .map_err(|e| runtime(e.to_string()))?;
        let record = StoredMafKey {
            key_identifier: kid.clone(),
            target: key.source_id.clone(),
            expiration_time: m2mtrust_mef::procedures::types::format_timestamp(key.expiration),
            sealed_key: B64.encode(sealed),
        };
        let dir = args.access.data.join("maf-keys");
        std::fs::create_dir_all(&dir)
            .map_err(|e| runtime(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(format!("{}.json", key.relative_key_id));
        let json = serde_json::to_vec_pretty(&record).map_err(|e| runtime(e.to_string()))?;
        write_private(&path, &json).map_err(runtime)?;
        Ok::<_, (String, u8)>((kid, key.suid, path))
    }
    .await;
    match result {
        Ok((kid, suid, path)) => {
            println!("retrieved {kid} (SUID {})", suid.0);
            println!("  stored in    {}", path.display());
            ExitCode::SUCCESS
        }
        Err((e, code)) => fail(e, code),
    }
}

/// What `maf-key.json` holds: the MAF-distributed key for the target (Kc) and its Key
/// Identifier, the `psk_identity` towards the target (§8.2.2.3 step a).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMafKey {
    /// `RelativeKeyID@MAF-FQDN`.
    pub key_identifier: String,
    /// The target CSE-ID.
    pub target: String,
    /// expirationTime.
    pub expiration_time: String,
    /// Kc sealed with the device's master key (AAD = Key Identifier), base64.
    pub sealed_key: String,
}

/// Runs `m2mtrust maf register-key`: MAF Handshake with KmID/Km, MAF Key Registration with
/// the SAEF SUID (32) and IdB, Kc from `EXPORTER-oneM2M-Connection` on both sides.
pub async fn register_key(args: RegisterKeyArgs) -> ExitCode {
    match register_key_inner(&args).await {
        Ok((kid, exp)) => {
            println!("registered {kid} for {} (expires {exp})", args.target);
            println!(
                "  stored in    {}",
                args.access.data.join(args.usage.file()).display()
            );
            ExitCode::SUCCESS
        }
        Err((e, code)) => fail(e, code),
    }
}

/// A MAF session of the device in `data`: the MAF Handshake with its master credential
/// (pre-provisioned `km_id_arg`/`km_file_arg`, or the one `enrol --maf` obtained), and the client
/// registration of a pre-provisioned client. Returns the session, the MAF's FQDN, the
/// administrating stakeholder and the device's sealer.
async fn maf_session(
    data: &Path,
    maf_url: &str,
    km_id_arg: &Option<String>,
    km_file_arg: &Option<PathBuf>,
    admin_fqdn_arg: &str,
) -> Result<
    (
        m2mtrust_mef::session::MefSession,
        m2mtrust_crypto::Fqdn,
        m2mtrust_crypto::Fqdn,
        Sealer,
    ),
    (String, u8),
> {
    use m2mtrust_mef::session::{self, MefSession, RegistrationRequest};
    use m2mtrust_model::ResponseStatusCode;
    let usage = |e: String| (e, 2u8);
    let runtime = |e: String| (e, 1u8);
    let (addr, _) = https_address(maf_url, 8445).map_err(|e| usage(format!("--maf: {e}")))?;
    let sealer = DataDir::open(data)
        .and_then(|d| d.sealer())
        .map_err(runtime)?;
    // The master credential: pre-provisioned (--km-id/--km-file) or assigned at enrolment.
    let (km_id, km, maf_fqdn, admin_fqdn) = match (&km_id_arg, &km_file_arg) {
        (Some(id), Some(file)) => {
            let km_id = KpsaId::parse(id).map_err(|e| usage(format!("--km-id: {e}")))?;
            let hex = String::from_utf8(read(file).map_err(usage)?)
                .map_err(|_| usage(format!("{} is not text", file.display())))?;
            let km =
                SecretKey::from_hex(hex.trim()).map_err(|e| usage(format!("--km-file: {e}")))?;
            let fqdn = km_id.issuer().to_owned();
            (km_id, km, fqdn, admin_fqdn_arg.to_owned())
        }
        _ => {
            let path = data.join("enrolment.json");
            let stored: StoredEnrolment = serde_json::from_slice(&read(&path).map_err(usage)?)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            let maf = stored.maf.ok_or_else(|| {
                usage(format!(
                    "{} holds no MAF credential (enrol with --maf, or give --km-id/--km-file)",
                    data.display()
                ))
            })?;
            let km = sealer
                .open(
                    &B64.decode(&maf.sealed_km)
                        .map_err(|e| usage(e.to_string()))?,
                    maf.km_id.as_bytes(),
                )
                .map_err(|e| runtime(format!("{}: {e}", path.display())))?;
            let km_id = KpsaId::parse(&maf.km_id).map_err(|e| usage(e.to_string()))?;
            (km_id, km, maf.maf_fqdn, maf.admin_fqdn)
        }
    };
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| runtime(format!("cannot connect to the MAF at {addr}: {e}")))?;
    let psk = PskKey::new(km.expose_bytes().to_vec()).map_err(|e| runtime(e.to_string()))?;
    let (stream, _) = m2mtrust_mef::bootstrap(
        tcp,
        &maf_fqdn,
        EnroleeCredential::Psk {
            kpm_id: km_id,
            kpm: psk,
        },
        None,
    )
    .await
    .map_err(|e| runtime(format!("MAF handshake: {e}")))?;
    let maf = m2mtrust_crypto::Fqdn::parse(&maf_fqdn)
        .map_err(|e| usage(format!("MAF FQDN {maf_fqdn:?}: {e}")))?;
    let admin = m2mtrust_crypto::Fqdn::parse(&admin_fqdn)
        .map_err(|e| usage(format!("adminFQDN {admin_fqdn:?}: {e}")))?;
    let mut session = MefSession::open(stream, &maf)
        .await
        .map_err(|e| runtime(e.to_string()))?;
    {
        let (conn, _) = session.parts();
        if km_id_arg.is_some() {
            // A pre-provisioned client registers with the MAF first (§8.8.2.3); once is enough.
            let registration = RegistrationRequest {
                admin_fqdn: admin.clone(),
                expiration: chrono::Utc::now() + chrono::Duration::days(30),
                labels: None,
            };
            match session::maf_register(conn, &maf, &registration).await {
                Ok(_) => {}
                Err(e)
                    if e.rsc() == Some(ResponseStatusCode::ORIGINATOR_HAS_ALREADY_REGISTERED) => {}
                Err(e) => return Err(runtime(format!("MAF client registration refused: {e}"))),
            }
        }
    }
    Ok((session, maf, admin, sealer))
}

async fn register_key_inner(args: &RegisterKeyArgs) -> Result<(String, String), (String, u8)> {
    use m2mtrust_mef::procedures::types::{Suid, format_timestamp};
    use m2mtrust_mef::session::{self, KeyRegistrationRequest, KeyValue};
    let runtime = |e: String| (e, 1u8);
    let (mut session, maf, admin, sealer) = maf_session(
        &args.access.data,
        &args.access.maf,
        &args.access.km_id,
        &args.access.km_file,
        &args.access.admin_fqdn,
    )
    .await?;
    let (conn, export) = session.parts();
    let request = KeyRegistrationRequest {
        admin_fqdn: admin,
        expiration: chrono::Utc::now() + chrono::Duration::seconds(i64::from(args.valid_secs)),
        labels: None,
        suid: Suid(args.usage.suid()),
        target_ids: vec![args.target.clone()],
    };
    let registered = session::maf_register_key(conn, &maf, &request, KeyValue::Exported(export))
        .await
        .map_err(|e| runtime(format!("the MAF refused: {e}")))?;
    // The key is the session export; the MAF names it by hexBinary(KcID) (§10.3.5).
    let expected = export.relative_key_id_hex();
    if !registered.relative_key_id.eq_ignore_ascii_case(&expected) {
        return Err(runtime(format!(
            "the MAF named the exported key {}, not {expected}; register again",
            registered.relative_key_id
        )));
    }
    let kid = registered.key_id;
    let kc = registered.key;
    let exp = format_timestamp(registered.expiration);
    let sealed = sealer
        .seal(kc.expose_bytes(), kid.as_bytes())
        .map_err(|e| runtime(e.to_string()))?;
    let record = StoredMafKey {
        key_identifier: kid.clone(),
        target: args.target.clone(),
        expiration_time: exp.clone(),
        sealed_key: B64.encode(sealed),
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| runtime(e.to_string()))?;
    write_private(&args.access.data.join(args.usage.file()), &json).map_err(runtime)?;
    Ok((kid, exp))
}

/// The pairwiseESPrimKey of the enrolment (SUID 23, named by the KeID) stored by `m2mtrust
/// enrol`.
pub fn load_enrolment_esprim_key(root: &Path) -> Result<(KpsaId, SecretKey), String> {
    let path = root.join("enrolment.json");
    let stored: StoredEnrolment = read_json(&path)?;
    let key_id = &stored.security_profile.key_id;
    let sealed = stored
        .sealed_esprim_key
        .as_deref()
        .ok_or_else(|| format!("{} holds no ESPrim key (enrol again)", path.display()))?;
    let key = unseal(
        &device_sealer(root)?,
        &path,
        "sealedEsprimKey",
        sealed,
        &format!("esprim:{key_id}"),
    )?;
    let kid = KpsaId::parse(key_id).map_err(|e| format!("{}: keyID: {e}", path.display()))?;
    Ok((kid, key))
}

/// The MAF-distributed key for end-to-end security stored by `maf register-key --usage
/// esprim`: (Key Identifier, Kc).
pub fn load_maf_esprim_key(root: &Path) -> Result<(KpsaId, SecretKey), String> {
    load_stored_maf_key(root, MafKeyUsage::Esprim)
}

/// The MAF-distributed key stored by `maf register-key`: (Key Identifier, Kc).
pub fn load_maf_key(root: &Path) -> Result<(KpsaId, PskKey), String> {
    let (kid, key) = load_stored_maf_key(root, MafKeyUsage::Saef)?;
    Ok((
        kid,
        PskKey::new(key.expose_bytes().to_vec()).map_err(|e| e.to_string())?,
    ))
}

fn load_stored_maf_key(root: &Path, usage: MafKeyUsage) -> Result<(KpsaId, SecretKey), String> {
    let path = root.join(usage.file());
    let stored: StoredMafKey = read_json(&path)?;
    let key = unseal(
        &device_sealer(root)?,
        &path,
        "sealedKey",
        &stored.sealed_key,
        &stored.key_identifier,
    )?;
    let kid = KpsaId::parse(&stored.key_identifier)
        .map_err(|e| format!("{}: keyIdentifier: {e}", path.display()))?;
    Ok((kid, key))
}
