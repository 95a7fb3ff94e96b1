//! EST certificate provisioning (TS-0003 §8.3.6.2, RFC 7030).
//!
//! The MEF is the EST server and registration authority; its [`DevCa`] is the EST CA
//! (TS-0003 §8.3.6.2.1). This module holds the pure message processing of the four
//! operations TS-0003 requires, for the MEF's HTTP handler ([`EstServer`]) and for the MEF
//! client (device side):
//!
//! | Operation | Server | Client |
//! |---|---|---|
//! | `/cacerts` (RFC 7030 §4.1) | [`EstServer::cacerts`] | [`parse_certs_only`] |
//! | `/csrattrs` (RFC 7030 §4.5) | [`EstServer::csrattrs`] | [`parse_csrattrs`] |
//! | `/simpleenroll` (RFC 7030 §4.2.1) | [`EstServer::enroll`] | [`generate_csr`], [`parse_certs_only`] |
//! | `/simplereenroll` (RFC 7030 §4.2.2) | [`EstServer::reenroll`] | [`generate_csr`], [`parse_certs_only`] |
//!
//! Every body is base64 (RFC 4648 standard alphabet) of DER, as RFC 7030 and RFC 8951 ask;
//! decoders accept embedded whitespace and line breaks, encoders wrap lines at 64 characters.
//!
//! **challengePassword (digest §B.17).** TS-0003 leaves the value open. The MEF hands out a
//! one-time value bound to the MEF session in `/csrattrs`, the client copies it into the CSR,
//! and the MEF compares it in constant time. Generating, storing and invalidating the value is
//! the caller's job.
//!
//! **Key generation (digest §B.16).** The client generates the key pair and the CSR (steps
//! f–h of §8.3.6.2.2); server-side key generation is not offered.
//!
//! The certs-only PKCS#7 messages are DER written by hand: the `openssl` crate builds PKCS#7
//! only with a signer, and this workspace does not use unsafe FFI outside the channel crate.
//! Nothing here logs: the HTTP handler records audit events with [`EstError::reason`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use m2mtrust_crypto::pki::certificate_identity_der;
use m2mtrust_crypto::secret::constant_time_eq;
use m2mtrust_crypto::{CertProfile, DevCa, PkiError, PrivateKeyPem, San};
use openssl::x509::X509;
use rcgen::{
    Attribute, CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256,
    SanType,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// id-signedData (RFC 5652 §5.1).
const OID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
/// id-data (RFC 5652 §4).
const OID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
/// pkcs-9-at-challengePassword (RFC 2985 §5.4.1).
const OID_CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
/// pkcs-9-at-extensionRequest (RFC 2985 §5.4.2).
const OID_EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const OID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// id-ecPublicKey (RFC 5480 §2.1.1).
const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
/// secp256r1 (RFC 5480 §2.1.1.1).
const OID_SECP256R1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
/// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];

/// Longest challengePassword RFC 2985 allows (`pkcs-9-ub-challengePassword`).
const MAX_CHALLENGE_LEN: usize = 255;
/// Line length of the base64 bodies this module writes.
const BASE64_LINE: usize = 64;

/// Why an EST operation failed.
///
/// [`EstError::http_status`] picks the HTTP status of the refusal and [`EstError::reason`]
/// gives a stable short code for audit records.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// The body is not base64.
    #[error("body is not base64: {0}")]
    Base64(#[source] base64::DecodeError),
    /// The body is not a DER PKCS#10 certification request.
    #[error("body is not a PKCS#10 certification request: {0}")]
    NotPkcs10(String),
    /// The certification request's signature does not verify (no proof of possession).
    #[error("certification request signature does not verify")]
    BadSignature,
    /// The requested key is not an ECDSA P-256 key (TS-0003 §10.1.1.1).
    #[error("certification request key {found} is not an ECDSA P-256 key (TS-0003 §10.1.1.1)")]
    KeyNotP256 {
        /// The key's algorithm (and curve) as dotted OIDs.
        found: String,
    },
    /// The request is not signed with ECDSA with SHA-256 (TS-0003 §10.1.1.1).
    #[error("certification request is signed with {found}, not ecdsa-with-SHA256")]
    SignatureAlgorithm {
        /// The signature algorithm as a dotted OID.
        found: String,
    },
    /// The request asks for an extension the CA does not process (anything but
    /// subjectAltName, keyUsage, extendedKeyUsage and basicConstraints).
    #[error("certification request asks for an unsupported extension")]
    UnsupportedExtension,
    /// The request lacks the challengePassword attribute handed out in `/csrattrs`.
    #[error("certification request has no challengePassword attribute")]
    MissingChallengePassword,
    /// The request's challengePassword differs from the one handed out in this session.
    #[error("certification request challengePassword does not match")]
    WrongChallengePassword,
    /// The requested subjectAltName is not the identity the MEF associates with the client
    /// (TS-0003 §8.3.6.2.2 step i).
    #[error("identity not assigned: requested subjectAltName {found:?}, expected {expected:?}")]
    IdentityNotAssigned {
        /// The subjectAltName entries the MEF expects.
        expected: Vec<String>,
        /// The subjectAltName entries in the request.
        found: Vec<String>,
    },
    /// A re-enrolment asks for another identity than the certificate that authenticated the
    /// session (TS-0003 §8.3.6.2.3).
    #[error(
        "re-enrolment requests subjectAltName {requested:?}, the current certificate has {current:?}"
    )]
    IdentityChanged {
        /// The subjectAltName entries of the current certificate.
        current: Vec<String>,
        /// The subjectAltName entries in the request.
        requested: Vec<String>,
    },
    /// Re-enrolment needs a session authenticated with the current EST client certificate
    /// (TS-0003 §8.3.6.2.3 pre-condition); the session has none, or it does not parse.
    #[error("re-enrolment needs a session authenticated with the current certificate")]
    NotCertificateAuthenticated,
    /// The challenge given to the server, or to the client for its CSR, is empty or longer
    /// than 255 characters (RFC 2985 `pkcs-9-ub-challengePassword`).
    #[error("challengePassword must be 1 to 255 characters long")]
    InvalidChallenge,
    /// The CA refused or failed to issue (including an invalid profile).
    #[error("certificate issuance failed: {0}")]
    Issuance(#[source] PkiError),
    /// Key or CSR generation failed on the client.
    #[error("certification request generation failed: {0}")]
    CsrGeneration(#[source] rcgen::Error),
    /// A `/csrattrs` response does not parse.
    #[error("CSR attributes do not parse: {0}")]
    NotCsrAttrs(String),
    /// A `/cacerts` or enrolment response is not a certs-only PKCS#7 message.
    #[error("response is not a certs-only PKCS#7 message: {0}")]
    NotCertsOnly(String),
    /// OpenSSL failed on a certificate (internal).
    #[error("OpenSSL: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

impl EstError {
    /// The HTTP status the MEF answers this refusal with (RFC 7030 §4.2.3: "either an HTTP
    /// 4xx error or an HTTP 5xx error"):
    ///
    /// - 400 for a body that is malformed or asks for what the CA never issues (encoding,
    ///   signature, key, signature algorithm, extensions), as RFC 7030 implementations answer
    ///   a bad PKCS#10;
    /// - 403 for challengePassword, identity and re-enrolment authentication failures. The
    ///   TLS session already authenticated the client (PPSK or certificate RSPF), so these
    ///   are "authenticated but not authorised"; 401 is not used because it asks for HTTP
    ///   authentication (RFC 9110 §15.5.2, RFC 7030 §3.2.3), which TS-0003 §8.3.6.2.1
    ///   forbids;
    /// - 500 for failures on the MEF's side, including errors that only a client produces.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Base64(_)
            | Self::NotPkcs10(_)
            | Self::BadSignature
            | Self::KeyNotP256 { .. }
            | Self::SignatureAlgorithm { .. }
            | Self::UnsupportedExtension
            | Self::NotCsrAttrs(_)
            | Self::NotCertsOnly(_) => 400,
            Self::MissingChallengePassword
            | Self::WrongChallengePassword
            | Self::IdentityNotAssigned { .. }
            | Self::IdentityChanged { .. }
            | Self::NotCertificateAuthenticated => 403,
            Self::InvalidChallenge
            | Self::Issuance(_)
            | Self::CsrGeneration(_)
            | Self::Crypto(_) => 500,
        }
    }

    /// A stable short code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Base64(_) => "bad_base64",
            Self::NotPkcs10(_) => "not_pkcs10",
            Self::BadSignature => "bad_csr_signature",
            Self::KeyNotP256 { .. } => "key_not_p256",
            Self::SignatureAlgorithm { .. } => "signature_algorithm",
            Self::UnsupportedExtension => "unsupported_extension",
            Self::MissingChallengePassword => "challenge_password_missing",
            Self::WrongChallengePassword => "challenge_password_wrong",
            Self::IdentityNotAssigned { .. } => "identity_not_assigned",
            Self::IdentityChanged { .. } => "identity_changed",
            Self::NotCertificateAuthenticated => "not_certificate_authenticated",
            Self::InvalidChallenge => "invalid_challenge",
            Self::Issuance(_) => "issuance_failed",
            Self::CsrGeneration(_) => "csr_generation_failed",
            Self::NotCsrAttrs(_) => "bad_csrattrs",
            Self::NotCertsOnly(_) => "bad_certs_only",
            Self::Crypto(_) => "internal",
        }
    }
}

