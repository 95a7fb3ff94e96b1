//! Errors: configuration mistakes, and why a handshake failed.

use std::fmt;
use std::io;
use std::time::Duration;

use openssl::error::ErrorStack;
use openssl::ssl::{self, ErrorCode, SslRef};
use openssl::x509::X509VerifyResult;

/// A configuration the channel cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// PEM or DER that OpenSSL could not read.
    #[error("cannot read the {what}: {source}")]
    Parse {
        /// Which item.
        what: &'static str,
        /// OpenSSL's reason.
        source: ErrorStack,
    },
    /// A value that breaks a rule of this crate or of TS-0003.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which item.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// OpenSSL refused a setting.
    #[error("OpenSSL refused the configuration: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// Why a certificate was refused, from the X.509 verification result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Past its notAfter.
    Expired,
    /// Before its notBefore.
    NotYetValid,
    /// Listed in a configured CRL.
    Revoked,
    /// Revocation checking is on but no current CRL covers the issuer.
    CrlUnavailable,
    /// Does not chain to a configured trust anchor.
    Untrusted,
    /// The server certificate does not name the expected host (client side).
    NameMismatch,
    /// Any other verification failure.
    Invalid,
}

impl CertificateProblem {
    fn from_verify(code: X509VerifyResult) -> Self {
        use openssl_sys as f;
        match code.as_raw() {
            f::X509_V_ERR_CERT_HAS_EXPIRED => Self::Expired,
            f::X509_V_ERR_CERT_NOT_YET_VALID => Self::NotYetValid,
            f::X509_V_ERR_CERT_REVOKED => Self::Revoked,
            f::X509_V_ERR_UNABLE_TO_GET_CRL | f::X509_V_ERR_CRL_HAS_EXPIRED => Self::CrlUnavailable,
            f::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | f::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | f::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            | f::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
            | f::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | f::X509_V_ERR_CERT_UNTRUSTED
            | f::X509_V_ERR_CERT_SIGNATURE_FAILURE => Self::Untrusted,
            f::X509_V_ERR_HOSTNAME_MISMATCH | f::X509_V_ERR_IP_ADDRESS_MISMATCH => {
                Self::NameMismatch
            }
            _ => Self::Invalid,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::Revoked => "revoked",
            Self::CrlUnavailable => "no current CRL",
            Self::Untrusted => "untrusted",
            Self::NameMismatch => "name mismatch",
            Self::Invalid => "invalid",
        }
    }
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a security association was not established. [`HandshakeError::reason`] gives a stable
/// short code for audit records.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client's `psk_identity` is not a KpsaID (TS-0003 §10.5).
    #[error("malformed KpsaID {0:?}")]
    MalformedIdentity(String),
    /// No key is configured for this KpsaID.
    #[error("unknown KpsaID {0}")]
    UnknownIdentity(String),
    /// The server did not know the KpsaID this client sent.
    #[error("the server does not know our KpsaID")]
    IdentityRefusedByPeer,
    /// Finished or a record failed its MAC: with PSK this means the two keys differ.
    #[error("MAC check failed: the pre-shared keys differ (or a record was corrupted)")]
    BadKeyOrMac,
    /// The peer's certificate failed verification here.
    #[error("peer certificate refused: {problem} ({detail})")]
    Certificate {
        /// Classified reason.
        problem: CertificateProblem,
        /// OpenSSL's verification message.
        detail: String,
    },
    /// A verified certificate that names no CSE-ID/AE-ID and is not mapped by the caller.
    #[error("certificate credential {0} is not mapped to any identity")]
    UnknownCertificate(String),
    /// The client offered neither a usable PSK nor a certificate.
    #[error("the client presented neither a PSK identity nor a certificate")]
    NoClientCredential,
    /// The client and the server have no suite in common.
    #[error("no cipher suite in common")]
    NoSharedCipher,
    /// The peer aborted with a TLS alert (e.g. it refused our certificate).
    #[error("the peer sent the alert: {0}")]
    PeerAlert(String),
    /// Another TLS protocol failure, with OpenSSL's reason.
    #[error("TLS failure: {0}")]
    Protocol(String),
    /// The peer closed the connection before the handshake finished.
    #[error("connection closed during the handshake")]
    Closed,
    /// The handshake did not finish in time.
    #[error("handshake not finished within {0:?}")]
    Timeout(Duration),
    /// Socket error.
    #[error("I/O error during the handshake: {0}")]
    Io(#[source] io::Error),
    /// The server name given to `connect` cannot be used.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// Local OpenSSL setup of the connection failed.
    #[error("TLS setup failed: {0}")]
    Setup(#[from] ErrorStack),
}

impl HandshakeError {
    /// A stable short code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedIdentity(_) => "malformed_psk_identity",
            Self::UnknownIdentity(_) => "unknown_psk_identity",
            Self::IdentityRefusedByPeer => "psk_identity_refused_by_peer",
            Self::BadKeyOrMac => "bad_key_or_mac",
            Self::Certificate { problem, .. } => match problem {
                CertificateProblem::Expired => "certificate_expired",
                CertificateProblem::NotYetValid => "certificate_not_yet_valid",
                CertificateProblem::Revoked => "certificate_revoked",
                CertificateProblem::CrlUnavailable => "crl_unavailable",
                CertificateProblem::Untrusted => "certificate_untrusted",
                CertificateProblem::NameMismatch => "certificate_name_mismatch",
                CertificateProblem::Invalid => "certificate_invalid",
            },
            Self::UnknownCertificate(_) => "unknown_certificate",
            Self::NoClientCredential => "no_client_credential",
            Self::NoSharedCipher => "no_shared_cipher",
            Self::PeerAlert(_) => "peer_alert",
            Self::Protocol(_) => "protocol_error",
            Self::Closed => "closed",
            Self::Timeout(_) => "timeout",
            Self::Io(_) => "io_error",
            Self::ServerName(_) => "invalid_server_name",
            Self::Setup(_) => "setup_error",
        }
    }
}

