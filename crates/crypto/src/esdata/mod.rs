//! TS-0003 §8.5: End-to-End Security of Data (ESData) with JOSE.
//!
//! - Encryption-only (§8.5.2.2, §8.5.3.2): JWE with the `alg` values of Table 8.5.3.2-3 and the
//!   `enc` values of Table 8.5.3.2-4, in the Compact, flattened JSON and general JSON
//!   serializations ([`EsData::encrypt`], [`EsData::decrypt`]).
//! - Signature-only (§8.5.2.3, §8.5.3.3): JWS with the `alg` values of Table 8.5.3.3-2
//!   ([`EsData::sign`], [`EsData::verify`]); several signatures need the general JSON form.
//! - Nested sign-then-encrypt (§8.5.2.4, §8.5.3.4): a JWS made with certificate (RSA or ECDSA)
//!   keys is the plaintext of a JWE ([`EsData::sign_then_encrypt`],
//!   [`EsData::decrypt_then_verify`]).
//!
//! Every key is bound to one algorithm when it is built ([`EncryptionKey`], [`DecryptionKey`],
//! [`SigningKey`], [`VerificationKey`]); a receiver only uses a key for a header whose `alg`
//! equals the key's algorithm, so an envelope cannot switch a key to another algorithm. Anything
//! outside the tables (`none`, plain `ECDH-ES`, `RSA1_5`, `RSA-OAEP`, `PS256`, CBC-HMAC content
//! encryption, `zip`, `crit`, `b64`) is refused. Key management, CEK recovery and signatures are
//! josekit's (on OpenSSL); envelopes are parsed here, AES-GCM content decryption uses OpenSSL
//! directly, and HMAC values are compared here in constant time.
//!
//! "The present document does not address transporting ESData Envelopes" (§8.5.2.1): the
//! functions take and return the envelope text only.

mod jwe;
mod jws;
mod keys;

use std::fmt;

pub use jwe::{Decrypted, JweOptions};
pub use jws::{Verified, VerifiedSigner};
pub use keys::{DecryptionKey, EncryptionKey, SigningKey, VerificationKey};

/// The three serializations of TS-0003 §8.5.3.1 for JOSE envelopes (RFC 7515 §7, RFC 7516 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serialization {
    /// URL-safe Compact Serialization (`m2m:e2eCompactJWE` / `m2m:e2eCompactJWS`): one
    /// recipient or signature.
    Compact,
    /// Flattened JWE/JWS JSON Serialization: one recipient or signature.
    FlattenedJson,
    /// General JWE/JWS JSON Serialization: one or more recipients or signatures.
    GeneralJson,
}

/// Defines a wire enumeration of JOSE algorithm names with `name`/`from_name`.
macro_rules! jose_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of the TS-0003 table.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The JOSE name of the algorithm.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The algorithm with this JOSE name, if it is in the TS-0003 table.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

jose_names! {
    /// JWE key management algorithms, TS-0003 Table 8.5.3.2-3. Plain `ECDH-ES` (direct key
    /// agreement) is not in the table and so is not offered.
    KeyManagementAlgorithm {
        /// Direct Encryption Mode: the symmetric key is the CEK (RFC 7518 §4.5).
        Dir = "dir",
        /// AES Key Wrap with a 128-bit key (RFC 7518 §4.4).
        A128Kw = "A128KW",
        /// AES Key Wrap with a 192-bit key.
        A192Kw = "A192KW",
        /// AES Key Wrap with a 256-bit key.
        A256Kw = "A256KW",
        /// RSAES-OAEP with SHA-256 and MGF1 with SHA-256 (RFC 7518 §4.3).
        RsaOaep256 = "RSA-OAEP-256",
        /// ECDH-ES with the Concat KDF, then AES Key Wrap with a 128-bit key (RFC 7518 §4.6).
        EcdhEsA128Kw = "ECDH-ES+A128KW",
        /// ECDH-ES, then AES Key Wrap with a 192-bit key.
        EcdhEsA192Kw = "ECDH-ES+A192KW",
        /// ECDH-ES, then AES Key Wrap with a 256-bit key.
        EcdhEsA256Kw = "ECDH-ES+A256KW",
    }
}

