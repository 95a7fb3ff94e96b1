//! The CSE over real HTTP on loopback: the flows a oneM2M client runs, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, call, receiver, register};
use serde_json::json;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    (dir, s)
}

#[test]
fn scripted_client_flow() {
    let (_dir, s) = server();
    // CSEBase, as the admin.
    let cb = s.call("GET", "/cse-in", Some("CAdmin"), None, None);
    assert_eq!((cb.status, cb.rsc()), (200, 2000), "{}", cb.body);
    assert_eq!(cb.json()["m2m:cb"]["csi"], "/id-in");

    // AE registration with a CSE-assigned AE-ID.
    let r = s.call(
        "POST",
        "/cse-in",
        Some("C"),
        Some(2),
        Some(&json!({"m2m:ae": {"rn": "app", "api": "Nflow", "rr": true}})),
    );
    assert_eq!((r.status, r.rsc()), (201, 2001), "{}", r.body);
    let aei = r.json()["m2m:ae"]["aei"].as_str().unwrap().to_string();
    assert!(aei.starts_with('C') && aei.len() > 1);
    assert_eq!(r.header("Content-Location"), Some("/cse-in/app"));
    let ae = aei.as_str();

    let r = s.call(
        "POST",
        "/cse-in/app",
        Some(ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "data", "lbl": ["kind/temp"]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert_eq!(r.json()["m2m:cnt"]["cr"], ae);

    // Subscribe: the receiver gets the verification request, then notifications.
    let rx = receiver();
    let r = s.call(
        "POST",
        "/cse-in/app/data",
        Some(ae),
        Some(23),
        Some(&json!({"m2m:sub": {"rn": "sub", "nu": [rx.url], "enc": {"net": [3]}}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let vrq = rx
        .rx
        .recv_timeout(Duration::from_secs(5))
        .expect("verification request");
    assert_eq!(vrq["m2m:sgn"]["vrq"], true);
    assert_eq!(vrq["m2m:sgn"]["cr"], ae);

    for i in 0..100 {
        let r = s.call(
            "POST",
            "/cse-in/app/data",
            Some(ae),
            Some(4),
            Some(&json!({"m2m:cin": {"con": format!("v{i}"), "cnf": "text/plain:0"}})),
        );
        assert_eq!((r.status, r.rsc()), (201, 2001), "cin {i}: {}", r.body);
        assert_eq!(r.json()["m2m:cin"]["cs"], format!("v{i}").len());
    }
    let mut seen = 0;
    while let Ok(n) = rx.rx.recv_timeout(Duration::from_secs(5)) {
        assert_eq!(n["m2m:sgn"]["nev"]["net"], 3);
        assert!(
            n["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"]
                .as_str()
                .is_some_and(|c| c.starts_with('v')),
            "{n}"
        );
        seen += 1;
        if seen == 100 {
            break;
        }
    }
    assert_eq!(seen, 100, "one notification per contentInstance");

    let la = s.call("GET", "/cse-in/app/data/la", Some(ae), None, None);
    assert_eq!(la.rsc(), 2000, "{}", la.body);
    assert_eq!(la.json()["m2m:cin"]["con"], "v99");
    let ol = s.call("GET", "/cse-in/app/data/ol", Some(ae), None, None);
    assert_eq!(ol.json()["m2m:cin"]["con"], "v0");
    let cnt = s.call("GET", "/cse-in/app/data", Some(ae), None, None);
    assert_eq!(cnt.json()["m2m:cnt"]["cni"], 100);

    // Discovery by label, structured and unstructured.
    let d = s.call("GET", "/cse-in?fu=1&lbl=kind/temp", Some(ae), None, None);
    assert_eq!(d.rsc(), 2000, "{}", d.body);
    assert_eq!(d.json()["m2m:uril"], json!(["cse-in/app/data"]));
    let d = s.call("GET", "/cse-in?fu=1&ty=4&lim=5&drt=2", Some(ae), None, None);
    assert_eq!(d.json()["m2m:uril"].as_array().unwrap().len(), 5);
    assert!(d.json()["m2m:uril"][0].as_str().unwrap().starts_with("cin"));

    // Delete the AE; its subtree goes with it.
    let r = s.call("DELETE", "/cse-in/app", Some(ae), None, None);
    assert_eq!((r.status, r.rsc()), (200, 2002), "{}", r.body);
    let r = s.call("GET", "/cse-in/app/data", Some("CAdmin"), None, None);
    assert_eq!((r.status, r.rsc()), (404, 4004));
}

/// Number of contentInstances under the test container, as the admin sees it.
fn instances(s: &Server) -> usize {
    let d = s.call("GET", "/cse-in?fu=1&ty=4", Some("CAdmin"), None, None);
    d.json()["m2m:uril"].as_array().map_or(0, Vec::len)
}

#[test]
fn malformed_requests_get_the_right_code_and_change_nothing() {
    let (_dir, s) = server();
    let ae = register(&s, "Cbad", "bad");
    let r = s.call(
        "POST",
        "/cse-in/bad",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "c", "mbs": 10}})),
    );
    assert_eq!(r.rsc(), 2001);
    let before = instances(&s);
    let a = s.addr;
    let cases: Vec<(&str, u16, u16, common::Resp)> = vec![
        (
            "malformed JSON",
            4000,
            400,
            call(
                a,
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some("{\"m2m:cin\": {"),
                &[],
            ),
        ),
        (
            "unknown attribute",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x", "zzz": 1}})),
            ),
        ),
        (
            "ty does not match content",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(3),
                Some(&json!({"m2m:cin": {"con": "x"}})),
            ),
        ),
        (
            "wrong attribute type",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x", "lbl": "notalist"}})),
            ),
        ),
        (
            "read-only attribute",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x", "cs": 1}})),
            ),
        ),
        (
            "missing mandatory con",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"cnf": "a"}})),
            ),
        ),
        (
            "et in the past",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x", "et": "20000101T000000"}})),
            ),
        ),
        (
            "content larger than mbs",
            5207,
            406,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "0123456789abc"}})),
            ),
        ),
        (
            "oversized body",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x".repeat(2 << 20)}})),
            ),
        ),
        (
            "XML content",
            4015,
            415,
            call(
                a,
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                None,
                Some("<m2m:cin/>"),
                &[("Content-Type", "application/xml;ty=4")],
            ),
        ),
        ("missing X-M2M-RI", 4000, 400, raw_without_ri(a)),
        (
            "unsupported release",
            4001,
            501,
            call(
                a,
                "GET",
                "/cse-in/bad/c",
                Some(&ae),
                None,
                None,
                &[("X-M2M-RVI", "1")],
            ),
        ),
        (
            "cin under an AE",
            4108,
            403,
            s.call(
                "POST",
                "/cse-in/bad",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": "x"}})),
            ),
        ),
        (
            "unknown type",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(77),
                Some(&json!({"m2m:xyz": {}})),
            ),
        ),
        (
            "reserved name",
            4000,
            400,
            s.call(
                "POST",
                "/cse-in/bad/c",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"rn": "la", "con": "x"}})),
            ),
        ),
        (
            "update a cin",
            4005,
            405,
            s.call(
                "PUT",
                "/cse-in/bad/c/la",
                Some(&ae),
                None,
                Some(&json!({"m2m:cin": {"con": "y"}})),
            ),
        ),
        (
            "delete CSEBase",
            4005,
            405,
            s.call("DELETE", "/cse-in", Some("CAdmin"), None, None),
        ),
        (
            "duplicate name",
            4105,
            409,
            s.call(
                "POST",
                "/cse-in/bad",
                Some(&ae),
                Some(3),
                Some(&json!({"m2m:cnt": {"rn": "c"}})),
            ),
        ),
        (
            "no such resource",
            4004,
            404,
            s.call("GET", "/cse-in/bad/nothing", Some(&ae), None, None),
        ),
        (
            "bad query parameter",
            4000,
            400,
            s.call("GET", "/cse-in/bad?rcn=banana", Some(&ae), None, None),
        ),
        (
            "remote target",
            5103,
            404,
            s.call("GET", "/~/id-elsewhere/cse-x", Some(&ae), None, None),
        ),
    ];
    for (what, rsc, http, r) in cases {
        assert_eq!((r.rsc(), r.status), (rsc, http), "{what}: {}", r.body);
        assert!(!r.dbg().is_empty(), "{what}: m2m:dbg explains the error");
    }
    assert_eq!(instances(&s), before, "nothing was stored");
    let c = s.call("GET", "/cse-in/bad/c", Some(&ae), None, None).json();
    assert_eq!(c["m2m:cnt"]["cni"], 0);
    assert_eq!(c["m2m:cnt"]["rn"], "c");
}

