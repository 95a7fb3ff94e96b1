//! An MN-CSE registers itself with an IN-CSE over TLS (TS-0001 §10.1.1.2.1, seed 003 change 1),
//! and `m2mtrust request` sends primitives over PSK and certificate associations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, m2mtrust};

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_mn_cse_registers_with_the_in_cse_over_tls() {
    let in_dir = tempfile::tempdir().unwrap();
    let in_cse = Server::start(in_dir.path(), &[]);
    let key = "0f0e0d0c0b0a09080706050403020100";
    let (code, _, err) = m2mtrust(&[
        "credential",
        "add-psk",
        "--data",
        in_dir.path().to_str().unwrap(),
        "--id",
        "mn-cse@m2mtrust.example",
        "--key-hex",
        key,
        "--cse-id",
        "/id-mn",
    ]);
    assert_eq!(code, 0, "{err}");

    let mn_dir = tempfile::tempdir().unwrap();
    let key_file = mn_dir.path().join("kpsa.hex");
    std::fs::write(&key_file, key).unwrap();
    let config = mn_dir.path().join("mn.toml");
    std::fs::write(
        &config,
        format!(
            "[cse]\ncse_id = \"/id-mn\"\ncse_base_name = \"cse-mn\"\n\n[registrar]\nurl = \"https://127.0.0.1:{}/cse-in\"\ncse_id = \"/id-in\"\npsk_id = \"mn-cse@m2mtrust.example\"\npsk_key_file = \"{}\"\n",
            in_cse.tls_addr.port(),
            key_file.display()
        ),
    )
    .unwrap();
    let data = mn_dir.path().join("data");
    let mn = Server::start_command("cse", &data, &["--config", config.to_str().unwrap()]);

    // The IN-CSE now hosts <remoteCSE> for /id-mn, with the MN's point of access.
    wait_for("the <remoteCSE> on the IN-CSE", || {
        in_cse
            .call("GET", "/cse-in/id-mn", Some("CAdmin"), None, None)
            .rsc()
            == 2000
    });
    let csr = in_cse
        .call("GET", "/cse-in/id-mn", Some("CAdmin"), None, None)
        .json();
    assert_eq!(csr["m2m:csr"]["csi"], "/id-mn");
    assert_eq!(csr["m2m:csr"]["cb"], "//m2mtrust.example/id-mn/cse-mn");
    let poa = csr["m2m:csr"]["poa"].to_string();
    assert!(poa.contains(&format!("https://{}", mn.tls_addr)), "{poa}");
    // And the MN-CSE hosts <remoteCSE> for its registrar.
    wait_for("the <remoteCSE> on the MN-CSE", || {
        mn.call("GET", "/cse-mn/id-in", Some("CAdmin"), None, None)
            .rsc()
            == 2000
    });

    // A restart finds itself registered already and carries on.
    drop(mn);
    let mn = Server::start_command("cse", &data, &["--config", config.to_str().unwrap()]);
    assert_eq!(
        mn.call("GET", "/cse-mn/id-in", Some("CAdmin"), None, None)
            .rsc(),
        2000
    );
    assert_eq!(
        in_cse
            .call("GET", "/cse-in?fu=1&ty=16", Some("CAdmin"), None, None)
            .json()["m2m:uril"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn request_command_over_psk_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let url = format!("https://127.0.0.1:{}/cse-in", s.tls_addr.port());
    let key = format!("@{}", dir.path().join("keys/example-psk.hex").display());
    let psk = [
        "--psk-id",
        "example-ae@m2mtrust.example",
        "--key-hex",
        key.as_str(),
    ];

    let mut args = vec![
        "request",
        "--to",
        &url,
        "--from",
        "C",
        "--op",
        "create",
        "--ty",
        "2",
        "--content",
        r#"{"m2m:ae": {"rn": "ex", "api": "Nx", "rr": false}}"#,
    ];
    args.extend(psk);
    let (code, out, err) = m2mtrust(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("2001 CREATED"), "{out}");
    assert!(out.contains("\"aei\": \"Cexample\""), "{out}");

    let ae_url = format!("{url}/ex");
    let mut args = vec![
        "request", "--to", &ae_url, "--from", "Cother", "--op", "retrieve",
    ];
    args.extend(psk);
    let (code, out, _) = m2mtrust(&args);
    assert_eq!(code, 1);
    assert!(out.starts_with("4106"), "{out}");

    // Certificate: an AE-ID certificate from the development CA, the CA as trust anchor.
    let prefix = dir.path().join("cert-ae");
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--ae-id",
        "Ccert",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let cert = format!("{}.pem", prefix.display());
    let keyf = format!("{}-key.pem", prefix.display());
    let ca = format!("{data}/pki/ca.pem");
    let (code, out, err) = m2mtrust(&[
        "request",
        "--to",
        &url,
        "--from",
        "Ccert",
        "--op",
        "create",
        "--ty",
        "2",
        "--content",
        r#"{"m2m:ae": {"rn": "certae", "api": "Nx", "rr": false}}"#,
        "--cert",
        &cert,
        "--key",
        &keyf,
        "--ca",
        &ca,
        "--server-name",
        "localhost",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("2001"), "{out}");
    // Usage errors exit 2.
    let (code, _, err) = m2mtrust(&[
        "request",
        "--to",
        &url,
        "--op",
        "create",
        "--psk-id",
        "example-ae@m2mtrust.example",
        "--key-hex",
        "00",
    ]);
    assert_eq!(code, 2, "{err}");
}
