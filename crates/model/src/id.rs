//! Identifiers (TS-0001 §7.2) and address forms (TS-0001 §9.3.1): checked once at the boundary.

use std::fmt;

/// Why an identifier or address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The identifier breaks the syntax of its kind.
    #[error("invalid {kind} {value:?}: {why}")]
    Invalid {
        /// Which kind of identifier.
        kind: &'static str,
        /// The offending text (truncated).
        value: String,
        /// What is wrong.
        why: &'static str,
    },
}

fn invalid(kind: &'static str, value: &str, why: &'static str) -> IdError {
    IdError::Invalid {
        kind,
        value: value.chars().take(64).collect(),
        why,
    }
}

/// Longest identifier or address accepted anywhere.
pub const MAX_ID_LEN: usize = 512;

fn check_chars(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.len() > MAX_ID_LEN {
        return Err(invalid(kind, s, "too long"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            kind,
            s,
            "contains whitespace or control characters",
        ));
    }
    Ok(())
}

/// An SP-relative CSE-ID such as `/id-in`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CseId(String);

impl CseId {
    /// Parses `/name`; a bare `name` is accepted and given its slash.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_chars("CSE-ID", s)?;
        let body = s.strip_prefix('/').unwrap_or(s);
        if body.is_empty() || body.contains('/') {
            return Err(invalid(
                "CSE-ID",
                s,
                "must be one path segment such as /id-in",
            ));
        }
        Ok(Self(format!("/{body}")))
    }

    /// `/id-in`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `id-in`, without the slash.
    pub fn bare(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for CseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for CseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An M2M-SP-ID such as `//m2mtrust.example`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SpId(String);

impl SpId {
    /// Parses `//domain`; a bare `domain` is accepted.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_chars("SP-ID", s)?;
        let body = s.strip_prefix("//").unwrap_or(s);
        if body.is_empty() || body.contains('/') {
            return Err(invalid(
                "SP-ID",
                s,
                "must be a domain such as //m2mtrust.example",
            ));
        }
        Ok(Self(format!("//{body}")))
    }

    /// `//m2mtrust.example`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `m2mtrust.example`.
    pub fn domain(&self) -> &str {
        &self.0[2..]
    }
}

impl fmt::Display for SpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for SpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where this CSE sits: the reference point for relative identifiers.
#[derive(Clone, Debug)]
pub struct Home {
    /// The service provider's ID.
    pub sp_id: SpId,
    /// This CSE's ID.
    pub cse_id: CseId,
    /// The resourceName of `<CSEBase>`.
    pub cse_base_name: String,
}

/// An originator (`From`), normalised relative to [`Home`] (TS-0001 §7.2, Table 7.2-1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Originator {
    /// A C-type AE-ID registered (or registering) at this CSE: the stem, `Cabc`.
    LocalAe(String),
    /// An S-type AE-ID of this SP: `Sabc`.
    SpAe(String),
    /// A CSE of this SP: `/id-mn`.
    Cse(CseId),
    /// An AE registered at another CSE of this SP: `/id-mn/Cabc`.
    RemoteAe(CseId, String),
    /// Anything in another SP's domain, kept absolute: `//other.example/...`.
    Foreign(String),
}

impl Originator {
    /// Parses and normalises `From`. Empty input is not an originator (AE registration handles it).
    pub fn parse(s: &str, home: &Home) -> Result<Self, IdError> {
        check_chars("originator", s)?;
        if s.is_empty() {
            return Err(invalid("originator", s, "is empty"));
        }
        // Absolute: //sp/...
        let sp_relative = if let Some(rest) = s.strip_prefix("//") {
            let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
            if domain != home.sp_id.domain() {
                if domain.is_empty() || path.is_empty() {
                    return Err(invalid("originator", s, "absolute form needs //SP-ID/ID"));
                }
                return Ok(Self::Foreign(s.to_string()));
            }
            if path.is_empty() {
                return Err(invalid("originator", s, "absolute form needs //SP-ID/ID"));
            }
            if path.starts_with('S') && !path.contains('/') {
                return Ok(Self::SpAe(path.to_string()));
            }
            format!("/{path}")
        } else {
            s.to_string()
        };
        if let Some(rest) = sp_relative.strip_prefix('/') {
            let (cse, ae) = match rest.split_once('/') {
                Some((c, a)) => (c, Some(a)),
                None => (rest, None),
            };
            let cse_id = CseId::parse(cse)?;
            return match ae {
                None => Ok(Self::Cse(cse_id)),
                Some(a) if a.is_empty() || a.contains('/') => Err(invalid(
                    "originator",
                    s,
                    "SP-relative AE-ID must be /CSE-ID/AE-ID",
                )),
                Some(a) if a.starts_with('S') => Ok(Self::SpAe(a.to_string())),
                Some(a) if cse_id == home.cse_id => Ok(Self::LocalAe(a.to_string())),
                Some(a) => Ok(Self::RemoteAe(cse_id, a.to_string())),
            };
        }
        if sp_relative.contains('/') {
            return Err(invalid(
                "originator",
                s,
                "unexpected '/' in a relative AE-ID",
            ));
        }
        if sp_relative.starts_with('S') {
            Ok(Self::SpAe(sp_relative))
        } else {
            Ok(Self::LocalAe(sp_relative))
        }
    }

    /// The form stored in `cr` and compared for ownership: `Cabc`, `Sabc`, `/id-mn`, `/id-mn/Cabc`, `//x/...`.
    pub fn canonical(&self) -> String {
        match self {
            Self::LocalAe(a) | Self::SpAe(a) => a.clone(),
            Self::Cse(c) => c.as_str().to_string(),
            Self::RemoteAe(c, a) => format!("{c}/{a}"),
            Self::Foreign(s) => s.clone(),
        }
    }

