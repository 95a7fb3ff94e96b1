//! TS-0003 §7.1.4 (access control decision) and §7.1.5 (access decision algorithm): the
//! permit-overrides evaluation of compiled rules against one request.
//!
//! Each partial result is three-valued: TRUE, FALSE, or indeterminate (a request input the rule
//! needs is missing, a group cannot be resolved, or the rule was not understood). The rule
//! result is their AND and the overall result their OR, in Kleene logic: a FALSE term makes the
//! rule FALSE whatever else is unknown, and one TRUE rule permits whatever other rules are
//! unknown. Only a TRUE result permits; FALSE and indeterminate both deny (§7.1.4), and the
//! deny reason says which of the two it was.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::location::{OriginatorLocation, RegionMatch};
use crate::operation::{Operation, RuleSet};
use crate::originator::{HostingCse, Originator, OriginatorView};
use crate::policy::{CompiledAcp, Context, Rule};
use crate::schedule::LocalTime;

/// Levels of `<group>` nesting followed below an `acor` group entry (the group itself is
/// level 1). Deeper nesting is indeterminate.
pub const MAX_GROUP_DEPTH: usize = 8;

/// A member of a `<group>`, as the CSE resolves its `memberIDs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMember {
    /// An AE or CSE, by its AE-ID or CSE-ID in any form [`Originator::normalise`] accepts
    /// (the CSE maps `<AE>`/`<remoteCSE>` resource-IDs to these).
    Originator(String),
    /// A nested `<group>`, by the resource-ID the directory is asked about next.
    Group(String),
}

/// Group resolution, supplied by the CSE so that the engine stays pure (the Policy
/// Information Point of TS-0003 §6.2.2).
pub trait Directory {
    /// The members of the `<group>` with this resource-ID (as written in `acor`, or as
    /// returned in [`GroupMember::Group`]), or `None` when there is no such group.
    fn group_members(&self, group_id: &str) -> Option<Cow<'_, [GroupMember]>>;
}

/// A directory without groups: every group entry is unresolvable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

impl Directory for NoDirectory {
    fn group_members(&self, _group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        None
    }
}

/// Which attributes a request touches, for rules with `aca` (accessControlAttributes).
///
/// A rule with `aca` grants access to the listed attributes only; a rule without it grants the
/// whole resource. An attribute is granted if some matching rule grants it (permit-overrides
/// per attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attributes<'a> {
    /// The whole resource (CREATE, DELETE, NOTIFY, DISCOVERY, a plain RETRIEVE). Only rules
    /// without `aca` can permit.
    Whole,
    /// These attribute short names only (an UPDATE's content, a partial RETRIEVE). Permitted
    /// when every listed attribute is granted; an empty list counts as [`Attributes::Whole`].
    Touched(&'a [&'a str]),
}

/// The request inputs of `res_objd` (TS-0003 §7.1.5), used for CREATE only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateDetails<'a> {
    /// `targetResourceTypeID`: the type of the resource addressed in `To` (the parent).
    pub target_resource_type: Option<u16>,
    /// The `Resource Type` parameter of the CREATE (the type being created).
    pub resource_type: Option<u16>,
    /// The `mgmtDefinition` or `containerDefinition` given in the Content of the CREATE;
    /// `None` when the Content has none.
    pub specialization: Option<&'a str>,
}

/// Everything a decision looks at (TS-0003 Tables 7.1.2-1, 7.1.2-2 and 7.1.2-3).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The authenticated originator, in absolute form.
    pub originator: &'a Originator,
    /// Verified Role-IDs of the originator (from `rids` checked against `<role>` resources,
    /// or from verified tokens); matched literally against Role-IDs in `acor`.
    pub role_ids: &'a [&'a str],
    /// The operation, with Discovery already told apart from Retrieve.
    pub operation: Operation,
    /// `rq_authn`: the originator is considered authenticated and `From` matched the
    /// authenticated identity (TS-0003 §7.1.2).
    pub authenticated: bool,
    /// `rq_time`: when the request was received. The engine never reads the clock.
    pub time: DateTime<Utc>,
    /// `rq_ip`: the source address of the request's packets; `None` over non-IP transports.
    pub peer_address: Option<IpAddr>,
    /// `rq_loc`: the originator's location, if the CSE has one.
    pub location: Option<&'a OriginatorLocation>,
    /// CREATE inputs for `acod`.
    pub create: CreateDetails<'a>,
    /// The attributes the request touches, for `aca`.
    pub attributes: Attributes<'a>,
}