fn raw_without_ri(addr: std::net::SocketAddr) -> common::Resp {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /cse-in HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-M2M-Origin: CAdmin\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().into(), v.trim().into()))
        .collect();
    common::Resp {
        status,
        headers,
        body: body.into(),
    }
}

#[test]
fn unauthorised_requests_are_refused_and_change_nothing() {
    let (_dir, s) = server();
    let alice = register(&s, "Calice", "alice");
    let bob = register(&s, "Cbob", "bob");
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/alice",
            Some(&alice),
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
            Some(&alice),
            Some(4),
            Some(&json!({"m2m:cin": {"con": "secret"}}))
        )
        .rsc(),
        2001
    );

    let denied = [
        s.call("GET", "/cse-in/alice/c", Some(&bob), None, None),
        s.call("GET", "/cse-in/alice/c/la", Some(&bob), None, None),
        s.call(
            "POST",
            "/cse-in/alice/c",
            Some(&bob),
            Some(4),
            Some(&json!({"m2m:cin": {"con": "forged"}})),
        ),
        s.call(
            "PUT",
            "/cse-in/alice/c",
            Some(&bob),
            None,
            Some(&json!({"m2m:cnt": {"mni": 1}})),
        ),
        s.call("DELETE", "/cse-in/alice", Some(&bob), None, None),
    ];
    for r in &denied {
        assert_eq!((r.rsc(), r.status), (4103, 403), "{}", r.body);
    }
    // Bob's discovery silently leaves out what he may not see.
    let d = s.call("GET", "/cse-in?fu=1", Some(&bob), None, None);
    assert_eq!(d.rsc(), 2000);
    assert!(
        d.json()["m2m:uril"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !u.as_str().unwrap().contains("alice")),
        "{}",
        d.body
    );

    // Unregistered originators and re-registration.
    let r = s.call("GET", "/cse-in/alice", Some("Cnobody"), None, None);
    assert_eq!((r.rsc(), r.status), (4106, 403), "{}", r.body);
    let r = s.call(
        "POST",
        "/cse-in",
        Some("Calice"),
        Some(2),
        Some(&json!({"m2m:ae": {"api": "Nx", "rr": false}})),
    );
    assert_eq!((r.rsc(), r.status), (4105, 409), "{}", r.body);
    let r = s.call(
        "POST",
        "/cse-in",
        Some("/id-mn"),
        Some(2),
        Some(&json!({"m2m:ae": {"api": "Nx", "rr": false}})),
    );
    assert_eq!(
        r.rsc(),
        4107,
        "a CSE-ID without a security association: {}",
        r.body
    );

    // Nothing changed.
    let c = s
        .call("GET", "/cse-in/alice/c", Some(&alice), None, None)
        .json();
    assert_eq!(c["m2m:cnt"]["cni"], 1);
    assert!(c["m2m:cnt"].get("mni").is_none());
    assert_eq!(
        s.call("GET", "/cse-in/alice/c/la", Some(&alice), None, None)
            .json()["m2m:cin"]["con"],
        "secret"
    );
}

