//! Indirect dynamic authorization over TLS (TS-0003 §7.3.2.3): a token from the data folder's
//! DAS lets an AE that the static policy refuses read a container; every broken token fails the
//! whole request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Server, m2mtrust};

struct Ae {
    cert: String,
    key: String,
}

fn ae_cert(s: &Server, dir: &std::path::Path, ae: &str) -> Ae {
    let data = s.data.to_str().unwrap();
    let prefix = dir.join(ae);
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--ae-id",
        ae,
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    Ae {
        cert: format!("{}.pem", prefix.display()),
        key: format!("{}-key.pem", prefix.display()),
    }
}

/// `m2mtrust request` over a certificate association; returns (exit code, output).
fn request(s: &Server, ae: &Ae, from: &str, op: &str, path: &str, extra: &[&str]) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}/cse-in{path}", s.tls_addr.port());
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
        &ae.cert,
        "--key",
        &ae.key,
        "--ca",
        &ca,
        "--server-name",
        "localhost",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = m2mtrust(&args);
    (code, format!("{out}{err}"))
}

fn issue(s: &Server, extra: &[&str]) -> String {
    let data = s.data.to_str().unwrap();
    let mut args = vec!["das", "token", "issue", "--data", data];
    args.extend_from_slice(extra);
    let (code, out, err) = m2mtrust(&args);
    assert_eq!(code, 0, "{out}{err}");
    out.trim().to_string()
}

fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn a_das_token_grants_what_the_static_policy_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let owner = ae_cert(&s, dir.path(), "Cowner");
    let reader = ae_cert(&s, dir.path(), "Creader");
    let ae = |rn: &str| format!(r#"{{"m2m:ae": {{"rn": "{rn}", "api": "Nx", "rr": false}}}}"#);
    let (code, out) = request(
        &s,
        &owner,
        "Cowner",
        "create",
        "",
        &["--ty", "2", "--content", &ae("owner")],
    );
    assert_eq!(code, 0, "{out}");
    let cnt = r#"{"m2m:cnt": {"rn": "data"}}"#;
    let (code, out) = request(
        &s,
        &owner,
        "Cowner",
        "create",
        "/owner",
        &["--ty", "3", "--content", cnt],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "create",
        "",
        &["--ty", "2", "--content", &ae("reader")],
    );
    assert_eq!(code, 0, "{out}");

    // Static policy: only the creator.
    let (code, out) = request(&s, &reader, "Creader", "retrieve", "/owner/data", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4103"), "{out}");

    // A token for RETRIEVE on that container.
    let grant = [
        "--holder",
        "Creader",
        "--resource",
        "cse-in/owner/data",
        "--operations",
        "2",
    ];
    let jwt = issue(&s, &grant);
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "retrieve",
        "/owner/data",
        &["--token", &jwt],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2000"), "{out}");
    let lti = out
        .lines()
        .find_map(|l| l.strip_prefix("Local-Token-ID: "))
        .and_then(|l| l.split(" = ").next())
        .unwrap_or_else(|| panic!("no Local-Token-ID in\n{out}"))
        .to_string();
    // Later requests may name the token by its Local-Token-ID.
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "retrieve",
        "/owner/data",
        &["--local-token-id", &lti],
    );
    assert_eq!(code, 0, "{out}");
    // The token grants RETRIEVE only.
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "delete",
        "/owner/data",
        &["--token", &jwt],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4103"), "{out}");
    // Another holder cannot use it, not even by Local-Token-ID, and it fails the whole request
    // even where the static policy would permit.
    let (code, out) = request(
        &s,
        &owner,
        "Cowner",
        "retrieve",
        "/owner/data",
        &["--token", &jwt],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4103"), "{out}");
    let (code, out) = request(
        &s,
        &owner,
        "Cowner",
        "retrieve",
        "/owner/data",
        &["--local-token-id", &lti],
    );
    assert_eq!(code, 1, "{out}");
    // An unknown Local-Token-ID.
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "retrieve",
        "/owner/data",
        &["--local-token-id", "lt999"],
    );
    assert_eq!(code, 1, "{out}");
}

