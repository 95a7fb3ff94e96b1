//! Forwarding over TLS (TS-0001 §8.2, TS-0003 §7.2.1): AEs registered at an MN-CSE address
//! resources of the IN-CSE; the MN-CSE checks who they are and forwards over its association
//! with the IN-CSE, which decides access by the MN-relative AE-ID.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, m2mtrust};
use serde_json::{Value, json};

const MN_KEY: &str = "0f0e0d0c0b0a09080706050403020100";

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

/// Adds a PSK bound to `binding` (`--ae-id` or `--cse-id`) to the data folder `data`.
fn add_psk(data: &Path, id: &str, key: &str, binding: &[&str]) {
    let mut args = vec![
        "credential",
        "add-psk",
        "--data",
        data.to_str().unwrap(),
        "--id",
        id,
        "--key-hex",
        key,
    ];
    args.extend(binding);
    let (code, _, err) = m2mtrust(&args);
    assert_eq!(code, 0, "{err}");
}

/// An AE's request over its PSK association: `m2mtrust request`, returning the Response
/// Status Code and the content.
fn ae_request(
    url: &str,
    psk_id: &str,
    key: &str,
    from: &str,
    op: &str,
    more: &[&str],
) -> (u16, Value) {
    let mut args = vec![
        "request",
        "--to",
        url,
        "--from",
        from,
        "--op",
        op,
        "--psk-id",
        psk_id,
        "--key-hex",
        key,
    ];
    args.extend(more);
    let (_, out, err) = m2mtrust(&args);
    let rsc = out
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?} {err}"));
    let content = out
        .find('{')
        .map(|i| serde_json::from_str(&out[i..]).unwrap())
        .unwrap_or(Value::Null);
    (rsc, content)
}

/// An IN-CSE (`up`) and an MN-CSE (`cse`) registered with it over a PSK.
struct Pair {
    _in_dir: tempfile::TempDir,
    _mn_dir: tempfile::TempDir,
    in_cse: Server,
    mn: Server,
    mn_data: std::path::PathBuf,
}

fn pair() -> Pair {
    let in_dir = tempfile::tempdir().unwrap();
    let in_cse = Server::start(in_dir.path(), &[]);
    add_psk(
        in_dir.path(),
        "mn-cse@m2mtrust.example",
        MN_KEY,
        &["--cse-id", "/id-mn"],
    );
    let mn_dir = tempfile::tempdir().unwrap();
    let key_file = mn_dir.path().join("kpsa.hex");
    std::fs::write(&key_file, MN_KEY).unwrap();
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
    let mn_data = mn_dir.path().join("data");
    let mn = Server::start_command("cse", &mn_data, &["--config", config.to_str().unwrap()]);
    wait_for("the registration of the MN-CSE", || {
        mn.call("GET", "/cse-mn/id-in", Some("CAdmin"), None, None)
            .rsc()
            == 2000
    });
    Pair {
        _in_dir: in_dir,
        _mn_dir: mn_dir,
        in_cse,
        mn,
        mn_data,
    }
}

