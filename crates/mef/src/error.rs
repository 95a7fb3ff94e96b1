//! Why a bootstrap handshake failed.

use chrono::{DateTime, Utc};
use m2mtrust_channel::{CertificateProblem, ConfigError, HandshakeError};
use openssl::error::ErrorStack;

/// Why a bootstrap (TS-0003 §8.3.2 Bootstrap Security Handshake) did not produce Ke.
/// [`BootstrapError::reason`] gives a stable short code for audit records.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The MEF has no enrolee with this KpmID (or, on the enrolee side, the MEF refused ours).
    #[error("unknown KpmID {0}")]
    UnknownKpmId(String),
    /// The `psk_identity` is not of the form `relative@FQDN`.
    #[error("malformed KpmID {0:?}")]
    MalformedKpmId(String),
    /// The handshake's Finished check failed: the two sides hold different Kpm values.
    #[error("wrong Kpm: the pre-shared keys differ")]
    WrongKpm,
    /// The enrolment expired (Enrolment Expiry, TS-0003 §10.7).
    #[error("the enrolment of {enrolee} expired at {expired}")]
    Expired {
        /// The enrolee's Credential-ID.
        enrolee: String,
        /// Its Enrolment Expiry.
        expired: DateTime<Utc>,
    },
    /// The peer's certificate failed verification (untrusted CA, expired, revoked, wrong name…).
    #[error("certificate refused: {problem} ({detail})")]
    UntrustedCertificate {
        /// Classified reason.
        problem: CertificateProblem,
        /// OpenSSL's verification message.
        detail: String,
    },
    /// A verified certificate whose Credential-ID is not a registered enrolee.
    #[error("certificate credential {0} is not a registered enrolee")]
    UnknownCertificate(String),
    /// The client presented neither a PSK identity nor a certificate.
    #[error("the enrolee presented no credential")]
    NoCredential,
    /// The MEF name given to [`bootstrap`](crate::bootstrap) is not an FQDN.
    #[error("invalid MEF name {0:?}")]
    InvalidMefName(String),
    /// A certificate enrolee needs trust anchors for the MEF certificate.
    #[error("a certificate bootstrap needs trust anchors for the MEF certificate")]
    MissingMefTrust,
    /// Local TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Config(#[from] ConfigError),
    /// Any other handshake failure.
    #[error("bootstrap handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The RFC 5705 export failed.
    #[error("key export failed: {0}")]
    Export(ErrorStack),
}

impl BootstrapError {
    /// A stable short code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownKpmId(_) => "unknown_kpm_id",
            Self::MalformedKpmId(_) => "malformed_kpm_id",
            Self::WrongKpm => "wrong_kpm",
            Self::Expired { .. } => "enrolment_expired",
            Self::UntrustedCertificate { .. } => "certificate_untrusted",
            Self::UnknownCertificate(_) => "unknown_certificate",
            Self::NoCredential => "no_credential",
            Self::InvalidMefName(_) => "invalid_mef_name",
            Self::MissingMefTrust => "missing_mef_trust",
            Self::Config(_) => "config_error",
            Self::Handshake(e) => e.reason(),
            Self::Export(_) => "export_error",
        }
    }

    /// Maps a channel handshake failure (both sides).
    pub(crate) fn from_handshake(e: HandshakeError) -> Self {
        match e {
            HandshakeError::UnknownIdentity(id) => Self::UnknownKpmId(id),
            HandshakeError::MalformedIdentity(id) => Self::MalformedKpmId(id),
            HandshakeError::IdentityRefusedByPeer => {
                Self::UnknownKpmId("(refused by the MEF)".into())
            }
            HandshakeError::BadKeyOrMac => Self::WrongKpm,
            HandshakeError::Certificate { problem, detail } => {
                Self::UntrustedCertificate { problem, detail }
            }
            HandshakeError::UnknownCertificate(id) => Self::UnknownCertificate(id),
            HandshakeError::NoClientCredential => Self::NoCredential,
            other => Self::Handshake(other),
        }
    }
}
