//! TS-0009 §6.2.2.2 (query component): `rcn`, `drt` and the filter criteria as query parameters.
//!
//! List parameters (`ty`, `lbl`) may repeat (`ty=3&ty=4`) or carry several values separated by
//! `+` or spaces (`ty=3+4`); labels therefore cannot contain spaces. Unknown parameters and
//! repeated single-valued parameters are rejected with 4000 instead of being ignored, so a
//! client never believes a condition was applied when it was not.

use m2mtrust_model::{
    DiscoveryResultType, FilterCriteria, FilterUsage, Request, ResourceType, ResultContent,
    Timestamp,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::server::DecodeError;

/// Characters kept as they are in query values; everything else is percent-encoded.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b',')
    .remove(b':')
    .remove(b'/');

/// The request parameters carried in the query component.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct QueryParams {
    pub(crate) result_content: Option<ResultContent>,
    pub(crate) discovery_result_type: DiscoveryResultType,
    pub(crate) filter: FilterCriteria,
}

fn bad(name: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError::InvalidQuery {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Form decoding: `+` is a space, then percent-decoding to UTF-8.
fn form_decode(raw: &str, what: &str) -> Result<String, DecodeError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad(what, "percent-decoded text is not UTF-8"))
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, DecodeError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| bad(name, format!("{value:?} is not a valid number")))
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, DecodeError> {
    Timestamp::parse(value.trim()).ok_or_else(|| {
        bad(
            name,
            format!("{value:?} is not a timestamp of the form YYYYMMDDTHHMMSS[,ffffff]"),
        )
    })
}

/// Sets a single-valued parameter once.
fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(bad(name, "given more than once"));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses the raw (still percent-encoded) query string.
pub(crate) fn decode_query(query: &str) -> Result<QueryParams, DecodeError> {
    let mut params = QueryParams::default();
    let mut fu = None;
    let mut drt = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(raw_name, raw_name)?;
        let value = form_decode(raw_value, &name)?;
        if value.trim().is_empty() {
            return Err(bad(&name, "empty value"));
        }
        let fc = &mut params.filter;
        match name.as_str() {
            "rcn" => {
                let code: u64 = number(&name, &value)?;
                let rcn = ResultContent::from_code(code)
                    .ok_or_else(|| bad(&name, format!("{code} is not a result content")))?;
                once(&mut params.result_content, &name, rcn)?;
            }
            "fu" => {
                let usage = match number::<u64>(&name, &value)? {
                    1 => FilterUsage::Discovery,
                    2 => FilterUsage::ConditionalRetrieval,
                    other => {
                        return Err(bad(
                            &name,
                            format!("{other} is not a supported filter usage"),
                        ));
                    }
                };
                once(&mut fu, &name, usage)?;
            }
            "drt" => {
                let kind = match number::<u64>(&name, &value)? {
                    1 => DiscoveryResultType::Structured,
                    2 => DiscoveryResultType::Unstructured,
                    other => {
                        return Err(bad(
                            &name,
                            format!("{other} is not a discovery result type"),
                        ));
                    }
                };
                once(&mut drt, &name, kind)?;
            }
            "ty" => {
                for item in value.split_whitespace() {
                    fc.resource_types.push(ResourceType(number(&name, item)?));
                }
            }
            "lbl" => fc
                .labels
                .extend(value.split_whitespace().map(str::to_owned)),
            "lim" => once(&mut fc.limit, &name, number(&name, &value)?)?,
            "ofst" => once(&mut fc.offset, &name, number(&name, &value)?)?,
            "lvl" => once(&mut fc.level, &name, number(&name, &value)?)?,
            "cra" => once(&mut fc.created_after, &name, timestamp(&name, &value)?)?,
            "crb" => once(&mut fc.created_before, &name, timestamp(&name, &value)?)?,
            "ms" => once(&mut fc.modified_since, &name, timestamp(&name, &value)?)?,
            "us" => once(&mut fc.unmodified_since, &name, timestamp(&name, &value)?)?,
            "exa" => once(&mut fc.expire_after, &name, timestamp(&name, &value)?)?,
            "exb" => once(&mut fc.expire_before, &name, timestamp(&name, &value)?)?,
            _ => return Err(DecodeError::UnknownQueryParameter(name)),
        }
    }
    params.filter.filter_usage = fu.unwrap_or_default();
    params.discovery_result_type = drt.unwrap_or_default();
    Ok(params)
}

