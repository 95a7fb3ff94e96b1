//! The MAF-based security association end to end (TS-0003 §8.2.2.3, §8.8): the MEF enrols a
//! device for the MAF, the device registers with the MAF (its KeID, then the KmID it is
//! assigned), registers a key for the IN-CSE, and reaches the IN-CSE with it; the CSE retrieves
//! the key from the MAF and binds the association to the device's AE-ID.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Function, Server, free_port, m2mtrust};

const KPM: &str = "00112233445566778899aabbccddeeff";

/// An enrolee of the MEF, enrolled for the MAF too; returns the device folder.
fn enrolled_device(s: &Server, dir: &Path, name: &str, ae: &str) -> String {
    let data = s.data.to_str().unwrap();
    let kpm_id = format!("{name}@mef.m2mtrust.example");
    let (code, out, err) = m2mtrust(&[
        "mef",
        "enrollee",
        "add",
        "--data",
        data,
        "--kpm-id",
        &kpm_id,
        "--kpm-hex",
        KPM,
        "--assign-ae-id",
        ae,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let kpm = dir.join(format!("{name}.hex"));
    std::fs::write(&kpm, KPM).unwrap();
    let dev = dir.join(name);
    let (code, out, err) = m2mtrust(&[
        "enrol",
        "--data",
        dev.to_str().unwrap(),
        "--mef",
        &format!("https://127.0.0.1:{}", s.mef_addr.unwrap().port()),
        "--kpm-id",
        &kpm_id,
        "--kpm-file",
        kpm.to_str().unwrap(),
        "--maf",
        &maf_url(s),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("MAF KmID"), "{out}");
    dev.to_str().unwrap().to_string()
}

fn maf_url(s: &Server) -> String {
    format!(
        "https://127.0.0.1:{}",
        s.maf_addr.expect("MAF address").port()
    )
}

fn register_key(s: &Server, dev: &str, secs: &str) -> (i32, String) {
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        dev,
        "--maf",
        &maf_url(s),
        "--target",
        "/id-in",
        "--valid-secs",
        secs,
    ]);
    (code, format!("{out}{err}"))
}

fn request(
    s: &Server,
    dev: &str,
    from: &str,
    op: &str,
    path: &str,
    extra: &[&str],
) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}/cse-in{path}", s.tls_addr.port());
    let mut args = vec![
        "request",
        "--data",
        dev,
        "--use-maf-key",
        "--to",
        &url,
        "--from",
        from,
        "--op",
        op,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = m2mtrust(&args);
    (code, format!("{out}{err}"))
}

