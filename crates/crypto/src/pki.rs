//! Development PKI with the certificate profiles of TS-0003 §10.1.1.
//!
//! Every certificate uses a P-256 key and ECDSA with SHA-256 (§10.1.1.1, §10.1.1.3), carries a
//! keyUsage extension with digitalSignature and never a wildcard name. The subjectAltName
//! forms this project settled on:
//!
//! | Profile | SAN |
//! |---|---|
//! | CSE-ID (§10.1.1.7) | dNSName = CSE-ID public domain name (TS-0001 §6.5.1.1): IN-CSE `id-in.m2mtrust.example`, MN/ASN-CSE `id-mn.id-in.m2mtrust.example` |
//! | AE-ID (§10.1.1.5) | URI = `https://<sp-domain>/<cse-id>/<C-AE-ID>` or `https://<sp-domain>/<S-AE-ID>` |
//! | FQDN (§10.1.1.6) | dNSName = the FQDN |
//! | Server (development) | several dNSNames and IP addresses, optionally the CSE-ID name |
//!
//! **AE-ID URI form.** TS-0003 asks for the "full URI representation of the AE-ID" and for a
//! name constraint on its host part in the issuing certificate. The absolute AE-ID is
//! scheme-less (`//m2mtrust.example/id-mn/Cabc`), and OpenSSL rejects scheme-less URI SANs
//! whenever a URI name constraint is in the chain. This project therefore uses the absolute
//! AE-ID prefixed with `https:`; the host is the M2M SP domain, which the development CA
//! constrains with a permitted URI subtree.
//!
//! [`DevCa`] generates keys and reads the clock in its convenience methods (`generate`,
//! `issue`, `issue_from_csr`); the `*_at` variants take `now` as an argument.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::id::{Fqdn, check_label, public_key_id};
use crate::secret::{PrivateKeyPem, decode_hex, encode_hex};

/// How long a development CA certificate is valid.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// How far `notBefore` is set before the issuing time, to tolerate clock skew.
pub const BACKDATE_MINUTES: i64 = 5;
/// How long a CRL is valid (its `nextUpdate` after `thisUpdate`).
pub const CRL_VALIDITY_DAYS: i64 = 7;

/// Error from the development PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed to build or sign a certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    /// The CSR does not parse, its signature does not verify, or it carries an extension other
    /// than subjectAltName, keyUsage, extendedKeyUsage or basicConstraints.
    #[error("certificate signing request rejected: {0}")]
    Csr(#[source] rcgen::Error),
    /// The CSR's key is not an ECDSA P-256 key (TS-0003 §10.1.1.1).
    #[error("certificate signing request key is not ECDSA P-256 with SHA-256 (TS-0003 §10.1.1.1)")]
    CsrKeyAlgorithm,
    /// The CSR requests no subjectAltName (TS-0003 §10.1.4 requires one).
    #[error("certificate signing request has no subjectAltName; expected {expected:?}")]
    CsrMissingSan {
        /// The SANs the profile calls for.
        expected: Vec<String>,
    },
    /// The CSR's subjectAltName differs from the one the profile calls for.
    #[error(
        "certificate signing request subjectAltName {found:?} does not match the expected {expected:?}"
    )]
    SanMismatch {
        /// The SANs the profile calls for.
        expected: Vec<String>,
        /// The SANs in the CSR.
        found: Vec<String>,
    },
    /// A name in a certificate profile is malformed.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidName {
        /// Which name (e.g. "CSE-ID").
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The profile lists no name at all.
    #[error("certificate profile has no subject alternative name")]
    NoNames,
    /// An AE-ID certificate's URI host lies outside the CA's URI name constraint.
    #[error("AE-ID URI `{uri}` is outside the CA's permitted URI subtree `{permitted}`")]
    OutsideNameConstraints {
        /// The URI SAN.
        uri: String,
        /// The CA's permitted host.
        permitted: String,
    },
    /// A validity period of zero days.
    #[error("validity must be at least one day")]
    ZeroValidity,
    /// A timestamp outside the range X.509 and the time libraries support.
    #[error("time {0} is out of range")]
    TimeRange(i64),
    /// PEM text does not hold the expected object.
    #[error("PEM: {0}")]
    Pem(String),
    /// A certificate does not parse.
    #[error("certificate does not parse: {0}")]
    Certificate(String),
    /// The CA certificate is not a CA (basicConstraints cA missing or false).
    #[error("certificate is not a CA certificate (basicConstraints cA is not true)")]
    NotCa,
    /// The private key does not belong to the CA certificate.
    #[error("private key does not match the CA certificate's public key")]
    KeyMismatch,
    /// Random generation failed.
    #[error("random generation failed: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

