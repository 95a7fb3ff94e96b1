//! Configuration: defaults, then the TOML file, then flags and environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use m2mtrust_cse::CseConfig;
use m2mtrust_model::{CseId, Home, SpId};
use m2mtrust_store::Durability;
use serde::Deserialize;

/// A configuration problem; the message names the key or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this program.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{key}: {message}")]
    Invalid {
        /// The key path or flag.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The TOML file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data folder.
    pub data: Option<PathBuf>,
    /// `[cse]`.
    #[serde(default)]
    pub cse: CseSection,
    /// `[http]`.
    #[serde(default)]
    pub http: HttpSection,
    /// `[https]`.
    #[serde(default)]
    pub https: HttpsSection,
    /// `[store]`.
    #[serde(default)]
    pub store: StoreSection,
    /// `[log]`.
    #[serde(default)]
    pub log: LogSection,
    /// `[access]`.
    #[serde(default)]
    pub access: AccessSection,
    /// `[registrar]`: the CSE this one registers with (an MN-CSE's IN-CSE).
    pub registrar: Option<RegistrarSection>,
    /// `[mef]`: the M2M Enrolment Function of `m2mtrust up`.
    #[serde(default)]
    pub mef: MefSection,
    /// `[maf]`: the M2M Authentication Function of `m2mtrust up`.
    #[serde(default)]
    pub maf: MafSection,
    /// `[das]`: the Dynamic Authorization System server of `m2mtrust up`.
    #[serde(default)]
    pub das: DasSection,
}

/// `[das]`: the Dynamic Authorization System server (TS-0003 §7.3) that `m2mtrust up` runs next
/// to the CSE.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasSection {
    /// `das.listen`: its TLS listener [default with `up`: 127.0.0.1:8446; `off` disables it].
    pub listen: Option<String>,
}

/// `[mef]`: the M2M Enrolment Function (TS-0003 §8.3) that `m2mtrust up` runs next to the CSE.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MefSection {
    /// `mef.listen`: its TLS listener [default with `up`: 127.0.0.1:8444; `off` disables it].
    pub listen: Option<String>,
    /// `mef.fqdn`: its FQDN, the issuer part of every KeID and the name on its certificate
    /// [default: `mef.<SP domain>`].
    pub fqdn: Option<String>,
    /// `mef.certificate_days`: validity of certificates enrolled through EST [default: 365].
    pub certificate_days: Option<u32>,
    /// `mef.remote_url`: a MEF running elsewhere (`m2mtrust mef serve`), `https://host:port`; the
    /// CSE fetches the keys of devices enrolled there (TS-0003 §8.3.2.1 steps c-g).
    pub remote_url: Option<String>,
    /// `mef.remote_fqdn`: that MEF's FQDN, the issuer part of its KeIDs [default: the URL host].
    pub remote_fqdn: Option<String>,
    /// `mef.remote_ca`: PEM trust anchor for that MEF's certificate.
    pub remote_ca: Option<PathBuf>,
}

/// A MEF elsewhere whose enrolees' keys this CSE fetches.
#[derive(Debug, Clone)]
pub struct RemoteMefSettings {
    /// `host:port`.
    pub addr: String,
    /// Its FQDN.
    pub fqdn: String,
    /// Trust anchor for its certificate.
    pub ca: PathBuf,
}

/// `[maf]`: the M2M Authentication Function (TS-0003 §8.8) that `m2mtrust up` runs next to the
/// CSE; the CSE retrieves MAF-distributed keys from it (MAF-based SAEF, §8.2.2.3).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MafSection {
    /// `maf.listen`: its TLS listener [default with `up`: 127.0.0.1:8445; `off` disables it].
    pub listen: Option<String>,
    /// `maf.fqdn`: its FQDN, the issuer part of every KmID and Key Identifier [default:
    /// `maf.<SP domain>`].
    pub fqdn: Option<String>,
    /// `maf.remote_url`: a MAF running elsewhere (`m2mtrust maf serve`), `https://host:port`;
    /// the CSE retrieves MAF-distributed keys from it (§8.2.2.3).
    pub remote_url: Option<String>,
    /// `maf.remote_fqdn`: that MAF's FQDN [default: the URL host].
    pub remote_fqdn: Option<String>,
    /// `maf.remote_ca`: PEM trust anchor for that MAF's certificate.
    pub remote_ca: Option<PathBuf>,
}