#[test]
fn an_ae_at_the_mn_cse_reaches_the_in_cse_through_it() {
    let p = pair();
    // Two AEs at the MN-CSE, each with its own PSK.
    let keys = [
        (
            "ae1@m2mtrust.example",
            "00112233445566778899aabbccddeeff",
            "Cae1",
        ),
        (
            "ae2@m2mtrust.example",
            "ffeeddccbbaa99887766554433221100",
            "Cae2",
        ),
    ];
    let mn_url = format!("https://127.0.0.1:{}", p.mn.tls_addr.port());
    for (id, key, ae) in keys {
        add_psk(&p.mn_data, id, key, &["--ae-id", ae]);
        let content = json!({"m2m:ae": {"rn": ae.to_lowercase(), "api": "Nfwd", "rr": false}});
        let (rsc, body) = ae_request(
            &format!("{mn_url}/cse-mn"),
            id,
            key,
            "C",
            "create",
            &["--ty", "2", "--content", &content.to_string()],
        );
        assert_eq!(rsc, 2001, "{body}");
        assert_eq!(body["m2m:ae"]["aei"], ae);
    }
    let (ae1, key1, _) = keys[0];
    let (ae2, key2, _) = keys[1];

    // The IN-CSE's admin grants the MN's Cae1 CREATE and RETRIEVE on a container.
    let acp = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(1),
        Some(&json!({"m2m:acp": {
            "rn": "fwd-acp",
            "pv": {"acr": [{"acor": ["/id-mn/Cae1"], "acop": 3}]},
            "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]},
        }})),
    );
    assert_eq!(acp.rsc(), 2001, "{}", acp.body);
    let acp_ri = acp.json()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let cnt = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "readings", "acpi": [acp_ri]}})),
    );
    assert_eq!(cnt.rsc(), 2001, "{}", cnt.body);

    // Cae1 writes and reads it through the MN-CSE, which has no such resource.
    let target = format!("{mn_url}/~/id-in/cse-in/readings");
    let cin = json!({"m2m:cin": {"con": "21.5"}}).to_string();
    let (rsc, body) = ae_request(
        &target,
        ae1,
        key1,
        "Cae1",
        "create",
        &["--ty", "4", "--content", &cin],
    );
    assert_eq!(rsc, 2001, "{body}");
    assert_eq!(body["m2m:cin"]["cr"], "/id-mn/Cae1");
    let (rsc, body) = ae_request(&format!("{target}/la"), ae1, key1, "Cae1", "retrieve", &[]);
    assert_eq!(rsc, 2000, "{body}");
    assert_eq!(body["m2m:cin"]["con"], "21.5");
    // The instance is the IN-CSE's, created by the MN-relative AE-ID.
    let stored = p
        .in_cse
        .call("GET", "/cse-in/readings/la", Some("CAdmin"), None, None);
    assert_eq!(stored.rsc(), 2000, "{}", stored.body);
    assert_eq!(stored.json()["m2m:cin"]["cr"], "/id-mn/Cae1");
    assert_eq!(stored.json()["m2m:cin"]["con"], "21.5");
    assert_eq!(
        p.mn.call("GET", "/cse-mn/readings", Some("CAdmin"), None, None)
            .rsc(),
        4004,
        "nothing of it is stored at the MN-CSE"
    );

    // Cae2 is registered at the MN-CSE too, but the IN-CSE's policy does not grant it.
    let (rsc, body) = ae_request(
        &target,
        ae2,
        key2,
        "Cae2",
        "create",
        &["--ty", "4", "--content", &cin],
    );
    assert_eq!(rsc, 4103, "{body}");
    // Cae2 cannot pass for Cae1: the MN-CSE checks From against the association.
    let (rsc, _) = ae_request(&target, ae2, key2, "Cae1", "retrieve", &[]);
    assert_eq!(rsc, 4106);
    let instances = p
        .in_cse
        .call("GET", "/cse-in/readings", Some("CAdmin"), None, None)
        .json();
    assert_eq!(instances["m2m:cnt"]["cni"], 1);

    // A CSE neither knows: the MN-CSE sends it to its registrar, which has no route.
    let (rsc, body) = ae_request(
        &format!("{mn_url}/~/id-nowhere/cse-x"),
        ae1,
        key1,
        "Cae1",
        "retrieve",
        &[],
    );
    assert_eq!(rsc, 5103, "{body}");
}

#[test]
fn an_unreachable_next_hop_is_5103() {
    let mut p = pair();
    add_psk(
        &p.mn_data,
        "ae1@m2mtrust.example",
        "00112233445566778899aabbccddeeff",
        &["--ae-id", "Cae1"],
    );
    let mn_url = format!("https://127.0.0.1:{}", p.mn.tls_addr.port());
    let ae = json!({"m2m:ae": {"rn": "ae1", "api": "Nfwd", "rr": false}}).to_string();
    let (rsc, _) = ae_request(
        &format!("{mn_url}/cse-mn"),
        "ae1@m2mtrust.example",
        "00112233445566778899aabbccddeeff",
        "C",
        "create",
        &["--ty", "2", "--content", &ae],
    );
    assert_eq!(rsc, 2001);
    p.in_cse.kill();
    let (rsc, body) = ae_request(
        &format!("{mn_url}/~/id-in/cse-in"),
        "ae1@m2mtrust.example",
        "00112233445566778899aabbccddeeff",
        "Cae1",
        "retrieve",
        &[],
    );
    assert_eq!(rsc, 5103, "{body}");
    let why = body["m2m:dbg"].as_str().unwrap_or_default();
    assert!(why.contains("/id-in"), "{why}");
}

