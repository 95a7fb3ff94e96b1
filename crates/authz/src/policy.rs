//! TS-0003 §7.1.3 (format of privileges and selfPrivileges): compiling the JSON of an
//! `<accessControlPolicy>` into rules that are cheap to evaluate.
//!
//! Two kinds of trouble are told apart:
//!
//! * **Malformed** (a [`CompileError`]): a known element with the wrong type, a missing
//!   mandatory element (`pv`, `pvs`, `acor`, `acop`, `chty`), an `acop` outside 1…63, a time
//!   window, address, country code or circle that does not parse, an `acod` with `ty` 13 or 28
//!   but no specialization, an empty `chty`, or a `pvs` without rules.
//! * **Not understood**: an element name the engine does not know (in a rule, a context
//!   element, `acip`, `aclr` or an `acod` element), or an `acor` entry of a form it does not
//!   know (a `*` in an SP domain, Role-ID or group resource-ID, illegal characters…). The rule
//!   is compiled into a state that never grants anything and keeps the reason, which
//!   [`CompiledAcp::not_understood`] reports; the rest of the ACP works as usual.
//!
//! Empty lists: an empty `acco` or `acod` is the same as an absent one (a rule without contexts
//! or object details). Inside a context element, a present `actw`, `acip` or `aclr` with no
//! entries admits nothing (the request cannot be a member of an empty set).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::address::AddressSet;
use crate::error::{CompileError, Problem};
use crate::location::{CountryCode, Region};
use crate::operation::RuleSet;
use crate::originator::{Classified, IdEntry, classify};
use crate::schedule::ScheduleEntry;

/// The resource types whose specializations `acod` must name (TS-0003 §7.1.5):
/// 13 `<mgmtObj>` and 28 `<flexContainer>`.
const SPECIALIZED_TYPES: [u16; 2] = [13, 28];

/// One element of `acco`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) time: Option<Box<[ScheduleEntry]>>,
    pub(crate) ip: Option<AddressSet>,
    pub(crate) location: Option<Box<[Region]>>,
}

/// One element of `acod`.
#[derive(Debug, Clone)]
pub(crate) struct ObjectDetail {
    pub(crate) resource_type: Option<u16>,
    pub(crate) specialization: Option<Box<str>>,
    pub(crate) child_resource_types: Box<[u16]>,
}

/// One compiled `accessControlRule`.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Set when the rule contains something the engine does not understand.
    pub(crate) not_understood: Option<Arc<str>>,
    pub(crate) operations: u8,
    pub(crate) authentication: bool,
    pub(crate) ids: Box<[IdEntry]>,
    pub(crate) groups: Box<[Arc<str>]>,
    pub(crate) contexts: Box<[Context]>,
    pub(crate) object_details: Box<[ObjectDetail]>,
    pub(crate) attributes: Option<Box<[Box<str>]>>,
}

/// An `<accessControlPolicy>` compiled once when it is stored and shared read-only between
/// requests (`Arc<CompiledAcp>` is `Send + Sync`; nothing in it changes after compilation).
#[derive(Debug, Clone)]
pub struct CompiledAcp {
    id: Option<Arc<str>>,
    privileges: Box<[Rule]>,
    self_privileges: Box<[Rule]>,
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn as_object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, CompileError> {
    value
        .as_object()
        .ok_or_else(|| CompileError::new(path, Problem::WrongType("an object")))
}

fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value], CompileError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| CompileError::new(path, Problem::WrongType("an array")))
}

fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str, CompileError> {
    value
        .as_str()
        .ok_or_else(|| CompileError::new(path, Problem::WrongType("a string")))
}

fn as_u16(value: &Value, path: &str) -> Result<u16, CompileError> {
    value
        .as_u64()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| CompileError::new(path, Problem::WrongType("a resource type number")))
}

fn as_f64(value: &Value, path: &str) -> Result<f64, CompileError> {
    value
        .as_f64()
        .ok_or_else(|| CompileError::new(path, Problem::WrongType("a number")))
}

