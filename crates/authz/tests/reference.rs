//! Property test: the compiled engine against a direct, slow transcription of the reference
//! access decision algorithm of TS-0003 §7.1.5, on random policies and requests.
//!
//! The transcription below works on a plain model of the ACPs (never on the compiled form),
//! evaluates every term of every rule with no short-circuit and no precomputation, matches
//! originators by globbing whole absolute IDs, expands crontab fields into value lists and
//! compares CIDR ranges bit by bit. "For any given sets of inputs, an implementation of the
//! access decision processing shall return the same result as the reference access decision
//! algorithm would return for those inputs" (§7.1.4).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use m2mtrust_authz::{
    AttributeGrant, Attributes, CompiledAcp, Coordinates, CountryCode, CreateDetails, Decision,
    DenyReason, Directory, GroupMember, HostingCse, Operation, OriginatorLocation, Pdp, Request,
    RuleSet,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const SP: &str = "m2mtrust.example";
const CSE: &str = "id-in";

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// How the reference reads an `acor` entry (TS-0003 §7.1.3 lists the forms).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    All,
    Domain,
    Id,
    Role,
    Group,
    NotUnderstood,
}

const ACOR_POOL: &[(&str, Kind)] = &[
    ("all", Kind::All),
    ("//m2mtrust.example", Kind::Domain),
    ("//other.example", Kind::Domain),
    ("Cabc", Kind::Id),
    ("C*", Kind::Id),
    ("Cab*", Kind::Id),
    ("/id-in/C*", Kind::Id),
    ("/id-mn/Cabc", Kind::Id),
    ("/id-m*", Kind::Id),
    ("//*/id-in/Cabc", Kind::Id),
    ("//*/cse*", Kind::Id),
    ("/Sxyz", Kind::Id),
    ("Sx*", Kind::Id),
    ("//other.example/id-in/C*", Kind::Id),
    ("//*/*/Cmember", Kind::Id),
    ("r1@issuer.example", Kind::Role),
    ("r2@issuer.example", Kind::Role),
    ("grpA", Kind::Group),
    ("grpB", Kind::Group),
    ("grpGone", Kind::Group),
    ("grpC", Kind::Group),
    ("Cgrp", Kind::Id),
    ("//*", Kind::NotUnderstood),
    ("bad entry", Kind::NotUnderstood),
];

const FROM_POOL: &[&str] = &[
    "Cabc",
    "Cdef",
    "Cabd",
    "/id-in/Cabc",
    "/id-mn/Cabc",
    "/id-mn",
    "Sxyz",
    "Sxa",
    "//other.example/id-in/Cabc",
    "//other.example/cse9",
    "//m2mtrust.example/id-in/Cmember",
    "//far.example/cse1/Cmember",
];

const ROLE_POOL: &[&str] = &["r1@issuer.example", "r3@issuer.example"];

fn directory() -> BTreeMap<&'static str, Vec<GroupMember>> {
    let id = |s: &str| GroupMember::Originator(s.into());
    let group = |s: &str| GroupMember::Group(s.into());
    BTreeMap::from([
        ("grpA", vec![id("Cdef"), group("grpB")]),
        (
            "grpB",
            vec![id("/id-mn/Cabc"), group("grpA"), id("not an id")],
        ),
        ("grpC", vec![id("Sxyz"), group("grpMissing")]),
        ("Cgrp", vec![id("Cabc")]),
    ])
}

const V4_POOL: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.0/24",
    "192.168.1.7",
    "0.0.0.0/0",
];
const V6_POOL: &[&str] = &["2001:db8::/32", "fe80::/10", "::/0", "2001:db8::1/128"];
const IP_POOL: &[&str] = &[
    "10.1.2.3",
    "10.2.0.1",
    "192.168.1.7",
    "192.168.1.8",
    "8.8.8.8",
    "::ffff:10.1.2.3",
    "2001:db8::1",
    "2001:db9::1",
    "fe80::5",
];
const COUNTRIES: &[&str] = &["KR", "JP", "FR"];
const CENTRES: &[(f64, f64)] = &[(37.5, 127.0), (0.0, 179.9), (89.5, 10.0), (48.8, 2.3)];
const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::Asia::Tokyo,
    chrono_tz::America::New_York,
];
const ATTRS: &[&str] = &["lbl", "et", "con"];

