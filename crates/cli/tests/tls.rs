//! The HTTPS listener with unmodified clients: `openssl s_client` with a PSK and `curl` with an
//! AE-ID certificate, identity binding (impersonation refused), credentials added while the
//! server runs, CSE registration with a pre-assigned CSE-ID.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::Server;

fn http_request(method: &str, path: &str, from: &str, ty: Option<u16>, body: &str) -> String {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-M2M-RI: t1\r\nX-M2M-RVI: 3\r\n"
    );
    if !from.is_empty() {
        r.push_str(&format!("X-M2M-Origin: {from}\r\n"));
    }
    if !body.is_empty() {
        let ct = ty.map_or("application/json".to_string(), |t| {
            format!("application/json;ty={t}")
        });
        r.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

/// Sends one request through `openssl s_client` with a PSK; returns what came back (empty when
/// the handshake failed).
fn s_client(addr: SocketAddr, identity: &str, key_hex: &str, request: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-tls1_2",
            "-cipher",
            "PSK-AES128-CBC-SHA256",
        ])
        .args([
            "-psk_identity",
            identity,
            "-psk",
            key_hex,
            "-quiet",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn rsc(response: &str) -> u16 {
    response
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-m2m-rsc: ")
                .or_else(|| l.strip_prefix("X-M2M-RSC: "))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn m2mtrust(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_m2mtrust"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "m2mtrust {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn have_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok()
}

#[test]
fn openssl_s_client_with_the_example_psk() {
    assert!(
        have_openssl(),
        "the openssl command is needed (Debian package openssl)"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let key = std::fs::read_to_string(dir.path().join("keys/example-psk.hex")).unwrap();
    let id = "example-ae@m2mtrust.example";
    let ae = r#"{"m2m:ae": {"rn": "example", "api": "Nexample", "rr": false}}"#;

    // "C" over a credential bound to Cexample registers Cexample.
    let out = s_client(
        s.tls_addr,
        id,
        key.trim(),
        &http_request("POST", "/cse-in", "C", Some(2), ae),
    );
    assert_eq!(rsc(&out), 2001, "{out}");
    assert!(out.contains("\"aei\":\"Cexample\""), "{out}");
    // Impersonation: the same association claiming another AE is refused; nothing is created.
    let cnt = r#"{"m2m:cnt": {"rn": "c"}}"#;
    let out = s_client(
        s.tls_addr,
        id,
        key.trim(),
        &http_request("POST", "/cse-in/example", "Cmallory", Some(3), cnt),
    );
    assert_eq!(rsc(&out), 4106, "{out}");
    let out = s_client(
        s.tls_addr,
        id,
        key.trim(),
        &http_request("POST", "/cse-in/example", "Cexample", Some(3), cnt),
    );
    assert_eq!(rsc(&out), 2001, "{out}");
    // Wrong key and unknown identity: no handshake, no response.
    let out = s_client(
        s.tls_addr,
        id,
        "00112233445566778899aabbccddeeff",
        &http_request("GET", "/cse-in", "Cexample", None, ""),
    );
    assert_eq!(rsc(&out), 0, "{out}");
    let out = s_client(
        s.tls_addr,
        "nobody@m2mtrust.example",
        key.trim(),
        &http_request("GET", "/cse-in", "Cexample", None, ""),
    );
    assert_eq!(rsc(&out), 0, "{out}");
    // Nothing was created by the refused requests.
    let r = s.call("GET", "/cse-in/example?rcn=6", Some("CAdmin"), None, None);
    assert_eq!(
        r.json()["m2m:rrl"]["rrf"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
}

#[test]
fn credentials_added_while_running_and_cse_registration_over_tls() {
    assert!(
        have_openssl(),
        "the openssl command is needed (Debian package openssl)"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let key = "000102030405060708090a0b0c0d0e0f";
    m2mtrust(&[
        "credential",
        "add-psk",
        "--data",
        data,
        "--id",
        "mn@m2mtrust.example",
        "--key-hex",
        key,
        "--cse-id",
        "/id-mn",
    ]);
    let list = m2mtrust(&["credential", "list", "--data", data]);
    assert!(
        list.contains("12-mn@m2mtrust.example") && !list.contains(key),
        "{list}"
    );

    let csr = |csi: &str| {
        format!(
            r#"{{"m2m:csr": {{"csi": "{csi}", "cb": "//m2mtrust.example/id-mn/cse-mn", "rr": true, "cst": 2}}}}"#
        )
    };
    // Seed 003 change 1: a different CSE-ID is refused, an empty From gets the pre-assigned one.
    let out = s_client(
        s.tls_addr,
        "mn@m2mtrust.example",
        key,
        &http_request("POST", "/cse-in", "/id-other", Some(16), &csr("/id-other")),
    );
    assert_eq!(rsc(&out), 4106, "{out}");
    let out = s_client(
        s.tls_addr,
        "mn@m2mtrust.example",
        key,
        &http_request("POST", "/cse-in", "", Some(16), &csr("/id-mn")),
    );
    assert_eq!(rsc(&out), 2001, "{out}");
    let out = s_client(
        s.tls_addr,
        "mn@m2mtrust.example",
        key,
        &http_request("GET", "/cse-in/id-mn", "/id-mn", None, ""),
    );
    assert_eq!(rsc(&out), 2000, "{out}");
    // The same CSE over plain HTTP has no security association.
    assert_eq!(
        s.call("GET", "/cse-in/id-mn", Some("/id-mn"), None, None)
            .rsc(),
        4107
    );

    // Removing the credential ends new associations.
    m2mtrust(&[
        "credential",
        "remove",
        "--data",
        data,
        "--id",
        "mn@m2mtrust.example",
    ]);
    let out = s_client(
        s.tls_addr,
        "mn@m2mtrust.example",
        key,
        &http_request("GET", "/cse-in/id-mn", "/id-mn", None, ""),
    );
    assert_eq!(rsc(&out), 0, "{out}");
}

// One curl invocation spelled out in full, as a reader would type it.
#[allow(clippy::too_many_arguments)]
fn curl(
    addr: SocketAddr,
    dir: &std::path::Path,
    cert: &str,
    method: &str,
    path: &str,
    from: &str,
    ty: Option<u16>,
    body: &str,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "-X", method])
        .arg("--cacert")
        .arg(dir.join("pki/ca.pem"))
        .args([
            "-H",
            &format!("X-M2M-Origin: {from}"),
            "-H",
            "X-M2M-RI: c1",
            "-H",
            "X-M2M-RVI: 3",
        ]);
    if !cert.is_empty() {
        cmd.arg("--cert")
            .arg(format!("{cert}.pem"))
            .arg("--key")
            .arg(format!("{cert}-key.pem"));
    }
    if !body.is_empty() {
        cmd.args([
            "-H",
            &format!("Content-Type: application/json;ty={}", ty.unwrap_or(0)),
            "-d",
            body,
        ]);
    }
    cmd.arg(format!("https://localhost:{}{path}", addr.port()));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (rsc(&text), text)
}

#[test]
fn curl_with_an_ae_id_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let prefix = dir.path().join("curl-ae");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--ae-id",
        "Ccurl",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let cert = prefix.to_str().unwrap();
    let ae = r#"{"m2m:ae": {"rn": "curl", "api": "Ncurl", "rr": false}}"#;
    let (code, out) = curl(
        s.tls_addr,
        dir.path(),
        cert,
        "POST",
        "/cse-in",
        "Ccurl",
        Some(2),
        ae,
    );
    assert_eq!(code, 2001, "{out}");
    let (code, out) = curl(
        s.tls_addr,
        dir.path(),
        cert,
        "GET",
        "/cse-in/curl",
        "Cevil",
        None,
        "",
    );
    assert_eq!(code, 4106, "{out}");
    let (code, out) = curl(
        s.tls_addr,
        dir.path(),
        cert,
        "GET",
        "/cse-in/curl",
        "Ccurl",
        None,
        "",
    );
    assert_eq!(code, 2000, "{out}");
    // A certificate from another CA is refused in the handshake.
    let other = tempfile::tempdir().unwrap();
    let foreign = other.path().join("foreign");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        other.path().to_str().unwrap(),
        "--ae-id",
        "Ccurl",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    let (code, out) = curl(
        s.tls_addr,
        dir.path(),
        foreign.to_str().unwrap(),
        "GET",
        "/cse-in/curl",
        "Ccurl",
        None,
        "",
    );
    assert_eq!(code, 0, "{out}");
    // No client credential at all: refused too.
    let (code, out) = curl(
        s.tls_addr,
        dir.path(),
        "",
        "GET",
        "/cse-in/curl",
        "Ccurl",
        None,
        "",
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_operator_server_certificate_replaces_the_development_one() {
    let operator = tempfile::tempdir().unwrap();
    let prefix = operator.path().join("server");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        operator.path().to_str().unwrap(),
        "--fqdn",
        "localhost",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m2mtrust.toml");
    std::fs::write(
        &config,
        format!(
            "[https]\ncertificate = \"{}.pem\"\nprivate_key = \"{}-key.pem\"\n",
            prefix.display(),
            prefix.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &["--config", config.to_str().unwrap()]);
    // Clients still authenticate with the data folder's CA.
    let client = dir.path().join("client");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data.to_str().unwrap(),
        "--ae-id",
        "Cop",
        "--out",
        client.to_str().unwrap(),
    ]);
    let curl = |ca: &std::path::Path| {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(ca)
            .arg("--cert")
            .arg(format!("{}.pem", client.display()))
            .arg("--key")
            .arg(format!("{}-key.pem", client.display()))
            .args(["-H", "X-M2M-Origin: CAdmin", "-H", "X-M2M-RI: 1"])
            .arg(format!("https://localhost:{}/cse-in", s.tls_addr.port()))
            .output()
            .unwrap()
    };
    // The server presents the operator's certificate: the operator CA verifies it, ours does not.
    let with_operator_ca = curl(&operator.path().join("pki/ca.pem"));
    assert_eq!(
        String::from_utf8_lossy(&with_operator_ca.stdout),
        "403",
        "TLS works; From CAdmin is not the certificate's AE-ID Cop (4106)"
    );
    let with_dev_ca = curl(&data.join("pki/ca.pem"));
    assert_eq!(String::from_utf8_lossy(&with_dev_ca.stdout), "000");
}

#[test]
fn ready_check_over_https_with_the_admin_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--cacert"])
        .arg(dir.path().join("pki/ca.pem"))
        .arg("--cert")
        .arg(dir.path().join("pki/admin.pem"))
        .arg("--key")
        .arg(dir.path().join("keys/admin-key.pem"))
        .args(["-H", "X-M2M-Origin: CAdmin", "-H", "X-M2M-RI: r"])
        .arg(format!("https://localhost:{}/cse-in", s.tls_addr.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rsc(&text), 2000, "{text}");
    assert!(text.contains("\"csi\":\"/id-in\""), "{text}");
}

#[test]
fn sni_picks_the_server_certificate() {
    let operator = tempfile::tempdir().unwrap();
    let prefix = operator.path().join("other");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        operator.path().to_str().unwrap(),
        "--fqdn",
        "other.example",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m2mtrust.toml");
    std::fs::write(
        &config,
        format!(
            "[[https.sni]]\nname = \"other.example\"\ncertificate = \"{}.pem\"\nprivate_key = \"{}-key.pem\"\n",
            prefix.display(),
            prefix.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let client = dir.path().join("client");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data.to_str().unwrap(),
        "--ae-id",
        "Csni",
        "--out",
        client.to_str().unwrap(),
    ]);
    let port = s.tls_addr.port();
    let curl = |host: &str, ca: &std::path::Path| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), "--cacert"])
            .arg(ca)
            .arg("--cert")
            .arg(format!("{}.pem", client.display()))
            .arg("--key")
            .arg(format!("{}-key.pem", client.display()))
            .args(["-H", "X-M2M-Origin: Csni", "-H", "X-M2M-RI: 1"])
            .arg(format!("https://{host}:{port}/cse-in"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let operator_ca = operator.path().join("pki/ca.pem");
    let dev_ca = data.join("pki/ca.pem");
    // SNI other.example: the operator certificate (the request itself is then refused: Csni is
    // not registered, 4106 → 403). Any other name: the development certificate.
    assert_eq!(curl("other.example", &operator_ca), "403");
    assert_eq!(curl("other.example", &dev_ca), "000");
    assert_eq!(curl("localhost", &dev_ca), "403");
    assert_eq!(curl("localhost", &operator_ca), "000");
}
