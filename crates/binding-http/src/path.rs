//! TS-0009 §6.2.2.1 (path component): the request target `to` in the HTTP path.
//!
//! A CSE-relative target `cse-in/ae` travels as `/cse-in/ae`, an SP-relative `/id-in/cse-in` as
//! `/~/id-in/cse-in` and an absolute `//sp.example/id-in/cse-in` as `/_/sp.example/id-in/cse-in`.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::server::DecodeError;

/// Characters escaped when a target is written into a path: everything that would end the path
/// or is not allowed in a URI or header value. `/` stays as the separator.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Maps an HTTP request path to the `to` parameter of a primitive.
///
/// The path is percent-decoded first; the decoded text must be UTF-8 and name a non-empty target.
pub fn path_to_target(path: &str) -> Result<String, DecodeError> {
    let invalid = |reason: &str| DecodeError::InvalidTarget {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| invalid("percent-decoded path is not UTF-8"))?;
    let rest = decoded
        .strip_prefix('/')
        .ok_or_else(|| invalid("path does not start with '/'"))?;
    let (prefix, tail) = if let Some(tail) = rest.strip_prefix("~/") {
        ("/", tail)
    } else if let Some(tail) = rest.strip_prefix("_/") {
        ("//", tail)
    } else if rest == "~" || rest == "_" {
        return Err(invalid("SP-relative or absolute prefix without a target"));
    } else {
        ("", rest)
    };
    if tail.is_empty() || tail.starts_with('/') {
        return Err(invalid("empty target"));
    }
    Ok(format!("{prefix}{tail}"))
}

/// Maps a `to` parameter (or any resource address) to an HTTP path, the inverse of
/// [`path_to_target`].
pub fn target_to_path(to: &str) -> String {
    let (prefix, tail) = if let Some(tail) = to.strip_prefix("//") {
        ("/_/", tail)
    } else if let Some(tail) = to.strip_prefix('/') {
        ("/~/", tail)
    } else {
        ("/", to)
    };
    format!("{prefix}{}", utf8_percent_encode(tail, PATH_ESCAPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_three_forms() {
        assert_eq!(path_to_target("/cse-in/ae").unwrap(), "cse-in/ae");
        assert_eq!(
            path_to_target("/~/id-in/cse-in/ae").unwrap(),
            "/id-in/cse-in/ae"
        );
        assert_eq!(
            path_to_target("/_/m2mtrust.example/id-in/cse-in").unwrap(),
            "//m2mtrust.example/id-in/cse-in"
        );
        assert_eq!(path_to_target("/cse-in").unwrap(), "cse-in");
    }

    #[test]
    fn percent_decodes() {
        assert_eq!(path_to_target("/cse-in/a%20b").unwrap(), "cse-in/a b");
        assert_eq!(path_to_target("/%7E/id-in").unwrap(), "/id-in");
        assert_eq!(path_to_target("/cse-in/%C3%A9").unwrap(), "cse-in/é");
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "", "cse-in", "/", "/~", "/~/", "/_", "/_/", "//x", "/~//x", "/a%FF",
        ] {
            let err = path_to_target(p).unwrap_err();
            assert!(
                matches!(err, DecodeError::InvalidTarget { .. }),
                "{p}: {err}"
            );
        }
    }

    #[test]
    fn target_to_path_inverts() {
        for to in [
            "cse-in/ae",
            "/id-in/cse-in/ae",
            "//m2mtrust.example/id-in/cse-in",
            "cse-in/a b?c#d%e",
            "cse-in/é",
        ] {
            let path = target_to_path(to);
            assert!(path.is_ascii() && !path.contains(' '), "{path}");
            assert_eq!(path_to_target(&path).unwrap(), to);
        }
        assert_eq!(target_to_path("cse-in/ae"), "/cse-in/ae");
        assert_eq!(target_to_path("/id-in/x"), "/~/id-in/x");
        assert_eq!(target_to_path("//sp/id-in/x"), "/_/sp/id-in/x");
    }
}
