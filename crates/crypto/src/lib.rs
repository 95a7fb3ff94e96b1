//! Security primitives of m2mtrust (oneM2M TS-0003).
//!
//! - [`secret`]: secret key types that zeroize, never print and compare in constant time.
//! - [`id`]: Credential-ID, KpsaID, KmID and RFC 6920 public key identifiers (§10.1.2, §10.4–10.6).
//! - [`kdf`]: the HMAC-SHA-256 key derivations of §10.3.
//! - [`pki`]: a development PKI issuing the certificate profiles of §10.1.1, CSRs and CRLs.
//! - [`seal`]: encryption of secrets at rest (§6.2.5 secure storage).
//! - [`ke2e`]: the End-to-End master key and its four expanded keys (§10.3.6).
//! - [`esprim`]: End-to-End Security of Primitives, the ESPrim Object and its keys (§8.4).
//! - [`esdata`]: End-to-End Security of Data with JWE and JWS (§8.5).
//!
//! **Architecture Invariant:** everything except [`pki::DevCa`]'s convenience methods and
//! [`seal::Sealer`] is pure: no I/O, no clock; randomness only where a key or nonce must be
//! fresh, and documented there.
//!
//! **API Boundary:** [`esprim`] and [`esdata`] take and return envelope bytes and text only;
//! key stores, MAF retrieval and the NOTIFY transport live in the services that use them.

pub mod esdata;
pub mod esprim;
pub mod id;
pub mod kdf;
pub mod ke2e;
pub mod pki;
pub mod seal;
pub mod secret;

pub use esdata::{
    ContentEncryption, DecryptionKey, EncryptionKey, EsData, EsDataError, JweOptions,
    KeyManagementAlgorithm, Serialization, SignatureAlgorithm, SigningKey, VerificationKey,
};
pub use esprim::{EsPrimError, EsPrimHeader, EsPrimObject, ReplayGuard, SessionKey};
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
