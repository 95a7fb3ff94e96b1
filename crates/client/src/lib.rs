//! The Entity-A side of a oneM2M security association (TS-0003 §8.2.2): sends request
//! primitives to a CSE (or MEF, MAF, DAS) over HTTPS, authenticated with a pre-shared key
//! (§8.2.2.1, TLS-PSK) or a certificate (§8.2.2.2), using the TS-0009 HTTP binding.
//!
//! A [`Client`] keeps one HTTP/1.1 keep-alive connection: every request reuses the security
//! association until the server closes it, then the next request opens a new one (new TCP
//! connection, new TLS handshake). Requests from several tasks share the connection one after
//! the other. [`Client::exported_key`] runs the RFC 5705 exporter on the current connection
//! (§10.3.1), for flows that derive keys from the association (bootstrap, MAF key registration).
//!
//! `http://` URLs speak plain HTTP without any security association: the server sees the request
//! as unauthenticated. That is for development only; a warning is logged when such a client is
//! built.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use m2mtrust_client::*;
//!
//! let options = ClientOptions::new(Credential::Psk {
//!     kpsa_id: KpsaId::parse("dev1@mef.m2mtrust.example")?,
//!     key: PskKey::from_hex("00112233445566778899aabbccddeeff")?,
//! });
//! let client = Client::new("https://127.0.0.1:8443", options)?;
//! let resp = client.send(&retrieve("cse-in", "Cdev1")).await?;
//! println!("{}", resp.status.0);
//! # Ok(()) }
//! ```
//!
//! **Architecture Invariant:** this crate depends on model, crypto, channel and the client half
//! of the HTTP binding only; a device build pulls in no server code.

mod conn;
mod error;
pub mod escertke;
pub mod esdata;
pub mod esprim;
mod primitives;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use m2mtrust_channel::{CERTIFICATE_CIPHERS, ClientConfig, TlsConnector};
use m2mtrust_model::{Operation, Request, Response};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::conn::{Connection, Io};

pub use crate::error::ClientError;
pub use crate::primitives::{create, delete, notify, request_id, retrieve, update};
pub use m2mtrust_channel::{
    CertificateProblem, HandshakeError, KeyingMaterial, KpsaId, LABEL_BOOTSTRAP, LABEL_CONNECTION,
    LABEL_ESCERTKE, PskKey,
};
pub use m2mtrust_crypto::PrivateKeyPem;

/// How long a request may take, connecting included, unless [`ClientOptions::timeout`] says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response body accepted by default (1 MiB, as the server's request limit).
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// What the client authenticates itself with.
#[derive(Clone, Debug)]
pub enum Credential {
    /// TS-0003 §8.2.2.1: the KpsaID sent as `psk_identity`, and Kpsa. The key authenticates the
    /// server too; only PSK suites are offered.
    Psk {
        /// KpsaID (§10.5).
        kpsa_id: KpsaId,
        /// Kpsa.
        key: PskKey,
    },
    /// TS-0003 §8.2.2.2: a P-256 certificate chain (leaf first, PEM) and its private key.
    /// Needs [`ClientOptions::trust_anchors_pem`] for the server certificate.
    Certificate {
        /// Leaf, then intermediates (PEM).
        chain_pem: Vec<u8>,
        /// The leaf's private key (PEM).
        key_pem: PrivateKeyPem,
    },
    /// No client credential: plain `http://`, or `https://` authenticating the server only
    /// (with [`ClientOptions::trust_anchors_pem`]).
    None,
}

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The client's credential.
    pub credential: Credential,
    /// CA certificate(s) the server certificate must chain to (PEM). Required with a
    /// certificate credential and with [`Credential::None`] over `https://`. With a PSK it is
    /// optional and has no effect on the handshake: PSK suites carry no certificate, the key
    /// authenticates the server.
    pub trust_anchors_pem: Option<Vec<u8>>,
    /// The name sent in SNI and matched against the server certificate (an FQDN, a CSE-ID
    /// public domain name or an IP address); by default the host of the URL.
    pub server_name: Option<String>,
    /// Deadline for one [`Client::send`]: waiting for the connection, connecting, the handshake
    /// and reading the whole response.
    pub timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_response_body: usize,
}

