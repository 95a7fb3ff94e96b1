//! TS-0003 §7.1.3 (accessControlOriginators): the identity of the hosting CSE, originator
//! normalisation to absolute form, and compiled `acor` entries with their `*` wildcards
//! (Table 7.1.3-2).
//!
//! Every identifier is reduced to the absolute form `//{SP-ID}/{CSE-ID}[/{AE-ID-Stem}]` or
//! `//{SP-ID}/{S-AE-ID-Stem}` before it is compared; no substring or prefix shortcut is used
//! anywhere, so `//sp.org` never matches `//sp.org.evil.com/…`.

use std::sync::Arc;

use crate::error::IdError;

/// RFC 3986 "unreserved" characters, the only characters TS-0001 §7.2 allows in SP-IDs,
/// CSE-IDs and AE-ID-Stems.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn all_unreserved(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_unreserved)
}

fn all_unreserved_or_star(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| is_unreserved(b) || b == b'*')
}

/// The identity of the CSE that hosts the targeted resources: its M2M-SP-ID and its
/// SP-relative CSE-ID. SP-relative IDs and AE-ID-Stems are resolved against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostingCse {
    sp: Box<str>,
    cse: Box<str>,
}

impl HostingCse {
    /// Parses the hosting CSE's identity, e.g. `HostingCse::new("//m2mtrust.example", "/id-in")`.
    ///
    /// `sp_id` is the M2M-SP-ID (`//fqdn`), `cse_id` the SP-relative CSE-ID (`/cse-id`).
    pub fn new(sp_id: &str, cse_id: &str) -> Result<Self, IdError> {
        let sp = sp_id
            .strip_prefix("//")
            .filter(|s| all_unreserved(s))
            .ok_or_else(|| IdError::new(sp_id, "an M2M-SP-ID has the form //fqdn"))?;
        let cse = cse_id
            .strip_prefix('/')
            .filter(|s| all_unreserved(s))
            .ok_or_else(|| IdError::new(cse_id, "an SP-relative CSE-ID has the form /cse-id"))?;
        Ok(Self {
            sp: sp.into(),
            cse: cse.into(),
        })
    }

    /// The FQDN of the M2M-SP-ID, without the leading `//`.
    pub fn sp_domain(&self) -> &str {
        &self.sp
    }

    /// The CSE-ID without the leading `/`.
    pub fn cse_bare(&self) -> &str {
        &self.cse
    }
}

/// An originator identity in absolute form, e.g. `//m2mtrust.example/id-in/Cabc`.
///
/// TS-0003 §7.1.5 (access decision algorithm): "the Originator variable refers to the
/// authenticated identity of the originator of the request primitive which matches the From
/// parameter". The caller normalises the authenticated `From` once with
/// [`Originator::normalise`]; the decision then only compares absolute forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Originator {
    /// `//sp/seg1[/seg2]`.
    absolute: Box<str>,
    /// Byte offset of the `/` that starts the SP-relative part.
    path_start: usize,
    /// Byte offset of the second segment, when there is one.
    second: Option<usize>,
}

impl Originator {
    /// Normalises a `From` value to absolute form.
    ///
    /// | Form | Example | Absolute form |
    /// |---|---|---|
    /// | absolute | `//sp.org/cse1/Cabc` | unchanged |
    /// | SP-relative | `/id-in/Cabc`, `/Sabc`, `/id-mn` | `//{hosting SP}/…` |
    /// | C-type AE-ID-Stem | `Cabc` (registered at this CSE) | `//{hosting SP}/{hosting CSE}/Cabc` |
    /// | S-type AE-ID-Stem | `Sabc` | `//{hosting SP}/Sabc` |
    ///
    /// Anything else is refused: empty segments, characters outside RFC 3986 "unreserved",
    /// a `*`, more than two segments after the SP-ID, or a second segment that is not a
    /// C-type AE-ID-Stem.
    pub fn normalise(from: &str, hosting: &HostingCse) -> Result<Self, IdError> {
        if let Some(rest) = from.strip_prefix("//") {
            let (sp, path) = rest
                .split_once('/')
                .ok_or_else(|| IdError::new(from, "an absolute ID needs a CSE-ID or AE-ID part"))?;
            if !all_unreserved(sp) {
                return Err(IdError::new(from, "invalid M2M-SP-ID"));
            }
            Self::build(from, sp, path)
        } else if let Some(path) = from.strip_prefix('/') {
            Self::build(from, &hosting.sp, path)
        } else if (from.starts_with('C') || from.starts_with('S')) && !all_unreserved(from) {
            Err(IdError::new(from, "invalid AE-ID-Stem"))
        } else if from.starts_with('C') {
            Self::build(from, &hosting.sp, &format!("{}/{}", hosting.cse, from))
        } else if from.starts_with('S') {
            Self::build(from, &hosting.sp, from)
        } else {
            Err(IdError::new(
                from,
                "not a CSE-ID or AE-ID (absolute, SP-relative or AE-ID-Stem)",
            ))
        }
    }