fn strings<'v>(value: &'v Value, path: &str) -> Result<Vec<&'v str>, CompileError> {
    as_array(value, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| as_str(v, &index(path, i)))
        .collect()
}

/// Records the first element name of `map` that is not in `known`.
fn unknown_keys(
    map: &Map<String, Value>,
    known: &[&str],
    path: &str,
    not_understood: &mut Option<String>,
) {
    if not_understood.is_some() {
        return;
    }
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        *not_understood = Some(format!("{}: unknown element", child(path, key)));
    }
}

impl CompiledAcp {
    /// TS-0003 §7.1.3 (format of privileges and selfPrivileges): compiles the JSON object of
    /// an `m2m:acp` resource in short names, either bare (`{"pv":…,"pvs":…}`) or wrapped
    /// (`{"m2m:acp":{…}}`). Elements other than `ri`, `pv` and `pvs` are ignored; `ri`, when
    /// present, becomes the [`CompiledAcp::id`] used in audit data.
    pub fn compile(acp: &Value) -> Result<Self, CompileError> {
        let acp = match acp.as_object().and_then(|m| m.get("m2m:acp")) {
            Some(inner) => inner,
            None => acp,
        };
        let map = as_object(acp, "m2m:acp")?;
        let id = match map.get("ri") {
            Some(ri) => Some(Arc::from(as_str(ri, "ri")?)),
            None => None,
        };
        let privileges = rules(map, "pv")?;
        let self_privileges = rules(map, "pvs")?;
        if self_privileges.is_empty() {
            return Err(CompileError::invalid(
                "pvs.acr",
                "selfPrivileges needs at least one access control rule (TS-0001 §9.6.2)",
            ));
        }
        Ok(Self {
            id,
            privileges,
            self_privileges,
        })
    }

    /// Sets the resource-ID reported in audit data, when the stored JSON has no `ri`.
    pub fn with_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The ACP's resource-ID, if known.
    pub fn id(&self) -> Option<&Arc<str>> {
        self.id.as_ref()
    }

    /// The number of rules in `pv` or `pvs`.
    pub fn rule_count(&self, rule_set: RuleSet) -> usize {
        self.rules(rule_set).len()
    }

    /// The rules the engine compiled into a never-matching state, with the reason, so the CSE
    /// can log them or refuse the ACP.
    pub fn not_understood(&self) -> impl Iterator<Item = (RuleSet, usize, &str)> {
        [RuleSet::Privileges, RuleSet::SelfPrivileges]
            .into_iter()
            .flat_map(move |set| {
                self.rules(set)
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, r)| r.not_understood.as_deref().map(|why| (set, i, why)))
            })
    }

    /// An ACP without rules; it denies everything.
    pub(crate) fn empty() -> Self {
        Self {
            id: None,
            privileges: Box::default(),
            self_privileges: Box::default(),
        }
    }

    pub(crate) fn rules(&self, rule_set: RuleSet) -> &[Rule] {
        match rule_set {
            RuleSet::Privileges => &self.privileges,
            RuleSet::SelfPrivileges => &self.self_privileges,
        }
    }
}

impl AsRef<CompiledAcp> for CompiledAcp {
    fn as_ref(&self) -> &CompiledAcp {
        self
    }
}

/// `m2m:setOfAcrs`: `{"acr": [rule…]}`; an absent `acr` is an empty set.
fn rules(acp: &Map<String, Value>, name: &str) -> Result<Box<[Rule]>, CompileError> {
    let set = acp
        .get(name)
        .ok_or_else(|| CompileError::new(name, Problem::Missing))?;
    let set = as_object(set, name)?;
    let path = child(name, "acr");
    match set.get("acr") {
        None => Ok(Box::default()),
        Some(acr) => as_array(acr, &path)?
            .iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(rule, &index(&path, i)))
            .collect(),
    }
}