fn invalid(what: &'static str, value: &str, reason: impl fmt::Display) -> PkiError {
    PkiError::InvalidName {
        what,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// A subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    /// dNSName.
    Dns(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// iPAddress.
    Ip(IpAddr),
    /// Any other name type (never produced by a profile, so never matches one).
    Other(String),
}

impl San {
    /// Comparison key: DNS names compare case-insensitively, URIs exactly.
    fn canonical(&self) -> San {
        match self {
            San::Dns(d) => San::Dns(d.to_ascii_lowercase()),
            other => other.clone(),
        }
    }

    fn to_rcgen(&self) -> Result<SanType, PkiError> {
        Ok(match self {
            San::Dns(d) => SanType::DnsName(d.as_str().try_into().map_err(PkiError::Generate)?),
            San::Uri(u) => SanType::URI(u.as_str().try_into().map_err(PkiError::Generate)?),
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Other(o) => {
                return Err(invalid("subject alternative name", o, "unsupported type"));
            }
        })
    }

    fn from_rcgen(san: &SanType) -> San {
        match san {
            SanType::DnsName(d) => San::Dns(d.as_str().to_owned()),
            SanType::URI(u) => San::Uri(u.as_str().to_owned()),
            SanType::IpAddress(ip) => San::Ip(*ip),
            other => San::Other(format!("{other:?}")),
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Uri(u) => write!(f, "URI:{u}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Other(o) => write!(f, "other:{o}"),
        }
    }
}

/// Bare CSE-ID (without the leading '/'), checked to be usable as a DNS label.
fn bare_cse_id<'a>(what: &'static str, cse_id: &'a str) -> Result<&'a str, PkiError> {
    let bare = cse_id
        .strip_prefix('/')
        .ok_or_else(|| invalid(what, cse_id, "an SP-relative CSE-ID starts with '/'"))?;
    check_label(bare).map_err(|e| invalid(what, cse_id, e))?;
    Ok(bare)
}

fn sp_domain(value: &str) -> Result<Fqdn, PkiError> {
    Fqdn::parse(value).map_err(|e| invalid("M2M SP domain", value, e))
}

/// The names of a CSE for its CSE-ID certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseIdName {
    /// SP-relative CSE-ID, e.g. `/id-mn`.
    pub cse_id: String,
    /// SP-relative CSE-ID of the IN-CSE, e.g. `/id-in` (equal to `cse_id` for the IN-CSE).
    pub in_cse_id: String,
    /// M2M SP domain, e.g. `m2mtrust.example`.
    pub sp_domain: String,
}

impl CseIdName {
    /// TS-0001 §6.5.1.1 public domain name of the CSE-ID: `<in-cse-id>.<sp-domain>` for the
    /// IN-CSE, `<cse-id>.<in-cse-id>.<sp-domain>` for MN- and ASN-CSEs (IDs without '/').
    pub fn public_domain_name(&self) -> Result<String, PkiError> {
        cse_public_domain_name(&self.cse_id, &self.in_cse_id, &self.sp_domain)
    }
}

/// TS-0001 §6.5.1.1 public domain name of a CSE-ID (see [`CseIdName::public_domain_name`]).
pub fn cse_public_domain_name(
    cse_id: &str,
    in_cse_id: &str,
    sp_domain_name: &str,
) -> Result<String, PkiError> {
    let cse = bare_cse_id("CSE-ID", cse_id)?;
    let in_cse = bare_cse_id("IN-CSE-ID", in_cse_id)?;
    let sp = sp_domain(sp_domain_name)?;
    let name = if cse == in_cse {
        format!("{in_cse}.{sp}")
    } else {
        format!("{cse}.{in_cse}.{sp}")
    };
    Fqdn::parse(&name).map_err(|e| invalid("CSE-ID public domain name", &name, e))?;
    Ok(name)
}

/// The URI SAN of an AE-ID certificate (the project's "full URI representation" of the
/// AE-ID, see the module documentation):
/// `https://<sp-domain>/<cse-id>/<C-AE-ID>` for C-type AE-IDs (registrar CSE-ID without '/'),
/// `https://<sp-domain>/<S-AE-ID>` for S-type AE-IDs (the CSE-ID is not part of the URI).
///
/// `ae_id` is the AE-ID-Stem starting with 'C' or 'S'; its characters must be
/// `[A-Za-z0-9._-]`.
pub fn ae_id_uri(ae_id: &str, cse_id: &str, sp_domain_name: &str) -> Result<String, PkiError> {
    let sp = sp_domain(sp_domain_name)?;
    if let Some(ch) = ae_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(
            "AE-ID",
            ae_id,
            format!("character `{ch}` is not allowed"),
        ));
    }
    match ae_id.chars().next() {
        Some('C') => {
            let cse = bare_cse_id("CSE-ID", cse_id)?;
            Ok(format!("https://{sp}/{cse}/{ae_id}"))
        }
        Some('S') => Ok(format!("https://{sp}/{ae_id}")),
        _ => Err(invalid("AE-ID", ae_id, "an AE-ID starts with 'C' or 'S'")),
    }
}

