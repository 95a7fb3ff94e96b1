//! The verifying CSE side: TS-0003 §7.3.2.6 "Validating a JWT" and the content checks of
//! §7.3.2.5.
//!
//! **Architecture Invariant:** the verifier does no I/O and never reads the clock; `now` is an
//! argument.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use crate::jose::{self, Compact};
use crate::{EncryptionKey, TokenClaims, TokenError, VerificationKey};

/// A Token Issuer a CSE trusts, "provided … in a secure manner" (TS-0003 §7.3.2.6 issuer
/// configuration). The permitted algorithms are those of `keys`: ES256 keys allow only ES256,
/// HS256 secrets only HS256. The unsecured class (`alg: none`) is never permitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The issuer ID, compared exactly with `iss`.
    pub issuer: String,
    /// The verification keys; any one that verifies is enough (key rollover).
    pub keys: Vec<VerificationKey>,
}

/// Verifies oneM2M JWTs of the configured issuers.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuers: HashMap<String, Vec<VerificationKey>>,
    leeway: TimeDelta,
    audience_wildcards: bool,
    accept_empty_audience: bool,
    decryption_keys: Vec<EncryptionKey>,
}

/// Only `iss`, read from the unverified payload to select keys.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: String,
}

impl TokenVerifier {
    /// A verifier trusting `issuers`, with no clock leeway, `/*` audience wildcards accepted and
    /// tokens without audience refused. Later entries for the same issuer add keys.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        let mut map: HashMap<String, Vec<VerificationKey>> = HashMap::new();
        for trusted in issuers {
            map.entry(trusted.issuer).or_default().extend(trusted.keys);
        }
        Self {
            issuers: map,
            leeway: TimeDelta::zero(),
            audience_wildcards: true,
            accept_empty_audience: false,
            decryption_keys: Vec::new(),
        }
    }

    /// Tolerated clock skew for `nbf` and `exp` (gap (b) 11); negative values count as zero.
    pub fn with_leeway(mut self, leeway: TimeDelta) -> Self {
        self.leeway = leeway.max(TimeDelta::zero());
        self
    }

    /// Whether an `aud` entry `P/*` matches the CSE-ID `P/x` for a single non-empty segment `x`
    /// (Indirect DA: "optionally including wildcards"). On by default; Direct DA deployments that
    /// want exact matching only turn it off.
    pub fn with_audience_wildcards(mut self, allowed: bool) -> Self {
        self.audience_wildcards = allowed;
        self
    }

    /// Whether a token without `aud` is accepted by every CSE (TS-0003 §7.3.2.5 checks the
    /// audience only "in case the audience data field is not empty"). Off by default (gap (b) 10).
    pub fn accept_empty_audience(mut self, accepted: bool) -> Self {
        self.accept_empty_audience = accepted;
        self
    }

    /// Enables Nested (sign-then-encrypt) tokens: their JWE layer is decrypted with the first of
    /// `keys` of the header's `alg` that succeeds, then the inner JWS is verified as usual.
    pub fn with_decryption_keys(mut self, keys: Vec<EncryptionKey>) -> Self {
        self.decryption_keys = keys;
        self
    }

    /// TS-0003 §7.3.2.6 "Validating a JWT" and the content validation of §7.3.2.5, for the CSE
    /// `audience` (its absolute CSE-ID) receiving the token from the Originator `holder` at `now`.
    ///
    /// Signature-only tokens (compact JWS) are accepted; Nested tokens (compact JWE holding such a
    /// JWS) only with [`TokenVerifier::with_decryption_keys`], otherwise and for Encryption-only
    /// tokens the result is [`TokenError::Unsupported`].
    pub fn verify(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenClaims, TokenError> {
        let result = self.verify_inner(jwt, audience, holder, now);
        if let Err(e) = &result {
            tracing::debug!(reason = e.reason(), error = %e, audience, holder, "oneM2M JWT refused");
        }
        result
    }

    fn verify_inner(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenClaims, TokenError> {
        // Step 1: the token conforms to m2m:dynAuthJWT.
        let decrypted;
        let jws = match jose::split(jwt)? {
            Compact::Jws(jws) => jws,
            Compact::Jwe { header, token } => {
                decrypted = self.decrypt_nested(&header, token)?;
                match jose::split(&decrypted)? {
                    Compact::Jws(jws) => jws,
                    Compact::Jwe { .. } => {
                        return Err(TokenError::Malformed(
                            "a nested oneM2M JWT holds a JWS, not another JWE".into(),
                        ));
                    }
                }
            }
        };
        let alg = jose::check_jws_header(&jws.header)?;

        // Step 2: security validation with the issuer's configured class, algorithms and keys.
        // The issuer is read from the unverified payload only to select the keys.
        let issuer = serde_json::from_slice::<UnverifiedIssuer>(&jws.payload)
            .map_err(|e| TokenError::InvalidClaims(format!("no string iss claim: {e}")))?
            .iss;
        if alg == "none" {
            return Err(TokenError::AlgorithmNotAllowed {
                issuer,
                alg: alg.to_owned(),
            });
        }
        let keys = self
            .issuers
            .get(&issuer)
            .ok_or_else(|| TokenError::UnknownIssuer(issuer.clone()))?;
        let mut candidates = keys.iter().filter(|k| k.algorithm() == alg).peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::AlgorithmNotAllowed {
                issuer,
                alg: alg.to_owned(),
            });
        }
        let mut verified = false;
        for key in candidates {
            if key.verify(jws.signing_input.as_bytes(), &jws.signature)? {
                verified = true;
                break;
            }
        }
        if !verified {
            return Err(TokenError::BadSignature);
        }

        // Step 3: reverse mapping of the claims to a token claim set.
        let claims: TokenClaims = serde_json::from_slice(&jws.payload)
            .map_err(|e| TokenError::InvalidClaims(e.to_string()))?;
        claims.validate()?;

        // Step 4: content validation per §7.3.2.5 (the issuer was checked above).
        if claims.holder != holder {
            return Err(TokenError::WrongHolder {
                expected: holder.to_owned(),
                holder: claims.holder,
            });
        }
        if claims.not_before > now + self.leeway {
            return Err(TokenError::NotYetValid {
                not_before: claims.not_before,
                now,
            });
        }
        if claims.not_after <= now - self.leeway {
            return Err(TokenError::Expired {
                not_after: claims.not_after,
                now,
            });
        }
        if !self.audience_matches(&claims.audience, audience) {
            return Err(TokenError::WrongAudience {
                expected: audience.to_owned(),
                audience: claims.audience,
            });
        }
        // Step 5 (permissions) is the caller's: they depend on the request and resource tree.
        Ok(claims)
    }

    /// The JWE layer of a Nested JWT: header rules, then authenticated decryption.
    fn decrypt_nested(
        &self,
        header: &serde_json::Map<String, serde_json::Value>,
        token: &str,
    ) -> Result<String, TokenError> {
        if self.decryption_keys.is_empty() {
            return Err(TokenError::Unsupported(
                "JWE oneM2M JWTs need a configured decryption key".into(),
            ));
        }
        let alg = jose::check_nested_jwe_header(header)?;
        check_encrypted_key(token, alg)?;
        for key in self.decryption_keys.iter().filter(|k| k.algorithm() == alg) {
            if let Ok((payload, _)) = josekit::jwe::deserialize_compact(token, &*key.decrypter()?) {
                return String::from_utf8(payload)
                    .map_err(|_| TokenError::Malformed("nested JWT payload is not UTF-8".into()));
            }
        }
        // No key of that algorithm authenticates the ciphertext: an integrity failure.
        Err(TokenError::BadSignature)
    }
}

