//! Access control through the running CSE (TS-0003 §7.1): ACPs grant, contexts restrict,
//! `acpi` changes need the old ACPs' selfPrivileges, discovery drops what may not be discovered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, register};
use serde_json::{Value, json};

fn acp(s: &Server, owner: &str, parent: &str, rn: &str, pv: Value, pvs: Value) -> String {
    let r = s.call(
        "POST",
        parent,
        Some(owner),
        Some(1),
        Some(&json!({"m2m:acp": {"rn": rn, "pv": {"acr": pv}, "pvs": {"acr": pvs}}})),
    );
    assert_eq!(r.rsc(), 2001, "create ACP {rn}: {}", r.body);
    r.json()["m2m:acp"]["ri"].as_str().unwrap().to_string()
}

fn setup(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), extra);
    register(&s, "Calice", "alice");
    register(&s, "Cbob", "bob");
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/alice",
            Some("Calice"),
            Some(3),
            Some(&json!({"m2m:cnt": {"rn": "c"}}))
        )
        .rsc(),
        2001
    );
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/alice/c",
            Some("Calice"),
            Some(4),
            Some(&json!({"m2m:cin": {"con": "21"}}))
        )
        .rsc(),
        2001
    );
    (dir, s)
}

fn bob_reads(s: &Server) -> u16 {
    s.call("GET", "/cse-in/alice/c", Some("Cbob"), None, None)
        .rsc()
}

#[test]
fn a_second_ae_is_denied_until_an_acp_grants_it() {
    let (_dir, s) = setup(&[]);
    assert_eq!(bob_reads(&s), 4103);
    let acp1 = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "acp1",
        json!([{"acor": ["Calice"], "acop": 63}, {"acor": ["Cbob"], "acop": 2}]),
        json!([{"acor": ["Calice"], "acop": 63}]),
    );
    // Still denied: the container does not link the ACP yet.
    assert_eq!(bob_reads(&s), 4103);
    let r = s.call(
        "PUT",
        "/cse-in/alice/c",
        Some("Calice"),
        None,
        Some(&json!({"m2m:cnt": {"acpi": [acp1]}})),
    );
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    assert_eq!(bob_reads(&s), 2000);
    // contentInstances without acpi follow their container's policy.
    assert_eq!(
        s.call("GET", "/cse-in/alice/c/la", Some("Cbob"), None, None)
            .json()["m2m:cin"]["con"],
        "21"
    );
    // RETRIEVE only: creating, updating and deleting stay refused, and nothing changes.
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/alice/c",
            Some("Cbob"),
            Some(4),
            Some(&json!({"m2m:cin": {"con": "x"}}))
        )
        .rsc(),
        4103
    );
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some("Cbob"),
            None,
            Some(&json!({"m2m:cnt": {"mni": 1}}))
        )
        .rsc(),
        4103
    );
    assert_eq!(
        s.call("DELETE", "/cse-in/alice/c", Some("Cbob"), None, None)
            .rsc(),
        4103
    );
    // Discovery needs its own bit (32): the container is left out, not refused.
    let d = s.call("GET", "/cse-in/alice?fu=1&ty=3", Some("Cbob"), None, None);
    assert_eq!(
        (d.rsc(), d.json()["m2m:uril"].clone()),
        (2000, json!([])),
        "{}",
        d.body
    );
    // The ACP's creator changes it (selfPrivileges); the new rules apply at once.
    let r = s.call("PUT", &format!("/{acp1}"), Some("Calice"), None, Some(&json!({"m2m:acp": {"pv": {"acr": [{"acor": ["Calice"], "acop": 63}, {"acor": ["Cbob"], "acop": 34}]}}})));
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    let d = s.call("GET", "/cse-in/alice?fu=1&ty=3", Some("Cbob"), None, None);
    assert_eq!(
        d.json()["m2m:uril"],
        json!(["cse-in/alice/c"]),
        "{}",
        d.body
    );
    // Bob may not touch the ACP: its selfPrivileges name Alice only.
    assert_eq!(
        s.call("GET", &format!("/{acp1}"), Some("Cbob"), None, None)
            .rsc(),
        4103
    );
    let r = s.call(
        "PUT",
        &format!("/{acp1}"),
        Some("Cbob"),
        None,
        Some(&json!({"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 63}]}}})),
    );
    assert_eq!(r.rsc(), 4103);
    // Revoking works the same way.
    let r = s.call(
        "PUT",
        &format!("/{acp1}"),
        Some("Calice"),
        None,
        Some(&json!({"m2m:acp": {"pv": {"acr": [{"acor": ["Calice"], "acop": 63}]}}})),
    );
    assert_eq!(r.rsc(), 2004);
    assert_eq!(bob_reads(&s), 4103);
    // A malformed ACP is refused with a message naming the element.
    let r = s.call("POST", "/cse-in/alice", Some("Calice"), Some(1), Some(&json!({"m2m:acp": {"pv": {"acr": [{"acor": ["Cbob"], "acop": 64}]}, "pvs": {"acr": [{"acor": ["Calice"], "acop": 63}]}}})));
    assert_eq!(r.rsc(), 4000);
    assert!(r.dbg().contains("pv.acr[0].acop"), "{}", r.dbg());
}

#[test]
fn acpi_changes_need_the_old_acps_self_privileges() {
    let (_dir, s) = setup(&[]);
    let own = json!([{"acor": ["Calice"], "acop": 63}]);
    let acp_alice = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "mine",
        own.clone(),
        own.clone(),
    );
    // selfPrivileges of this one name Bob only.
    let acp_bob = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "bobs",
        own.clone(),
        json!([{"acor": ["Cbob"], "acop": 63}]),
    );
    let set = |who: &str, to: &str| {
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some(who),
            None,
            Some(&json!({"m2m:cnt": {"acpi": [to]}})),
        )
        .rsc()
    };
    // No acpi yet: the creator decides.
    assert_eq!(set("Cbob", &acp_bob), 4103);
    assert_eq!(set("Calice", &acp_bob), 2004);
    // Now the governing ACP's selfPrivileges name Bob: Alice cannot switch back, Bob can.
    assert_eq!(set("Calice", &acp_alice), 4103);
    let c = s
        .call("GET", "/cse-in/alice/c", Some("Calice"), None, None)
        .json();
    assert_eq!(
        c["m2m:cnt"]["acpi"],
        json!([acp_bob]),
        "the refused update changed nothing"
    );
    assert_eq!(set("Cbob", &acp_alice), 2004);
    assert_eq!(
        set("Cbob", &acp_bob),
        4103,
        "mine's selfPrivileges name Alice only"
    );
    // An acpi naming something that is not an ACP is refused.
    assert_eq!(set("Calice", "nothing"), 4000);
}

