//! Errors of token issuance and verification, and of the DAS Server.

use chrono::{DateTime, Utc};

/// Why a oneM2M token could not be issued or was refused (TS-0003 §7.3.2.5, §7.3.2.6).
///
/// The variants say exactly what went wrong; [`TokenError::reason`] gives a stable short code for
/// audit logs. Mapping to a Response Status Code is the caller's job (4103 for a refused token,
/// 4000 for a token that is not an `m2m:dynAuthJWT` at all).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not a compact JWS/JWE, or a part of it does not decode (base64url, JSON,
    /// required JOSE header parameters, forbidden `cty` on a JWS).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token uses a form this implementation does not accept (Encryption-only JWE, JWE
    /// without a configured decryption key, JWE algorithms other than A256KW/dir + A256GCM,
    /// `crit` or `zip` headers).
    #[error("unsupported token: {0}")]
    Unsupported(String),
    /// The `iss` claim names an issuer that is not configured as trusted.
    #[error("unknown token issuer {0:?}")]
    UnknownIssuer(String),
    /// The JOSE algorithm is not permitted for the issuer (TS-0003 §7.3.2.6: "shall discard").
    #[error("algorithm {alg:?} is not allowed for token issuer {issuer:?}")]
    AlgorithmNotAllowed {
        /// The issuer named by the token.
        issuer: String,
        /// The `alg` of the JOSE header.
        alg: String,
    },
    /// No configured key of the issuer verifies the signature, or (Nested tokens) no configured
    /// decryption key authenticates the JWE (AES-GCM tag or key unwrap check fails).
    #[error("token signature does not verify")]
    BadSignature,
    /// The audience does not contain the verifying CSE.
    #[error("token audience {audience:?} does not include {expected:?}")]
    WrongAudience {
        /// The CSE-ID that verified the token.
        expected: String,
        /// The `aud` claim of the token.
        audience: Vec<String>,
    },
    /// The holder (`azp`) is not the Originator of the request.
    #[error("token holder {holder:?} is not the originator {expected:?}")]
    WrongHolder {
        /// The Originator of the request.
        expected: String,
        /// The `azp` claim of the token.
        holder: String,
    },
    /// The token's `nbf` lies in the future.
    #[error("token is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The `nbf` claim.
        not_before: DateTime<Utc>,
        /// The time of verification.
        now: DateTime<Utc>,
    },
    /// The token's `exp` has passed.
    #[error("token expired at {not_after} (now {now})")]
    Expired {
        /// The `exp` claim.
        not_after: DateTime<Utc>,
        /// The time of verification.
        now: DateTime<Utc>,
    },
    /// The claim set does not map to an `m2m:tokenClaimSet` (missing or mistyped claims,
    /// permissions violating TS-0001 Table 9.6.39-3, issuer mismatch on issuance).
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// A key could not be loaded or a cryptographic operation failed.
    #[error("token cryptography failed: {0}")]
    Crypto(String),
}

impl TokenError {
    /// A stable short code for audit logs (`reason=...`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unsupported(_) => "unsupported",
            Self::UnknownIssuer(_) => "unknown_issuer",
            Self::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::WrongHolder { .. } => "wrong_holder",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::InvalidClaims(_) => "invalid_claims",
            Self::Crypto(_) => "crypto",
        }
    }
}

/// Why the DAS Server refused or failed a Dynamic Authorization Request. One place,
/// `From<&DasError> for ResponseStatusCode`, picks the wire code.
#[derive(Debug, thiserror::Error)]
pub enum DasError {
    /// The primitive or its `m2m:seci` content is malformed (4000).
    #[error("{0}")]
    BadRequest(String),
    /// The operation is not NOTIFY (4005).
    #[error("{0}")]
    OperationNotAllowed(String),
    /// The request arrived without a security association (4103: the DAS grants nothing to an
    /// unauthenticated peer).
    #[error("{0}")]
    NotAuthenticated(String),
    /// `From` is not an identity bound to the peer's credential (4106, TS-0003 §7.2.1).
    #[error("{0}")]
    NotBound(String),
    /// The requester may not ask this (4103).
    #[error("{0}")]
    NoPrivilege(String),
    /// The policy and token store failed (5000; detail only in the log).
    #[error("DAS store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A token could not be issued (5000; detail only in the log).
    #[error("token issuance: {0}")]
    Token(#[from] TokenError),
    /// Any other internal failure (5000; detail only in the log).
    #[error("internal: {0}")]
    Internal(String),
}

impl DasError {
    /// Whether the detail stays in the log (internal failures reach the peer without it).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Token(_) | Self::Internal(_))
    }
}

impl From<&DasError> for m2mtrust_model::ResponseStatusCode {
    fn from(e: &DasError) -> Self {
        match e {
            DasError::BadRequest(_) => Self::BAD_REQUEST,
            DasError::OperationNotAllowed(_) => Self::OPERATION_NOT_ALLOWED,
            DasError::NotAuthenticated(_) | DasError::NoPrivilege(_) => {
                Self::ORIGINATOR_HAS_NO_PRIVILEGE
            }
            DasError::NotBound(_) => Self::ORIGINATOR_HAS_NOT_REGISTERED,
            DasError::Store(_) | DasError::Token(_) | DasError::Internal(_) => {
                Self::INTERNAL_SERVER_ERROR
            }
        }
    }
}
