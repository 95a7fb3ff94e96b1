//! ESData credentials (TS-0003 §8.5.2.2.2, §8.5.2.2.4, §8.5.2.3.2), each bound to one JOSE
//! algorithm and one key identifier (`kid`).
//!
//! Symmetric keys come as [`SecretKey`]; asymmetric keys as PEM (PKCS#8 private keys,
//! SubjectPublicKeyInfo public keys, or an X.509 certificate whose public key is meant) or as a
//! JWK. A JWK's `kid` is the key identifier and its `use`/`key_ops`/`alg`, when present, must
//! allow the purpose.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::{JweDecrypter, JweEncrypter};
use josekit::jwk::Jwk;
use josekit::jws::{JwsSigner, JwsVerifier};

use super::{ContentEncryption, EsDataError, KeyManagementAlgorithm, SignatureAlgorithm};
use crate::secret::SecretKey;

fn invalid(e: impl fmt::Display) -> EsDataError {
    EsDataError::InvalidKey(e.to_string())
}

fn check_kid(kid: String) -> Result<String, EsDataError> {
    if kid.is_empty() {
        Err(invalid("empty key identifier"))
    } else {
        Ok(kid)
    }
}

fn parse_jwk(jwk: &str) -> Result<(Jwk, String), EsDataError> {
    let jwk = Jwk::from_bytes(jwk.as_bytes()).map_err(invalid)?;
    let kid = jwk
        .key_id()
        .map(str::to_owned)
        .ok_or_else(|| invalid("the JWK has no kid"))?;
    Ok((jwk, check_kid(kid)?))
}

/// The secret of an `oct` JWK, for the HMAC verification done here.
fn jwk_secret(jwk: &Jwk) -> Result<SecretKey, EsDataError> {
    if jwk.key_type() != "oct" {
        return Err(invalid("an HMAC key must be a JWK of kty oct"));
    }
    match jwk.parameter("k") {
        Some(serde_json::Value::String(k)) => URL_SAFE_NO_PAD
            .decode(k)
            .map(SecretKey::new)
            .map_err(|_| invalid("the JWK parameter k is not base64url")),
        _ => Err(invalid("the JWK has no parameter k")),
    }
}

/// Turns a certificate PEM into the PEM of its SubjectPublicKeyInfo; other PEM passes through.
fn public_key_pem(pem: &[u8]) -> Result<Vec<u8>, EsDataError> {
    if !pem
        .windows(b"BEGIN CERTIFICATE".len())
        .any(|w| w == b"BEGIN CERTIFICATE")
    {
        return Ok(pem.to_vec());
    }
    let cert = openssl::x509::X509::from_pem(pem).map_err(invalid)?;
    cert.public_key()
        .and_then(|k| k.public_key_to_pem())
        .map_err(invalid)
}

fn check_symmetric_len(alg: KeyManagementAlgorithm, key: &SecretKey) -> Result<(), EsDataError> {
    let ok = match alg {
        KeyManagementAlgorithm::Dir => ContentEncryption::for_key_len(key.len()).is_some(),
        KeyManagementAlgorithm::A128Kw => key.len() == 16,
        KeyManagementAlgorithm::A192Kw => key.len() == 24,
        KeyManagementAlgorithm::A256Kw => key.len() == 32,
        _ => return Err(invalid(format!("{alg} does not take a symmetric key"))),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "a {}-byte key does not fit {alg}",
            key.len()
        )))
    }
}

/// A credential to encrypt the CEK for one Target End-Point (or, with `dir`, to be the CEK).
pub struct EncryptionKey {
    kid: String,
    alg: KeyManagementAlgorithm,
    key_len: usize,
    inner: Box<dyn JweEncrypter>,
}