#[test]
fn time_ip_and_location_contexts_change_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m2mtrust.toml");
    std::fs::write(
        &config,
        "[access]\ntime_zone = \"Europe/Paris\"\n[access.locations.Cbob]\nlatitude = 48.8566\nlongitude = 2.3522\ncountry = \"FR\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (_d, s) = {
        let s = Server::start(&data, &["--config", config.to_str().unwrap()]);
        register(&s, "Calice", "alice");
        register(&s, "Cbob", "bob");
        register(&s, "Ccarl", "carl");
        assert_eq!(
            s.call(
                "POST",
                "/cse-in/alice",
                Some("Calice"),
                Some(3),
                Some(&json!({"m2m:cnt": {"rn": "c"}}))
            )
            .rsc(),
            2001
        );
        ((), s)
    };
    let own = json!([{"acor": ["Calice"], "acop": 63}]);
    let acp_ri = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "ctx",
        own.clone(),
        own.clone(),
    );
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some("Calice"),
            None,
            Some(&json!({"m2m:cnt": {"acpi": [acp_ri]}}))
        )
        .rsc(),
        2004
    );
    let grant = |ctx: Value| {
        let pv = json!({"acr": [{"acor": ["Calice"], "acop": 63}, {"acor": ["Cbob", "Ccarl"], "acop": 2, "acco": [ctx]}]});
        let r = s.call(
            "PUT",
            &format!("/{acp_ri}"),
            Some("Calice"),
            None,
            Some(&json!({"m2m:acp": {"pv": pv}})),
        );
        assert_eq!(r.rsc(), 2004, "{}", r.body);
    };
    let reads = |who: &str| {
        s.call("GET", "/cse-in/alice/c", Some(who), None, None)
            .rsc()
    };

    // Time windows (TS-0004 §7.3.8 crontab with seconds): 31 February never comes.
    grant(json!({"actw": ["0 0 0 31 2 *"]}));
    assert_eq!(reads("Cbob"), 4103);
    grant(json!({"actw": ["* * * * * *"]}));
    assert_eq!(reads("Cbob"), 2000);

    // IP address of the connection: the test client is on 127.0.0.1.
    grant(json!({"acip": {"ipv4": ["10.0.0.0/8"]}}));
    assert_eq!(reads("Cbob"), 4103);
    grant(json!({"acip": {"ipv4": ["127.0.0.0/8"]}}));
    assert_eq!(reads("Cbob"), 2000);
    grant(json!({"acip": {"ipv6": ["::1/128"]}}));
    assert_eq!(
        reads("Cbob"),
        4103,
        "an IPv4 peer does not match an IPv6 range"
    );

    // Location (Annex F): Bob is configured in Paris, Carl has no known location.
    grant(json!({"aclr": {"accc": ["DE"]}}));
    assert_eq!(reads("Cbob"), 4103);
    grant(json!({"aclr": {"accc": ["FR"]}}));
    assert_eq!(reads("Cbob"), 2000);
    assert_eq!(reads("Ccarl"), 4103, "no rq_loc: the rule fails");
    grant(json!({"aclr": {"accr": [[48.86, 2.35, 5000]]}}));
    assert_eq!(reads("Cbob"), 2000);
    grant(json!({"aclr": {"accr": [[52.52, 13.40, 50000]]}}));
    assert_eq!(reads("Cbob"), 4103);
}

