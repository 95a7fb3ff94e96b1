//! Remote security provisioning end to end (TS-0003 §8.3.2): a device holding only a factory
//! PSK, a device certificate, or a certificate it obtains through EST enrols with the MEF of
//! `m2mtrust up`; the MEF provisions the IN-CSE; the device then reaches the IN-CSE over TLS with
//! the provisioned key (psk_identity = KeID) or certificate, and its `From` is bound to the
//! identity it was assigned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Function, Server, free_port, m2mtrust};

const KPM: &str = "00112233445566778899aabbccddeeff";

fn add_psk_enrollee(data: &str, kpm_id: &str, ae: &str) {
    let (code, out, err) = m2mtrust(&[
        "mef",
        "enrollee",
        "add",
        "--data",
        data,
        "--kpm-id",
        kpm_id,
        "--kpm-hex",
        KPM,
        "--assign-ae-id",
        ae,
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

fn kpm_file(dir: &Path, hex: &str) -> String {
    let f = dir.join("kpm.hex");
    std::fs::write(&f, hex).unwrap();
    f.to_str().unwrap().to_string()
}

fn mef_url(s: &Server) -> String {
    format!(
        "https://127.0.0.1:{}",
        s.mef_addr.expect("MEF address").port()
    )
}

/// `m2mtrust request --data DEV ...` creating an AE; returns (exit code, stdout).
fn create_ae(s: &Server, dev: &str, from: &str, rn: &str, extra: &[&str]) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}/cse-in", s.tls_addr.port());
    let content = format!(r#"{{"m2m:ae": {{"rn": "{rn}", "api": "Nsensor", "rr": false}}}}"#);
    let mut args = vec![
        "request",
        "--data",
        dev,
        "--to",
        &url,
        "--from",
        from,
        "--op",
        "create",
        "--ty",
        "2",
        "--content",
        &content,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = m2mtrust(&args);
    (code, format!("{out}{err}"))
}

fn retrieve(s: &Server, dev: &str, from: &str, path: &str, extra: &[&str]) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}/cse-in/{path}", s.tls_addr.port());
    let mut args = vec![
        "request", "--data", dev, "--to", &url, "--from", from, "--op", "retrieve",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = m2mtrust(&args);
    (code, format!("{out}{err}"))
}

#[test]
fn factory_psk_device_enrols_and_registers_with_the_provisioned_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let kpm_id = "factory-0001@mef.m2mtrust.example";
    add_psk_enrollee(data, kpm_id, "Csensor1");

    let devdir = tempfile::tempdir().unwrap();
    let dev = devdir.path().join("dev");
    let dev = dev.to_str().unwrap();
    let kpm = kpm_file(devdir.path(), KPM);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev,
        "--mef",
        &mef_url(&s),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &kpm,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Csensor1"), "{out}");
    let stored = std::fs::read_to_string(Path::new(dev).join("enrolment.json")).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let key_id = stored["securityProfile"]["keyID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        key_id.ends_with("@mef.m2mtrust.example") && key_id.len() == 32 + 1 + 20,
        "{key_id}"
    );
    // The key is sealed at rest: neither the stored file nor anything else holds it in clear.
    assert!(stored["sealedKey"].is_string());

    // The IN-CSE received the enrolee's key: `12-<KeID>` bound to the assigned AE-ID.
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", data]);
    let line = list
        .lines()
        .find(|l| l.contains(&format!("12-{key_id}")))
        .unwrap_or_else(|| panic!("no 12-{key_id} in\n{list}"));
    assert!(line.contains("Csensor1"), "{line}");

    // TLS-PSK with KeID; the AE registers as the assigned identity.
    let (code, out) = create_ae(&s, dev, "Csensor1", "sensor1", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2001"), "{out}");
    assert!(out.contains("\"aei\": \"Csensor1\""), "{out}");
    let (code, out) = retrieve(&s, dev, "Csensor1", "sensor1", &[]);
    assert_eq!(code, 0, "{out}");
    // Any other From is refused on this security association.
    let (code, out) = retrieve(&s, dev, "Cintruder", "sensor1", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4106") || out.starts_with("4107"), "{out}");
    let (code, out) = create_ae(&s, dev, "Cintruder", "intruder", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.starts_with("2001"), "{out}");
}

#[test]
fn enrolment_refusals_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let kpm_id = "factory-0002@mef.m2mtrust.example";
    add_psk_enrollee(data, kpm_id, "Csensor2");
    let (_, before, _) = m2mtrust(&["credential", "list", "--data", data]);

    let devdir = tempfile::tempdir().unwrap();
    let dev = devdir.path().join("dev");
    let dev_s = dev.to_str().unwrap();
    // Wrong Kpm.
    let wrong = kpm_file(devdir.path(), "ffeeddccbbaa99887766554433221100");
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev_s,
        "--mef",
        &mef_url(&s),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &wrong,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("enrolment failed"), "{err}");
    assert!(!dev.join("enrolment.json").exists());
    // Unknown KpmID.
    let right = kpm_file(devdir.path(), KPM);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev_s,
        "--mef",
        &mef_url(&s),
        "--kpm-id",
        "factory-9999@mef.m2mtrust.example",
        "--kpm-file",
        &right,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!dev.join("enrolment.json").exists());
    // After the enrollee is removed, its factory key no longer enrols.
    let (code, _, _) = m2mtrust(&[
        "mef", "enrollee", "remove", "--data", data, "--kpm-id", kpm_id,
    ]);
    assert_eq!(code, 0);
    let (code, _, _) = m2mtrust(&[
        "enrol",
        "--data",
        dev_s,
        "--mef",
        &mef_url(&s),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &right,
    ]);
    assert_eq!(code, 1);
    assert!(!dev.join("enrolment.json").exists());
    // The IN-CSE's credential table gained nothing (the enrollee itself is gone).
    let (_, after, _) = m2mtrust(&["credential", "list", "--data", data]);
    let psks = |l: &str| {
        l.lines()
            .filter(|l| l.starts_with("12-") && l.contains("@mef."))
            .count()
    };
    assert_eq!(psks(&before), 0, "{before}");
    assert_eq!(psks(&after), 0, "{after}");
}

