//! ESCertKE (TS-0003 §8.7) against `m2mtrust up`: `m2mtrust request --escertke` establishes a
//! pairwise key from an AE-ID certificate in two NOTIFYs to the CSEBase, then sends its request
//! ESPrim-protected under that key; certificates the CSE does not trust, or that name another
//! originator, establish nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, ae_cert, m2mtrust};

/// `m2mtrust request` to `url` with the certificate `cert`; (exit code, stdout, stderr).
fn request(
    s: &Server,
    url: &str,
    cert: &(String, String),
    from: &str,
    op: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let ca = format!("{}/pki/ca.pem", s.data.display());
    let mut args = vec![
        "request",
        "--to",
        url,
        "--from",
        from,
        "--op",
        op,
        "--cert",
        &cert.0,
        "--key",
        &cert.1,
        "--ca",
        &ca,
        "--server-name",
        "localhost",
    ];
    args.extend_from_slice(extra);
    m2mtrust(&args)
}

/// The `13-…` (pairwiseESPrimKey) lines of `credential list`.
fn esprim_credentials(s: &Server) -> Vec<String> {
    let (code, out, err) = m2mtrust(&["credential", "list", "--data", s.data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    out.lines()
        .filter(|l| l.starts_with("13-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn escertke_establishes_a_key_for_esprim() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let tls = |path: &str| format!("https://127.0.0.1:{}/{path}", s.tls_addr.port());
    let plain = |path: &str| format!("http://127.0.0.1:{}/{path}", s.addr.port());
    let ae1 = ae_cert(&s.data, dir.path(), "Cae1");
    let body = r#"{"m2m:ae": {"rn": "Cae1", "api": "Napp", "rr": false, "srv": ["3"]}}"#;
    let (code, out, err) = request(
        &s,
        &tls("cse-in"),
        &ae1,
        "Cae1",
        "create",
        &["--ty", "2", "--content", body],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(esprim_credentials(&s).is_empty());

    // Key establishment, then the protected CREATE: the inner response comes back.
    let cnt = r#"{"m2m:cnt": {"rn": "e2e"}}"#;
    let (code, out, err) = request(
        &s,
        &tls("cse-in/Cae1"),
        &ae1,
        "Cae1",
        "create",
        &["--ty", "3", "--content", cnt, "--escertke"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("2001"), "{out}{err}");
    let kid = err
        .lines()
        .find_map(|l| l.strip_prefix("ESCertKE: pairwise key "))
        .unwrap_or_else(|| panic!("no key line in {err}"))
        .to_string();
    let (relative, domain) = kid.split_once('@').unwrap();
    assert_eq!(domain, "m2mtrust.example");
    assert_eq!(relative.len(), 32);
    assert!(relative.bytes().all(|b| b.is_ascii_hexdigit()));
    // The CSE holds it as a pairwiseESPrimKey bound to Cae1.
    let keys = esprim_credentials(&s);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let fields: Vec<&str> = keys[0].split_whitespace().collect();
    assert_eq!(fields[0], format!("13-{kid}"));
    assert_eq!(&fields[1..4], ["esprim", "ae", "Cae1"], "{keys:?}");
    // The container exists: a plain RETRIEVE over the same certificate finds it.
    let (code, out, err) = request(&s, &tls("cse-in/Cae1/e2e"), &ae1, "Cae1", "retrieve", &[]);
    assert_eq!(code, 0, "{out}{err}");

    // Each procedure yields a fresh key; a RETRIEVE end to end through it.
    let (code, out, err) = request(
        &s,
        &tls("cse-in/Cae1/e2e"),
        &ae1,
        "Cae1",
        "retrieve",
        &["--escertke"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"rn\": \"e2e\""), "{out}");
    assert_eq!(esprim_credentials(&s).len(), 2);

    // An AE whose certificate comes from another CA: the CSE refuses message 3 (4103).
    let other = dir.path().join("other");
    let ae2 = ae_cert(&other, dir.path(), "Cae2");
    common::register(&s, "Cae2", "Cae2");
    let (code, out, err) = request(
        &s,
        &plain("cse-in/Cae2"),
        &ae2,
        "Cae2",
        "create",
        &["--ty", "3", "--content", cnt, "--escertke"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused message 3: 4103"), "{out}{err}");
    assert!(!err.contains("pairwise key"), "{err}");

    // A trusted certificate that names another AE than the originator: refused as well.
    let (code, out, err) = request(
        &s,
        &plain("cse-in/Cae2"),
        &ae1,
        "Cae2",
        "create",
        &["--ty", "3", "--content", cnt, "--escertke"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("4103"), "{out}{err}");

    // Nothing was stored for Cae2.
    let keys = esprim_credentials(&s);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.contains("Cae1")), "{keys:?}");
}