/// `ipv4` and `ipv6` lists.
type MAddresses = (Option<Vec<&'static str>>, Option<Vec<&'static str>>);
/// `accc` and `accr` lists.
type MRegions = (Option<Vec<&'static str>>, Option<Vec<(f64, f64, f64)>>);
/// Coordinates and country of `rq_loc`.
type MLocation = (Option<(f64, f64)>, Option<&'static str>);

#[derive(Debug, Clone)]
struct MContext {
    actw: Option<Vec<String>>,
    acip: Option<MAddresses>,
    aclr: Option<MRegions>,
}

#[derive(Debug, Clone)]
struct MObject {
    ty: Option<u16>,
    spty: Option<&'static str>,
    chty: Vec<u16>,
}

#[derive(Debug, Clone)]
struct MRule {
    acor: Vec<usize>,
    acop: u8,
    acaf: Option<bool>,
    acco: Option<Vec<MContext>>,
    acod: Option<Vec<MObject>>,
    aca: Option<Vec<&'static str>>,
    unknown_element: bool,
}

#[derive(Debug, Clone)]
struct MAcp {
    pv: Vec<MRule>,
    pvs: Vec<MRule>,
}

#[derive(Debug, Clone)]
struct MRequest {
    from: &'static str,
    roles: Vec<&'static str>,
    op: Operation,
    authn: bool,
    time: DateTime<Utc>,
    ip: Option<&'static str>,
    loc: Option<MLocation>,
    create: (Option<u16>, Option<u16>, Option<&'static str>),
    attributes: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct Scenario {
    acps: Vec<MAcp>,
    rule_set: RuleSet,
    zone: Tz,
    request: MRequest,
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn subset<T: Clone + std::fmt::Debug>(pool: &'static [T], max: usize) -> BoxedStrategy<Vec<T>> {
    proptest::sample::subsequence(pool, 0..=max.min(pool.len())).boxed()
}

fn cron_field(min: u32, max: u32) -> BoxedStrategy<String> {
    let item = prop_oneof![
        3 => Just("*".to_owned()),
        1 => (1..=4u32).prop_map(|s| format!("*/{s}")),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (min..=max, min..=max, 1..=3u32)
            .prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        1 => (min..=max).prop_map(|v| v.to_string()),
    ];
    proptest::collection::vec(item, 1..=2)
        .prop_map(|items| items.join(","))
        .boxed()
}

fn cron_entry() -> BoxedStrategy<String> {
    (
        cron_field(0, 59),
        cron_field(0, 59),
        cron_field(0, 23),
        cron_field(1, 31),
        cron_field(1, 12),
        cron_field(0, 6),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some("*".to_owned())),
            1 => (2024..=2026u32, 2024..=2026u32)
                .prop_map(|(a, b)| Some(format!("{}-{}", a.min(b), a.max(b)))),
        ],
    )
        .prop_map(|(s, mi, h, dom, mo, dow, y)| {
            let mut e = format!("{s} {mi} {h} {dom} {mo} {dow}");
            if let Some(y) = y {
                e.push(' ');
                e.push_str(&y);
            }
            e
        })
        .boxed()
}

fn circle() -> BoxedStrategy<(f64, f64, f64)> {
    (
        proptest::sample::select(CENTRES),
        -0.8..0.8f64,
        -0.8..0.8f64,
        1_000.0..150_000.0f64,
    )
        .prop_map(|((lat, lon), dlat, dlon, r)| {
            ((lat + dlat).clamp(-90.0, 90.0), wrap(lon + dlon), r)
        })
        .boxed()
}

fn wrap(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

fn context() -> BoxedStrategy<MContext> {
    (
        proptest::option::weighted(0.5, proptest::collection::vec(cron_entry(), 0..=2)),
        proptest::option::weighted(
            0.4,
            (
                proptest::option::of(subset(V4_POOL, 2)),
                proptest::option::of(subset(V6_POOL, 2)),
            ),
        ),
        proptest::option::weighted(
            0.3,
            (
                proptest::option::of(subset(COUNTRIES, 2)),
                proptest::option::of(proptest::collection::vec(circle(), 0..=2)),
            ),
        ),
    )
        .prop_map(|(actw, acip, aclr)| MContext { actw, acip, aclr })
        .boxed()
}

fn object() -> BoxedStrategy<MObject> {
    (
        proptest::sample::select(vec![None, Some(2u16), Some(3), Some(28)]),
        proptest::sample::select(vec![None, Some("a"), Some("b")]),
        proptest::sample::subsequence(vec![3u16, 4, 23, 28], 1..=3),
    )
        .prop_map(|(ty, spty, chty)| MObject {
            // TS-0003 §7.1.5: ty 28 requires a specialization.
            spty: if ty == Some(28) {
                spty.or(Some("a"))
            } else {
                spty
            },
            ty,
            chty,
        })
        .boxed()
}

fn rule() -> BoxedStrategy<MRule> {
    (
        proptest::collection::vec(0..ACOR_POOL.len(), 0..=3),
        1..=63u8,
        proptest::sample::select(vec![None, Some(false), Some(true)]),
        proptest::option::weighted(0.5, proptest::collection::vec(context(), 0..=2)),
        proptest::option::weighted(0.3, proptest::collection::vec(object(), 0..=2)),
        proptest::option::weighted(0.35, proptest::sample::subsequence(ATTRS, 0..=3)),
        proptest::bool::weighted(0.03),
    )
        .prop_map(
            |(acor, acop, acaf, acco, acod, aca, unknown_element)| MRule {
                acor,
                acop,
                acaf,
                acco,
                acod,
                aca,
                unknown_element,
            },
        )
        .boxed()
}

/// Rules that match more often and carry `aca` lists, so that attribute grants spread over
/// several rules are generated too.
fn attribute_rule() -> BoxedStrategy<MRule> {
    (
        rule(),
        any::<bool>(),
        proptest::option::weighted(0.8, proptest::sample::subsequence(ATTRS, 0..=2)),
    )
        .prop_map(|(mut r, everyone, aca)| {
            if everyone {
                r.acor = vec![0];
            }
            r.acco = None;
            r.aca = aca;
            r
        })
        .boxed()
}

fn acp() -> BoxedStrategy<MAcp> {
    (
        proptest::collection::vec(rule(), 0..=4),
        proptest::collection::vec(rule(), 1..=2),
    )
        .prop_map(|(pv, pvs)| MAcp { pv, pvs })
        .boxed()
}

fn attribute_acp() -> BoxedStrategy<MAcp> {
    (
        proptest::collection::vec(attribute_rule(), 1..=4),
        proptest::collection::vec(rule(), 1..=2),
    )
        .prop_map(|(pv, pvs)| MAcp { pv, pvs })
        .boxed()
}

fn request() -> BoxedStrategy<MRequest> {
    (
        (
            proptest::sample::select(FROM_POOL),
            subset(ROLE_POOL, 2),
            proptest::sample::select(Operation::ALL.to_vec()),
            any::<bool>(),
            // 2024-01-01 … 2026-12-31
            1_704_067_200i64..1_798_761_600i64,
        ),
        (
            proptest::option::weighted(0.8, proptest::sample::select(IP_POOL)),
            proptest::option::weighted(
                0.7,
                (
                    proptest::option::of(
                        (
                            proptest::sample::select(CENTRES),
                            -1.0..1.0f64,
                            -1.0..1.0f64,
                        )
                            .prop_map(|((lat, lon), a, b)| {
                                ((lat + a).clamp(-90.0, 90.0), wrap(lon + b))
                            }),
                    ),
                    proptest::option::of(proptest::sample::select(COUNTRIES)),
                ),
            ),
            (
                proptest::sample::select(vec![None, Some(2u16), Some(3), Some(28)]),
                proptest::sample::select(vec![None, Some(3u16), Some(4), Some(23), Some(28)]),
                proptest::sample::select(vec![None, Some("a"), Some("b")]),
            ),
            proptest::option::weighted(0.4, proptest::sample::subsequence(ATTRS, 0..=2)),
        ),
    )
        .prop_map(
            |((from, roles, op, authn, secs), (ip, loc, create, attributes))| MRequest {
                from,
                roles,
                op,
                authn,
                time: Utc.timestamp_opt(secs, 0).single().unwrap_or_default(),
                ip,
                loc,
                create,
                attributes,
            },
        )
        .boxed()
}

fn general_scenario() -> BoxedStrategy<Scenario> {
    (
        proptest::collection::vec(acp(), 0..=3),
        any::<bool>(),
        proptest::sample::select(ZONES),
        request(),
    )
        .prop_map(|(acps, self_privileges, zone, request)| Scenario {
            acps,
            rule_set: if self_privileges {
                RuleSet::SelfPrivileges
            } else {
                RuleSet::Privileges
            },
            zone,
            request,
        })
        .boxed()
}

/// `privileges` full of attribute-level rules and a request touching one or two attributes.
fn attribute_scenario() -> BoxedStrategy<Scenario> {
    (
        proptest::collection::vec(attribute_acp(), 1..=2),
        proptest::sample::select(ZONES),
        request(),
        proptest::sample::subsequence(ATTRS, 1..=2),
    )
        .prop_map(|(acps, zone, mut request, touched)| {
            request.attributes = Some(touched);
            Scenario {
                acps,
                rule_set: RuleSet::Privileges,
                zone,
                request,
            }
        })
        .boxed()
}

fn scenario() -> BoxedStrategy<Scenario> {
    prop_oneof![4 => general_scenario(), 1 => attribute_scenario()].boxed()
}

// ---------------------------------------------------------------------------------------------
// Model → JSON, as the CSE would store it
// ---------------------------------------------------------------------------------------------

fn rule_json(r: &MRule) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "acor".into(),
        json!(r.acor.iter().map(|&i| ACOR_POOL[i].0).collect::<Vec<_>>()),
    );
    m.insert("acop".into(), json!(r.acop));
    if let Some(f) = r.acaf {
        m.insert("acaf".into(), json!(f));
    }
    if let Some(acco) = &r.acco {
        let list: Vec<Value> = acco
            .iter()
            .map(|c| {
                let mut e = serde_json::Map::new();
                if let Some(t) = &c.actw {
                    e.insert("actw".into(), json!(t));
                }
                if let Some((v4, v6)) = &c.acip {
                    let mut ip = serde_json::Map::new();
                    if let Some(v4) = v4 {
                        ip.insert("ipv4".into(), json!(v4));
                    }
                    if let Some(v6) = v6 {
                        ip.insert("ipv6".into(), json!(v6));
                    }
                    e.insert("acip".into(), Value::Object(ip));
                }
                if let Some((cc, cr)) = &c.aclr {
                    let mut lr = serde_json::Map::new();
                    if let Some(cc) = cc {
                        lr.insert("accc".into(), json!(cc));
                    }
                    if let Some(cr) = cr {
                        let circles: Vec<Value> =
                            cr.iter().map(|(a, b, r)| json!([a, b, r])).collect();
                        lr.insert("accr".into(), Value::Array(circles));
                    }
                    e.insert("aclr".into(), Value::Object(lr));
                }
                Value::Object(e)
            })
            .collect();
        m.insert("acco".into(), Value::Array(list));
    }
    if let Some(acod) = &r.acod {
        let list: Vec<Value> = acod
            .iter()
            .map(|o| {
                let mut e = serde_json::Map::new();
                if let Some(ty) = o.ty {
                    e.insert("ty".into(), json!(ty));
                }
                if let Some(s) = o.spty {
                    e.insert("spty".into(), json!(s));
                }
                e.insert("chty".into(), json!(o.chty));
                Value::Object(e)
            })
            .collect();
        m.insert("acod".into(), Value::Array(list));
    }
    if let Some(aca) = &r.aca {
        m.insert("aca".into(), json!(aca));
    }
    if r.unknown_element {
        m.insert("acxx".into(), json!(true));
    }
    Value::Object(m)
}

fn acp_json(a: &MAcp, index: usize) -> Value {
    json!({
        "ri": format!("acp{index}"),
        "pv": {"acr": a.pv.iter().map(rule_json).collect::<Vec<_>>()},
        "pvs": {"acr": a.pvs.iter().map(rule_json).collect::<Vec<_>>()},
    })
}

// ---------------------------------------------------------------------------------------------
// Reference algorithm, TS-0003 §7.1.5, in three-valued logic (None = indeterminate, §7.1.4)
// ---------------------------------------------------------------------------------------------

type T3 = Option<bool>;

fn and3(terms: &[T3]) -> T3 {
    if terms.contains(&Some(false)) {
        Some(false)
    } else if terms.contains(&None) {
        None
    } else {
        Some(true)
    }
}

fn or3(terms: &[T3]) -> T3 {
    if terms.contains(&Some(true)) {
        Some(true)
    } else if terms.contains(&None) {
        None
    } else {
        Some(false)
    }
}

/// The absolute form of an ID given in any form (TS-0001 §7.2).
fn absolute(id: &str) -> Option<String> {
    let abs = if id.starts_with("//") {
        id.to_owned()
    } else if id.starts_with('/') {
        format!("//{SP}{id}")
    } else if id.starts_with('C') {
        format!("//{SP}/{CSE}/{id}")
    } else if id.starts_with('S') {
        format!("//{SP}/{id}")
    } else {
        return None;
    };
    let ok = abs
        .trim_start_matches("//")
        .split('/')
        .all(|s| !s.is_empty() && !s.contains(' '));
    ok.then_some(abs)
}

/// `*` matches any run of characters other than `/` (TS-0003 §7.1.3).
fn glob(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len())
            .take_while(|&n| n == 0 || t[n - 1] != '/')
            .any(|n| glob(rest, &t[n..])),
        Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
    }
}