/// The wire number of a result content (TS-0004 §6.3.4.2.7).
fn result_content_code(rcn: ResultContent) -> u8 {
    match rcn {
        ResultContent::Nothing => 0,
        ResultContent::Attributes => 1,
        ResultContent::HierarchicalAddress => 2,
        ResultContent::HierarchicalAddressAndAttributes => 3,
        ResultContent::AttributesAndChildResources => 4,
        ResultContent::AttributesAndChildResourceReferences => 5,
        ResultContent::ChildResourceReferences => 6,
        ResultContent::OriginalResource => 7,
        ResultContent::ChildResources => 8,
        ResultContent::ModifiedAttributes => 9,
    }
}

/// Encodes `rcn`, `drt` and the filter criteria of a request as a query string (without `?`),
/// the inverse of what the server half decodes. Defaults (`fu=2`, `drt=1`) are left out.
/// List values are written as repeated parameters.
pub fn encode_query(req: &Request) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let fc = &req.filter;
    if let Some(rcn) = req.result_content {
        pairs.push(("rcn", result_content_code(rcn).to_string()));
    }
    if fc.filter_usage == FilterUsage::Discovery {
        pairs.push(("fu", "1".into()));
    }
    if req.discovery_result_type == DiscoveryResultType::Unstructured {
        pairs.push(("drt", "2".into()));
    }
    pairs.extend(fc.resource_types.iter().map(|t| ("ty", t.0.to_string())));
    pairs.extend(fc.labels.iter().map(|l| ("lbl", l.clone())));
    let numbers = [("lim", fc.limit), ("ofst", fc.offset), ("lvl", fc.level)];
    pairs.extend(
        numbers
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v.to_string()))),
    );
    let times = [
        ("cra", fc.created_after),
        ("crb", fc.created_before),
        ("ms", fc.modified_since),
        ("us", fc.unmodified_since),
        ("exa", fc.expire_after),
        ("exb", fc.expire_before),
    ];
    pairs.extend(
        times
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v.to_onem2m()))),
    );
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", utf8_percent_encode(v, QUERY_ESCAPE)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2mtrust_model::Operation;

    fn err_name(q: &str) -> String {
        match decode_query(q).unwrap_err() {
            DecodeError::InvalidQuery { name, .. } => name,
            DecodeError::UnknownQueryParameter(name) => format!("unknown:{name}"),
            other => panic!("{q}: unexpected {other}"),
        }
    }

    #[test]
    fn empty_query_gives_defaults() {
        assert_eq!(decode_query("").unwrap(), QueryParams::default());
        assert_eq!(decode_query("&&").unwrap(), QueryParams::default());
    }

    #[test]
    fn decodes_every_parameter() {
        let q = "rcn=4&fu=1&drt=2&ty=3&ty=4&lbl=a&lbl=b+c&lim=10&ofst=2&lvl=1\
                 &cra=20260101T000000&crb=20270101T000000&ms=20260102T000000\
                 &us=20270102T000000&exa=20260103T000000&exb=20270103T000000,5";
        let p = decode_query(q).unwrap();
        assert_eq!(
            p.result_content,
            Some(ResultContent::AttributesAndChildResources)
        );
        assert_eq!(p.discovery_result_type, DiscoveryResultType::Unstructured);
        let fc = &p.filter;
        assert_eq!(fc.filter_usage, FilterUsage::Discovery);
        assert_eq!(fc.resource_types, vec![ResourceType(3), ResourceType(4)]);
        assert_eq!(fc.labels, vec!["a", "b", "c"]);
        assert_eq!(
            (fc.limit, fc.offset, fc.level),
            (Some(10), Some(2), Some(1))
        );
        let t = |s| Timestamp::parse(s);
        assert_eq!(fc.created_after, t("20260101T000000"));
        assert_eq!(fc.created_before, t("20270101T000000"));
        assert_eq!(fc.modified_since, t("20260102T000000"));
        assert_eq!(fc.unmodified_since, t("20270102T000000"));
        assert_eq!(fc.expire_after, t("20260103T000000"));
        assert_eq!(fc.expire_before, t("20270103T000000,5"));
    }

    #[test]
    fn list_forms() {
        for q in ["ty=3+4", "ty=3%204", "ty=3&ty=4", "ty=+3++4+"] {
            assert_eq!(
                decode_query(q).unwrap().filter.resource_types,
                vec![ResourceType(3), ResourceType(4)],
                "{q}"
            );
        }
        assert_eq!(
            decode_query("lbl=x%2By").unwrap().filter.labels,
            vec!["x+y"]
        );
        assert_eq!(
            decode_query("fu=2").unwrap().filter.filter_usage,
            FilterUsage::ConditionalRetrieval
        );
        assert_eq!(
            decode_query("drt=1").unwrap().discovery_result_type,
            DiscoveryResultType::Structured
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let cases = [
            ("rcn=x", "rcn"),
            ("rcn=10", "rcn"),
            ("rcn=1&rcn=1", "rcn"),
            ("fu=3", "fu"),
            ("fu=a", "fu"),
            ("fu=1&fu=1", "fu"),
            ("drt=3", "drt"),
            ("drt=x", "drt"),
            ("drt=1&drt=2", "drt"),
            ("ty=3+x", "ty"),
            ("ty=70000", "ty"),
            ("ty=", "ty"),
            ("lbl=", "lbl"),
            ("lim=-1", "lim"),
            ("lim=1&lim=2", "lim"),
            ("ofst=a", "ofst"),
            ("lvl=1.5", "lvl"),
            ("cra=yesterday", "cra"),
            ("crb=2026", "crb"),
            ("ms=x", "ms"),
            ("us=x", "us"),
            ("exa=x", "exa"),
            ("exb=x", "exb"),
            ("cra=20260101T000000&cra=20260101T000000", "cra"),
            ("lbl=%FF", "lbl"),
            ("foo=1", "unknown:foo"),
            ("rt=3", "unknown:rt"),
            ("rcn", "rcn"),
        ];
        for (q, name) in cases {
            assert_eq!(err_name(q), name, "{q}");
        }
        let msg = decode_query("lim=abc").unwrap_err().to_string();
        assert!(msg.contains("lim") && msg.contains("abc"), "{msg}");
        let msg = decode_query("zz=1").unwrap_err().to_string();
        assert!(msg.contains("zz"), "{msg}");
    }

    #[test]
    fn encode_round_trips() {
        let mut req = Request::new(Operation::Retrieve, "cse-in", None);
        assert_eq!(encode_query(&req), "");
        req.result_content = Some(ResultContent::ChildResourceReferences);
        req.discovery_result_type = DiscoveryResultType::Unstructured;
        let fc = &mut req.filter;
        fc.filter_usage = FilterUsage::Discovery;
        fc.resource_types = vec![ResourceType::CONTAINER, ResourceType::AE];
        fc.labels = vec!["key/value".into(), "a&b=c".into(), "é".into()];
        fc.limit = Some(5);
        fc.offset = Some(2);
        fc.level = Some(3);
        fc.created_after = Timestamp::parse("20260101T000000,25");
        fc.created_before = Timestamp::parse("20260101T000001");
        fc.modified_since = Timestamp::parse("20260101T000002");
        fc.unmodified_since = Timestamp::parse("20260101T000003");
        fc.expire_after = Timestamp::parse("20260101T000004");
        fc.expire_before = Timestamp::parse("20260101T000005");
        let q = encode_query(&req);
        let p = decode_query(&q).unwrap();
        assert_eq!(p.filter, req.filter, "{q}");
        assert_eq!(p.result_content, req.result_content);
        assert_eq!(p.discovery_result_type, req.discovery_result_type);
        for code in 0..=9 {
            let rcn = ResultContent::from_code(code).unwrap();
            assert_eq!(u64::from(result_content_code(rcn)), code);
        }
    }
}