impl<'a> Request<'a> {
    /// A request with no roles, not authenticated, without address, location or CREATE
    /// details, touching the whole resource.
    pub fn new(originator: &'a Originator, operation: Operation, time: DateTime<Utc>) -> Self {
        Self {
            originator,
            role_ids: &[],
            operation,
            authenticated: false,
            time,
            peer_address: None,
            location: None,
            create: CreateDetails::default(),
            attributes: Attributes::Whole,
        }
    }
}

/// Where a rule sits: the position of its ACP in the set passed to [`Pdp::decide`], the
/// ACP's resource-ID if known, and the rule's index in `pv`/`pvs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// Index of the ACP in the ACP set of the decision.
    pub acp_index: usize,
    /// The ACP's resource-ID ([`CompiledAcp::id`]).
    pub acp_id: Option<Arc<str>>,
    /// Index of the rule in the `acr` list.
    pub rule_index: usize,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "acp[{}]", self.acp_index)?;
        if let Some(id) = &self.acp_id {
            write!(f, " ({id})")?;
        }
        write!(f, " rule {}", self.rule_index)
    }
}

/// Why a needed input or policy part could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indeterminacy {
    /// The rule contains something the engine does not understand (the text says what).
    RuleNotUnderstood(Arc<str>),
    /// `acip` is present but the request has no `rq_ip`.
    PeerAddressUnavailable,
    /// `aclr` is present but the request has no `rq_loc`.
    LocationUnavailable,
    /// A country region, but `rq_loc` has no country.
    CountryUnavailable,
    /// A circle region, but `rq_loc` has no coordinates.
    CoordinatesUnavailable,
    /// `acod` has `ty`, but the CREATE has no target resource type.
    TargetResourceTypeUnavailable,
    /// `acod` is present, but the CREATE has no resource type.
    ResourceTypeUnavailable,
    /// A `<group>` named in `acor` (or nested in one) does not exist.
    GroupUnresolvable(Arc<str>),
    /// Group nesting deeper than [`MAX_GROUP_DEPTH`].
    GroupNestingTooDeep(Arc<str>),
}

impl std::fmt::Display for Indeterminacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RuleNotUnderstood(why) => write!(f, "rule not understood: {why}"),
            Self::PeerAddressUnavailable => f.write_str("no peer IP address for acip"),
            Self::LocationUnavailable => f.write_str("no originator location for aclr"),
            Self::CountryUnavailable => f.write_str("no originator country for aclr accc"),
            Self::CoordinatesUnavailable => f.write_str("no originator coordinates for aclr accr"),
            Self::TargetResourceTypeUnavailable => f.write_str("no target resource type for acod"),
            Self::ResourceTypeUnavailable => f.write_str("no CREATE resource type for acod"),
            Self::GroupUnresolvable(id) => write!(f, "group {id} cannot be resolved"),
            Self::GroupNestingTooDeep(id) => write!(f, "group {id} is nested too deeply"),
        }
    }
}

/// Why access was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The ACP set has no rules in the evaluated attribute (no ACPs, or empty `pv`).
    NoRules,
    /// Every rule evaluated to FALSE.
    NoRuleMatched,
    /// Rules matched, but only with `aca` lists that do not cover the touched attributes
    /// (or the request touches the whole resource).
    AttributesNotGranted,
    /// No rule was TRUE and at least one could not be decided; the first such rule and why.
    Indeterminate {
        /// The first rule that was indeterminate.
        rule: RuleRef,
        /// What was missing.
        cause: Indeterminacy,
    },
}

/// A permit and the rule(s) that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// `pv` or `pvs`.
    pub rule_set: RuleSet,
    /// The rule that permitted (for [`Attributes::Touched`] covered by several `aca` rules,
    /// the first of them).
    pub rule: RuleRef,
    /// Further rules needed to cover all touched attributes; usually empty.
    pub also: Vec<RuleRef>,
}

/// A deny and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// `pv` or `pvs`.
    pub rule_set: RuleSet,
    /// Why.
    pub reason: DenyReason,
}

