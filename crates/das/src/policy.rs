//! The DAS Server's policies: who may be granted which operations on which resources, for how
//! long, and in which form (TS-0003 §7.3.1: the DAS Server "is configured with policies and
//! credentials for issuing Tokens"; their form is out of the specification's scope).
//!
//! Identifiers are compared in one normal form, fixed when a policy is made:
//!
//! - originators are absolute (`//sp/id-in/Cae1`, `//sp/Sae2`, `//sp/id-mn`), as the holder of
//!   a token is (§7.3.2.2 step 3.1); a pattern is `all`, an exact ID, or an ID prefix ending in
//!   `*` (`//m2mtrust.example/id-in/C*`);
//! - resources are a hosting CSE (absolute CSE-ID) and a CSE-relative path
//!   ([`ResourceAddress`]); a pattern without a CSE-ID (`cse-in/ae1`) matches that path on any
//!   hosting CSE, one with a CSE-ID (`/id-in/cse-in/ae1`) only on that CSE. A trailing `/*`
//!   also matches everything below. Structured and unstructured forms of the same resource are
//!   different texts: the DAS Server does not see the resource tree.

use std::fmt;

use chrono::{DateTime, Utc};
use m2mtrust_model::{Home, Originator};

/// Why a policy or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// All accessControlOperations bits (create … discovery).
pub const ALL_OPERATIONS: u8 = 63;

/// Longest accepted lifetime: ten years.
pub const MAX_LIFETIME_SECS: u32 = 10 * 366 * 24 * 3600;

fn check_text(what: &str, s: &str) -> Result<(), PolicyError> {
    if s.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if s.len() > crate::request::MAX_ELEMENT_LEN {
        return Err(invalid(format!("{what} {s:?} is too long")));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!(
            "{what} {s:?} contains whitespace or control characters"
        )));
    }
    Ok(())
}

/// The absolute form `//sp/...` of an originator ID, relative IDs read against `home`
/// (TS-0001 Table 7.2-1).
pub fn absolute_originator(id: &str, home: &Home) -> Result<String, PolicyError> {
    Originator::parse(id, home)
        .map(|o| o.absolute(home))
        .map_err(|e| invalid(e.to_string()))
}

/// Which originators a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginatorPattern {
    /// Every originator.
    All,
    /// Exactly this absolute ID.
    Exact(String),
    /// Every absolute ID starting with this text (the pattern without its trailing `*`).
    Prefix(String),
}

impl OriginatorPattern {
    /// Reads a pattern as an operator writes it: `all`, an originator ID in any form, or an ID
    /// prefix ending in `*`; relative forms are made absolute against `home`.
    pub fn parse(s: &str, home: &Home) -> Result<Self, PolicyError> {
        check_text("originator pattern", s)?;
        if s == "all" || s == "*" {
            return Ok(Self::All);
        }
        if let Some(prefix) = s.strip_suffix('*') {
            if prefix.contains('*') {
                return Err(invalid(format!(
                    "originator pattern {s:?}: only one trailing '*' is allowed"
                )));
            }
            let absolute = if prefix.starts_with("//") {
                prefix.to_owned()
            } else if prefix.starts_with('/') {
                format!("{}{prefix}", home.sp_id)
            } else if prefix.starts_with('S') {
                format!("{}/{prefix}", home.sp_id)
            } else {
                format!("{}{}/{prefix}", home.sp_id, home.cse_id)
            };
            return Ok(Self::Prefix(absolute));
        }
        absolute_originator(s, home)
            .map(Self::Exact)
            .map_err(|e| invalid(format!("originator pattern {s:?}: {e}")))
    }

    /// Reads the stored (already normal) form that [`fmt::Display`] writes.
    pub fn from_stored(s: &str) -> Self {
        if s == "all" {
            Self::All
        } else if let Some(prefix) = s.strip_suffix('*') {
            Self::Prefix(prefix.to_owned())
        } else {
            Self::Exact(s.to_owned())
        }
    }