jose_names! {
    /// JWE content encryption algorithms, TS-0003 Table 8.5.3.2-4 (also the `enc` options of an
    /// ESPrim Object, §8.4.3.2).
    ContentEncryption {
        /// AES-GCM with a 128-bit key.
        A128Gcm = "A128GCM",
        /// AES-GCM with a 192-bit key.
        A192Gcm = "A192GCM",
        /// AES-GCM with a 256-bit key.
        A256Gcm = "A256GCM",
    }
}

jose_names! {
    /// JWS algorithms, TS-0003 Table 8.5.3.3-2 (ES512 is P-521 with SHA-512; RS* are
    /// RSASSA-PKCS1-v1_5).
    SignatureAlgorithm {
        /// HMAC with SHA-256 (a MIC with a symmetric key).
        Hs256 = "HS256",
        /// HMAC with SHA-384.
        Hs384 = "HS384",
        /// HMAC with SHA-512.
        Hs512 = "HS512",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        Rs256 = "RS256",
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        Rs384 = "RS384",
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        Rs512 = "RS512",
        /// ECDSA on P-256 with SHA-256.
        Es256 = "ES256",
        /// ECDSA on P-384 with SHA-384.
        Es384 = "ES384",
        /// ECDSA on P-521 with SHA-512.
        Es512 = "ES512",
    }
}

impl KeyManagementAlgorithm {
    /// Whether the key is a symmetric secret (`dir` and AES Key Wrap).
    pub fn is_symmetric(self) -> bool {
        matches!(self, Self::Dir | Self::A128Kw | Self::A192Kw | Self::A256Kw)
    }
}

impl ContentEncryption {
    /// Length of the content encryption key in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::A128Gcm => 16,
            Self::A192Gcm => 24,
            Self::A256Gcm => 32,
        }
    }

    /// The `enc` a key of `len` bytes is the CEK for in Direct Encryption Mode.
    pub fn for_key_len(len: usize) -> Option<Self> {
        match len {
            16 => Some(Self::A128Gcm),
            24 => Some(Self::A192Gcm),
            32 => Some(Self::A256Gcm),
            _ => None,
        }
    }
}

impl SignatureAlgorithm {
    /// Whether this is a MIC with a symmetric key (HS*) rather than a signature with a
    /// certificate's key pair; TS-0003 §8.5.3.4 allows only the latter inside a nested envelope.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Self::Hs256 | Self::Hs384 | Self::Hs512)
    }
}

/// Why an ESData envelope could not be produced or was refused.
///
/// [`EsDataError::reason`] gives a stable short code for audit logs. TS-0003 defines no
/// Response Status Codes for ESData; the caller decides what its peer sees.
#[derive(Debug, thiserror::Error)]
pub enum EsDataError {
    /// The envelope is not a JWE/JWS in one of the three serializations: wrong number of parts,
    /// bad base64url, bad JSON, missing or mistyped members, a header parameter in two places.
    #[error("malformed ESData envelope: {0}")]
    Malformed(String),
    /// An `alg` or `enc` outside the TS-0003 tables (for example `none`, `ECDH-ES`, `RSA1_5`,
    /// `A128CBC-HS256`).
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// A header parameter this profile refuses: `crit`, `zip` (JWE) or `b64` (JWS).
    #[error("header parameter {0:?} is not supported")]
    UnsupportedHeader(&'static str),
    /// No configured key has the header's `kid` (when present) and `alg`.
    #[error("no configured key for kid {kid:?} and algorithm {alg:?}")]
    NoMatchingKey {
        /// The `kid` of the header, if any.
        kid: Option<String>,
        /// The `alg` of the header.
        alg: String,
    },
    /// Decryption with the selected key failed: the key unwrap check or the AES-GCM tag does not
    /// verify, or the key does not fit the header.
    #[error("decryption failed with key {kid:?}")]
    DecryptionFailed {
        /// The identifier of the key that was tried.
        kid: String,
    },
    /// A signature made by a configured key does not verify.
    #[error("signature does not verify with key {kid:?}")]
    BadSignature {
        /// The identifier of the key whose signature does not verify.
        kid: String,
    },
    /// A key could not be built (wrong length for the algorithm, unreadable PEM/JWK, an RSA key
    /// shorter than 2048 bits, a JWK whose `use`/`alg` forbids the purpose).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The request cannot be served as asked: no recipient or signer, several with the Compact
    /// or flattened serialization, `dir` with more than one recipient (TS-0003 §8.5.2.2.1), or a
    /// `dir` key whose length does not fit `enc`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The outer JWE of a nested envelope does not declare a JOSE payload in `cty`.
    #[error("not a nested envelope (cty {0:?})")]
    NotNested(Option<String>),
    /// An HMAC key or HS* signature where TS-0003 §8.5.3.4 requires a certificate signature.
    #[error("nested envelopes take RSA or ECDSA signatures only")]
    SymmetricSignatureInNested,
    /// The cryptographic library failed while producing an envelope.
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

impl EsDataError {
    /// A stable short code for audit logs (`reason=...`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnsupportedHeader(_) => "unsupported_header",
            Self::NoMatchingKey { .. } => "no_matching_key",
            Self::DecryptionFailed { .. } => "decryption_failed",
            Self::BadSignature { .. } => "bad_signature",
            Self::InvalidKey(_) => "invalid_key",
            Self::InvalidRequest(_) => "invalid_request",
            Self::NotNested(_) => "not_nested",
            Self::SymmetricSignatureInNested => "symmetric_signature_in_nested",
            Self::Crypto(_) => "crypto",
        }
    }
}