fn id_matches(pattern: &str, originator: &str) -> bool {
    let abs_pattern = if pattern.starts_with("//") {
        pattern.to_owned()
    } else if pattern.starts_with('/') {
        format!("//{SP}{pattern}")
    } else if pattern.starts_with('C') {
        format!("//{SP}/{CSE}/{pattern}")
    } else {
        format!("//{SP}/{pattern}")
    };
    let p: Vec<char> = abs_pattern.chars().collect();
    let t: Vec<char> = originator.chars().collect();
    glob(&p, &t)
}

fn group_member(group: &str, originator: &str, depth: usize, visited: &mut Vec<String>) -> T3 {
    if depth > m2mtrust_authz::MAX_GROUP_DEPTH {
        return None;
    }
    let dir = directory();
    let members = dir.get(group)?;
    visited.push(group.to_owned());
    let mut results = Vec::new();
    for m in members {
        match m {
            GroupMember::Originator(id) => {
                results.push(Some(absolute(id).as_deref() == Some(originator)))
            }
            GroupMember::Group(g) if visited.contains(g) => results.push(Some(false)),
            GroupMember::Group(g) => results.push(group_member(g, originator, depth + 1, visited)),
        }
    }
    or3(&results)
}

/// res_origs(k) = ismember(Originator, acr(k)_accessControlOriginators)
fn res_origs(r: &MRule, q: &MRequest, originator: &str) -> T3 {
    let terms: Vec<T3> = r
        .acor
        .iter()
        .map(|&i| {
            let (text, kind) = ACOR_POOL[i];
            match kind {
                Kind::All => Some(true),
                Kind::Domain => Some(originator.starts_with(&format!("{text}/"))),
                Kind::Id => Some(id_matches(text, originator)),
                Kind::Role => Some(q.roles.contains(&text)),
                Kind::Group => group_member(text, originator, 1, &mut Vec::new()),
                Kind::NotUnderstood => None,
            }
        })
        .collect();
    or3(&terms)
}

