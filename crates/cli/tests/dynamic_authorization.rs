//! `<dynamicAuthorizationConsultation>` resources (TS-0001 §9.6.40, TS-0003 §7.3.2.2) and the
//! `dynamicAuthorizationConsultationIDs` common attribute: stored, validated, and refused
//! when malformed, with nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, register};
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