    /// Whether the absolute originator ID `originator` matches.
    pub fn matches(&self, originator: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(id) => id == originator,
            Self::Prefix(prefix) => originator.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for OriginatorPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Exact(id) => f.write_str(id),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A resource as the DAS compares it: the hosting CSE (absolute CSE-ID, when known) and the
/// CSE-relative path (TS-0001 §9.3.1 addressing forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAddress {
    /// `//sp/cse-id`, or `None` for a CSE-relative address.
    pub cse: Option<String>,
    /// The CSE-relative part, without leading or trailing `/`; empty for the CSE itself.
    pub path: String,
}

impl ResourceAddress {
    /// Reads a CSE-relative (`cse-in/ae1`), SP-relative (`/id-in/cse-in/ae1`) or absolute
    /// (`//sp/id-in/cse-in/ae1`) address; SP-relative ones belong to the SP `sp_id`.
    pub fn parse(s: &str, sp_id: &str) -> Result<Self, PolicyError> {
        check_text("resource address", s)?;
        let (cse, path) = if let Some(rest) = s.strip_prefix("//") {
            let mut parts = rest.splitn(3, '/');
            let domain = parts.next().unwrap_or_default();
            let cse = parts.next().unwrap_or_default();
            if domain.is_empty() || cse.is_empty() {
                return Err(invalid(format!(
                    "resource address {s:?}: the absolute form is //SP-ID/CSE-ID/path"
                )));
            }
            (
                Some(format!("//{domain}/{cse}")),
                parts.next().unwrap_or_default(),
            )
        } else if let Some(rest) = s.strip_prefix('/') {
            let (cse, path) = rest.split_once('/').unwrap_or((rest, ""));
            if cse.is_empty() {
                return Err(invalid(format!(
                    "resource address {s:?}: the SP-relative form is /CSE-ID/path"
                )));
            }
            (Some(format!("{sp_id}/{cse}")), path)
        } else {
            (None, s)
        };
        let path = path.trim_end_matches('/');
        if !path.is_empty() && path.split('/').any(|seg| seg.is_empty() || seg == "..") {
            return Err(invalid(format!(
                "resource address {s:?} has an empty or '..' segment"
            )));
        }
        if cse.is_none() && path.is_empty() {
            return Err(invalid(format!("resource address {s:?} is empty")));
        }
        Ok(Self {
            cse,
            path: path.to_owned(),
        })
    }

    /// The same address, hosted by `cse` when it named no CSE.
    pub fn hosted_by(mut self, cse: &str) -> Self {
        if self.cse.is_none() {
            self.cse = Some(cse.to_owned());
        }
        self
    }
}

impl fmt::Display for ResourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cse, self.path.is_empty()) {
            (Some(cse), true) => f.write_str(cse),
            (Some(cse), false) => write!(f, "{cse}/{}", self.path),
            (None, _) => f.write_str(&self.path),
        }
    }
}

/// Which resources a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPattern {
    /// Every resource.
    All,
    /// Exactly this resource.
    Exact(ResourceAddress),
    /// This resource and every resource below it (`.../*`).
    Subtree(ResourceAddress),
}

impl TargetPattern {
    /// Reads `all`, an address, or an address followed by `/*`; SP-relative addresses are made
    /// absolute with `sp_id`.
    pub fn parse(s: &str, sp_id: &str) -> Result<Self, PolicyError> {
        check_text("target pattern", s)?;
        if s == "all" || s == "*" {
            return Ok(Self::All);
        }
        let wrap = |e: PolicyError| invalid(format!("target pattern: {e}"));
        match s.strip_suffix("/*") {
            Some(base) => {
                if base.contains('*') {
                    return Err(invalid(format!(
                        "target pattern {s:?}: '*' is allowed only as the last segment"
                    )));
                }
                ResourceAddress::parse(base, sp_id)
                    .map(Self::Subtree)
                    .map_err(wrap)
            }
            None if s.contains('*') => Err(invalid(format!(
                "target pattern {s:?}: '*' is allowed only as a last segment '/*'"
            ))),
            None => ResourceAddress::parse(s, sp_id)
                .map(Self::Exact)
                .map_err(wrap),
        }
    }

    /// Reads the stored (already normal, never SP-relative) form.
    pub fn from_stored(s: &str) -> Result<Self, PolicyError> {
        // Stored addresses are absolute or CSE-relative, so the SP-ID is never consulted.
        Self::parse(s, "")
    }

