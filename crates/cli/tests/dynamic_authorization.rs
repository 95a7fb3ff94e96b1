//! `<dynamicAuthorizationConsultation>` resources (TS-0001 §9.6.40, TS-0003 §7.3.2.2) and the
//! `dynamicAuthorizationConsultationIDs` common attribute: stored, validated, and refused
//! when malformed, with nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, ae_cert, register};
use serde_json::json;

#[test]
fn consultations_are_created_validated_and_linked() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let ae = register(&s, "Cdac", "dacapp");
    let dac = json!({"m2m:dac": {
        "rn": "consult", "dae": true, "dap": ["https://das.m2mtrust.example:8446/das"], "dal": 3600
    }});
    let r = s.call("POST", "/cse-in/dacapp", Some(&ae), Some(34), Some(&dac));
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let created = r.json();
    assert_eq!(created["m2m:dac"]["dae"], json!(true));
    assert_eq!(created["m2m:dac"]["dal"], json!(3600));
    let dac_ri = created["m2m:dac"]["ri"].as_str().unwrap().to_string();
    // A container names it in daci.
    let cnt = json!({"m2m:cnt": {"rn": "data", "daci": [dac_ri]}});
    let r = s.call("POST", "/cse-in/dacapp", Some(&ae), Some(3), Some(&cnt));
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert_eq!(r.json()["m2m:cnt"]["daci"], json!([dac_ri]));
    // Updates of dae and dap.
    let r = s.call(
        "PUT",
        "/cse-in/dacapp/consult",
        Some(&ae),
        None,
        Some(&json!({"m2m:dac": {"dae": false}})),
    );
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    assert_eq!(r.json()["m2m:dac"]["dae"], json!(false));

    // Refusals, each storing nothing.
    for (what, body) in [
        ("no dap", json!({"m2m:dac": {"rn": "x1", "dae": true}})),
        (
            "no dae",
            json!({"m2m:dac": {"rn": "x2", "dap": ["https://das"]}}),
        ),
        (
            "dae not a boolean",
            json!({"m2m:dac": {"rn": "x3", "dae": "yes", "dap": ["https://das"]}}),
        ),
        (
            "dap not a list",
            json!({"m2m:dac": {"rn": "x4", "dae": true, "dap": "https://das"}}),
        ),
        (
            "unknown attribute",
            json!({"m2m:dac": {"rn": "x5", "dae": true, "dap": ["https://das"], "zz": 1}}),
        ),
    ] {
        let r = s.call("POST", "/cse-in/dacapp", Some(&ae), Some(34), Some(&body));
        assert_eq!(r.rsc(), 4000, "{what}: {}", r.body);
    }
    for rn in ["x1", "x2", "x3", "x4", "x5"] {
        let r = s.call(
            "GET",
            &format!("/cse-in/dacapp/{rn}"),
            Some(&ae),
            None,
            None,
        );
        assert_eq!(r.rsc(), 4004, "{rn} was stored: {}", r.body);
    }
    // Not under a container.
    let r = s.call(
        "POST",
        "/cse-in/dacapp/data",
        Some(&ae),
        Some(34),
        Some(&json!({"m2m:dac": {"dae": true, "dap": ["https://das"]}})),
    );
    assert_eq!(r.rsc(), 4108, "{}", r.body);
}

/// `m2mtrust request` to `url` as `from` over its certificate; (exit code, stdout+stderr).
fn send(
    s: &Server,
    cert: &(String, String),
    from: &str,
    op: &str,
    url: &str,
    extra: &[&str],
) -> (i32, String) {
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
    let (code, out, err) = common::m2mtrust(&args);
    (code, format!("{out}{err}"))
}

fn cse_url(s: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}/cse-in{path}", s.tls_addr.port())
}

fn das_url(s: &Server) -> String {
    format!(
        "https://127.0.0.1:{}/das",
        s.das_addr.expect("a DAS").port()
    )
}

