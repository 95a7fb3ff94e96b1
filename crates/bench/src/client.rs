//! oneM2M-over-HTTP requests against the CSE under test.
//!
//! Everything is generic over the hyper connector: [`http_connector`] for http, the TLS
//! connector of [`crate::tls`] for https, both wrapped in [`Counting`] to count connections.
//! [`Endpoint`] addresses the TLS listeners of workloads that open connections themselves.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::Service;

use crate::error::BenchError;

const X_M2M_ORIGIN: HeaderName = HeaderName::from_static("x-m2m-origin");
const X_M2M_RI: HeaderName = HeaderName::from_static("x-m2m-ri");
const X_M2M_RVI: HeaderName = HeaderName::from_static("x-m2m-rvi");
const X_M2M_RSC: HeaderName = HeaderName::from_static("x-m2m-rsc");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// URL schemes the tool knows about; only those with a connector are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// The CSEBase URL, checked once so per-request URIs can be built without surprises.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub scheme: Scheme,
    /// CSEBase URL without a trailing slash.
    pub base: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, BenchError> {
        let invalid = |reason: String| BenchError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|e| invalid(format!("{e}")))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                return Err(BenchError::UnsupportedScheme {
                    url: url.to_owned(),
                    scheme: other.to_owned(),
                });
            }
            None => {
                return Err(invalid(
                    "missing scheme, expected http(s)://host:port/path".into(),
                ));
            }
        };
        if uri.host().is_none() {
            return Err(invalid("missing host".into()));
        }
        if uri.query().is_some() {
            return Err(invalid("a CSEBase URL cannot carry a query".into()));
        }
        Ok(Self {
            scheme,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// URI of a resource below the CSEBase, e.g. `ae/cnt`; empty for the CSEBase itself.
    pub fn uri(&self, path: &str) -> Result<Uri, BenchError> {
        let full = if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{path}", self.base)
        };
        full.parse().map_err(|e| BenchError::InvalidUrl {
            url: full.clone(),
            reason: format!("{e}"),
        })
    }
}

/// Port of an `https://` address that names none.
const HTTPS_PORT: u16 = 443;

/// A TLS listener addressed as `https://host[:port][/]`, for workloads that open connections
/// themselves (enrol, maf-sae) rather than send requests to a CSEBase URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// As reports name it: `https://host:port`.
    pub url: String,
    /// Host name or IP address, without brackets; also the TLS server name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Checks `url`; `listener` says whose TLS listener it must address (e.g. "--workload
    /// enrol connects to the MEF's TLS listener") when it does not.
    pub fn parse(url: &str, listener: &str) -> Result<Self, BenchError> {
        let invalid_url = |reason: &str| BenchError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| invalid_url(&format!("{e}; expected https://host:port")))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid_url(&format!(
                "{listener}: give its address as https://host:port"
            )));
        }
        let Some(host) = uri.host() else {
            return Err(invalid_url("missing host"));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid_url(&format!(
                "{listener}, addressed by host and port only, without a path"
            )));
        }
        let port = uri.port_u16().unwrap_or(HTTPS_PORT);
        Ok(Self {
            url: format!("https://{host}:{port}"),
            host: host_name(host).to_owned(),
            port,
        })
    }

    /// Resolves the address once, so that no measurement includes name resolution; `step`
    /// names what failed (e.g. "resolving the MEF address").
    pub async fn resolve(&self, step: &'static str) -> Result<SocketAddr, BenchError> {
        let resolve_error = |reason: String| BenchError::Transport {
            step,
            url: self.url.clone(),
            reason,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_error("the name has no address".into()))
    }
}

/// A URI host as a socket or TLS layer wants it: `[::1]` becomes `::1`.
pub(crate) fn host_name(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Connections opened so far by the connectors of a run: TCP connects over http, completed TLS
/// handshakes over https. Shows whether keep-alive held.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections(Arc<AtomicU64>);

impl Connections {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connector that counts the connections it hands out in [`Connections`].
#[derive(Debug, Clone)]
pub(crate) struct Counting<S> {
    inner: S,
    connections: Connections,
}

impl<S> Counting<S> {
    pub fn new(inner: S, connections: Connections) -> Self {
        Self { inner, connections }
    }
}

impl<S> Service<Uri> for Counting<S>
where
    S: Service<Uri>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let connections = self.connections.clone();
        Box::pin(async move {
            let io = connecting.await?;
            connections.opened();
            Ok(io)
        })
    }
}

/// Plain TCP connector; nodelay because small request/response pairs are what is measured.
pub(crate) fn http_connector(timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    connector
}

/// A complete response: the body is read so latency covers the whole exchange.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub rsc: Option<String>,
    pub body: Bytes,
    pub latency: Duration,
}

impl Reply {
    /// Whether the CSE answered with `rsc`; the HTTP status decides only when X-M2M-RSC is absent.
    pub fn is(&self, rsc: u16, status: StatusCode) -> bool {
        self.status.is_success()
            && match &self.rsc {
                Some(got) => got.trim() == rsc.to_string(),
                None => self.status == status,
            }
    }

    /// Short, low-cardinality description used to group errors.
    pub fn kind(&self) -> String {
        match &self.rsc {
            Some(rsc) => format!("HTTP {} RSC {}", self.status.as_u16(), rsc.trim()),
            None => format!("HTTP {}", self.status.as_u16()),
        }
    }

    pub fn rsc_or_none(&self) -> String {
        self.rsc.clone().unwrap_or_else(|| "none".into())
    }