    fn build(input: &str, sp: &str, path: &str) -> Result<Self, IdError> {
        let mut segments = path.split('/');
        let first = segments.next().unwrap_or_default();
        let second = segments.next();
        if segments.next().is_some() {
            return Err(IdError::new(
                input,
                "too many path segments for a CSE-ID or AE-ID",
            ));
        }
        if !all_unreserved(first) {
            return Err(IdError::new(input, "invalid CSE-ID or AE-ID segment"));
        }
        if let Some(second) = second
            && (!all_unreserved(second) || !second.starts_with('C'))
        {
            return Err(IdError::new(
                input,
                "the segment after a CSE-ID must be a C-type AE-ID-Stem",
            ));
        }
        let absolute = match second {
            Some(second) => format!("//{sp}/{first}/{second}"),
            None => format!("//{sp}/{first}"),
        };
        let path_start = 2 + sp.len();
        Ok(Self {
            second: second.map(|_| path_start + 2 + first.len()),
            absolute: absolute.into(),
            path_start,
        })
    }

    /// The absolute form, e.g. `//m2mtrust.example/id-in/Cabc`.
    pub fn as_str(&self) -> &str {
        &self.absolute
    }

    /// The FQDN of the originator's M2M-SP-ID.
    pub fn sp_domain(&self) -> &str {
        self.absolute.get(2..self.path_start).unwrap_or_default()
    }

    /// The SP-relative form, e.g. `/id-in/Cabc`.
    pub fn sp_relative(&self) -> &str {
        self.absolute.get(self.path_start..).unwrap_or_default()
    }

    /// The one or two segments after the SP-ID.
    fn segments(&self) -> (&str, Option<&str>) {
        match self.second {
            Some(second) => (
                self.absolute
                    .get(self.path_start + 1..second - 1)
                    .unwrap_or_default(),
                self.absolute.get(second..),
            ),
            None => (
                self.absolute.get(self.path_start + 1..).unwrap_or_default(),
                None,
            ),
        }
    }
}

impl std::fmt::Display for Originator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.absolute)
    }
}

/// The facts about an originator that every rule needs, computed once per decision.
pub(crate) struct OriginatorView<'a> {
    pub(crate) originator: &'a Originator,
    sp: &'a str,
    sp_relative: &'a str,
    first: &'a str,
    second: Option<&'a str>,
    /// The originator belongs to the SP hosting the target.
    local_sp: bool,
    /// The originator is an AE registered at (or the CSE-ID of) the hosting CSE.
    local_cse: bool,
}

impl<'a> OriginatorView<'a> {
    pub(crate) fn new(originator: &'a Originator, hosting: &HostingCse) -> Self {
        let (first, second) = originator.segments();
        let sp = originator.sp_domain();
        let local_sp = sp == &*hosting.sp;
        Self {
            originator,
            sp,
            sp_relative: originator.sp_relative(),
            first,
            second,
            local_sp,
            local_cse: local_sp && first == &*hosting.cse,
        }
    }
}

/// One segment of an ID pattern: literal text, or text with `*` wildcards whose scope ends at
/// the next `/` (TS-0003 §7.1.3). The common shapes get their own cheap comparison.
#[derive(Debug, Clone)]
pub(crate) enum Glob {
    /// No wildcard.
    Exact(Box<str>),
    /// `prefix*`.
    Prefix(Box<str>),
    /// Any other use of `*`.
    Pattern(Box<str>),
}

impl Glob {
    fn new(text: &str) -> Self {
        match text.strip_suffix('*') {
            _ if !text.contains('*') => Self::Exact(text.into()),
            Some(prefix) if !prefix.contains('*') => Self::Prefix(prefix.into()),
            _ => Self::Pattern(text.into()),
        }
    }

    #[inline]
    fn matches(&self, candidate: &str) -> bool {
        match self {
            Self::Exact(text) => **text == *candidate,
            Self::Prefix(prefix) => candidate.starts_with(&**prefix),
            Self::Pattern(pattern) => glob_match(pattern.as_bytes(), candidate.as_bytes()),
        }
    }
}

