//! Signing and verification keys for the JWS classes this crate supports (ES256, HS256).
//!
//! The permitted algorithms of a Token Issuer (TS-0003 §7.3.2.6 issuer configuration) are implied
//! by its key types: an ES256 public key permits only ES256, an HS256 secret only HS256. This is
//! what rules out algorithm confusion (an HS256 token keyed with the issuer's public key).

use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::{ES256, HS256, JwsSigner, JwsVerifier};
use m2mtrust_crypto::{PrivateKeyPem, SecretKey};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;

use crate::TokenError;

/// The smallest HS256 key RFC 7518 §3.2 allows: the hash output size, 256 bits.
pub const HS256_MIN_KEY_LEN: usize = 32;

/// JWS `alg` name of ECDSA P-256 with SHA-256.
pub const ALG_ES256: &str = "ES256";
/// JWS `alg` name of HMAC with SHA-256.
pub const ALG_HS256: &str = "HS256";

/// The key a Token Issuer signs with. `Debug` prints `<redacted>` for the secret parts.
#[derive(Debug, Clone)]
pub enum SigningKey {
    /// ECDSA P-256 / SHA-256 (JWS `ES256`).
    Es256 {
        /// The private key, PEM (PKCS#8 or SEC1 `EC PRIVATE KEY`).
        private_pem: PrivateKeyPem,
    },
    /// HMAC-SHA-256 (JWS `HS256`) with a secret shared with the verifying CSEs.
    Hs256 {
        /// The shared secret, at least [`HS256_MIN_KEY_LEN`] bytes.
        secret: SecretKey,
    },
}

impl SigningKey {
    /// The JWS `alg` this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Es256 { .. } => ALG_ES256,
            Self::Hs256 { .. } => ALG_HS256,
        }
    }

    /// Loads the key into a josekit signer (checking the curve and the secret length).
    pub(crate) fn signer(&self) -> Result<Box<dyn JwsSigner>, TokenError> {
        match self {
            Self::Es256 { private_pem } => ES256
                .signer_from_pem(private_pem.expose_pem().as_bytes())
                .map(|s| Box::new(s) as Box<dyn JwsSigner>)
                .map_err(|e| TokenError::Crypto(format!("ES256 private key: {e}"))),
            Self::Hs256 { secret } => {
                check_hs256_len(secret)?;
                HS256
                    .signer_from_bytes(secret.expose_bytes())
                    .map(|s| Box::new(s) as Box<dyn JwsSigner>)
                    .map_err(|e| TokenError::Crypto(format!("HS256 secret: {e}")))
            }
        }
    }

    /// The PEM (SubjectPublicKeyInfo) of the public key, for ES256 keys.
    pub(crate) fn public_key_pem(&self) -> Result<Option<String>, TokenError> {
        match self {
            Self::Es256 { private_pem } => {
                let pair = ES256
                    .key_pair_from_pem(private_pem.expose_pem().as_bytes())
                    .map_err(|e| TokenError::Crypto(format!("ES256 private key: {e}")))?;
                String::from_utf8(pair.to_pem_public_key())
                    .map(Some)
                    .map_err(|e| TokenError::Crypto(format!("public key PEM: {e}")))
            }
            Self::Hs256 { .. } => Ok(None),
        }
    }
}

/// A key a CSE verifies a Token Issuer's JWTs with. `Debug` prints `<redacted>` for secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationKey {
    /// An ES256 (ECDSA P-256) public key; permits only `alg: ES256`.
    Es256 {
        /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
        public_pem: String,
    },
    /// An HS256 shared secret; permits only `alg: HS256`.
    Hs256 {
        /// The shared secret, at least [`HS256_MIN_KEY_LEN`] bytes.
        secret: SecretKey,
    },
}

impl VerificationKey {
    /// An ES256 key from a public key PEM, checked to be a P-256 key.
    pub fn es256_public_pem(public_pem: &str) -> Result<Self, TokenError> {
        let key = Self::Es256 {
            public_pem: public_pem.to_owned(),
        };
        key.verifier()?;
        Ok(key)
    }