#[test]
fn device_certificate_enrols_and_registers_with_the_provisioned_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    // A device certificate (no CSE-ID/AE-ID in it) from the manufacturer's CA; here the
    // development CA of the data folder plays that role.
    let devdir = tempfile::tempdir().unwrap();
    let prefix = devdir.path().join("device-0003");
    let (code, out, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--fqdn",
        "device-0003.factory.example",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cert = format!("{}.pem", prefix.display());
    let key = format!("{}-key.pem", prefix.display());
    let (code, out, err) = m2mtrust(&[
        "mef",
        "enrollee",
        "add",
        "--data",
        data,
        "--certificate",
        &cert,
        "--assign-ae-id",
        "Csensor3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("30-ni:///sha-256;"), "{out}");

    let dev = devdir.path().join("dev");
    let dev = dev.to_str().unwrap();
    let ca = format!("{data}/pki/ca.pem");
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev,
        "--mef",
        &mef_url(&s),
        "--mef-name",
        "mef.m2mtrust.example",
        "--cert",
        &cert,
        "--key",
        &key,
        "--mef-ca",
        &ca,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = create_ae(&s, dev, "Csensor3", "sensor3", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Csensor3\""), "{out}");
    let (code, out) = retrieve(&s, dev, "Cintruder", "sensor3", &[]);
    assert_eq!(code, 1, "{out}");

    // A certificate the MEF does not know is refused.
    let other = devdir.path().join("device-0004");
    m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--fqdn",
        "device-0004.factory.example",
        "--out",
        other.to_str().unwrap(),
    ]);
    let dev2 = devdir.path().join("dev2");
    let (code, _, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev2.to_str().unwrap(),
        "--mef",
        &mef_url(&s),
        "--mef-name",
        "mef.m2mtrust.example",
        "--cert",
        &format!("{}.pem", other.display()),
        "--key",
        &format!("{}-key.pem", other.display()),
        "--mef-ca",
        &ca,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(!dev2.join("enrolment.json").exists());
}

