//! TS-0003 §8.4: End-to-End Security of Primitives (ESPrim), the cryptographic part.
//!
//! - [`rand`]: the originator/receiver ESPrim rand objects (§8.4.3.1.1, §8.4.3.1.2), the
//!   Originator's construction of its object (Phase B, step B.2g), the Receiver's checks of the
//!   pair (Phase C, steps C.6b.2 and C.6c.1) and the sessionESPrimKey (§10.3.8.2).
//! - [`object`]: the ESPrim Object, a JWE Compact Serialization with `alg` `dir` (§8.4.3.2).
//! - [`replay`]: a bounded memory of the ESPrim Objects already accepted in a session.
//!
//! Looking keys and rand objects up, the MAF retrieval of C.6a and the NOTIFY transport belong
//! to the CSE; it maps an [`EsPrimError`] to the wire with [`EsPrimError::rsc`].
//!
//! **Architecture Invariant:** no I/O and no clock: every check takes `now`. Only
//! [`object::EsPrimObject::protect`], [`rand::EsPrimRandValue::generate`] and
//! [`rand::EsPrimRandId::generate`] read OpenSSL's CSPRNG.

pub mod object;
pub mod rand;
pub mod replay;

use crate::kdf::{KdfError, hmac_sha256};
use crate::secret::SecretKey;

pub use object::{EsPrimHeader, EsPrimObject, unprotect};
pub use rand::{
    EsPrimKeyGenAlgId, EsPrimProtocolAndAlgId, EsPrimRandId, EsPrimRandValue,
    OriginatorEsPrimRandObject, RandObjectOctets, ReceiverEsPrimRandObject, SessionKey,
    check_session,
};
pub use replay::ReplayGuard;

/// oneM2M Response Status Codes of the ESPrim errors, with their TS-0004 names.
pub mod rsc {
    /// `BAD_REQUEST`.
    pub const BAD_REQUEST: u16 = 4000;
    /// `ESPRIM_UNSUPPORTED_OPTION`.
    pub const ESPRIM_UNSUPPORTED_OPTION: u16 = 4111;
    /// `ESPRIM_UNKNOWN_KEY_ID`.
    pub const ESPRIM_UNKNOWN_KEY_ID: u16 = 4112;
    /// `ESPRIM_UNKNOWN_ORIG_RAND_ID`.
    pub const ESPRIM_UNKNOWN_ORIG_RAND_ID: u16 = 4113;
    /// `ESPRIM_UNKNOWN_RECV_RAND_ID`.
    pub const ESPRIM_UNKNOWN_RECV_RAND_ID: u16 = 4114;
    /// `ESPRIM_BAD_MAC`.
    pub const ESPRIM_BAD_MAC: u16 = 4115;
    /// `ESPRIM_IMPERSONATION_ERROR` (TS-0003 §7.2.2).
    pub const ESPRIM_IMPERSONATION_ERROR: u16 = 4116;
    /// `INTERNAL_SERVER_ERROR`.
    pub const INTERNAL_SERVER_ERROR: u16 = 5000;
    /// `ESPRIM_DECRYPTION_ERROR`.
    pub const ESPRIM_DECRYPTION_ERROR: u16 = 5210;
    /// `ESPRIM_ENCRYPTION_ERROR`.
    pub const ESPRIM_ENCRYPTION_ERROR: u16 = 5211;
}

/// Why an ESPrim Object could not be built or was refused.
///
/// [`EsPrimError::rsc`] gives the Response Status Code TS-0003 §8.4.2 Phase C (with the names of
/// TS-0004) intends for the unsecured outer response; [`EsPrimError::reason`] a stable short code
/// for audit logs.
#[derive(Debug, thiserror::Error)]
pub enum EsPrimError {
    /// Not a JWE Compact Serialization with the required header parameters (five base64url
    /// parts, a JSON protected header with string `kid`, `ori`, `rri`, well-formed `oro`/`rro`,
    /// a non-empty ciphertext), or a rand object that does not parse.
    #[error("malformed ESPrim object: {0}")]
    Malformed(String),
    /// `alg` other than `dir`, a non-empty JWE Encrypted Key, an `enc` outside A128GCM/A192GCM/
    /// A256GCM, `crit` or `zip`; or a key generation or AEAD algorithm not agreed by both rand
    /// objects (steps C.6a, C.6b.2, C.6c.1).
    #[error("unsupported ESPrim option: {0}")]
    UnsupportedOption(String),
    /// No valid pairwiseESPrimKey has this `kid` (step C.6a).
    #[error("unknown or expired pairwiseESPrimKey {0:?}")]
    UnknownKeyId(String),
    /// The originatorESPrimRandObject is unknown, expired, or expires after the receiver's
    /// (step C.6b.2).
    #[error("unknown or invalid originatorESPrimRandObject: {0}")]
    UnknownOriginatorRandId(String),
    /// The receiverESPrimRandObject is unknown or expired (step C.6b.1).
    #[error("unknown or expired receiverESPrimRandObject: {0}")]
    UnknownReceiverRandId(String),
    /// The AES-GCM authentication tag does not verify (step C.6c.2): the object was altered or
    /// made with another key.
    #[error("ESPrim authentication tag does not verify")]
    BadMac,
    /// TS-0003 §7.2.2: the inner primitive's From is not the identity bound to the
    /// pairwiseESPrimKey.
    #[error("originator {from:?} is not {expected:?}, the identity of the pairwise key")]
    Impersonation {
        /// The From parameter of the inner primitive.
        from: String,
        /// The identity associated with the pairwiseESPrimKey.
        expected: String,
    },
    /// Decryption failed for another reason than the tag: an IV that is not 96 bits, a session
    /// key too short for `enc`.
    #[error("ESPrim decryption failed: {0}")]
    DecryptionError(String),
    /// The ESPrim Object could not be produced (step C.8).
    #[error("ESPrim encryption failed: {0}")]
    EncryptionError(String),
    /// The same object (`kid`, `ori`, `rri`, IV) was already accepted while its session is valid.
    #[error("ESPrim object replayed")]
    Replayed,
    /// The session of the object has expired (checked by [`ReplayGuard`]).
    #[error("ESPrim session expired")]
    SessionExpired,
    /// The replay memory is full of unexpired entries; the object is refused rather than
    /// accepted unchecked.
    #[error("ESPrim replay memory full")]
    ReplayMemoryFull,
}

