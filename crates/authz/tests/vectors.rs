//! Runs the data-driven vectors in `tests/vectors/*.json` (see `tests/vectors/README.md` for
//! the clause each file transcribes). Every failing check is reported, not only the first.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use m2mtrust_authz::{
    AttributeGrant, Attributes, CompiledAcp, Coordinates, CountryCode, CreateDetails, Decision,
    DenyReason, Directory, GroupMember, HostingCse, Indeterminacy, Operation, OriginatorLocation,
    Pdp, Request, RuleSet,
};
use serde::Deserialize;
use serde_json::Value;

const DEFAULT_TIME: &str = "2024-01-01T10:00:00Z";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionFile {
    source: String,
    #[serde(default)]
    hosting: Option<HostingSpec>,
    cases: Vec<Case>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct HostingSpec {
    sp: String,
    cse: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    hosting: Option<HostingSpec>,
    #[serde(default)]
    tz: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<MemberSpec>>,
    acps: Vec<Value>,
    #[serde(default)]
    rule_set: Option<String>,
    checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum MemberSpec {
    Id(String),
    Group(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    #[serde(default)]
    name: Option<String>,
    request: RequestSpec,
    expect: Expect,
    #[serde(default)]
    permit_by: Option<(usize, usize)>,
    #[serde(default)]
    also: Option<Vec<(usize, usize)>>,
    #[serde(default)]
    permit_id: Option<String>,
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    attributes_granted: Option<GrantSpec>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Expect {
    Permit,
    NoRules,
    NoMatch,
    Indeterminate,
    AttributesNotGranted,
    BadOriginator,
    BadOperation,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GrantSpec {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpSpec {
    Name(String),
    Primitive(u8),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    from: String,
    #[serde(default)]
    roles: Vec<String>,
    op: OpSpec,
    #[serde(default)]
    fu: Option<u8>,
    #[serde(default)]
    authn: bool,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    loc: Option<LocSpec>,
    #[serde(default)]
    create: Option<CreateSpec>,
    #[serde(default)]
    attributes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocSpec {
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSpec {
    #[serde(default)]
    target_ty: Option<u16>,
    #[serde(default)]
    ty: Option<u16>,
    #[serde(default)]
    spec: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompileFile {
    source: String,
    cases: Vec<CompileCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompileCase {
    name: String,
    #[serde(default)]
    source: Option<String>,
    acp: Value,
    #[serde(default)]
    error_path: Option<String>,
    #[serde(default)]
    not_understood: Option<Vec<(String, usize)>>,
}

struct MapDirectory(BTreeMap<String, Vec<GroupMember>>);

impl Directory for MapDirectory {
    fn group_members(&self, group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        self.0.get(group_id).map(|m| Cow::Borrowed(m.as_slice()))
    }
}

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("vector directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn cause_name(cause: &Indeterminacy) -> &'static str {
    match cause {
        Indeterminacy::RuleNotUnderstood(_) => "rule-not-understood",
        Indeterminacy::PeerAddressUnavailable => "peer-address",
        Indeterminacy::LocationUnavailable => "location",
        Indeterminacy::CountryUnavailable => "country",
        Indeterminacy::CoordinatesUnavailable => "coordinates",
        Indeterminacy::TargetResourceTypeUnavailable => "target-resource-type",
        Indeterminacy::ResourceTypeUnavailable => "resource-type",
        Indeterminacy::GroupUnresolvable(_) => "group-unresolvable",
        Indeterminacy::GroupNestingTooDeep(_) => "group-too-deep",
    }
}

fn operation(spec: &RequestSpec) -> Option<Operation> {
    match &spec.op {
        OpSpec::Primitive(op) => Operation::from_primitive(*op, spec.fu),
        OpSpec::Name(name) => Some(match name.as_str() {
            "create" => Operation::Create,
            "retrieve" => Operation::Retrieve,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            "notify" => Operation::Notify,
            "discovery" => Operation::Discovery,
            other => panic!("unknown operation name {other}"),
        }),
    }
}

/// Runs one check; returns a description of the mismatch, if any.
fn run_check(
    pdp: &Pdp,
    acps: &[CompiledAcp],
    rule_set: RuleSet,
    directory: &MapDirectory,
    check: &Check,
) -> Result<(), String> {
    let spec = &check.request;
    let originator = match pdp.originator(&spec.from) {
        Ok(o) => o,
        Err(e) if check.expect == Expect::BadOriginator => {
            return if e.input == spec.from {
                Ok(())
            } else {
                Err(format!("error names {:?}", e.input))
            };
        }
        Err(e) => return Err(format!("originator refused: {e}")),
    };
    if check.expect == Expect::BadOriginator {
        return Err(format!("originator accepted as {originator}"));
    }
    let Some(op) = operation(spec) else {
        return if check.expect == Expect::BadOperation {
            Ok(())
        } else {
            Err("operation refused".into())
        };
    };
    if check.expect == Expect::BadOperation {
        return Err(format!("operation accepted as {op:?}"));
    }
    let time: DateTime<Utc> = spec
        .time
        .as_deref()
        .unwrap_or(DEFAULT_TIME)
        .parse()
        .map_err(|e| format!("bad time in vector: {e}"))?;
    let roles: Vec<&str> = spec.roles.iter().map(String::as_str).collect();
    let touched: Vec<&str> = spec
        .attributes
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let location = spec.loc.as_ref().map(|l| OriginatorLocation {
        coordinates: match (l.lat, l.lon) {
            (Some(lat), Some(lon)) => Some(Coordinates::new(lat, lon).expect("vector coordinates")),
            _ => None,
        },
        country: l
            .country
            .as_deref()
            .map(|c| CountryCode::parse(c).expect("vector country")),
    });
    let mut request = Request::new(&originator, op, time);
    request.role_ids = &roles;
    request.authenticated = spec.authn;
    request.peer_address = spec
        .ip
        .as_deref()
        .map(|ip| ip.parse::<IpAddr>().expect("vector ip"));
    request.location = location.as_ref();
    if let Some(c) = &spec.create {
        request.create = CreateDetails {
            target_resource_type: c.target_ty,
            resource_type: c.ty,
            specialization: c.spec.as_deref(),
        };
    }
    if spec.attributes.is_some() {
        request.attributes = Attributes::Touched(&touched);
    }

    let decision = pdp.decide(acps, rule_set, &request, directory);
    let got = match &decision {
        Decision::Permit(_) => Expect::Permit,
        Decision::Deny(d) => match &d.reason {
            DenyReason::NoRules => Expect::NoRules,
            DenyReason::NoRuleMatched => Expect::NoMatch,
            DenyReason::AttributesNotGranted => Expect::AttributesNotGranted,
            DenyReason::Indeterminate { .. } => Expect::Indeterminate,
        },
    };
    if got != check.expect {
        return Err(format!("expected {:?}, got {decision}", check.expect));
    }
    match &decision {
        Decision::Permit(p) => {
            if p.rule_set != rule_set {
                return Err(format!("permit names rule set {}", p.rule_set));
            }
            if let Some((acp, rule)) = check.permit_by
                && (p.rule.acp_index, p.rule.rule_index) != (acp, rule)
            {
                return Err(format!(
                    "expected permit by [{acp}, {rule}], got {decision}"
                ));
            }
            let also: Vec<(usize, usize)> =
                p.also.iter().map(|r| (r.acp_index, r.rule_index)).collect();
            if also != check.also.clone().unwrap_or_default() {
                return Err(format!("unexpected further rules: {decision}"));
            }
            if let Some(id) = &check.permit_id
                && p.rule.acp_id.as_deref() != Some(id.as_str())
            {
                return Err(format!("expected ACP id {id}, got {decision}"));
            }
        }
        Decision::Deny(d) => {
            if let (Some(expected), DenyReason::Indeterminate { cause, .. }) =
                (&check.cause, &d.reason)
                && cause_name(cause) != expected
            {
                return Err(format!("expected cause {expected}, got {decision}"));
            }
        }
    }
    if check.cause.is_some() && check.expect != Expect::Indeterminate {
        return Err("`cause` given for a check that is not indeterminate".into());
    }
    if let Some(expected) = &check.attributes_granted {
        let grant = pdp.permitted_attributes(acps, rule_set, &request, directory);
        let ok = match (expected, &grant) {
            (GrantSpec::Keyword(k), AttributeGrant::All) => k == "all",
            (GrantSpec::List(list), AttributeGrant::Only(set)) => {
                set.iter().eq(list.iter()) && list.windows(2).all(|w| w[0] < w[1])
            }
            _ => false,
        };
        if !ok {
            return Err(format!("permitted attributes: got {grant:?}"));
        }
    }
    Ok(())
}

fn run_decision_file(path: &Path, text: &str, failures: &mut Vec<String>) -> usize {
    let file: DecisionFile =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!file.source.is_empty(), "{}: empty source", path.display());
    assert!(!file.cases.is_empty(), "{}: no cases", path.display());
    let mut checks = 0;
    for case in &file.cases {
        assert!(
            !case.checks.is_empty(),
            "{}: {}: no checks",
            path.display(),
            case.name
        );
        if let Some(source) = &case.source {
            assert!(source.starts_with("TS-"), "{}: source {source}", case.name);
        }
        let hosting = case
            .hosting
            .clone()
            .or_else(|| file.hosting.clone())
            .unwrap_or(HostingSpec {
                sp: "//m2mtrust.example".into(),
                cse: "/id-in".into(),
            });
        let mut pdp = Pdp::new(HostingCse::new(&hosting.sp, &hosting.cse).expect("hosting"));
        if let Some(tz) = &case.tz {
            pdp = pdp.with_time_zone(tz.parse().expect("vector time zone"));
        }
        let acps: Vec<CompiledAcp> = match case
            .acps
            .iter()
            .map(CompiledAcp::compile)
            .collect::<Result<_, _>>()
        {
            Ok(acps) => acps,
            Err(e) => {
                failures.push(format!("{}: {}: {e}", path.display(), case.name));
                continue;
            }
        };
        let rule_set = match case.rule_set.as_deref() {
            None | Some("pv") => RuleSet::Privileges,
            Some("pvs") => RuleSet::SelfPrivileges,
            Some(other) => panic!("unknown rule set {other}"),
        };
        let directory = MapDirectory(
            case.groups
                .iter()
                .map(|(id, members)| {
                    let members = members
                        .iter()
                        .map(|m| match m {
                            MemberSpec::Id(id) => GroupMember::Originator(id.clone()),
                            MemberSpec::Group(g) => GroupMember::Group(g.clone()),
                        })
                        .collect();
                    (id.clone(), members)
                })
                .collect(),
        );
        for (i, check) in case.checks.iter().enumerate() {
            checks += 1;
            if let Err(why) = run_check(&pdp, &acps, rule_set, &directory, check) {
                failures.push(format!(
                    "{}: {} / check {i} {}: {why}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    case.name,
                    check.name.as_deref().unwrap_or(""),
                ));
            }
        }
    }
    checks
}

fn run_compile_file(path: &Path, text: &str, failures: &mut Vec<String>) -> usize {
    let file: CompileFile =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!file.source.is_empty());
    assert!(!file.cases.is_empty());
    for case in &file.cases {
        if let Some(source) = &case.source {
            assert!(source.starts_with("TS-"), "{}: source {source}", case.name);
        }
        let result = CompiledAcp::compile(&case.acp);
        let outcome = match (&case.error_path, &case.not_understood, result) {
            (Some(path), None, Err(e)) if e.path == *path => {
                // The message must name the field.
                if e.to_string().contains(path.as_str()) {
                    Ok(())
                } else {
                    Err(format!("message does not name the field: {e}"))
                }
            }
            (Some(path), None, Err(e)) => Err(format!("expected error at {path}, got {e}")),
            (Some(path), None, Ok(_)) => Err(format!("expected error at {path}, compiled")),
            (None, Some(expected), Ok(acp)) => {
                let got: Vec<(String, usize)> = acp
                    .not_understood()
                    .map(|(set, i, why)| {
                        assert!(!why.is_empty());
                        (set.short_name().to_owned(), i)
                    })
                    .collect();
                if got == *expected {
                    Ok(())
                } else {
                    Err(format!(
                        "not understood: expected {expected:?}, got {got:?}"
                    ))
                }
            }
            (None, Some(_), Err(e)) => Err(format!("expected to compile, got {e}")),
            _ => panic!("{}: give error_path or not_understood", case.name),
        };
        if let Err(why) = outcome {
            failures.push(format!("compile.json: {}: {why}", case.name));
        }
    }
    file.cases.len()
}

#[test]
fn vectors() {
    let files = vector_files();
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/README.md"),
    )
    .expect("README.md");
    assert!(files.len() >= 10, "vector files missing: {files:?}");
    let mut failures = Vec::new();
    let mut total = 0;
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not described in README.md"
        );
        let text = std::fs::read_to_string(path).expect("vector file");
        total += if name == "compile.json" {
            run_compile_file(path, &text, &mut failures)
        } else {
            run_decision_file(path, &text, &mut failures)
        };
    }
    assert!(
        failures.is_empty(),
        "{} of {total} vector checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total > 200, "only {total} vector checks ran");
}
