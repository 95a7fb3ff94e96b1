//! Why a request could not be sent or its response not read.

use std::time::Duration;

use m2mtrust_channel::{ConfigError, HandshakeError};

/// Everything that can go wrong between building a [`Client`](crate::Client) and reading a
/// response primitive. A response with an error status code (4xxx, 5xxx) is not an error here: it
/// is a [`Response`](m2mtrust_model::Response) the caller inspects.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse, or its scheme is neither `http` nor `https`.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options do not fit the URL (e.g. a credential on `http://`, `https://` with nothing
    /// to authenticate the server).
    #[error("invalid client options: {0}")]
    InvalidOptions(String),
    /// A credential or trust anchor could not be loaded.
    #[error("cannot load the {what}: {source}")]
    Credential {
        /// Which item (certificate and key, trust anchors, TLS context).
        what: &'static str,
        /// The channel's reason.
        #[source]
        source: ConfigError,
    },
    /// The TCP connection could not be opened.
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        /// `host:port`.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The security association was not established; [`HandshakeError::reason`] gives a stable
    /// code.
    #[error("TLS handshake with {server} failed: {source}")]
    Handshake {
        /// The server name used for SNI and verification.
        server: String,
        /// Why the handshake failed.
        #[source]
        source: HandshakeError,
    },
    /// No complete response (including connecting and any queueing behind other requests on the
    /// same connection) within the configured timeout.
    #[error("no response from {url} within {timeout:?}")]
    Timeout {
        /// The base URL.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The Receiver's end-to-end security answer could not be used (TS-0003 §8.4): no rand
    /// object, an ESPrim Object that does not belong to the session or does not open.
    #[error("end-to-end security: {0}")]
    EsPrim(String),
    /// The ESCertKE Procedure (TS-0003 §8.7) failed: the Terminating End-Point refused a
    /// message, or its answer did not verify here (certificate, identity, Finished).
    #[error("ESCertKE: {0}")]
    EsCertKe(String),
    /// The request primitive cannot be put into an HTTP request.
    #[error("cannot encode the request: {0}")]
    Encode(#[source] m2mtrust_binding_http::ClientError),
    /// The HTTP exchange failed on an established connection (closed, reset, malformed HTTP).
    #[error("HTTP exchange with {url} failed: {source}")]
    Connection {
        /// The base URL.
        url: String,
        /// hyper's reason.
        #[source]
        source: hyper::Error,
    },
    /// The response body is larger than the client accepts.
    #[error("response body from {url} exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The base URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The HTTP response does not decode into a response primitive.
    #[error("cannot decode the response: {0}")]
    Decode(#[source] m2mtrust_binding_http::ClientError),
    /// Key export needs a TLS connection; this client speaks plain HTTP.
    #[error("no TLS connection to export keys from: the client uses plain http://")]
    NotTls,
    /// OpenSSL refused the key export.
    #[error("key export failed: {0}")]
    KeyExport(String),
}