/// A certificate issued by [`EstServer::enroll`] or [`EstServer::reenroll`].
#[derive(Debug, Clone)]
pub struct EstIssued {
    /// The issued certificate (PEM).
    pub cert_pem: String,
    /// The issued certificate followed by the CA certificate (PEM).
    pub chain_pem: String,
    /// The RFC 7030 §4.2.3 response body: base64 of a certs-only PKCS#7 holding the issued
    /// certificate first, then the CA certificate.
    pub pkcs7_base64: String,
}

/// The MEF's EST server (TS-0003 §8.3.6.2): the MEF is the EST server and RA, its CA the
/// EST CA. Shareable between connections (`Send + Sync`, `&self` methods only).
#[derive(Debug)]
pub struct EstServer {
    ca: Arc<DevCa>,
    ca_der: Vec<u8>,
    validity_days: u32,
}

impl EstServer {
    /// An EST server issuing with `ca`, certificates valid `validity_days` (at least one).
    pub fn new(ca: Arc<DevCa>, validity_days: u32) -> Result<Self, EstError> {
        if validity_days == 0 {
            return Err(EstError::Issuance(PkiError::ZeroValidity));
        }
        let ca_der = X509::from_pem(ca.cert_pem().as_bytes())?.to_der()?;
        Ok(Self {
            ca,
            ca_der,
            validity_days,
        })
    }

