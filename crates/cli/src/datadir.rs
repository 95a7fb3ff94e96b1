//! The data folder: database, master key, development PKI.
//!
//! ```text
//! DIR/m2mtrust.sqlite         resource tree and credentials (secrets sealed)
//! DIR/keys/master.key         the key that seals secrets at rest (mode 0600)
//! DIR/pki/ca.pem              the development CA certificate (trust anchor for clients)
//! DIR/pki/ca-key.sealed       its private key, sealed
//! DIR/pki/server.pem          the server certificate chain
//! DIR/pki/server-key.sealed   its private key, sealed
//! DIR/pki/mef.pem             the MEF's FQDN certificate chain
//! DIR/pki/mef-key.sealed      its private key, sealed
//! DIR/mef.sqlite              MEF client registrations, key registrations, commands
//! DIR/pki/maf.pem, maf-key.sealed   the MAF's FQDN certificate and key
//! DIR/maf.sqlite              MAF client registrations and key registrations (keys sealed)
//! ```

use std::path::{Path, PathBuf};

use m2mtrust_crypto::pki::CseIdName;
use m2mtrust_crypto::{CertProfile, DevCa, Sealer};
use m2mtrust_model::Home;
use m2mtrust_store::{Durability, SqliteStore};

/// Validity of certificates the development CA issues.
pub const DEV_CERT_DAYS: u32 = 825;

/// The data folder's CA followed by the configured trust anchors, PEM.
pub fn trust_anchors_pem(ca: &DevCa, extra: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut anchors = ca.cert_pem().as_bytes().to_vec();
    for path in extra {
        let pem = std::fs::read(path)
            .map_err(|e| format!("https.trust_anchors: {}: {e}", path.display()))?;
        anchors.push(b'\n');
        anchors.extend_from_slice(&pem);
    }
    Ok(anchors)
}

/// The development CA plus operator trust anchors (PEM files); errors name `key` and the file.
pub fn trust_anchors(
    ca: &DevCa,
    extra: &[PathBuf],
    key: &str,
) -> Result<m2mtrust_channel::TrustAnchors, String> {
    let mut trust = m2mtrust_channel::TrustAnchors::from_pem(ca.cert_pem().as_bytes())
        .map_err(|e| format!("development CA: {e}"))?;
    for path in extra {
        let pem = read(path).map_err(|e| format!("{key}: {e}"))?;
        trust
            .add_pem(&pem)
            .map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    }
    Ok(trust)
}

