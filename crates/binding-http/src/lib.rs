//! TS-0009 binding of oneM2M request and response primitives to HTTP/1.1.
//!
//! The server half ([`decode_request`], [`encode_response`]) is pure: it maps `http` types to
//! [`m2mtrust_model::Request`] / [`m2mtrust_model::Response`] and does no I/O, so the listener in
//! `m2mtrust-server` owns sockets, limits on the wire and TLS. The client half ([`HttpClient`])
//! sends primitives to another node (notifications, tests) over plain HTTP.
//!
//! Clauses: TS-0009 §6.2.1 (method), §6.2.2.1 (path component), §6.2.2.2 (query component),
//! §6.3 (status line), §6.4 (header fields).

mod client;
mod path;
mod query;
mod server;

pub use client::{ClientError, HttpClient, decode_response, encode_request};
pub use path::{path_to_target, target_to_path};
pub use query::encode_query;
pub use server::{DecodeError, Limits, decode_request, encode_response, try_decode_request};

/// TS-0009 §6.4 (X-M2M-Origin): the originator.
pub const HEADER_ORIGIN: &str = "x-m2m-origin";
/// TS-0009 §6.4 (X-M2M-RI): the request identifier.
pub const HEADER_RI: &str = "x-m2m-ri";
/// TS-0009 §6.4 (X-M2M-RVI): the release version indicator.
pub const HEADER_RVI: &str = "x-m2m-rvi";
/// TS-0009 §6.4 (X-M2M-RSC): the response status code.
pub const HEADER_RSC: &str = "x-m2m-rsc";
/// `tkns`: oneM2M tokens, compact JWTs separated by spaces (project mapping; TS-0009 names it
/// after the short name).
pub const HEADER_TOKENS: &str = "x-m2m-tkns";
/// `tids`: Token-IDs, separated by spaces.
pub const HEADER_TOKEN_IDS: &str = "x-m2m-tids";
/// `ltids`: Local-Token-IDs, separated by spaces.
pub const HEADER_LOCAL_TOKEN_IDS: &str = "x-m2m-ltids";
/// `rids`: Role-IDs, separated by spaces.
pub const HEADER_ROLE_IDS: &str = "x-m2m-rids";
/// `tqi`: token request indicator, `true` or `false`.
pub const HEADER_TOKEN_REQUEST_INDICATOR: &str = "x-m2m-tqi";
/// `tqf` (response): token request information, compact JSON of `m2m:dynAuthTokenReqInfo`.
pub const HEADER_TOKEN_REQUEST_INFO: &str = "x-m2m-tqf";
/// `ati` (response): assigned Local-Token-IDs, `<lti>=<Token-ID>` pairs separated by spaces.
pub const HEADER_ASSIGNED_TOKENS: &str = "x-m2m-ati";
