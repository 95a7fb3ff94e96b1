//! Configuration of both ends: certificates, trust anchors, suites, timeouts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslContextBuilder, SslMethod, SslVersion};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Crl};

use crate::error::ConfigError;
use crate::ffi;
use crate::identity::{IdentityRules, KpsaId};
use crate::secret::PskKey;

/// TS-0003 §10.2.2 PSK suites: the mandatory `TLS_PSK_WITH_AES_128_CBC_SHA256` first, then
/// GCM, CCM_8 and the forward-secret ECDHE_PSK variant.
pub const PSK_CIPHERS: &[&str] = &[
    "PSK-AES128-CBC-SHA256",
    "PSK-AES128-GCM-SHA256",
    "PSK-AES128-CCM8",
    "ECDHE-PSK-AES128-CBC-SHA256",
];

/// TS-0003 §10.2.3 certificate suites: the mandatory
/// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256` first, then GCM and CCM_8.
pub const CERTIFICATE_CIPHERS: &[&str] = &[
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-CCM8",
];

/// Every suite of §10.2.2 and §10.2.3 (an IN server must offer all of them, §10.2.1).
pub const DEFAULT_CIPHERS: &[&str] = &[
    "PSK-AES128-CBC-SHA256",
    "PSK-AES128-GCM-SHA256",
    "PSK-AES128-CCM8",
    "ECDHE-PSK-AES128-CBC-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-CCM8",
];

/// How long a peer may take to finish a handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn is_psk_suite(name: &str) -> bool {
    name.contains("PSK")
}

/// A certificate chain (leaf first) with its P-256 private key (TS-0003 §10.1.1.1).
#[derive(Clone)]
pub struct CertifiedKey {
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
}

