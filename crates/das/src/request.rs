//! The Dynamic Authorization Request as it reaches the DAS Server: `m2m:securityInfo` with
//! `securityInfoType` 1 and `m2m:dynAuthDasRequest` (TS-0003 §7.3.2.2 Table 7.3.2.2-1,
//! TS-0004 §6.3.5 `m2m:securityInfo`).
//!
//! Parsing is the only place that reads the peer's JSON; every error names the element that is
//! wrong, and nothing here panics on input.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::parse_m2m_timestamp;

/// `securityInfoType` of a Dynamic Authorization Request.
pub const SIT_DYNAMIC_AUTHORIZATION_REQUEST: u64 = 1;
/// `securityInfoType` of a Dynamic Authorization Response.
pub const SIT_DYNAMIC_AUTHORIZATION_RESPONSE: u64 = 2;

/// Longest list accepted in `orid`, `rfa` and `tids`.
pub const MAX_LIST_LEN: usize = 256;
/// Longest identifier accepted in any element.
pub const MAX_ELEMENT_LEN: usize = 512;

/// Why a request content is not a Dynamic Authorization Request; the message names the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

fn bad(message: impl Into<String>) -> RequestError {
    RequestError(message.into())
}

/// `m2m:dynAuthDasRequest` (`dreq`), TS-0003 Table 7.3.2.2-1.
#[derive(Debug, Clone, PartialEq)]
pub struct DasRequest {
    /// Originator (`or`): the entity whose request the hosting CSE could not grant.
    pub originator: String,
    /// Originator Resource Type (`trt`).
    pub originator_resource_type: Option<u16>,
    /// Operation (`op`): the oneM2M operation number, 1 (create) to 5 (notify).
    pub operation: u8,
    /// Originator IP Address (`oip`, one of `ip4`, `ip6`).
    pub originator_ip: Option<IpAddr>,
    /// Originator Location (`olo`), kept as received; not used by the decision.
    pub originator_location: Option<Value>,
    /// Originator Role IDs (`orid`).
    pub originator_role_ids: Vec<String>,
    /// Request Timestamp (`rts`).
    pub request_timestamp: Option<DateTime<Utc>>,
    /// Targeted Resource ID (`trid`), in the form the requester sent it.
    pub targeted_resource_id: Option<String>,
    /// Proposed Privileges Lifetime (`ppl`): when the requester would like the privileges to end.
    pub proposed_privileges_lifetime: Option<DateTime<Utc>>,
    /// Role IDs From ACPs (`rfa`).
    pub role_ids_from_acps: Vec<String>,
    /// Token IDs (`tids`) the hosting CSE asks the DAS to resolve (TS-0003 §7.3.2.3 step 5).
    pub token_ids: Vec<String>,
}

impl DasRequest {
    /// Reads the Content of a NOTIFY: `{"m2m:seci": {"sit": 1, "dreq": {...}}}`.
    pub fn from_content(content: Option<&Value>) -> Result<Self, RequestError> {
        let content = content.ok_or_else(|| {
            bad("the request has no content; expected {\"m2m:seci\": {\"sit\": 1, \"dreq\": {...}}}")
        })?;
        let seci = content
            .as_object()
            .and_then(|o| o.get("m2m:seci"))
            .ok_or_else(|| bad("the content is not an m2m:seci (securityInfo) object"))?
            .as_object()
            .ok_or_else(|| bad("m2m:seci is not an object"))?;
        match seci.get("sit") {
            None => return Err(bad("m2m:seci.sit (securityInfoType) is missing")),
            Some(sit) if sit.as_u64() == Some(SIT_DYNAMIC_AUTHORIZATION_REQUEST) => {}
            Some(sit) => {
                return Err(bad(format!(
                    "m2m:seci.sit is {sit}; a DAS Server answers only 1 (Dynamic Authorization Request)"
                )));
            }
        }
        let dreq = seci
            .get("dreq")
            .ok_or_else(|| bad("m2m:seci.dreq (dasRequest) is missing"))?
            .as_object()
            .ok_or_else(|| bad("m2m:seci.dreq is not an object"))?;
        Self::from_dreq(dreq)
    }