/// An AE-ID recovered from the URI SAN of an AE-ID certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeIdUri {
    /// M2M SP domain (URI host).
    pub sp_domain: String,
    /// Registrar CSE-ID with leading '/', for C-type AE-IDs.
    pub cse_id: Option<String>,
    /// The AE-ID-Stem (`Cabc`, `Sabc`).
    pub ae_id: String,
}

/// Parses a URI SAN built by [`ae_id_uri`] back into its parts.
pub fn parse_ae_id_uri(uri: &str) -> Result<AeIdUri, PkiError> {
    let bad = |reason: &str| invalid("AE-ID URI", uri, reason);
    let rest = uri
        .strip_prefix("https://")
        .ok_or_else(|| bad("scheme is not https"))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| bad("no path"))?;
    let parts: Vec<&str> = path.split('/').collect();
    let (cse_id, ae_id) = match parts.as_slice() {
        [ae] if ae.starts_with('S') => (None, *ae),
        [cse, ae] if ae.starts_with('C') => (Some(format!("/{cse}")), *ae),
        _ => return Err(bad("path is neither /<S-AE-ID> nor /<cse-id>/<C-AE-ID>")),
    };
    // Re-building checks every part and that the form is canonical.
    let rebuilt = ae_id_uri(ae_id, cse_id.as_deref().unwrap_or(""), host)?;
    if rebuilt != uri {
        return Err(bad("not in canonical form"));
    }
    Ok(AeIdUri {
        sp_domain: host.to_owned(),
        cse_id,
        ae_id: ae_id.to_owned(),
    })
}