/// TS-0003 §7.1.4 (access control decision): the result, with the data an audit event needs.
/// The engine emits no events itself; the CSE, which knows the peer, credential and target,
/// logs this value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// `res_acrs` = TRUE.
    Permit(Permit),
    /// `res_acrs` = FALSE or indeterminate.
    Deny(Deny),
}

impl Decision {
    /// Whether access is granted.
    pub fn is_permit(&self) -> bool {
        matches!(self, Self::Permit(_))
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Permit(p) => {
                write!(f, "permit by {} {}", p.rule_set, p.rule)?;
                for r in &p.also {
                    write!(f, ", {r}")?;
                }
                Ok(())
            }
            Self::Deny(d) => match &d.reason {
                DenyReason::NoRules => write!(f, "deny: no {} rules", d.rule_set),
                DenyReason::NoRuleMatched => write!(f, "deny: no {} rule matched", d.rule_set),
                DenyReason::AttributesNotGranted => {
                    write!(
                        f,
                        "deny: {} rules do not grant these attributes",
                        d.rule_set
                    )
                }
                DenyReason::Indeterminate { rule, cause } => {
                    write!(f, "deny: {} {rule} indeterminate: {cause}", d.rule_set)
                }
            },
        }
    }
}

/// The attributes an originator may access, from [`Pdp::permitted_attributes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeGrant {
    /// A matching rule without `aca`: every attribute.
    All,
    /// Only these attribute short names (empty: nothing).
    Only(BTreeSet<String>),
}

impl AttributeGrant {
    /// Whether `attribute` is granted.
    pub fn allows(&self, attribute: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(attribute),
        }
    }
}

/// Three-valued partial result.
enum Tri {
    True,
    False,
    Unknown(Indeterminacy),
}

/// The Policy Decision Point of TS-0003 §6.2.2: pure, configured once with the hosting
/// CSE's identity and the time zone in which `actw` windows are read.
#[derive(Debug, Clone)]
pub struct Pdp {
    hosting: HostingCse,
    time_zone: Tz,
}

/// Per-decision state.
struct Eval<'r, 'a> {
    pdp: &'r Pdp,
    request: &'r Request<'a>,
    view: OriginatorView<'a>,
    local_time: Option<LocalTime>,
    directory: &'r dyn Directory,
}

impl Pdp {
    /// A decision point for this hosting CSE; `actw` windows are read in UTC.
    pub fn new(hosting: HostingCse) -> Self {
        Self {
            hosting,
            time_zone: chrono_tz::UTC,
        }
    }

    /// Reads `actw` windows in this time zone instead of UTC.
    pub fn with_time_zone(mut self, time_zone: Tz) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// The hosting CSE.
    pub fn hosting(&self) -> &HostingCse {
        &self.hosting
    }

    /// Normalises an authenticated `From` ([`Originator::normalise`]).
    pub fn originator(&self, from: &str) -> Result<Originator, crate::IdError> {
        Originator::normalise(from, &self.hosting)
    }