impl CertifiedKey {
    /// Reads a PEM chain (leaf first, then intermediates) and a PEM private key; the key must be
    /// a P-256 EC key matching the leaf.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let chain = X509::stack_from_pem(chain_pem).map_err(|e| ConfigError::Parse {
            what: "certificate chain",
            source: e,
        })?;
        let key = PKey::private_key_from_pem(key_pem).map_err(|e| ConfigError::Parse {
            what: "private key",
            source: e,
        })?;
        Self::new(chain, key)
    }

    /// Wraps parsed objects, with the same checks as [`CertifiedKey::from_pem`].
    pub fn new(chain: Vec<X509>, key: PKey<Private>) -> Result<Self, ConfigError> {
        let Some(leaf) = chain.first() else {
            return Err(ConfigError::Invalid {
                what: "certificate chain",
                why: "no certificate".into(),
            });
        };
        let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
        if curve != Some(Nid::X9_62_PRIME256V1) {
            return Err(ConfigError::Invalid {
                what: "private key",
                why: "must be an EC key on secp256r1 (TS-0003 §10.1.1.1)".into(),
            });
        }
        if !leaf.public_key()?.public_eq(&key) {
            return Err(ConfigError::Invalid {
                what: "private key",
                why: "does not match the leaf certificate".into(),
            });
        }
        Ok(Self { chain, key })
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> Option<&X509> {
        self.chain.first()
    }

    pub(crate) fn install(&self, b: &mut SslContextBuilder) -> Result<(), ConfigError> {
        let mut certs = self.chain.iter();
        if let Some(leaf) = certs.next() {
            b.set_certificate(leaf)?;
        }
        for c in certs {
            b.add_extra_chain_cert(c.clone())?;
        }
        b.set_private_key(&self.key)?;
        b.check_private_key()?;
        Ok(())
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self
            .chain
            .first()
            .map(|c| format!("{:?}", c.subject_name()))
            .unwrap_or_default();
        f.debug_struct("CertifiedKey")
            .field("leaf_subject", &subject)
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The CA certificates a peer's chain must end in, and optionally CRLs.
///
/// With CRLs configured, the leaf's issuer must have a current CRL here, otherwise the peer is
/// refused (fail closed; `X509_V_FLAG_CRL_CHECK`, leaf only).
#[derive(Clone, Default)]
pub struct TrustAnchors {
    pub(crate) certs: Vec<X509>,
    pub(crate) crls: Vec<Arc<X509Crl>>,
}

impl TrustAnchors {
    /// One or more PEM CA certificates.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let certs = X509::stack_from_pem(pem).map_err(|e| ConfigError::Parse {
            what: "trust anchors",
            source: e,
        })?;
        if certs.is_empty() {
            return Err(ConfigError::Invalid {
                what: "trust anchors",
                why: "no certificate".into(),
            });
        }
        Ok(Self {
            certs,
            crls: Vec::new(),
        })
    }

    /// Adds a PEM CRL, turning on revocation checking.
    pub fn add_crl_pem(&mut self, pem: &[u8]) -> Result<(), ConfigError> {
        let crl = X509Crl::from_pem(pem).map_err(|e| ConfigError::Parse {
            what: "CRL",
            source: e,
        })?;
        self.crls.push(Arc::new(crl));
        Ok(())
    }

    /// Adds CA certificates.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<(), ConfigError> {
        let more = TrustAnchors::from_pem(pem)?;
        self.certs.extend(more.certs);
        Ok(())
    }

    /// True when CRLs are configured.
    pub fn checks_revocation(&self) -> bool {
        !self.crls.is_empty()
    }

    pub(crate) fn store(&self) -> Result<X509Store, ConfigError> {
        let mut b = X509StoreBuilder::new()?;
        for c in &self.certs {
            b.add_cert(c.clone())?;
        }
        for crl in &self.crls {
            ffi::add_crl(&mut b, crl)?;
        }
        if self.checks_revocation() {
            b.set_flags(X509VerifyFlags::CRL_CHECK)?;
        }
        Ok(b.build())
    }

    /// Installs the store, the revocation flag and (for a server) the CA names sent in
    /// CertificateRequest.
    pub(crate) fn install(
        &self,
        b: &mut SslContextBuilder,
        server: bool,
    ) -> Result<(), ConfigError> {
        b.set_verify_cert_store(self.store()?)?;
        if self.checks_revocation() {
            b.verify_param_mut().set_flags(X509VerifyFlags::CRL_CHECK)?;
        }
        if server {
            for c in &self.certs {
                b.add_client_ca(c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .certs
            .iter()
            .map(|c| format!("{:?}", c.subject_name()))
            .collect();
        f.debug_struct("TrustAnchors")
            .field("certs", &names)
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// The server side of a security association (one port for PSK and certificate clients).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How client certificate identities are read.
    pub identity: IdentityRules,
    /// The default server certificate; without one only PSK suites can be negotiated.
    pub certificate: Option<CertifiedKey>,
    /// Certificates chosen by the SNI host name the client sends (compared case-insensitively).
    pub sni_certificates: Vec<(String, CertifiedKey)>,
    /// CAs (and CRLs) that client certificates must chain to; without them client certificates
    /// are not requested and only PSK clients can authenticate.
    pub client_trust: Option<TrustAnchors>,
    /// OpenSSL suite names, in server preference order.
    pub ciphers: Vec<String>,
    /// Optional PSK identity hint (RFC 4279 §5.2).
    pub psk_identity_hint: Option<String>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl ServerConfig {
    /// A PSK-only server with all default suites; add certificates and trust as needed.
    pub fn new(identity: IdentityRules) -> Self {
        Self {
            identity,
            certificate: None,
            sni_certificates: Vec::new(),
            client_trust: None,
            ciphers: DEFAULT_CIPHERS.iter().map(|s| s.to_string()).collect(),
            psk_identity_hint: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// A client's PSK credential: the KpsaID it sends and the key.
#[derive(Clone, Debug)]
pub struct ClientPsk {
    /// Sent as `psk_identity`.
    pub kpsa_id: KpsaId,
    /// Kpsa.
    pub key: PskKey,
}

/// The client side of a security association.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// PSK credential (§8.2.2.1).
    pub psk: Option<ClientPsk>,
    /// Client certificate (§8.2.2.2).
    pub certificate: Option<CertifiedKey>,
    /// CAs the server certificate must chain to. Certificate suites are offered only when this is
    /// set, so a PSK-only client never accepts an unauthenticated server certificate.
    pub trust_anchors: Option<TrustAnchors>,
    /// OpenSSL suite names, in preference order (filtered by the credentials present).
    pub ciphers: Vec<String>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl ClientConfig {
    /// A PSK client offering the PSK suites.
    pub fn psk(kpsa_id: KpsaId, key: PskKey) -> Self {
        Self {
            psk: Some(ClientPsk { kpsa_id, key }),
            certificate: None,
            trust_anchors: None,
            ciphers: PSK_CIPHERS.iter().map(|s| s.to_string()).collect(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A certificate client offering the certificate suites.
    pub fn certificate(certificate: CertifiedKey, trust_anchors: TrustAnchors) -> Self {
        Self {
            psk: None,
            certificate: Some(certificate),
            trust_anchors: Some(trust_anchors),
            ciphers: CERTIFICATE_CIPHERS.iter().map(|s| s.to_string()).collect(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// A builder pinned to TLS 1.2 with the suites checked one by one (OpenSSL silently drops
/// unknown names from a list).
pub(crate) fn tls12_builder(
    method: SslMethod,
    ciphers: &[String],
) -> Result<SslContextBuilder, ConfigError> {
    if ciphers.is_empty() {
        return Err(ConfigError::Invalid {
            what: "ciphers",
            why: "no cipher suite enabled".into(),
        });
    }
    for c in ciphers {
        let mut probe = SslContextBuilder::new(method)?;
        if c.is_empty()
            || c.contains([':', ',', ' ', '!', '+', '@'])
            || probe.set_cipher_list(c).is_err()
        {
            return Err(ConfigError::Invalid {
                what: "ciphers",
                why: format!("{c:?} is not a single cipher suite this OpenSSL knows"),
            });
        }
    }
    let mut b = SslContextBuilder::new(method)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_cipher_list(&ciphers.join(":"))?;
    Ok(b)
}