/// The JSON body `m2mtrust request` printed after its status line(s).
fn body(out: &str) -> serde_json::Value {
    let start = out.find('{').expect("a JSON body");
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn das(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["das"];
    all.extend_from_slice(&args[..2]);
    all.extend_from_slice(&["--data", s.data.to_str().unwrap()]);
    all.extend_from_slice(&args[2..]);
    let (code, out, err) = common::m2mtrust(&all);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

const READER: &str = "//m2mtrust.example/id-in/Creader";

/// The reader AE registered over its certificate, and a container only the admin may use,
/// linked to a consultation of the DAS of `up`.
fn setup(s: &Server, dir: &std::path::Path) -> (String, String) {
    let reader = ae_cert(&s.data, dir, "Creader");
    let ae = r#"{"m2m:ae": {"rn": "reader", "api": "Nreader", "rr": false, "srv": ["3"]}}"#;
    let (code, out) = send(
        s,
        &reader,
        "Creader",
        "create",
        &cse_url(s, ""),
        &["--ty", "2", "--content", ae],
    );
    assert_eq!(code, 0, "{out}");
    let admin_only = json!({"acr": [{"acor": ["CAdmin"], "acop": 63}]});
    let r = s.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(1),
        Some(&json!({"m2m:acp": {"rn": "adminOnly", "pv": admin_only, "pvs": admin_only}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let acp = r.json()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let r = s.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(34),
        Some(&json!({"m2m:dac": {"rn": "ask", "dae": true, "dap": [das_url(s)]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let dac = r.json()["m2m:dac"]["ri"].as_str().unwrap().to_string();
    let r = s.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "data", "acpi": [acp], "daci": [dac]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    reader
}

#[test]
fn direct_dynamic_authorization_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let reader = setup(&s, dir.path());
    let data = cse_url(&s, "/data");

    // The DAS has no policy for the reader: refused.
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &data, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("4103"), "{out}");

    // The operator lets the reader RETRIEVE it for 3 s, as dynamic ACP information.
    let policy = das(
        &s,
        &[
            "policy",
            "add",
            "--originator",
            READER,
            "--target",
            "/id-in/cse-in/data",
            "--operations",
            "2",
            "--lifetime-secs",
            "3",
            "--grant",
            "acp",
        ],
    );
    let policy_id = policy.split_whitespace().last().unwrap().to_string();
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &data, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2000"), "{out}");
    // RETRIEVE only.
    let (code, out) = send(&s, &reader, "Creader", "delete", &data, &[]);
    assert!(code == 1 && out.starts_with("4103"), "{out}");

    // Withdrawn at the DAS: the dynamic ACP still holds until it expires, then refused again.
    das(&s, &["policy", "remove", "--id", &policy_id]);
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &data, &[]);
    assert_eq!(code, 0, "cached dynamic ACP: {out}");
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &data, &[]);
    assert!(code == 1 && out.starts_with("4103"), "{out}");

    // A token from the DAS works the same way, and is reused while valid.
    das(
        &s,
        &[
            "policy",
            "add",
            "--originator",
            READER,
            "--target",
            "/id-in/cse-in/*",
            "--operations",
            "2",
            "--grant",
            "token",
        ],
    );
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &data, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn indirect_dynamic_authorization_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let reader = setup(&s, dir.path());
    let data = cse_url(&s, "/data");
    das(
        &s,
        &[
            "policy",
            "add",
            "--originator",
            READER,
            "--target",
            "/id-in/cse-in/data",
            "--operations",
            "2",
            "--grant",
            "token",
        ],
    );

    // Prepared to request tokens: the refusal names the DAS and the request to send it.
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--token-request"],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Token-Request-Info: "))
        .unwrap_or_else(|| panic!("no tqf: {out}"));
    let tqf: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(tqf["dasi"][0]["uri"], json!(das_url(&s)));
    let dreq = tqf["dasi"][0]["dreq"].clone();
    assert_eq!(dreq["or"], json!(READER));

    // The reader asks the DAS itself, over its own certificate.
    let ask = json!({"m2m:seci": {"sit": 1, "dreq": dreq}}).to_string();
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "notify",
        &das_url(&s),
        &["--content", &ask],
    );
    assert_eq!(code, 0, "{out}");
    let answer = body(&out);
    assert_eq!(answer["m2m:seci"]["sit"], json!(2), "{out}");
    let jwt = answer["m2m:seci"]["dres"]["tkns"][0]
        .as_str()
        .unwrap()
        .to_string();

    // The token: permitted, and a Local-Token-ID comes back.
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--token", &jwt],
    );
    assert_eq!(code, 0, "{out}");
    let lti = out
        .lines()
        .find_map(|l| l.strip_prefix("Local-Token-ID: "))
        .and_then(|l| l.split(" = ").next())
        .unwrap_or_else(|| panic!("no Local-Token-ID: {out}"))
        .to_string();
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--local-token-id", &lti],
    );
    assert_eq!(code, 0, "{out}");

    // Its Token-ID: the CSE fetches it from the DAS.
    let claims = {
        use base64::Engine;
        let payload = jwt.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let jti = claims["jti"].as_str().unwrap().to_string();
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--token-id", &jti],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Local-Token-ID: "), "{out}");
    // A Token-ID the DAS never issued fails the request.
    let unknown = format!("nothing@{}", jti.rsplit_once('@').unwrap().1);
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--token-id", &unknown],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
    // One bad token beside the good one fails it too.
    let mut tampered = jwt.clone();
    tampered.pop();
    tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &data,
        &["--token", &jwt, "--token", &tampered],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
}