    /// TS-0003 §7.1.5 (access decision algorithm): evaluates `request` against the
    /// `rule_set` of every ACP in `acps` (the ACP set of the target, see
    /// [`RuleSet::select`]), permit-overrides across rules and ACPs.
    ///
    /// Accepts any iterable of `CompiledAcp`, `&CompiledAcp` or `Arc<CompiledAcp>`.
    pub fn decide<I>(
        &self,
        acps: I,
        rule_set: RuleSet,
        request: &Request<'_>,
        directory: &dyn Directory,
    ) -> Decision
    where
        I: IntoIterator,
        I::Item: AsRef<CompiledAcp>,
    {
        let touched = match request.attributes {
            Attributes::Touched(t) if !t.is_empty() => Some(t),
            _ => None,
        };
        let mut eval = Eval::new(self, request, directory);
        let mut any_rules = false;
        let mut attribute_limited = false;
        let mut first_unknown: Option<(RuleRef, Indeterminacy)> = None;
        // For each touched attribute, the first rule that granted it.
        let mut coverage: Vec<Option<RuleRef>> = Vec::new();
        for (acp_index, acp) in acps.into_iter().enumerate() {
            let acp = acp.as_ref();
            for (rule_index, rule) in acp.rules(rule_set).iter().enumerate() {
                any_rules = true;
                let here = || RuleRef {
                    acp_index,
                    acp_id: acp.id().cloned(),
                    rule_index,
                };
                match eval.rule(rule) {
                    Tri::False => {}
                    Tri::Unknown(cause) => {
                        if first_unknown.is_none() {
                            first_unknown = Some((here(), cause));
                        }
                    }
                    Tri::True => match (&rule.attributes, touched) {
                        (None, _) => {
                            return Decision::Permit(Permit {
                                rule_set,
                                rule: here(),
                                also: Vec::new(),
                            });
                        }
                        (Some(_), None) => attribute_limited = true,
                        (Some(granted), Some(touched)) => {
                            attribute_limited = true;
                            if coverage.is_empty() {
                                coverage = vec![None; touched.len()];
                            }
                            for (slot, attr) in coverage.iter_mut().zip(touched) {
                                if slot.is_none() && granted.iter().any(|g| **g == **attr) {
                                    *slot = Some(here());
                                }
                            }
                            if let Some(permit) = covered(rule_set, &coverage) {
                                return Decision::Permit(permit);
                            }
                        }
                    },
                }
            }
        }
        let reason = match first_unknown {
            Some((rule, cause)) => DenyReason::Indeterminate { rule, cause },
            None if attribute_limited => DenyReason::AttributesNotGranted,
            None if !any_rules => DenyReason::NoRules,
            None => DenyReason::NoRuleMatched,
        };
        Decision::Deny(Deny { rule_set, reason })
    }

    /// Which attributes the originator may access with `request.operation` (e.g. which to
    /// return for a RETRIEVE, or which an UPDATE may set): the union of the `aca` lists of all
    /// matching rules, or [`AttributeGrant::All`] if a matching rule has no `aca`.
    /// `request.attributes` is ignored. Indeterminate rules grant nothing.
    pub fn permitted_attributes<I>(
        &self,
        acps: I,
        rule_set: RuleSet,
        request: &Request<'_>,
        directory: &dyn Directory,
    ) -> AttributeGrant
    where
        I: IntoIterator,
        I::Item: AsRef<CompiledAcp>,
    {
        let mut eval = Eval::new(self, request, directory);
        let mut granted = BTreeSet::new();
        for acp in acps {
            for rule in acp.as_ref().rules(rule_set) {
                if let Tri::True = eval.rule(rule) {
                    match &rule.attributes {
                        None => return AttributeGrant::All,
                        Some(list) => granted.extend(list.iter().map(|a| a.to_string())),
                    }
                }
            }
        }
        AttributeGrant::Only(granted)
    }

    /// TS-0004 §7.3.3.14 (discovery): keeps the discovery results the originator may
    /// discover and drops the others (a missing DISCOVERY privilege filters, it does not
    /// fail the request). `policies` gives, per item, the rule set and ACP set that govern
    /// it. The request is evaluated as [`Operation::Discovery`] whatever its operation says.
    /// Returns how many items were dropped.
    pub fn filter_discovery<T, F>(
        &self,
        items: &mut Vec<T>,
        request: &Request<'_>,
        directory: &dyn Directory,
        mut policies: F,
    ) -> usize
    where
        F: FnMut(&T) -> (RuleSet, Vec<Arc<CompiledAcp>>),
    {
        let request = Request {
            operation: Operation::Discovery,
            ..*request
        };
        let before = items.len();
        items.retain(|item| {
            let (rule_set, acps) = policies(item);
            self.decide(&acps, rule_set, &request, directory)
                .is_permit()
        });
        before - items.len()
    }
}

/// The permit for touched attributes granted by several `aca` rules: the rules that first
/// granted each attribute, in policy order. `None` while an attribute is not granted.
fn covered(rule_set: RuleSet, coverage: &[Option<RuleRef>]) -> Option<Permit> {
    let mut rules: Vec<RuleRef> = Vec::new();
    for r in coverage {
        let r = r.as_ref()?;
        if !rules.contains(r) {
            rules.push(r.clone());
        }
    }
    rules.sort_by_key(|r| (r.acp_index, r.rule_index));
    let mut rules = rules.into_iter();
    let rule = rules.next()?;
    Some(Permit {
        rule_set,
        rule,
        also: rules.collect(),
    })
}

