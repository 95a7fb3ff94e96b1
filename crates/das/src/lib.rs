//! Dynamic Authorization (TS-0003 §7.3): the DAS Server and oneM2M tokens.
//!
//! The DAS Server ([`DasService`], a `m2mtrust_server::Handler`) answers Dynamic Authorization
//! Requests (`m2m:seci` with `sit` 1) from hosting CSEs (Direct DA, §7.3.2.2) and from
//! Originators asking for tokens for themselves (Indirect DA, §7.3.2.3 step 3), and resolves
//! Token-IDs for hosting CSEs (§7.3.2.3 step 5). Its policies and issued tokens live in a
//! [`DasStore`] (SQLite):
//!
//! - [`request`] reads `dreq`; [`policy`] holds policies and their patterns;
//! - [`decision`] decides who is asking, for whom, what a policy grants and what the answer holds;
//! - [`store`] and [`service`] are the outer layer (SQLite, clock, randomness, signing).
//!
//! This crate also issues and verifies the oneM2M JWT profile (TS-0003 §7.3.2.6) of the token
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
//! **Architecture Invariant:** the token modules, [`request`], [`policy`] and [`decision`] do no
//! I/O and never read the clock; the caller passes `now`. Only [`store`] and [`service`] do.

mod claims;
pub mod decision;
mod error;
mod issuer;
mod jose;
mod keys;
pub mod policy;
pub mod request;
pub mod service;
pub mod store;
mod verifier;

pub use claims::{
    TokenClaims, TokenPermission, TokenPermissions, parse_m2m_timestamp, to_m2m_timestamp,
};
pub use error::{DasError, TokenError};
pub use issuer::TokenIssuer;
pub use keys::{
    ALG_A256KW, ALG_DIR, ALG_ES256, ALG_HS256, ENC_A256GCM, EncryptionKey, HS256_MIN_KEY_LEN,
    SigningKey, VerificationKey,
};
pub use policy::{GrantMode, Policy, PolicySpec};
pub use request::DasRequest;
pub use service::DasService;
pub use store::DasStore;
pub use verifier::{TokenVerifier, TrustedIssuer};