    /// The absolute form `//sp/cse/ae` (TS-0003 §7.1.5 compares originators in this form).
    pub fn absolute(&self, home: &Home) -> String {
        match self {
            Self::LocalAe(a) => format!("{}{}/{a}", home.sp_id, home.cse_id),
            Self::SpAe(a) => format!("{}/{a}", home.sp_id),
            Self::Cse(c) => format!("{}{c}", home.sp_id),
            Self::RemoteAe(c, a) => format!("{}{c}/{a}", home.sp_id),
            Self::Foreign(s) => s.clone(),
        }
    }

    /// True when this originator is an AE-ID (C- or S-type).
    pub fn is_ae(&self) -> bool {
        matches!(self, Self::LocalAe(_) | Self::SpAe(_) | Self::RemoteAe(..))
    }
}

impl fmt::Debug for Originator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}
impl fmt::Display for Originator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The target of a primitive (`To`) after removing this CSE's SP-ID and CSE-ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A CSE-relative address: `cse-in/ae/cnt` (structured) or `cnt123` / `cnt123/la` (unstructured).
    Local(String),
    /// Hosted by another CSE: its ID and the remaining path.
    Remote {
        /// The SP-ID when the address was absolute and named another SP.
        sp: Option<String>,
        /// The hosting CSE's ID.
        cse: String,
    },
}

impl Target {
    /// TS-0001 §9.3.1: CSE-relative `a/b`, SP-relative `/cse-id/a/b`, absolute `//sp/cse-id/a/b`.
    pub fn parse(to: &str, home: &Home) -> Result<Self, IdError> {
        check_chars("target", to)?;
        let (sp, sp_relative) = if let Some(rest) = to.strip_prefix("//") {
            let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(domain), path)
        } else if let Some(rest) = to.strip_prefix('/') {
            (None, rest)
        } else {
            return Self::local(to);
        };
        let (cse, path) = sp_relative.split_once('/').unwrap_or((sp_relative, ""));
        if cse.is_empty() {
            return Err(invalid("target", to, "missing CSE-ID"));
        }
        let ours = sp.is_none_or(|d| d == home.sp_id.domain()) && cse == home.cse_id.bare();
        if !ours {
            return Ok(Self::Remote {
                sp: sp.map(str::to_string),
                cse: format!("/{cse}"),
            });
        }
        if path.is_empty() {
            // The CSE-ID alone addresses <CSEBase>.
            return Ok(Self::Local(home.cse_base_name.clone()));
        }
        Self::local(path)
    }

    fn local(path: &str) -> Result<Self, IdError> {
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(invalid("target", path, "is empty"));
        }
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(invalid("target", path, "has an empty, '.' or '..' segment"));
        }
        Ok(Self::Local(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Home {
        Home {
            sp_id: SpId::parse("//m2mtrust.example").unwrap(),
            cse_id: CseId::parse("/id-in").unwrap(),
            cse_base_name: "cse-in".into(),
        }
    }

    #[test]
    fn originator_forms_normalise() {
        let h = home();
        let cases: &[(&str, &str, &str)] = &[
            ("Cabc", "Cabc", "//m2mtrust.example/id-in/Cabc"),
            ("/id-in/Cabc", "Cabc", "//m2mtrust.example/id-in/Cabc"),
            (
                "//m2mtrust.example/id-in/Cabc",
                "Cabc",
                "//m2mtrust.example/id-in/Cabc",
            ),
            ("Sxyz", "Sxyz", "//m2mtrust.example/Sxyz"),
            ("//m2mtrust.example/Sxyz", "Sxyz", "//m2mtrust.example/Sxyz"),
            ("/id-mn", "/id-mn", "//m2mtrust.example/id-mn"),
            ("/id-mn/Cq", "/id-mn/Cq", "//m2mtrust.example/id-mn/Cq"),
            (
                "//other.example/id-in/Ca",
                "//other.example/id-in/Ca",
                "//other.example/id-in/Ca",
            ),
            ("CAdmin", "CAdmin", "//m2mtrust.example/id-in/CAdmin"),
        ];
        for (input, canonical, absolute) in cases {
            let o = Originator::parse(input, &h).unwrap();
            assert_eq!(o.canonical(), *canonical, "{input}");
            assert_eq!(o.absolute(&h), *absolute, "{input}");
        }
    }

    #[test]
    fn bad_originators_are_refused() {
        let h = home();
        for bad in [
            "",
            "a b",
            "//",
            "//m2mtrust.example",
            "/id-in/",
            "/id-in/a/b",
            "C/x",
            "//x",
        ] {
            assert!(Originator::parse(bad, &h).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets() {
        let h = home();
        let local = |s: &str| Target::Local(s.to_string());
        assert_eq!(Target::parse("cse-in/ae", &h).unwrap(), local("cse-in/ae"));
        assert_eq!(
            Target::parse("/id-in/cse-in/ae", &h).unwrap(),
            local("cse-in/ae")
        );
        assert_eq!(Target::parse("/id-in", &h).unwrap(), local("cse-in"));
        assert_eq!(
            Target::parse("//m2mtrust.example/id-in/cnt1", &h).unwrap(),
            local("cnt1")
        );
        assert_eq!(
            Target::parse("/id-mn/cse-mn", &h).unwrap(),
            Target::Remote {
                sp: None,
                cse: "/id-mn".into()
            }
        );
        assert!(matches!(
            Target::parse("//other.example/id-in/x", &h).unwrap(),
            Target::Remote { sp: Some(_), .. }
        ));
        for bad in ["", "/", "cse-in//x", "cse-in/../x", "//"] {
            assert!(Target::parse(bad, &h).is_err(), "{bad}");
        }
    }
}