impl EncryptionKey {
    /// A provisioned or TEF symmetric key for `dir` (16, 24 or 32 bytes: the CEK of A128GCM,
    /// A192GCM or A256GCM) or for AES Key Wrap (the length the algorithm names).
    pub fn symmetric(
        kid: impl Into<String>,
        alg: KeyManagementAlgorithm,
        key: &SecretKey,
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        check_symmetric_len(alg, key)?;
        let bytes = key.expose_bytes();
        let inner: Box<dyn JweEncrypter> = match alg {
            KeyManagementAlgorithm::Dir => Box::new(
                josekit::jwe::Dir
                    .encrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            KeyManagementAlgorithm::A128Kw => Box::new(
                josekit::jwe::A128KW
                    .encrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            KeyManagementAlgorithm::A192Kw => Box::new(
                josekit::jwe::A192KW
                    .encrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            _ => Box::new(
                josekit::jwe::A256KW
                    .encrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
        };
        Ok(Self {
            kid,
            alg,
            key_len: key.len(),
            inner,
        })
    }

    /// A Target End-Point's public key (TS-0003 §8.5.2.2.4) for RSA-OAEP-256 or ECDH-ES+A*KW,
    /// as SubjectPublicKeyInfo PEM or as the PEM of the certificate that carries it. Binding the
    /// certificate to the Target (§8.5.2.2.4.1) is the caller's task.
    pub fn from_public_pem(
        kid: impl Into<String>,
        alg: KeyManagementAlgorithm,
        pem: &[u8],
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        let pem = public_key_pem(pem)?;
        let inner = asymmetric_encrypter(alg, |a| match a {
            Asym::Rsa => josekit::jwe::RSA_OAEP_256
                .encrypter_from_pem(&pem)
                .map(|e| Box::new(e) as Box<dyn JweEncrypter>),
            Asym::Ecdh(e) => e
                .encrypter_from_pem(&pem)
                .map(|e| Box::new(e) as Box<dyn JweEncrypter>),
        })?;
        Ok(Self {
            kid,
            alg,
            key_len: 0,
            inner,
        })
    }

    /// A key as a public (or `oct`) JWK with a `kid`.
    pub fn from_jwk(alg: KeyManagementAlgorithm, jwk: &str) -> Result<Self, EsDataError> {
        let (jwk, kid) = parse_jwk(jwk)?;
        if alg.is_symmetric() {
            return Self::symmetric(kid, alg, &jwk_secret(&jwk)?);
        }
        let inner = asymmetric_encrypter(alg, |a| match a {
            Asym::Rsa => josekit::jwe::RSA_OAEP_256
                .encrypter_from_jwk(&jwk)
                .map(|e| Box::new(e) as Box<dyn JweEncrypter>),
            Asym::Ecdh(e) => e
                .encrypter_from_jwk(&jwk)
                .map(|e| Box::new(e) as Box<dyn JweEncrypter>),
        })?;
        Ok(Self {
            kid,
            alg,
            key_len: 0,
            inner,
        })
    }

    /// The key identifier written as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key management algorithm the key is bound to.
    pub fn algorithm(&self) -> KeyManagementAlgorithm {
        self.alg
    }

    /// For `dir`, the length of the key (which must be the CEK length of `enc`); 0 otherwise.
    pub(super) fn direct_len(&self) -> usize {
        self.key_len
    }

    pub(super) fn encrypter(&self) -> &dyn JweEncrypter {
        &*self.inner
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A Target End-Point's credential to decrypt envelopes addressed to it.
pub struct DecryptionKey {
    kid: String,
    alg: KeyManagementAlgorithm,
    inner: Box<dyn JweDecrypter>,
}

impl DecryptionKey {
    /// A symmetric key for `dir` or AES Key Wrap (see [`EncryptionKey::symmetric`]).
    pub fn symmetric(
        kid: impl Into<String>,
        alg: KeyManagementAlgorithm,
        key: &SecretKey,
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        check_symmetric_len(alg, key)?;
        let bytes = key.expose_bytes();
        let inner: Box<dyn JweDecrypter> = match alg {
            KeyManagementAlgorithm::Dir => Box::new(
                josekit::jwe::Dir
                    .decrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            KeyManagementAlgorithm::A128Kw => Box::new(
                josekit::jwe::A128KW
                    .decrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            KeyManagementAlgorithm::A192Kw => Box::new(
                josekit::jwe::A192KW
                    .decrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
            _ => Box::new(
                josekit::jwe::A256KW
                    .decrypter_from_bytes(bytes)
                    .map_err(invalid)?,
            ),
        };
        Ok(Self { kid, alg, inner })
    }

    /// The Target's private key (PKCS#8 PEM, or traditional RSA/EC PEM) for RSA-OAEP-256 or
    /// ECDH-ES+A*KW.
    pub fn from_private_pem(
        kid: impl Into<String>,
        alg: KeyManagementAlgorithm,
        pem: &[u8],
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        let inner = asymmetric_decrypter(alg, |a| match a {
            Asym::Rsa => josekit::jwe::RSA_OAEP_256
                .decrypter_from_pem(pem)
                .map(|d| Box::new(d) as Box<dyn JweDecrypter>),
            Asym::Ecdh(e) => e
                .decrypter_from_pem(pem)
                .map(|d| Box::new(d) as Box<dyn JweDecrypter>),
        })?;
        Ok(Self { kid, alg, inner })
    }

    /// A key as a private (or `oct`) JWK with a `kid`.
    pub fn from_jwk(alg: KeyManagementAlgorithm, jwk: &str) -> Result<Self, EsDataError> {
        let (jwk, kid) = parse_jwk(jwk)?;
        if alg.is_symmetric() {
            return Self::symmetric(kid, alg, &jwk_secret(&jwk)?);
        }
        let inner = asymmetric_decrypter(alg, |a| match a {
            Asym::Rsa => josekit::jwe::RSA_OAEP_256
                .decrypter_from_jwk(&jwk)
                .map(|d| Box::new(d) as Box<dyn JweDecrypter>),
            Asym::Ecdh(e) => e
                .decrypter_from_jwk(&jwk)
                .map(|d| Box::new(d) as Box<dyn JweDecrypter>),
        })?;
        Ok(Self { kid, alg, inner })
    }

    /// The key identifier matched against `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key management algorithm the key is bound to.
    pub fn algorithm(&self) -> KeyManagementAlgorithm {
        self.alg
    }

    pub(super) fn decrypter(&self) -> &dyn JweDecrypter {
        &*self.inner
    }
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The asymmetric families of Table 8.5.3.2-3.
enum Asym {
    Rsa,
    Ecdh(josekit::jwe::alg::ecdh_es::EcdhEsJweAlgorithm),
}

fn asym(alg: KeyManagementAlgorithm) -> Result<Asym, EsDataError> {
    match alg {
        KeyManagementAlgorithm::RsaOaep256 => Ok(Asym::Rsa),
        KeyManagementAlgorithm::EcdhEsA128Kw => Ok(Asym::Ecdh(josekit::jwe::ECDH_ES_A128KW)),
        KeyManagementAlgorithm::EcdhEsA192Kw => Ok(Asym::Ecdh(josekit::jwe::ECDH_ES_A192KW)),
        KeyManagementAlgorithm::EcdhEsA256Kw => Ok(Asym::Ecdh(josekit::jwe::ECDH_ES_A256KW)),
        _ => Err(invalid(format!("{alg} takes a symmetric key"))),
    }
}

fn asymmetric_encrypter(
    alg: KeyManagementAlgorithm,
    build: impl FnOnce(Asym) -> Result<Box<dyn JweEncrypter>, josekit::JoseError>,
) -> Result<Box<dyn JweEncrypter>, EsDataError> {
    build(asym(alg)?).map_err(invalid)
}

fn asymmetric_decrypter(
    alg: KeyManagementAlgorithm,
    build: impl FnOnce(Asym) -> Result<Box<dyn JweDecrypter>, josekit::JoseError>,
) -> Result<Box<dyn JweDecrypter>, EsDataError> {
    build(asym(alg)?).map_err(invalid)
}

/// A Source End-Point's credential to sign (or, with HS*, to compute a MIC over) a payload.
pub struct SigningKey {
    kid: String,
    alg: SignatureAlgorithm,
    inner: Box<dyn JwsSigner>,
}

/// The josekit algorithm object behind a [`SignatureAlgorithm`].
enum JwsFamily {
    Hmac(josekit::jws::alg::hmac::HmacJwsAlgorithm),
    Rsa(josekit::jws::alg::rsassa::RsassaJwsAlgorithm),
    Ec(josekit::jws::alg::ecdsa::EcdsaJwsAlgorithm),
}

fn family(alg: SignatureAlgorithm) -> JwsFamily {
    use josekit::jws;
    match alg {
        SignatureAlgorithm::Hs256 => JwsFamily::Hmac(jws::HS256),
        SignatureAlgorithm::Hs384 => JwsFamily::Hmac(jws::HS384),
        SignatureAlgorithm::Hs512 => JwsFamily::Hmac(jws::HS512),
        SignatureAlgorithm::Rs256 => JwsFamily::Rsa(jws::RS256),
        SignatureAlgorithm::Rs384 => JwsFamily::Rsa(jws::RS384),
        SignatureAlgorithm::Rs512 => JwsFamily::Rsa(jws::RS512),
        SignatureAlgorithm::Es256 => JwsFamily::Ec(jws::ES256),
        SignatureAlgorithm::Es384 => JwsFamily::Ec(jws::ES384),
        SignatureAlgorithm::Es512 => JwsFamily::Ec(jws::ES512),
    }
}

/// HMAC keys must be at least as long as the hash output (RFC 7518 §3.2).
fn check_hmac_len(alg: SignatureAlgorithm, key: &SecretKey) -> Result<(), EsDataError> {
    let min = match alg {
        SignatureAlgorithm::Hs384 => 48,
        SignatureAlgorithm::Hs512 => 64,
        _ => 32,
    };
    if key.len() < min {
        return Err(invalid(format!(
            "{alg} needs a key of at least {min} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

impl SigningKey {
    /// A symmetric MIC key (HS256/384/512; TS-0003 §8.5.2.3 "MIC, provisioned symmetric key" or
    /// TEF key). The key must be at least as long as the hash output.
    pub fn hmac(
        kid: impl Into<String>,
        alg: SignatureAlgorithm,
        key: &SecretKey,
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        let JwsFamily::Hmac(h) = family(alg) else {
            return Err(invalid(format!("{alg} does not take a symmetric key")));
        };
        check_hmac_len(alg, key)?;
        let inner = Box::new(h.signer_from_bytes(key.expose_bytes()).map_err(invalid)?);
        Ok(Self { kid, alg, inner })
    }

    /// A Source End-Point's private key (PKCS#8 PEM, or traditional RSA/EC PEM) for RS* or
    /// ES*. RSA keys must have at least 2048 bits; the EC curve must be the algorithm's.
    pub fn from_private_pem(
        kid: impl Into<String>,
        alg: SignatureAlgorithm,
        pem: &[u8],
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        let inner: Box<dyn JwsSigner> = match family(alg) {
            JwsFamily::Hmac(_) => return Err(invalid(format!("{alg} takes a symmetric key"))),
            JwsFamily::Rsa(a) => Box::new(a.signer_from_pem(pem).map_err(invalid)?),
            JwsFamily::Ec(a) => Box::new(a.signer_from_pem(pem).map_err(invalid)?),
        };
        Ok(Self { kid, alg, inner })
    }

    /// A key as a private (or `oct`) JWK with a `kid`.
    pub fn from_jwk(alg: SignatureAlgorithm, jwk: &str) -> Result<Self, EsDataError> {
        let (jwk, kid) = parse_jwk(jwk)?;
        let inner: Box<dyn JwsSigner> = match family(alg) {
            JwsFamily::Hmac(_) => return Self::hmac(kid, alg, &jwk_secret(&jwk)?),
            JwsFamily::Rsa(a) => Box::new(a.signer_from_jwk(&jwk).map_err(invalid)?),
            JwsFamily::Ec(a) => Box::new(a.signer_from_jwk(&jwk).map_err(invalid)?),
        };
        Ok(Self { kid, alg, inner })
    }

    /// The key identifier written as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm the key is bound to.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    pub(super) fn sign(&self, input: &[u8]) -> Result<Vec<u8>, EsDataError> {
        self.inner
            .sign(input)
            .map_err(|e| EsDataError::Crypto(e.to_string()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A Target End-Point's credential to verify a signature or MIC.
pub struct VerificationKey {
    kid: String,
    alg: SignatureAlgorithm,
    inner: Verifier,
}

enum Verifier {
    /// HMAC is recomputed here and compared in constant time.
    Hmac(SecretKey),
    Public(Box<dyn JwsVerifier>),
}

impl VerificationKey {
    /// A symmetric MIC key (HS256/384/512).
    pub fn hmac(
        kid: impl Into<String>,
        alg: SignatureAlgorithm,
        key: &SecretKey,
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        if !alg.is_symmetric() {
            return Err(invalid(format!("{alg} does not take a symmetric key")));
        }
        check_hmac_len(alg, key)?;
        Ok(Self {
            kid,
            alg,
            inner: Verifier::Hmac(key.clone()),
        })
    }

    /// A Source End-Point's public key (TS-0003 §8.5.2.3.2) for RS* or ES*, as
    /// SubjectPublicKeyInfo PEM or as the PEM of the certificate that carries it. Binding the
    /// certificate to the Source (§8.5.2.3.2.1) is the caller's task.
    pub fn from_public_pem(
        kid: impl Into<String>,
        alg: SignatureAlgorithm,
        pem: &[u8],
    ) -> Result<Self, EsDataError> {
        let kid = check_kid(kid.into())?;
        let pem = public_key_pem(pem)?;
        let inner: Box<dyn JwsVerifier> = match family(alg) {
            JwsFamily::Hmac(_) => return Err(invalid(format!("{alg} takes a symmetric key"))),
            JwsFamily::Rsa(a) => Box::new(a.verifier_from_pem(&pem).map_err(invalid)?),
            JwsFamily::Ec(a) => Box::new(a.verifier_from_pem(&pem).map_err(invalid)?),
        };
        Ok(Self {
            kid,
            alg,
            inner: Verifier::Public(inner),
        })
    }

    /// A key as a public (or `oct`) JWK with a `kid`.
    pub fn from_jwk(alg: SignatureAlgorithm, jwk: &str) -> Result<Self, EsDataError> {
        let (jwk, kid) = parse_jwk(jwk)?;
        let inner: Box<dyn JwsVerifier> = match family(alg) {
            JwsFamily::Hmac(_) => return Self::hmac(kid, alg, &jwk_secret(&jwk)?),
            JwsFamily::Rsa(a) => Box::new(a.verifier_from_jwk(&jwk).map_err(invalid)?),
            JwsFamily::Ec(a) => Box::new(a.verifier_from_jwk(&jwk).map_err(invalid)?),
        };
        Ok(Self {
            kid,
            alg,
            inner: Verifier::Public(inner),
        })
    }

    /// The key identifier matched against `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm the key is bound to.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    /// Whether `signature` is valid for `input` under this key.
    pub(super) fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            Verifier::Hmac(key) => {
                let digest = match self.alg {
                    SignatureAlgorithm::Hs384 => openssl::hash::MessageDigest::sha384(),
                    SignatureAlgorithm::Hs512 => openssl::hash::MessageDigest::sha512(),
                    _ => openssl::hash::MessageDigest::sha256(),
                };
                let mac = openssl::pkey::PKey::hmac(key.expose_bytes())
                    .and_then(|pkey| {
                        let mut signer = openssl::sign::Signer::new(digest, &pkey)?;
                        signer.update(input)?;
                        signer.sign_to_vec()
                    })
                    .ok();
                mac.is_some_and(|mac| crate::secret::constant_time_eq(&mac, signature))
            }
            Verifier::Public(v) => v.verify(input, signature).is_ok(),
        }
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}
