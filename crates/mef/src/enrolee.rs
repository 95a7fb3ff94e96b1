//! The enrolee (MEF client) side of the bootstrap handshake.

use std::fmt;

use m2mtrust_channel::{
    CertifiedKey, ClientConfig, KpsaId, PskKey, TlsConnector, TlsStream, TrustAnchors,
};
use m2mtrust_crypto::{Fqdn, SecretKey};
use tokio::net::TcpStream;

use crate::error::BootstrapError;

/// The enrolee's bootstrap credential (Bootstrap Credential Configuration).
#[derive(Clone)]
pub enum EnroleeCredential {
    /// PPSK RSPF (§8.3.2.1): sent as `psk_identity` / used as `psk`.
    Psk {
        /// KpmID, `relative@FQDN`.
        kpm_id: KpsaId,
        /// Kpm.
        kpm: PskKey,
    },
    /// Certificate RSPF (§8.3.2.2): a device, AE-ID or CSE-ID certificate chain and its key.
    Certificate(CertifiedKey),
}

impl fmt::Debug for EnroleeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Psk { kpm_id, .. } => f
                .debug_struct("Psk")
                .field("kpm_id", kpm_id)
                .field("kpm", &"<redacted>")
                .finish(),
            Self::Certificate(c) => f.debug_tuple("Certificate").field(c).finish(),
        }
    }
}

/// What the enrolee derives from the bootstrap session.
#[derive(Debug)]
pub struct EnroleeKeys {
    /// Ke, 32 bytes (zeroized on drop, redacted in `Debug`).
    pub ke: SecretKey,
    /// KeID = `hexBinary(RelativeKeID)@MEF-FQDN` (§10.3.4).
    pub ke_id: KpsaId,
}

/// Runs the Bootstrap Security Handshake towards the MEF named `mef_name` (its FQDN: SNI, the
/// name its certificate must carry, and the issuer part of KeID) and derives Ke and KeID.
///
/// A PSK enrolee offers only the PSK suites (the Kpm authenticates the MEF) and ignores
/// `mef_trust`; a certificate enrolee needs `mef_trust` for the MEF's certificate.
///
/// The MEF may still refuse a certificate enrolee after the handshake (unregistered or expired
/// enrolment); it then closes the connection, which the enrolee sees on its first read.
pub async fn bootstrap(
    tcp: TcpStream,
    mef_name: &str,
    credential: EnroleeCredential,
    mef_trust: Option<TrustAnchors>,
) -> Result<(TlsStream, EnroleeKeys), BootstrapError> {
    let mef = Fqdn::parse(mef_name)
        .map_err(|_| BootstrapError::InvalidMefName(mef_name.chars().take(64).collect()))?;
    let config = match credential {
        EnroleeCredential::Psk { kpm_id, kpm } => ClientConfig::psk(kpm_id, kpm),
        EnroleeCredential::Certificate(cert) => {
            let trust = mef_trust.ok_or(BootstrapError::MissingMefTrust)?;
            ClientConfig::certificate(cert, trust)
        }
    };
    let connector = TlsConnector::new(config)?;
    let stream = connector
        .connect(tcp, mef.as_str())
        .await
        .map_err(BootstrapError::from_handshake)?;
    let (ke, ke_id) = crate::enrolment_key(&stream, &mef)?;
    tracing::info!(
        target: "audit",
        event = "enrolee_bootstrapped",
        mef = %mef,
        ke_id = %ke_id,
    );
    Ok((stream, EnroleeKeys { ke, ke_id }))
}