/// Where the MEF listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MefListen {
    /// The command's default (`up`: 127.0.0.1:8444; `cse`: off).
    Default,
    /// Turned off.
    Off,
    /// This address.
    At(SocketAddr),
}

/// `[registrar]`: where and how this CSE registers as Entity A (TS-0001 §10.1.1.2.1 over a
/// TS-0003 §8.2 security association).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSection {
    /// `registrar.url`: the registrar's `<CSEBase>`, e.g. `https://in.example:8443/cse-in`.
    pub url: String,
    /// `registrar.cse_id`: the registrar's CSE-ID (IdB), e.g. `/id-in`.
    pub cse_id: String,
    /// `registrar.cse_type`: 1 IN-CSE (default), 2 MN-CSE, 3 ASN-CSE.
    pub cse_type: Option<u8>,
    /// `registrar.server_name`: TLS server name (SNI and verification); default: the URL host.
    pub server_name: Option<String>,
    /// `registrar.ca`: PEM trust anchor for the registrar's certificate.
    pub ca: Option<PathBuf>,
    /// `registrar.psk_id`: KpsaID of a pre-provisioned key.
    pub psk_id: Option<String>,
    /// `registrar.psk_key_file`: file holding that key in hex.
    pub psk_key_file: Option<PathBuf>,
    /// `registrar.enrolment`: a data folder `m2mtrust enrol` filled for this CSE (usually its own
    /// data folder): register with the key the MEF provisioned (psk_identity = KeID).
    pub enrolment: Option<PathBuf>,
    /// `registrar.cert`: PEM certificate chain (a CSE-ID certificate).
    pub cert: Option<PathBuf>,
    /// `registrar.key`: its PEM private key.
    pub key: Option<PathBuf>,
}

/// `[access]`: inputs of access control decisions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// `access.time_zone`: IANA name in which `accessControlTimeWindow` is read (default UTC).
    pub time_zone: Option<String>,
    /// `access.locations`: where each originator is, for `accessControlLocationRegion`.
    #[serde(default)]
    pub locations: std::collections::BTreeMap<String, LocationEntry>,
}

/// One entry of `[access.locations]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationEntry {
    /// Degrees north.
    pub latitude: Option<f64>,
    /// Degrees east.
    pub longitude: Option<f64>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

/// `[cse]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CseSection {
    /// `cse.cse_id`.
    pub cse_id: Option<String>,
    /// `cse.cse_base_name`.
    pub cse_base_name: Option<String>,
    /// `cse.sp_id`.
    pub sp_id: Option<String>,
    /// `cse.admin_originator`.
    pub admin_originator: Option<String>,
    /// `cse.admin_bypass`.
    pub admin_bypass: Option<bool>,
    /// `cse.max_expiration_secs`.
    pub max_expiration_secs: Option<u64>,
    /// `cse.default_expiration_secs`.
    pub default_expiration_secs: Option<u64>,
    /// `cse.verification_timeout_ms`.
    pub verification_timeout_ms: Option<u64>,
    /// `cse.role_authorities`: originators acting as Authorization Authority (TS-0003 §7.4),
    /// besides the admin originator: only they create `<role>` and `<token>` resources.
    #[serde(default)]
    pub role_authorities: Vec<String>,
    /// `cse.das_timeout_ms`: how long a Dynamic Authorization System may take to answer.
    pub das_timeout_ms: Option<u64>,
    /// `cse.das_uris`: Dynamic Authorization Systems consulted besides the one `up` runs
    /// (`dynamicAuthorizationPoA` URIs, e.g. `https://das.example:8446/das`).
    #[serde(default)]
    pub das_uris: Vec<String>,
}