#[test]
fn maf_distributed_key_reaches_the_in_cse_and_binds_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let devs = tempfile::tempdir().unwrap();
    let dev = enrolled_device(&s, devs.path(), "maf-dev-1", "Cmaf1");
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dev).join("enrolment.json")).unwrap(),
    )
    .unwrap();
    let km_id = stored["maf"]["kmID"].as_str().unwrap();
    assert!(km_id.ends_with("@maf.m2mtrust.example"), "{km_id}");

    let (code, out) = register_key(&s, &dev, "3600");
    assert_eq!(code, 0, "{out}");
    let key: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dev).join("maf-key.json")).unwrap(),
    )
    .unwrap();
    let kid = key["keyIdentifier"].as_str().unwrap().to_string();
    assert!(
        kid.ends_with("@maf.m2mtrust.example") && kid.len() == 32 + 1 + 20,
        "{kid}"
    );

    // TLS-PSK with psk_identity = Key Identifier: the CSE retrieves Kc from the MAF and binds
    // the association to the Source MAF Client ID, the device's AE-ID.
    let ae = r#"{"m2m:ae": {"rn": "maf1", "api": "Nmaf", "rr": false}}"#;
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf1",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Cmaf1\""), "{out}");
    let cnt = r#"{"m2m:cnt": {"rn": "data"}}"#;
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf1",
        "create",
        "/maf1",
        &["--ty", "3", "--content", cnt],
    );
    assert_eq!(code, 0, "{out}");
    let cin = r#"{"m2m:cin": {"con": "21.5"}}"#;
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf1",
        "create",
        "/maf1/data",
        &["--ty", "4", "--content", cin],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = request(&s, &dev, "Cmaf1", "retrieve", "/maf1/data/la", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("21.5"), "{out}");
    // Another From on the same association is refused.
    let (code, out) = request(&s, &dev, "Cintruder", "retrieve", "/maf1", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4106"), "{out}");
    // The CSE keeps Kc until its lifetime ends, bound to the device.
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", s.data.to_str().unwrap()]);
    let line = list
        .lines()
        .find(|l| l.contains(&kid))
        .unwrap_or_else(|| panic!("Kc not cached:\n{list}"));
    assert!(line.contains("Cmaf1"), "{line}");

    // A third entity (an AE-ID certificate of the same CA, not the key's target) cannot
    // retrieve Kc from the MAF.
    let data = s.data.to_str().unwrap();
    let prefix = dir.path().join("other");
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data,
        "--ae-id",
        "Cother",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rki = kid.split('@').next().unwrap();
    let (code, out, err) = m2mtrust(&[
        "request",
        "--to",
        &format!("{}/maf/keys/{rki}", maf_url(&s)),
        "--from",
        "Cother",
        "--op",
        "retrieve",
        "--cert",
        &format!("{}.pem", prefix.display()),
        "--key",
        &format!("{}-key.pem", prefix.display()),
        "--ca",
        &format!("{data}/pki/ca.pem"),
        "--server-name",
        "maf.m2mtrust.example",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("4103"), "{out}{err}");
    assert!(!out.contains("\"kv\""), "{out}");
}

#[test]
fn an_expired_maf_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let devs = tempfile::tempdir().unwrap();
    let dev = enrolled_device(&s, devs.path(), "maf-dev-2", "Cmaf2");
    let (code, out) = register_key(&s, &dev, "2");
    assert_eq!(code, 0, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let ae = r#"{"m2m:ae": {"rn": "maf2", "api": "Nmaf", "rr": false}}"#;
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf2",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 1, "{out}");
    // A fresh key works again.
    let (code, out) = register_key(&s, &dev, "3600");
    assert_eq!(code, 0, "{out}");
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf2",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
}

fn openssl_available() -> bool {
    Command::new("openssl").arg("version").output().is_ok()
}

/// A pre-provisioned master credential (`m2mtrust maf client add`): `openssl s_client -psk`
/// completes the MAF Handshake with KmID/Km; the device registers with the MAF, registers a
/// key and reaches the IN-CSE with it; a wrong Km and an unknown KmID are refused.
#[test]
fn pre_provisioned_km_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let data = s.data.to_str().unwrap();
    let km_id = "gw-0009@maf.m2mtrust.example";
    let km = "0f0e0d0c0b0a09080706050403020100";
    let (code, out, err) = m2mtrust(&[
        "maf",
        "client",
        "add",
        "--data",
        data,
        "--km-id",
        km_id,
        "--km-hex",
        km,
        "--bind-ae-id",
        "Cgw9",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, list, _) = m2mtrust(&["maf", "client", "list", "--data", data]);
    assert!(
        list.contains(&format!("11-{km_id}")) && list.contains("Cgw9"),
        "{list}"
    );
    assert!(!list.contains(km), "{list}");

    if openssl_available() {
        let port = s.maf_addr.unwrap().port().to_string();
        // s_client exits 0 only when the handshake completed (a refused PSK ends in an alert).
        let run = |key: &str, id: &str| {
            let out = Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                    "-tls1_2",
                ])
                .args([
                    "-cipher",
                    "PSK-AES128-CBC-SHA256",
                    "-psk_identity",
                    id,
                    "-psk",
                    key,
                ])
                .args(["-servername", "maf.m2mtrust.example"])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
            )
        };
        let (ok, out) = run(km, km_id);
        assert!(
            ok && out.contains("Cipher    : PSK-AES128-CBC-SHA256"),
            "{out}"
        );
        let (ok, out) = run("00000000000000000000000000000000", km_id);
        assert!(!ok, "{out}");
        let (ok, out) = run(km, "nobody@maf.m2mtrust.example");
        assert!(!ok, "{out}");
    }

    let devs = tempfile::tempdir().unwrap();
    let dev = devs.path().join("gw");
    let km_file = devs.path().join("km.hex");
    std::fs::write(&km_file, km).unwrap();
    let dev_s = dev.to_str().unwrap();
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        dev_s,
        "--maf",
        &maf_url(&s),
        "--km-id",
        km_id,
        "--km-file",
        km_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let ae = r#"{"m2m:ae": {"rn": "gw9", "api": "Ngw", "rr": false}}"#;
    let (code, out) = request(
        &s,
        dev_s,
        "Cgw9",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Cgw9\""), "{out}");
    // Registering again reuses the client registration (4117 is not an error here).
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        dev_s,
        "--maf",
        &maf_url(&s),
        "--km-id",
        km_id,
        "--km-file",
        km_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // A wrong Km does not get through the MAF Handshake.
    std::fs::write(&km_file, "00000000000000000000000000000000").unwrap();
    let (code, _, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        dev_s,
        "--maf",
        &maf_url(&s),
        "--km-id",
        km_id,
        "--km-file",
        km_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("MAF handshake"), "{err}");
}