/// res_ops(k) = ismember(Operation, acr(k)_accessControlOperations)
fn res_ops(r: &MRule, q: &MRequest) -> T3 {
    let names = [
        (1, Operation::Create),
        (2, Operation::Retrieve),
        (4, Operation::Update),
        (8, Operation::Delete),
        (16, Operation::Notify),
        (32, Operation::Discovery),
    ];
    Some(
        names
            .iter()
            .any(|&(bit, op)| r.acop & bit != 0 && op == q.op),
    )
}

/// Table 7.1.5-1.
fn res_authn(r: &MRule, q: &MRequest) -> T3 {
    Some(match (r.acaf.unwrap_or(false), q.authn) {
        (true, true) => true,
        (true, false) => false,
        (false, true) => true,
        (false, false) => true,
    })
}

fn cron_values(field: &str, min: u32, max: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().unwrap()),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().unwrap(), b.parse().unwrap())
        } else {
            let v = range.parse().unwrap();
            (v, v)
        };
        out.extend((lo..=hi).step_by(step));
    }
    out
}

/// res_time(k, m) = ismember(rq_time, acr(k)_accessControlTimeWindow(m))
fn res_time(actw: &Option<Vec<String>>, q: &MRequest, zone: Tz) -> T3 {
    let Some(entries) = actw else {
        return Some(true);
    };
    let t = q.time.with_timezone(&zone);
    let now = [
        t.second(),
        t.minute(),
        t.hour(),
        t.day(),
        t.month(),
        t.weekday().num_days_from_sunday(),
        t.year() as u32,
    ];
    let ranges = [
        (0, 59),
        (0, 59),
        (0, 23),
        (1, 31),
        (1, 12),
        (0, 6),
        (2000, 9999),
    ];
    Some(entries.iter().any(|e| {
        let fields: Vec<&str> = e.split_whitespace().collect();
        fields
            .iter()
            .zip(ranges)
            .zip(now)
            .all(|((f, (lo, hi)), v)| cron_values(f, lo, hi).contains(&v))
    }))
}