    /// Reads a `dreq` object.
    pub fn from_dreq(dreq: &Map<String, Value>) -> Result<Self, RequestError> {
        let originator =
            string(dreq, "or")?.ok_or_else(|| bad("dreq.or (originator) is missing"))?;
        let operation = match dreq.get("op") {
            None => return Err(bad("dreq.op (operation) is missing")),
            Some(v) => match v.as_u64() {
                Some(n @ 1..=5) => n as u8,
                _ => {
                    return Err(bad(format!(
                        "dreq.op is {v}; expected an operation number 1 (create) to 5 (notify)"
                    )));
                }
            },
        };
        let originator_resource_type =
            match dreq.get("trt") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(
                    || bad(format!("dreq.trt is {v}; expected a resource type number")),
                )?),
            };
        let originator_ip = match dreq.get("oip") {
            None | Some(Value::Null) => None,
            Some(v) => Some(ip_address(v)?),
        };
        let token_ids = list(dreq, "tids")?;
        let targeted_resource_id = string(dreq, "trid")?;
        if targeted_resource_id.is_none() && token_ids.is_empty() {
            return Err(bad(
                "dreq.trid (targeted resource ID) is missing; it is mandatory unless dreq.tids is given",
            ));
        }
        Ok(Self {
            originator,
            originator_resource_type,
            operation,
            originator_ip,
            originator_location: dreq.get("olo").filter(|v| !v.is_null()).cloned(),
            originator_role_ids: list(dreq, "orid")?,
            request_timestamp: timestamp(dreq, "rts")?,
            targeted_resource_id,
            proposed_privileges_lifetime: timestamp(dreq, "ppl")?,
            role_ids_from_acps: list(dreq, "rfa")?,
            token_ids,
        })
    }

    /// The accessControlOperations bit of [`DasRequest::operation`] (TS-0003 §7.1: create 1,
    /// retrieve 2, update 4, delete 8, notify 16; discovery, 32, is a retrieve with filter
    /// criteria and is not asked for through `op`).
    pub fn operation_bit(&self) -> u8 {
        operation_bit(self.operation)
    }
}

/// The accessControlOperations bit of a oneM2M operation number 1..=5; 0 for anything else.
pub fn operation_bit(operation: u8) -> u8 {
    match operation {
        1..=5 => 1 << (operation - 1),
        _ => 0,
    }
}

fn checked(key: &str, s: &str) -> Result<(), RequestError> {
    if s.is_empty() {
        return Err(bad(format!("dreq.{key} is empty")));
    }
    if s.len() > MAX_ELEMENT_LEN {
        return Err(bad(format!(
            "dreq.{key} is longer than {MAX_ELEMENT_LEN} bytes"
        )));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(format!(
            "dreq.{key} contains whitespace or control characters"
        )));
    }
    Ok(())
}

fn string(dreq: &Map<String, Value>, key: &str) -> Result<Option<String>, RequestError> {
    match dreq.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            checked(key, s)?;
            Ok(Some(s.clone()))
        }
        Some(v) => Err(bad(format!("dreq.{key} is {v}; expected a string"))),
    }
}

