//! What the transport knows about the other end of a connection.

use std::net::SocketAddr;

/// How the connection carrying a request was authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Authentication {
    /// No security association (plain HTTP): `rq_authn` is false.
    #[default]
    None,
    /// A security association authenticated the peer with this Credential-ID (TS-0003 §10.4).
    Credential {
        /// The Credential-ID, e.g. `12-<KpsaID>`.
        credential_id: String,
        /// The CSE-ID or AE-IDs bound to the credential, canonical form.
        bound_ids: Vec<String>,
    },
}

/// The peer of a request, as the channel authenticated it. Handlers never see transport details
/// beyond this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's socket address (for `accessControlIpAddress` and audit).
    pub addr: Option<SocketAddr>,
    /// What the secure channel established.
    pub authentication: Authentication,
}

impl PeerIdentity {
    /// A peer reached without a security association.
    pub fn unauthenticated(addr: Option<SocketAddr>) -> Self {
        Self {
            addr,
            authentication: Authentication::None,
        }
    }

    /// An in-process caller (the CSE itself, tests).
    pub fn internal() -> Self {
        Self::unauthenticated(None)
    }
}