fn bits(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.octets().iter().map(|o| format!("{o:08b}")).collect(),
        IpAddr::V6(a) => a.octets().iter().map(|o| format!("{o:08b}")).collect(),
    }
}

fn in_cidr(entry: &str, ip: IpAddr) -> bool {
    let (addr, len) = match entry.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<usize>().unwrap())),
        None => (entry, None),
    };
    let net: IpAddr = addr.parse().unwrap();
    if net.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let (a, b) = (bits(net), bits(ip));
    let len = len.unwrap_or(a.len());
    a[..len] == b[..len]
}

/// res_ip(k, m) = ismember(rq_ip, acr(k)_accessControlIpAddress(m))
fn res_ip(acip: &Option<MAddresses>, q: &MRequest) -> T3 {
    let Some((v4, v6)) = acip else {
        return Some(true);
    };
    let entries: Vec<&str> = v4.iter().chain(v6.iter()).flatten().copied().collect();
    if entries.is_empty() {
        return Some(false);
    }
    let ip: IpAddr = q.ip?.parse().unwrap();
    // An IPv4-mapped IPv6 peer is the IPv4 peer it stands for.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    Some(entries.iter().any(|e| in_cidr(e, ip)))
}

fn great_circle(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((b.1 - a.1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().atan2((1.0 - h).max(0.0).sqrt())
}

/// res_loc(k, m) = ismember(rq_loc, acr(k)_accessControlLocationRegion(m))
fn res_loc(aclr: &Option<MRegions>, q: &MRequest) -> T3 {
    let Some((countries, circles)) = aclr else {
        return Some(true);
    };
    let countries = countries.clone().unwrap_or_default();
    let circles = circles.clone().unwrap_or_default();
    if countries.is_empty() && circles.is_empty() {
        return Some(false);
    }
    let (coords, country) = q.loc?;
    let mut terms: Vec<T3> = countries
        .iter()
        .map(|c| country.map(|rc| rc == *c))
        .collect();
    terms.extend(
        circles
            .iter()
            .map(|&(lat, lon, r)| coords.map(|p| great_circle((lat, lon), p) <= r)),
    );
    or3(&terms)
}

/// res_ctxts(k) = OR_m res_time(k,m) AND res_ip(k,m) AND res_loc(k,m)
fn res_ctxts(r: &MRule, q: &MRequest, zone: Tz) -> T3 {
    match &r.acco {
        None => Some(true),
        Some(list) if list.is_empty() => Some(true),
        Some(list) => {
            let terms: Vec<T3> = list
                .iter()
                .map(|c| {
                    and3(&[
                        res_time(&c.actw, q, zone),
                        res_ip(&c.acip, q),
                        res_loc(&c.aclr, q),
                    ])
                })
                .collect();
            or3(&terms)
        }
    }
}

/// res_objd(k) = OR_m res_resourceType(k,m) AND res_specializationID(k,m) AND
/// res_childResource(k,m); CREATE only.
fn res_objd(r: &MRule, q: &MRequest) -> T3 {
    let list = match &r.acod {
        Some(list) if !list.is_empty() && q.op == Operation::Create => list,
        _ => return Some(true),
    };
    let (target, ty, spec) = q.create;
    let terms: Vec<T3> = list
        .iter()
        .map(|o| {
            let res_resource_type = match o.ty {
                None => Some(true),
                Some(t) => target.map(|target| target == t),
            };
            let res_specialization = match o.spty {
                None => Some(true),
                Some(s) => Some(spec == Some(s)),
            };
            let res_child = ty.map(|ty| o.chty.contains(&ty));
            and3(&[res_resource_type, res_specialization, res_child])
        })
        .collect();
    or3(&terms)
}

/// res_acr(k) = res_authn(k) AND res_origs(k) AND res_ops(k) AND res_ctxts(k) AND res_objd(k)
fn res_acr(r: &MRule, q: &MRequest, zone: Tz, originator: &str) -> T3 {
    // A rule with an element or `acor` form the engine does not understand is indeterminate
    // as a whole (it never grants).
    let not_understood = r
        .acor
        .iter()
        .any(|&i| ACOR_POOL[i].1 == Kind::NotUnderstood);
    if r.unknown_element || not_understood {
        return None;
    }
    and3(&[
        res_authn(r, q),
        res_origs(r, q, originator),
        res_ops(r, q),
        res_ctxts(r, q, zone),
        res_objd(r, q),
    ])
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// The rule reported as permitting and the further rules needed for the attributes.
    Permit(((usize, usize), Vec<(usize, usize)>)),
    NoRules,
    NoMatch,
    AttributesNotGranted,
    Indeterminate,
}

fn rules_of(a: &MAcp, set: RuleSet) -> &[MRule] {
    match set {
        RuleSet::Privileges => &a.pv,
        RuleSet::SelfPrivileges => &a.pvs,
    }
}

/// Which rules an audit record names for a permit: scanning in order, the first rule without
/// `aca`, or the rules that first granted each touched attribute once all are granted.
fn audit(
    results: &[((usize, usize), &MRule, T3)],
    touched: &[&str],
) -> ((usize, usize), Vec<(usize, usize)>) {
    let mut first_grant: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (at, r, res) in results {
        if *res != Some(true) {
            continue;
        }
        match &r.aca {
            None => return (*at, Vec::new()),
            Some(aca) => {
                for a in touched {
                    if aca.contains(a) {
                        first_grant.entry(a).or_insert(*at);
                    }
                }
                if !touched.is_empty() && touched.iter().all(|a| first_grant.contains_key(a)) {
                    let rules: BTreeSet<(usize, usize)> = first_grant.values().copied().collect();
                    let mut rules = rules.into_iter();
                    let first = rules.next().unwrap();
                    return (first, rules.collect());
                }
            }
        }
    }
    unreachable!("audit is only asked for permits")
}

/// res_acrs = OR_k res_acr(k) over the rules of every ACP, extended per attribute for `aca`.
fn reference(s: &Scenario) -> (Outcome, AttributeGrant) {
    let q = &s.request;
    let originator = absolute(q.from).expect("pool originators are valid");
    let results: Vec<((usize, usize), &MRule, T3)> = s
        .acps
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            rules_of(a, s.rule_set)
                .iter()
                .enumerate()
                .map(move |(k, r)| ((i, k), r))
        })
        .map(|(at, r)| (at, r, res_acr(r, q, s.zone, &originator)))
        .collect();
    let whole_permit = results
        .iter()
        .any(|(_, r, res)| *res == Some(true) && r.aca.is_none());
    let mut granted = BTreeSet::new();
    for (_, r, res) in &results {
        if *res == Some(true)
            && let Some(aca) = &r.aca
        {
            granted.extend(aca.iter().map(|a| a.to_string()));
        }
    }
    let grant = if whole_permit {
        AttributeGrant::All
    } else {
        AttributeGrant::Only(granted.clone())
    };
    let touched: Vec<&str> = q.attributes.clone().unwrap_or_default();
    let attribute_permit = !touched.is_empty() && touched.iter().all(|a| granted.contains(*a));
    let outcome = if whole_permit || attribute_permit {
        Outcome::Permit(audit(&results, &touched))
    } else if results.iter().any(|(_, _, res)| res.is_none()) {
        Outcome::Indeterminate
    } else if results.iter().any(|(_, _, res)| *res == Some(true)) {
        Outcome::AttributesNotGranted
    } else if results.is_empty() {
        Outcome::NoRules
    } else {
        Outcome::NoMatch
    };
    (outcome, grant)
}