    /// The CA this server issues with.
    pub fn ca(&self) -> &DevCa {
        &self.ca
    }

    /// `/cacerts` response body (RFC 7030 §4.1.3; TS-0003 §8.3.6.2.2 step b): base64 of a
    /// certs-only PKCS#7 holding the MEF CA certificate, the trust anchor the client installs.
    pub fn cacerts(&self) -> Result<String, EstError> {
        Ok(base64_wrapped(&certs_only(&[&self.ca_der])))
    }

    /// `/csrattrs` response body (RFC 7030 §4.5.2; TS-0003 §8.3.6.2.2 step e): base64 of a
    /// DER `CsrAttrs` asking for
    ///
    /// 1. the one-time `challenge` as challengePassword (digest §B.17),
    /// 2. a signature with ecdsa-with-SHA256 and
    /// 3. an id-ecPublicKey key on secp256r1 (TS-0003 §10.1.1.1),
    /// 4. an extensionRequest with the subjectAltName of `profile`, the identity attribute
    ///    for the identifier the MEF associates with the client (TS-0003 §10.1.4).
    pub fn csrattrs(&self, profile: &CertProfile, challenge: &str) -> Result<String, EstError> {
        check_challenge(challenge)?;
        let sans = profile.subject_alt_names().map_err(EstError::Issuance)?;
        let san_ext = der_seq(&[
            &der_oid(OID_SUBJECT_ALT_NAME),
            &der_tlv(TAG_OCTET_STRING, &general_names(&sans)?),
        ]);
        let extensions = der_seq(&[&san_ext]);
        let attrs = der_seq(&[
            &attribute(
                OID_CHALLENGE_PASSWORD,
                &der_tlv(TAG_UTF8_STRING, challenge.as_bytes()),
            ),
            &der_oid(OID_ECDSA_WITH_SHA256),
            &attribute(OID_EC_PUBLIC_KEY, &der_oid(OID_SECP256R1)),
            &attribute(OID_EXTENSION_REQUEST, &extensions),
        ]);
        Ok(base64_wrapped(&attrs))
    }

    /// `/simpleenroll` (RFC 7030 §4.2.1; TS-0003 §8.3.6.2.2 steps h–j). `body` is the
    /// base64 DER PKCS#10; `profile` the identity the MEF associates with the client and
    /// `challenge` the challengePassword handed out in this session.
    pub fn enroll(
        &self,
        body: &[u8],
        profile: &CertProfile,
        challenge: &str,
    ) -> Result<EstIssued, EstError> {
        let csr = CheckedCsr::parse(body, profile, challenge)?;
        self.issue(&csr, profile)
    }