#[test]
fn roles_from_the_role_authority_grant_and_revoke_access() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let reader = setup(&s, dir.path());
    let role_id = "reader@das.m2mtrust.example";
    let by_role = json!({"acr": [
        {"acor": ["CAdmin"], "acop": 63},
        {"acor": [role_id], "acop": 2}
    ]});
    let r = s.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(1),
        Some(&json!({"m2m:acp": {"rn": "byRole", "pv": by_role, "pvs": by_role}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let acp = r.json()["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let r = s.call(
        "POST",
        "/cse-in",
        Some("CAdmin"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "roled", "acpi": [acp]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let roled = cse_url(&s, "/roled");
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &roled,
        &["--role-id", role_id],
    );
    assert!(code == 1 && out.starts_with("4103"), "no role yet: {out}");

    // The Role Authority assigns the role (a <role> in the CSE's Role Repository).
    let cse = format!("https://127.0.0.1:{}", s.tls_addr.port());
    let assigned = das(
        &s,
        &[
            "role",
            "assign",
            "--cse",
            &cse,
            "--holder",
            READER,
            "--role",
            "reader",
            "--valid-secs",
            "60",
        ],
    );
    assert!(assigned.contains(role_id), "{assigned}");
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &roled,
        &["--role-id", role_id],
    );
    assert_eq!(code, 0, "{out}");
    // Only when named, and only for its holder's operations.
    let (code, out) = send(&s, &reader, "Creader", "retrieve", &roled, &[]);
    assert!(code == 1 && out.starts_with("4103"), "{out}");
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "delete",
        &roled,
        &["--role-id", role_id],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
    // An AE cannot assign itself a role.
    let now = chrono::Utc::now();
    let own = json!({"m2m:rol": {
        "rlid": "admin@das.m2mtrust.example", "tkis": "das.m2mtrust.example", "tkhd": READER,
        "tknb": now.format("%Y%m%dT%H%M%S").to_string(),
        "tkna": (now + chrono::Duration::hours(1)).format("%Y%m%dT%H%M%S").to_string()
    }})
    .to_string();
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "create",
        &cse_url(&s, ""),
        &["--ty", "31", "--content", &own],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");

    // Revoked: refused again.
    das(
        &s,
        &[
            "role", "revoke", "--cse", &cse, "--holder", READER, "--role", "reader",
        ],
    );
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &roled,
        &["--role-id", role_id],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
    // Assigned with a token in the Token Repository: its Token-ID alone carries the role.
    let assigned = das(
        &s,
        &[
            "role",
            "assign",
            "--cse",
            &cse,
            "--holder",
            READER,
            "--role",
            "reader",
            "--valid-secs",
            "60",
            "--with-token",
        ],
    );
    let token_id = assigned
        .lines()
        .find_map(|l| l.strip_prefix("token "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token: {assigned}"))
        .to_string();
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &roled,
        &["--token-id", &token_id],
    );
    assert_eq!(code, 0, "{out}");
    let r = s.call(
        "GET",
        "/cse-in/role_reader_m2mtrust_example_id-in_Creader",
        Some("CAdmin"),
        None,
        None,
    );
    assert_eq!(r.rsc(), 2000, "{}", r.body);
    assert_eq!(
        r.json()["m2m:rol"]["rltl"],
        json!("cse-in/token_reader_m2mtrust_example_id-in_Creader")
    );
    das(
        &s,
        &[
            "role", "revoke", "--cse", &cse, "--holder", READER, "--role", "reader",
        ],
    );
    let (code, out) = send(
        &s,
        &reader,
        "Creader",
        "retrieve",
        &roled,
        &["--token-id", &token_id],
    );
    assert!(code == 1 && out.starts_with("4103"), "{out}");
}
