//! Request and response primitives (TS-0004 §6.4), independent of any binding.

use serde_json::Value;

use crate::rsc::ResponseStatusCode;
use crate::time::Timestamp;
use crate::types::{DiscoveryResultType, Operation, ResourceType, ResultContent};

/// The release version indicators this implementation accepts (`X-M2M-RVI`).
pub const SUPPORTED_RVI: &[&str] = &["2a", "3", "4", "5"];

/// TS-0004 §6.3.4.2.27 (filterUsage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FilterUsage {
    /// Filter criteria select what a RETRIEVE returns (default).
    #[default]
    ConditionalRetrieval,
    /// `fu=1`: the RETRIEVE is a discovery returning addresses.
    Discovery,
}

/// TS-0004 §6.3.5.8 (m2m:filterCriteria): the conditions this CSE evaluates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterCriteria {
    /// `fu`.
    pub filter_usage: FilterUsage,
    /// `ty`: any of these types.
    pub resource_types: Vec<ResourceType>,
    /// `lbl`: any of these labels.
    pub labels: Vec<String>,
    /// `cra`: created strictly after.
    pub created_after: Option<Timestamp>,
    /// `crb`: created strictly before.
    pub created_before: Option<Timestamp>,
    /// `ms`: modified since.
    pub modified_since: Option<Timestamp>,
    /// `us`: unmodified since.
    pub unmodified_since: Option<Timestamp>,
    /// `exa`: expires after.
    pub expire_after: Option<Timestamp>,
    /// `exb`: expires before.
    pub expire_before: Option<Timestamp>,
    /// `lim`: at most this many results.
    pub limit: Option<u32>,
    /// `ofst`: skip this many results (1-based per TS-0004; 1 = no skip).
    pub offset: Option<u32>,
    /// `lvl`: depth below the target.
    pub level: Option<u32>,
}

impl FilterCriteria {
    /// True when any condition other than `fu`, `lim`, `ofst` and `lvl` is set.
    pub fn has_conditions(&self) -> bool {
        !self.resource_types.is_empty()
            || !self.labels.is_empty()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.modified_since.is_some()
            || self.unmodified_since.is_some()
            || self.expire_after.is_some()
            || self.expire_before.is_some()
    }
}

/// A request primitive after the binding decoded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `op`.
    pub operation: Operation,
    /// `to`, in primitive form (CSE-relative without a leading slash, SP-relative `/…`, absolute `//…`).
    pub to: String,
    /// `fr`; `None` when the request carried no originator or an empty one.
    pub from: Option<String>,
    /// `rqi`.
    pub request_id: String,
    /// `rvi`.
    pub release_version: Option<String>,
    /// `ty` of a CREATE.
    pub resource_type: Option<ResourceType>,
    /// `pc`.
    pub content: Option<Value>,
    /// `rcn`.
    pub result_content: Option<ResultContent>,
    /// `fc`.
    pub filter: FilterCriteria,
    /// `drt`.
    pub discovery_result_type: DiscoveryResultType,
    /// `tkns`: oneM2M tokens (compact JWTs, TS-0003 §7.3.2.6).
    pub tokens: Vec<String>,
    /// `tids`: Token-IDs the hosting CSE would fetch from the issuing DAS.
    pub token_ids: Vec<String>,
    /// `ltids`: Local-Token-IDs the hosting CSE assigned earlier.
    pub local_token_ids: Vec<String>,
    /// `rids`: Role-IDs the originator claims (TS-0003 §7.4); the hosting CSE uses only those
    /// it can verify.
    pub role_ids: Vec<String>,
    /// `tqi`: the originator is prepared to request tokens (TS-0003 §7.3.2.3 step 1), so a
    /// refusal names the Dynamic Authorization Systems to ask (`tqf`).
    pub token_request_indicator: bool,
}

impl Request {
    /// A request with the mandatory parameters set and everything else absent.
    pub fn new(operation: Operation, to: impl Into<String>, from: Option<String>) -> Self {
        Self {
            operation,
            to: to.into(),
            from,
            request_id: String::new(),
            release_version: Some("3".into()),
            resource_type: None,
            content: None,
            result_content: None,
            filter: FilterCriteria::default(),
            discovery_result_type: DiscoveryResultType::default(),
            tokens: Vec::new(),
            token_ids: Vec::new(),
            local_token_ids: Vec::new(),
            role_ids: Vec::new(),
            token_request_indicator: false,
        }
    }
}

/// A response primitive, before the binding encodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// `rsc`.
    pub status: ResponseStatusCode,
    /// `rqi`, echoed.
    pub request_id: String,
    /// `pc`.
    pub content: Option<Value>,
    /// The address of a created resource (HTTP `Content-Location`).
    pub content_location: Option<String>,
    /// `ati`: Local-Token-IDs the hosting CSE assigned to tokens of this request, as
    /// (Local-Token-ID, Token-ID) pairs (TS-0003 §7.3.2.3 step 7).
    pub assigned_tokens: Vec<(String, String)>,
    /// `tqf`: Token Request Information (`m2m:dynAuthTokenReqInfo`) of a refusal answering a
    /// request with `tqi` (TS-0003 §7.3.2.3 step 2.3).
    pub token_request_info: Option<Value>,
}

impl Response {
    /// A response with a status and optional content.
    pub fn new(status: ResponseStatusCode, content: Option<Value>) -> Self {
        Self {
            status,
            request_id: String::new(),
            content,
            content_location: None,
            assigned_tokens: Vec::new(),
            token_request_info: None,
        }
    }

    /// An error response whose content is `{"m2m:dbg": message}`.
    pub fn error(status: ResponseStatusCode, message: impl Into<String>) -> Self {
        let mut map = serde_json::Map::new();
        map.insert("m2m:dbg".into(), Value::String(message.into()));
        Self::new(status, Some(Value::Object(map)))
    }

    /// The `m2m:dbg` text of an error response, if any.
    pub fn debug_message(&self) -> Option<&str> {
        self.content.as_ref()?.get("m2m:dbg")?.as_str()
    }
}