// ---------------------------------------------------------------------------------------------
// Engine side
// ---------------------------------------------------------------------------------------------

struct MapDirectory(BTreeMap<&'static str, Vec<GroupMember>>);

impl Directory for MapDirectory {
    fn group_members(&self, group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        self.0.get(group_id).map(|m| Cow::Borrowed(m.as_slice()))
    }
}

fn engine(s: &Scenario, reversed: bool) -> (Decision, AttributeGrant) {
    let pdp =
        Pdp::new(HostingCse::new("//m2mtrust.example", "/id-in").unwrap()).with_time_zone(s.zone);
    let mut models: Vec<(usize, MAcp)> = s.acps.iter().cloned().enumerate().collect();
    if reversed {
        models.reverse();
        for (_, a) in &mut models {
            a.pv.reverse();
            a.pvs.reverse();
        }
    }
    let acps: Vec<CompiledAcp> = models
        .iter()
        .map(|(i, a)| CompiledAcp::compile(&acp_json(a, *i)).expect("generated ACPs compile"))
        .collect();
    let q = &s.request;
    let originator = pdp.originator(q.from).unwrap();
    let location = q.loc.map(|(c, country)| OriginatorLocation {
        coordinates: c.map(|(lat, lon)| Coordinates::new(lat, lon).unwrap()),
        country: country.map(|c| CountryCode::parse(c).unwrap()),
    });
    let touched: Vec<&str> = q.attributes.clone().unwrap_or_default();
    let mut request = Request::new(&originator, q.op, q.time);
    request.role_ids = &q.roles;
    request.authenticated = q.authn;
    request.peer_address = q.ip.map(|ip| ip.parse().unwrap());
    request.location = location.as_ref();
    request.create = CreateDetails {
        target_resource_type: q.create.0,
        resource_type: q.create.1,
        specialization: q.create.2,
    };
    if q.attributes.is_some() {
        request.attributes = Attributes::Touched(&touched);
    }
    let directory = MapDirectory(directory());
    let decision = pdp.decide(&acps, s.rule_set, &request, &directory);
    let grant = pdp.permitted_attributes(&acps, s.rule_set, &request, &directory);
    (decision, grant)
}

fn class(d: &Decision) -> &'static str {
    match d {
        Decision::Permit(_) => "permit",
        Decision::Deny(d) => match d.reason {
            DenyReason::NoRules => "no-rules",
            DenyReason::NoRuleMatched => "no-match",
            DenyReason::AttributesNotGranted => "attributes-not-granted",
            DenyReason::Indeterminate { .. } => "indeterminate",
        },
    }
}