#[test]
fn certificate_obtained_through_est_registers_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let kpm_id = "factory-0005@mef.m2mtrust.example";
    add_psk_enrollee(data, kpm_id, "Csensor5");
    let devdir = tempfile::tempdir().unwrap();
    let dev = devdir.path().join("dev");
    let dev = dev.to_str().unwrap();
    let kpm = kpm_file(devdir.path(), KPM);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev,
        "--mef",
        &mef_url(&s),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &kpm,
        "--certificate",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let chain = std::fs::read_to_string(Path::new(dev).join("pki/device.pem")).unwrap();
    assert!(chain.contains("BEGIN CERTIFICATE"));
    // The private key never left the device and is sealed at rest.
    assert!(!Path::new(dev).join("pki/device-key.pem").exists());
    let sealed = std::fs::read(Path::new(dev).join("pki/device-key.sealed")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));

    // The EST certificate is an AE-ID certificate for the assigned identity: the CSE binds it.
    let (code, out) = create_ae(
        &s,
        dev,
        "Csensor5",
        "sensor5",
        &["--use-certificate", "--server-name", "localhost"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Csensor5\""), "{out}");
    let (code, out) = retrieve(
        &s,
        dev,
        "Cintruder",
        "sensor5",
        &["--use-certificate", "--server-name", "localhost"],
    );
    assert_eq!(code, 1, "{out}");
    // The key provisioned in the same enrolment works too.
    let (code, out) = retrieve(&s, dev, "Csensor5", "sensor5", &[]);
    assert_eq!(code, 0, "{out}");
}

/// A MEF running on its own (`m2mtrust mef serve`, its own data folder and CA): the IN-CSE does
/// not share its store, so it fetches an enrolee's key from the MEF the first time the device
/// connects (TS-0003 §8.3.2.1 steps c-g), authenticated by its CSE-ID certificate.
#[test]
fn standalone_mef_and_a_cse_that_fetches_the_key() {
    let mefdir = tempfile::tempdir().unwrap();
    let csedir = tempfile::tempdir().unwrap();
    let mef_data = mefdir.path().to_str().unwrap();
    // The MEF's CA exists before the CSE is configured to trust it.
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        mef_data,
        "--fqdn",
        "bootstrap.m2mtrust.example",
        "--out",
        mefdir.path().join("unused").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let config = csedir.path().join("cse.toml");
    std::fs::write(
        &config,
        format!(
            "[mef]\nremote_url = \"https://127.0.0.1:{port}\"\nremote_fqdn = \"mef.m2mtrust.example\"\nremote_ca = \"{}\"\n",
            mefdir.path().join("pki/ca.pem").display()
        ),
    )
    .unwrap();
    let cse_data = csedir.path().join("data");
    let s = Server::start(
        &cse_data,
        &["--mef", "off", "--config", config.to_str().unwrap()],
    );
    let cse_ca = cse_data.join("pki/ca.pem");
    let listen = format!("127.0.0.1:{port}");
    let base = format!("https://127.0.0.1:{}/cse-in", s.tls_addr.port());
    let _mef = Function::start(&[
        "mef",
        "serve",
        "--data",
        mef_data,
        "--listen",
        &listen,
        "--trust-anchor",
        cse_ca.to_str().unwrap(),
        "--log",
        "warn",
        "--target-cse-base",
        &base,
    ]);

    let kpm_id = "factory-0006@mef.m2mtrust.example";
    add_psk_enrollee(mef_data, kpm_id, "Csensor6");
    let devdir = tempfile::tempdir().unwrap();
    let dev = devdir.path().join("dev");
    let dev = dev.to_str().unwrap();
    let kpm = kpm_file(devdir.path(), KPM);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev,
        "--mef",
        &format!("https://127.0.0.1:{port}"),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &kpm,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The CSE has never seen this key...
    let cse_data_s = cse_data.to_str().unwrap();
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", cse_data_s]);
    assert!(!list.contains("@mef.m2mtrust.example"), "{list}");
    // ...fetches it from the MEF at the handshake, binds the AE-ID the MEF assigned, keeps it.
    let (code, out) = create_ae(&s, dev, "Csensor6", "sensor6", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Csensor6\""), "{out}");
    let (code, out) = retrieve(&s, dev, "Cintruder", "sensor6", &[]);
    assert_eq!(code, 1, "{out}");
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", cse_data_s]);
    let line = list
        .lines()
        .find(|l| l.contains("@mef.m2mtrust.example"))
        .unwrap_or_else(|| panic!("fetched key not kept:\n{list}"));
    assert!(line.contains("Csensor6"), "{line}");
    // A KeID the MEF never issued is refused at the handshake (the MEF answers Status False).
    let url = format!("https://127.0.0.1:{}/cse-in", s.tls_addr.port());
    let (code, out, err) = m2mtrust(&[
        "request",
        "--to",
        &url,
        "--from",
        "Csensor6",
        "--op",
        "retrieve",
        "--psk-id",
        "00000000000000000000000000000000@mef.m2mtrust.example",
        "--key-hex",
        "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f",
    ]);
    assert_eq!(code, 1, "{out}{err}");
}