impl<'r, 'a> Eval<'r, 'a> {
    fn new(pdp: &'r Pdp, request: &'r Request<'a>, directory: &'r dyn Directory) -> Self {
        Self {
            pdp,
            request,
            view: OriginatorView::new(request.originator, &pdp.hosting),
            local_time: None,
            directory,
        }
    }

    /// `res_acr(k) = res_authn(k) AND res_origs(k) AND res_ops(k) AND res_ctxts(k) AND
    /// res_objd(k)`, cheapest terms first; group membership, the only term that asks the
    /// directory, last.
    fn rule(&mut self, rule: &Rule) -> Tri {
        if let Some(why) = &rule.not_understood {
            return Tri::Unknown(Indeterminacy::RuleNotUnderstood(why.clone()));
        }
        // res_ops(k) = ismember(Operation, acr(k)_accessControlOperations)
        if rule.operations & self.request.operation.bit() == 0 {
            return Tri::False;
        }
        // res_authn(k): Table 7.1.5-1, FALSE only for flag TRUE and rq_authn FALSE.
        if rule.authentication && !self.request.authenticated {
            return Tri::False;
        }
        // res_origs(k), the part decided without the directory.
        let id_match = rule
            .ids
            .iter()
            .any(|entry| entry.matches(&self.view, self.request.role_ids));
        if !id_match && rule.groups.is_empty() {
            return Tri::False;
        }
        let mut unknown = None;
        let mut and = |term: Tri| match term {
            Tri::True => true,
            Tri::False => false,
            Tri::Unknown(cause) => {
                unknown.get_or_insert(cause);
                true
            }
        };
        if !and(self.object_details(rule)) || !and(self.contexts(&rule.contexts)) {
            return Tri::False;
        }
        if !id_match && !and(self.groups(rule)) {
            return Tri::False;
        }
        unknown.map_or(Tri::True, Tri::Unknown)
    }

    /// `res_objd(k) = OR_m res_resourceType(k,m) AND res_specializationID(k,m) AND
    /// res_childResource(k,m)`; CREATE only, TRUE without `acod`.
    fn object_details(&self, rule: &Rule) -> Tri {
        if self.request.operation != Operation::Create || rule.object_details.is_empty() {
            return Tri::True;
        }
        let create = &self.request.create;
        any(rule.object_details.iter().map(|detail| {
            all([
                match detail.resource_type {
                    None => Tri::True,
                    Some(ty) => match create.target_resource_type {
                        Some(target) => bool_tri(target == ty),
                        None => Tri::Unknown(Indeterminacy::TargetResourceTypeUnavailable),
                    },
                },
                match &detail.specialization {
                    None => Tri::True,
                    Some(s) => bool_tri(create.specialization == Some(&**s)),
                },
                match create.resource_type {
                    Some(ty) => bool_tri(detail.child_resource_types.contains(&ty)),
                    None => Tri::Unknown(Indeterminacy::ResourceTypeUnavailable),
                },
            ])
        }))
    }

    /// `res_ctxts(k) = OR_m res_time(k,m) AND res_ip(k,m) AND res_loc(k,m)`; TRUE without
    /// `acco`.
    fn contexts(&mut self, contexts: &[Context]) -> Tri {
        if contexts.is_empty() {
            return Tri::True;
        }
        let mut unknown = None;
        for context in contexts {
            match self.context(context) {
                Tri::True => return Tri::True,
                Tri::False => {}
                Tri::Unknown(cause) => {
                    unknown.get_or_insert(cause);
                }
            }
        }
        unknown.map_or(Tri::False, Tri::Unknown)
    }

