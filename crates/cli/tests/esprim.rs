//! End-to-end security of primitives over TLS (TS-0003 §8.4, §7.2.2): `m2mtrust request
//! --esprim-kid` against `m2mtrust up` holding the pairwiseESPrimKey.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, ae_cert, m2mtrust};

const KID: &str = "e2e1@in.m2mtrust.example";
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn send(
    s: &Server,
    cert: &(String, String),
    from: &str,
    op: &str,
    path: &str,
    extra: &[&str],
) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}/{path}", s.tls_addr.port());
    let ca = format!("{}/pki/ca.pem", s.data.display());
    let mut args = vec![
        "request",
        "--to",
        &url,
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
    let (code, out, err) = m2mtrust(&args);
    (code, format!("{out}{err}"))
}

#[test]
fn esprim_requests_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let data = s.data.to_str().unwrap();
    let ae1 = ae_cert(&s.data, dir.path(), "Cae1");
    let ae2 = ae_cert(&s.data, dir.path(), "Cae2");
    for (ae, cert) in [("Cae1", &ae1), ("Cae2", &ae2)] {
        let body =
            format!(r#"{{"m2m:ae": {{"rn": "{ae}", "api": "Napp", "rr": false, "srv": ["3"]}}}}"#);
        let (code, out) = send(
            &s,
            cert,
            ae,
            "create",
            "cse-in",
            &["--ty", "2", "--content", &body],
        );
        assert_eq!(code, 0, "{out}");
    }
    let (code, out, err) = m2mtrust(&[
        "credential",
        "add-esprim",
        "--data",
        data,
        "--kid",
        KID,
        "--key-hex",
        KEY,
        "--ae-id",
        "Cae1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let esprim = ["--esprim-kid", KID, "--esprim-key-hex", KEY];

    // Protected CREATE and RETRIEVE: the inner responses come back.
    let cnt = r#"{"m2m:cnt": {"rn": "e2e"}}"#;
    let mut extra = vec!["--ty", "3", "--content", cnt];
    extra.extend_from_slice(&esprim);
    let (code, out) = send(&s, &ae1, "Cae1", "create", "cse-in/Cae1", &extra);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2001"), "{out}");
    let (code, out) = send(&s, &ae1, "Cae1", "retrieve", "cse-in/Cae1/e2e", &esprim);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"rn\": \"e2e\""), "{out}");

    // Another AE using Cae1's key as itself: impersonation, 4116.
    let (code, out) = send(&s, &ae2, "Cae2", "retrieve", "cse-in/Cae2", &esprim);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4116"), "{out}");
    // A wrong key: the object does not authenticate, 4115.
    let wrong = ["--esprim-kid", KID, "--esprim-key-hex", &"ab".repeat(32)];
    let (code, out) = send(&s, &ae1, "Cae1", "retrieve", "cse-in/Cae1/e2e", &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4115"), "{out}");
    // An unknown key identifier: 4112.
    let unknown = [
        "--esprim-kid",
        "nobody@in.m2mtrust.example",
        "--esprim-key-hex",
        KEY,
    ];
    let (code, out) = send(&s, &ae1, "Cae1", "retrieve", "cse-in/Cae1/e2e", &unknown);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4112"), "{out}");
}
