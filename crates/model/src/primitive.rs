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

/// Why a serialized primitive could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("primitive: {0}")]
pub struct PrimitiveError(String);

fn bad(msg: impl Into<String>) -> PrimitiveError {
    PrimitiveError(msg.into())
}

fn strings(v: Option<&Value>, name: &str) -> Result<Vec<String>, PrimitiveError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("{name} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(bad(format!("{name} must be a list of strings"))),
    }
}

impl Request {
    /// The JSON serialization of the request primitive (TS-0004 §8.3, `m2m:rqp` with short
    /// names), as carried inside an ESPrim Object: `op`, `to`, `fr`, `rqi`, `rvi`, `ty`, `pc`,
    /// `rcn`, `tkns`, `tids`, `ltids`, `rids`. Filter criteria are not carried.
    pub fn to_primitive_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("op".into(), self.operation.code().into());
        m.insert("to".into(), self.to.clone().into());
        if let Some(fr) = &self.from {
            m.insert("fr".into(), fr.clone().into());
        }
        m.insert("rqi".into(), self.request_id.clone().into());
        if let Some(rvi) = &self.release_version {
            m.insert("rvi".into(), rvi.clone().into());
        }
        if let Some(ty) = self.resource_type {
            m.insert("ty".into(), ty.0.into());
        }
        if let Some(pc) = &self.content {
            m.insert("pc".into(), pc.clone());
        }
        if let Some(rcn) = self.result_content {
            m.insert("rcn".into(), rcn.code().into());
        }
        for (k, v) in [
            ("tkns", &self.tokens),
            ("tids", &self.token_ids),
            ("ltids", &self.local_token_ids),
            ("rids", &self.role_ids),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), v.clone().into());
            }
        }
        serde_json::json!({ "m2m:rqp": m })
    }

    /// Reads [`Request::to_primitive_json`]'s form (the `m2m:rqp` wrapper is optional).
    pub fn from_primitive_json(v: &Value) -> Result<Self, PrimitiveError> {
        let p = v.get("m2m:rqp").unwrap_or(v);
        let p = p
            .as_object()
            .ok_or_else(|| bad("a request primitive is a JSON object"))?;
        let op = p
            .get("op")
            .and_then(Value::as_u64)
            .and_then(Operation::from_code)
            .ok_or_else(|| bad("op must be an operation number 1-5"))?;
        let text = |k: &str| -> Result<Option<String>, PrimitiveError> {
            match p.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("{k} must be a string"))),
            }
        };
        let to = text("to")?.ok_or_else(|| bad("to is mandatory"))?;
        let rqi = text("rqi")?.ok_or_else(|| bad("rqi is mandatory"))?;
        let mut req = Request::new(op, to, text("fr")?.filter(|f| !f.is_empty()));
        req.request_id = rqi;
        req.release_version = text("rvi")?;
        req.resource_type = match p.get("ty") {
            None => None,
            Some(t) => Some(ResourceType(
                t.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| bad("ty must be a resource type number"))?,
            )),
        };
        if op != Operation::Create {
            req.resource_type = None;
        }
        req.content = p.get("pc").cloned();
        req.result_content = match p.get("rcn") {
            None => None,
            Some(r) => Some(
                r.as_u64()
                    .and_then(ResultContent::from_code)
                    .ok_or_else(|| bad("rcn must be a result content number"))?,
            ),
        };
        req.tokens = strings(p.get("tkns"), "tkns")?;
        req.token_ids = strings(p.get("tids"), "tids")?;
        req.local_token_ids = strings(p.get("ltids"), "ltids")?;
        req.role_ids = strings(p.get("rids"), "rids")?;
        Ok(req)
    }
}