fn list(dreq: &Map<String, Value>, key: &str) -> Result<Vec<String>, RequestError> {
    let items = match dreq.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(bad(format!(
                "dreq.{key} is {v}; expected a list of strings"
            )));
        }
    };
    if items.len() > MAX_LIST_LEN {
        return Err(bad(format!(
            "dreq.{key} has {} entries; at most {MAX_LIST_LEN} are accepted",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => checked(key, s).map(|()| s.clone()),
            v => Err(bad(format!("dreq.{key} holds {v}; expected strings only"))),
        })
        .collect()
}

fn timestamp(dreq: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, RequestError> {
    match string(dreq, key)? {
        None => Ok(None),
        Some(s) => parse_m2m_timestamp(&s).map(Some).map_err(|_| {
            bad(format!(
                "dreq.{key} is {s:?}; expected an m2m:timestamp such as 20261124T120000 (UTC)"
            ))
        }),
    }
}

/// `m2m:ipAddress`: exactly one of `ip4`, `ip6`.
fn ip_address(v: &Value) -> Result<IpAddr, RequestError> {
    let o = v
        .as_object()
        .ok_or_else(|| bad("dreq.oip is not an object with ip4 or ip6"))?;
    let parse = |key: &str, want_v4: bool| -> Result<Option<IpAddr>, RequestError> {
        let Some(value) = o.get(key) else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .ok_or_else(|| bad(format!("dreq.oip.{key} is not a string")))?;
        match text.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv4() == want_v4 => Ok(Some(ip)),
            _ => Err(bad(format!(
                "dreq.oip.{key} is {text:?}; expected an IPv{} address",
                if want_v4 { 4 } else { 6 }
            ))),
        }
    };
    match (parse("ip4", true)?, parse("ip6", false)?) {
        (Some(ip), None) | (None, Some(ip)) => Ok(ip),
        (Some(_), Some(_)) => Err(bad("dreq.oip has both ip4 and ip6; give exactly one")),
        (None, None) => Err(bad("dreq.oip has neither ip4 nor ip6")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn seci(dreq: Value) -> Value {
        json!({"m2m:seci": {"sit": 1, "dreq": dreq}})
    }

    fn full() -> Value {
        json!({
            "or": "//m2mtrust.example/id-in/Cae1", "trt": 2, "op": 2,
            "trid": "/id-in/cse-in/ae1/cnt1", "ppl": "20261124T120000",
            "orid": ["r1@das.m2mtrust.example"], "rfa": ["r2"], "tids": ["t1@das.m2mtrust.example"],
            "oip": {"ip4": "127.0.0.1"}, "rts": "20261124T110000", "olo": {"typ": 1}
        })
    }

    #[test]
    fn a_complete_request_is_read() {
        let r = DasRequest::from_content(Some(&seci(full()))).unwrap();
        assert_eq!(r.originator, "//m2mtrust.example/id-in/Cae1");
        assert_eq!(r.originator_resource_type, Some(2));
        assert_eq!(r.operation, 2);
        assert_eq!(r.operation_bit(), 2);
        assert_eq!(
            r.targeted_resource_id.as_deref(),
            Some("/id-in/cse-in/ae1/cnt1")
        );
        assert_eq!(
            r.proposed_privileges_lifetime,
            Some(parse_m2m_timestamp("20261124T120000").unwrap())
        );
        assert_eq!(
            r.request_timestamp,
            Some(parse_m2m_timestamp("20261124T110000").unwrap())
        );
        assert_eq!(r.originator_role_ids, vec!["r1@das.m2mtrust.example"]);
        assert_eq!(r.role_ids_from_acps, vec!["r2"]);
        assert_eq!(r.token_ids, vec!["t1@das.m2mtrust.example"]);
        assert_eq!(r.originator_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(r.originator_location, Some(json!({"typ": 1})));
    }

    #[test]
    fn only_or_op_and_trid_are_needed() {
        let r = DasRequest::from_content(Some(&seci(json!({"or": "Cae1", "op": 1, "trid": "x"}))))
            .unwrap();
        assert_eq!(r.operation_bit(), 1);
        assert!(r.token_ids.is_empty() && r.proposed_privileges_lifetime.is_none());
        // tids stand in for trid.
        let r =
            DasRequest::from_content(Some(&seci(json!({"or": "Cae1", "op": 2, "tids": ["t"]}))))
                .unwrap();
        assert_eq!(r.targeted_resource_id, None);
    }

    #[test]
    fn operation_bits_follow_access_control_operations() {
        let bits: Vec<u8> = (0..=6).map(operation_bit).collect();
        assert_eq!(bits, vec![0, 1, 2, 4, 8, 16, 0]);
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let with = |key: &str, value: Value| {
            let mut d = full();
            d.as_object_mut().unwrap().insert(key.into(), value);
            seci(d)
        };
        let without = |key: &str| {
            let mut d = full();
            d.as_object_mut().unwrap().remove(key);
            seci(d)
        };
        let mut no_trid = full();
        no_trid.as_object_mut().unwrap().remove("tids");
        no_trid.as_object_mut().unwrap().remove("trid");
        let cases: Vec<(&str, Option<Value>, &str)> = vec![
            ("no content", None, "no content"),
            ("not seci", Some(json!({"m2m:sgn": {}})), "not an m2m:seci"),
            (
                "seci not object",
                Some(json!({"m2m:seci": 1})),
                "not an object",
            ),
            ("no sit", Some(json!({"m2m:seci": {"dreq": full()}})), "sit"),
            (
                "response sit",
                Some(json!({"m2m:seci": {"sit": 2, "dreq": full()}})),
                "sit is 2",
            ),
            (
                "sit string",
                Some(json!({"m2m:seci": {"sit": "1", "dreq": full()}})),
                "sit is",
            ),
            ("no dreq", Some(json!({"m2m:seci": {"sit": 1}})), "dreq"),
            ("missing or", Some(without("or")), "dreq.or"),
            ("empty or", Some(with("or", json!(""))), "dreq.or is empty"),
            ("or not string", Some(with("or", json!(5))), "dreq.or"),
            (
                "or with space",
                Some(with("or", json!("C a"))),
                "whitespace",
            ),
            ("missing op", Some(without("op")), "dreq.op"),
            ("op 0", Some(with("op", json!(0))), "dreq.op"),
            ("op 6", Some(with("op", json!(6))), "dreq.op"),
            ("op string", Some(with("op", json!("2"))), "dreq.op"),
            ("no trid, no tids", Some(seci(no_trid)), "dreq.trid"),
            (
                "bad ppl",
                Some(with("ppl", json!("2026-11-24T12:00:00"))),
                "dreq.ppl",
            ),
            ("ppl number", Some(with("ppl", json!(3600))), "dreq.ppl"),
            (
                "bad month",
                Some(with("ppl", json!("20261324T120000"))),
                "dreq.ppl",
            ),
            ("bad rts", Some(with("rts", json!("yesterday"))), "dreq.rts"),
            (
                "tids not list",
                Some(with("tids", json!("t1"))),
                "dreq.tids",
            ),
            ("tids numbers", Some(with("tids", json!([1]))), "dreq.tids"),
            (
                "too many tids",
                Some(with("tids", json!(vec!["t"; 300]))),
                "at most",
            ),
            ("oip empty", Some(with("oip", json!({}))), "dreq.oip"),
            (
                "oip both",
                Some(with("oip", json!({"ip4": "1.2.3.4", "ip6": "::1"}))),
                "both",
            ),
            (
                "ip4 holds ip6",
                Some(with("oip", json!({"ip4": "::1"}))),
                "dreq.oip.ip4",
            ),
            ("trt negative", Some(with("trt", json!(-1))), "dreq.trt"),
        ];
        for (what, content, needle) in cases {
            let err = DasRequest::from_content(content.as_ref())
                .expect_err(what)
                .to_string();
            assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
        }
    }
}