/// Matches `pattern` (where `*` stands for any run of characters) against all of `text`.
/// Callers only pass single segments, so `*` never crosses a `/`.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text.get(t).copied().unwrap_or_default() => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Which kind of AE-ID-Stem a bare `acor` entry names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StemKind {
    /// `C…`: an AE registered at the hosting CSE.
    CseRelative,
    /// `S…`: an S-type AE of the hosting SP.
    SpRelative,
}

/// One compiled `accessControlOriginators` entry that can be decided without the directory.
#[derive(Debug, Clone)]
pub(crate) enum IdEntry {
    /// The keyword `all`.
    All,
    /// A Role-ID, compared literally with the verified Role-IDs of the request.
    Role(Box<str>),
    /// An M2M-SP-ID `//fqdn`: every CSE-ID and AE-ID of that SP.
    Domain(Box<str>),
    /// `//sp/cse[/ae]` without wildcards, compared as a whole.
    AbsoluteExact(Box<str>),
    /// `//sp/cse[/ae]` with wildcards.
    Absolute { sp: Glob, path: Box<[Glob]> },
    /// `/cse[/ae]` or `/S…` without wildcards, compared as a whole: IDs of the SP hosting the
    /// target only.
    SpRelativeExact(Box<str>),
    /// `/cse[/ae]` or `/S…` with wildcards: IDs of the SP hosting the target only.
    SpRelative { path: Box<[Glob]> },
    /// A bare AE-ID-Stem, relative to the hosting CSE (`C…`) or SP (`S…`).
    Stem { kind: StemKind, stem: Glob },
}

impl IdEntry {
    #[inline]
    pub(crate) fn matches(&self, view: &OriginatorView<'_>, roles: &[&str]) -> bool {
        match self {
            Self::All => true,
            Self::Role(role) => roles.contains(&&**role),
            Self::Domain(domain) => view.sp == &**domain,
            Self::AbsoluteExact(id) => view.originator.as_str() == &**id,
            Self::Absolute { sp, path } => path_matches(path, view) && sp.matches(view.sp),
            Self::SpRelativeExact(id) => view.local_sp && view.sp_relative == &**id,
            Self::SpRelative { path } => view.local_sp && path_matches(path, view),
            Self::Stem {
                kind: StemKind::CseRelative,
                stem,
            } => view.local_cse && view.second.is_some_and(|s| stem.matches(s)),
            Self::Stem {
                kind: StemKind::SpRelative,
                stem,
            } => view.local_sp && view.second.is_none() && stem.matches(view.first),
        }
    }
}

/// Compares the last segment first: it is the one that differs between originators.
#[inline]
fn path_matches(path: &[Glob], view: &OriginatorView<'_>) -> bool {
    match (path, view.second) {
        ([first], None) => first.matches(view.first),
        ([first, second], Some(s)) => second.matches(s) && first.matches(view.first),
        _ => false,
    }
}

/// The result of classifying one `acor` string.
#[derive(Debug)]
pub(crate) enum Classified {
    /// Decided from the originator's ID and roles alone.
    Id(IdEntry),
    /// Only a `<group>` resource-ID fits this text.
    Group(Arc<str>),
    /// A form the engine does not understand; the rule never matches.
    NotUnderstood(String),
}

/// Whether `path` (after the SP-ID, or after the leading `/`) has the shape of a CSE-ID or
/// AE-ID pattern: one segment, or a CSE-ID segment followed by a C-type AE-ID-Stem segment.
fn id_path(path: &str) -> Option<Box<[Glob]>> {
    let segments: Vec<&str> = path.split('/').collect();
    let shape_ok = match segments.as_slice() {
        [one] => all_unreserved_or_star(one),
        [cse, ae] => {
            all_unreserved_or_star(cse)
                && all_unreserved_or_star(ae)
                && (ae.starts_with('C') || ae.starts_with('*'))
        }
        _ => false,
    };
    shape_ok.then(|| segments.into_iter().map(Glob::new).collect())
}

/// Characters allowed in a `<group>` resource-ID reference: unreserved plus `/` for
/// structured (SP-relative or absolute) resource-IDs, without empty segments.
fn group_reference(text: &str) -> bool {
    let body = text
        .strip_prefix("//")
        .or_else(|| text.strip_prefix('/'))
        .unwrap_or(text);
    !body.is_empty() && body.split('/').all(all_unreserved)
}

