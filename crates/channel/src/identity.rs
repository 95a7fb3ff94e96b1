//! Who the peer is: KpsaID syntax (TS-0003 §10.5), Credential-IDs (§10.4), and the identity
//! carried by a CSE-ID or AE-ID certificate (§8.2.2.2 step 3, §10.1.1.5, §10.1.1.7).
//!
//! Credential-IDs formed here (`<type>-<value>`, §10.4 / `sec:credIDTypeID`):
//!
//! | credential | type | value | example |
//! |---|---|---|---|
//! | Kpsa | 12 | the KpsaID | `12-dev1@mef.m2mtrust.example` |
//! | CSE-ID certificate | 32 | the SP-relative CSE-ID | `32-/id-mn` |
//! | AE-ID certificate, C-type | 33 | the SP-relative AE-ID | `33-/id-in/Cabc` |
//! | AE-ID certificate, S-type | 33 | the AE-ID | `33-Sabc` |
//! | any other certificate | 30 | the RFC 6920 public key identifier (§10.1.2) of the SPKI | `30-ni:///sha-256;…` |
//!
//! §10.4 lists only letters, digits, `.`, `_`, `-` and `@` for the value; CSE-IDs, AE-IDs and
//! `ni` URIs need `/`, `:` and `;` as well, and are kept verbatim so that the value stays the
//! identifier the spec names.

use m2mtrust_model::CseId;
use openssl::base64;
use openssl::hash::{MessageDigest, hash};
use openssl::x509::X509Ref;

use crate::error::ConfigError;

/// Longest KpsaID accepted: leaves room for the NUL that OpenSSL's 256-byte identity buffer needs.
pub const MAX_KPSA_ID_LEN: usize = 255;

/// A KpsaID, `Issuer_Relative_KpsaID@Issuer-FQDN` (TS-0003 §10.5); the one definition lives in
/// `m2mtrust-crypto`.
pub use m2mtrust_crypto::KpsaId;

/// Why a `psk_identity` received in a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpsaIdError {
    /// Longer than OpenSSL's identity buffer allows.
    #[error("invalid KpsaID: longer than {MAX_KPSA_ID_LEN} bytes")]
    TooLong,
    /// Not UTF-8.
    #[error("invalid KpsaID: not UTF-8")]
    NotUtf8,
    /// Not `relative@fqdn`.
    #[error("invalid KpsaID: {0}")]
    Syntax(#[from] m2mtrust_crypto::KeyIdError),
}

/// Parses the raw `psk_identity` of a ClientKeyExchange.
pub fn kpsa_id_from_wire(bytes: &[u8]) -> Result<KpsaId, KpsaIdError> {
    if bytes.len() > MAX_KPSA_ID_LEN {
        return Err(KpsaIdError::TooLong);
    }
    let s = std::str::from_utf8(bytes).map_err(|_| KpsaIdError::NotUtf8)?;
    Ok(KpsaId::parse(s)?)
}

/// The Credential-ID `12-<KpsaID>` (TS-0003 §8.2.2.1 step 4, §10.4).
pub fn kpsa_credential_id(id: &KpsaId) -> String {
    m2mtrust_crypto::CredentialId::kpsa(id).to_string()
}

/// An RFC 1123 host name of one or more labels, no trailing dot.
pub(crate) fn is_fqdn(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What the receiving entity binds the security association to (TS-0003 §8.2.1, cases a–c), in
/// the canonical originator forms of `m2mtrust_model::Originator` (`/id-mn`, `Cabc`,
/// `/id-mn/Cabc`, `Sabc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// (a) Entity A is the CSE with this CSE-ID, e.g. `/id-mn`.
    Cse(String),
    /// (b) Entity A is the AE with this AE-ID, e.g. `Cabc`.
    Ae(String),
    /// (c) Entity A is an AE with one of these AE-IDs.
    AeList(Vec<String>),
    /// Not yet bound: the association is known only by its Credential-ID (§8.2.1 "all other
    /// cases"); registration may bind it later.
    Unbound,
}

impl Binding {
    /// The bound identifiers, as `PeerIdentity` carries them.
    pub fn bound_ids(&self) -> Vec<String> {
        match self {
            Self::Cse(id) | Self::Ae(id) => vec![id.clone()],
            Self::AeList(ids) => ids.clone(),
            Self::Unbound => Vec::new(),
        }
    }
}

/// How the peer authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// TLS-PSK with a Kpsa (§8.2.2.1).
    Psk,
    /// An X.509 certificate (§8.2.2.2).
    Certificate,
}

/// What a server needs to read identities out of client certificates (TS-0001 §6.5 public
/// domain names, TS-0003 §10.1.1.5/§10.1.1.7).
#[derive(Clone, Debug)]
pub struct IdentityRules {
    sp_domain: String,
    local_cse: CseId,
    in_cse: CseId,
}