    /// `/simplereenroll` (RFC 7030 §4.2.2; TS-0003 §8.3.6.2.3): as [`EstServer::enroll`],
    /// and the requested subjectAltName must equal that of `current_cert_der`, the
    /// certificate that authenticated the session. An empty or unparsable `current_cert_der`
    /// gives [`EstError::NotCertificateAuthenticated`].
    pub fn reenroll(
        &self,
        body: &[u8],
        profile: &CertProfile,
        challenge: &str,
        current_cert_der: &[u8],
    ) -> Result<EstIssued, EstError> {
        if current_cert_der.is_empty() {
            return Err(EstError::NotCertificateAuthenticated);
        }
        let current = certificate_identity_der(current_cert_der)
            .map_err(|_| EstError::NotCertificateAuthenticated)?;
        let csr = CheckedCsr::parse(body, profile, challenge)?;
        // TS-0003 §8.3.6.2.3 step 3.d: the identity against the one associated with the
        // client, which on re-provisioning is that of the certificate it authenticated with.
        let current_sans: Vec<San> = current
            .dns
            .into_iter()
            .map(San::Dns)
            .chain(current.uris.into_iter().map(San::Uri))
            .chain(current.ips.into_iter().map(San::Ip))
            .collect();
        if canonical_set(&current_sans) != canonical_set(&csr.sans) {
            return Err(EstError::IdentityChanged {
                current: names(&current_sans),
                requested: names(&csr.sans),
            });
        }
        self.issue(&csr, profile)
    }

    /// TS-0003 §8.3.6.2.2 step j: issues for a checked request and forms the response.
    fn issue(&self, csr: &CheckedCsr, profile: &CertProfile) -> Result<EstIssued, EstError> {
        let issued = self
            .ca
            .issue_from_csr(&csr.pem, profile, self.validity_days)
            .map_err(map_pki_error)?;
        let cert_der = X509::from_pem(issued.cert_pem.as_bytes())?.to_der()?;
        let pkcs7_base64 = base64_wrapped(&certs_only(&[&cert_der, &self.ca_der]));
        Ok(EstIssued {
            cert_pem: issued.cert_pem,
            chain_pem: issued.chain_pem,
            pkcs7_base64,
        })
    }
}

/// A request that passed the RA checks of TS-0003 §8.3.6.2.2 step i.
struct CheckedCsr {
    /// The request as PEM, for the CA.
    pem: String,
    /// Its subjectAltName entries.
    sans: Vec<San>,
}

impl CheckedCsr {
    fn parse(body: &[u8], profile: &CertProfile, challenge: &str) -> Result<Self, EstError> {
        check_challenge(challenge)?;
        let der = decode_base64(body)?;
        let (rest, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| EstError::NotPkcs10(e.to_string()))?;
        if !rest.is_empty() {
            return Err(EstError::NotPkcs10(format!(
                "{} bytes after the request",
                rest.len()
            )));
        }
        let info = &csr.certification_request_info;

        // TS-0003 §10.1.1.1: an ECDSA P-256 key, signed with ECDSA and SHA-256.
        let key_alg = &info.subject_pki.algorithm;
        let curve = key_alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        let is_p256 = key_alg.algorithm.as_bytes() == oid_content(OID_EC_PUBLIC_KEY).as_slice()
            && curve
                .as_ref()
                .is_some_and(|c| c.as_bytes() == oid_content(OID_SECP256R1).as_slice());
        if !is_p256 {
            let mut found = key_alg.algorithm.to_id_string();
            if let Some(c) = &curve {
                found.push_str(&format!(" curve {}", c.to_id_string()));
            }
            return Err(EstError::KeyNotP256 { found });
        }
        let sig_alg = &csr.signature_algorithm.algorithm;
        if sig_alg.as_bytes() != oid_content(OID_ECDSA_WITH_SHA256).as_slice() {
            return Err(EstError::SignatureAlgorithm {
                found: sig_alg.to_id_string(),
            });
        }
        // Proof of possession.
        csr.verify_signature().map_err(|_| EstError::BadSignature)?;

        // Step i: the challengePassword against the one handed out in step e.
        let passwords: Vec<&str> = info
            .iter_attributes()
            .filter_map(|a| match a.parsed_attribute() {
                ParsedCriAttribute::ChallengePassword(p) => Some(p.0.as_str()),
                _ => None,
            })
            .collect();
        match passwords.as_slice() {
            [] => return Err(EstError::MissingChallengePassword),
            [given] if constant_time_eq(given.as_bytes(), challenge.as_bytes()) => {}
            _ => return Err(EstError::WrongChallengePassword),
        }

        // Step i: the identity attribute against the identity associated with the client.
        let expected = profile.subject_alt_names().map_err(EstError::Issuance)?;
        let sans = requested_sans(&csr);
        if sans.is_empty() || canonical_set(&expected) != canonical_set(&sans) {
            return Err(EstError::IdentityNotAssigned {
                expected: names(&expected),
                found: names(&sans),
            });
        }
        Ok(Self {
            pem: pem_wrap("CERTIFICATE REQUEST", &der),
            sans,
        })
    }
}

/// The subjectAltName entries of a certification request's extensionRequest.
fn requested_sans(csr: &X509CertificationRequest<'_>) -> Vec<San> {
    let mut sans = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            sans.extend(san.general_names.iter().map(san_of));
        }
    }
    sans
}