#[test]
fn addressing_forms_reach_the_same_resource() {
    let (_dir, s) = server();
    let ae = register(&s, "Caddr", "addr");
    let r = s.call(
        "POST",
        "/cse-in/addr",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "c"}})),
    );
    let ri = r.json()["m2m:cnt"]["ri"].as_str().unwrap().to_string();
    for path in [
        "/cse-in/addr/c".to_string(),
        "/~/id-in/cse-in/addr/c".to_string(),
        "/_/m2mtrust.example/id-in/cse-in/addr/c".to_string(),
        format!("/{ri}"),
        format!("/~/id-in/{ri}"),
        format!("/_/m2mtrust.example/id-in/{ri}"),
    ] {
        let r = s.call("GET", &path, Some(&ae), None, None);
        assert_eq!(r.rsc(), 2000, "{path}: {}", r.body);
        assert_eq!(r.json()["m2m:cnt"]["ri"], ri.as_str(), "{path}");
    }
    // Originator forms: SP-relative and absolute AE-IDs are the same AE.
    for from in [
        format!("/id-in/{ae}"),
        format!("//m2mtrust.example/id-in/{ae}"),
    ] {
        assert_eq!(
            s.call("GET", "/cse-in/addr/c", Some(&from), None, None)
                .rsc(),
            2000,
            "{from}"
        );
    }
    // Unstructured create answers with an unstructured Content-Location.
    let r = s.call(
        "POST",
        &format!("/{ri}"),
        Some(&ae),
        Some(4),
        Some(&json!({"m2m:cin": {"con": "u"}})),
    );
    assert_eq!(r.rsc(), 2001);
    assert_eq!(
        r.header("Content-Location").unwrap(),
        format!("/{}", r.json()["m2m:cin"]["ri"].as_str().unwrap())
    );
    // Result content variants.
    let r = s.call("GET", "/cse-in/addr?rcn=4", Some(&ae), None, None);
    assert_eq!(
        r.json()["m2m:ae"]["m2m:cnt"][0]["m2m:cin"][0]["con"],
        "u",
        "{}",
        r.body
    );
    let r = s.call("GET", "/cse-in/addr?rcn=6", Some(&ae), None, None);
    assert_eq!(r.json()["m2m:rrl"]["rrf"][0]["nm"], "c", "{}", r.body);
}

