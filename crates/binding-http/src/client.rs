//! Client half: sends a request primitive over HTTP/1.1 and decodes the response (TS-0009 §6).
//!
//! Addressing rule: when the base URL names only a host (`http://host:port` or
//! `http://host:port/`), the path is derived from the request's `to` by TS-0009 §6.2.2.1
//! (path component). When the base URL has a path, it is the target as is: a notification is sent
//! to its `nu` URL unchanged, whatever `to` says. Query parameters of the request are appended to
//! any query the URL already has.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_LOCATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use m2mtrust_model::{Operation, Request, Response, ResponseStatusCode};

use crate::path::{path_to_target, target_to_path};
use crate::query::encode_query;
use crate::server::Limits;
use crate::{
    HEADER_ASSIGNED_TOKENS, HEADER_LOCAL_TOKEN_IDS, HEADER_ORIGIN, HEADER_RI, HEADER_ROLE_IDS,
    HEADER_RSC, HEADER_RVI, HEADER_TOKEN_IDS, HEADER_TOKEN_REQUEST_INDICATOR,
    HEADER_TOKEN_REQUEST_INFO, HEADER_TOKENS,
};

/// Why a request could not be sent or its response not read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Only `http://` is supported by this client.
    #[error("unsupported URL scheme in {0:?}; this client speaks plain http only")]
    UnsupportedScheme(String),
    /// A request parameter cannot be carried in a header.
    #[error("{0} cannot be carried in an HTTP header (not visible ASCII)")]
    InvalidHeader(&'static str),
    /// No complete response within the timeout.
    #[error("no response from {url} within {timeout:?}")]
    Timeout {
        /// The request URL.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Connecting or exchanging the request failed.
    #[error("HTTP request to {url} failed: {source}")]
    Transport {
        /// The request URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// Reading the response body failed.
    #[error("reading the response body from {url} failed: {source}")]
    Body {
        /// The request URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: hyper::Error,
    },
    /// The response body is larger than the client accepts.
    #[error("response body from {url} exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The request URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The `X-M2M-RSC` header is not a number.
    #[error("X-M2M-RSC header {0:?} is not a response status code")]
    InvalidRsc(String),
    /// The response body is not JSON.
    #[error("response body is not JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// Building the HTTP request failed.
    #[error("cannot build the HTTP request: {0}")]
    Build(#[source] http::Error),
}

/// An HTTP/1.1 client for request primitives, with keep-alive connection pooling and a timeout
/// per request (connect, send and read the whole response).
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    /// A client whose requests fail after `timeout`, accepting response bodies up to the
    /// default [`Limits`].
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            timeout,
            max_body: Limits::default().max_body,
        }
    }

    /// The same client with another response body limit.
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// Sends `req` to `base_url` (see the module docs for how the URL is formed) and decodes
    /// the response primitive.
    pub async fn send(&self, base_url: &str, req: &Request) -> Result<Response, ClientError> {
        let uri = request_uri(base_url, req)?;
        let url = uri.to_string();
        let http_req = build_request(uri, req)?;
        match tokio::time::timeout(self.timeout, self.exchange(&url, http_req)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                url,
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        http_req: http::Request<Full<Bytes>>,
    ) -> Result<Response, ClientError> {
        let resp =
            self.client
                .request(http_req)
                .await
                .map_err(|source| ClientError::Transport {
                    url: url.to_owned(),
                    source,
                })?;
        let (parts, mut body) = resp.into_parts();
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Body {
                url: url.to_owned(),
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > self.max_body {
                    return Err(ClientError::ResponseTooLarge {
                        url: url.to_owned(),
                        limit: self.max_body,
                    });
                }
                buf.extend_from_slice(&data);
            }
        }
        decode_response(&parts, &buf)
    }
}

