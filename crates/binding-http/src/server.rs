//! Server half: HTTP request → request primitive, response primitive → HTTP response.
//!
//! TS-0009 §6.2.1 (method), §6.2.2 (request target), §6.3 (status line), §6.4 (header fields).

use bytes::Bytes;
use http::header::{CONTENT_LOCATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, request};
use http_body_util::Full;
use m2mtrust_model::{Operation, Request, ResourceType, Response, ResponseStatusCode};
use serde_json::Value;

use crate::path::{path_to_target, target_to_path};
use crate::query::decode_query;
use crate::{
    HEADER_ASSIGNED_TOKENS, HEADER_LOCAL_TOKEN_IDS, HEADER_ORIGIN, HEADER_RI, HEADER_ROLE_IDS,
    HEADER_RSC, HEADER_RVI, HEADER_TOKEN_IDS, HEADER_TOKEN_REQUEST_INDICATOR,
    HEADER_TOKEN_REQUEST_INFO, HEADER_TOKENS,
};

/// Limits applied to requests from peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    /// 1 MiB bodies.
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
        }
    }
}

/// Why an HTTP request could not be turned into a request primitive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// TS-0009 §6.2.1 (method): only POST, GET, PUT and DELETE carry primitives.
    #[error("HTTP method {0} does not map to a oneM2M operation")]
    MethodNotAllowed(String),
    /// TS-0009 §6.4 (X-M2M-RI) is mandatory in every request.
    #[error("missing X-M2M-RI header: the request identifier is mandatory")]
    MissingRequestId,
    /// A header value is not visible ASCII text.
    #[error("header {0} is not valid visible ASCII text")]
    InvalidHeader(&'static str),
    /// A header value does not have the form its parameter needs.
    #[error("header {0}: {1}")]
    InvalidHeaderValue(&'static str, String),
    /// The path does not name a target.
    #[error("request target {path:?} is invalid: {reason}")]
    InvalidTarget {
        /// The raw path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A body arrived without a Content-Type.
    #[error("request body without Content-Type; expected application/json")]
    MissingContentType,
    /// The body is not in a serialization this binding accepts.
    #[error(
        "unsupported media type {0:?}; expected application/json or application/vnd.onem2m-res+json"
    )]
    UnsupportedMediaType(String),
    /// The Content-Type `ty` parameter is not a resource type number.
    #[error("Content-Type parameter ty={0:?} is not a resource type number")]
    InvalidResourceType(String),
    /// The body is larger than [`Limits::max_body`].
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// A CREATE, UPDATE or NOTIFY arrived without content.
    #[error("a {0} request needs a body")]
    MissingBody(&'static str),
    /// The body is not JSON.
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),
    /// A query parameter has a bad value.
    #[error("query parameter {name}: {reason}")]
    InvalidQuery {
        /// The parameter's short name.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A query parameter this binding does not know.
    #[error("unknown query parameter {0:?}")]
    UnknownQueryParameter(String),
}

impl From<&DecodeError> for ResponseStatusCode {
    fn from(e: &DecodeError) -> Self {
        match e {
            DecodeError::MethodNotAllowed(_) => ResponseStatusCode::OPERATION_NOT_ALLOWED,
            DecodeError::MissingContentType | DecodeError::UnsupportedMediaType(_) => {
                ResponseStatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            DecodeError::MissingRequestId
            | DecodeError::InvalidHeader(_)
            | DecodeError::InvalidHeaderValue(..)
            | DecodeError::InvalidTarget { .. }
            | DecodeError::InvalidResourceType(_)
            | DecodeError::BodyTooLarge(_)
            | DecodeError::MissingBody(_)
            | DecodeError::InvalidJson(_)
            | DecodeError::InvalidQuery { .. }
            | DecodeError::UnknownQueryParameter(_) => ResponseStatusCode::BAD_REQUEST,
        }
    }
}

impl DecodeError {
    /// The error response for this failure, echoing `request_id` when the request had one.
    pub fn to_response(&self, request_id: Option<&str>) -> Response {
        let mut resp = Response::error(ResponseStatusCode::from(self), self.to_string());
        resp.request_id = request_id.unwrap_or_default().to_owned();
        resp
    }
}

/// The text of a header, `None` when absent.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, DecodeError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| DecodeError::InvalidHeader(name)))
        .transpose()
}

/// The request identifier, if the request carried a readable one (for echoing in errors).
fn request_id(headers: &HeaderMap) -> Option<&str> {
    header(headers, HEADER_RI).ok().flatten()
}

/// TS-0009 §6.4 (Content-Type): `application/json` or `application/vnd.onem2m-res+json`, with
/// an optional `ty` parameter for CREATE. Returns the `ty` value, if any.
fn content_type(value: &str) -> Result<Option<ResourceType>, DecodeError> {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/json" && media != "application/vnd.onem2m-res+json" {
        return Err(DecodeError::UnsupportedMediaType(value.to_owned()));
    }
    let mut ty = None;
    for param in parts {
        let Some((name, raw)) = param.split_once('=') else {
            continue;
        };
        // Other parameters (charset) do not change the JSON reading.
        if name.trim().eq_ignore_ascii_case("ty") {
            let raw = raw.trim().trim_matches('"');
            let n = raw
                .parse::<u16>()
                .map_err(|_| DecodeError::InvalidResourceType(raw.to_owned()))?;
            ty = Some(ResourceType(n));
        }
    }
    Ok(ty)
}

