//! TLS 1.2 security associations for oneM2M (TS-0003 §8.2.2), on OpenSSL.
//!
//! - §8.2.2.1 provisioned symmetric key SAEF: TLS-PSK, `psk_identity` = KpsaID (§10.5), the key
//!   looked up through [`Credentials`].
//! - §8.2.2.2 certificate-based SAEF: mutual ECDSA P-256 authentication; the client identity is
//!   taken from the certificate (CSE-ID or AE-ID certificate, §10.1.1.5/§10.1.1.7) or mapped from
//!   the Credential-ID (§10.4) through [`Credentials::certificate`].
//! - §8.7 ESCertKE: [`escertke`], the TLS 1.2 handshake between two end-points carried in four
//!   messages, yielding a pairwiseE2EKey.
//! - §10.3.1 key export: [`export_keying_material`] (RFC 5705, 48 bytes, no context) and
//!   [`KeyingMaterial::split`].
//!
//! One [`TlsAcceptor`] port serves PSK and certificate clients; its handshake yields an
//! [`Established`] record of who authenticated, which becomes the [`PeerIdentity`] handed to the
//! bindings. [`TlsConnector`] is the client side. Only TLS 1.2 over TCP is offered (§10.2.1);
//! DTLS is not handled here.
//!
//! **Architecture Invariant:** only this crate knows TLS; it never reads the resource tree. The
//! caller supplies keys and identity mappings through [`Credentials`].
//!
//! **Architecture Invariant:** session resumption and renegotiation are disabled, so every
//! connection's identity comes from a full handshake that ran the callbacks of this crate.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use m2mtrust_channel::*;
//! use m2mtrust_model::CseId;
//!
//! struct Keys;
//! impl Credentials for Keys {
//!     fn psk(&self, id: &KpsaId) -> Option<PskCredential> {
//!         if id.as_str() != "dev1@mef.m2mtrust.example" {
//!             return None;
//!         }
//!         Some(PskCredential {
//!             key: PskKey::from_hex("00112233445566778899aabbccddeeff").ok()?,
//!             bound: Binding::Ae("Cdev1".into()),
//!         })
//!     }
//! }
//! let in_cse = CseId::parse("/id-in")?;
//! let rules = IdentityRules::new("m2mtrust.example", in_cse.clone(), in_cse)?;
//! let acceptor = TlsAcceptor::new(ServerConfig::new(rules), Arc::new(Keys))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let (tcp, _) = listener.accept().await?;
//! let (stream, established) = acceptor.accept(tcp).await?;
//! let peer = established.peer_identity(); // Credential-ID 12-dev1@..., bound to Cdev1
//! let ke = export_keying_material(stream.ssl(), LABEL_BOOTSTRAP)?.split();
//! # let _ = (peer, ke); Ok(()) }
//! ```
//!
//! [`PeerIdentity`]: m2mtrust_model::peer::PeerIdentity

mod client;
mod config;
mod error;
pub mod escertke;
mod export;
#[allow(unsafe_code)]
mod ffi;
mod identity;
mod secret;
mod server;

pub use client::TlsConnector;
pub use config::{
    CERTIFICATE_CIPHERS, CertifiedKey, ClientConfig, ClientPsk, DEFAULT_CIPHERS,
    DEFAULT_HANDSHAKE_TIMEOUT, PSK_CIPHERS, ServerConfig, TrustAnchors,
};
pub use error::{CertificateProblem, ConfigError, HandshakeError};
pub use export::{
    ExportedKey, KeyingMaterial, LABEL_BOOTSTRAP, LABEL_CONNECTION, LABEL_ESCERTKE,
    export_keying_material,
};
pub use identity::{
    Binding, CredentialKind, IdentityRules, KpsaId, KpsaIdError, MAX_KPSA_ID_LEN,
    cse_public_domain_name, kpsa_credential_id, kpsa_id_from_wire, public_key_identifier,
};
pub use secret::{MAX_PSK_LEN, PskKey, SymmetricKey};
pub use server::{Credentials, Established, PskCredential, TlsAcceptor};

/// The async TLS stream type both sides return.
pub type TlsStream = tokio_openssl::SslStream<tokio::net::TcpStream>;