impl EsPrimError {
    /// The Response Status Code for this error.
    ///
    /// A replayed object gets `BAD_REQUEST` (TS-0003 has no replay check of its own), an expired
    /// session `ESPRIM_UNKNOWN_ORIG_RAND_ID` (the originator's rand object bounds the session),
    /// a full replay memory `INTERNAL_SERVER_ERROR`.
    pub fn rsc(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::Replayed => rsc::BAD_REQUEST,
            Self::UnsupportedOption(_) => rsc::ESPRIM_UNSUPPORTED_OPTION,
            Self::UnknownKeyId(_) => rsc::ESPRIM_UNKNOWN_KEY_ID,
            Self::UnknownOriginatorRandId(_) | Self::SessionExpired => {
                rsc::ESPRIM_UNKNOWN_ORIG_RAND_ID
            }
            Self::UnknownReceiverRandId(_) => rsc::ESPRIM_UNKNOWN_RECV_RAND_ID,
            Self::BadMac => rsc::ESPRIM_BAD_MAC,
            Self::Impersonation { .. } => rsc::ESPRIM_IMPERSONATION_ERROR,
            Self::DecryptionError(_) => rsc::ESPRIM_DECRYPTION_ERROR,
            Self::EncryptionError(_) => rsc::ESPRIM_ENCRYPTION_ERROR,
            Self::ReplayMemoryFull => rsc::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable short code for audit logs (`reason=...`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnsupportedOption(_) => "unsupported_option",
            Self::UnknownKeyId(_) => "unknown_key_id",
            Self::UnknownOriginatorRandId(_) => "unknown_orig_rand_id",
            Self::UnknownReceiverRandId(_) => "unknown_recv_rand_id",
            Self::BadMac => "bad_mac",
            Self::Impersonation { .. } => "impersonation",
            Self::DecryptionError(_) => "decryption_error",
            Self::EncryptionError(_) => "encryption_error",
            Self::Replayed => "replayed",
            Self::SessionExpired => "session_expired",
            Self::ReplayMemoryFull => "replay_memory_full",
        }
    }
}

/// Label for deriving a pairwiseESPrimKey from a MAF-distributed Kc. TS-0003 §8.4.2 Phase A says
/// "The Originator generates pairwiseESPrimKey from Kc and a reserved string" without giving the
/// string; this one is the project's, so MAF-based ESPrim only interoperates with peers that use
/// the same label.
pub const KC_PAIRWISE_LABEL: &[u8] = b"oneM2M MAF Kc to pairwiseESPrimKey derivation";

/// TS-0003 §8.4.2 Phase A (MAF framework): `pairwiseESPrimKey = HMAC-SHA-256(Kc, label)`,
/// normally with [`KC_PAIRWISE_LABEL`].
pub fn derive_pairwise_key_from_kc(kc: &SecretKey, label: &[u8]) -> Result<SecretKey, KdfError> {
    let mut out = hmac_sha256(kc.expose_bytes(), &[label])?;
    let key = SecretKey::from_slice(&out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}

/// TS-0003 §7.2.2: the Receiver "checks if the value in the From parameter is the same as the ID
/// associated with the pairwiseESPrimKey"; if not, the request fails with 4116.
pub fn check_originator(inner_from: &str, key_identity: &str) -> Result<(), EsPrimError> {
    if inner_from == key_identity {
        Ok(())
    } else {
        Err(EsPrimError::Impersonation {
            from: inner_from.to_owned(),
            expected: key_identity.to_owned(),
        })
    }
}