/// `[https]`: the TLS listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSection {
    /// `https.listen`: address, or `off`.
    pub listen: Option<String>,
    /// `https.trust_anchors`: PEM files of CAs whose certificates clients may present, besides
    /// the data folder's development CA.
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
    /// `https.crls`: PEM CRLs checked for client certificates.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// `https.certificate`: the server's certificate chain (PEM) from an operator CA, instead of
    /// the one the development CA issues.
    pub certificate: Option<PathBuf>,
    /// `https.private_key`: its private key (PEM).
    pub private_key: Option<PathBuf>,
    /// `[[https.sni]]`: more server certificates, picked by the SNI host name a client sends.
    #[serde(default)]
    pub sni: Vec<SniCertificate>,
}

/// One `[[https.sni]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCertificate {
    /// The host name clients send in SNI.
    pub name: String,
    /// Certificate chain (PEM).
    pub certificate: PathBuf,
    /// Private key (PEM).
    pub private_key: PathBuf,
}

/// `[http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `http.listen`: plain HTTP address.
    pub listen: Option<String>,
    /// `http.max_body`: largest request body in bytes.
    pub max_body: Option<usize>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `store.durability`: `full` or `process`.
    pub durability: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `log.filter`, e.g. `info,audit=debug`.
    pub filter: Option<String>,
    /// `log.format`: `text` or `json`.
    pub format: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }
}

/// Everything a server process runs with, after merging.
#[derive(Debug)]
pub struct Settings {
    /// Data folder.
    pub data: PathBuf,
    /// The CSE.
    pub cse: CseConfig,
    /// Plain HTTP listener (development only).
    pub http: Option<SocketAddr>,
    /// HTTPS listener.
    pub https: Option<SocketAddr>,
    /// Extra trust anchors for client certificates.
    pub trust_anchors: Vec<PathBuf>,
    /// CRLs for client certificates.
    pub crls: Vec<PathBuf>,
    /// An operator-issued server certificate chain and key, instead of the development one.
    pub server_certificate: Option<(PathBuf, PathBuf)>,
    /// Certificates by SNI host name.
    pub sni_certificates: Vec<SniCertificate>,
    /// The registrar to register with at start-up.
    pub registrar: Option<RegistrarSection>,
    /// The MEF listener.
    pub mef_listen: MefListen,
    /// The MEF's FQDN (validated).
    pub mef_fqdn: Option<String>,
    /// Validity of EST certificates, days.
    pub mef_certificate_days: u32,
    /// A remote MEF to fetch enrolees' keys from.
    pub remote_mef: Option<RemoteMefSettings>,
    /// The MAF listener (same rules as the MEF's).
    pub maf_listen: MefListen,
    /// The MAF's FQDN (validated).
    pub maf_fqdn: Option<String>,
    /// A remote MAF to retrieve MAF-distributed keys from.
    pub remote_maf: Option<RemoteMefSettings>,
    /// The DAS listener (same rules as the MEF's; `up` default 127.0.0.1:8446).
    pub das_listen: MefListen,
    /// Request body limit.
    pub max_body: usize,
    /// Commit durability.
    pub durability: Durability,
}

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--http`.
    pub http: Option<String>,
    /// `--https`.
    pub https: Option<String>,
    /// `--cse-id`.
    pub cse_id: Option<String>,
    /// `--cse-name`.
    pub cse_base_name: Option<String>,
    /// `--sp-id`.
    pub sp_id: Option<String>,
    /// `--admin`.
    pub admin_originator: Option<String>,
    /// `--no-admin-bypass`.
    pub no_admin_bypass: bool,
    /// `--max-body`.
    pub max_body: Option<usize>,
    /// `--durability`.
    pub durability: Option<String>,
    /// `--mef`.
    pub mef: Option<String>,
    /// `--maf`.
    pub maf: Option<String>,
    /// `--das`.
    pub das: Option<String>,
}

/// The default HTTPS address.
pub const DEFAULT_HTTPS: &str = "127.0.0.1:8443";

fn listen_addr(
    value: Option<String>,
    key: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    match value.as_deref() {
        None | Some("off") | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| ConfigError::Invalid {
            key,
            message: format!("{v:?}: {e}"),
        }),
    }
}

/// `https://host[:port]` → (`host:port`, host), the port defaulting to `default_port`.
pub(crate) fn https_address(url: &str, default_port: u16) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("the URL must start with https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p.parse().map_err(|_| format!("bad port {p:?}"))?;
            (h.to_owned(), port)
        }
        _ => (authority.to_owned(), default_port),
    };
    Ok((
        format!("{host}:{port}"),
        host.trim_matches(['[', ']']).to_owned(),
    ))
}