    /// Whether `target` (whose hosting CSE is known) matches.
    pub fn matches(&self, target: &ResourceAddress) -> bool {
        let same_cse =
            |pattern: &ResourceAddress| pattern.cse.is_none() || pattern.cse == target.cse;
        match self {
            Self::All => true,
            Self::Exact(p) => same_cse(p) && p.path == target.path,
            Self::Subtree(p) => {
                same_cse(p)
                    && (p.path.is_empty()
                        || target.path == p.path
                        || target
                            .path
                            .strip_prefix(p.path.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            }
        }
    }
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Exact(a) => write!(f, "{a}"),
            Self::Subtree(a) => write!(f, "{a}/*"),
        }
    }
}

/// What a matching policy hands out (TS-0003 §7.3.2.2 step 3.1: Tokens and/or dynamicACPInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrantMode {
    /// Tokens only (`tkns`).
    Token,
    /// Dynamic ACP information only (`dai`); only a hosting CSE can use it.
    Acp,
    /// Both.
    #[default]
    Both,
}

impl GrantMode {
    /// Whether tokens are issued.
    pub fn tokens(self) -> bool {
        matches!(self, Self::Token | Self::Both)
    }

    /// Whether dynamic ACP information is returned.
    pub fn dynamic_acp(self) -> bool {
        matches!(self, Self::Acp | Self::Both)
    }

    /// `token`, `acp` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Acp => "acp",
            Self::Both => "both",
        }
    }
}

impl std::str::FromStr for GrantMode {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(Self::Token),
            "acp" => Ok(Self::Acp),
            "both" => Ok(Self::Both),
            other => Err(invalid(format!(
                "grant mode {other:?} is not one of token, acp, both"
            ))),
        }
    }
}

impl fmt::Display for GrantMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy of the DAS Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Short generated name.
    pub id: String,
    /// Originators it applies to (any one matching is enough).
    pub originators: Vec<OriginatorPattern>,
    /// Resources it applies to (any one matching is enough).
    pub targets: Vec<TargetPattern>,
    /// accessControlOperations granted (1 create, 2 retrieve, 4 update, 8 delete, 16 notify,
    /// 32 discovery), 1..=63.
    pub operations: u8,
    /// Longest lifetime of what is granted, seconds.
    pub lifetime_secs: u32,
    /// Tokens, dynamic ACP information, or both.
    pub grant: GrantMode,
    /// Role-IDs put in issued tokens (`rids`).
    pub role_ids: Vec<String>,
    /// When it was made.
    pub created: DateTime<Utc>,
}

/// What an operator asks for in a new policy, before normalisation.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    /// Originator patterns as written.
    pub originators: Vec<String>,
    /// Target patterns as written.
    pub targets: Vec<String>,
    /// accessControlOperations, 1..=63.
    pub operations: u8,
    /// Lifetime, 1..=[`MAX_LIFETIME_SECS`].
    pub lifetime_secs: u32,
    /// Grant mode.
    pub grant: GrantMode,
    /// Role-IDs.
    pub role_ids: Vec<String>,
}

impl Policy {
    /// Checks and normalises `spec` against `home` (relative IDs, SP-relative addresses).
    pub fn new(
        id: String,
        spec: &PolicySpec,
        home: &Home,
        created: DateTime<Utc>,
    ) -> Result<Self, PolicyError> {
        if spec.originators.is_empty() {
            return Err(invalid("a policy needs at least one originator pattern"));
        }
        if spec.targets.is_empty() {
            return Err(invalid("a policy needs at least one target pattern"));
        }
        if !(1..=ALL_OPERATIONS).contains(&spec.operations) {
            return Err(invalid(format!(
                "operations {} is not an accessControlOperations bitmask 1..=63",
                spec.operations
            )));
        }
        if !(1..=MAX_LIFETIME_SECS).contains(&spec.lifetime_secs) {
            return Err(invalid(format!(
                "lifetime {} s is not within 1..={MAX_LIFETIME_SECS}",
                spec.lifetime_secs
            )));
        }
        for role in &spec.role_ids {
            check_text("role ID", role)?;
        }
        let originators = spec
            .originators
            .iter()
            .map(|p| OriginatorPattern::parse(p, home))
            .collect::<Result<_, _>>()?;
        let targets = spec
            .targets
            .iter()
            .map(|p| TargetPattern::parse(p, home.sp_id.as_str()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id,
            originators,
            targets,
            operations: spec.operations,
            lifetime_secs: spec.lifetime_secs,
            grant: spec.grant,
            role_ids: spec.role_ids.clone(),
            created,
        })
    }