    /// An ES256 key from a public JWK (`{"kty":"EC","crv":"P-256","x":..,"y":..}`).
    pub fn es256_jwk(jwk_json: &str) -> Result<Self, TokenError> {
        let jwk = Jwk::from_bytes(jwk_json.as_bytes())
            .map_err(|e| TokenError::Crypto(format!("ES256 JWK: {e}")))?;
        if jwk.key_type() != "EC" || jwk.curve() != Some(EcCurve::P256.name()) {
            return Err(TokenError::Crypto(
                "ES256 JWK must be kty EC, crv P-256".into(),
            ));
        }
        let coordinate = |name: &str| -> Result<BigNum, TokenError> {
            let text = jwk
                .parameter(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| TokenError::Crypto(format!("ES256 JWK lacks {name}")))?;
            let bytes = crate::jose::b64_decode(text)
                .map_err(|_| TokenError::Crypto(format!("ES256 JWK {name} is not base64url")))?;
            BigNum::from_slice(&bytes).map_err(|e| TokenError::Crypto(e.to_string()))
        };
        let (x, y) = (coordinate("x")?, coordinate("y")?);
        let pem = (|| {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y)?;
            key.check_key()?;
            key.public_key_to_pem()
        })()
        .map_err(|e| TokenError::Crypto(format!("ES256 JWK: {e}")))?;
        let pem = String::from_utf8(pem).map_err(|e| TokenError::Crypto(e.to_string()))?;
        Self::es256_public_pem(&pem)
    }

    /// An HS256 key from a shared secret of at least [`HS256_MIN_KEY_LEN`] bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, TokenError> {
        let secret = SecretKey::from_slice(secret);
        check_hs256_len(&secret)?;
        Ok(Self::Hs256 { secret })
    }

    /// The only JWS `alg` this key permits.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Es256 { .. } => ALG_ES256,
            Self::Hs256 { .. } => ALG_HS256,
        }
    }

    /// Checks `signature` over `signing_input`. HMACs are compared in constant time.
    pub(crate) fn verify(
        &self,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, TokenError> {
        match self {
            Self::Es256 { .. } => Ok(self.verifier()?.verify(signing_input, signature).is_ok()),
            Self::Hs256 { secret } => {
                check_hs256_len(secret)?;
                // josekit's HMAC verifier compares with `!=`; recompute and compare in constant time.
                let signer = HS256
                    .signer_from_bytes(secret.expose_bytes())
                    .map_err(|e| TokenError::Crypto(format!("HS256 secret: {e}")))?;
                let expected = signer
                    .sign(signing_input)
                    .map_err(|e| TokenError::Crypto(format!("HS256: {e}")))?;
                Ok(m2mtrust_crypto::secret::constant_time_eq(
                    &expected, signature,
                ))
            }
        }
    }

    fn verifier(&self) -> Result<Box<dyn JwsVerifier>, TokenError> {
        match self {
            Self::Es256 { public_pem } => ES256
                .verifier_from_pem(public_pem.as_bytes())
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>)
                .map_err(|e| TokenError::Crypto(format!("ES256 public key: {e}"))),
            Self::Hs256 { secret } => HS256
                .verifier_from_bytes(secret.expose_bytes())
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>)
                .map_err(|e| TokenError::Crypto(format!("HS256 secret: {e}"))),
        }
    }
}

fn check_hs256_len(secret: &SecretKey) -> Result<(), TokenError> {
    if secret.len() < HS256_MIN_KEY_LEN {
        return Err(TokenError::Crypto(format!(
            "HS256 secret has {} bytes, at least {HS256_MIN_KEY_LEN} are required",
            secret.len()
        )));
    }
    Ok(())
}

/// JWE `alg` name of AES-256 Key Wrap.
pub const ALG_A256KW: &str = "A256KW";
/// JWE `alg` name of direct use of a shared content encryption key.
pub const ALG_DIR: &str = "dir";
/// The only JWE `enc` supported: AES-256-GCM.
pub const ENC_A256GCM: &str = "A256GCM";

/// A symmetric key of the JWE layer of a nested (sign-then-encrypt) oneM2M JWT, shared between
/// the Token Issuer and the verifying CSE. Content encryption is always `A256GCM`.
/// `Debug` prints `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionKey {
    /// AES-256 Key Wrap (`"alg":"A256KW"`) of a fresh content key, with a 32-byte key-encryption key.
    A256Kw {
        /// The 32-byte key-encryption key.
        kek: SecretKey,
    },
    /// Direct encryption (`"alg":"dir"`) with a 32-byte content encryption key.
    Dir {
        /// The 32-byte content encryption key.
        cek: SecretKey,
    },
}

impl EncryptionKey {
    /// An A256KW key-encryption key (exactly 32 bytes).
    pub fn a256kw(kek: &[u8]) -> Result<Self, TokenError> {
        check_len32(kek)?;
        Ok(Self::A256Kw {
            kek: SecretKey::from_slice(kek),
        })
    }

    /// A `dir` A256GCM content encryption key (exactly 32 bytes).
    pub fn dir(cek: &[u8]) -> Result<Self, TokenError> {
        check_len32(cek)?;
        Ok(Self::Dir {
            cek: SecretKey::from_slice(cek),
        })
    }

    /// The JWE `alg` of this key.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::A256Kw { .. } => ALG_A256KW,
            Self::Dir { .. } => ALG_DIR,
        }
    }

    pub(crate) fn encrypter(&self) -> Result<Box<dyn josekit::jwe::JweEncrypter>, TokenError> {
        let result = match self {
            Self::A256Kw { kek } => {
                check_len32(kek.expose_bytes())?;
                josekit::jwe::A256KW
                    .encrypter_from_bytes(kek.expose_bytes())
                    .map(|e| Box::new(e) as Box<dyn josekit::jwe::JweEncrypter>)
            }
            Self::Dir { cek } => {
                check_len32(cek.expose_bytes())?;
                josekit::jwe::Dir
                    .encrypter_from_bytes(cek.expose_bytes())
                    .map(|e| Box::new(e) as Box<dyn josekit::jwe::JweEncrypter>)
            }
        };
        result.map_err(|e| TokenError::Crypto(format!("JWE key: {e}")))
    }

    pub(crate) fn decrypter(&self) -> Result<Box<dyn josekit::jwe::JweDecrypter>, TokenError> {
        let result = match self {
            Self::A256Kw { kek } => {
                check_len32(kek.expose_bytes())?;
                josekit::jwe::A256KW
                    .decrypter_from_bytes(kek.expose_bytes())
                    .map(|d| Box::new(d) as Box<dyn josekit::jwe::JweDecrypter>)
            }
            Self::Dir { cek } => {
                check_len32(cek.expose_bytes())?;
                josekit::jwe::Dir
                    .decrypter_from_bytes(cek.expose_bytes())
                    .map(|d| Box::new(d) as Box<dyn josekit::jwe::JweDecrypter>)
            }
        };
        result.map_err(|e| TokenError::Crypto(format!("JWE key: {e}")))
    }
}

fn check_len32(key: &[u8]) -> Result<(), TokenError> {
    if key.len() != 32 {
        return Err(TokenError::Crypto(format!(
            "A256KW/dir A256GCM keys have 32 bytes, this one has {}",
            key.len()
        )));
    }
    Ok(())
}
