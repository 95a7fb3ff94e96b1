//! Dynamic Authorization (TS-0003 §7.3): oneM2M tokens.
//!
//! This crate issues and verifies the oneM2M JWT profile (TS-0003 §7.3.2.6) of the token
//! structure of §7.3.2.4, with the content validation of §7.3.2.5:
//!
//! - [`TokenClaims`] is `m2m:tokenClaimSet` in its JWT form (Table 7.3.2.6.2-1);
//! - [`TokenIssuer`] signs claim sets as compact JWS (`ES256` or `HS256`, `"typ":"JWT"`);
//! - [`TokenVerifier`] checks a token against the configured [`TrustedIssuer`]s, the verifying
//!   CSE (audience), the Originator (holder) and a caller-supplied `now`.
//!
//! Nested (sign-then-encrypt) tokens are supported with `A256KW` or `dir` + `A256GCM` and a key
//! configured by [`TokenVerifier::with_decryption_keys`]; Encryption-only tokens (a JWE whose
//! payload is the claim set) are refused as [`TokenError::Unsupported`], as is any JWE when no
//! decryption key is configured. Evaluating the permissions against a request (§7.3.2.5 step 3)
//! is left to the CSE.
//!
//! **Architecture Invariant:** no I/O and no clock reads; the caller passes `now`.

mod claims;
mod error;
mod issuer;
mod jose;
mod keys;
mod verifier;

pub use claims::{
    TokenClaims, TokenPermission, TokenPermissions, parse_m2m_timestamp, to_m2m_timestamp,
};
pub use error::TokenError;
pub use issuer::TokenIssuer;
pub use keys::{
    ALG_A256KW, ALG_DIR, ALG_ES256, ALG_HS256, ENC_A256GCM, EncryptionKey, HS256_MIN_KEY_LEN,
    SigningKey, VerificationKey,
};
pub use verifier::{TokenVerifier, TrustedIssuer};