/// TS-0003 §7.1.3 (accessControlOriginators): classifies one entry.
///
/// Text with the syntax of a CSE-ID or AE-ID (absolute, SP-relative, or a bare AE-ID-Stem
/// starting with `C` or `S`) is an ID; other text without `*` is a `<group>` resource-ID.
///
/// Wildcards are accepted only in CSE-IDs and AE-IDs: "Wildcard characters are not
/// applicable to SP domain names, resource-IDs of `<group>` resources and Role IDs", so a `*`
/// in any of those makes the rule not understood.
pub(crate) fn classify(text: &str) -> Classified {
    if text == "all" {
        return Classified::Id(IdEntry::All);
    }
    let not_understood = |why: &str| Classified::NotUnderstood(format!("`{text}`: {why}"));
    if text.contains('@') {
        let valid = text.split_once('@').is_some_and(|(local, issuer)| {
            all_unreserved(local) && all_unreserved(issuer) && !issuer.contains('@')
        });
        return if text.contains('*') {
            not_understood("wildcards are not applicable to Role-IDs")
        } else if valid {
            Classified::Id(IdEntry::Role(text.into()))
        } else {
            not_understood("not a valid Role-ID")
        };
    }
    if let Some(rest) = text.strip_prefix("//") {
        let Some((sp, path)) = rest.split_once('/') else {
            return if rest.contains('*') {
                not_understood("wildcards are not applicable to SP domain names")
            } else if all_unreserved(rest) {
                Classified::Id(IdEntry::Domain(rest.into()))
            } else {
                not_understood("not a valid M2M-SP-ID")
            };
        };
        if all_unreserved_or_star(sp)
            && let Some(path) = id_path(path)
        {
            return Classified::Id(if text.contains('*') {
                IdEntry::Absolute {
                    sp: Glob::new(sp),
                    path,
                }
            } else {
                IdEntry::AbsoluteExact(text.into())
            });
        }
    } else if let Some(path) = text.strip_prefix('/') {
        if let Some(path) = id_path(path) {
            return Classified::Id(if text.contains('*') {
                IdEntry::SpRelative { path }
            } else {
                IdEntry::SpRelativeExact(text.into())
            });
        }
    } else if (text.starts_with('C') || text.starts_with('S')) && all_unreserved_or_star(text) {
        let kind = if text.starts_with('C') {
            StemKind::CseRelative
        } else {
            StemKind::SpRelative
        };
        return Classified::Id(IdEntry::Stem {
            kind,
            stem: Glob::new(text),
        });
    }
    if text.contains('*') {
        not_understood("wildcards are only applicable to CSE-IDs and AE-IDs")
    } else if group_reference(text) {
        Classified::Group(text.into())
    } else {
        not_understood("not an SP domain, CSE-ID, AE-ID, group resource-ID or Role-ID")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosting() -> HostingCse {
        HostingCse::new("//m2mtrust.example", "/id-in").unwrap()
    }

    #[test]
    fn glob_scope() {
        assert!(glob_match(b"myCSE*", b"myCSE1"));
        assert!(glob_match(b"myCSE*", b"myCSE"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(glob_match(b"a*b*c", b"abc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(!glob_match(b"C98*", b"C99"));
        assert!(glob_match(b"*a", b"aaa"));
        assert!(!glob_match(b"", b"a"));
    }

    #[test]
    fn normalise_forms() {
        let h = hosting();
        let cases = [
            ("Cabc", "//m2mtrust.example/id-in/Cabc"),
            ("Sabc", "//m2mtrust.example/Sabc"),
            ("/id-in/Cabc", "//m2mtrust.example/id-in/Cabc"),
            ("/id-mn", "//m2mtrust.example/id-mn"),
            ("//other.org/cse/Cx", "//other.org/cse/Cx"),
        ];
        for (from, expected) in cases {
            let o = Originator::normalise(from, &h).unwrap();
            assert_eq!(o.as_str(), expected, "{from}");
        }
        let o = Originator::normalise("Cabc", &h).unwrap();
        assert_eq!(o.sp_domain(), "m2mtrust.example");
        assert_eq!(o.sp_relative(), "/id-in/Cabc");
        assert_eq!(o.segments(), ("id-in", Some("Cabc")));
        for bad in [
            "",
            "abc",
            "//",
            "//sp",
            "//sp/",
            "/a//Cb",
            "/a/b",
            "/a/Cb/c",
            "C a",
            "/C*",
            "//sp/a/Sx",
            "Sa/Cb",
        ] {
            assert!(Originator::normalise(bad, &h).is_err(), "{bad:?}");
        }
    }
}