impl IdentityRules {
    /// `sp_domain` is the M2M SP domain (`m2mtrust.example`), `local_cse` this CSE (AE-IDs
    /// registered here are bound in their short `Cabc` form), `in_cse` the SP's IN-CSE.
    pub fn new(sp_domain: &str, local_cse: CseId, in_cse: CseId) -> Result<Self, ConfigError> {
        let sp_domain = sp_domain.strip_prefix("//").unwrap_or(sp_domain);
        if !is_fqdn(sp_domain) {
            return Err(ConfigError::Invalid {
                what: "SP domain",
                why: format!("{sp_domain:?} is not a domain name"),
            });
        }
        Ok(Self {
            sp_domain: sp_domain.to_ascii_lowercase(),
            local_cse,
            in_cse,
        })
    }

    /// The SP domain, lower case.
    pub fn sp_domain(&self) -> &str {
        &self.sp_domain
    }

    /// TS-0001 §6.5: `<in-cse>.<sp>` names the IN-CSE, `<cse>.<in-cse>.<sp>` any other CSE.
    /// Returns the SP-relative CSE-ID.
    fn cse_from_dns(&self, name: &str) -> Option<CseId> {
        let lower = name.to_ascii_lowercase();
        let prefix_len = lower
            .strip_suffix(&self.sp_domain)?
            .strip_suffix('.')?
            .len();
        let prefix = name.get(..prefix_len)?;
        if !prefix.split('.').all(is_dns_label) {
            return None;
        }
        match prefix.split_once('.') {
            None if prefix.eq_ignore_ascii_case(self.in_cse.bare()) => Some(self.in_cse.clone()),
            Some((cse, middle))
                if middle.eq_ignore_ascii_case(self.in_cse.bare())
                    && !cse.eq_ignore_ascii_case(self.in_cse.bare()) =>
            {
                CseId::parse(cse).ok()
            }
            _ => None,
        }
    }

    /// The AE-ID certificate URI `https://<sp>/<cse>/<C-AE-ID>` or `https://<sp>/<S-AE-ID>`.
    /// Returns (Credential-ID value, canonical binding).
    fn ae_from_uri(&self, uri: &str) -> Option<(String, String)> {
        let rest = uri.strip_prefix("https://")?;
        let (host, path) = rest.split_once('/')?;
        if !host.eq_ignore_ascii_case(&self.sp_domain) {
            return None;
        }
        let ae_ok = |s: &str, first: u8| {
            s.len() > 1
                && s.as_bytes().first() == Some(&first)
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
        };
        match path.split_once('/') {
            None if ae_ok(path, b'S') => Some((path.to_string(), path.to_string())),
            Some((cse, ae)) if ae_ok(ae, b'C') && is_dns_label(cse) => {
                let cse = CseId::parse(cse).ok()?;
                let canonical = if cse == self.local_cse {
                    ae.to_string()
                } else {
                    format!("{cse}/{ae}")
                };
                Some((format!("{cse}/{ae}"), canonical))
            }
            _ => None,
        }
    }

    /// TS-0003 §8.2.2.2 step 3: the identity of a verified client certificate. Exactly one CSE-ID
    /// (dNSName) or AE-ID (URI) subjectAltName gives a binding; none, or more than one, leaves the
    /// certificate to be mapped by its public key identifier.
    pub(crate) fn certificate_identity(&self, cert: &X509Ref) -> CertIdentity {
        let mut found: Vec<(String, Binding)> = Vec::new();
        if let Some(names) = cert.subject_alt_names() {
            for name in &names {
                if let Some(dns) = name.dnsname() {
                    if let Some(cse) = self.cse_from_dns(dns) {
                        found.push((format!("32-{cse}"), Binding::Cse(cse.to_string())));
                    }
                } else if let Some(uri) = name.uri()
                    && let Some((value, canonical)) = self.ae_from_uri(uri)
                {
                    found.push((format!("33-{value}"), Binding::Ae(canonical)));
                }
            }
        }
        found.dedup();
        match found.as_slice() {
            [(credential_id, binding)] => CertIdentity {
                credential_id: credential_id.clone(),
                binding: Some(binding.clone()),
            },
            _ => CertIdentity {
                credential_id: public_key_identifier(cert)
                    .map(|ni| format!("30-{ni}"))
                    .unwrap_or_else(|| "30-unknown".into()),
                binding: None,
            },
        }
    }
}

/// The identity read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertIdentity {
    pub(crate) credential_id: String,
    /// `None`: the certificate names no CSE-ID/AE-ID; the caller maps the Credential-ID.
    pub(crate) binding: Option<Binding>,
}

