//! The Token Issuer side: TS-0003 §7.3.2.6 "Creating a JWT".

use std::fmt;

use josekit::jws::JwsSigner;
use m2mtrust_crypto::{PrivateKeyPem, SecretKey};
use serde_json::json;

use crate::jose::b64_encode;
use crate::keys::ENC_A256GCM;
use crate::{EncryptionKey, SigningKey, TokenClaims, TokenError};

/// A Token Issuer (e.g. a DAS Server) that signs oneM2M JWTs as compact JWS.
///
/// `Debug` shows the issuer and the algorithm, never the key.
pub struct TokenIssuer {
    issuer: String,
    key: SigningKey,
    signer: Box<dyn JwsSigner>,
    public_key_pem: Option<String>,
}

impl TokenIssuer {
    /// An issuer signing with ES256 (ECDSA P-256 / SHA-256) from a PEM private key.
    pub fn es256(issuer: impl Into<String>, private_key_pem: &str) -> Result<Self, TokenError> {
        Self::new(
            issuer,
            SigningKey::Es256 {
                private_pem: PrivateKeyPem::new(private_key_pem.to_owned()),
            },
        )
    }

    /// An issuer signing with HS256 and a secret of at least 32 bytes shared with the verifiers.
    pub fn hs256(issuer: impl Into<String>, secret: &[u8]) -> Result<Self, TokenError> {
        Self::new(
            issuer,
            SigningKey::Hs256 {
                secret: SecretKey::from_slice(secret),
            },
        )
    }

    /// An issuer with an already wrapped signing key.
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> Result<Self, TokenError> {
        let signer = key.signer()?;
        let public_key_pem = key.public_key_pem()?;
        Ok(Self {
            issuer: issuer.into(),
            key,
            signer,
            public_key_pem,
        })
    }

    /// The same key under another issuer ID (e.g. one derived from the SP domain at start-up).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The issuer ID this issuer puts in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWS `alg` of the issued tokens.
    pub fn algorithm(&self) -> &'static str {
        self.key.algorithm()
    }

    /// The public key (SubjectPublicKeyInfo PEM) verifiers need, for ES256 issuers.
    pub fn public_key_pem(&self) -> Option<String> {
        self.public_key_pem.clone()
    }

    /// TS-0003 §7.3.2.6 "Creating a JWT": maps the claim set to JWT claims and signs it as a
    /// compact JWS with the header `{"alg":..,"typ":"JWT"}` (no `cty`, Signature-only class).
    ///
    /// `claims.issuer` must equal this issuer's ID, notBefore must precede notAfter and every
    /// permission must obey TS-0001 Table 9.6.39-3.
    pub fn issue(&self, claims: &TokenClaims) -> Result<String, TokenError> {
        // Step 1: the claim set, with the permissions in their JSON serialization.
        if claims.issuer != self.issuer {
            return Err(TokenError::InvalidClaims(format!(
                "claim iss {:?} is not this issuer {:?}",
                claims.issuer, self.issuer
            )));
        }
        claims.validate()?;
        // Step 2: the mapping of Table 7.3.2.6.2-1 is the serde form of TokenClaims.
        let payload = serde_json::to_vec(claims)
            .map_err(|e| TokenError::InvalidClaims(format!("claims do not serialize: {e}")))?;
        // Steps 3 and 4: the class (Signature-only) and algorithm are the key's; RFC 7519 JWS.
        let header = json!({ "alg": self.key.algorithm(), "typ": "JWT" });
        let header = serde_json::to_vec(&header)
            .map_err(|e| TokenError::Crypto(format!("header does not serialize: {e}")))?;
        let signing_input = format!("{}.{}", b64_encode(&header), b64_encode(&payload));
        let signature = self
            .signer
            .sign(signing_input.as_bytes())
            .map_err(|e| TokenError::Crypto(format!("signing failed: {e}")))?;
        Ok(format!("{signing_input}.{}", b64_encode(&signature)))
    }

    /// A Nested (sign-then-encrypt) oneM2M JWT: the JWS of [`TokenIssuer::issue`] inside a
    /// compact JWE with the header `{"alg":"A256KW"|"dir","enc":"A256GCM","typ":"JWT","cty":"JWT"}`
    /// (TS-0003 §7.3.2.6: both layers carry `typ`, only the JWE carries `cty`).
    pub fn issue_nested(
        &self,
        claims: &TokenClaims,
        key: &EncryptionKey,
    ) -> Result<String, TokenError> {
        let jws = self.issue(claims)?;
        let mut header = josekit::jwe::JweHeader::new();
        header.set_algorithm(key.algorithm());
        header.set_content_encryption(ENC_A256GCM);
        header.set_token_type("JWT");
        header.set_content_type("JWT");
        josekit::jwe::serialize_compact(jws.as_bytes(), &header, &*key.encrypter()?)
            .map_err(|e| TokenError::Crypto(format!("JWE encryption failed: {e}")))
    }
}

impl Clone for TokenIssuer {
    fn clone(&self) -> Self {
        Self {
            issuer: self.issuer.clone(),
            key: self.key.clone(),
            signer: self.signer.box_clone(),
            public_key_pem: self.public_key_pem.clone(),
        }
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.key.algorithm())
            .field("key", &"<redacted>")
            .finish()
    }
}