/// A field CSE without provisioning (seed 001): it enrols with a factory key assigned a CSE-ID,
/// receives its securityProfile, and registers with the IN-CSE using the provisioned key.
#[test]
fn an_mn_cse_enrols_then_registers_with_the_provisioned_key() {
    let in_dir = tempfile::tempdir().unwrap();
    let in_cse = Server::start(in_dir.path(), &[]);
    let in_data = in_dir.path().to_str().unwrap();
    let kpm_id = "gateway-0007@mef.m2mtrust.example";
    let (code, out, err) = m2mtrust(&[
        "mef",
        "enrollee",
        "add",
        "--data",
        in_data,
        "--kpm-id",
        kpm_id,
        "--kpm-hex",
        KPM,
        "--assign-cse-id",
        "/id-mn",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let mn_dir = tempfile::tempdir().unwrap();
    let data = mn_dir.path().join("data");
    let kpm = kpm_file(mn_dir.path(), KPM);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        data.to_str().unwrap(),
        "--mef",
        &mef_url(&in_cse),
        "--kpm-id",
        kpm_id,
        "--kpm-file",
        &kpm,
        "--node-id",
        "urn:dev:ops:gateway-0007",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("enrolment.json")).unwrap())
            .unwrap();
    assert_eq!(
        stored["securityProfile"]["enroleeID"],
        serde_json::json!(["/id-mn"])
    );
    assert_eq!(stored["securityProfile"]["cse"], serde_json::json!(true));
    let config = mn_dir.path().join("mn.toml");
    std::fs::write(
        &config,
        format!(
            "[cse]\ncse_id = \"/id-mn\"\ncse_base_name = \"cse-mn\"\n\n[registrar]\nurl = \"https://127.0.0.1:{}/cse-in\"\ncse_id = \"/id-in\"\nenrolment = \"{}\"\n",
            in_cse.tls_addr.port(),
            data.display()
        ),
    )
    .unwrap();
    let _mn = Server::start_command("cse", &data, &["--config", config.to_str().unwrap()]);
    let start = std::time::Instant::now();
    loop {
        let r = in_cse.call("GET", "/cse-in/id-mn", Some("CAdmin"), None, None);
        if r.rsc() == 2000 {
            assert_eq!(r.json()["m2m:csr"]["csi"], "/id-mn");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the MN-CSE did not register: {}",
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