/// The TS-0001 §6.5.1.1 public domain name of a CSE: `<in-cse>.<sp>` for the IN-CSE,
/// `<cse>.<in-cse>.<sp>` otherwise. CSE-ID certificates carry it as dNSName, and a client names
/// the server with it (SNI and host name check).
pub fn cse_public_domain_name(cse: &CseId, in_cse: &CseId, sp_domain: &str) -> String {
    let sp = sp_domain.strip_prefix("//").unwrap_or(sp_domain);
    if cse == in_cse {
        format!("{}.{sp}", in_cse.bare())
    } else {
        format!("{}.{}.{sp}", cse.bare(), in_cse.bare())
    }
}

/// TS-0003 §10.1.2 / RFC 6920 §2: `ni:///sha-256;<base64url(SHA-256(SubjectPublicKeyInfo DER))>`.
pub fn public_key_identifier(cert: &X509Ref) -> Option<String> {
    let spki = cert.public_key().ok()?.public_key_to_der().ok()?;
    let digest = hash(MessageDigest::sha256(), &spki).ok()?;
    let b64: String = base64::encode_block(&digest)
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    Some(format!("ni:///sha-256;{b64}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> IdentityRules {
        IdentityRules::new(
            "m2mtrust.example",
            CseId::parse("/id-in").unwrap(),
            CseId::parse("/id-in").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn kpsa_id_syntax() {
        let k = KpsaId::parse("dev-1.a_b@mef.m2mtrust.example").unwrap();
        assert_eq!(k.relative(), "dev-1.a_b");
        assert_eq!(k.issuer(), "mef.m2mtrust.example");
        assert_eq!(kpsa_credential_id(&k), "12-dev-1.a_b@mef.m2mtrust.example");
        for bad in [
            "",
            "nodomain",
            "@mef.example",
            "a b@mef.example",
            "a@b@mef.example",
            "a@",
            "a@-mef.example",
            "a@mef..example",
            "a@mef.example.",
            "a@mef_x.example",
            "Ä@mef.example",
        ] {
            assert!(KpsaId::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(kpsa_id_from_wire(format!("{}@m.example", "a".repeat(250)).as_bytes()).is_err());
        assert!(kpsa_id_from_wire(&[0xff, b'@', b'x']).is_err());
    }

    #[test]
    fn cse_public_domain_names() {
        let r = rules();
        assert_eq!(
            r.cse_from_dns("id-in.m2mtrust.example").unwrap().as_str(),
            "/id-in"
        );
        assert_eq!(
            r.cse_from_dns("id-mn.id-in.M2MTRUST.example")
                .unwrap()
                .as_str(),
            "/id-mn"
        );
        assert!(
            r.cse_from_dns("id-mn.m2mtrust.example").is_none(),
            "short form is the IN-CSE's"
        );
        assert!(r.cse_from_dns("id-mn.other.m2mtrust.example").is_none());
        assert!(r.cse_from_dns("a.b.id-in.m2mtrust.example").is_none());
        assert!(r.cse_from_dns("*.id-in.m2mtrust.example").is_none());
        assert!(r.cse_from_dns("m2mtrust.example").is_none());
        assert!(r.cse_from_dns("xm2mtrust.example").is_none());
        let mn = CseId::parse("/id-mn").unwrap();
        let inc = CseId::parse("/id-in").unwrap();
        assert_eq!(
            cse_public_domain_name(&mn, &inc, "m2mtrust.example"),
            "id-mn.id-in.m2mtrust.example"
        );
        assert_eq!(
            cse_public_domain_name(&inc, &inc, "//m2mtrust.example"),
            "id-in.m2mtrust.example"
        );
    }

    #[test]
    fn ae_uris() {
        let r = rules();
        assert_eq!(
            r.ae_from_uri("https://m2mtrust.example/id-in/Cabc"),
            Some(("/id-in/Cabc".into(), "Cabc".into()))
        );
        assert_eq!(
            r.ae_from_uri("https://m2mtrust.example/id-mn/Cabc"),
            Some(("/id-mn/Cabc".into(), "/id-mn/Cabc".into()))
        );
        assert_eq!(
            r.ae_from_uri("https://m2mtrust.example/Sapp"),
            Some(("Sapp".into(), "Sapp".into()))
        );
        for bad in [
            "//m2mtrust.example/Sapp",
            "http://m2mtrust.example/Sapp",
            "https://other.example/Sapp",
            "https://m2mtrust.example/Capp",
            "https://m2mtrust.example/id-in/Sapp",
            "https://m2mtrust.example/id-in/Cabc/x",
            "https://m2mtrust.example/id-in/Cabc?x",
            "https://m2mtrust.example:8443/Sapp",
            "https://m2mtrust.example/S",
        ] {
            assert_eq!(r.ae_from_uri(bad), None, "{bad} accepted");
        }
    }
}