/// Decodes an HTTP request into a request primitive, with the reason on failure.
pub fn try_decode_request(
    parts: &request::Parts,
    body: &[u8],
    limits: &Limits,
) -> Result<Request, DecodeError> {
    let headers = &parts.headers;
    // TS-0009 §6.2.1 (method): POST is CREATE when Content-Type names a type, else NOTIFY.
    let method = &parts.method;
    if ![Method::POST, Method::GET, Method::PUT, Method::DELETE].contains(method) {
        return Err(DecodeError::MethodNotAllowed(method.to_string()));
    }
    let request_id = match header(headers, HEADER_RI)? {
        Some(ri) if !ri.is_empty() => ri.to_owned(),
        _ => return Err(DecodeError::MissingRequestId),
    };
    let from = header(headers, HEADER_ORIGIN)?
        .filter(|o| !o.is_empty())
        .map(str::to_owned);
    let release_version = header(headers, HEADER_RVI)?
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let to = path_to_target(parts.uri.path())?;
    let list = |name: &'static str| -> Result<Vec<String>, DecodeError> {
        Ok(header(headers, name)?
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default())
    };
    let tokens = list(HEADER_TOKENS)?;
    let token_ids = list(HEADER_TOKEN_IDS)?;
    let local_token_ids = list(HEADER_LOCAL_TOKEN_IDS)?;
    let role_ids = list(HEADER_ROLE_IDS)?;
    let token_request_indicator = match header(headers, HEADER_TOKEN_REQUEST_INDICATOR)? {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(DecodeError::InvalidHeaderValue(
                "X-M2M-TQI",
                format!("{v:?} is not true or false"),
            ));
        }
    };

    if body.len() > limits.max_body {
        return Err(DecodeError::BodyTooLarge(limits.max_body));
    }
    let ty = match header(headers, CONTENT_TYPE.as_str())? {
        Some(ct) => match content_type(ct) {
            Ok(ty) => ty,
            // A GET or DELETE without a body may carry any Content-Type; it is never read.
            Err(DecodeError::UnsupportedMediaType(_)) if body.is_empty() => None,
            Err(e) => return Err(e),
        },
        None if body.is_empty() => None,
        None => return Err(DecodeError::MissingContentType),
    };
    let operation = match *method {
        Method::POST if ty.is_some() => Operation::Create,
        Method::POST => Operation::Notify,
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        _ => Operation::Delete,
    };
    let content = if body.is_empty() {
        match operation {
            Operation::Create => return Err(DecodeError::MissingBody("CREATE")),
            Operation::Update => return Err(DecodeError::MissingBody("UPDATE")),
            Operation::Notify => return Err(DecodeError::MissingBody("NOTIFY")),
            Operation::Retrieve | Operation::Delete => None,
        }
    } else {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        Some(value)
    };
    let query = decode_query(parts.uri.query().unwrap_or_default())?;

    Ok(Request {
        operation,
        to,
        from,
        request_id,
        release_version,
        resource_type: if operation == Operation::Create {
            ty
        } else {
            None
        },
        content,
        result_content: query.result_content,
        filter: query.filter,
        discovery_result_type: query.discovery_result_type,
        tokens,
        token_ids,
        local_token_ids,
        role_ids,
        token_request_indicator,
    })
}

