//! The DAS Server in memory (TS-0003 §7.3.2.2 step 3, §7.3.2.3 steps 3 and 5): request primitives
//! and peer identities in, response primitives out, tokens checked with the verifier a hosting
//! CSE uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::es256_private_pem;
use m2mtrust_das::{
    DasService, DasStore, GrantMode, Policy, PolicySpec, TokenIssuer, TokenVerifier, TrustedIssuer,
    VerificationKey, parse_m2m_timestamp,
};
use m2mtrust_model::{
    Authentication, CseId, Home, Operation, PeerIdentity, Request, Response, SpId,
};
use serde_json::{Value, json};

const ISSUER: &str = "das.m2mtrust.example";
const HCSE: &str = "//m2mtrust.example/id-in";
const AE1: &str = "//m2mtrust.example/id-in/Cae1";

fn home() -> Home {
    Home {
        sp_id: SpId::parse("//m2mtrust.example").unwrap(),
        cse_id: CseId::parse("/id-in").unwrap(),
        cse_base_name: "cse-in".into(),
    }
}

fn now() -> DateTime<Utc> {
    parse_m2m_timestamp("20261124T110000").unwrap()
}

struct Das {
    service: DasService,
    store: Arc<DasStore>,
    verifier: TokenVerifier,
    _dir: tempfile::TempDir,
}

fn das() -> Das {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DasStore::open(&dir.path().join("das.sqlite")).unwrap());
    let issuer = TokenIssuer::es256(ISSUER, &es256_private_pem()).unwrap();
    let key = VerificationKey::es256_public_pem(&issuer.public_key_pem().unwrap()).unwrap();
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        keys: vec![key],
    }]);
    Das {
        service: DasService::new(home(), issuer, store.clone()),
        store,
        verifier,
        _dir: dir,
    }
}

impl Das {
    fn policy(&self, id: &str, originator: &str, target: &str, ops: u8, grant: GrantMode) {
        let spec = PolicySpec {
            originators: vec![originator.into()],
            targets: vec![target.into()],
            operations: ops,
            lifetime_secs: 3600,
            grant,
            role_ids: vec!["r1".into()],
        };
        self.store
            .add_policy(&Policy::new(id.into(), &spec, &home(), now()).unwrap())
            .unwrap();
    }

    fn ask(&self, from: &str, bound: &str, dreq: Value) -> Response {
        let mut req = Request::new(Operation::Notify, "das", Some(from.to_owned()));
        req.request_id = "rq1".into();
        req.content = Some(json!({"m2m:seci": {"sit": 1, "dreq": dreq}}));
        self.service.respond(&req, &peer(bound), now())
    }
}

fn peer(bound: &str) -> PeerIdentity {
    PeerIdentity {
        addr: None,
        authentication: Authentication::Credential {
            credential_id: format!("32-{bound}"),
            bound_ids: vec![bound.to_owned()],
        },
    }
}

fn dres(r: &Response) -> &Value {
    &r.content.as_ref().unwrap()["m2m:seci"]["dres"]
}

#[test]
fn nothing_is_granted_without_a_policy() {
    let d = das();
    let r = d.ask(
        "/id-in",
        "/id-in",
        json!({"or": AE1, "op": 2, "trid": "cse-in/ae1/cnt1"}),
    );
    assert_eq!(r.status.0, 2000);
    assert_eq!(r.request_id, "rq1");
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
}

#[test]
fn direct_authorization_returns_dynamic_acp_info_and_a_token_for_the_hosting_cse() {
    let d = das();
    d.policy("p1", "C*", "cse-in/ae1/*", 3, GrantMode::Both);
    let r = d.ask(
        "/id-in",
        "/id-in",
        json!({"or": AE1, "op": 2, "trid": "cse-in/ae1/cnt1", "ppl": "20261124T113000"}),
    );
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    let dres = dres(&r);
    assert_eq!(
        dres["dai"],
        json!({"gp": {"acr": [{"acor": [AE1], "acop": 3}]}, "pl": "20261124T113000"})
    );
    let jwt = dres["tkns"][0].as_str().unwrap();
    let claims = d.verifier.verify(jwt, HCSE, AE1, now()).unwrap();
    assert_eq!(
        claims.not_after,
        parse_m2m_timestamp("20261124T113000").unwrap()
    );
    assert!(claims.token_id.ends_with("@das.m2mtrust.example"));
    let pm = &claims.permissions.unwrap().pm[0];
    assert_eq!(pm.ris, Some(vec!["cse-in/ae1/cnt1".to_string()]));
    assert_eq!(pm.rids, Some(vec!["r1".to_string()]));
    // Not for another CSE.
    assert!(
        d.verifier
            .verify(jwt, "//m2mtrust.example/id-mn", AE1, now())
            .is_err()
    );

    // The operation bit must be in the policy: delete (4 → 8) is not.
    let r = d.ask(
        "/id-in",
        "/id-in",
        json!({"or": AE1, "op": 4, "trid": "cse-in/ae1/cnt1"}),
    );
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
}