/// A trust function elsewhere (`[mef]`/`[maf]` `remote_url`, `remote_fqdn`, `remote_ca`).
fn remote_function(
    url: Option<&str>,
    fqdn: Option<String>,
    ca: Option<PathBuf>,
    [url_key, fqdn_key, ca_key]: [&'static str; 3],
    default_port: u16,
) -> Result<Option<RemoteMefSettings>, ConfigError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let Some(ca) = ca else {
        return Err(ConfigError::Invalid {
            key: ca_key,
            message: format!("{url_key} needs the CA of the function's certificate"),
        });
    };
    let (addr, host) = https_address(url, default_port).map_err(|e| ConfigError::Invalid {
        key: url_key,
        message: format!("{url:?}: {e}"),
    })?;
    let fqdn = fqdn.unwrap_or(host);
    m2mtrust_crypto::Fqdn::parse(&fqdn).map_err(|e| ConfigError::Invalid {
        key: fqdn_key,
        message: format!("{fqdn:?}: {e}"),
    })?;
    Ok(Some(RemoteMefSettings { addr, fqdn, ca }))
}

impl Settings {
    /// Merges defaults, file and overrides.
    pub fn resolve(
        file: FileConfig,
        o: Overrides,
        default_data: &Path,
    ) -> Result<Self, ConfigError> {
        let defaults = CseConfig::default();
        let cse_id = o
            .cse_id
            .or(file.cse.cse_id)
            .unwrap_or_else(|| defaults.home.cse_id.to_string());
        let cse_id = CseId::parse(&cse_id).map_err(|e| ConfigError::Invalid {
            key: "cse.cse_id",
            message: e.to_string(),
        })?;
        let sp_id = o
            .sp_id
            .or(file.cse.sp_id)
            .unwrap_or_else(|| defaults.home.sp_id.to_string());
        let sp_id = SpId::parse(&sp_id).map_err(|e| ConfigError::Invalid {
            key: "cse.sp_id",
            message: e.to_string(),
        })?;
        let cse_base_name = o
            .cse_base_name
            .or(file.cse.cse_base_name)
            .unwrap_or(defaults.home.cse_base_name.clone());
        if cse_base_name.is_empty()
            || cse_base_name.contains('/')
            || cse_base_name.starts_with(['~', '_'])
        {
            return Err(ConfigError::Invalid {
                key: "cse.cse_base_name",
                message: format!(
                    "{cse_base_name:?} must be one path segment not starting with '~' or '_'"
                ),
            });
        }
        let admin = o
            .admin_originator
            .or(file.cse.admin_originator)
            .unwrap_or(defaults.admin_originator.clone());
        if admin.is_empty() || admin.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                key: "cse.admin_originator",
                message: "must be a non-empty originator".into(),
            });
        }
        let admin_bypass = !o.no_admin_bypass && file.cse.admin_bypass.unwrap_or(true);
        let secs = |v: Option<u64>, key: &'static str, default: i64| -> Result<i64, ConfigError> {
            match v {
                None => Ok(default),
                Some(0) => Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                }),
                Some(s) => i64::try_from(s).map_err(|_| ConfigError::Invalid {
                    key,
                    message: "too large".into(),
                }),
            }
        };
        let max_expiration_secs = secs(
            file.cse.max_expiration_secs,
            "cse.max_expiration_secs",
            defaults.max_expiration_secs,
        )?;
        let default_expiration_secs = secs(
            file.cse.default_expiration_secs,
            "cse.default_expiration_secs",
            defaults.default_expiration_secs,
        )?;
        // Plain HTTP only when asked for; HTTPS unless turned off.
        let http = listen_addr(o.http.or(file.http.listen), "http.listen")?;
        let https = listen_addr(
            Some(
                o.https
                    .or(file.https.listen)
                    .unwrap_or_else(|| DEFAULT_HTTPS.to_string()),
            ),
            "https.listen",
        )?;
        let mef_listen = match o.mef.or(file.mef.listen.clone()) {
            None => MefListen::Default,
            Some(v) => match listen_addr(Some(v), "mef.listen")? {
                None => MefListen::Off,
                Some(a) => MefListen::At(a),
            },
        };
        let maf_listen = match o.maf.or(file.maf.listen.clone()) {
            None => MefListen::Default,
            Some(v) => match listen_addr(Some(v), "maf.listen")? {
                None => MefListen::Off,
                Some(a) => MefListen::At(a),
            },
        };
        let das_listen = match o.das.or(file.das.listen.clone()) {
            None => MefListen::Default,
            Some(v) => match listen_addr(Some(v), "das.listen")? {
                None => MefListen::Off,
                Some(a) => MefListen::At(a),
            },
        };
        if let Some(f) = &file.maf.fqdn {
            m2mtrust_crypto::Fqdn::parse(f).map_err(|e| ConfigError::Invalid {
                key: "maf.fqdn",
                message: format!("{f:?}: {e}"),
            })?;
        }
        if let Some(f) = &file.mef.fqdn {
            m2mtrust_crypto::Fqdn::parse(f).map_err(|e| ConfigError::Invalid {
                key: "mef.fqdn",
                message: format!("{f:?}: {e}"),
            })?;
        }
        let mef_certificate_days = match file.mef.certificate_days {
            None => 365,
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: "mef.certificate_days",
                    message: "must be greater than 0".into(),
                });
            }
            Some(d) => d,
        };
        let remote_mef = remote_function(
            file.mef.remote_url.as_deref(),
            file.mef.remote_fqdn.clone(),
            file.mef.remote_ca.clone(),
            ["mef.remote_url", "mef.remote_fqdn", "mef.remote_ca"],
            8444,
        )?;
        let remote_maf = remote_function(
            file.maf.remote_url.as_deref(),
            file.maf.remote_fqdn.clone(),
            file.maf.remote_ca.clone(),
            ["maf.remote_url", "maf.remote_fqdn", "maf.remote_ca"],
            8445,
        )?;
        let max_body = o.max_body.or(file.http.max_body).unwrap_or(1 << 20);
        if max_body < 1024 {
            return Err(ConfigError::Invalid {
                key: "http.max_body",
                message: "must be at least 1024 bytes".into(),
            });
        }
        let durability = match o.durability.or(file.store.durability).as_deref() {
            None | Some("full") => Durability::Full,
            Some("process") => Durability::Process,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "store.durability",
                    message: format!("{other:?} is not one of full, process"),
                });
            }
        };
        let time_zone: chrono_tz::Tz = match &file.access.time_zone {
            None => chrono_tz::UTC,
            Some(name) => name.parse().map_err(|_| ConfigError::Invalid {
                key: "access.time_zone",
                message: format!("{name:?} is not an IANA time zone name such as Europe/Paris"),
            })?,
        };
        let locations = locations(&file.access)?;
        let data = o
            .data
            .or(file.data)
            .unwrap_or_else(|| default_data.to_path_buf());
        let mut poa = Vec::new();
        if let Some(addr) = https {
            poa.push(format!("https://{addr}"));
        }
        if let Some(addr) = http {
            poa.push(format!("http://{addr}"));
        }
        let cse = CseConfig {
            home: Home {
                sp_id,
                cse_id,
                cse_base_name,
            },
            admin_originator: admin,
            admin_bypass,
            max_expiration_secs,
            default_expiration_secs: default_expiration_secs.min(max_expiration_secs),
            poa,
            verification_timeout: file
                .cse
                .verification_timeout_ms
                .map_or(defaults.verification_timeout, Duration::from_millis),
            time_zone,
            locations,
            role_authorities: file.cse.role_authorities,
            das_uris: file.cse.das_uris,
            das_timeout: file
                .cse
                .das_timeout_ms
                .map_or(defaults.das_timeout, Duration::from_millis),
            ..defaults
        };
        Ok(Self {
            data,
            cse,
            http,
            https,
            trust_anchors: file.https.trust_anchors,
            crls: file.https.crls,
            sni_certificates: file.https.sni,
            server_certificate: match (file.https.certificate, file.https.private_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "https.certificate",
                        message: "give both https.certificate and https.private_key".into(),
                    });
                }
            },
            registrar: file.registrar,
            mef_listen,
            mef_fqdn: file.mef.fqdn,
            mef_certificate_days,
            remote_mef,
            maf_listen,
            maf_fqdn: file.maf.fqdn,
            remote_maf,
            das_listen,
            max_body,
            durability,
        })
    }
}