/// Certificate profiles of TS-0003 §10.1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProfile {
    /// CSE-ID certificate (§10.1.1.7): dNSName = CSE-ID public domain name.
    CseId {
        /// SP-relative CSE-ID, e.g. `/id-mn`.
        cse_id: String,
        /// SP-relative IN-CSE-ID, e.g. `/id-in`.
        in_cse_id: String,
        /// M2M SP domain.
        sp_domain: String,
    },
    /// AE-ID certificate (§10.1.1.5): URI = full URI representation of the AE-ID.
    AeId {
        /// AE-ID-Stem, e.g. `Cabc` or `Sabc`.
        ae_id: String,
        /// Registrar CSE-ID, e.g. `/id-mn` (ignored for S-type AE-IDs).
        cse_id: String,
        /// M2M SP domain.
        sp_domain: String,
    },
    /// FQDN certificate (§10.1.1.6), for MEF and MAF servers: dNSName = the FQDN.
    Fqdn(String),
    /// TLS server certificate for development: several dNSNames and IP addresses, plus the
    /// CSE-ID public domain name when the server is a CSE.
    Server {
        /// DNS names (FQDNs or `localhost`).
        fqdn: Vec<String>,
        /// IP addresses.
        ip: Vec<IpAddr>,
        /// The CSE whose CSE-ID name the certificate also carries.
        cse_id: Option<CseIdName>,
    },
}

impl CertProfile {
    /// A development server profile: the given DNS names and CSE, plus `localhost`,
    /// `127.0.0.1` and `::1`.
    pub fn dev_server(fqdn: &[&str], cse_id: Option<CseIdName>) -> Self {
        let mut names: Vec<String> = fqdn.iter().map(|s| (*s).to_owned()).collect();
        names.push("localhost".to_owned());
        CertProfile::Server {
            fqdn: names,
            ip: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            cse_id,
        }
    }

    /// The subjectAltName entries this profile calls for, in order.
    pub fn subject_alt_names(&self) -> Result<Vec<San>, PkiError> {
        let sans = match self {
            CertProfile::CseId {
                cse_id,
                in_cse_id,
                sp_domain,
            } => vec![San::Dns(cse_public_domain_name(
                cse_id, in_cse_id, sp_domain,
            )?)],
            CertProfile::AeId {
                ae_id,
                cse_id,
                sp_domain,
            } => vec![San::Uri(ae_id_uri(ae_id, cse_id, sp_domain)?)],
            CertProfile::Fqdn(name) => {
                let fqdn = Fqdn::parse(name).map_err(|e| invalid("FQDN", name, e))?;
                vec![San::Dns(fqdn.to_string())]
            }
            CertProfile::Server { fqdn, ip, cse_id } => {
                let mut sans = Vec::new();
                if let Some(cse) = cse_id {
                    sans.push(San::Dns(cse.public_domain_name()?));
                }
                for name in fqdn {
                    let fqdn = Fqdn::parse(name).map_err(|e| invalid("DNS name", name, e))?;
                    sans.push(San::Dns(fqdn.to_string()));
                }
                sans.extend(ip.iter().copied().map(San::Ip));
                sans
            }
        };
        if sans.is_empty() {
            return Err(PkiError::NoNames);
        }
        Ok(sans)
    }
}

/// A certificate serial number (big-endian magnitude without leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// From big-endian bytes (leading zero bytes are dropped).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        Self(bytes.get(start..).unwrap_or_default().to_vec())
    }

    /// From hexadecimal text.
    pub fn from_hex(hex: &str) -> Result<Self, PkiError> {
        decode_hex(hex)
            .map(|b| Self::from_bytes(&b))
            .map_err(|e| invalid("serial number", hex, e))
    }

    /// A fresh random 128-bit serial number (RFC 5280 §4.1.2.2: positive, at most 20 bytes).
    pub fn random() -> Result<Self, PkiError> {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes)?;
        // Positive and exactly 16 bytes long.
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Ok(Self(bytes.to_vec()))
    }

    /// Big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

/// A revoked certificate entry for a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Serial number of the revoked certificate.
    pub serial: Serial,
    /// When the CA processed the revocation.
    pub revoked_at: DateTime<Utc>,
}