// Reason codes of OpenSSL 3.0 `sslerr.h` (library ERR_LIB_SSL); alerts received from the peer
// are reported as SSL_AD_REASON_OFFSET (1000) + the alert number.
const ERR_LIB_SSL: i32 = 20;
const SSL_R_NO_SHARED_CIPHER: i32 = 193;
const SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: i32 = 199;
const SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC: i32 = 281;
const SSL_R_DECRYPTION_FAILED: i32 = 147;
const SSL_R_DIGEST_CHECK_FAILED: i32 = 149;
const SSL_AD_REASON_OFFSET: i32 = 1000;
const ALERT_BAD_RECORD_MAC: i32 = 20;
const ALERT_DECRYPT_ERROR: i32 = 51;
const ALERT_UNKNOWN_PSK_IDENTITY: i32 = 115;

/// Classifies a failed handshake from the verification result and OpenSSL's error queue.
pub(crate) fn classify(err: &ssl::Error, ssl: &SslRef, psk_handshake: bool) -> HandshakeError {
    let verify = ssl.verify_result();
    if verify != X509VerifyResult::OK {
        return HandshakeError::Certificate {
            problem: CertificateProblem::from_verify(verify),
            detail: verify.error_string().to_string(),
        };
    }
    if let Some(stack) = err.ssl_error() {
        for e in stack.errors() {
            if e.library_code() != ERR_LIB_SSL {
                continue;
            }
            let r = e.reason_code();
            let text = e.reason().unwrap_or("unknown").to_string();
            return match r {
                SSL_R_NO_SHARED_CIPHER => HandshakeError::NoSharedCipher,
                SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE => HandshakeError::NoClientCredential,
                SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC
                | SSL_R_DECRYPTION_FAILED
                | SSL_R_DIGEST_CHECK_FAILED => HandshakeError::BadKeyOrMac,
                r if r == SSL_AD_REASON_OFFSET + ALERT_UNKNOWN_PSK_IDENTITY => {
                    HandshakeError::IdentityRefusedByPeer
                }
                // With PSK suites a MAC or decrypt alert means the peer saw a Finished made with
                // a different key.
                r if psk_handshake
                    && (r == SSL_AD_REASON_OFFSET + ALERT_BAD_RECORD_MAC
                        || r == SSL_AD_REASON_OFFSET + ALERT_DECRYPT_ERROR) =>
                {
                    HandshakeError::BadKeyOrMac
                }
                r if r > SSL_AD_REASON_OFFSET => HandshakeError::PeerAlert(text),
                _ => HandshakeError::Protocol(text),
            };
        }
        if let Some(e) = stack.errors().first() {
            return HandshakeError::Protocol(e.reason().unwrap_or("unknown").to_string());
        }
    }
    if let Some(io) = err.io_error() {
        return match io.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => HandshakeError::Closed,
            kind => HandshakeError::Io(io::Error::new(kind, io.to_string())),
        };
    }
    match err.code() {
        ErrorCode::ZERO_RETURN | ErrorCode::SYSCALL => HandshakeError::Closed,
        _ => HandshakeError::Protocol(err.to_string()),
    }
}