impl ClientOptions {
    /// Options with `credential` and the defaults: no trust anchors, the URL host as server
    /// name, [`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_RESPONSE_BODY`].
    pub fn new(credential: Credential) -> Self {
        Self {
            credential,
            trust_anchors_pem: None,
            server_name: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
        }
    }

    /// The same options with trust anchors for the server certificate.
    pub fn with_trust_anchors(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.trust_anchors_pem = Some(pem.into());
        self
    }

    /// The same options with another server name for SNI and verification.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The same options with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Where the client connects, parsed once from the base URL.
#[derive(Debug)]
struct Target {
    /// The URL as given, for messages.
    url: String,
    /// The same URL with the `http` scheme, for the binding's URL rule.
    binding_base: String,
    /// Host as used for the TCP connection (IPv6 without brackets).
    host: String,
    port: u16,
    /// The `Host` header value.
    authority: HeaderValue,
}

impl Target {
    fn parse(url: &str) -> Result<(Self, bool), ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(_) => return Err(invalid("the scheme must be http or https")),
            None => return Err(invalid("no scheme")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not supported"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| invalid("no scheme"))?;
        let target = Target {
            url: url.to_owned(),
            binding_base: format!("http://{rest}"),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|_| invalid("the host is not valid in a Host header"))?,
        };
        Ok((target, tls))
    }
}