/// TS-0003 Table 7.1.3-1 (parameters of an access-control-rule-tuple).
fn compile_rule(value: &Value, path: &str) -> Result<Rule, CompileError> {
    let map = as_object(value, path)?;
    let mut not_understood: Option<String> = None;

    let acor_path = child(path, "acor");
    let acor = map
        .get("acor")
        .ok_or_else(|| CompileError::new(&acor_path, Problem::Missing))?;
    let mut ids = Vec::new();
    let mut groups = Vec::new();
    for (i, text) in strings(acor, &acor_path)?.into_iter().enumerate() {
        match classify(text) {
            Classified::Id(entry) => ids.push(entry),
            Classified::Group(id) => groups.push(id),
            Classified::NotUnderstood(why) => {
                if not_understood.is_none() {
                    not_understood = Some(format!("{}: {why}", index(&acor_path, i)));
                }
            }
        }
    }

    let acop_path = child(path, "acop");
    let operations = map
        .get("acop")
        .ok_or_else(|| CompileError::new(&acop_path, Problem::Missing))?
        .as_u64()
        .ok_or_else(|| CompileError::new(&acop_path, Problem::WrongType("an integer")))?;
    let operations = u8::try_from(operations)
        .ok()
        .filter(|ops| (1..=63).contains(ops))
        .ok_or_else(|| {
            CompileError::invalid(&acop_path, format!("{operations} is not a bitmask in 1-63"))
        })?;

    let authentication = match map.get("acaf") {
        None => false,
        Some(flag) => flag.as_bool().ok_or_else(|| {
            CompileError::new(child(path, "acaf"), Problem::WrongType("a boolean"))
        })?,
    };

    let contexts = match map.get("acco") {
        None => Vec::new(),
        Some(acco) => {
            let acco_path = child(path, "acco");
            as_array(acco, &acco_path)?
                .iter()
                .enumerate()
                .map(|(i, c)| compile_context(c, &index(&acco_path, i), &mut not_understood))
                .collect::<Result<_, _>>()?
        }
    };

    let object_details = match map.get("acod") {
        None => Vec::new(),
        Some(acod) => {
            let acod_path = child(path, "acod");
            as_array(acod, &acod_path)?
                .iter()
                .enumerate()
                .map(|(i, d)| compile_object_detail(d, &index(&acod_path, i), &mut not_understood))
                .collect::<Result<_, _>>()?
        }
    };

    let attributes = match map.get("aca") {
        None => None,
        Some(aca) => Some(
            strings(aca, &child(path, "aca"))?
                .into_iter()
                .map(Box::from)
                .collect(),
        ),
    };

    unknown_keys(
        map,
        &["acor", "acop", "acco", "acaf", "acod", "aca"],
        path,
        &mut not_understood,
    );

    Ok(Rule {
        not_understood: not_understood.map(Arc::from),
        operations,
        authentication,
        ids: ids.into(),
        groups: groups.into(),
        contexts: contexts.into(),
        object_details: object_details.into(),
        attributes,
    })
}