/// The raw output of `m2mtrust request` for an AE over its PSK.
fn ae_request_raw(
    url: &str,
    psk_id: &str,
    key: &str,
    from: &str,
    op: &str,
    more: &[&str],
) -> String {
    let mut args = vec![
        "request",
        "--to",
        url,
        "--from",
        from,
        "--op",
        op,
        "--psk-id",
        psk_id,
        "--key-hex",
        key,
    ];
    args.extend(more);
    let (_, out, err) = m2mtrust(&args);
    format!("{out}{err}")
}

/// End-to-end security of primitives through a transit CSE (TS-0003 §8.4): an AE at the
/// MN-CSE protects its request for the IN-CSE with a pairwiseESPrimKey it shares with the
/// IN-CSE only; the MN-CSE forwards the outer NOTIFYs without being able to read them.
#[test]
fn an_esprim_protected_request_crosses_the_mn_cse() {
    let p = pair();
    let (psk_id, psk, ae) = (
        "ae1@m2mtrust.example",
        "00112233445566778899aabbccddeeff",
        "Cae1",
    );
    let mn_url = format!("https://127.0.0.1:{}", p.mn.tls_addr.port());
    add_psk(&p.mn_data, psk_id, psk, &["--ae-id", ae]);
    let content = json!({"m2m:ae": {"rn": "ae1", "api": "Ne2e", "rr": false}}).to_string();
    let out = ae_request_raw(
        &format!("{mn_url}/cse-mn"),
        psk_id,
        psk,
        "C",
        "create",
        &["--ty", "2", "--content", &content],
    );
    assert!(out.starts_with("2001"), "{out}");

    // The IN-CSE holds the pairwise key of /id-mn/Cae1 and lets it use a container.
    let kid = "e2e-ae1@in.m2mtrust.example";
    let e2e_key = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    let (code, out, err) = m2mtrust(&[
        "credential",
        "add-esprim",
        "--data",
        p.in_cse.data.to_str().unwrap(),
        "--kid",
        kid,
        "--key-hex",
        e2e_key,
        "--ae-id",
        "/id-mn/Cae1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let acp = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(1),
        Some(&json!({"m2m:acp": {
            "rn": "e2e-acp",
            "pv": {"acr": [{"acor": ["/id-mn/Cae1"], "acop": 3}]},
            "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]},
        }})),
    );
    assert_eq!(acp.rsc(), 2001, "{}", acp.body);
    let acp_ri = acp.json()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let cnt = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "secret", "acpi": [acp_ri]}})),
    );
    assert_eq!(cnt.rsc(), 2001, "{}", cnt.body);

    let target = format!("{mn_url}/~/id-in/cse-in/secret");
    // End to end, the AE names itself as the IN-CSE knows it: SP-relative.
    let me = "/id-mn/Cae1";
    let esprim = ["--esprim-kid", kid, "--esprim-key-hex", e2e_key];
    let cin = json!({"m2m:cin": {"rn": "v1", "con": "confidential 42"}}).to_string();
    let mut args = vec!["--ty", "4", "--content", &cin];
    args.extend_from_slice(&esprim);
    let out = ae_request_raw(&target, psk_id, psk, me, "create", &args);
    assert!(out.starts_with("2001"), "{out}");
    let stored = p
        .in_cse
        .call("GET", "/cse-in/secret/v1", Some("CAdmin"), None, None);
    assert_eq!(stored.rsc(), 2000, "{}", stored.body);
    assert_eq!(stored.json()["m2m:cin"]["con"], "confidential 42");
    assert_eq!(stored.json()["m2m:cin"]["cr"], "/id-mn/Cae1");
    let out = ae_request_raw(
        &format!("{target}/v1"),
        psk_id,
        psk,
        me,
        "retrieve",
        &esprim,
    );
    assert!(
        out.starts_with("2000") && out.contains("confidential 42"),
        "{out}"
    );

    // A key the IN-CSE does not share with Cae1: the IN-CSE refuses the object (4115) and
    // nothing is created; the MN-CSE only carried it.
    let wrong = ["--esprim-kid", kid, "--esprim-key-hex", &"5a".repeat(32)];
    let cin = json!({"m2m:cin": {"rn": "v2", "con": "forged"}}).to_string();
    let mut args = vec!["--ty", "4", "--content", &cin];
    args.extend_from_slice(&wrong);
    let out = ae_request_raw(&target, psk_id, psk, me, "create", &args);
    assert!(out.starts_with("4115"), "{out}");
    let absent = p
        .in_cse
        .call("GET", "/cse-in/secret/v2", Some("CAdmin"), None, None);
    assert_eq!(absent.rsc(), 4004, "{}", absent.body);
}

