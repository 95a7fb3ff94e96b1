//! Listeners and the receiver pipeline shared by m2mtrust services: a connection's
//! [`PeerIdentity`] plus the TS-0009 HTTP binding turn bytes into request primitives for a
//! [`Handler`], and its response primitives back into bytes.
//!
//! **Architecture Invariant:** handlers see a [`Request`] and the [`PeerIdentity`] the channel
//! established, nothing else from the transport.

mod listener;

use std::future::Future;

use m2mtrust_model::{PeerIdentity, Request, Response};

pub use listener::{Acceptor, PlainAcceptor, serve, serve_connection, serve_http};
pub use m2mtrust_binding_http::Limits;

/// A receiver of request primitives: a CSE, MEF, MAF or DAS.
pub trait Handler: Send + Sync + 'static {
    /// Processes one request from `peer` and returns its response. Failures are responses
    /// (with an error status code), never panics.
    fn handle(&self, req: Request, peer: PeerIdentity) -> impl Future<Output = Response> + Send;
}