/// TS-0003 Table 7.1.3-2 (parameters of accessControlContexts).
fn compile_context(
    value: &Value,
    path: &str,
    not_understood: &mut Option<String>,
) -> Result<Context, CompileError> {
    let map = as_object(value, path)?;
    let mut context = Context::default();
    if let Some(actw) = map.get("actw") {
        let actw_path = child(path, "actw");
        let entries = strings(actw, &actw_path)?
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                ScheduleEntry::parse(text)
                    .map_err(|why| CompileError::invalid(index(&actw_path, i), why))
            })
            .collect::<Result<_, _>>()?;
        context.time = Some(entries);
    }
    if let Some(acip) = map.get("acip") {
        let acip_path = child(path, "acip");
        let acip_map = as_object(acip, &acip_path)?;
        let mut set = AddressSet::default();
        for (family, push) in [
            (
                "ipv4",
                AddressSet::push_v4 as fn(&mut AddressSet, &str) -> Result<(), String>,
            ),
            ("ipv6", AddressSet::push_v6),
        ] {
            if let Some(list) = acip_map.get(family) {
                let list_path = child(&acip_path, family);
                for (i, text) in strings(list, &list_path)?.into_iter().enumerate() {
                    push(&mut set, text)
                        .map_err(|why| CompileError::invalid(index(&list_path, i), why))?;
                }
            }
        }
        unknown_keys(acip_map, &["ipv4", "ipv6"], &acip_path, not_understood);
        context.ip = Some(set);
    }
    if let Some(aclr) = map.get("aclr") {
        let aclr_path = child(path, "aclr");
        let aclr_map = as_object(aclr, &aclr_path)?;
        let mut regions = Vec::new();
        if let Some(accc) = aclr_map.get("accc") {
            let accc_path = child(&aclr_path, "accc");
            for (i, text) in strings(accc, &accc_path)?.into_iter().enumerate() {
                let code = CountryCode::parse(text)
                    .map_err(|e| CompileError::invalid(index(&accc_path, i), e.to_string()))?;
                regions.push(Region::Country(code));
            }
        }
        if let Some(accr) = aclr_map.get("accr") {
            let accr_path = child(&aclr_path, "accr");
            let list = as_array(accr, &accr_path)?;
            // A single circle `[lat, lon, r]` (m2m:circRegion) or a list of circles.
            if list.first().is_some_and(Value::is_number) {
                regions.push(circle(list, &accr_path)?);
            } else {
                for (i, c) in list.iter().enumerate() {
                    let c_path = index(&accr_path, i);
                    regions.push(circle(as_array(c, &c_path)?, &c_path)?);
                }
            }
        }
        unknown_keys(aclr_map, &["accc", "accr"], &aclr_path, not_understood);
        context.location = Some(regions.into());
    }
    unknown_keys(map, &["actw", "acip", "aclr"], path, not_understood);
    Ok(context)
}

fn circle(values: &[Value], path: &str) -> Result<Region, CompileError> {
    let [lat, lon, radius] = values else {
        return Err(CompileError::invalid(
            path,
            "a circle is [latitude, longitude, radius in metres]",
        ));
    };
    Region::circle(
        as_f64(lat, &index(path, 0))?,
        as_f64(lon, &index(path, 1))?,
        as_f64(radius, &index(path, 2))?,
    )
    .map_err(|why| CompileError::invalid(path, why))
}

/// TS-0003 Table 7.1.3-3 (parameters of accessControlObjectDetails). The specialization is
/// read from `spty` (TS-0004 short name of specializationType) or from the element name
/// `specializationID` used by TS-0003; giving both is an error.
fn compile_object_detail(
    value: &Value,
    path: &str,
    not_understood: &mut Option<String>,
) -> Result<ObjectDetail, CompileError> {
    let map = as_object(value, path)?;
    let resource_type = match map.get("ty") {
        None => None,
        Some(ty) => Some(as_u16(ty, &child(path, "ty"))?),
    };
    let specialization = match (map.get("spty"), map.get("specializationID")) {
        (Some(_), Some(_)) => {
            return Err(CompileError::invalid(
                child(path, "spty"),
                "given twice (spty and specializationID)",
            ));
        }
        (Some(s), None) => Some(as_str(s, &child(path, "spty"))?),
        (None, Some(s)) => Some(as_str(s, &child(path, "specializationID"))?),
        (None, None) => None,
    };
    if let Some(ty) = resource_type
        && SPECIALIZED_TYPES.contains(&ty)
        && specialization.is_none()
    {
        return Err(CompileError::new(child(path, "spty"), Problem::Missing));
    }
    let chty_path = child(path, "chty");
    let chty = map
        .get("chty")
        .ok_or_else(|| CompileError::new(&chty_path, Problem::Missing))?;
    let child_resource_types: Box<[u16]> = as_array(chty, &chty_path)?
        .iter()
        .enumerate()
        .map(|(i, t)| as_u16(t, &index(&chty_path, i)))
        .collect::<Result<_, _>>()?;
    if child_resource_types.is_empty() {
        return Err(CompileError::invalid(
            chty_path,
            "childResourceType needs at least one resource type",
        ));
    }
    unknown_keys(
        map,
        &["ty", "spty", "specializationID", "chty"],
        path,
        not_understood,
    );
    Ok(ObjectDetail {
        resource_type,
        specialization: specialization.map(Box::from),
        child_resource_types,
    })
}