fn san_of(name: &GeneralName<'_>) -> San {
    match name {
        GeneralName::DNSName(d) => San::Dns((*d).to_owned()),
        GeneralName::URI(u) => San::Uri((*u).to_owned()),
        GeneralName::IPAddress(bytes) => {
            if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                San::Ip(IpAddr::from(v4))
            } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                San::Ip(IpAddr::from(v6))
            } else {
                San::Other(format!("IP address of {} bytes", bytes.len()))
            }
        }
        other => San::Other(other.to_string()),
    }
}

/// Comparison form as in [`DevCa::issue_from_csr`]: a set, DNS names case-insensitive.
fn canonical_set(sans: &[San]) -> BTreeSet<San> {
    sans.iter()
        .map(|s| match s {
            San::Dns(d) => San::Dns(d.to_ascii_lowercase()),
            other => other.clone(),
        })
        .collect()
}

fn names(sans: &[San]) -> Vec<String> {
    sans.iter().map(ToString::to_string).collect()
}

/// Maps the CA's refusals onto the RA's errors (the RA checks run first, so most of these
/// arise only for requests the RA checks do not cover).
fn map_pki_error(e: PkiError) -> EstError {
    match e {
        PkiError::SanMismatch { expected, found } => {
            EstError::IdentityNotAssigned { expected, found }
        }
        PkiError::CsrMissingSan { expected } => EstError::IdentityNotAssigned {
            expected,
            found: Vec::new(),
        },
        PkiError::CsrKeyAlgorithm => EstError::KeyNotP256 {
            found: "not P-256 with SHA-256".to_owned(),
        },
        PkiError::Csr(rcgen::Error::InvalidCertificationRequestSignature) => EstError::BadSignature,
        PkiError::Csr(rcgen::Error::UnsupportedExtension) => EstError::UnsupportedExtension,
        PkiError::Csr(other) => EstError::NotPkcs10(other.to_string()),
        other => EstError::Issuance(other),
    }
}

fn check_challenge(challenge: &str) -> Result<(), EstError> {
    if challenge.is_empty() || challenge.chars().count() > MAX_CHALLENGE_LEN {
        return Err(EstError::InvalidChallenge);
    }
    Ok(())
}

/// What a MEF asked for in its `/csrattrs` response (RFC 7030 §4.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrAttrs {
    /// The challengePassword to copy into the CSR (digest §B.17).
    pub challenge_password: Option<String>,
    /// The subjectAltName entries of the requested extensions: the identity the MEF
    /// associates with the client (TS-0003 §8.3.6.2.2 step e).
    pub subject_alt_names: Vec<San>,
    /// Bare OIDs (dotted), e.g. `1.2.840.10045.4.3.2` for ecdsa-with-SHA256.
    pub oids: Vec<String>,
    /// Curves (dotted OIDs) of an id-ecPublicKey attribute, e.g. `1.2.840.10045.3.1.7` for
    /// secp256r1.
    pub ec_curves: Vec<String>,
    /// OIDs (dotted) of requested extensions other than subjectAltName.
    pub other_extensions: Vec<String>,
    /// Types (dotted OIDs) of attributes not listed above.
    pub other_attributes: Vec<String>,
}

impl CsrAttrs {
    /// Whether the MEF asks for a signature with ecdsa-with-SHA256.
    pub fn wants_ecdsa_sha256(&self) -> bool {
        self.oids
            .iter()
            .any(|o| *o == oid_string(OID_ECDSA_WITH_SHA256))
    }

    /// Whether the MEF asks for a key on secp256r1.
    pub fn wants_p256(&self) -> bool {
        self.ec_curves
            .iter()
            .any(|o| *o == oid_string(OID_SECP256R1))
    }
}

/// Parses a `/csrattrs` response body (RFC 7030 §4.5.2: base64 of DER
/// `CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID`).
pub fn parse_csrattrs(body: &[u8]) -> Result<CsrAttrs, EstError> {
    let der = decode_base64(body)?;
    let bad = EstError::NotCsrAttrs;
    let mut outer = DerReader::new(&der);
    let list = outer.expect(TAG_SEQUENCE).map_err(bad)?;
    outer.finish().map_err(bad)?;
    let mut attrs = CsrAttrs::default();
    let mut items = DerReader::new(list);
    while !items.is_empty() {
        let (tag, content) = items.next().map_err(bad)?;
        match tag {
            TAG_OID => attrs
                .oids
                .push(oid_content_to_string(content).map_err(bad)?),
            TAG_SEQUENCE => parse_attribute(content, &mut attrs).map_err(bad)?,
            other => return Err(bad(format!("unexpected tag {other:#04x} in CsrAttrs"))),
        }
    }
    Ok(attrs)
}