/// The ESData processor: holds the JOSE configuration restricted to the TS-0003 algorithms.
///
/// It has no state besides that configuration; one value can serve every thread.
#[derive(Debug, Clone)]
pub struct EsData {
    jwe: josekit::jwe::JweContext,
}

impl Default for EsData {
    fn default() -> Self {
        Self::new()
    }
}

impl EsData {
    /// A processor for the algorithms of TS-0003 §8.5.3.
    pub fn new() -> Self {
        let mut jwe = josekit::jwe::JweContext::new();
        // Only the AES-GCM content encryptions of Table 8.5.3.2-4, and no compression, when
        // producing envelopes; received envelopes are parsed and checked here instead.
        for name in ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"] {
            jwe.remove_content_encryption(name);
        }
        jwe.remove_compression("DEF");
        Self { jwe }
    }

    /// TS-0003 §8.5.2.4 / §8.5.3.4 nested sign-then-encrypt: signs `payload` with `signers`
    /// (RSA or ECDSA keys only) in the `inner` serialization, then encrypts that JWS for
    /// `recipients` with `options`. The JWE's `cty` is `JOSE` for a Compact inner JWS and
    /// `JOSE+JSON` for a JSON one (RFC 7515 §4.1.10, RFC 7516 §4.1.12).
    pub fn sign_then_encrypt(
        &self,
        payload: &[u8],
        signers: &[&SigningKey],
        inner: Serialization,
        recipients: &[&EncryptionKey],
        options: &JweOptions,
    ) -> Result<String, EsDataError> {
        if signers.iter().any(|s| s.algorithm().is_symmetric()) {
            return Err(EsDataError::SymmetricSignatureInNested);
        }
        let jws = self.sign(payload, signers, inner)?;
        let cty = match inner {
            Serialization::Compact => "JOSE",
            Serialization::FlattenedJson | Serialization::GeneralJson => "JOSE+JSON",
        };
        let outer = JweOptions {
            content_type: Some(cty.to_owned()),
            ..options.clone()
        };
        self.encrypt(jws.as_bytes(), recipients, &outer)
    }

    /// Decrypts a nested envelope with `decryption_keys`, checks that its `cty` declares a JOSE
    /// payload (`JOSE`, `JOSE+JSON` or `JWT`, with or without `application/`), then verifies the
    /// inner JWS with the RSA and ECDSA keys among `verification_keys`. An inner HS* signature is
    /// refused with [`EsDataError::SymmetricSignatureInNested`].
    pub fn decrypt_then_verify(
        &self,
        envelope: &str,
        decryption_keys: &[&DecryptionKey],
        verification_keys: &[&VerificationKey],
    ) -> Result<(Decrypted, Verified), EsDataError> {
        let decrypted = self.decrypt(envelope, decryption_keys)?;
        let cty = decrypted.content_type.as_deref().map(|c| {
            let lower = c.to_ascii_lowercase();
            lower
                .strip_prefix("application/")
                .map(str::to_owned)
                .unwrap_or(lower)
        });
        if !matches!(cty.as_deref(), Some("jose" | "jose+json" | "jwt")) {
            return Err(EsDataError::NotNested(decrypted.content_type.clone()));
        }
        let inner = std::str::from_utf8(&decrypted.payload)
            .map_err(|_| EsDataError::Malformed("inner JWS is not UTF-8".into()))?;
        let verified = jws::verify(inner, verification_keys, true)?;
        Ok((decrypted, verified))
    }
}