#[test]
fn broken_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let owner = ae_cert(&s, dir.path(), "Cowner");
    let reader = ae_cert(&s, dir.path(), "Creader");
    let ae = |rn: &str| format!(r#"{{"m2m:ae": {{"rn": "{rn}", "api": "Nx", "rr": false}}}}"#);
    request(
        &s,
        &owner,
        "Cowner",
        "create",
        "",
        &["--ty", "2", "--content", &ae("owner")],
    );
    let cnt = r#"{"m2m:cnt": {"rn": "data"}}"#;
    request(
        &s,
        &owner,
        "Cowner",
        "create",
        "/owner",
        &["--ty", "3", "--content", cnt],
    );
    request(
        &s,
        &reader,
        "Creader",
        "create",
        "",
        &["--ty", "2", "--content", &ae("reader")],
    );
    let grant = [
        "--holder",
        "Creader",
        "--resource",
        "cse-in/owner/data",
        "--operations",
        "2",
    ];
    let refused = |jwt: &str, what: &str| {
        let (code, out) = request(
            &s,
            &reader,
            "Creader",
            "retrieve",
            "/owner/data",
            &["--token", jwt],
        );
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.starts_with("4103"), "{what}: {out}");
    };
    let good = issue(&s, &grant);
    // Tampered signature and payload.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    refused(
        &format!("{}.{}.{flipped}", parts[0], parts[1]),
        "tampered signature",
    );
    let payload = format!("{}.{}.{}", parts[0], b64url(br#"{"tkvr":"1","jti":"x@das.m2mtrust.example","iss":"das.m2mtrust.example","azp":"//m2mtrust.example/id-in/Creader","nbf":0,"exp":9999999999,"aud":["//m2mtrust.example/id-in"],"tkps":{"pm":[{"ris":["cse-in/owner/data"],"pv":{"acr":[{"acor":["//m2mtrust.example/id-in/Creader"],"acop":63}]}}]}}"#), parts[2]);
    refused(&payload, "tampered payload");
    // alg none with a valid-looking claim set and an empty signature.
    let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    refused(&none, "alg none");
    // HS256 "signed" with the DAS public key as the HMAC secret (algorithm confusion).
    parts[0] = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let public = std::fs::read(s.data.join("pki/das-public.pem")).unwrap();
    let mac = {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt"])
            .arg(format!(
                "hexkey:{}",
                public
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{}.{}", parts[0], parts[1]).as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().stdout
    };
    refused(
        &format!("{}.{}.{}", parts[0], parts[1], b64url(&mac)),
        "HS256 with the public key",
    );
    // Expired, not yet valid, another audience, another holder, garbage.
    let expired = issue(&s, &[&grant[..], &["--valid-secs", "1"]].concat());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    refused(&expired, "expired");
    refused(
        &issue(&s, &[&grant[..], &["--starts-in-secs", "3600"]].concat()),
        "not yet valid",
    );
    refused(
        &issue(&s, &[&grant[..], &["--audience", "/id-other"]].concat()),
        "wrong audience",
    );
    let other = [
        "--holder",
        "Cowner",
        "--resource",
        "cse-in/owner/data",
        "--operations",
        "2",
    ];
    refused(&issue(&s, &other), "wrong holder");
    refused("not.a.jwt", "garbage");
    // One bad token fails the request even with a good one next to it.
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "retrieve",
        "/owner/data",
        &["--token", &good, "--token", &expired],
    );
    assert_eq!(code, 1, "{out}");
    // The good one alone still works.
    let (code, out) = request(
        &s,
        &reader,
        "Creader",
        "retrieve",
        "/owner/data",
        &["--token", &good],
    );
    assert_eq!(code, 0, "{out}");
}