impl Response {
    /// The JSON serialization of the response primitive (`m2m:rsp`): `rsc`, `rqi`, `pc`, and
    /// the project's `cl` (content location) and `ati`.
    pub fn to_primitive_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("rsc".into(), self.status.0.into());
        m.insert("rqi".into(), self.request_id.clone().into());
        if let Some(pc) = &self.content {
            m.insert("pc".into(), pc.clone());
        }
        if let Some(cl) = &self.content_location {
            m.insert("cl".into(), cl.clone().into());
        }
        if !self.assigned_tokens.is_empty() {
            let ltia: Vec<Value> = self
                .assigned_tokens
                .iter()
                .map(|(lti, tkid)| serde_json::json!({"lti": lti, "tkid": tkid}))
                .collect();
            m.insert("ati".into(), serde_json::json!({ "ltia": ltia }));
        }
        if let Some(tqf) = &self.token_request_info {
            m.insert("tqf".into(), tqf.clone());
        }
        serde_json::json!({ "m2m:rsp": m })
    }

    /// Reads [`Response::to_primitive_json`]'s form (the `m2m:rsp` wrapper is optional).
    pub fn from_primitive_json(v: &Value) -> Result<Self, PrimitiveError> {
        let p = v.get("m2m:rsp").unwrap_or(v);
        let p = p
            .as_object()
            .ok_or_else(|| bad("a response primitive is a JSON object"))?;
        let rsc = p
            .get("rsc")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| bad("rsc must be a response status code"))?;
        let mut resp = Response::new(ResponseStatusCode(rsc), p.get("pc").cloned());
        resp.request_id = p
            .get("rqi")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        resp.content_location = p.get("cl").and_then(Value::as_str).map(str::to_owned);
        if let Some(ltia) = p
            .get("ati")
            .and_then(|a| a.get("ltia"))
            .and_then(Value::as_array)
        {
            for pair in ltia {
                if let (Some(lti), Some(tkid)) = (
                    pair.get("lti").and_then(Value::as_str),
                    pair.get("tkid").and_then(Value::as_str),
                ) {
                    resp.assigned_tokens.push((lti.to_owned(), tkid.to_owned()));
                }
            }
        }
        resp.token_request_info = p.get("tqf").cloned();
        Ok(resp)
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_primitives_round_trip() {
        let mut r = Request::new(
            Operation::Create,
            "/id-in/cse-in/cnt",
            Some("/id-mn/Cae1".into()),
        );
        r.request_id = "rq-7".into();
        r.resource_type = Some(ResourceType(4));
        r.content = Some(json!({"m2m:cin": {"con": "21.5"}}));
        r.result_content = Some(ResultContent::Nothing);
        r.tokens = vec!["a.b.c".into()];
        r.role_ids = vec!["r@das.example".into()];
        let v = r.to_primitive_json();
        assert_eq!(v["m2m:rqp"]["op"], json!(1));
        assert_eq!(v["m2m:rqp"]["ty"], json!(4));
        assert_eq!(v["m2m:rqp"]["rcn"], json!(0));
        assert_eq!(Request::from_primitive_json(&v).unwrap(), r);
    }

    #[test]
    fn response_primitives_round_trip() {
        let mut r = Response::new(ResponseStatusCode::CREATED, Some(json!({"m2m:cin": {}})));
        r.request_id = "rq-7".into();
        r.content_location = Some("cse-in/cnt/cin1".into());
        r.assigned_tokens = vec![("lt1".into(), "t@das".into())];
        let v = r.to_primitive_json();
        assert_eq!(v["m2m:rsp"]["rsc"], json!(2001));
        assert_eq!(Response::from_primitive_json(&v).unwrap(), r);
    }

    #[test]
    fn malformed_primitives_are_refused() {
        for (what, v) in [
            ("not an object", json!("x")),
            ("no op", json!({"to": "a", "rqi": "1"})),
            ("op 9", json!({"op": 9, "to": "a", "rqi": "1"})),
            ("no to", json!({"op": 2, "rqi": "1"})),
            ("no rqi", json!({"op": 2, "to": "a"})),
            ("to not a string", json!({"op": 2, "to": 1, "rqi": "1"})),
            (
                "ty not a number",
                json!({"op": 1, "to": "a", "rqi": "1", "ty": "x"}),
            ),
            (
                "tkns not strings",
                json!({"op": 2, "to": "a", "rqi": "1", "tkns": [1]}),
            ),
        ] {
            assert!(Request::from_primitive_json(&v).is_err(), "{what}");
        }
        assert!(Response::from_primitive_json(&json!({"rsc": "x"})).is_err());
    }
}