/// An opened data folder.
pub struct DataDir {
    root: PathBuf,
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl DataDir {
    /// Creates the folder (and `keys/`, `pki/`) when missing.
    pub fn open(root: &Path) -> Result<Self, String> {
        for sub in ["", "keys", "pki"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let keys = root.join("keys");
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot restrict {}: {e}", keys.display()))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database.
    pub fn store(&self, durability: Durability) -> Result<SqliteStore, String> {
        let db = self.root.join("m2mtrust.sqlite");
        SqliteStore::open(&db, durability).map_err(|e| format!("cannot open {}: {e}", db.display()))
    }

    /// The sealer of secrets at rest, creating its key on first use.
    pub fn sealer(&self) -> Result<Sealer, String> {
        Sealer::load_or_create(&self.root.join("keys/master.key")).map_err(|e| e.to_string())
    }

    /// The development CA certificate (trust anchor to give clients).
    pub fn ca_path(&self) -> PathBuf {
        self.root.join("pki/ca.pem")
    }

    /// The server certificate chain.
    pub fn server_cert_path(&self) -> PathBuf {
        self.root.join("pki/server.pem")
    }

    /// Loads the development CA, generating it on first use.
    pub fn dev_ca(&self, sealer: &Sealer, home: &Home) -> Result<DevCa, String> {
        let cert = self.ca_path();
        let key = self.root.join("pki/ca-key.sealed");
        if cert.exists() && key.exists() {
            let pem = String::from_utf8(read(&cert)?)
                .map_err(|_| format!("{} is not PEM", cert.display()))?;
            let key_pem = sealer
                .open(&read(&key)?, b"pki/ca-key")
                .map_err(|e| format!("{}: {e}", key.display()))?;
            let key_pem = String::from_utf8(key_pem.expose_bytes().to_vec())
                .map_err(|_| format!("{} does not hold a PEM key", key.display()))?;
            return DevCa::from_pem(&pem, &key_pem).map_err(|e| format!("{}: {e}", cert.display()));
        }
        let ca = DevCa::generate(home.sp_id.domain())
            .map_err(|e| format!("cannot generate the development CA: {e}"))?;
        let sealed = sealer
            .seal(ca.key_pem().expose_pem().as_bytes(), b"pki/ca-key")
            .map_err(|e| e.to_string())?;
        write_private(&key, &sealed)?;
        std::fs::write(&cert, ca.cert_pem())
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        Ok(ca)
    }

    /// The server's certificate chain and private key PEM, issued by the development CA on first use
    /// (an FQDN certificate that also names the CSE-ID, `localhost` and the loopback addresses).
    pub fn server_credentials(
        &self,
        sealer: &Sealer,
        ca: &DevCa,
        home: &Home,
    ) -> Result<(String, m2mtrust_crypto::PrivateKeyPem), String> {
        let cert = self.server_cert_path();
        let key = self.root.join("pki/server-key.sealed");
        if cert.exists() && key.exists() {
            let chain = String::from_utf8(read(&cert)?)
                .map_err(|_| format!("{} is not PEM", cert.display()))?;
            let key_pem = sealer
                .open(&read(&key)?, b"pki/server-key")
                .map_err(|e| format!("{}: {e}", key.display()))?;
            let key_pem = String::from_utf8(key_pem.expose_bytes().to_vec())
                .map_err(|_| format!("{} does not hold a PEM key", key.display()))?;
            return Ok((chain, m2mtrust_crypto::PrivateKeyPem::new(key_pem)));
        }
        let cse = CseIdName {
            cse_id: home.cse_id.to_string(),
            in_cse_id: home.cse_id.to_string(),
            sp_domain: home.sp_id.domain().to_string(),
        };
        let profile = CertProfile::dev_server(&[home.sp_id.domain()], Some(cse));
        let issued = ca
            .issue(&profile, DEV_CERT_DAYS)
            .map_err(|e| format!("cannot issue the server certificate: {e}"))?;
        let sealed = sealer
            .seal(issued.key_pem.expose_pem().as_bytes(), b"pki/server-key")
            .map_err(|e| e.to_string())?;
        write_private(&key, &sealed)?;
        std::fs::write(&cert, &issued.chain_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        Ok((issued.chain_pem, issued.key_pem))
    }

    /// A trust function's FQDN certificate chain and key (`pki/<name>.pem`,
    /// `pki/<name>-key.sealed`, TS-0003 §10.1.1.6; `name` is `mef` or `maf`), issued by the
    /// development CA on first use (again when the FQDN changed).
    pub fn function_credentials(
        &self,
        sealer: &Sealer,
        ca: &DevCa,
        name: &str,
        fqdn: &str,
    ) -> Result<(String, m2mtrust_crypto::PrivateKeyPem), String> {
        let cert = self.root.join(format!("pki/{name}.pem"));
        let key = self.root.join(format!("pki/{name}-key.sealed"));
        let aad = format!("pki/{name}-key");
        if cert.exists() && key.exists() {
            let chain = String::from_utf8(read(&cert)?)
                .map_err(|_| format!("{} is not PEM", cert.display()))?;
            let names = m2mtrust_crypto::pki::certificate_identity(&chain)
                .map(|id| id.dns)
                .unwrap_or_default();
            if names.iter().any(|n| n.eq_ignore_ascii_case(fqdn)) {
                let key_pem = sealer
                    .open(&read(&key)?, aad.as_bytes())
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                let key_pem = String::from_utf8(key_pem.expose_bytes().to_vec())
                    .map_err(|_| format!("{} does not hold a PEM key", key.display()))?;
                return Ok((chain, m2mtrust_crypto::PrivateKeyPem::new(key_pem)));
            }
        }
        let issued = ca
            .issue(&CertProfile::Fqdn(fqdn.to_string()), DEV_CERT_DAYS)
            .map_err(|e| format!("cannot issue the {name} certificate: {e}"))?;
        let sealed = sealer
            .seal(issued.key_pem.expose_pem().as_bytes(), aad.as_bytes())
            .map_err(|e| e.to_string())?;
        write_private(&key, &sealed)?;
        std::fs::write(&cert, &issued.chain_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        Ok((issued.chain_pem, issued.key_pem))
    }

    /// The admin originator's AE-ID certificate and key (`pki/admin.pem`, `keys/admin-key.pem`),
    /// issued on first use so the operator can reach the HTTPS listener as the admin.
    pub fn admin_certificate(
        &self,
        ca: &DevCa,
        home: &Home,
        admin: &str,
    ) -> Result<(PathBuf, PathBuf), String> {
        let cert = self.root.join("pki/admin.pem");
        let key = self.root.join("keys/admin-key.pem");
        if cert.exists() && key.exists() {
            return Ok((cert, key));
        }
        let profile = CertProfile::AeId {
            ae_id: admin.to_string(),
            cse_id: home.cse_id.to_string(),
            sp_domain: home.sp_id.domain().to_string(),
        };
        let issued = ca
            .issue(&profile, DEV_CERT_DAYS)
            .map_err(|e| format!("cannot issue the admin certificate: {e}"))?;
        std::fs::write(&cert, &issued.chain_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        write_private(&key, issued.key_pem.expose_pem().as_bytes())?;
        Ok((cert, key))
    }

    /// Writes an issued certificate chain and key for a device (`PREFIX.pem`, `PREFIX-key.pem`).
    pub fn export(
        prefix: &Path,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(PathBuf, PathBuf), String> {
        let cert = PathBuf::from(format!("{}.pem", prefix.display()));
        let key = PathBuf::from(format!("{}-key.pem", prefix.display()));
        std::fs::write(&cert, chain_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        write_private(&key, key_pem.as_bytes())?;
        Ok((cert, key))
    }
}