fn outcome_class(o: &Outcome) -> &'static str {
    match o {
        Outcome::Permit(_) => "permit",
        Outcome::NoRules => "no-rules",
        Outcome::NoMatch => "no-match",
        Outcome::AttributesNotGranted => "attributes-not-granted",
        Outcome::Indeterminate => "indeterminate",
    }
}

fn check(s: &Scenario) -> Result<(), TestCaseError> {
    let (expected, expected_grant) = reference(s);
    let (decision, grant) = engine(s, false);
    prop_assert_eq!(class(&decision), outcome_class(&expected), "{}", decision);
    if let (Outcome::Permit((at, also)), Decision::Permit(p)) = (&expected, &decision) {
        prop_assert_eq!(*at, (p.rule.acp_index, p.rule.rule_index));
        let engine_also: Vec<(usize, usize)> =
            p.also.iter().map(|r| (r.acp_index, r.rule_index)).collect();
        prop_assert_eq!(also, &engine_also);
        let id = format!("acp{}", at.0);
        prop_assert_eq!(p.rule.acp_id.as_deref(), Some(id.as_str()));
    }
    prop_assert_eq!(&grant, &expected_grant);
    // Permit-overrides: the order of ACPs and rules never changes the outcome.
    let (reversed, reversed_grant) = engine(s, true);
    prop_assert_eq!(class(&reversed), class(&decision));
    prop_assert_eq!(reversed_grant, grant);
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 4000, ..Config::default() })]

    #[test]
    fn engine_agrees_with_reference(s in scenario()) {
        check(&s)?;
    }
}