/// The JWE Encrypted Key has the shape `alg` gives it before a JOSE library reads it: empty for
/// `dir`; for `A256KW` a wrapped 256-bit key, 40 octets (RFC 3394: the key plus 8). Other
/// lengths are refused here (the unwrap of some libraries panics on fewer than 8 octets).
fn check_encrypted_key(token: &str, alg: &str) -> Result<(), TokenError> {
    use base64::Engine;
    let encoded = token.split('.').nth(1).unwrap_or_default();
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed("JWE encrypted key is not base64url".into()))?;
    let expected = if alg == crate::ALG_DIR { 0 } else { 40 };
    if key.len() != expected {
        return Err(TokenError::Malformed(format!(
            "JWE encrypted key of {} octets; {alg} needs {expected}",
            key.len()
        )));
    }
    Ok(())
}

impl TokenVerifier {
    fn audience_matches(&self, token_audience: &[String], cse_id: &str) -> bool {
        if token_audience.is_empty() {
            return self.accept_empty_audience;
        }
        token_audience.iter().any(|entry| {
            entry == cse_id || (self.audience_wildcards && wildcard_matches(entry, cse_id))
        })
    }
}

/// `P/*` matches `P/x` where `x` is one non-empty segment without `/` or `*`, and `P` is an
/// SP-ID or longer (`//fqdn`), without `*` itself. Nothing else is a wildcard.
fn wildcard_matches(pattern: &str, cse_id: &str) -> bool {
    let Some(prefix) = pattern.strip_suffix("/*") else {
        return false;
    };
    let Some(sp) = prefix.strip_prefix("//") else {
        return false;
    };
    if sp.is_empty() || prefix.contains('*') {
        return false;
    }
    cse_id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|segment| !segment.is_empty() && !segment.contains(['/', '*']))
}
