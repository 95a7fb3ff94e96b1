//! Security primitives of m2mtrust (oneM2M TS-0003).
//!
//! - [`secret`]: secret key types that zeroize, never print and compare in constant time.
//! - [`id`]: Credential-ID, KpsaID, KmID and RFC 6920 public key identifiers (§10.1.2, §10.4–10.6).
//! - [`kdf`]: the HMAC-SHA-256 key derivations of §10.3.
//! - [`pki`]: a development PKI issuing the certificate profiles of §10.1.1, CSRs and CRLs.
//! - [`seal`]: encryption of secrets at rest (§6.2.5 secure storage).
//!
//! **Architecture Invariant:** everything except [`pki::DevCa`]'s convenience methods and
//! [`seal::Sealer`] is pure: no I/O, no clock; randomness only where a key or nonce must be
//! fresh, and documented there.

pub mod id;
pub mod kdf;
pub mod pki;
pub mod seal;
pub mod secret;

pub use id::{
    CredentialId, CredentialIdError, CredentialTypeId, Fqdn, FqdnError, KeyIdError, KmId, KpsaId,
};
pub use kdf::{KdfError, derive_km, derive_kpsa};
pub use pki::{
    CertIdentity, CertProfile, DevCa, Issued, IssuedCert, PkiError, San, Serial,
    certificate_identity,
};
pub use seal::{SealError, Sealer};
pub use secret::{PrivateKeyPem, SecretError, SecretKey};