    /// Whether the policy covers `operation_bit` by `originator` (absolute) on `target`.
    pub fn matches(&self, originator: &str, target: &ResourceAddress, operation_bit: u8) -> bool {
        operation_bit != 0
            && self.operations & operation_bit == operation_bit
            && self.originators.iter().any(|p| p.matches(originator))
            && self.targets.iter().any(|p| p.matches(target))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use m2mtrust_model::{CseId, SpId};

    fn home() -> Home {
        Home {
            sp_id: SpId::parse("//m2mtrust.example").unwrap(),
            cse_id: CseId::parse("/id-in").unwrap(),
            cse_base_name: "cse-in".into(),
        }
    }

    const SP: &str = "//m2mtrust.example";

    #[test]
    fn originator_patterns_are_normalised() {
        let h = home();
        let cases = [
            ("all", "all"),
            ("*", "all"),
            ("Cae1", "//m2mtrust.example/id-in/Cae1"),
            ("/id-in/Cae1", "//m2mtrust.example/id-in/Cae1"),
            (
                "//m2mtrust.example/id-in/Cae1",
                "//m2mtrust.example/id-in/Cae1",
            ),
            ("Sapp", "//m2mtrust.example/Sapp"),
            ("/id-mn", "//m2mtrust.example/id-mn"),
            ("C*", "//m2mtrust.example/id-in/C*"),
            ("/id-mn/*", "//m2mtrust.example/id-mn/*"),
            ("//other.example/*", "//other.example/*"),
        ];
        for (input, stored) in cases {
            let p = OriginatorPattern::parse(input, &h).unwrap();
            assert_eq!(p.to_string(), stored, "{input}");
            assert_eq!(OriginatorPattern::from_stored(stored), p, "{input}");
        }
        for bad in ["", "C a", "C**", "//x", "a/b"] {
            assert!(OriginatorPattern::parse(bad, &h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn originator_matching() {
        let h = home();
        let ae1 = "//m2mtrust.example/id-in/Cae1";
        // (pattern, originator, matches)
        let table = [
            ("all", ae1, true),
            ("Cae1", ae1, true),
            ("Cae2", ae1, false),
            ("C*", ae1, true),
            ("C*", "//m2mtrust.example/id-in/Sx", false),
            ("//m2mtrust.example/id-in/C*", ae1, true),
            ("//m2mtrust.example/id-mn/C*", ae1, false),
            ("/id-in/Cae*", ae1, true),
            ("Cae1", "//m2mtrust.example/id-in/Cae10", false),
            ("//other.example/*", ae1, false),
        ];
        for (pattern, originator, want) in table {
            let p = OriginatorPattern::parse(pattern, &h).unwrap();
            assert_eq!(p.matches(originator), want, "{pattern} vs {originator}");
        }
    }

    #[test]
    fn resource_addresses() {
        let a = ResourceAddress::parse("/id-in/cse-in/ae1/", SP).unwrap();
        assert_eq!(a.cse.as_deref(), Some("//m2mtrust.example/id-in"));
        assert_eq!(a.path, "cse-in/ae1");
        let b = ResourceAddress::parse("//m2mtrust.example/id-in/cse-in/ae1", SP).unwrap();
        assert_eq!(a, b);
        let c = ResourceAddress::parse("cse-in/ae1", SP).unwrap();
        assert_eq!(c.cse, None);
        assert_eq!(c.hosted_by("//m2mtrust.example/id-in"), a);
        let cse = ResourceAddress::parse("/id-in", SP).unwrap();
        assert_eq!(cse.path, "");
        assert_eq!(cse.to_string(), "//m2mtrust.example/id-in");
        for bad in ["", "/", "//", "//sp", "//sp/", "a//b", "a/../b", "a b"] {
            assert!(ResourceAddress::parse(bad, SP).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_matching() {
        let on_in = |p: &str| {
            ResourceAddress::parse(p, SP)
                .unwrap()
                .hosted_by("//m2mtrust.example/id-in")
        };
        // (pattern, target, matches)
        let table = [
            ("all", "cse-in/ae1/cnt1", true),
            ("cse-in/ae1/cnt1", "cse-in/ae1/cnt1", true),
            ("cse-in/ae1/cnt1", "/id-in/cse-in/ae1/cnt1", true),
            ("/id-in/cse-in/ae1/cnt1", "cse-in/ae1/cnt1", true),
            (
                "//m2mtrust.example/id-in/cse-in/ae1/cnt1",
                "/id-in/cse-in/ae1/cnt1",
                true,
            ),
            ("/id-mn/cse-in/ae1/cnt1", "/id-in/cse-in/ae1/cnt1", false),
            ("cse-in/ae1/cnt1", "/id-mn/cse-in/ae1/cnt1", true),
            ("cse-in/ae1/cnt1", "cse-in/ae1/cnt2", false),
            ("cse-in/ae1/cnt1", "cse-in/ae1/cnt1/la", false),
            ("cse-in/ae1/*", "cse-in/ae1", true),
            ("cse-in/ae1/*", "cse-in/ae1/cnt1", true),
            ("cse-in/ae1/*", "cse-in/ae1/cnt1/cin9", true),
            ("cse-in/ae1/*", "cse-in/ae10", false),
            ("cse-in/ae1/*", "cse-in", false),
            ("/id-in/*", "cse-in/anything/below", true),
            ("/id-mn/*", "cse-in/anything", false),
        ];
        for (pattern, target, want) in table {
            let p = TargetPattern::parse(pattern, SP).unwrap();
            assert_eq!(p.matches(&on_in(target)), want, "{pattern} vs {target}");
            // The stored form matches the same way.
            let stored = TargetPattern::from_stored(&p.to_string()).unwrap();
            assert_eq!(stored, p, "{pattern}");
        }
        for bad in ["cse-in/*/x", "cse-in/a*", "*/x", ""] {
            assert!(TargetPattern::parse(bad, SP).is_err(), "{bad:?}");
        }
    }

    fn spec(operations: u8) -> PolicySpec {
        PolicySpec {
            originators: vec!["C*".into()],
            targets: vec!["cse-in/ae1/*".into()],
            operations,
            lifetime_secs: 600,
            grant: GrantMode::Both,
            role_ids: Vec::new(),
        }
    }

    #[test]
    fn policies_match_on_operation_bits() {
        let h = home();
        let ae = "//m2mtrust.example/id-in/Cae1";
        let target = ResourceAddress::parse("/id-in/cse-in/ae1/cnt1", SP).unwrap();
        // (policy operations, requested operation number, matches)
        let table = [
            (2, 2, true),
            (2, 1, false),
            (3, 1, true),
            (3, 2, true),
            (3, 3, false),
            (63, 5, true),
            (16, 5, true),
            (32, 2, false), // discovery is not retrieve
            (62, 1, false),
        ];
        for (ops, op, want) in table {
            let p = Policy::new("p".into(), &spec(ops), &h, Utc::now()).unwrap();
            let bit = crate::request::operation_bit(op);
            assert_eq!(p.matches(ae, &target, bit), want, "ops {ops} op {op}");
        }
        let p = Policy::new("p".into(), &spec(2), &h, Utc::now()).unwrap();
        assert!(!p.matches("//m2mtrust.example/Sx", &target, 2));
        assert!(!p.matches(
            ae,
            &ResourceAddress::parse("/id-in/cse-in/ae2", SP).unwrap(),
            2
        ));
        assert!(!p.matches(ae, &target, 0));
    }

    #[test]
    fn policies_are_checked() {
        let h = home();
        let mut s = spec(0);
        assert!(Policy::new("p".into(), &s, &h, Utc::now()).is_err());
        s.operations = 64;
        assert!(Policy::new("p".into(), &s, &h, Utc::now()).is_err());
        s.operations = 2;
        s.lifetime_secs = 0;
        assert!(Policy::new("p".into(), &s, &h, Utc::now()).is_err());
        s.lifetime_secs = 60;
        s.originators.clear();
        assert!(Policy::new("p".into(), &s, &h, Utc::now()).is_err());
        s.originators = vec!["all".into()];
        s.role_ids = vec!["r 1".into()];
        assert!(Policy::new("p".into(), &s, &h, Utc::now()).is_err());
        assert_eq!("acp".parse::<GrantMode>().unwrap(), GrantMode::Acp);
        assert!("tokens".parse::<GrantMode>().is_err());
    }
}