    fn context(&mut self, context: &Context) -> Tri {
        let time = match &context.time {
            None => Tri::True,
            Some(windows) => {
                let (now, zone) = (self.request.time, self.pdp.time_zone);
                let local = self
                    .local_time
                    .get_or_insert_with(|| LocalTime::new(now, zone));
                bool_tri(windows.iter().any(|w| w.matches(local)))
            }
        };
        if let Tri::False = time {
            return Tri::False;
        }
        let ip = match &context.ip {
            None => Tri::True,
            Some(set) if set.is_empty() => Tri::False,
            Some(set) => match self.request.peer_address {
                Some(addr) => bool_tri(set.contains(addr)),
                None => Tri::Unknown(Indeterminacy::PeerAddressUnavailable),
            },
        };
        let location = match &context.location {
            None => Tri::True,
            Some(regions) if regions.is_empty() => Tri::False,
            Some(regions) => match self.request.location {
                None => Tri::Unknown(Indeterminacy::LocationUnavailable),
                Some(loc) => any(regions.iter().map(|region| match region.test(loc) {
                    RegionMatch::Inside => Tri::True,
                    RegionMatch::Outside => Tri::False,
                    RegionMatch::CountryUnknown => Tri::Unknown(Indeterminacy::CountryUnavailable),
                    RegionMatch::CoordinatesUnknown => {
                        Tri::Unknown(Indeterminacy::CoordinatesUnavailable)
                    }
                })),
            },
        };
        all([time, ip, location])
    }

    /// The `<group>` part of `res_origs(k)`; a group the directory does not know is
    /// indeterminate.
    fn groups(&self, rule: &Rule) -> Tri {
        any(rule
            .groups
            .iter()
            .map(|group| match self.directory.group_members(group) {
                None => Tri::Unknown(Indeterminacy::GroupUnresolvable(group.clone())),
                Some(members) => self.members_contain(group, &members, 1, &mut Vec::new()),
            }))
    }

    /// Whether the originator is among `members` of the group `group_id` at nesting level
    /// `depth`, following nested groups once each.
    fn members_contain(
        &self,
        group_id: &str,
        members: &[GroupMember],
        depth: usize,
        visited: &mut Vec<String>,
    ) -> Tri {
        visited.push(group_id.to_owned());
        let mut unknown = None;
        for member in members {
            let result = match member {
                GroupMember::Originator(id) => bool_tri(
                    Originator::normalise(id, &self.pdp.hosting)
                        .is_ok_and(|m| m == *self.view.originator),
                ),
                GroupMember::Group(nested) if visited.iter().any(|v| v == nested) => Tri::False,
                GroupMember::Group(nested) if depth >= MAX_GROUP_DEPTH => {
                    Tri::Unknown(Indeterminacy::GroupNestingTooDeep(nested.as_str().into()))
                }
                GroupMember::Group(nested) => match self.directory.group_members(nested) {
                    None => Tri::Unknown(Indeterminacy::GroupUnresolvable(nested.as_str().into())),
                    Some(inner) => self.members_contain(nested, &inner, depth + 1, visited),
                },
            };
            match result {
                Tri::True => return Tri::True,
                Tri::False => {}
                Tri::Unknown(cause) => {
                    unknown.get_or_insert(cause);
                }
            }
        }
        unknown.map_or(Tri::False, Tri::Unknown)
    }
}

fn bool_tri(b: bool) -> Tri {
    if b { Tri::True } else { Tri::False }
}

/// Kleene AND.
fn all<const N: usize>(terms: [Tri; N]) -> Tri {
    let mut unknown = None;
    for term in terms {
        match term {
            Tri::True => {}
            Tri::False => return Tri::False,
            Tri::Unknown(cause) => {
                unknown.get_or_insert(cause);
            }
        }
    }
    unknown.map_or(Tri::True, Tri::Unknown)
}

/// Kleene OR.
fn any(terms: impl Iterator<Item = Tri>) -> Tri {
    let mut unknown = None;
    for term in terms {
        match term {
            Tri::True => return Tri::True,
            Tri::False => {}
            Tri::Unknown(cause) => {
                unknown.get_or_insert(cause);
            }
        }
    }
    unknown.map_or(Tri::False, Tri::Unknown)
}

impl CompiledAcp {
    /// TS-0001 §9.6.1.3 (default access control policy): a resource whose
    /// `accessControlPolicyIDs` is not set grants "unrestricted access only to the Originator
    /// of the successful resource creation request". This builds that policy (every
    /// operation, in `pv` and `pvs`) for the stored creator.
    pub fn for_creator(creator: &Originator) -> Self {
        let rule = serde_json::json!({"acor": [creator.as_str()], "acop": 63});
        let acp = serde_json::json!({"pv": {"acr": [rule.clone()]}, "pvs": {"acr": [rule]}});
        // The absolute form of a normalised originator always compiles; fall back to an ACP
        // without rules (deny everything) rather than panic.
        Self::compile(&acp).unwrap_or_else(|_| Self::empty())
    }
}