#[test]
fn container_limits_are_enforced() {
    let (_dir, s) = server();
    let ae = register(&s, "Clim", "lim");
    s.call(
        "POST",
        "/cse-in/lim",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "n", "mni": 3}})),
    );
    for i in 0..5 {
        assert_eq!(
            s.call(
                "POST",
                "/cse-in/lim/n",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": format!("{i}")}}))
            )
            .rsc(),
            2001
        );
    }
    let c = s.call("GET", "/cse-in/lim/n", Some(&ae), None, None).json();
    assert_eq!(
        (c["m2m:cnt"]["cni"].as_u64(), c["m2m:cnt"]["cbs"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        s.call("GET", "/cse-in/lim/n/ol", Some(&ae), None, None)
            .json()["m2m:cin"]["con"],
        "2"
    );

    s.call(
        "POST",
        "/cse-in/lim",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "b", "mbs": 10}})),
    );
    for con in ["aaaa", "bbbb", "cccc"] {
        assert_eq!(
            s.call(
                "POST",
                "/cse-in/lim/b",
                Some(&ae),
                Some(4),
                Some(&json!({"m2m:cin": {"con": con}}))
            )
            .rsc(),
            2001
        );
    }
    let c = s.call("GET", "/cse-in/lim/b", Some(&ae), None, None).json();
    assert_eq!(
        (c["m2m:cnt"]["cni"].as_u64(), c["m2m:cnt"]["cbs"].as_u64()),
        (Some(2), Some(8))
    );

    // Lowering mni trims the oldest instances at once.
    let r = s.call(
        "PUT",
        "/cse-in/lim/n",
        Some(&ae),
        None,
        Some(&json!({"m2m:cnt": {"mni": 1}})),
    );
    assert_eq!(r.rsc(), 2004, "{}", r.body);
    assert_eq!(r.json()["m2m:cnt"]["cni"], 1);
    assert_eq!(
        s.call("GET", "/cse-in/lim/n/ol", Some(&ae), None, None)
            .json()["m2m:cin"]["con"],
        "4"
    );

    // maxInstanceAge: instances disappear after mia seconds.
    s.call(
        "POST",
        "/cse-in/lim",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "a", "mia": 1}})),
    );
    assert_eq!(
        s.call(
            "POST",
            "/cse-in/lim/a",
            Some(&ae),
            Some(4),
            Some(&json!({"m2m:cin": {"con": "old"}}))
        )
        .rsc(),
        2001
    );
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(
        s.call("GET", "/cse-in/lim/a/la", Some(&ae), None, None)
            .rsc(),
        4004
    );
    assert_eq!(
        s.call("GET", "/cse-in/lim/a", Some(&ae), None, None).json()["m2m:cnt"]["cni"],
        0,
        "the sweeper fixed the counters"
    );
}