/// One `Attribute ::= SEQUENCE { type OID, values SET SIZE(1..MAX) OF ... }` of a CsrAttrs.
fn parse_attribute(content: &[u8], attrs: &mut CsrAttrs) -> Result<(), String> {
    let mut r = DerReader::new(content);
    let oid = r.expect(TAG_OID)?;
    let values = r.expect(TAG_SET)?;
    r.finish()?;
    let mut values = DerReader::new(values);
    if oid == oid_content(OID_CHALLENGE_PASSWORD).as_slice() {
        let (tag, value) = values.next()?;
        attrs.challenge_password = Some(directory_string(tag, value)?);
    } else if oid == oid_content(OID_EC_PUBLIC_KEY).as_slice() {
        while !values.is_empty() {
            attrs
                .ec_curves
                .push(oid_content_to_string(values.expect(TAG_OID)?)?);
        }
    } else if oid == oid_content(OID_EXTENSION_REQUEST).as_slice() {
        while !values.is_empty() {
            let mut extensions = DerReader::new(values.expect(TAG_SEQUENCE)?);
            while !extensions.is_empty() {
                let mut ext = DerReader::new(extensions.expect(TAG_SEQUENCE)?);
                let ext_oid = ext.expect(TAG_OID)?;
                let (mut tag, mut value) = ext.next()?;
                if tag == TAG_BOOLEAN {
                    (tag, value) = ext.next()?;
                }
                if tag != TAG_OCTET_STRING {
                    return Err(format!("extension value has tag {tag:#04x}"));
                }
                ext.finish()?;
                if ext_oid == oid_content(OID_SUBJECT_ALT_NAME).as_slice() {
                    attrs.subject_alt_names.extend(parse_general_names(value)?);
                } else {
                    attrs.other_extensions.push(oid_content_to_string(ext_oid)?);
                }
            }
        }
    } else {
        attrs.other_attributes.push(oid_content_to_string(oid)?);
    }
    Ok(())
}

/// A DirectoryString (RFC 5280 §4.1.2.4) value as text.
fn directory_string(tag: u8, value: &[u8]) -> Result<String, String> {
    match tag {
        TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING | TAG_T61_STRING => {
            String::from_utf8(value.to_vec()).map_err(|e| e.to_string())
        }
        TAG_BMP_STRING => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
                    _ => Err("odd BMPString length".to_owned()),
                })
                .collect::<Result<_, _>>()?;
            String::from_utf16(&units).map_err(|e| e.to_string())
        }
        other => Err(format!("challengePassword has tag {other:#04x}")),
    }
}

/// `GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName` (RFC 5280 §4.2.1.6).
fn parse_general_names(der: &[u8]) -> Result<Vec<San>, String> {
    let mut outer = DerReader::new(der);
    let mut names = DerReader::new(outer.expect(TAG_SEQUENCE)?);
    outer.finish()?;
    let mut sans = Vec::new();
    while !names.is_empty() {
        let (tag, value) = names.next()?;
        let text = || String::from_utf8(value.to_vec()).map_err(|e| e.to_string());
        sans.push(match tag {
            TAG_GN_DNS => San::Dns(text()?),
            TAG_GN_URI => San::Uri(text()?),
            TAG_GN_IP => {
                if let Ok(v4) = <[u8; 4]>::try_from(value) {
                    San::Ip(IpAddr::from(v4))
                } else if let Ok(v6) = <[u8; 16]>::try_from(value) {
                    San::Ip(IpAddr::from(v6))
                } else {
                    return Err(format!("IP address of {} bytes", value.len()));
                }
            }
            other => San::Other(format!("GeneralName tag {other:#04x}")),
        });
    }
    Ok(sans)
}