/// A connection to one server (a CSE, MEF, MAF or DAS) that sends request primitives and
/// returns response primitives.
///
/// Cheap to share behind an `Arc`: [`Client::send`] takes `&self` and serialises requests on
/// the one connection.
pub struct Client {
    target: Target,
    /// `None` for plain HTTP.
    tls: Option<TlsConnector>,
    server_name: String,
    timeout: Duration,
    max_body: usize,
    conn: Mutex<Option<Connection>>,
    opened: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.target.url)
            .field("tls", &self.tls)
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` (`http(s)://host[:port][/path]`; see
    /// [`m2mtrust_binding_http::encode_request`] for how the request's `to` and the URL path
    /// combine). Loads the credential and trust anchors; connects on the first request.
    ///
    /// `https://` needs a PSK, or trust anchors (with a certificate or without a client
    /// credential). `http://` takes no credential and is for development only.
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let (target, https) = Target::parse(base_url)?;
        let server_name = options
            .server_name
            .clone()
            .unwrap_or_else(|| target.host.clone());
        let tls = if https {
            Some(connector(&options)?)
        } else {
            if !matches!(options.credential, Credential::None)
                || options.trust_anchors_pem.is_some()
            {
                return Err(ClientError::InvalidOptions(
                    "a credential or trust anchors need an https:// URL; http:// is plain".into(),
                ));
            }
            tracing::warn!(
                url = base_url,
                "plain HTTP client: no security association, development only"
            );
            None
        };
        Ok(Self {
            target,
            tls,
            server_name,
            timeout: options.timeout,
            max_body: options.max_response_body,
            conn: Mutex::new(None),
            opened: AtomicU64::new(0),
        })
    }

    /// Sends `req` and returns the response primitive. Reuses the current connection; opens a
    /// new one (with a new handshake) when there is none or the server closed it. A request that
    /// could not be written on a reused connection, or a RETRIEVE whose connection closed before
    /// the response, is retried once on a new connection; other failures are returned.
    pub async fn send(&self, req: &Request) -> Result<Response, ClientError> {
        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                url: self.target.url.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// Establishes the connection (and security association) now if there is none, so that
    /// handshake failures show before the first request.
    pub async fn connect(&self) -> Result<(), ClientError> {
        let work = async {
            let mut slot = self.conn.lock().await;
            let conn = self.take_or_connect(&mut slot).await?;
            *slot = Some(conn);
            Ok(())
        };
        self.with_timeout(work).await
    }

    /// RFC 5705 keying material (48 bytes, no context; TS-0003 §10.3.1) for `label`, e.g.
    /// [`LABEL_BOOTSTRAP`], from the current connection; connects first if needed. The server
    /// exporting with the same label on the same connection gets the same bytes.
    pub async fn exported_key(&self, label: &str) -> Result<KeyingMaterial, ClientError> {
        if self.tls.is_none() {
            return Err(ClientError::NotTls);
        }
        let work = async {
            let mut slot = self.conn.lock().await;
            let conn = self.take_or_connect(&mut slot).await?;
            let key = conn.export(label);
            *slot = Some(conn);
            key
        };
        self.with_timeout(work).await
    }

    /// How many connections this client has opened so far (each with its own handshake).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.target.url
    }

    async fn with_timeout<T>(
        &self,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    url: self.target.url.clone(),
                    timeout: self.timeout,
                })
            })
    }

    /// The current connection if it is still open, otherwise a new one. The connection is taken
    /// out of the slot while in use: if the caller is cancelled (timeout) it is dropped rather
    /// than reused in an unknown state.
    async fn take_or_connect(
        &self,
        slot: &mut Option<Connection>,
    ) -> Result<Connection, ClientError> {
        match slot.take() {
            Some(conn) if !conn.is_closed() => Ok(conn),
            _ => self.open().await,
        }
    }

    async fn open(&self) -> Result<Connection, ClientError> {
        let addr = format!("{}:{}", self.target.host, self.target.port);
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|source| ClientError::Unreachable {
                addr: addr.clone(),
                source,
            })?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let io = match &self.tls {
            None => Io::Plain(tcp),
            Some(connector) => {
                let stream = connector
                    .connect(tcp, &self.server_name)
                    .await
                    .map_err(|source| {
                        tracing::info!(
                            server = %self.server_name,
                            %addr,
                            reason = source.reason(),
                            "security association refused"
                        );
                        ClientError::Handshake {
                            server: self.server_name.clone(),
                            source,
                        }
                    })?;
                tracing::debug!(
                    server = %self.server_name,
                    %addr,
                    cipher = stream.ssl().current_cipher().map(|c| c.name()).unwrap_or("-"),
                    "security association established"
                );
                Io::tls(stream)
            }
        };
        let conn = Connection::open(io, &self.target.url).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// The HTTP request for `req`, in origin form with a `Host` header (the binding builds an
    /// absolute URL).
    fn encode(&self, req: &Request) -> Result<http::Request<Full<Bytes>>, ClientError> {
        let mut http_req = m2mtrust_binding_http::encode_request(&self.target.binding_base, req)
            .map_err(ClientError::Encode)?;
        let origin_form = http_req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        *http_req.uri_mut() =
            origin_form
                .parse()
                .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
                    url: self.target.url.clone(),
                    reason: e.to_string(),
                })?;
        http_req
            .headers_mut()
            .insert(HOST, self.target.authority.clone());
        Ok(http_req)
    }

    async fn exchange(&self, req: &Request) -> Result<Response, ClientError> {
        let mut slot = self.conn.lock().await;
        let mut retried = false;
        loop {
            let mut conn = self.take_or_connect(&mut slot).await?;
            let reused = conn.requests > 0;
            conn.requests += 1;
            let may_retry = reused && !retried;
            if let Err(source) = conn.sender.ready().await {
                if may_retry {
                    retried = true;
                    continue;
                }
                return Err(self.connection_error(source));
            }
            let http_req = self.encode(req)?;
            let resp = match conn.sender.try_send_request(http_req).await {
                Ok(resp) => resp,
                Err(mut e) => {
                    let unsent = e.take_message().is_some();
                    let source = e.into_error();
                    let idempotent = req.operation == Operation::Retrieve;
                    if may_retry && (unsent || (idempotent && source.is_incomplete_message())) {
                        tracing::debug!(error = %source, "reused connection closed; reconnecting");
                        retried = true;
                        continue;
                    }
                    return Err(self.connection_error(source));
                }
            };
            let (parts, body) = resp.into_parts();
            // On a body error the connection is dropped: unread bytes would corrupt the next
            // exchange.
            let body = self.read_body(&parts.headers, body).await?;
            *slot = Some(conn);
            return m2mtrust_binding_http::decode_response(&parts, &body)
                .map_err(ClientError::Decode);
        }
    }

    async fn read_body(
        &self,
        headers: &http::HeaderMap,
        body: Incoming,
    ) -> Result<Bytes, ClientError> {
        let too_large = || ClientError::ResponseTooLarge {
            url: self.target.url.clone(),
            limit: self.max_body,
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        match Limited::new(body, self.max_body).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(source) => Err(self.connection_error(*source)),
                Err(_) => Err(too_large()),
            },
        }
    }

    fn connection_error(&self, source: hyper::Error) -> ClientError {
        ClientError::Connection {
            url: self.target.url.clone(),
            source,
        }
    }
}