/// The MN-CSE carries ESPrim objects it cannot alter: one byte changed on the way fails the
/// IN-CSE's tag check (4115) and nothing is created; an AE using another AE's pairwise key
/// through the MN-CSE is refused as an impersonation (4116).
#[test]
fn esprim_objects_altered_in_transit_or_misused_are_refused() {
    use m2mtrust_client::{Client, ClientOptions, Credential};
    use m2mtrust_crypto::SecretKey;
    use m2mtrust_crypto::esdata::ContentEncryption;
    use m2mtrust_crypto::esprim::{
        EsPrimHeader, EsPrimObject, EsPrimProtocolAndAlgId, EsPrimRandId, EsPrimRandValue,
        OriginatorEsPrimRandObject, ReceiverEsPrimRandObject, SessionKey,
    };
    use m2mtrust_model::{Operation, Request, ResourceType};

    let p = pair();
    let mn_url = format!("https://127.0.0.1:{}", p.mn.tls_addr.port());
    let aes = [
        (
            "ae1@m2mtrust.example",
            "00112233445566778899aabbccddeeff",
            "Cae1",
        ),
        (
            "ae2@m2mtrust.example",
            "ffeeddccbbaa99887766554433221100",
            "Cae2",
        ),
    ];
    for (id, key, ae) in aes {
        add_psk(&p.mn_data, id, key, &["--ae-id", ae]);
        let content = json!({"m2m:ae": {"rn": ae.to_lowercase(), "api": "Ne2e", "rr": false}});
        let (rsc, body) = ae_request(
            &format!("{mn_url}/cse-mn"),
            id,
            key,
            "C",
            "create",
            &["--ty", "2", "--content", &content.to_string()],
        );
        assert_eq!(rsc, 2001, "{body}");
    }
    let kid = "e2e-ae1@in.m2mtrust.example";
    let e2e_key = [0xa5u8; 32];
    let hex: String = e2e_key.iter().map(|b| format!("{b:02x}")).collect();
    let (code, out, err) = m2mtrust(&[
        "credential",
        "add-esprim",
        "--data",
        p.in_cse.data.to_str().unwrap(),
        "--kid",
        kid,
        "--key-hex",
        &hex,
        "--ae-id",
        "/id-mn/Cae1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let acp = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(1),
        Some(&json!({"m2m:acp": {
            "rn": "e2e-acp",
            "pv": {"acr": [{"acor": ["/id-mn/Cae1", "/id-mn/Cae2"], "acop": 3}]},
            "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]},
        }})),
    );
    assert_eq!(acp.rsc(), 2001, "{}", acp.body);
    let acp_ri = acp.json()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let cnt = p.in_cse.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "box", "acpi": [acp_ri]}})),
    );
    assert_eq!(cnt.rsc(), 2001, "{}", cnt.body);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client_for = |(id, key, _): (&str, &str, &str)| {
        let options = ClientOptions::new(Credential::Psk {
            kpsa_id: m2mtrust_channel::KpsaId::parse(id).unwrap(),
            key: m2mtrust_channel::PskKey::from_hex(key).unwrap(),
        });
        Client::new(&mn_url, options).unwrap()
    };
    let notify = |from: &str, seci: serde_json::Value| {
        let mut r = Request::new(Operation::Notify, "/id-in/cse-in", Some(from.into()));
        r.request_id = m2mtrust_client::request_id();
        r.content = Some(json!({ "m2m:seci": seci }));
        r
    };
    // An ESPrim object for `inner`, in a fresh session through the MN-CSE.
    let object = |client: &Client, from: &str, inner: &Request| -> String {
        let resp = rt
            .block_on(client.send(&notify(from, json!({"sit": 3}))))
            .unwrap();
        assert_eq!(resp.status.0, 2000, "{:?}", resp.content);
        let ero = &resp.content.unwrap()["m2m:seci"]["ero"];
        let receiver = ReceiverEsPrimRandObject::from_json(ero, chrono::Utc::now()).unwrap();
        let originator = OriginatorEsPrimRandObject::for_receiver(
            &receiver,
            EsPrimRandId::generate(false).unwrap(),
            EsPrimRandValue::generate().unwrap(),
            receiver.expiry,
            vec![EsPrimProtocolAndAlgId::JWE_A256GCM],
            chrono::Utc::now(),
        )
        .unwrap();
        let key =
            SessionKey::derive(&SecretKey::from_slice(&e2e_key), &receiver, &originator).unwrap();
        let mut h = EsPrimHeader::new(
            ContentEncryption::A256Gcm,
            kid,
            originator.id.clone(),
            receiver.id.clone(),
        );
        h.oro = Some(originator);
        let bytes = serde_json::to_vec(&inner.to_primitive_json()).unwrap();
        EsPrimObject::protect(&bytes, &key, &h).unwrap()
    };
    let create = |from: &str, rn: &str| {
        let mut r = Request::new(Operation::Create, "/id-in/cse-in/box", Some(from.into()));
        r.request_id = m2mtrust_client::request_id();
        r.resource_type = Some(ResourceType(4));
        r.content = Some(json!({"m2m:cin": {"rn": rn, "con": "x"}}));
        r
    };

    // One byte of the ciphertext changed between the AE and the IN-CSE.
    let c1 = client_for(aes[0]);
    let epo = object(&c1, "/id-mn/Cae1", &create("/id-mn/Cae1", "altered"));
    let mut parts: Vec<String> = epo.split('.').map(str::to_string).collect();
    let mut ct = parts[3].clone().into_bytes();
    ct[4] = if ct[4] == b'A' { b'B' } else { b'A' };
    parts[3] = String::from_utf8(ct).unwrap();
    let resp = rt
        .block_on(c1.send(&notify(
            "/id-mn/Cae1",
            json!({"sit": 5, "epo": parts.join(".")}),
        )))
        .unwrap();
    assert_eq!(resp.status.0, 4115, "{:?}", resp.content);
    let absent = p
        .in_cse
        .call("GET", "/cse-in/box/altered", Some("CAdmin"), None, None);
    assert_eq!(absent.rsc(), 4004, "{}", absent.body);
    // The unaltered object works.
    let resp = rt
        .block_on(c1.send(&notify("/id-mn/Cae1", json!({"sit": 5, "epo": epo}))))
        .unwrap();
    assert_eq!(resp.status.0, 2000, "{:?}", resp.content);
    let present = p
        .in_cse
        .call("GET", "/cse-in/box/altered", Some("CAdmin"), None, None);
    assert_eq!(present.rsc(), 2000, "{}", present.body);

    // Cae2 got hold of Cae1's key and uses it as itself: the inner From is not the key's
    // identity.
    let c2 = client_for(aes[1]);
    let epo = object(&c2, "/id-mn/Cae2", &create("/id-mn/Cae2", "stolen"));
    let resp = rt
        .block_on(c2.send(&notify("/id-mn/Cae2", json!({"sit": 5, "epo": epo}))))
        .unwrap();
    assert_eq!(resp.status.0, 4116, "{:?}", resp.content);
    let absent = p
        .in_cse
        .call("GET", "/cse-in/box/stolen", Some("CAdmin"), None, None);
    assert_eq!(absent.rsc(), 4004, "{}", absent.body);
}