/// The generators must produce every outcome often enough for the property to mean
/// something.
#[test]
fn generated_scenarios_cover_every_outcome() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = scenario();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let n = 3000;
    for _ in 0..n {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        let (outcome, _) = reference(&s);
        let key = match outcome {
            Outcome::Permit((_, also)) if !also.is_empty() => "multi-rule-permit",
            Outcome::Permit(_) if s.request.attributes.as_ref().is_some_and(|a| !a.is_empty()) => {
                "attribute-permit"
            }
            other => outcome_class(&other),
        };
        *counts.entry(key).or_default() += 1;
    }
    // (outcome, minimum share in per mille)
    for (key, min) in [
        ("permit", 10),
        ("attribute-permit", 10),
        ("multi-rule-permit", 2),
        ("no-rules", 10),
        ("no-match", 10),
        ("attributes-not-granted", 10),
        ("indeterminate", 10),
    ] {
        let c = counts.get(key).copied().unwrap_or(0);
        assert!(c * 1000 >= n * min, "{key}: {c} of {n} ({counts:?})");
    }
    let permits: usize = ["permit", "attribute-permit", "multi-rule-permit"]
        .iter()
        .filter_map(|k| counts.get(k))
        .sum();
    assert!(permits * 10 >= n, "too few permits: {counts:?}");
}