/// The request URI: the base URL, with the `to` path when the base names only a host, plus the
/// request's query parameters.
fn request_uri(base_url: &str, req: &Request) -> Result<Uri, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: base_url.to_owned(),
        reason,
    };
    let base: Uri = base_url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    match base.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(ClientError::UnsupportedScheme(base_url.to_owned())),
        None => return Err(invalid("no scheme".into())),
    }
    let authority = base.authority().ok_or_else(|| invalid("no host".into()))?;
    let host_only = matches!(base.path(), "" | "/") && base.query().is_none();
    let path = if host_only {
        target_to_path(&req.to)
    } else {
        base.path().to_owned()
    };
    let extra = encode_query(req);
    let query = match (base.query(), extra.is_empty()) {
        (Some(q), false) => format!("?{q}&{extra}"),
        (Some(q), true) => format!("?{q}"),
        (None, false) => format!("?{extra}"),
        (None, true) => String::new(),
    };
    format!("http://{authority}{path}{query}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))
}

fn header_value(name: &'static str, value: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value).map_err(|_| ClientError::InvalidHeader(name))
}

/// TS-0009 §6.2.1 (method) and §6.4 (header fields) for an outgoing request.
fn build_request(uri: Uri, req: &Request) -> Result<http::Request<Full<Bytes>>, ClientError> {
    let method = match req.operation {
        Operation::Create | Operation::Notify => Method::POST,
        Operation::Retrieve => Method::GET,
        Operation::Update => Method::PUT,
        Operation::Delete => Method::DELETE,
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(ACCEPT, "application/json")
        .header(HEADER_RI, header_value("X-M2M-RI", &req.request_id)?);
    if let Some(from) = &req.from {
        builder = builder.header(HEADER_ORIGIN, header_value("X-M2M-Origin", from)?);
    }
    if let Some(rvi) = &req.release_version {
        builder = builder.header(HEADER_RVI, header_value("X-M2M-RVI", rvi)?);
    }
    for (name, label, values) in [
        (HEADER_TOKENS, "X-M2M-TKNS", &req.tokens),
        (HEADER_TOKEN_IDS, "X-M2M-TIDS", &req.token_ids),
        (HEADER_LOCAL_TOKEN_IDS, "X-M2M-LTIDS", &req.local_token_ids),
        (HEADER_ROLE_IDS, "X-M2M-RIDS", &req.role_ids),
    ] {
        if !values.is_empty() {
            builder = builder.header(name, header_value(label, &values.join(" "))?);
        }
    }
    if req.token_request_indicator {
        builder = builder.header(HEADER_TOKEN_REQUEST_INDICATOR, "true");
    }
    // A CREATE always names its type, even without content, so the receiver does not read it
    // as a NOTIFY.
    let content_type = match (req.operation, req.resource_type) {
        (Operation::Create, Some(ty)) => Some(format!("application/json;ty={}", ty.0)),
        _ if req.content.is_some() => Some("application/json".to_owned()),
        _ => None,
    };
    if let Some(ct) = content_type {
        builder = builder.header(CONTENT_TYPE, ct);
    }
    let body = match &req.content {
        Some(content) => serde_json::to_vec(content).unwrap_or_default(),
        None => Vec::new(),
    };
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(ClientError::Build)
}

/// Decodes an HTTP response into a response primitive. Without `X-M2M-RSC` the status class of
/// the HTTP status gives 2000, 4000 or 5000.
/// Builds the HTTP request for a primitive: the URL rule of [`HttpClient::send`], method, headers,
/// query parameters and JSON body (TS-0009 §6). For clients with their own connections.
pub fn encode_request(
    base_url: &str,
    req: &Request,
) -> Result<http::Request<Full<Bytes>>, ClientError> {
    build_request(request_uri(base_url, req)?, req)
}

/// Decodes an HTTP response into a response primitive (TS-0009 §6.4): `X-M2M-RSC` (or the HTTP
/// status class when absent), `X-M2M-RI`, `Content-Location`, JSON content.
pub fn decode_response(
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Response, ClientError> {
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let status = match parts.headers.get(HEADER_RSC) {
        Some(v) => {
            let raw = String::from_utf8_lossy(v.as_bytes()).into_owned();
            raw.trim()
                .parse::<u16>()
                .map(ResponseStatusCode)
                .map_err(|_| ClientError::InvalidRsc(raw))?
        }
        None => match parts.status.as_u16() {
            100..=299 => ResponseStatusCode::OK,
            400..=499 => ResponseStatusCode::BAD_REQUEST,
            _ => ResponseStatusCode::INTERNAL_SERVER_ERROR,
        },
    };
    let content = if body.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(body).map_err(ClientError::InvalidJson)?)
    };
    let content_location = text(CONTENT_LOCATION.as_str())
        .map(|loc| path_to_target(loc).unwrap_or_else(|_| loc.to_owned()));
    let assigned_tokens = text(HEADER_ASSIGNED_TOKENS)
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(l, t)| (l.to_owned(), t.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    // A malformed `tqf` is dropped: it only informs the originator where to ask.
    let token_request_info =
        text(HEADER_TOKEN_REQUEST_INFO).and_then(|v| serde_json::from_str(v).ok());
    Ok(Response {
        status,
        request_id: text(HEADER_RI).unwrap_or_default().to_owned(),
        content,
        content_location,
        assigned_tokens,
        token_request_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2mtrust_model::{ResourceType, ResultContent};
    use serde_json::json;

    fn req(op: Operation, to: &str) -> Request {
        let mut r = Request::new(op, to, Some("CAdmin".into()));
        r.request_id = "rq-1".into();
        r
    }

    #[test]
    fn host_only_base_url_takes_the_target_path() {
        let r = req(Operation::Retrieve, "cse-in/ae");
        for base in ["http://127.0.0.1:9000", "http://127.0.0.1:9000/"] {
            assert_eq!(
                request_uri(base, &r).unwrap().to_string(),
                "http://127.0.0.1:9000/cse-in/ae"
            );
        }
        let r = req(Operation::Retrieve, "/id-in/cse-in");
        assert_eq!(
            request_uri("http://h", &r).unwrap().to_string(),
            "http://h/~/id-in/cse-in"
        );
        let r = req(Operation::Retrieve, "//sp/id-in/cse-in");
        assert_eq!(
            request_uri("http://h", &r).unwrap().to_string(),
            "http://h/_/sp/id-in/cse-in"
        );
    }

    #[test]
    fn url_with_path_is_used_as_is() {
        let mut r = req(Operation::Notify, "cse-in/ae");
        assert_eq!(
            request_uri("http://h:1/notify/here?k=v", &r)
                .unwrap()
                .to_string(),
            "http://h:1/notify/here?k=v"
        );
        r.result_content = Some(ResultContent::Nothing);
        assert_eq!(
            request_uri("http://h:1/n?k=v", &r).unwrap().to_string(),
            "http://h:1/n?k=v&rcn=0"
        );
        assert_eq!(
            request_uri("http://h:1/n", &r).unwrap().to_string(),
            "http://h:1/n?rcn=0"
        );
        assert_eq!(
            request_uri("http://h:1/?a=b", &r).unwrap().to_string(),
            "http://h:1/?a=b&rcn=0"
        );
    }

    #[test]
    fn bad_urls_are_rejected() {
        let r = req(Operation::Retrieve, "cse-in");
        assert!(matches!(
            request_uri("https://h/", &r),
            Err(ClientError::UnsupportedScheme(_))
        ));
        for url in ["not a url", "/cse-in", "", "http://"] {
            let e = request_uri(url, &r).unwrap_err();
            assert!(matches!(e, ClientError::InvalidUrl { .. }), "{url}: {e}");
            assert!(e.to_string().contains("invalid URL"), "{e}");
        }
    }

    #[test]
    fn builds_methods_and_headers() {
        let uri: Uri = "http://h/cse-in".parse().unwrap();
        let mut create = req(Operation::Create, "cse-in");
        create.resource_type = Some(ResourceType::AE);
        create.content = Some(json!({"m2m:ae": {}}));
        let h = build_request(uri.clone(), &create).unwrap();
        assert_eq!(h.method(), Method::POST);
        assert_eq!(h.headers()[CONTENT_TYPE], "application/json;ty=2");
        assert_eq!(h.headers()[HEADER_ORIGIN], "CAdmin");
        assert_eq!(h.headers()[HEADER_RI], "rq-1");
        assert_eq!(h.headers()[HEADER_RVI], "3");

        let mut notify = req(Operation::Notify, "cse-in");
        notify.content = Some(json!({"m2m:sgn": {}}));
        let h = build_request(uri.clone(), &notify).unwrap();
        assert_eq!(h.method(), Method::POST);
        assert_eq!(h.headers()[CONTENT_TYPE], "application/json");

        let mut get = req(Operation::Retrieve, "cse-in");
        get.from = None;
        get.release_version = None;
        let h = build_request(uri.clone(), &get).unwrap();
        assert_eq!(h.method(), Method::GET);
        assert!(h.headers().get(CONTENT_TYPE).is_none());
        assert!(h.headers().get(HEADER_ORIGIN).is_none());
        assert!(h.headers().get(HEADER_RVI).is_none());

        assert_eq!(
            build_request(uri.clone(), &req(Operation::Update, "x"))
                .unwrap()
                .method(),
            Method::PUT
        );
        assert_eq!(
            build_request(uri.clone(), &req(Operation::Delete, "x"))
                .unwrap()
                .method(),
            Method::DELETE
        );

        let mut bad = req(Operation::Retrieve, "x");
        bad.from = Some("C\nx".into());
        assert!(matches!(
            build_request(uri.clone(), &bad),
            Err(ClientError::InvalidHeader("X-M2M-Origin"))
        ));
        let mut bad = req(Operation::Retrieve, "x");
        bad.request_id = "\u{1}".into();
        assert!(matches!(
            build_request(uri, &bad),
            Err(ClientError::InvalidHeader("X-M2M-RI"))
        ));
    }

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn decodes_responses() {
        let p = parts(
            201,
            &[
                (HEADER_RSC, "2001"),
                (HEADER_RI, "rq-1"),
                ("Content-Location", "/cse-in/ae"),
            ],
        );
        let r = decode_response(&p, br#"{"m2m:ae":{}}"#).unwrap();
        assert_eq!(r.status, ResponseStatusCode::CREATED);
        assert_eq!(r.request_id, "rq-1");
        assert_eq!(r.content, Some(json!({"m2m:ae": {}})));
        assert_eq!(r.content_location.as_deref(), Some("cse-in/ae"));

        let r = decode_response(&parts(200, &[("Content-Location", "weird")]), b"").unwrap();
        assert_eq!(r.content, None);
        assert_eq!(r.content_location.as_deref(), Some("weird"));
    }

    #[test]
    fn missing_rsc_is_derived_from_http_status() {
        for (http, rsc) in [
            (200, 2000),
            (204, 2000),
            (404, 4000),
            (400, 4000),
            (500, 5000),
            (503, 5000),
        ] {
            let r = decode_response(&parts(http, &[]), b"").unwrap();
            assert_eq!(r.status, ResponseStatusCode(rsc), "{http}");
        }
    }

    #[test]
    fn bad_responses_are_errors() {
        let e = decode_response(&parts(200, &[(HEADER_RSC, "ok")]), b"").unwrap_err();
        assert!(
            matches!(e, ClientError::InvalidRsc(ref s) if s == "ok"),
            "{e}"
        );
        let e = decode_response(&parts(200, &[(HEADER_RSC, "2000")]), b"<xml/>").unwrap_err();
        assert!(matches!(e, ClientError::InvalidJson(_)), "{e}");
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        // Bind and drop to find a port with nothing listening.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = HttpClient::new(Duration::from_secs(5));
        let e = client
            .send(
                &format!("http://{addr}"),
                &req(Operation::Retrieve, "cse-in"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Transport { .. }), "{e}");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sock);
        });
        let client = HttpClient::new(Duration::from_millis(200));
        let e = client
            .send(
                &format!("http://{addr}"),
                &req(Operation::Retrieve, "cse-in"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        hold.abort();
    }
}