/// `[access.locations]` as the access control engine takes it.
fn locations(
    access: &AccessSection,
) -> Result<std::collections::HashMap<String, m2mtrust_authz::OriginatorLocation>, ConfigError> {
    let invalid = |originator: &str, message: String| ConfigError::Invalid {
        key: "access.locations",
        message: format!("{originator}: {message}"),
    };
    let mut out = std::collections::HashMap::new();
    for (originator, entry) in &access.locations {
        let coordinates = match (entry.latitude, entry.longitude) {
            (None, None) => None,
            (Some(lat), Some(lon)) => Some(
                m2mtrust_authz::Coordinates::new(lat, lon)
                    .map_err(|e| invalid(originator, e.to_string()))?,
            ),
            _ => {
                return Err(invalid(
                    originator,
                    "give both latitude and longitude".into(),
                ));
            }
        };
        let country = match &entry.country {
            None => None,
            Some(c) => Some(
                m2mtrust_authz::CountryCode::parse(c)
                    .map_err(|e| invalid(originator, e.to_string()))?,
            ),
        };
        out.insert(
            originator.clone(),
            m2mtrust_authz::OriginatorLocation {
                coordinates,
                country,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_operator_contract() {
        let s =
            Settings::resolve(FileConfig::default(), Overrides::default(), Path::new("d")).unwrap();
        assert_eq!(s.cse.home.cse_id.as_str(), "/id-in");
        assert_eq!(s.cse.home.cse_base_name, "cse-in");
        assert_eq!(s.cse.home.sp_id.as_str(), "//m2mtrust.example");
        assert_eq!(s.cse.admin_originator, "CAdmin");
        assert_eq!(s.http, None, "plain HTTP only when asked for");
        assert_eq!(s.https, Some(DEFAULT_HTTPS.parse().unwrap()));
        assert_eq!(s.durability, Durability::Full);
    }

    #[test]
    fn flags_win_over_the_file_and_errors_name_the_key() {
        let file: FileConfig =
            toml::from_str("[cse]\ncse_id = \"/id-file\"\n[http]\nlisten = \"127.0.0.1:1\"")
                .unwrap();
        let o = Overrides {
            cse_id: Some("/id-flag".into()),
            ..Default::default()
        };
        let s = Settings::resolve(file, o, Path::new("d")).unwrap();
        assert_eq!(s.cse.home.cse_id.as_str(), "/id-flag");
        assert_eq!(s.http.unwrap().port(), 1);

        let err = toml::from_str::<FileConfig>("[cse]\ncse_idd = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cse_idd"), "{err}");
        let bad: FileConfig = toml::from_str("[store]\ndurability = \"sometimes\"").unwrap();
        let err = Settings::resolve(bad, Overrides::default(), Path::new("d"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("store.durability"), "{err}");
        let bad: FileConfig = toml::from_str("[http]\nlisten = \"nowhere\"").unwrap();
        let err = Settings::resolve(bad, Overrides::default(), Path::new("d"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("http.listen"), "{err}");
    }
}