#[test]
fn admin_bypass_can_be_turned_off() {
    let (_dir, s) = setup(&[]);
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("CAdmin"), None, None)
            .rsc(),
        2000
    );
    drop(s);
    let (_dir, s) = setup(&["--no-admin-bypass"]);
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("CAdmin"), None, None)
            .rsc(),
        4103
    );
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("Calice"), None, None)
            .rsc(),
        2000
    );
}

#[test]
fn attribute_level_rules_return_and_update_only_their_attributes() {
    let (_dir, s) = setup(&[]);
    let pv = json!([{"acor": ["Calice"], "acop": 63}, {"acor": ["Cbob"], "acop": 6, "aca": ["lbl", "mni"]}]);
    let acp_ri = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "attrs",
        pv,
        json!([{"acor": ["Calice"], "acop": 63}]),
    );
    let r = s.call(
        "PUT",
        "/cse-in/alice/c",
        Some("Calice"),
        None,
        Some(&json!({"m2m:cnt": {"acpi": [acp_ri], "lbl": ["x"]}})),
    );
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    let r = s.call("GET", "/cse-in/alice/c", Some("Cbob"), None, None);
    assert_eq!(r.rsc(), 2000, "{}", r.body);
    let body = r.json();
    let keys: Vec<&String> = body["m2m:cnt"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec!["lbl"],
        "only granted attributes are returned: {}",
        r.body
    );
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some("Cbob"),
            None,
            Some(&json!({"m2m:cnt": {"mni": 3}}))
        )
        .rsc(),
        2004
    );
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some("Cbob"),
            None,
            Some(&json!({"m2m:cnt": {"mbs": 3}}))
        )
        .rsc(),
        4103
    );
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("Calice"), None, None)
            .json()["m2m:cnt"]["mni"],
        3
    );
}

#[test]
fn the_custodian_acts_as_the_creator() {
    let (_dir, s) = setup(&[]);
    let r = s.call(
        "POST",
        "/cse-in/alice",
        Some("Calice"),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "kept", "cstn": "Cbob"}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert_eq!(
        s.call("GET", "/cse-in/alice/kept", Some("Cbob"), None, None)
            .rsc(),
        2000
    );
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("Cbob"), None, None)
            .rsc(),
        4103,
        "custody covers the one resource"
    );
    // Handing custody on takes it away.
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/kept",
            Some("Cbob"),
            None,
            Some(&json!({"m2m:cnt": {"cstn": "Ccarl"}}))
        )
        .rsc(),
        2004
    );
    assert_eq!(
        s.call("GET", "/cse-in/alice/kept", Some("Cbob"), None, None)
            .rsc(),
        4103
    );
}

#[test]
fn a_group_of_aes_in_acor_grants_its_members() {
    let (_dir, s) = setup(&[]);
    register(&s, "Ccarl", "carl");
    // A group of AEs (by their resource IDs), nested in another group.
    let r = s.call(
        "POST",
        "/cse-in/alice",
        Some("Calice"),
        Some(9),
        Some(&json!({"m2m:grp": {"rn": "readers", "mt": 2, "mnm": 10, "mid": ["Cbob"]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let inner = r.json()["m2m:grp"]["ri"].as_str().unwrap().to_string();
    let r = s.call(
        "POST",
        "/cse-in/alice",
        Some("Calice"),
        Some(9),
        Some(&json!({"m2m:grp": {"rn": "all-readers", "mnm": 10, "mid": [inner]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let outer = r.json()["m2m:grp"]["ri"].as_str().unwrap().to_string();
    let acp_ri = acp(
        &s,
        "Calice",
        "/cse-in/alice",
        "grp-acp",
        json!([{"acor": ["Calice"], "acop": 63}, {"acor": [outer], "acop": 2}]),
        json!([{"acor": ["Calice"], "acop": 63}]),
    );
    assert_eq!(
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some("Calice"),
            None,
            Some(&json!({"m2m:cnt": {"acpi": [acp_ri]}}))
        )
        .rsc(),
        2004
    );
    assert_eq!(bob_reads(&s), 2000, "member of a nested group");
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("Ccarl"), None, None)
            .rsc(),
        4103,
        "not a member"
    );
    // Membership changes apply at once.
    let r = s.call(
        "PUT",
        &format!("/{inner}"),
        Some("Calice"),
        None,
        Some(&json!({"m2m:grp": {"mid": ["Ccarl"]}})),
    );
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    assert_eq!(bob_reads(&s), 4103);
    assert_eq!(
        s.call("GET", "/cse-in/alice/c", Some("Ccarl"), None, None)
            .rsc(),
        2000
    );
}