/// A certificate and its private key, as issued by [`DevCa::issue`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf certificate (PEM).
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key_pem: PrivateKeyPem,
    /// The leaf followed by the CA certificate (PEM), as a TLS end-point presents it.
    pub chain_pem: String,
}

/// A certificate issued for a CSR by [`DevCa::issue_from_csr`] (the key stays with the
/// requester).
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The leaf certificate (PEM).
    pub cert_pem: String,
    /// The leaf followed by the CA certificate (PEM).
    pub chain_pem: String,
}

/// A self-signed development certification authority.
///
/// Its certificate has basicConstraints cA=true (path length 0), keyUsage keyCertSign and
/// cRLSign, and a critical nameConstraints extension with the M2M SP domain as the only
/// permitted URI subtree (TS-0003 §10.1.1.5), so AE-ID certificates for other domains fail
/// verification. DNS names are not constrained, because the same development CA also issues
/// FQDN certificates for MEF/MAF servers and `localhost` server certificates.
#[derive(Debug)]
pub struct DevCa {
    cert_pem: String,
    key_pem: PrivateKeyPem,
    uri_constraint: Option<String>,
    revoked: Vec<Revocation>,
}

fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|_| PkiError::TimeRange(t.timestamp()))
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// DER tag-length-value with definite length.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// nameConstraints (RFC 5280 §4.2.1.10) with one permitted URI subtree. rcgen has no URI
/// subtrees, so the extension is written by hand:
/// `SEQUENCE { [0] { SEQUENCE { [6] IA5String host } } }`.
fn uri_name_constraints(host: &str) -> CustomExtension {
    let general_name = der_tlv(0x86, host.as_bytes());
    let subtree = der_tlv(0x30, &general_name);
    let permitted = der_tlv(0xa0, &subtree);
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 30], der_tlv(0x30, &permitted));
    ext.set_criticality(true);
    ext
}

/// True when the CSR's subjectPublicKeyInfo is an EC key on secp256r1.
fn csr_key_is_p256(csr_pem: &str) -> bool {
    const SECP256R1: &str = "1.2.840.10045.3.1.7";
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, csr)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
    else {
        return false;
    };
    let spki = &csr.certification_request_info.subject_pki;
    spki.algorithm.algorithm.to_id_string() == EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|oid| oid.to_id_string() == SECP256R1)
}

fn parse_cert_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(PkiError::Pem(format!(
            "expected a CERTIFICATE block, found {}",
            pem.label
        )));
    }
    Ok(pem.contents)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| PkiError::Certificate(e.to_string()))
}

fn uri_constraint_of(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::NameConstraints(nc) => {
                nc.permitted_subtrees.as_ref().and_then(|subtrees| {
                    subtrees.iter().find_map(|s| match s.base {
                        GeneralName::URI(u) => Some(u.to_owned()),
                        _ => None,
                    })
                })
            }
            _ => None,
        })
}

impl DevCa {
    /// Generates a CA for `sp_domain` valid for [`CA_VALIDITY_DAYS`] from now.
    pub fn generate(sp_domain: &str) -> Result<DevCa, PkiError> {
        Self::generate_at(sp_domain, Utc::now())
    }