    /// `m2m:dbg` of a oneM2M error body, else the start of whatever text came back.
    pub fn dbg(&self) -> Option<String> {
        debug_text(&self.body)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn refused(&self, step: &'static str) -> BenchError {
        BenchError::Refused {
            step,
            status: self.status.as_u16(),
            rsc: self.rsc_or_none(),
            dbg: self.dbg(),
        }
    }
}

pub(crate) fn debug_text(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(dbg) = value.get("m2m:dbg")
    {
        return Some(match dbg.as_str() {
            Some(s) => s.to_owned(),
            None => dbg.to_string(),
        });
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    const MAX: usize = 200;
    Some(match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    })
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    #[error("{}", chain(.0))]
    Client(hyper_util::client::legacy::Error),
    #[error("reading the response body failed: {}", chain(.0))]
    Body(hyper::Error),
    #[error("request id {0:?} is not a valid header value")]
    RequestId(String),
}

impl SendError {
    /// The TLS handshake failure behind this error, if the connection failed there.
    pub fn handshake_failure(&self) -> Option<String> {
        let SendError::Client(err) = self else {
            return None;
        };
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            if let Some(failure @ crate::tls::ConnectError::Handshake { .. }) =
                cause.downcast_ref::<crate::tls::ConnectError>()
            {
                return Some(failure.to_string());
            }
            source = cause.source();
        }
        None
    }
}

/// An error with all its causes, since hyper's top-level messages alone ("client error
/// (Connect)") don't say what happened.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Unique X-M2M-RI values shared by all clients of a run.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(prefix: String) -> Self {
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// One bench client: its own connection pool, so each client keeps its own keep-alive connection.
#[derive(Clone)]
pub(crate) struct CseClient<C> {
    http: Client<C, Full<Bytes>>,
    timeout: Duration,
    rvi: HeaderValue,
    ids: Arc<RequestIds>,
}

impl<C> CseClient<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    pub fn new(connector: C, timeout: Duration, rvi: HeaderValue, ids: Arc<RequestIds>) -> Self {
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Self {
            http,
            timeout,
            rvi,
            ids,
        }
    }

    /// Sends one oneM2M request; `ty` sets the resource type of a create.
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        origin: &HeaderValue,
        ty: Option<u16>,
        body: Bytes,
    ) -> Result<Reply, SendError> {
        let ri = self.ids.next();
        let ri_value = HeaderValue::from_str(&ri).map_err(|_| SendError::RequestId(ri))?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(X_M2M_ORIGIN, origin.clone());
        headers.insert(X_M2M_RI, ri_value);
        headers.insert(X_M2M_RVI, self.rvi.clone());
        headers.insert(ACCEPT, JSON);
        if let Some(ty) = ty {
            headers.insert(CONTENT_TYPE, content_type(ty));
        }

        let started = Instant::now();
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(SendError::Client)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(SendError::Body)?.to_bytes();
            Ok::<_, SendError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.timeout))??;
        let latency = started.elapsed();
        let rsc = parts
            .headers
            .get(X_M2M_RSC)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(Reply {
            status: parts.status,
            rsc,
            body,
            latency,
        })
    }
}

/// `application/json;ty=N`; digits always make a valid header value.
fn content_type(ty: u16) -> HeaderValue {
    HeaderValue::try_from(format!("application/json;ty={ty}")).unwrap_or(JSON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_trims_and_checks_scheme() {
        let t = Target::parse("http://127.0.0.1:8080/cse-in/").unwrap();
        assert_eq!(t.base, "http://127.0.0.1:8080/cse-in");
        assert_eq!(
            t.uri("ae/cnt/la").unwrap().to_string(),
            "http://127.0.0.1:8080/cse-in/ae/cnt/la"
        );
        let t = Target::parse("https://[::1]:8443/cse-in").unwrap();
        assert_eq!(t.scheme, Scheme::Https);
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("h.example"), "h.example");
        assert!(matches!(
            Target::parse("ftp://h/cse-in"),
            Err(BenchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            Target::parse("127.0.0.1:8080/cse-in"),
            Err(BenchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Target::parse("http://h/cse-in?x=1"),
            Err(BenchError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn dbg_is_taken_from_onem2m_body_or_text() {
        assert_eq!(
            debug_text(br#"{"m2m:dbg":"missing srv"}"#).as_deref(),
            Some("missing srv")
        );
        assert_eq!(debug_text(b"  oops \n").as_deref(), Some("oops"));
        assert_eq!(debug_text(b""), None);
        let long = "x".repeat(500);
        assert_eq!(debug_text(long.as_bytes()).map(|s| s.len()), Some(203));
    }

    #[test]
    fn reply_matching_prefers_rsc() {
        let reply = |status: u16, rsc: Option<&str>| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            rsc: rsc.map(str::to_owned),
            body: Bytes::new(),
            latency: Duration::ZERO,
        };
        assert!(reply(201, Some("2001")).is(2001, StatusCode::CREATED));
        assert!(!reply(201, Some("2004")).is(2001, StatusCode::CREATED));
        assert!(reply(201, None).is(2001, StatusCode::CREATED));
        assert!(!reply(200, None).is(2001, StatusCode::CREATED));
        assert!(!reply(403, Some("4103")).is(2001, StatusCode::CREATED));
        assert_eq!(reply(403, Some("4103")).kind(), "HTTP 403 RSC 4103");
        assert_eq!(reply(500, None).kind(), "HTTP 500");
    }
}