/// Decodes an HTTP request into a request primitive; on failure returns the error response to
/// send (4005 for an unmapped method, 4015 for a non-JSON body, 4000 otherwise), which echoes
/// `X-M2M-RI` when present.
// The error is the response the listener sends as it is; one move per failed request is cheaper
// than boxing on every call site.
#[allow(clippy::result_large_err)]
pub fn decode_request(
    parts: &request::Parts,
    body: &[u8],
    limits: &Limits,
) -> Result<Request, Response> {
    try_decode_request(parts, body, limits).map_err(|e| e.to_response(request_id(&parts.headers)))
}

/// Encodes a response primitive as an HTTP response. `rvi` is the request's `X-M2M-RVI`,
/// echoed when present.
///
/// TS-0009 §6.3 (status line) and §6.4 (X-M2M-RSC, X-M2M-RI, X-M2M-RVI, Content-Location).
pub fn encode_response(resp: &Response, rvi: Option<&str>) -> http::Response<Full<Bytes>> {
    let status = StatusCode::from_u16(resp.status.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match &resp.content {
        // Serializing a `Value` cannot fail; an empty body is the safe fallback.
        Some(content) => serde_json::to_vec(content).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut out = http::Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    headers.insert(HEADER_RSC, HeaderValue::from(resp.status.0));
    // Values a handler produced may contain bytes a header cannot carry; such a header is
    // left out rather than failing the whole response.
    let mut put = |name: &'static str, value: &str| match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => tracing::warn!(header = name, "response header value not representable"),
    };
    put(HEADER_RI, &resp.request_id);
    if let Some(rvi) = rvi {
        put(HEADER_RVI, rvi);
    }
    if !resp.assigned_tokens.is_empty() {
        let pairs: Vec<String> = resp
            .assigned_tokens
            .iter()
            .map(|(lti, tkid)| format!("{lti}={tkid}"))
            .collect();
        put(HEADER_ASSIGNED_TOKENS, &pairs.join(" "));
    }
    if let Some(tqf) = &resp.token_request_info {
        put(HEADER_TOKEN_REQUEST_INFO, &tqf.to_string());
    }
    if let Some(location) = &resp.content_location {
        put(CONTENT_LOCATION.as_str(), &target_to_path(location));
    }
    if resp.content.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use m2mtrust_model::{FilterUsage, ResultContent};
    use serde_json::json;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[allow(clippy::result_large_err)]
    fn decode(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Request, Response> {
        decode_request(
            &parts(method, uri, headers),
            body.as_bytes(),
            &Limits::default(),
        )
    }

    fn err(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Response {
        decode(method, uri, headers, body).unwrap_err()
    }

    const RI: (&str, &str) = ("X-M2M-RI", "req-1");
    const JSON: (&str, &str) = ("Content-Type", "application/json");

    #[test]
    fn methods_map_to_operations() {
        let create = decode(
            "POST",
            "/cse-in",
            &[RI, ("Content-Type", "application/json;ty=2")],
            r#"{"m2m:ae":{}}"#,
        )
        .unwrap();
        assert_eq!(create.operation, Operation::Create);
        assert_eq!(create.resource_type, Some(ResourceType::AE));
        assert_eq!(create.content, Some(json!({"m2m:ae": {}})));

        let notify = decode("POST", "/cse-in/ae", &[RI, JSON], r#"{"m2m:sgn":{}}"#).unwrap();
        assert_eq!(notify.operation, Operation::Notify);
        assert_eq!(notify.resource_type, None);

        let get = decode("GET", "/cse-in", &[RI], "").unwrap();
        assert_eq!(get.operation, Operation::Retrieve);
        assert_eq!(get.content, None);

        let put = decode("PUT", "/cse-in/ae", &[RI, JSON], r#"{"m2m:ae":{"lbl":[]}}"#).unwrap();
        assert_eq!(put.operation, Operation::Update);

        let del = decode("DELETE", "/cse-in/ae", &[RI], "").unwrap();
        assert_eq!(del.operation, Operation::Delete);
    }

    #[test]
    fn dynamic_authorization_parameters_travel_both_ways() {
        let mut sent = Request::new(Operation::Retrieve, "cse-in/cnt", Some("Cae1".into()));
        sent.request_id = "req-1".into();
        sent.tokens = vec!["a.b.c".into(), "d.e.f".into()];
        sent.token_ids = vec!["t1@das.example".into()];
        sent.local_token_ids = vec!["lt1".into()];
        sent.role_ids = vec!["r1@das.example".into(), "r2@das.example".into()];
        sent.token_request_indicator = true;
        let http = crate::encode_request("http://127.0.0.1:8080", &sent).unwrap();
        let (parts, _) = http.into_parts();
        let got = decode_request(&parts, b"", &Limits::default()).unwrap();
        assert_eq!(got.tokens, sent.tokens);
        assert_eq!(got.token_ids, sent.token_ids);
        assert_eq!(got.local_token_ids, sent.local_token_ids);
        assert_eq!(got.role_ids, sent.role_ids);
        assert!(got.token_request_indicator);

        let plain = decode("GET", "/cse-in", &[RI], "").unwrap();
        assert!(!plain.token_request_indicator && plain.role_ids.is_empty());
        let off = decode("GET", "/cse-in", &[RI, ("X-M2M-TQI", "FALSE")], "").unwrap();
        assert!(!off.token_request_indicator);
        let bad = err("GET", "/cse-in", &[RI, ("X-M2M-TQI", "yes")], "");
        assert_eq!(bad.status, ResponseStatusCode::BAD_REQUEST);
        assert!(bad.debug_message().unwrap().contains("X-M2M-TQI"));

        let mut resp = Response::error(ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE, "no");
        let tqf = json!({"dasi": [{"uri": "https://das/das", "dreq": {"or": "//sp/id-in/Cae1", "op": 2}}]});
        resp.token_request_info = Some(tqf.clone());
        resp.assigned_tokens = vec![("lt1".into(), "t1@das.example".into())];
        let http = encode_response(&resp, None);
        let (parts, body) = http.into_parts();
        let body = futures_body(body);
        let back = crate::decode_response(&parts, &body).unwrap();
        assert_eq!(back.token_request_info, Some(tqf));
        assert_eq!(back.assigned_tokens, resp.assigned_tokens);
        assert_eq!(back.status, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
    }

    fn futures_body(body: Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(body.collect()).unwrap().to_bytes().to_vec()
    }

    #[test]
    fn other_methods_are_4005() {
        for m in ["PATCH", "HEAD", "OPTIONS", "TRACE"] {
            let r = err(m, "/cse-in", &[RI], "");
            assert_eq!(r.status, ResponseStatusCode::OPERATION_NOT_ALLOWED, "{m}");
            assert_eq!(r.request_id, "req-1");
            assert!(r.debug_message().unwrap().contains(m));
        }
    }

    #[test]
    fn headers_map_to_parameters() {
        let r = decode(
            "GET",
            "/~/id-in/cse-in",
            &[RI, ("X-M2M-Origin", "CAdmin"), ("X-M2M-RVI", "3")],
            "",
        )
        .unwrap();
        assert_eq!(r.to, "/id-in/cse-in");
        assert_eq!(r.from.as_deref(), Some("CAdmin"));
        assert_eq!(r.request_id, "req-1");
        assert_eq!(r.release_version.as_deref(), Some("3"));

        let r = decode(
            "GET",
            "/_/sp.example/id-in/cse-in",
            &[RI, ("X-M2M-Origin", "")],
            "",
        )
        .unwrap();
        assert_eq!(r.to, "//sp.example/id-in/cse-in");
        assert_eq!(r.from, None);
        assert_eq!(r.release_version, None);
    }

    #[test]
    fn missing_or_empty_request_id_is_4000() {
        for headers in [&[][..], &[("X-M2M-RI", "")][..]] {
            let r = err("GET", "/cse-in", headers, "");
            assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
            assert!(r.debug_message().unwrap().contains("X-M2M-RI"));
            assert_eq!(r.request_id, "");
        }
    }

    #[test]
    fn non_ascii_headers_are_4000() {
        for name in ["X-M2M-Origin", "X-M2M-RVI", "Content-Type", "X-M2M-RI"] {
            let mut p = parts("GET", "/cse-in", &[RI]);
            p.headers
                .insert(name, HeaderValue::from_bytes(b"\xC3\xA9").unwrap());
            let r = decode_request(&p, b"", &Limits::default()).unwrap_err();
            assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{name}");
            assert!(
                r.debug_message()
                    .unwrap()
                    .contains(&name.to_ascii_lowercase()),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_target_is_4000() {
        let r = err("GET", "/", &[RI], "");
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
        assert!(r.debug_message().unwrap().contains("target"));
    }

    #[test]
    fn content_type_variants() {
        for ct in [
            "application/json",
            "application/vnd.onem2m-res+json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/vnd.onem2m-res+json ; ty = 3 ; charset=utf-8",
            "application/json;ty=\"3\"",
            "application/json;flag",
        ] {
            let r = decode("POST", "/cse-in", &[RI, ("Content-Type", ct)], "{}").unwrap();
            let expect_create = ct.contains("ty");
            assert_eq!(r.operation == Operation::Create, expect_create, "{ct}");
            if expect_create {
                assert_eq!(r.resource_type, Some(ResourceType::CONTAINER), "{ct}");
            }
        }
        // `ty` on an UPDATE is read but does not make a resource type.
        let r = decode(
            "PUT",
            "/cse-in",
            &[RI, ("Content-Type", "application/json;ty=3")],
            "{}",
        )
        .unwrap();
        assert_eq!(r.resource_type, None);
    }

    #[test]
    fn unsupported_media_types_are_4015() {
        for ct in [
            "application/xml",
            "application/vnd.onem2m-res+xml;ty=2",
            "application/cbor",
            "text/plain",
            "",
        ] {
            let r = err("POST", "/cse-in", &[RI, ("Content-Type", ct)], "<x/>");
            assert_eq!(r.status, ResponseStatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        }
        let r = err("PUT", "/cse-in", &[RI], "{}");
        assert_eq!(r.status, ResponseStatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(r.debug_message().unwrap().contains("Content-Type"));
        // Without a body the Content-Type is never read.
        let ok = decode(
            "GET",
            "/cse-in",
            &[RI, ("Content-Type", "application/xml")],
            "",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn bad_ty_is_4000() {
        for ct in [
            "application/json;ty=ae",
            "application/json;ty=",
            "application/json;ty=-1",
        ] {
            let r = err("POST", "/cse-in", &[RI, ("Content-Type", ct)], "{}");
            assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{ct}");
            assert!(r.debug_message().unwrap().contains("ty="), "{ct}");
        }
    }

    #[test]
    fn malformed_json_is_4000_with_parser_message() {
        let r = err(
            "POST",
            "/cse-in",
            &[RI, ("Content-Type", "application/json;ty=2")],
            "{",
        );
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
        let msg = r.debug_message().unwrap();
        assert!(
            msg.starts_with("malformed JSON body: ") && msg.contains("line 1"),
            "{msg}"
        );
        assert_eq!(r.request_id, "req-1");
    }

    #[test]
    fn empty_body_on_post_and_put_is_4000() {
        for (m, ct) in [
            ("POST", "application/json;ty=2"),
            ("POST", "application/json"),
            ("PUT", "application/json"),
        ] {
            let r = err(m, "/cse-in", &[RI, ("Content-Type", ct)], "");
            assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{m} {ct}");
            assert!(r.debug_message().unwrap().contains("needs a body"));
        }
        let r = err("POST", "/cse-in", &[RI], "");
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
    }

    #[test]
    fn body_over_limit_is_4000() {
        let p = parts("POST", "/cse-in", &[RI, JSON]);
        let limits = Limits { max_body: 4 };
        assert!(decode_request(&p, b"{}", &limits).is_ok());
        assert!(decode_request(&p, b"[1,2]", &limits).is_err());
        let r = decode_request(&p, b"[1, 2]", &limits).unwrap_err();
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
        assert_eq!(r.debug_message(), Some("request body exceeds 4 bytes"));
        assert_eq!(Limits::default().max_body, 1 << 20);
    }

    #[test]
    fn query_reaches_the_primitive() {
        let r = decode("GET", "/cse-in?fu=1&ty=3+4&rcn=8&lim=2&drt=2", &[RI], "").unwrap();
        assert_eq!(r.filter.filter_usage, FilterUsage::Discovery);
        assert_eq!(r.filter.resource_types.len(), 2);
        assert_eq!(r.filter.limit, Some(2));
        assert_eq!(r.result_content, Some(ResultContent::ChildResources));
        assert_eq!(
            r.discovery_result_type,
            m2mtrust_model::DiscoveryResultType::Unstructured
        );
        let r = err("GET", "/cse-in?lim=x", &[RI], "");
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST);
        assert!(r.debug_message().unwrap().contains("lim"));
        let r = err("GET", "/cse-in?bogus=1", &[RI], "");
        assert!(r.debug_message().unwrap().contains("bogus"));
    }

    #[test]
    fn decode_error_codes() {
        use ResponseStatusCode as R;
        let cases = [
            (
                DecodeError::MethodNotAllowed("X".into()),
                R::OPERATION_NOT_ALLOWED,
            ),
            (DecodeError::MissingContentType, R::UNSUPPORTED_MEDIA_TYPE),
            (
                DecodeError::UnsupportedMediaType("x".into()),
                R::UNSUPPORTED_MEDIA_TYPE,
            ),
            (DecodeError::MissingRequestId, R::BAD_REQUEST),
            (DecodeError::BodyTooLarge(1), R::BAD_REQUEST),
            (
                DecodeError::UnknownQueryParameter("x".into()),
                R::BAD_REQUEST,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(R::from(&e), code, "{e}");
        }
    }

    async fn body_of(resp: http::Response<Full<Bytes>>) -> Vec<u8> {
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn encodes_responses() {
        let mut resp = Response::new(
            ResponseStatusCode::CREATED,
            Some(json!({"m2m:ae": {"ri": "x"}})),
        );
        resp.request_id = "req-9".into();
        resp.content_location = Some("cse-in/ae 1".into());
        let http = encode_response(&resp, Some("3"));
        assert_eq!(http.status(), StatusCode::CREATED);
        let h = http.headers();
        assert_eq!(h[HEADER_RSC], "2001");
        assert_eq!(h[HEADER_RI], "req-9");
        assert_eq!(h[HEADER_RVI], "3");
        assert_eq!(h[CONTENT_LOCATION], "/cse-in/ae%201");
        assert_eq!(h[CONTENT_TYPE], "application/json");
        let body: Value = serde_json::from_slice(&body_of(http).await).unwrap();
        assert_eq!(body, json!({"m2m:ae": {"ri": "x"}}));
    }

    #[tokio::test]
    async fn encodes_bare_responses() {
        let resp = Response::new(ResponseStatusCode::DELETED, None);
        let http = encode_response(&resp, None);
        assert_eq!(http.status(), StatusCode::OK);
        let h = http.headers();
        assert_eq!(h[HEADER_RSC], "2002");
        assert!(h.get(HEADER_RVI).is_none());
        assert!(h.get(CONTENT_TYPE).is_none());
        assert!(h.get(CONTENT_LOCATION).is_none());
        assert!(body_of(http).await.is_empty());

        let mut resp = Response::new(ResponseStatusCode(4999), None);
        resp.content_location = Some("/id-in/cse-in".into());
        resp.request_id = "bad\nri".into();
        let http = encode_response(&resp, None);
        assert_eq!(http.status(), StatusCode::BAD_REQUEST);
        assert_eq!(http.headers()[HEADER_RSC], "4999");
        assert_eq!(http.headers()[CONTENT_LOCATION], "/~/id-in/cse-in");
        assert!(http.headers().get(HEADER_RI).is_none());
        let http = encode_response(&Response::new(ResponseStatusCode::NOT_FOUND, None), None);
        assert_eq!(http.status(), StatusCode::NOT_FOUND);
    }
}
