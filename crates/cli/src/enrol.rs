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
}

/// What `enrolment.json` holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEnrolment {
    /// The securityProfile the MEF returned.
    pub security_profile: SecurityProfile,
    /// The target key, sealed with the device's master key (AAD = KeID), base64.
    pub sealed_key: String,
    /// Whether `pki/device.pem` holds an enrolled certificate.
    pub certificate: bool,
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
    let (addr, url_host) = match mef_address(&args.mef) {
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
    let options = EnrolOptions {
        node_id: args.node_id.clone(),
        location: None,
        certificate: args.certificate,
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

/// `https://host[:port]` → (`host:port`, host).
fn mef_address(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("the MEF URL must start with https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p.parse().map_err(|_| format!("bad port {p:?}"))?;
            (h.to_owned(), port)
        }
        _ => (authority.to_owned(), 8444),
    };
    Ok((
        format!("{host}:{port}"),
        host.trim_matches(['[', ']']).to_owned(),
    ))
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
    let stored = StoredEnrolment {
        security_profile: p.clone(),
        sealed_key: B64.encode(sealed),
        certificate: enrolled.certificate.is_some(),
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
pub fn load(root: &Path) -> Result<DeviceCredentials, String> {
    let path = root.join("enrolment.json");
    let stored: StoredEnrolment =
        serde_json::from_slice(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let sealer =
        Sealer::load_or_create(&root.join("keys/master.key")).map_err(|e| e.to_string())?;
    let key_id = &stored.security_profile.key_id;
    let sealed = B64
        .decode(&stored.sealed_key)
        .map_err(|e| format!("{}: sealedKey: {e}", path.display()))?;
    let key: SecretKey = sealer
        .open(&sealed, key_id.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
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