    /// Generates a CA for `sp_domain` valid for [`CA_VALIDITY_DAYS`] from `now`.
    pub fn generate_at(sp_domain_name: &str, now: DateTime<Utc>) -> Result<DevCa, PkiError> {
        let sp = sp_domain(sp_domain_name)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "m2mtrust");
        dn.push(DnType::CommonName, format!("m2mtrust development CA {sp}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.not_before = to_offset(now - Duration::minutes(BACKDATE_MINUTES))?;
        params.not_after = to_offset(now + days(CA_VALIDITY_DAYS))?;
        params.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.custom_extensions = vec![uri_name_constraints(sp.as_str())];
        let cert = params.self_signed(&key).map_err(PkiError::Generate)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            key_pem: PrivateKeyPem::new(key.serialize_pem()),
            uri_constraint: Some(sp.to_string()),
            revoked: Vec::new(),
        })
    }

    /// Loads a CA from its certificate and PKCS#8 private key (PEM). Checks that the
    /// certificate is a CA certificate and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevCa, PkiError> {
        let der = parse_cert_der(cert_pem)?;
        let cert = parse_cert(&der)?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| PkiError::Certificate(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::NotCa);
        }
        let key = KeyPair::from_pem(key_pem).map_err(PkiError::Generate)?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch);
        }
        Ok(DevCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: PrivateKeyPem::new(key_pem.to_owned()),
            uri_constraint: uri_constraint_of(&cert),
            revoked: Vec::new(),
        })
    }

    /// The CA certificate (PEM), the trust anchor to configure in peers.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PKCS#8 PEM), to store protected.
    pub fn key_pem(&self) -> &PrivateKeyPem {
        &self.key_pem
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(self.key_pem.expose_pem()).map_err(PkiError::Generate)?;
        Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(PkiError::Generate)
    }

    /// Leaf parameters for `profile`, valid `validity_days` from `now`.
    fn leaf_params(
        &self,
        profile: &CertProfile,
        sans: &[San],
        now: DateTime<Utc>,
        validity_days: u32,
    ) -> Result<CertificateParams, PkiError> {
        if validity_days == 0 {
            return Err(PkiError::ZeroValidity);
        }
        if let (Some(permitted), CertProfile::AeId { .. }) = (&self.uri_constraint, profile) {
            for san in sans {
                if let San::Uri(uri) = san {
                    let host = parse_ae_id_uri(uri)?.sp_domain;
                    if !host.eq_ignore_ascii_case(permitted) {
                        return Err(PkiError::OutsideNameConstraints {
                            uri: uri.clone(),
                            permitted: permitted.clone(),
                        });
                    }
                }
            }
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "m2mtrust");
        let cn = match sans.first() {
            Some(San::Dns(d) | San::Uri(d) | San::Other(d)) => d.clone(),
            Some(San::Ip(ip)) => ip.to_string(),
            None => return Err(PkiError::NoNames),
        };
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = to_offset(now - Duration::minutes(BACKDATE_MINUTES))?;
        params.not_after = to_offset(now + days(validity_days))?;
        params.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        Ok(params)
    }

    /// Issues a certificate with a fresh P-256 key for `profile`, valid from now.
    pub fn issue(&self, profile: &CertProfile, validity_days: u32) -> Result<Issued, PkiError> {
        self.issue_at(profile, Utc::now(), validity_days)
    }

    /// Issues a certificate with a fresh P-256 key for `profile`, valid `validity_days` from
    /// `now`.
    pub fn issue_at(
        &self,
        profile: &CertProfile,
        now: DateTime<Utc>,
        validity_days: u32,
    ) -> Result<Issued, PkiError> {
        let sans = profile.subject_alt_names()?;
        let params = self.leaf_params(profile, &sans, now, validity_days)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(PkiError::Generate)?;
        let cert_pem = cert.pem();
        Ok(Issued {
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
            key_pem: PrivateKeyPem::new(key.serialize_pem()),
        })
    }

    /// Issues a certificate for a CSR (TS-0003 §10.1.4), valid from now.
    pub fn issue_from_csr(
        &self,
        csr_pem: &str,
        profile: &CertProfile,
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        self.issue_from_csr_at(csr_pem, profile, Utc::now(), validity_days)
    }

    /// Issues a certificate for a CSR. The CSR signature must verify, its key must be P-256,
    /// and its subjectAltName must equal the one `profile` calls for (order and DNS case
    /// aside). Everything else in the CSR (subject, key usages, basic constraints) is ignored:
    /// the certificate carries the profile's fields.
    pub fn issue_from_csr_at(
        &self,
        csr_pem: &str,
        profile: &CertProfile,
        now: DateTime<Utc>,
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
        // rcgen names the key algorithm after the signature algorithm, so a P-384 key signed
        // with ecdsa-with-SHA256 would pass its check: the curve is read from the SPKI.
        if csr.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 || !csr_key_is_p256(csr_pem) {
            return Err(PkiError::CsrKeyAlgorithm);
        }
        let expected = profile.subject_alt_names()?;
        let found: Vec<San> = csr
            .params
            .subject_alt_names
            .iter()
            .map(San::from_rcgen)
            .collect();
        let names = |s: &[San]| s.iter().map(ToString::to_string).collect::<Vec<_>>();
        if found.is_empty() {
            return Err(PkiError::CsrMissingSan {
                expected: names(&expected),
            });
        }
        let set = |s: &[San]| s.iter().map(San::canonical).collect::<BTreeSet<_>>();
        if set(&expected) != set(&found) {
            return Err(PkiError::SanMismatch {
                expected: names(&expected),
                found: names(&found),
            });
        }
        csr.params = self.leaf_params(profile, &expected, now, validity_days)?;
        let cert = csr.signed_by(&self.issuer()?).map_err(PkiError::Generate)?;
        let cert_pem = cert.pem();
        Ok(IssuedCert {
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
        })
    }

    /// Records the revocation of `serial` at `at` (included in [`DevCa::crl_pem`]).
    pub fn revoke(&mut self, serial: Serial, at: DateTime<Utc>) {
        if !self.revoked.iter().any(|r| r.serial == serial) {
            self.revoked.push(Revocation {
                serial,
                revoked_at: at,
            });
        }
    }

    /// The revocations recorded so far.
    pub fn revoked(&self) -> &[Revocation] {
        &self.revoked
    }

    /// A CRL of the recorded revocations, issued at `now`.
    pub fn crl_pem(&self, now: DateTime<Utc>) -> Result<String, PkiError> {
        self.crl_pem_for(&self.revoked, now)
    }

    /// A CRL listing `revoked`, with `thisUpdate = now`, `nextUpdate = now +`
    /// [`CRL_VALIDITY_DAYS`] and the CRL number taken from `now` (seconds since the epoch),
    /// so later CRLs have larger numbers.
    pub fn crl_pem_for(
        &self,
        revoked: &[Revocation],
        now: DateTime<Utc>,
    ) -> Result<String, PkiError> {
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: to_offset(r.revoked_at)?,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_offset(now)?,
            next_update: to_offset(now + Duration::days(CRL_VALIDITY_DAYS))?,
            crl_number: SerialNumber::from_slice(&now.timestamp().max(1).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer()?)
            .map_err(PkiError::Generate)?
            .pem()
            .map_err(PkiError::Generate)
    }
}