/// The MAF keeps its registrations across a restart (they live in the data folder's
/// `maf.sqlite`, key values sealed): a key registered before the restart is retrieved after it.
#[test]
fn maf_registrations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    let s = Server::start(&data, &[]);
    let devs = tempfile::tempdir().unwrap();
    let dev = enrolled_device(&s, devs.path(), "maf-dev-3", "Cmaf3");
    let (code, out) = register_key(&s, &dev, "3600");
    assert_eq!(code, 0, "{out}");
    drop(s);
    let s = Server::start(&data, &[]);
    // The CSE never saw this key: it retrieves it from the restarted MAF.
    let ae = r#"{"m2m:ae": {"rn": "maf3", "api": "Nmaf", "rr": false}}"#;
    let (code, out) = request(
        &s,
        &dev,
        "Cmaf3",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Cmaf3\""), "{out}");
    // The KmID assigned before the restart still opens a MAF session.
    let (code, out) = register_key(&s, &dev, "3600");
    assert_eq!(code, 0, "{out}");
}

/// A MAF running on its own (`m2mtrust maf serve`, its own data folder and CA); the IN-CSE
/// (`[maf] remote_url`) retrieves keys from it over the network with its CSE-ID certificate.
#[test]
fn standalone_maf_and_a_cse_that_retrieves_from_it() {
    let mafdir = tempfile::tempdir().unwrap();
    let csedir = tempfile::tempdir().unwrap();
    let maf_data = mafdir.path().to_str().unwrap();
    let (code, _, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        maf_data,
        "--fqdn",
        "unused.m2mtrust.example",
        "--out",
        mafdir.path().join("unused").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let config = csedir.path().join("cse.toml");
    std::fs::write(
        &config,
        format!(
            "[maf]\nremote_url = \"https://127.0.0.1:{port}\"\nremote_fqdn = \"maf.m2mtrust.example\"\nremote_ca = \"{}\"\n",
            mafdir.path().join("pki/ca.pem").display()
        ),
    )
    .unwrap();
    let cse_data = csedir.path().join("data");
    let s = Server::start(
        &cse_data,
        &["--maf", "off", "--config", config.to_str().unwrap()],
    );
    let cse_ca = cse_data.join("pki/ca.pem");
    let listen = format!("127.0.0.1:{port}");
    let _maf = Function::start(&[
        "maf",
        "serve",
        "--data",
        maf_data,
        "--listen",
        &listen,
        "--trust-anchor",
        cse_ca.to_str().unwrap(),
        "--log",
        "warn",
    ]);

    let km_id = "gw-0010@maf.m2mtrust.example";
    let km = "0f0e0d0c0b0a09080706050403020100";
    let (code, out, err) = m2mtrust(&[
        "maf",
        "client",
        "add",
        "--data",
        maf_data,
        "--km-id",
        km_id,
        "--km-hex",
        km,
        "--bind-ae-id",
        "Cgw10",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let devs = tempfile::tempdir().unwrap();
    let dev = devs.path().join("gw");
    let km_file = devs.path().join("km.hex");
    std::fs::write(&km_file, km).unwrap();
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        dev.to_str().unwrap(),
        "--maf",
        &format!("https://127.0.0.1:{port}"),
        "--km-id",
        km_id,
        "--km-file",
        km_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let ae = r#"{"m2m:ae": {"rn": "gw10", "api": "Ngw", "rr": false}}"#;
    let (code, out) = request(
        &s,
        dev.to_str().unwrap(),
        "Cgw10",
        "create",
        "",
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"aei\": \"Cgw10\""), "{out}");
}

/// ESPrim with a MAF-distributed key (TS-0003 §8.4.2 Phase A, MAF framework; SUID 33): the
/// device registers a key for the IN-CSE at the MAF and protects its request end to end under
/// the pairwise key derived from Kc; the CSE retrieves Kc from the MAF on the first object,
/// derives the same key and binds it to the device's AE-ID.
#[test]
fn esprim_under_a_maf_distributed_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let devs = tempfile::tempdir().unwrap();
    let dev = enrolled_device(&s, devs.path(), "maf-e2e", "Cmafe2e");
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        &dev,
        "--maf",
        &maf_url(&s),
        "--target",
        "/id-in",
        "--usage",
        "esprim",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let key: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dev).join("maf-esprim-key.json")).unwrap(),
    )
    .unwrap();
    let kid = key["keyIdentifier"].as_str().unwrap().to_string();
    assert!(!Path::new(&dev).join("maf-key.json").exists());

    // Over the enrolment key's association, the AE registers, then sends ESPrim objects.
    let url = |path: &str| format!("https://127.0.0.1:{}/cse-in{path}", s.tls_addr.port());
    let send = |op: &str, path: &str, extra: &[&str]| {
        let target = url(path);
        let mut args = vec![
            "request", "--data", &dev, "--to", &target, "--from", "Cmafe2e", "--op", op,
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = m2mtrust(&args);
        (code, format!("{out}{err}"))
    };
    let ae = r#"{"m2m:ae": {"rn": "mafe2e", "api": "Nmaf", "rr": false}}"#;
    let (code, out) = send("create", "", &["--ty", "2", "--content", ae]);
    assert_eq!(code, 0, "{out}");
    let cnt = r#"{"m2m:cnt": {"rn": "sealed"}}"#;
    let (code, out) = send(
        "create",
        "/mafe2e",
        &["--ty", "3", "--content", cnt, "--esprim-maf"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2001"), "{out}");
    let (code, out) = send("retrieve", "/mafe2e/sealed", &["--esprim-maf"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"rn\": \"sealed\""), "{out}");
    // The CSE keeps the derived pairwise key, bound to the device.
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", s.data.to_str().unwrap()]);
    let line = list
        .lines()
        .find(|l| l.contains(&format!("13-{kid}")))
        .unwrap_or_else(|| panic!("pairwise key not kept:\n{list}"));
    assert!(
        line.contains("esprim") && line.contains("Cmafe2e"),
        "{line}"
    );
}

/// ESPrim with the key the enrolment provisioned (TS-0003 §8.4.2 Phase A, RSPF; SUID 23): the
/// device derives it from Ke at enrolment, the CSE from the MEF's enrolment record, both named
/// by the KeID.
#[test]
fn esprim_under_the_enrolment_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let devs = tempfile::tempdir().unwrap();
    let dev = enrolled_device(&s, devs.path(), "rspf-e2e", "Crspf");
    let url = |path: &str| format!("https://127.0.0.1:{}/cse-in{path}", s.tls_addr.port());
    let send = |op: &str, path: &str, extra: &[&str]| {
        let target = url(path);
        let mut args = vec![
            "request", "--data", &dev, "--to", &target, "--from", "Crspf", "--op", op,
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = m2mtrust(&args);
        (code, format!("{out}{err}"))
    };
    let ae = r#"{"m2m:ae": {"rn": "rspf", "api": "Nrspf", "rr": false}}"#;
    let (code, out) = send("create", "", &["--ty", "2", "--content", ae]);
    assert_eq!(code, 0, "{out}");
    let cnt = r#"{"m2m:cnt": {"rn": "e2e"}}"#;
    let (code, out) = send(
        "create",
        "/rspf",
        &["--ty", "3", "--content", cnt, "--esprim-enrolment"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2001"), "{out}");
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dev).join("enrolment.json")).unwrap(),
    )
    .unwrap();
    let ke_id = stored["securityProfile"]["keyID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, list, _) = m2mtrust(&["credential", "list", "--data", s.data.to_str().unwrap()]);
    let line = list
        .lines()
        .find(|l| l.contains("esprim") && l.contains("Crspf"))
        .unwrap_or_else(|| panic!("no ESPrim key kept for the enrolee:\n{list}"));
    assert!(
        ke_id.is_empty() || line.contains(&ke_id),
        "{line} / {ke_id}"
    );
}

/// Opens a sealed key file of a device folder (`keyIdentifier`, `sealedKey`).
fn device_key(dev: &str, file: &Path) -> (String, m2mtrust_crypto::SecretKey) {
    use base64::Engine;
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let kid = stored["keyIdentifier"].as_str().unwrap().to_string();
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(stored["sealedKey"].as_str().unwrap())
        .unwrap();
    let sealer =
        m2mtrust_crypto::Sealer::load_or_create(&Path::new(dev).join("keys/master.key")).unwrap();
    (kid.clone(), sealer.open(&sealed, kid.as_bytes()).unwrap())
}

/// ESData keys through the MAF (TS-0003 §8.6 with a MAF as Trust Enabling Function; SUID 34):
/// a producer registers a key for a consumer, seals content with it; the consumer retrieves the
/// key from the MAF and opens the content; a third device is refused the key.
#[test]
fn esdata_keys_distributed_by_the_maf() {
    use m2mtrust_client::esdata::ContentProtection;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let devs = tempfile::tempdir().unwrap();
    let producer = enrolled_device(&s, devs.path(), "producer", "Cproducer");
    let consumer = enrolled_device(&s, devs.path(), "consumer", "Cconsumer");
    let outsider = enrolled_device(&s, devs.path(), "outsider", "Coutsider");
    let (code, out, err) = m2mtrust(&[
        "maf",
        "register-key",
        "--data",
        &producer,
        "--maf",
        &maf_url(&s),
        "--target",
        "Cconsumer",
        "--usage",
        "esdata",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (kid, key) = device_key(&producer, &Path::new(&producer).join("maf-esdata-key.json"));
    let sealed = ContentProtection::key_wrap(&kid, &key)
        .unwrap()
        .seal(&serde_json::json!({"dose": "5 mg"}))
        .unwrap();

    let (code, out, err) = m2mtrust(&[
        "maf",
        "retrieve-key",
        "--data",
        &consumer,
        "--maf",
        &maf_url(&s),
        "--key-id",
        &kid,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SUID 34"), "{out}");
    let rki = kid.split('@').next().unwrap();
    let (kid2, key2) = device_key(
        &consumer,
        &Path::new(&consumer).join(format!("maf-keys/{rki}.json")),
    );
    assert_eq!(kid2, kid);
    let opened = ContentProtection::key_wrap(&kid2, &key2)
        .unwrap()
        .open(&sealed)
        .unwrap();
    assert_eq!(opened, serde_json::json!({"dose": "5 mg"}));

    let (code, out, err) = m2mtrust(&[
        "maf",
        "retrieve-key",
        "--data",
        &outsider,
        "--maf",
        &maf_url(&s),
        "--key-id",
        &kid,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        !Path::new(&outsider)
            .join(format!("maf-keys/{rki}.json"))
            .exists()
    );
}