/// Generates a fresh P-256 key and a PKCS#10 request for `profile` (TS-0003 §8.3.6.2.2
/// steps f–g, §10.1.4): subjectAltName from the profile in an extensionRequest, the
/// `challenge` from `/csrattrs` as challengePassword, signed with ecdsa-with-SHA256.
/// Returns the `/simpleenroll` body (base64 DER) and the private key.
pub fn generate_csr(
    profile: &CertProfile,
    challenge: Option<&str>,
) -> Result<(String, PrivateKeyPem), EstError> {
    let sans = profile.subject_alt_names().map_err(EstError::Issuance)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(first) = sans.first() {
        let cn = match first {
            San::Dns(v) | San::Uri(v) | San::Other(v) => v.clone(),
            San::Ip(ip) => ip.to_string(),
        };
        dn.push(DnType::CommonName, cn);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|san| {
            Ok(match san {
                San::Dns(d) => {
                    SanType::DnsName(d.as_str().try_into().map_err(EstError::CsrGeneration)?)
                }
                San::Uri(u) => {
                    SanType::URI(u.as_str().try_into().map_err(EstError::CsrGeneration)?)
                }
                San::Ip(ip) => SanType::IpAddress(*ip),
                San::Other(_) => {
                    return Err(EstError::CsrGeneration(rcgen::Error::InvalidNameType));
                }
            })
        })
        .collect::<Result<_, EstError>>()?;
    let mut attributes = Vec::new();
    if let Some(challenge) = challenge {
        check_challenge(challenge)?;
        attributes.push(Attribute {
            oid: OID_CHALLENGE_PASSWORD,
            values: der_tlv(TAG_SET, &der_tlv(TAG_UTF8_STRING, challenge.as_bytes())),
        });
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(EstError::CsrGeneration)?;
    let csr = params
        .serialize_request_with_attributes(&key, attributes)
        .map_err(EstError::CsrGeneration)?;
    Ok((
        base64_wrapped(csr.der().as_ref()),
        PrivateKeyPem::new(key.serialize_pem()),
    ))
}

/// The DER certificates of a certs-only PKCS#7 response (`/cacerts`, RFC 7030 §4.1.3;
/// `/simpleenroll` and `/simplereenroll`, §4.2.3), in the order encoded. For the enrolment
/// responses of [`EstServer`] the first is the issued certificate.
pub fn parse_certs_only(body: &[u8]) -> Result<Vec<Vec<u8>>, EstError> {
    let der = decode_base64(body)?;
    let pkcs7 =
        openssl::pkcs7::Pkcs7::from_der(&der).map_err(|e| EstError::NotCertsOnly(e.to_string()))?;
    let signed = pkcs7
        .signed()
        .ok_or_else(|| EstError::NotCertsOnly("not signedData".to_owned()))?;
    let certs = signed
        .certificates()
        .map(|stack| {
            stack
                .iter()
                .map(|c| c.to_der())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(EstError::NotCertsOnly("no certificates".to_owned()));
    }
    Ok(certs)
}

/// Decodes a base64 body, ignoring whitespace and line breaks (RFC 8951 §3.1).
fn decode_base64(body: &[u8]) -> Result<Vec<u8>, EstError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD.decode(compact).map_err(EstError::Base64)
}

/// Base64 with CRLF line breaks every [`BASE64_LINE`] characters.
fn base64_wrapped(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / BASE64_LINE * 2 + 2);
    // Base64 output is ASCII, so splitting at any byte offset is on a char boundary.
    for line in encoded.as_bytes().chunks(BASE64_LINE) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    let body = base64_wrapped(der).replace("\r\n", "\n");
    format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n")
}

/// A certs-only PKCS#7 (RFC 5652 §5 degenerate signedData; RFC 7030 §4.1.3):
///
/// ```text
/// ContentInfo { id-signedData, [0] EXPLICIT SignedData {
///     version 1, digestAlgorithms {}, encapContentInfo { id-data },
///     certificates [0] IMPLICIT { certs... }, signerInfos {} } }
/// ```
///
/// The certificates keep the given order, as OpenSSL writes them, rather than the DER sort
/// of a SET OF; clients (and [`parse_certs_only`]) rely on the issued certificate coming first.
fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    let certificates: Vec<u8> = certs.concat();
    let signed_data = der_seq(&[
        &der_tlv(TAG_INTEGER, &[1]),
        &der_tlv(TAG_SET, &[]),
        &der_seq(&[&der_oid(OID_DATA)]),
        &der_tlv(TAG_CONTEXT_0, &certificates),
        &der_tlv(TAG_SET, &[]),
    ]);
    der_seq(&[
        &der_oid(OID_SIGNED_DATA),
        &der_tlv(TAG_CONTEXT_0, &signed_data),
    ])
}

/// `GeneralNames` for a subjectAltName extension value.
fn general_names(sans: &[San]) -> Result<Vec<u8>, EstError> {
    let mut names = Vec::new();
    for san in sans {
        names.extend(match san {
            San::Dns(d) => der_tlv(TAG_GN_DNS, d.as_bytes()),
            San::Uri(u) => der_tlv(TAG_GN_URI, u.as_bytes()),
            San::Ip(IpAddr::V4(ip)) => der_tlv(TAG_GN_IP, &ip.octets()),
            San::Ip(IpAddr::V6(ip)) => der_tlv(TAG_GN_IP, &ip.octets()),
            San::Other(o) => {
                return Err(EstError::Issuance(PkiError::InvalidName {
                    what: "subject alternative name",
                    value: o.clone(),
                    reason: "unsupported type".to_owned(),
                }));
            }
        });
    }
    Ok(der_tlv(TAG_SEQUENCE, &names))
}

