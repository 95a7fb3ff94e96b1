//! M2M Enrolment Function (TS-0003 §8.3): the bootstrap handshake of the Remote Security
//! Provisioning Frameworks.
//!
//! - §8.3.2.1 PPSK RSPF: TLS-PSK with `psk_identity` = KpmID and `psk` = Kpm.
//! - §8.3.2.2 certificate RSPF: TLS 1.2 with mutual certificate authentication, the enrolee's
//!   device/AE-ID/CSE-ID certificate verified against the MEF's trust anchors.
//! - Enrolment Key Generation (both RSPFs): RFC 5705 export with label
//!   `EXPORTER-oneM2M-Bootstrap`, 48 bytes, split into RelativeKeID (bytes 0..16) and Ke
//!   (bytes 16..48, §10.3.1); `KeID = hexBinary(RelativeKeID)@MEF-FQDN` (§10.3.4).
//!
//! [`Bootstrap`] is the MEF side, [`bootstrap`] the enrolee (MEF client) side. The MEF learns
//! what it may provision from [`Enrollees`], the operator's pre-registered bootstrap
//! credentials. On the bootstrapped session, [`server::MefService`] serves the Enrolment
//! Exchange ([`exchange`]), EST ([`est`]), `/fetchCredentials` and the MEF procedures
//! ([`procedures`]); [`client`] and [`session`] are the device side, [`remote`] the target
//! CSE's fetch, [`target`] what an enrolment stores. The wire format is in `docs/mef.md`.
//!
//! Every accepted or refused bootstrap is logged as an audit event (target `audit`).

pub mod client;
mod enrolee;
mod enrollees;
mod error;
pub mod est;
pub mod exchange;
mod mef;
pub mod procedures;
pub mod remote;
pub mod server;
pub mod session;
pub mod target;
pub mod wire;

pub use enrolee::{EnroleeCredential, EnroleeKeys, bootstrap};
pub use enrollees::{
    Assignment, CERT_ENROLLEE_KIND, Enrollee, Enrollees, KPM_KIND, MemoryEnrollees, StoreEnrollees,
    record_expiry, sealed_key_enrollee,
};
pub use error::BootstrapError;
pub use mef::{Accepted, Bootstrap, Enrolment};

use m2mtrust_channel::{KpsaId, LABEL_BOOTSTRAP, TlsStream, export_keying_material};
use m2mtrust_crypto::kdf::split_exporter_output;
use m2mtrust_crypto::{Fqdn, SecretKey};

/// Runs the §10.3.1 export on an established bootstrap session and forms Ke and the §10.3.4
/// KeID under the MEF's FQDN.
pub(crate) fn enrolment_key(
    stream: &TlsStream,
    mef: &Fqdn,
) -> Result<(SecretKey, KpsaId), BootstrapError> {
    let km =
        export_keying_material(stream.ssl(), LABEL_BOOTSTRAP).map_err(BootstrapError::Export)?;
    let (relative, ke) = split_exporter_output(km.expose_secret());
    Ok((ke, KpsaId::from_binary_relative(&relative, mef)))
}