/// The TLS connector for the options' credential (TS-0003 §8.2.2.1 or §8.2.2.2).
fn connector(options: &ClientOptions) -> Result<TlsConnector, ClientError> {
    let anchors = options
        .trust_anchors_pem
        .as_deref()
        .map(m2mtrust_channel::TrustAnchors::from_pem)
        .transpose()
        .map_err(|source| ClientError::Credential {
            what: "trust anchors",
            source,
        })?;
    let mut config = match &options.credential {
        Credential::Psk { kpsa_id, key } => {
            // PSK suites only, whatever the anchors: the key authenticates the server.
            let mut config = ClientConfig::psk(kpsa_id.clone(), key.clone());
            config.trust_anchors = anchors;
            config
        }
        Credential::Certificate { chain_pem, key_pem } => {
            let anchors = anchors.ok_or_else(|| {
                ClientError::InvalidOptions(
                    "a certificate credential needs trust anchors for the server certificate"
                        .into(),
                )
            })?;
            let certified = m2mtrust_channel::CertifiedKey::from_pem(
                chain_pem,
                key_pem.expose_pem().as_bytes(),
            )
            .map_err(|source| ClientError::Credential {
                what: "client certificate and key",
                source,
            })?;
            ClientConfig::certificate(certified, anchors)
        }
        Credential::None => {
            let anchors = anchors.ok_or_else(|| {
                ClientError::InvalidOptions(
                    "https:// needs a PSK, a certificate or at least trust anchors for the \
                     server certificate"
                        .into(),
                )
            })?;
            ClientConfig {
                psk: None,
                certificate: None,
                trust_anchors: Some(anchors),
                ciphers: CERTIFICATE_CIPHERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                handshake_timeout: options.timeout,
            }
        }
    };
    config.handshake_timeout = options.timeout;
    TlsConnector::new(config).map_err(|source| ClientError::Credential {
        what: "TLS configuration",
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn plain(url: &str) -> Client {
        Client::new(url, ClientOptions::new(Credential::None)).unwrap()
    }

    #[test]
    fn urls_give_host_port_and_default_ports() {
        let (t, tls) = Target::parse("https://cse.m2mtrust.example").unwrap();
        assert!(tls);
        assert_eq!((t.host.as_str(), t.port), ("cse.m2mtrust.example", 443));
        assert_eq!(t.binding_base, "http://cse.m2mtrust.example");
        let (t, tls) = Target::parse("http://[::1]:8080/notify").unwrap();
        assert!(!tls);
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.binding_base, "http://[::1]:8080/notify");
    }

    #[test]
    fn requests_are_sent_in_origin_form_with_a_host_header() {
        let client = plain("http://127.0.0.1:8080");
        let h = client.encode(&retrieve("/id-in/cse-in", "CAdmin")).unwrap();
        assert_eq!(h.uri().to_string(), "/~/id-in/cse-in");
        assert_eq!(h.headers()[HOST], "127.0.0.1:8080");

        let client = plain("http://h:1/notify/here?k=v");
        let h = client
            .encode(&notify("cse-in/ae", "/id-in", serde_json::json!({})))
            .unwrap();
        assert_eq!(h.uri().to_string(), "/notify/here?k=v");
        assert_eq!(h.headers()[HOST], "h:1");

        let mut bad = retrieve("cse-in", "C");
        bad.from = Some("C\nX".into());
        assert!(matches!(client.encode(&bad), Err(ClientError::Encode(_))));
    }
}