fn attribute(oid: &[u64], value: &[u8]) -> Vec<u8> {
    der_seq(&[&der_oid(oid), &der_tlv(TAG_SET, value)])
}

// DER (X.690) encoding and decoding, limited to what the messages above need: one-byte
// tags and definite lengths.

const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_T61_STRING: u8 = 0x14;
const TAG_IA5_STRING: u8 = 0x16;
const TAG_BMP_STRING: u8 = 0x1e;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_CONTEXT_0: u8 = 0xa0;
const TAG_GN_DNS: u8 = 0x82;
const TAG_GN_URI: u8 = 0x86;
const TAG_GN_IP: u8 = 0x87;

/// Tag, definite length (long form above 127 bytes), content.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(content.len() + 10);
    out.push(tag);
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

fn der_seq(parts: &[&[u8]]) -> Vec<u8> {
    der_tlv(TAG_SEQUENCE, &parts.concat())
}

/// The content octets of an OBJECT IDENTIFIER (X.690 §8.19).
fn oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        out.extend(groups.into_iter().rev());
    }
    out
}

fn der_oid(arcs: &[u64]) -> Vec<u8> {
    der_tlv(TAG_OID, &oid_content(arcs))
}

fn oid_string(arcs: &[u64]) -> String {
    arcs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Dotted form of OBJECT IDENTIFIER content octets.
fn oid_content_to_string(content: &[u8]) -> Result<String, String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for b in content {
        if value > (u64::MAX >> 7) {
            return Err("OBJECT IDENTIFIER arc too large".to_owned());
        }
        value = (value << 7) | u64::from(b & 0x7f);
        pending = b & 0x80 != 0;
        if !pending {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if pending || arcs.is_empty() {
        return Err("truncated OBJECT IDENTIFIER".to_owned());
    }
    Ok(oid_string(&arcs))
}

/// Reads consecutive TLVs from a byte string; every read is bounds-checked.
struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV's tag and content.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let (&tag, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| "unexpected end of data".to_owned())?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte tags are not supported".to_owned());
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or_else(|| "missing length".to_owned())?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err("indefinite or oversized length".to_owned());
            }
            let (bytes, rest) = rest
                .split_at_checked(n)
                .ok_or_else(|| "truncated length".to_owned())?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, rest)
        };
        let (content, rest) = rest
            .split_at_checked(len)
            .ok_or_else(|| "truncated content".to_owned())?;
        self.rest = rest;
        Ok((tag, content))
    }

    /// The next TLV's content, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (found, content) = self.next()?;
        if found != tag {
            return Err(format!("expected tag {tag:#04x}, found {found:#04x}"));
        }
        Ok(content)
    }

    /// Fails if anything is left.
    fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn oid_encoding() {
        assert_eq!(
            der_oid(OID_ECDSA_WITH_SHA256),
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        );
        assert_eq!(
            der_oid(OID_SUBJECT_ALT_NAME),
            [0x06, 0x03, 0x55, 0x1d, 0x11]
        );
        for arcs in [OID_SIGNED_DATA, OID_SECP256R1, OID_SUBJECT_ALT_NAME] {
            assert_eq!(
                oid_content_to_string(&oid_content(arcs)).unwrap(),
                oid_string(arcs)
            );
        }
        assert!(oid_content_to_string(&[0x86]).is_err());
        assert!(oid_content_to_string(&[]).is_err());
        assert!(oid_content_to_string(&[0xff; 20]).is_err());
    }

    #[test]
    fn der_lengths() {
        assert_eq!(&der_tlv(0x04, &[0; 127])[..2], &[0x04, 0x7f]);
        assert_eq!(&der_tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&der_tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let big = der_tlv(0x04, &[7; 300]);
        let mut r = DerReader::new(&big);
        assert_eq!(r.expect(0x04).unwrap(), &[7; 300][..]);
        r.finish().unwrap();
    }

    #[test]
    fn reader_rejects_truncation() {
        for bad in [
            &[0x30][..],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0x01],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(DerReader::new(bad).next().is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn parse_csrattrs_never_panics_on_prefixes() {
        let attrs = der_seq(&[
            &attribute(OID_CHALLENGE_PASSWORD, &der_tlv(TAG_UTF8_STRING, b"x")),
            &der_oid(OID_ECDSA_WITH_SHA256),
        ]);
        let full = STANDARD.encode(&attrs);
        assert!(parse_csrattrs(full.as_bytes()).is_ok());
        for n in 0..attrs.len() {
            let body = STANDARD.encode(&attrs[..n]);
            assert!(parse_csrattrs(body.as_bytes()).is_err(), "prefix {n}");
        }
    }
}