#[test]
fn grant_modes_choose_what_is_returned() {
    let d = das();
    d.policy("p1", "Cae1", "all", 2, GrantMode::Acp);
    d.policy("p2", "Cae2", "all", 2, GrantMode::Token);
    let r = d.ask(
        "/id-in",
        "/id-in",
        json!({"or": "Cae1", "op": 2, "trid": "cse-in/x"}),
    );
    assert!(dres(&r).get("dai").is_some() && dres(&r).get("tkns").is_none());
    let r = d.ask(
        "/id-in",
        "/id-in",
        json!({"or": "Cae2", "op": 2, "trid": "cse-in/x"}),
    );
    assert!(dres(&r).get("dai").is_none() && dres(&r).get("tkns").is_some());
    // An originator asking for itself cannot use dynamic ACP information: an acp-only policy
    // grants it nothing.
    let r = d.ask(
        "Cae1",
        "Cae1",
        json!({"or": AE1, "op": 2, "trid": "/id-in/cse-in/x"}),
    );
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
}

#[test]
fn indirect_authorization_and_token_id_resolution() {
    let d = das();
    d.policy("p1", "all", "/id-in/cse-in/*", 2, GrantMode::Both);
    let r = d.ask(
        "Cae1",
        "Cae1",
        json!({"or": AE1, "op": 2, "trid": "/id-in/cse-in/ae1"}),
    );
    assert_eq!(r.status.0, 2000, "{:?}", r.content);
    assert!(dres(&r).get("dai").is_none());
    let jwt = dres(&r)["tkns"][0].as_str().unwrap().to_owned();
    let claims = d.verifier.verify(&jwt, HCSE, AE1, now()).unwrap();

    // The hosting CSE resolves the Token-ID.
    let tids =
        json!({"or": AE1, "op": 2, "tids": [claims.token_id, "unknown@das.m2mtrust.example"]});
    let r = d.ask("/id-in", "/id-in", tids.clone());
    assert_eq!(dres(&r)["tkns"], json!([jwt]));
    // Another CSE is not the audience; another holder is not the originator.
    let r = d.ask("/id-mn", "/id-mn", tids.clone());
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    let mut other = tids.clone();
    other["or"] = json!("Cae2");
    let r = d.ask("/id-in", "/id-in", other);
    assert_eq!(r.content, Some(json!({"m2m:seci": {"sit": 2}})));
    // Expired tokens are not returned.
    let mut req = Request::new(Operation::Notify, "das", Some("/id-in".into()));
    req.content = Some(json!({"m2m:seci": {"sit": 1, "dreq": tids}}));
    let later = d
        .service
        .respond(&req, &peer("/id-in"), now() + TimeDelta::hours(2));
    assert_eq!(later.content, Some(json!({"m2m:seci": {"sit": 2}})));
}

#[test]
fn refusals_carry_their_codes() {
    let d = das();
    d.policy("p1", "all", "all", 63, GrantMode::Both);
    let ok = json!({"or": AE1, "op": 2, "trid": "/id-in/cse-in/x"});
    // An AE asking for another originator.
    let r = d.ask("Cae2", "Cae2", ok.clone());
    assert_eq!(r.status.0, 4103, "{:?}", r.content);
    // From not bound to the association.
    let r = d.ask("Cae1", "Cae2", ok.clone());
    assert_eq!(r.status.0, 4106, "{:?}", r.content);
    // Malformed.
    let r = d.ask("Cae1", "Cae1", json!({"op": 2, "trid": "/id-in/x"}));
    assert_eq!(r.status.0, 4000);
    assert!(
        r.debug_message().unwrap().contains("dreq.or"),
        "{:?}",
        r.content
    );
    // No security association.
    let mut req = Request::new(Operation::Notify, "das", Some("Cae1".into()));
    req.content = Some(json!({"m2m:seci": {"sit": 1, "dreq": ok}}));
    let r = d.service.respond(&req, &PeerIdentity::internal(), now());
    assert_eq!(r.status.0, 4103);
    // Not a NOTIFY.
    let req = Request::new(Operation::Retrieve, "das", Some("Cae1".into()));
    let r = d.service.respond(&req, &peer("Cae1"), now());
    assert_eq!(r.status.0, 4005);
}