/// What a certificate says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// dNSName SANs.
    pub dns: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// iPAddress SANs.
    pub ips: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Serial number.
    pub serial: Serial,
    /// Whether basicConstraints says cA=true.
    pub is_ca: bool,
    /// RFC 6920 `sha-256` identifier of the SubjectPublicKeyInfo (TS-0003 §10.1.2).
    pub public_key_id: String,
}

fn to_chrono(t: x509_parser::time::ASN1Time) -> Result<DateTime<Utc>, PkiError> {
    DateTime::from_timestamp(t.timestamp(), 0).ok_or(PkiError::TimeRange(t.timestamp()))
}

/// Reads the identity fields of the first certificate in `cert_pem`.
pub fn certificate_identity(cert_pem: &str) -> Result<CertIdentity, PkiError> {
    let der = parse_cert_der(cert_pem)?;
    certificate_identity_der(&der)
}

/// Reads the identity fields of a DER certificate (e.g. a TLS peer certificate).
pub fn certificate_identity_der(der: &[u8]) -> Result<CertIdentity, PkiError> {
    let cert = parse_cert(der)?;
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    let mut ips = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            GeneralName::URI(u) => uris.push((*u).to_owned()),
            GeneralName::IPAddress(bytes) => match *bytes {
                [a, b, c, d] => ips.push(IpAddr::from([*a, *b, *c, *d])),
                _ => {
                    if let Ok(arr) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(arr));
                    }
                }
            },
            _ => {}
        }
    }
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| PkiError::Certificate(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    Ok(CertIdentity {
        dns,
        uris,
        ips,
        not_before: to_chrono(cert.validity().not_before)?,
        not_after: to_chrono(cert.validity().not_after)?,
        serial: Serial::from_bytes(cert.raw_serial()),
        is_ca,
        public_key_id: public_key_id(cert.public_key().raw),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cse_public_domain_names() {
        assert_eq!(
            cse_public_domain_name("/id-in", "/id-in", "m2mtrust.example").unwrap(),
            "id-in.m2mtrust.example"
        );
        assert_eq!(
            cse_public_domain_name("/id-mn", "/id-in", "m2mtrust.example").unwrap(),
            "id-mn.id-in.m2mtrust.example"
        );
        for (cse, in_cse, sp) in [
            ("id-mn", "/id-in", "m2mtrust.example"),
            ("/id_mn", "/id-in", "m2mtrust.example"),
            ("/id-mn", "/id-in", "*.m2mtrust.example"),
            ("/", "/id-in", "m2mtrust.example"),
        ] {
            assert!(
                matches!(
                    cse_public_domain_name(cse, in_cse, sp),
                    Err(PkiError::InvalidName { .. })
                ),
                "{cse} {in_cse} {sp}"
            );
        }
    }

    #[test]
    fn ae_id_uris() {
        assert_eq!(
            ae_id_uri("Cabc", "/id-mn", "m2mtrust.example").unwrap(),
            "https://m2mtrust.example/id-mn/Cabc"
        );
        assert_eq!(
            ae_id_uri("Sabc", "/id-mn", "m2mtrust.example").unwrap(),
            "https://m2mtrust.example/Sabc"
        );
        assert!(ae_id_uri("abc", "/id-mn", "m2mtrust.example").is_err());
        assert!(ae_id_uri("C/x", "/id-mn", "m2mtrust.example").is_err());
        assert!(ae_id_uri("", "/id-mn", "m2mtrust.example").is_err());
        let parsed = parse_ae_id_uri("https://m2mtrust.example/id-mn/Cabc").unwrap();
        assert_eq!(parsed.cse_id.as_deref(), Some("/id-mn"));
        assert_eq!(parsed.ae_id, "Cabc");
        let parsed = parse_ae_id_uri("https://m2mtrust.example/Sabc").unwrap();
        assert_eq!(parsed.cse_id, None);
        for bad in [
            "//m2mtrust.example/id-mn/Cabc",
            "https://m2mtrust.example/Cabc",
            "https://m2mtrust.example/id-mn/Sabc",
            "https://m2mtrust.example/a/b/Cabc",
            "https://M2MTRUST.example/Sabc",
            "https://m2mtrust.example",
        ] {
            assert!(parse_ae_id_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_constraints_der() {
        let ext = uri_name_constraints("m2mtrust.example");
        assert!(ext.criticality());
        let mut expected = vec![0x30, 0x16, 0xa0, 0x14, 0x30, 0x12, 0x86, 0x10];
        expected.extend_from_slice(b"m2mtrust.example");
        assert_eq!(ext.content(), expected.as_slice());
        // Long form lengths.
        let long = der_tlv(0x04, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn serials() {
        assert_eq!(Serial::from_bytes(&[0, 0, 1, 2]).as_bytes(), &[1, 2]);
        assert_eq!(Serial::from_bytes(&[0]).as_bytes(), &[0]);
        assert_eq!(Serial::from_hex("00ab").unwrap().to_string(), "ab");
        let r = Serial::random().unwrap();
        assert_eq!(r.as_bytes().len(), 16);
        assert!(r.as_bytes()[0] & 0x80 == 0);
    }
}