#[test]
fn expiration_is_clamped_and_expired_resources_disappear() {
    let (_dir, s) = server();
    let ae = register(&s, "Cexp", "exp");
    let r = s.call(
        "POST",
        "/cse-in/exp",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "far", "et": "29991231T000000"}})),
    );
    let et = r.json()["m2m:cnt"]["et"].as_str().unwrap().to_string();
    assert!(
        et.as_str() < "2040",
        "et {et} is clamped to the configured maximum"
    );
    let soon = chrono_like_now_plus(2);
    let r = s.call(
        "POST",
        "/cse-in/exp",
        Some(&ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "soon", "et": soon}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert_eq!(
        s.call("GET", "/cse-in/exp/soon", Some(&ae), None, None)
            .rsc(),
        2000
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        s.call("GET", "/cse-in/exp/soon", Some(&ae), None, None)
            .rsc(),
        4004
    );
    let d = s.call("GET", "/cse-in?fu=1&ty=3", Some("CAdmin"), None, None);
    assert_eq!(d.json()["m2m:uril"], json!(["cse-in/exp/far"]));
}

fn chrono_like_now_plus(secs: u64) -> String {
    // The binary formats and parses; a UTC timestamp is all the test needs.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    let days = t / 86400;
    let (y, m, d) = civil_from_days(days as i64);
    let rem = t % 86400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[test]
fn group_fan_out_and_plain_cse_registration() {
    let (_dir, s) = server();
    let ae = register(&s, "Cgrp", "g");
    for rn in ["a", "b"] {
        s.call(
            "POST",
            "/cse-in/g",
            Some(&ae),
            Some(3),
            Some(&json!({"m2m:cnt": {"rn": rn}})),
        );
    }
    let r = s.call(
        "POST",
        "/cse-in/g",
        Some(&ae),
        Some(9),
        Some(&json!({"m2m:grp": {"rn": "grp", "mt": 3, "mnm": 5, "mid": ["cse-in/g/a", "cse-in/g/b", "cse-in/g/missing"]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert_eq!(
        r.json()["m2m:grp"]["cnm"],
        2,
        "the missing member is dropped"
    );
    let r = s.call(
        "POST",
        "/cse-in/g/grp/fopt",
        Some(&ae),
        Some(4),
        Some(&json!({"m2m:cin": {"con": "fan"}})),
    );
    assert_eq!(r.rsc(), 2000, "{}", r.body);
    let rsps = r.json()["m2m:agr"]["m2m:rsp"].as_array().unwrap().clone();
    assert_eq!(rsps.len(), 2);
    assert!(rsps.iter().all(|x| x["rsc"] == 2001), "{rsps:?}");
    assert_eq!(
        s.call("GET", "/cse-in/g/b/la", Some(&ae), None, None)
            .json()["m2m:cin"]["con"],
        "fan"
    );
    let r = s.call(
        "POST",
        "/cse-in/g",
        Some(&ae),
        Some(9),
        Some(&json!({"m2m:grp": {"mnm": 1, "mid": ["cse-in/g/a", "cse-in/g/b"]}})),
    );
    assert_eq!(r.rsc(), 6010, "{}", r.body);
    let r = s.call(
        "POST",
        "/cse-in/g",
        Some(&ae),
        Some(9),
        Some(&json!({"m2m:grp": {"mnm": 5, "mt": 4, "csy": 2, "mid": ["cse-in/g/a"]}})),
    );
    assert_eq!(r.rsc(), 4110, "{}", r.body);

    // A CSE registering over plain HTTP has no security association (Mcc needs one): 4107.
    let csr = json!({"m2m:csr": {"csi": "/id-mn", "cb": "//m2mtrust.example/id-mn/cse-mn", "rr": true, "cst": 2, "srv": ["3"]}});
    let r = s.call("POST", "/cse-in", Some("/id-mn"), Some(16), Some(&csr));
    assert_eq!((r.rsc(), r.status), (4107, 403), "{}", r.body);
    assert_eq!(
        s.call("GET", "/cse-in/id-mn", Some("CAdmin"), None, None)
            .rsc(),
        4004
    );
}

#[test]
fn subscription_verification_targets_and_counters() {
    let (_dir, s) = server();
    let rx = receiver();
    // The AE publishes the receiver as its point of access, so `nu` may name the AE-ID.
    let r = s.call(
        "POST",
        "/cse-in",
        Some("Csub"),
        Some(2),
        Some(&json!({"m2m:ae": {"rn": "subae", "api": "Nx", "rr": true, "poa": [rx.url]}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    let ae = "Csub";
    s.call(
        "POST",
        "/cse-in/subae",
        Some(ae),
        Some(3),
        Some(&json!({"m2m:cnt": {"rn": "c"}})),
    );

    // A target that cannot be reached fails the creation with 5204; nothing is stored.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let r = s.call(
        "POST",
        "/cse-in/subae/c",
        Some(ae),
        Some(23),
        Some(&json!({"m2m:sub": {"rn": "x", "nu": [dead_url]}})),
    );
    assert_eq!((r.rsc(), r.status), (5204, 500), "{}", r.body);
    assert_eq!(
        s.call("GET", "/cse-in/subae/c/x", Some(ae), None, None)
            .rsc(),
        4004
    );
    let r = s.call(
        "POST",
        "/cse-in/subae/c",
        Some(ae),
        Some(23),
        Some(&json!({"m2m:sub": {"nu": ["u"], "enc": {"net": [9]}}})),
    );
    assert_eq!(r.rsc(), 4000, "{}", r.body);

    // nu = the originator's own AE-ID: no verification, delivery to its poa. Updates (net 1,
    // modified attributes only), and an expirationCounter of 2.
    let r = s.call(
        "POST",
        "/cse-in/subae/c",
        Some(ae),
        Some(23),
        Some(&json!({"m2m:sub": {"rn": "upd", "nu": [ae], "nct": 2, "exc": 2, "enc": {"net": [1, 2]}}})),
    );
    assert_eq!(r.rsc(), 2001, "{}", r.body);
    assert!(
        rx.rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no verification request to the originator itself"
    );
    for mni in [5, 6] {
        assert_eq!(
            s.call(
                "PUT",
                "/cse-in/subae/c",
                Some(ae),
                None,
                Some(&json!({"m2m:cnt": {"mni": mni}}))
            )
            .rsc(),
            2004
        );
        let n = rx
            .rx
            .recv_timeout(Duration::from_secs(5))
            .expect("update notification");
        assert_eq!(n["m2m:sgn"]["nev"]["net"], 1);
        assert_eq!(
            n["m2m:sgn"]["nev"]["rep"],
            json!({"m2m:cnt": {"mni": mni}}),
            "nct 2: modified attributes only"
        );
    }
    // exc reached 0: the subscription is gone.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.call("GET", "/cse-in/subae/c/upd", Some(ae), None, None)
            .rsc(),
        4004
    );

    // Deleting a subscribed resource notifies net 2.
    let r = s.call(
        "POST",
        "/cse-in/subae/c",
        Some(ae),
        Some(23),
        Some(&json!({"m2m:sub": {"rn": "del", "nu": [ae], "enc": {"net": [2]}}})),
    );
    assert_eq!(r.rsc(), 2001);
    assert_eq!(
        s.call("DELETE", "/cse-in/subae/c", Some(ae), None, None)
            .rsc(),
        2002
    );
    let n = rx
        .rx
        .recv_timeout(Duration::from_secs(5))
        .expect("delete notification");
    assert_eq!(n["m2m:sgn"]["nev"]["net"], 2, "{n}");
    assert_eq!(n["m2m:sgn"]["nev"]["rep"]["m2m:cnt"]["rn"], "c");
}
