//! MEF procedures (TS-0003 §8.3.5.2.3-§8.3.5.2.10) and MEF Client Commands (§8.3.9): every
//! procedure's success path and error cases (digest §6.3 and §A.2 "MEF procedures"), run
//! against the in-memory and the SQLite registry; the client command state machine for every
//! cmdStatusCode; the SUID consistency table of §8.3.9.9.2 row by row.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The case tables are tuples of a few typed columns; naming each row type would not help.
#![allow(clippy::type_complexity)]

use std::cell::Cell;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use m2mtrust_crypto::{Fqdn, Sealer, SecretKey};
use m2mtrust_mef::procedures::client::{
    AuthenticationProfile, CERT_MANDATORY_SUITES, CertProvFailure, ClientKind, ClientProfile,
    ClientRegCfg, CommandExecutor, CommandRunner, DataCollectionMo, DevCfgFailure, Inconsistency,
    MoNode, MoNodeType, MoTree, Outcome, PSK_MANDATORY_SUITES, ProcessingFailure, RegistrationMo,
    SUID_CONSISTENCY, SuidRequirement, TrustAnchorCred, check_suid_consistency,
    cse_of_container_path, is_ae_id, is_cse_id, is_node_id,
};
use m2mtrust_mef::procedures::messages::{
    ClientRegRequest, ClientRegResponse, KeyRegRequest, KeyRegResponse,
};
use m2mtrust_mef::procedures::types::{
    CertProvArgs, CertProvProtocolId, CertSubjectType, CmdArgs, CmdClassId, CmdDescription,
    CmdStatusCode, CmdUpdate, DevMgmtId, MoNodeArgs, ObjectTypeId, Suid, XsDuration,
};
use m2mtrust_mef::procedures::{
    AdminPolicy, MemoryRegistry, Policy, Procedures, Registry, SqliteRegistry,
};
use m2mtrust_mef::wire::{MefRequest, Session};
use m2mtrust_model::types::Operation;
use m2mtrust_model::{Response, ResponseStatusCode as Rsc};
use serde_json::{Value, json};

const MEF: &str = "mef.m2mtrust.example";
/// Known stakeholder with a configuration and updates allowed.
const ADMIN: &str = "admin.m2mtrust.example";
/// Known stakeholder without configuration; updates not authorized.
const STRICT: &str = "strict.m2mtrust.example";
/// Known stakeholder with initial commands.
const CMDS: &str = "cmds.m2mtrust.example";
const EXPORT_ID: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];
const EXPORT_ID_HEX: &str = "000102030405060708090A0B0C0D0E0F";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

fn export_key() -> SecretKey {
    SecretKey::new((0x10u8..0x30).collect())
}

fn initial_commands() -> Vec<CmdDescription> {
    vec![
        CmdDescription::new(CmdArgs::CertProv(CertProvArgs {
            protocol: CertProvProtocolId::EST,
            uri: format!("https://{MEF}/.well-known/est"),
            subject_type: CertSubjectType::AE_ID,
            subject_id: "Cdev1".into(),
        })),
        CmdDescription::new(CmdArgs::MoNode(MoNodeArgs::authentication_profile(
            AP,
            Suid(22),
        ))),
    ]
}

fn policy() -> Policy {
    Policy {
        max_registration_lifetime: TimeDelta::days(1),
        max_key_lifetime: TimeDelta::hours(12),
        retry_duration: XsDuration::from_secs(600),
        ..Policy::default()
    }
    .with_admin(
        Fqdn::parse(ADMIN).unwrap(),
        AdminPolicy {
            client_config: Some(json!({"mefKeyRegCfg": {"adminFQDN": ADMIN, "SUID": 22}})),
            initial_commands: vec![],
            allow_updates: true,
        },
    )
    .with_admin(Fqdn::parse(STRICT).unwrap(), AdminPolicy::default())
    .with_admin(
        Fqdn::parse(CMDS).unwrap(),
        AdminPolicy {
            client_config: Some(json!({})),
            initial_commands: initial_commands(),
            allow_updates: true,
        },
    )
}

struct Fixture {
    procs: Procedures,
    registry: Arc<dyn Registry>,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Fixture {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    Fixture {
        procs: Procedures::new(Fqdn::parse(MEF).unwrap(), registry.clone(), policy()),
        registry,
        _dir: None,
    }
}

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::from_key(SecretKey::new(vec![7u8; 32])).unwrap())
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let registry: Arc<dyn Registry> =
        Arc::new(SqliteRegistry::open(&dir.path().join("mef.db"), sealer()).unwrap());
    Fixture {
        procs: Procedures::new(Fqdn::parse(MEF).unwrap(), registry.clone(), policy()),
        registry,
        _dir: Some(dir),
    }
}

fn session(client: &str) -> Session {
    Session {
        client_id: client.into(),
        credential_id: format!("10-{client}@{MEF}"),
        bound_ids: vec![],
        certificate_authenticated: false,
        connection_export: Some((EXPORT_ID, export_key())),
        remote_key_id: None,
    }
}

fn dev1() -> Session {
    session("dev-1")
}

fn dev2() -> Session {
    Session {
        bound_ids: vec!["Cae2".into(), "/cse-2".into()],
        ..session("dev-2")
    }
}

thread_local! {
    static RQI: Cell<u32> = const { Cell::new(0) };
}

impl Fixture {
    /// Sends one request and checks that the request ID is echoed.
    fn call(
        &self,
        s: &Session,
        op: Operation,
        path: &str,
        body: Option<Value>,
        now: DateTime<Utc>,
    ) -> Response {
        let rqi = RQI.with(|c| {
            c.set(c.get() + 1);
            format!("rqi-{}", c.get())
        });
        let req = MefRequest {
            op,
            path: path.into(),
            from: None,
            request_id: rqi.clone(),
            content: body,
        };
        let resp = self.procs.handle(s, &req, now);
        assert_eq!(resp.request_id, rqi, "request ID echoed");
        if !resp.status.is_success() {
            assert!(resp.debug_message().is_some(), "error carries m2m:dbg");
        }
        resp
    }

    fn register(&self, s: &Session, admin: &str, now: DateTime<Utc>) -> String {
        let r = self.call(
            s,
            Operation::Create,
            "mef/reg",
            Some(reg_body(admin, now + TimeDelta::hours(2))),
            now,
        );
        assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
        body(&r, "sec:mefClientReg")["ri"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn register_key(&self, s: &Session, body_: Value, now: DateTime<Utc>) -> String {
        let r = self.call(s, Operation::Create, "mef/keys", Some(body_), now);
        assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
        body(&r, "sec:keyReg")["rki"].as_str().unwrap().to_string()
    }

    /// Everything the registry holds about the given records, for "unchanged" checks.
    fn dump(&self, ids: &[&str]) -> String {
        let mut out = String::new();
        self.registry
            .transact(&mut |tx| {
                out.clear();
                for id in ids {
                    out += &format!("reg {id}: {:?}\n", tx.registration(id)?);
                    out += &format!("cmd {id}: {:?}\n", tx.commands(id)?);
                    if let Some(k) = tx.key(id)? {
                        out += &format!("key {id}: {k:?} {}\n", k.key.expose_hex());
                    } else {
                        out += &format!("key {id}: none\n");
                    }
                }
                for c in ["dev-1", "dev-2"] {
                    out += &format!("of {c}: {:?}\n", tx.registrations_of(c)?);
                }
                Ok(())
            })
            .unwrap();
        out
    }
}

fn reg_body(admin: &str, exp: DateTime<Utc>) -> Value {
    json!({"sec:mefClientReg": {"fqdn": MEF, "exp": ts(exp), "lbl": ["site/7"], "adminFQDN": admin}})
}

fn key_body(suid: u16, tids: &[&str], kv: Option<&[u8]>, exp: DateTime<Utc>) -> Value {
    let mut inner =
        json!({"fqdn": MEF, "exp": ts(exp), "adminFQDN": ADMIN, "suid": suid, "tids": tids});
    if let Some(kv) = kv {
        inner["kv"] = json!(B64.encode(kv));
    }
    json!({"sec:keyReg": inner})
}

fn body<'a>(r: &'a Response, key: &str) -> &'a Value {
    let c = r.content.as_ref().expect("content");
    assert_eq!(
        c.as_object().unwrap().len(),
        1,
        "one namespaced member: {c}"
    );
    c.get(key).unwrap_or_else(|| panic!("{key} in {c}"))
}

/// Runs a test body once per registry implementation.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn memory_registry() {
                ($body)(memory());
            }
            #[test]
            fn sqlite_registry() {
                ($body)(sqlite());
            }
        }
    };
}

// =============================================================================================
// §8.3.5.2.3 MEF Client Registration

both!(registration_success, |fx: Fixture| {
    let now = t0();
    // (proposed lifetime, granted lifetime): the MEF shortens to its maximum of one day.
    for (i, (proposed, granted)) in [
        (TimeDelta::hours(2), TimeDelta::hours(2)),
        (TimeDelta::days(10), TimeDelta::days(1)),
    ]
    .into_iter()
    .enumerate()
    {
        let s = session(&format!("dev-{}", 10 + i));
        let r = fx.call(
            &s,
            Operation::Create,
            "mef/reg",
            Some(reg_body(ADMIN, now + proposed)),
            now,
        );
        assert_eq!(r.status, Rsc::CREATED);
        let b = body(&r, "sec:mefClientReg");
        assert!(b["ri"].as_str().unwrap().starts_with('R'));
        assert_eq!(b["exp"], json!(ts(now + granted)));
        assert_eq!(b["mefClientID"], json!(s.client_id));
        assert_eq!(b["adminFQDN"], json!(ADMIN));
        assert_eq!(b["lbl"], json!(["site/7"]));
        assert!(b.get("ch").is_none(), "no commands queued ⇒ no ch");
        let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ri", "exp", "lbl", "mefClientID", "adminFQDN"]);
    }
    // Registrations for different stakeholders coexist.
    let a = fx.register(&dev1(), ADMIN, now);
    let b = fx.register(&dev1(), STRICT, now);
    assert_ne!(a, b);
});

both!(registration_errors, |fx: Fixture| {
    let now = t0();
    let existing = fx.register(&dev1(), ADMIN, now);
    let before = fx.dump(&[&existing]);
    let good = || reg_body(ADMIN, now + TimeDelta::hours(1));
    let with = |field: &str, v: Value| {
        let mut b = reg_body(ADMIN, now + TimeDelta::hours(1));
        b["sec:mefClientReg"][field] = v;
        b
    };
    let cases: Vec<(&str, Session, Option<Value>, Rsc)> = vec![
        ("missing body", dev1(), None, Rsc::BAD_REQUEST),
        (
            "wrong wrapper",
            dev1(),
            Some(json!({"sec:keyReg": good()["sec:mefClientReg"]})),
            Rsc::BAD_REQUEST,
        ),
        (
            "extra member",
            dev1(),
            Some(json!({"sec:mefClientReg": good()["sec:mefClientReg"], "x": 1})),
            Rsc::BAD_REQUEST,
        ),
        (
            "unknown field",
            dev1(),
            Some(with("bogus", json!(1))),
            Rsc::BAD_REQUEST,
        ),
        (
            "wrong MEF",
            dev2(),
            Some(with("fqdn", json!("other-mef.example"))),
            Rsc::BAD_REQUEST,
        ),
        (
            "MEF not an FQDN",
            dev2(),
            Some(with("fqdn", json!("not a name"))),
            Rsc::BAD_REQUEST,
        ),
        (
            "exp garbage",
            dev2(),
            Some(with("exp", json!("tomorrow"))),
            Rsc::BAD_REQUEST,
        ),
        (
            "exp in the past",
            dev2(),
            Some(with("exp", json!(ts(now - TimeDelta::seconds(1))))),
            Rsc::BAD_REQUEST,
        ),
        (
            "exp now",
            dev2(),
            Some(with("exp", json!(ts(now)))),
            Rsc::BAD_REQUEST,
        ),
        (
            "exp missing",
            dev2(),
            Some(json!({"sec:mefClientReg": {"fqdn": MEF, "adminFQDN": ADMIN}})),
            Rsc::BAD_REQUEST,
        ),
        (
            "admin missing",
            dev2(),
            Some(json!({"sec:mefClientReg": {"fqdn": MEF, "exp": ts(now + TimeDelta::hours(1))}})),
            Rsc::BAD_REQUEST,
        ),
        (
            "admin invalid",
            dev2(),
            Some(with("adminFQDN", json!("-bad-.example"))),
            Rsc::BAD_REQUEST,
        ),
        (
            "admin unknown",
            dev2(),
            Some(with("adminFQDN", json!("nobody.example"))),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "empty label",
            dev2(),
            Some(with("lbl", json!([""]))),
            Rsc::BAD_REQUEST,
        ),
        (
            "already registered",
            dev1(),
            Some(good()),
            Rsc::ORIGINATOR_HAS_ALREADY_REGISTERED,
        ),
    ];
    for (name, s, b, want) in cases {
        let r = fx.call(&s, Operation::Create, "mef/reg", b, now);
        assert_eq!(r.status, want, "{name}: {:?}", r.content);
        assert_eq!(fx.dump(&[&existing]), before, "{name}: state unchanged");
    }
    // An expired registration for the same stakeholder does not block a new one.
    let later = now + TimeDelta::hours(3);
    let fresh = fx.register(&dev1(), ADMIN, later);
    assert_ne!(fresh, existing);
    assert!(
        fx.dump(&[&existing])
            .contains(&format!("reg {existing}: None"))
    );
});

// §8.3.5.2.4 MEF Client Configuration Retrieval

both!(configuration_retrieval, |fx: Fixture| {
    let now = t0();
    let id = fx.register(&dev1(), ADMIN, now);
    let r = fx.call(
        &dev1(),
        Operation::Retrieve,
        &format!("mef/reg/{id}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK);
    assert_eq!(
        body(&r, "sec:mefClientCfg"),
        &json!({"mefKeyRegCfg": {"adminFQDN": ADMIN, "SUID": 22}})
    );
    let strict = fx.register(&dev1(), STRICT, now);
    let before = fx.dump(&[&id, &strict]);
    let cases = [
        (
            "no configuration",
            dev1(),
            format!("mef/reg/{strict}"),
            Rsc::NOT_FOUND,
        ),
        (
            "unknown id",
            dev1(),
            "mef/reg/R0000000000000000".to_string(),
            Rsc::NOT_FOUND,
        ),
        (
            "not the owner",
            dev2(),
            format!("mef/reg/{id}"),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "bad id syntax",
            dev1(),
            "mef/reg/R%20x".to_string(),
            Rsc::NOT_FOUND,
        ),
    ];
    for (name, s, path, want) in cases {
        let r = fx.call(&s, Operation::Retrieve, &path, None, now);
        assert_eq!(r.status, want, "{name}");
        assert!(
            r.content
                .as_ref()
                .unwrap()
                .get("sec:mefClientCfg")
                .is_none()
        );
        assert_eq!(fx.dump(&[&id, &strict]), before, "{name}: unchanged");
    }
    // Expired: 4004, and the record is purged.
    let late = now + TimeDelta::hours(2);
    let r = fx.call(
        &dev1(),
        Operation::Retrieve,
        &format!("mef/reg/{id}"),
        None,
        late,
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
    assert!(fx.dump(&[&id]).contains(&format!("reg {id}: None")));
});

// §8.3.5.2.5 MEF Client Registration Update

both!(registration_update, |fx: Fixture| {
    let now = t0();
    let id = fx.register(&dev1(), ADMIN, now);
    let path = format!("mef/reg/{id}");
    let upd = |inner: Value| Some(json!({ "sec:mefClientReg": inner }));
    // Only what the request had comes back.
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"exp": ts(now + TimeDelta::hours(5))})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED);
    assert_eq!(
        body(&r, "sec:mefClientReg"),
        &json!({"exp": ts(now + TimeDelta::hours(5))})
    );
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"fqdn": MEF, "lbl": ["a", "b"]})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED);
    assert_eq!(body(&r, "sec:mefClientReg"), &json!({"lbl": ["a", "b"]}));
    // Shortened to the policy maximum.
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"exp": ts(now + TimeDelta::days(9)), "lbl": []})),
        now,
    );
    assert_eq!(
        body(&r, "sec:mefClientReg"),
        &json!({"exp": ts(now + TimeDelta::days(1)), "lbl": []})
    );
    let strict = fx.register(&dev1(), STRICT, now);
    let before = fx.dump(&[&id, &strict]);
    let cases: Vec<(&str, Session, String, Option<Value>, Rsc)> = vec![
        (
            "neither exp nor lbl",
            dev1(),
            path.clone(),
            upd(json!({})),
            Rsc::BAD_REQUEST,
        ),
        (
            "only fqdn",
            dev1(),
            path.clone(),
            upd(json!({"fqdn": MEF})),
            Rsc::BAD_REQUEST,
        ),
        ("no body", dev1(), path.clone(), None, Rsc::BAD_REQUEST),
        (
            "wrong MEF",
            dev1(),
            path.clone(),
            upd(json!({"fqdn": "x.example", "lbl": ["z"]})),
            Rsc::BAD_REQUEST,
        ),
        (
            "exp past",
            dev1(),
            path.clone(),
            upd(json!({"exp": ts(now - TimeDelta::hours(1))})),
            Rsc::BAD_REQUEST,
        ),
        (
            "unknown field",
            dev1(),
            path.clone(),
            upd(json!({"adminFQDN": ADMIN, "lbl": ["z"]})),
            Rsc::BAD_REQUEST,
        ),
        (
            "not the owner",
            dev2(),
            path.clone(),
            upd(json!({"lbl": ["z"]})),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "unknown id",
            dev1(),
            "mef/reg/Rnope".into(),
            upd(json!({"lbl": ["z"]})),
            Rsc::NOT_FOUND,
        ),
        (
            "stakeholder forbids updates",
            dev1(),
            format!("mef/reg/{strict}"),
            upd(json!({"lbl": ["z"]})),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
    ];
    for (name, s, p, b, want) in cases {
        let r = fx.call(&s, Operation::Update, &p, b, now);
        assert_eq!(r.status, want, "{name}: {:?}", r.content);
        assert_eq!(fx.dump(&[&id, &strict]), before, "{name}: unchanged");
    }
    let late = now + TimeDelta::days(2);
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"lbl": ["z"]})),
        late,
    );
    assert_eq!(r.status, Rsc::NOT_FOUND, "expired");
});

// §8.3.5.2.6 MEF Client De-Registration

both!(de_registration, |fx: Fixture| {
    let now = t0();
    let id = fx.register(&dev1(), CMDS, now);
    let path = format!("mef/reg/{id}");
    let before = fx.dump(&[&id]);
    let r = fx.call(&dev2(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    assert_eq!(fx.dump(&[&id]), before);
    assert!(before.contains("queue: ["), "commands queued: {before}");
    let r = fx.call(&dev1(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::DELETED);
    assert_eq!(r.content, None);
    let after = fx.dump(&[&id]);
    assert!(after.contains(&format!("reg {id}: None")));
    assert!(
        after.contains("queue: [], current: None"),
        "commands deleted: {after}"
    );
    let r = fx.call(&dev1(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::NOT_FOUND);
    // Expired.
    let id2 = fx.register(&dev1(), ADMIN, now);
    let r = fx.call(
        &dev1(),
        Operation::Delete,
        &format!("mef/reg/{id2}"),
        None,
        now + TimeDelta::hours(2),
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

// =============================================================================================
// §8.3.5.2.7 MEF Key Registration

both!(key_registration_with_export, |fx: Fixture| {
    let now = t0();
    fx.register(&dev1(), ADMIN, now);
    let r = fx.call(
        &dev1(),
        Operation::Create,
        "mef/keys",
        Some(key_body(22, &["/cse-2"], None, now + TimeDelta::hours(1))),
        now,
    );
    assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
    let b = body(&r, "sec:keyReg");
    assert_eq!(
        b,
        &json!({
            "rki": EXPORT_ID_HEX,
            "kid": format!("{EXPORT_ID_HEX}@{MEF}"),
            "exp": ts(now + TimeDelta::hours(1)),
            "srcID": "dev-1",
            "adminFQDN": ADMIN,
            "suid": 22,
            "tids": ["/cse-2"],
        })
    );
    // The target retrieves exactly the exported key.
    let r = fx.call(
        &dev2(),
        Operation::Retrieve,
        &format!("mef/keys/{EXPORT_ID_HEX}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK);
    let b = body(&r, "sec:keyReg");
    assert_eq!(
        B64.decode(b["kv"].as_str().unwrap()).unwrap(),
        export_key().expose_bytes()
    );
    // A second export with the same id collides: a fresh RelativeKeyID (digest §B.5).
    let rki = fx.register_key(
        &dev1(),
        key_body(22, &["/cse-2"], None, now + TimeDelta::hours(1)),
        now,
    );
    assert_ne!(rki, EXPORT_ID_HEX);
    assert_eq!(rki.len(), 32);
    assert!(
        rki.bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
});

both!(key_registration_with_value, |fx: Fixture| {
    let now = t0();
    fx.register(&dev1(), ADMIN, now);
    let kv: Vec<u8> = (100u8..132).collect();
    // Lifetime capped at the 12-hour key maximum; ESData with three targets.
    let r = fx.call(
        &dev1(),
        Operation::Create,
        "mef/keys",
        Some(key_body(
            24,
            &["Cae2", "/cse-3", "Cae4"],
            Some(&kv),
            now + TimeDelta::days(3),
        )),
        now,
    );
    assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
    let b = body(&r, "sec:keyReg");
    let rki = b["rki"].as_str().unwrap();
    assert_ne!(
        rki, EXPORT_ID_HEX,
        "a supplied value gets a fresh RelativeKeyID"
    );
    assert_eq!(b["exp"], json!(ts(now + TimeDelta::hours(12))));
    assert!(
        b.get("kv").is_none(),
        "the key is never echoed to the source"
    );
    assert!(
        !r.content
            .as_ref()
            .unwrap()
            .to_string()
            .contains(&B64.encode(&kv))
    );
    let r = fx.call(
        &dev2(),
        Operation::Retrieve,
        &format!("mef/keys/{rki}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK);
    assert_eq!(
        B64.decode(body(&r, "sec:keyReg")["kv"].as_str().unwrap())
            .unwrap(),
        kv,
        "stored verbatim"
    );
});

both!(key_registration_errors, |fx: Fixture| {
    let now = t0();
    let reg = fx.register(&dev1(), ADMIN, now);
    let exp = now + TimeDelta::hours(1);
    let mut no_export = dev1();
    no_export.connection_export = None;
    let mut other_admin = key_body(22, &["/cse-2"], None, exp);
    other_admin["sec:keyReg"]["adminFQDN"] = json!(STRICT);
    let mut wrong_mef = key_body(22, &["/cse-2"], None, exp);
    wrong_mef["sec:keyReg"]["fqdn"] = json!("mef.other.example");
    let mut bad_b64 = key_body(22, &["/cse-2"], None, exp);
    bad_b64["sec:keyReg"]["kv"] = json!("***");
    let mut no_tids = key_body(22, &[], None, exp);
    no_tids["sec:keyReg"]
        .as_object_mut()
        .unwrap()
        .remove("tids");
    let cases: Vec<(&str, Session, Value, Rsc)> = vec![
        (
            "no registration for adminFQDN",
            dev1(),
            other_admin,
            Rsc::ORIGINATOR_HAS_NOT_REGISTERED,
        ),
        (
            "client not registered at all",
            dev2(),
            key_body(22, &["/cse-1"], None, exp),
            Rsc::ORIGINATOR_HAS_NOT_REGISTERED,
        ),
        (
            "SAEF with two targets",
            dev1(),
            key_body(22, &["/cse-2", "/cse-3"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "SAEF with no targets",
            dev1(),
            key_body(22, &[], None, exp),
            Rsc::BAD_REQUEST,
        ),
        ("SAEF without tids", dev1(), no_tids, Rsc::BAD_REQUEST),
        (
            "ESPrim with two targets",
            dev1(),
            key_body(23, &["Ca", "Cb"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "ESData with zero targets",
            dev1(),
            key_body(24, &[], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "ESData duplicate targets",
            dev1(),
            key_body(25, &["Ca", "Ca"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "MAF key target not an FQDN",
            dev1(),
            key_body(21, &["/cse-2"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "target with whitespace",
            dev1(),
            key_body(22, &["/cse 2"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "pre-provisioned SUID",
            dev1(),
            key_body(12, &["/cse-2"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "MAF-distributed SUID",
            dev1(),
            key_body(32, &["/cse-2"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "no kv and no export",
            no_export,
            key_body(22, &["/cse-2"], None, exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "kv too short",
            dev1(),
            key_body(22, &["/cse-2"], Some(&[1u8; 8]), exp),
            Rsc::BAD_REQUEST,
        ),
        (
            "kv empty",
            dev1(),
            key_body(22, &["/cse-2"], Some(&[]), exp),
            Rsc::BAD_REQUEST,
        ),
        ("kv not base64", dev1(), bad_b64, Rsc::BAD_REQUEST),
        ("wrong MEF", dev1(), wrong_mef, Rsc::BAD_REQUEST),
        (
            "exp in the past",
            dev1(),
            key_body(22, &["/cse-2"], None, now - TimeDelta::minutes(1)),
            Rsc::BAD_REQUEST,
        ),
        (
            "wrong wrapper",
            dev1(),
            json!({"sec:mefClientReg": {}}),
            Rsc::BAD_REQUEST,
        ),
    ];
    let before = fx.dump(&[&reg, EXPORT_ID_HEX]);
    for (name, s, b, want) in cases {
        let r = fx.call(&s, Operation::Create, "mef/keys", Some(b), now);
        assert_eq!(r.status, want, "{name}: {:?}", r.content);
        assert_eq!(fx.dump(&[&reg, EXPORT_ID_HEX]), before, "{name}: unchanged");
    }
    // An expired registration does not satisfy the pre-condition.
    let r = fx.call(
        &dev1(),
        Operation::Create,
        "mef/keys",
        Some(key_body(22, &["/cse-2"], None, now + TimeDelta::days(1))),
        now + TimeDelta::hours(3),
    );
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NOT_REGISTERED);
});

// §8.3.5.2.8 MEF Key Retrieval

both!(key_retrieval, |fx: Fixture| {
    let now = t0();
    fx.register(&dev1(), ADMIN, now);
    let rki = fx.register_key(
        &dev1(),
        key_body(
            24,
            &["Cae2", "dev-3"],
            Some(&[9u8; 32]),
            now + TimeDelta::hours(1),
        ),
        now,
    );
    let path = format!("mef/keys/{rki}");
    let before = fx.dump(&[&rki]);
    // Permitted: a bound identity (dev-2 → Cae2) and the client ID itself (dev-3); the full
    // Key Identifier and a lower-case RelativeKeyID address the same key.
    for (s, p) in [
        (dev2(), path.clone()),
        (session("dev-3"), path.clone()),
        (
            session("dev-3"),
            format!("mef/keys/{rki}@{}", MEF.to_uppercase()),
        ),
        (session("dev-3"), format!("mef/keys/{}", rki.to_lowercase())),
    ] {
        let r = fx.call(&s, Operation::Retrieve, &p, None, now);
        assert_eq!(r.status, Rsc::OK, "{p}");
        let b = body(&r, "sec:keyReg");
        assert_eq!(b["kv"], json!(B64.encode([9u8; 32])));
        assert_eq!(b["srcID"], json!("dev-1"));
        assert_eq!(b["suid"], json!(24));
        assert_eq!(b["adminFQDN"], json!(ADMIN));
        assert_eq!(b["exp"], json!(ts(now + TimeDelta::hours(1))));
        assert_eq!(b["kid"], json!(format!("{rki}@{MEF}")));
        assert!(
            b.get("tids").is_none(),
            "targets are not disclosed to targets"
        );
    }
    // Refused: a non-target, and the source itself when it is not a target.
    for (name, s, p, want) in [
        (
            "non-target",
            session("dev-9"),
            path.clone(),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "source not a target",
            dev1(),
            path.clone(),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "unknown key",
            dev2(),
            "mef/keys/00000000000000000000000000000000".to_string(),
            Rsc::NOT_FOUND,
        ),
        (
            "other MEF in Key ID",
            dev2(),
            format!("mef/keys/{rki}@mef.other.example"),
            Rsc::NOT_FOUND,
        ),
    ] {
        let r = fx.call(&s, Operation::Retrieve, &p, None, now);
        assert_eq!(r.status, want, "{name}");
        let text = r.content.as_ref().unwrap().to_string();
        assert!(
            !text.contains(&B64.encode([9u8; 32])) && !text.contains("kv"),
            "{name}: no key in {text}"
        );
        assert_eq!(
            r.content.as_ref().unwrap().as_object().unwrap().len(),
            1,
            "{name}: only m2m:dbg"
        );
        assert_eq!(fx.dump(&[&rki]), before, "{name}: unchanged");
    }
    // Expired: 4004 and purged.
    let r = fx.call(
        &dev2(),
        Operation::Retrieve,
        &path,
        None,
        now + TimeDelta::hours(1),
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
    assert!(fx.dump(&[&rki]).contains(&format!("key {rki}: none")));
});

// §8.3.5.2.9 MEF Key Registration Update

both!(key_registration_update, |fx: Fixture| {
    let now = t0();
    fx.register(&dev1(), ADMIN, now);
    let rki = fx.register_key(
        &dev1(),
        key_body(24, &["Cae2"], Some(&[5u8; 32]), now + TimeDelta::hours(1)),
        now,
    );
    let path = format!("mef/keys/{rki}");
    let upd = |inner: Value| Some(json!({ "sec:keyReg": inner }));
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"tids": ["Cae2", "Cae5"]})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED, "{:?}", r.content);
    assert_eq!(body(&r, "sec:keyReg"), &json!({"tids": ["Cae2", "Cae5"]}));
    let r = fx.call(&session("Cae5"), Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::OK, "the new target may retrieve");
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &path,
        upd(json!({"fqdn": MEF, "exp": ts(now + TimeDelta::days(2)), "lbl": ["x"]})),
        now,
    );
    assert_eq!(
        body(&r, "sec:keyReg"),
        &json!({"exp": ts(now + TimeDelta::hours(12)), "lbl": ["x"]})
    );

    // A SAEF key and a key under a stakeholder that forbids updates.
    let saef = fx.register_key(
        &dev1(),
        key_body(22, &["/cse-2"], Some(&[6u8; 32]), now + TimeDelta::hours(1)),
        now,
    );
    fx.register(&dev1(), STRICT, now);
    let mut strict_body = key_body(22, &["/cse-2"], Some(&[7u8; 32]), now + TimeDelta::hours(1));
    strict_body["sec:keyReg"]["adminFQDN"] = json!(STRICT);
    let strict = fx.register_key(&dev1(), strict_body, now);
    let before = fx.dump(&[&rki, &saef, &strict]);
    let cases: Vec<(&str, Session, String, Option<Value>, Rsc)> = vec![
        (
            "nothing to update",
            dev1(),
            path.clone(),
            upd(json!({})),
            Rsc::BAD_REQUEST,
        ),
        (
            "only fqdn",
            dev1(),
            path.clone(),
            upd(json!({"fqdn": MEF})),
            Rsc::BAD_REQUEST,
        ),
        (
            "kv cannot be updated",
            dev1(),
            path.clone(),
            upd(json!({"kv": B64.encode([1u8; 32])})),
            Rsc::BAD_REQUEST,
        ),
        (
            "ESData to zero targets",
            dev1(),
            path.clone(),
            upd(json!({"tids": []})),
            Rsc::BAD_REQUEST,
        ),
        (
            "SAEF to two targets",
            dev1(),
            format!("mef/keys/{saef}"),
            upd(json!({"tids": ["/a", "/b"]})),
            Rsc::BAD_REQUEST,
        ),
        (
            "not the source",
            dev2(),
            path.clone(),
            upd(json!({"lbl": ["y"]})),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "stakeholder forbids updates",
            dev1(),
            format!("mef/keys/{strict}"),
            upd(json!({"lbl": ["y"]})),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "unknown key",
            dev1(),
            "mef/keys/ABCDEF".into(),
            upd(json!({"lbl": ["y"]})),
            Rsc::NOT_FOUND,
        ),
        (
            "exp in the past",
            dev1(),
            path.clone(),
            upd(json!({"exp": ts(now - TimeDelta::hours(1))})),
            Rsc::BAD_REQUEST,
        ),
    ];
    for (name, s, p, b, want) in cases {
        let r = fx.call(&s, Operation::Update, &p, b, now);
        assert_eq!(r.status, want, "{name}: {:?}", r.content);
        assert_eq!(
            fx.dump(&[&rki, &saef, &strict]),
            before,
            "{name}: unchanged"
        );
    }
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &format!("mef/keys/{saef}"),
        upd(json!({"lbl": ["y"]})),
        now + TimeDelta::hours(2),
    );
    assert_eq!(r.status, Rsc::NOT_FOUND, "expired");
});

// §8.3.5.2.10 MEF Key De-Registration

both!(key_de_registration, |fx: Fixture| {
    let now = t0();
    fx.register(&dev1(), ADMIN, now);
    let rki = fx.register_key(
        &dev1(),
        key_body(22, &["dev-2"], None, now + TimeDelta::hours(1)),
        now,
    );
    let path = format!("mef/keys/{rki}");
    let before = fx.dump(&[&rki]);
    let r = fx.call(&dev2(), Operation::Delete, &path, None, now);
    assert_eq!(
        r.status,
        Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        "targets cannot delete"
    );
    assert_eq!(fx.dump(&[&rki]), before);
    let r = fx.call(&dev1(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::DELETED);
    let r = fx.call(&dev2(), Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::NOT_FOUND, "retrieval after de-registration");
    let r = fx.call(&dev1(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

// =============================================================================================
// §8.3.9.2 / §8.3.9.3 Command Retrieve and Update (MEF side)

fn cmd_of(r: &Response) -> (u64, Value, u16) {
    let c = body(r, "sec:mefClientCmd");
    (
        c["cmdID"].as_u64().unwrap(),
        c["cmdDescription"].clone(),
        c["cmdStatusCode"].as_u64().unwrap() as u16,
    )
}

both!(command_cycle, |fx: Fixture| {
    let now = t0();
    let r = fx.call(
        &dev1(),
        Operation::Create,
        "mef/reg",
        Some(reg_body(CMDS, now + TimeDelta::hours(2))),
        now,
    );
    let id = body(&r, "sec:mefClientReg")["ri"]
        .as_str()
        .unwrap()
        .to_string();
    let cmd_path = format!("mef/reg/{id}/cmd");
    assert_eq!(
        body(&r, "sec:mefClientReg")["ch"],
        json!([cmd_path]),
        "commands announced"
    );
    let upd = |cmd_id: u64, status: u16| {
        Some(json!({"sec:cmdUpd": {"cmdID": cmd_id, "cmdStatusCode": status}}))
    };

    // Retrieve: the first command, ISSUED.
    let r = fx.call(&dev1(), Operation::Retrieve, &cmd_path, None, now);
    assert_eq!(r.status, Rsc::OK);
    let (first, desc, status) = cmd_of(&r);
    assert_eq!(status, 10);
    assert_eq!(desc, serde_json::to_value(&initial_commands()[0]).unwrap());
    // Retrieved again without an Update: REISSUED, same cmdID.
    let r = fx.call(&dev1(), Operation::Retrieve, &cmd_path, None, now);
    assert_eq!(cmd_of(&r), (first, desc.clone(), 11));

    // Errors change nothing: unparsable Update, other client, unknown registration.
    let before = fx.dump(&[&id]);
    for (name, s, p, b, want) in [
        ("no body", dev1(), cmd_path.clone(), None, Rsc::BAD_REQUEST),
        (
            "cmdID not a number",
            dev1(),
            cmd_path.clone(),
            Some(json!({"sec:cmdUpd": {"cmdID": "x", "cmdStatusCode": 20}})),
            Rsc::BAD_REQUEST,
        ),
        (
            "status missing",
            dev1(),
            cmd_path.clone(),
            Some(json!({"sec:cmdUpd": {"cmdID": first}})),
            Rsc::BAD_REQUEST,
        ),
        (
            "wrong wrapper",
            dev1(),
            cmd_path.clone(),
            Some(json!({"sec:mefClientCmd": {"cmdID": first, "cmdStatusCode": 20}})),
            Rsc::BAD_REQUEST,
        ),
        (
            "not the owner",
            dev2(),
            cmd_path.clone(),
            upd(first, 20),
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
        ),
        (
            "unknown registration",
            dev1(),
            "mef/reg/Rnone/cmd".into(),
            upd(first, 20),
            Rsc::NOT_FOUND,
        ),
    ] {
        let r = fx.call(&s, Operation::Update, &p, b, now);
        assert_eq!(r.status, want, "{name}");
        assert_eq!(fx.dump(&[&id]), before, "{name}: unchanged");
    }
    let r = fx.call(&dev2(), Operation::Retrieve, &cmd_path, None, now);
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    assert_eq!(fx.dump(&[&id]), before);

    // A stale cmdID is discarded; the answer is the current command, reissued.
    let r = fx.call(
        &dev1(),
        Operation::Update,
        &cmd_path,
        upd(first + 1, 20),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED);
    assert_eq!(cmd_of(&r), (first, desc.clone(), 11));
    assert!(
        fx.procs.command_state(&id).unwrap().reports.is_empty(),
        "stale status not recorded"
    );

    // The right cmdID: recorded, and the next command is issued.
    let r = fx.call(&dev1(), Operation::Update, &cmd_path, upd(first, 20), now);
    let (second, desc2, status) = cmd_of(&r);
    assert_eq!(status, 10);
    assert_ne!(second, first);
    assert_eq!(desc2, serde_json::to_value(&initial_commands()[1]).unwrap());
    let state = fx.procs.command_state(&id).unwrap();
    assert_eq!(state.reports.len(), 1);
    assert_eq!(
        (state.reports[0].cmd_id, state.reports[0].status),
        (first, CmdStatusCode::OK)
    );

    // Operator queues another one while the second is outstanding.
    let extra = CmdDescription {
        args: CmdArgs::DevCfg {
            device_config_uri: format!("1:https://{MEF}/dm"),
        },
        target_id: Some("Cdev1".into()),
    };
    fx.procs.queue_command(&id, extra.clone()).unwrap();
    let r = fx.call(&dev1(), Operation::Update, &cmd_path, upd(second, 305), now);
    let (third, desc3, status) = cmd_of(&r);
    assert_eq!(
        (status, desc3),
        (
            10,
            json!({"cmdClassID": 2, "cmdArgs": {"devCfgCmdArgs": {"deviceConfigURI": format!("1:https://{MEF}/dm")}}, "targetID": "Cdev1"})
        )
    );
    // Queue exhausted: NO_MORE_COMMANDS with the policy's retryDuration, never reissued.
    let r = fx.call(&dev1(), Operation::Update, &cmd_path, upd(third, 20), now);
    let (nomore, desc4, status) = cmd_of(&r);
    assert_eq!(status, 10);
    assert_eq!(
        desc4,
        json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT10M"}}})
    );
    let r = fx.call(&dev1(), Operation::Retrieve, &cmd_path, None, now);
    let (nomore2, _, status) = cmd_of(&r);
    assert_eq!(status, 10);
    assert_ne!(nomore2, nomore);
    let state = fx.procs.command_state(&id).unwrap();
    let statuses: Vec<u16> = state.reports.iter().map(|r| r.status.0).collect();
    assert_eq!(statuses, [20, 305, 20]);

    // Unknown registration for the operator API; NO_MORE_COMMANDS cannot be queued.
    assert!(fx.procs.queue_command("Rnone", extra).is_err());
    assert!(
        fx.procs
            .queue_command(
                &id,
                CmdDescription::new(CmdArgs::NoMore {
                    retry_duration: XsDuration::from_secs(1)
                })
            )
            .is_err()
    );
    // Expired registration.
    let r = fx.call(
        &dev1(),
        Operation::Retrieve,
        &cmd_path,
        None,
        now + TimeDelta::hours(2),
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

both!(routing, |fx: Fixture| {
    let now = t0();
    let id = fx.register(&dev1(), ADMIN, now);
    for (op, path, want) in [
        (Operation::Retrieve, "mef", Rsc::NOT_FOUND),
        (Operation::Retrieve, "mef/other", Rsc::NOT_FOUND),
        (Operation::Retrieve, "mef/reg", Rsc::OPERATION_NOT_ALLOWED),
        (Operation::Delete, "mef/keys", Rsc::OPERATION_NOT_ALLOWED),
        (
            Operation::Create,
            &format!("mef/reg/{id}") as &str,
            Rsc::OPERATION_NOT_ALLOWED,
        ),
        (
            Operation::Delete,
            &format!("mef/reg/{id}/cmd"),
            Rsc::OPERATION_NOT_ALLOWED,
        ),
        (
            Operation::Notify,
            "mef/keys/ABC",
            Rsc::OPERATION_NOT_ALLOWED,
        ),
        (
            Operation::Retrieve,
            &format!("mef/reg/{id}/cmd/x"),
            Rsc::NOT_FOUND,
        ),
    ] {
        let r = fx.call(&dev1(), op, path, None, now);
        assert_eq!(r.status, want, "{op:?} {path}");
    }
});

// =============================================================================================
// Persistence

#[test]
fn sqlite_persists_across_reopen_and_seals_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mef.db");
    let now = t0();
    let key = [0xA5u8; 32];
    let (id, rki, cmd_id) = {
        let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(&db, sealer()).unwrap());
        let fx = Fixture {
            procs: Procedures::new(Fqdn::parse(MEF).unwrap(), registry.clone(), policy()),
            registry,
            _dir: None,
        };
        let id = fx.register(&dev1(), CMDS, now);
        fx.register(&dev1(), ADMIN, now);
        let rki = fx.register_key(
            &dev1(),
            key_body(22, &["dev-2"], Some(&key), now + TimeDelta::hours(1)),
            now,
        );
        let r = fx.call(
            &dev1(),
            Operation::Retrieve,
            &format!("mef/reg/{id}/cmd"),
            None,
            now,
        );
        (id, rki, cmd_of(&r).0)
    };
    // The key is not in the file in clear.
    let mut raw = std::fs::read(&db).unwrap();
    for ext in ["-wal", "-shm"] {
        raw.extend(std::fs::read(dir.path().join(format!("mef.db{ext}"))).unwrap_or_default());
    }
    assert!(
        !raw.windows(key.len()).any(|w| w == key),
        "key value sealed at rest"
    );

    let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(&db, sealer()).unwrap());
    let fx = Fixture {
        procs: Procedures::new(Fqdn::parse(MEF).unwrap(), registry.clone(), policy()),
        registry,
        _dir: None,
    };
    let r = fx.call(
        &dev1(),
        Operation::Retrieve,
        &format!("mef/reg/{id}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK, "registration survives");
    let r = fx.call(
        &dev2(),
        Operation::Retrieve,
        &format!("mef/keys/{rki}"),
        None,
        now,
    );
    assert_eq!(
        body(&r, "sec:keyReg")["kv"],
        json!(B64.encode(key)),
        "key survives"
    );
    let r = fx.call(
        &dev1(),
        Operation::Retrieve,
        &format!("mef/reg/{id}/cmd"),
        None,
        now,
    );
    assert_eq!(
        (cmd_of(&r).0, cmd_of(&r).2),
        (cmd_id, 11),
        "the outstanding command is reissued"
    );
    assert_eq!(
        fx.procs.command_state(&id).unwrap().queue.len(),
        1,
        "queue survives"
    );

    // Another master key cannot open the key: the retrieval fails as an internal error.
    drop(fx);
    let other = Arc::new(Sealer::from_key(SecretKey::new(vec![8u8; 32])).unwrap());
    let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(&db, other).unwrap());
    let procs = Procedures::new(Fqdn::parse(MEF).unwrap(), registry, policy());
    let req = MefRequest {
        op: Operation::Retrieve,
        path: format!("mef/keys/{rki}"),
        from: None,
        request_id: "x".into(),
        content: None,
    };
    let r = procs.handle(&dev2(), &req, now);
    assert_eq!(r.status, Rsc::INTERNAL_SERVER_ERROR);
    assert_eq!(r.debug_message(), Some("internal error"));
}

#[test]
fn secrets_do_not_print() {
    let s = dev1();
    let key = export_key();
    let hex = key.expose_hex();
    assert!(!format!("{s:?}").contains(&hex));
    let req = KeyRegRequest {
        fqdn: MEF.into(),
        exp: "20260101T000000".into(),
        lbl: None,
        admin_fqdn: ADMIN.into(),
        suid: Suid(22),
        tids: None,
        kv: Some(key.clone()),
    };
    assert!(!format!("{req:?}").contains(&hex));
    let fx = memory();
    fx.register(&dev1(), ADMIN, t0());
    let rki = fx.register_key(
        &dev1(),
        key_body(22, &["dev-2"], None, t0() + TimeDelta::hours(1)),
        t0(),
    );
    let dump = format!("{:?}", fx.procs);
    assert!(!dump.contains(&hex));
    let mut printed = String::new();
    fx.registry
        .transact(&mut |tx| {
            printed = format!("{:?}", tx.key(&rki)?);
            Ok(())
        })
        .unwrap();
    assert!(
        printed.contains("redacted") && !printed.contains(&hex),
        "{printed}"
    );
}

// =============================================================================================
// Wire types

#[test]
fn command_descriptions_serialize_with_clause_12_names() {
    let cases = [
        (
            CmdArgs::NoMore {
                retry_duration: XsDuration::from_secs(90),
            },
            json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT1M30S"}}}),
        ),
        (
            CmdArgs::CertProv(CertProvArgs {
                protocol: CertProvProtocolId::SCEP,
                uri: "https://mef.example/scep".into(),
                subject_type: CertSubjectType::NODE_ID,
                subject_id: "0.2.481.1.100.3030.10011".into(),
            }),
            json!({"cmdClassID": 1, "cmdArgs": {"certProvCmdArgs": {"certProvProtocolID": 2, "URI": "https://mef.example/scep", "certSubjectType": 1, "certSubjectID": "0.2.481.1.100.3030.10011"}}}),
        ),
        (
            CmdArgs::DevCfg {
                device_config_uri: "1:http://server.dmprovider.com".into(),
            },
            json!({"cmdClassID": 2, "cmdArgs": {"devCfgCmdArgs": {"deviceConfigURI": "1:http://server.dmprovider.com"}}}),
        ),
        (
            CmdArgs::MoNode(MoNodeArgs::authentication_profile("./a/b", Suid(22))),
            json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "./a/b", "objectTypeID": 1, "objectTypeSpecifcArgs": {"SUID": 22}}}}),
        ),
        (
            CmdArgs::MoNode(MoNodeArgs::plain("./ta", ObjectTypeId::TRUST_ANCHOR_CRED)),
            json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "./ta", "objectTypeID": 2}}}),
        ),
    ];
    for (args, want) in cases {
        let d = CmdDescription::new(args);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v, want);
        let back: CmdDescription = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }
    // Digest §B.32 spellings accepted on input.
    let alt = json!({"cmdClassID": 1, "cmdArgs": {"certProvCmdArgs": {"certProvProtocol": 1, "URI": "u", "certSubjectType": 3, "certSubjectID": "Cx"}}});
    let d: CmdDescription = serde_json::from_value(alt).unwrap();
    assert!(matches!(
        d.args,
        CmdArgs::CertProv(CertProvArgs {
            protocol: CertProvProtocolId::EST,
            ..
        })
    ));
    let alt = json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "p", "objectTypelID": 1, "objectTypeSpecificArgs": {"SUID": 12}}}});
    let d: CmdDescription = serde_json::from_value(alt).unwrap();
    let CmdArgs::MoNode(m) = d.args else { panic!() };
    assert_eq!(m.auth_profile_args().unwrap().unwrap().suid, Suid(12));
    // Class and choice must agree; two choices are not one.
    for bad in [
        json!({"cmdClassID": 1, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT1S"}}}),
        json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT1S"}, "devCfgCmdArgs": {"deviceConfigURI": "1:x"}}}),
        json!({"cmdClassID": 0, "cmdArgs": {}}),
    ] {
        assert!(
            serde_json::from_value::<CmdDescription>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn status_codes_match_table_12_3_2_4() {
    let table: &[(u16, &str)] = &[
        (10, "MEF_CLIENT_CMD_ISSUED"),
        (11, "MEF_CLIENT_CMD_REISSUED"),
        (20, "MEF_CLIENT_CMD_OK"),
        (40, "MEF_CLIENT_CMD_REPEATED_CMD_ID"),
        (41, "MEF_CLIENT_CMD_CLASS_NOT_SUPPORTED"),
        (42, "MEF_CLIENT_CMD_BAD_ARGUMENTS"),
        (43, "MEF_CLIENT_CMD_UNACCEPTABLE_ARGUMENTS"),
        (100, "MEF_CLIENT_CMD_CERT_PROV_SERVER_ERROR"),
        (101, "MEF_CLIENT_CMD_CERT_PROV_CLIENT_ERROR"),
        (201, "MEF_CLIENT_CMD_DEV_CFG_SERVER_ERROR"),
        (202, "MEF_CLIENT_CMD_DEV_CFG_CLIENT_ERROR"),
        (300, "MEF_CLIENT_CMD_MO_NODE_NOT_FOUND"),
        (301, "MEF_CLIENT_CMD_MO_NODE_TYPE_CONFLICT"),
        (302, "MEF_CLIENT_CMD_MO_NODE_BAD_ARGS"),
        (303, "MEF_CLIENT_CMD_MO_NODE_UNACCEPTABLE_ARGS"),
        (304, "MEF_CLIENT_CMD_MO_NODE_INCONSISTENT_CONFIG"),
        (305, "MEF_CLIENT_CMD_MO_NODE_PROCESSING_FAILED"),
    ];
    for &(n, name) in table {
        assert_eq!(CmdStatusCode(n).name(), Some(name));
    }
    let known = (0..=1000u16)
        .filter(|&n| CmdStatusCode(n).is_known())
        .count();
    assert_eq!(known, table.len());
    assert_eq!(
        serde_json::to_value(CmdStatusCode(999)).unwrap(),
        json!(999),
        "unknown round-trips"
    );
    for (n, name) in [
        (0, "NO_MORE_COMMANDS"),
        (1, "CERT_PROV"),
        (2, "DEV_CFG"),
        (3, "MO_NODE"),
    ] {
        assert_eq!(CmdClassId(n).name(), Some(name));
    }
    assert!(!CmdClassId(4).is_known());
}

#[test]
fn xs_duration_parse_and_format() {
    for (text, secs, canonical) in [
        ("PT1H", 3600, "PT1H"),
        ("P1D", 86_400, "P1D"),
        ("P1DT2H3M4S", 93_784, "P1DT2H3M4S"),
        ("PT90M", 5400, "PT1H30M"),
        ("PT0S", 0, "PT0S"),
        ("PT1S", 1, "PT1S"),
        ("P2DT0S", 172_800, "P2D"),
    ] {
        let d = XsDuration::parse(text).unwrap();
        assert_eq!(d.0.as_secs(), secs, "{text}");
        assert_eq!(d.to_string(), canonical, "{text}");
        assert_eq!(XsDuration::parse(canonical).unwrap(), d);
    }
    assert_eq!(XsDuration::parse("PT0.25S").unwrap().0.as_millis(), 250);
    assert_eq!(XsDuration::parse("PT0.25S").unwrap().to_string(), "PT0.25S");
    for bad in [
        "", "P", "PT", "1H", "PT1", "PT1H1H", "PT1S1M", "P1Y", "P1M", "-PT1S", "PT1.5H", "P1DT",
        "PTxS", "PT1.S", "P1D1D",
    ] {
        assert!(XsDuration::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn identifier_syntax() {
    for (s, node, cse, ae) in [
        ("0.2.481.1.100.3030.10011", true, false, false),
        ("/cse-1", false, true, false),
        ("//sp.example/cse-1", false, true, false),
        ("Cae1", true, false, true),
        ("/cse-1/Cae1", false, false, true),
        ("//sp.example/cse-1/Cae1", false, false, true),
        ("//sp.example/Sae1", false, true, true),
        ("", false, false, false),
        ("/", false, false, false),
        ("/cse 1", false, false, false),
        ("//sp.example", false, false, false),
        ("/cse-1/xae", false, false, false),
    ] {
        assert_eq!(
            (is_node_id(s), is_cse_id(s), is_ae_id(s)),
            (node, cse, ae),
            "{s:?}"
        );
    }
    assert_eq!(
        cse_of_container_path("//sp.example/cse-9/cnt/sub").as_deref(),
        Some("//sp.example/cse-9")
    );
    assert_eq!(
        cse_of_container_path("/cse-9/cnt").as_deref(),
        Some("/cse-9")
    );
    assert_eq!(cse_of_container_path("cnt"), None);
}

// =============================================================================================
// Client side: CommandRunner

/// A configurable executor recording what it was asked to do.
#[derive(Default)]
struct Exec {
    cert: Option<Result<(), CertProvFailure>>,
    dev: Option<Result<(), DevCfgFailure>>,
    symm_keys: Vec<String>,
    certs: Vec<String>,
    anchors: Vec<String>,
    fetch: Option<Result<Vec<u8>, ()>>,
    /// Payload that matches any fingerprint.
    good_payload: Vec<u8>,
    client_id: String,
    /// Changes the echoed key registration response.
    tamper_key: Option<fn(&mut KeyRegResponse)>,
    /// Changes the echoed MAF client registration response.
    tamper_reg: Option<fn(&mut ClientRegResponse)>,
    calls: Vec<String>,
    key_requests: Vec<KeyRegRequest>,
}

impl Exec {
    fn new() -> Self {
        Self {
            client_id: "dev-1".into(),
            good_payload: b"CERT".to_vec(),
            ..Self::default()
        }
    }

    fn echo_key(
        &mut self,
        via: &str,
        cfg: &ClientRegCfg,
        req: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        self.calls.push(format!("{via} {}", cfg.fqdn));
        self.key_requests.push(req.clone());
        let mut resp = KeyRegResponse {
            rki: "ABCD".into(),
            kid: format!("ABCD@{}", cfg.fqdn),
            exp: req.exp.clone(),
            src_id: self.client_id.clone(),
            lbl: req.lbl.clone(),
            admin_fqdn: req.admin_fqdn.clone(),
            suid: req.suid,
            tids: req.tids.clone().unwrap_or_default(),
        };
        if let Some(t) = self.tamper_key {
            t(&mut resp);
        }
        Ok(resp)
    }
}

impl CommandExecutor for Exec {
    fn cert_prov(&mut self, args: &CertProvArgs) -> Result<(), CertProvFailure> {
        self.calls.push(format!("cert_prov {}", args.subject_id));
        self.cert.unwrap_or(Ok(()))
    }
    fn dev_cfg(&mut self, dev_mgmt: DevMgmtId, server_uri: &str) -> Result<(), DevCfgFailure> {
        self.calls
            .push(format!("dev_cfg {} {server_uri}", dev_mgmt.0));
        self.dev.unwrap_or(Ok(()))
    }
    fn has_symmetric_key(&self, id: &str) -> bool {
        self.symm_keys.iter().any(|k| k == id)
    }
    fn has_certificate(&self, fp: &str) -> bool {
        self.certs.iter().any(|k| k == fp)
    }
    fn has_trust_anchor(&self, fp: &str) -> bool {
        self.anchors.iter().any(|k| k == fp)
    }
    fn https_get(&mut self, uri: &str) -> Result<Vec<u8>, ProcessingFailure> {
        self.calls.push(format!("get {uri}"));
        self.fetch
            .clone()
            .unwrap_or(Err(()))
            .map_err(|_| ProcessingFailure("unreachable".into()))
    }
    fn certificate_matches(&self, payload: &[u8], _fp: &str) -> bool {
        payload == self.good_payload
    }
    fn mef_key_registration(
        &mut self,
        cfg: &ClientRegCfg,
        req: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        self.echo_key("mef", cfg, req)
    }
    fn maf_key_registration(
        &mut self,
        cfg: &ClientRegCfg,
        req: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        self.echo_key("maf", cfg, req)
    }
    fn maf_client_registration(
        &mut self,
        cfg: &ClientRegCfg,
        req: &ClientRegRequest,
    ) -> Result<ClientRegResponse, ProcessingFailure> {
        self.calls.push(format!("maf_reg {}", cfg.fqdn));
        let mut resp = ClientRegResponse {
            ri: "M1".into(),
            exp: req.exp.clone(),
            lbl: req.lbl.clone(),
            client_id: self.client_id.clone(),
            admin_fqdn: req.admin_fqdn.clone(),
            ch: None,
        };
        if let Some(t) = self.tamper_reg {
            t(&mut resp);
        }
        Ok(resp)
    }
}

fn profile(kind: ClientKind) -> ClientProfile {
    ClientProfile {
        mef_fqdn: Fqdn::parse(MEF).unwrap(),
        client_id: "dev-1".into(),
        kind,
        classes: vec![
            CmdClassId::NO_MORE_COMMANDS,
            CmdClassId::CERT_PROV,
            CmdClassId::DEV_CFG,
            CmdClassId::MO_NODE,
        ],
        cert_prov_protocols: vec![CertProvProtocolId::EST],
        dev_mgmt: vec![DevMgmtId::OMA_LWM2M],
    }
}

fn cmd(id: u64, status: u16, desc: Value) -> Value {
    json!({"sec:mefClientCmd": {"cmdID": id, "cmdDescription": desc, "cmdStatusCode": status}})
}

fn desc(args: CmdArgs) -> Value {
    serde_json::to_value(CmdDescription::new(args)).unwrap()
}

fn cert_args(protocol: u8, uri: &str, subject_type: u8, subject_id: &str) -> Value {
    desc(CmdArgs::CertProv(CertProvArgs {
        protocol: CertProvProtocolId(protocol),
        uri: uri.into(),
        subject_type: CertSubjectType(subject_type),
        subject_id: subject_id.into(),
    }))
}

fn run(kind: ClientKind, exec: &mut Exec, tree: &mut MoTree, body: Value) -> Outcome {
    CommandRunner::new(profile(kind)).process(&body, tree, exec, t0())
}

fn status_of(o: Outcome) -> u16 {
    match o {
        Outcome::Update(u) => u.status.0,
        other => panic!("expected an Update, got {other:?}"),
    }
}

#[test]
fn runner_generic_steps() {
    let est = format!("https://{MEF}/.well-known/est");
    let ok_cert = cert_args(1, &est, 3, "Cdev1");
    let mut tree = MoTree::new();
    let mut exec = Exec::new();
    let mut runner = CommandRunner::new(profile(ClientKind::Ae));

    // Step 4a: unparsable ⇒ no Update.
    for bad in [
        json!("x"),
        json!({"sec:mefClientCmd": {"cmdID": 1}}),
        cmd(1, 10, json!({"cmdArgs": {}})),
    ] {
        assert!(
            matches!(
                runner.process(&bad, &mut tree, &mut exec, t0()),
                Outcome::Unparsable(_)
            ),
            "{bad}"
        );
    }
    assert_eq!(runner.last_update(), None);

    // A command executes: OK, remembered as the last Update.
    let o = runner.process(&cmd(7, 10, ok_cert.clone()), &mut tree, &mut exec, t0());
    assert_eq!(
        o,
        Outcome::Update(CmdUpdate {
            cmd_id: 7,
            status: CmdStatusCode::OK
        })
    );
    assert_eq!(exec.calls, ["cert_prov Cdev1"]);
    // Step 4b: the Update was lost; the MEF REISSUES cmdID 7: report again, do not re-execute.
    let o = runner.process(&cmd(7, 11, ok_cert.clone()), &mut tree, &mut exec, t0());
    assert_eq!(
        o,
        Outcome::Update(CmdUpdate {
            cmd_id: 7,
            status: CmdStatusCode::OK
        })
    );
    assert_eq!(exec.calls.len(), 1, "not executed twice");
    // The MEF ISSUES cmdID 7 again: REPEATED_CMD_ID (40), not executed.
    assert_eq!(
        status_of(runner.process(&cmd(7, 10, ok_cert.clone()), &mut tree, &mut exec, t0())),
        40
    );
    assert_eq!(exec.calls.len(), 1);
    // A REISSUED command the client never saw is executed.
    assert_eq!(
        status_of(runner.process(&cmd(8, 11, ok_cert.clone()), &mut tree, &mut exec, t0())),
        20
    );
    assert_eq!(exec.calls.len(), 2);

    // Step 4c: unknown class 9, and a known class the client does not support.
    assert_eq!(
        status_of(runner.process(
            &cmd(9, 10, json!({"cmdClassID": 9, "cmdArgs": {}})),
            &mut tree,
            &mut exec,
            t0()
        )),
        41
    );
    let mut limited = profile(ClientKind::Ae);
    limited.classes = vec![CmdClassId::NO_MORE_COMMANDS];
    let o = CommandRunner::new(limited).process(
        &cmd(10, 10, ok_cert.clone()),
        &mut tree,
        &mut exec,
        t0(),
    );
    assert_eq!(status_of(o), 41);

    // 42: the wrong choice, and unparsable values per class.
    for (i, bad) in [
        json!({"cmdClassID": 1, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT1S"}}}),
        json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "soon"}}}),
        json!({"cmdClassID": 1, "cmdArgs": {"certProvCmdArgs": {"URI": est}}}),
        json!({"cmdClassID": 2, "cmdArgs": {"devCfgCmdArgs": {"deviceConfigURI": "lwm2m:https://x"}}}),
        json!({"cmdClassID": 2, "cmdArgs": {"devCfgCmdArgs": {"deviceConfigURI": "3"}}}),
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectTypeID": 1}}}),
        json!({"cmdClassID": 3, "cmdArgs": "MONodeCmdArgs"}),
    ]
    .into_iter()
    .enumerate()
    {
        let o = runner.process(&cmd(100 + i as u64, 10, bad.clone()), &mut tree, &mut exec, t0());
        assert_eq!(status_of(o), 42, "{bad}");
    }

    // NO_MORE_COMMANDS: retry after retryDuration, no Update, last Update unchanged.
    let before = runner.last_update();
    let o = runner.process(
        &cmd(
            12,
            10,
            desc(CmdArgs::NoMore {
                retry_duration: XsDuration::from_secs(5),
            }),
        ),
        &mut tree,
        &mut exec,
        t0(),
    );
    assert_eq!(
        o,
        Outcome::Retry {
            cmd_id: 12,
            after: XsDuration::from_secs(5)
        }
    );
    assert_eq!(runner.last_update(), before);
}

#[test]
fn runner_cert_prov() {
    let est = format!("https://{MEF}/.well-known/est");
    let est_port = format!("https://{}:8443/.well-known/est", MEF.to_uppercase());
    // (client kind, protocol, URI, subject type, subject ID, executor result, expected status)
    let cases: Vec<(
        ClientKind,
        u8,
        &str,
        u8,
        &str,
        Option<Result<(), CertProvFailure>>,
        u16,
    )> = vec![
        (ClientKind::Ae, 1, &est, 3, "Cdev1", None, 20),
        (ClientKind::Ae, 1, &est_port, 3, "/cse-1/Cdev1", None, 20),
        (ClientKind::Cse, 1, &est, 2, "/cse-1", None, 20),
        (
            ClientKind::Node,
            1,
            &est,
            1,
            "0.2.481.1.100.3030.10011",
            None,
            20,
        ),
        (ClientKind::Node, 1, &est, 2, "//sp.example/cse-1", None, 20),
        (ClientKind::Node, 1, &est, 3, "Cdev1", None, 20),
        (
            ClientKind::Ae,
            1,
            &est,
            3,
            "Cdev1",
            Some(Err(CertProvFailure::Server)),
            100,
        ),
        (
            ClientKind::Ae,
            1,
            &est,
            3,
            "Cdev1",
            Some(Err(CertProvFailure::Client)),
            101,
        ),
        // 43: protocol not supported (SCEP, unknown), URI not the MEF, subject type not
        // allowed for the kind, subject ID of the wrong kind.
        (ClientKind::Ae, 2, &est, 3, "Cdev1", None, 43),
        (ClientKind::Ae, 7, &est, 3, "Cdev1", None, 43),
        (
            ClientKind::Ae,
            1,
            "https://evil.example/.well-known/est",
            3,
            "Cdev1",
            None,
            43,
        ),
        (
            ClientKind::Ae,
            1,
            "https://mef.m2mtrust.example.evil.example/est",
            3,
            "Cdev1",
            None,
            43,
        ),
        (
            ClientKind::Ae,
            1,
            "https://evil.example@/est",
            3,
            "Cdev1",
            None,
            43,
        ),
        (ClientKind::Ae, 1, "not a uri", 3, "Cdev1", None, 43),
        (ClientKind::Cse, 1, &est, 3, "Cdev1", None, 43),
        (ClientKind::Cse, 1, &est, 1, "0.2.481", None, 43),
        (ClientKind::Ae, 1, &est, 2, "/cse-1", None, 43),
        (ClientKind::Node, 1, &est, 9, "Cdev1", None, 43),
        (ClientKind::Cse, 1, &est, 2, "Cdev1", None, 43),
        (ClientKind::Ae, 1, &est, 3, "/cse-1", None, 43),
        (ClientKind::Node, 1, &est, 1, "/cse-1", None, 43),
    ];
    for (i, (kind, protocol, uri, st, sid, result, want)) in cases.into_iter().enumerate() {
        let mut exec = Exec {
            cert: result,
            ..Exec::new()
        };
        let got = status_of(run(
            kind,
            &mut exec,
            &mut MoTree::new(),
            cmd(1, 10, cert_args(protocol, uri, st, sid)),
        ));
        assert_eq!(got, want, "case {i}: {kind:?} {protocol} {uri} {st} {sid}");
        assert_eq!(
            exec.calls.len(),
            usize::from(want != 43),
            "case {i}: executed only when acceptable"
        );
    }
}

#[test]
fn runner_dev_cfg() {
    let cases: Vec<(String, Option<Result<(), DevCfgFailure>>, u16)> = vec![
        (format!("3:coaps://{MEF}:5684"), None, 20),
        (
            format!("3:https://{MEF}/dm"),
            Some(Err(DevCfgFailure::Server)),
            201,
        ),
        (
            format!("3:https://{MEF}/dm"),
            Some(Err(DevCfgFailure::Client)),
            202,
        ),
        (format!("1:https://{MEF}/dm"), None, 43),
        (format!("9:https://{MEF}/dm"), None, 43),
        ("3:https://dm.other.example/dm".to_string(), None, 43),
        ("3:http://server.dmprovider.com".to_string(), None, 43),
        ("x:https://mef".to_string(), None, 42),
    ];
    for (uri, result, want) in cases {
        let mut exec = Exec {
            dev: result,
            ..Exec::new()
        };
        let got = status_of(run(
            ClientKind::Node,
            &mut exec,
            &mut MoTree::new(),
            cmd(
                1,
                10,
                desc(CmdArgs::DevCfg {
                    device_config_uri: uri.clone(),
                }),
            ),
        ));
        assert_eq!(got, want, "{uri}");
        if want != 43 && want != 42 {
            assert_eq!(
                exec.calls,
                [format!("dev_cfg 3 {}", uri.split_once(':').unwrap().1)]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MO_NODE

const PARENT: &str = "./p";
const AP: &str = "./p/ap";

fn cfg(fqdn: &str) -> ClientRegCfg {
    ClientRegCfg {
        expiration_time: Some(t0() + TimeDelta::days(30)),
        labels: Some(vec!["l".into()]),
        fqdn: fqdn.into(),
        admin_fqdn: ADMIN.into(),
        http_port: Some(443),
        ..ClientRegCfg::default()
    }
}

/// A tree whose `[authenticationProfile]` at [`AP`] is consistent with `suid`.
fn consistent_tree(suid: u16) -> MoTree {
    let mut tree = MoTree::new();
    let parent = match suid % 10 {
        1 => MoNode::MafClientRegCfg(cfg("maf.m2mtrust.example")),
        2 => MoNode::Registration(RegistrationMo {
            registrar_cse_id: "/cse-in".into(),
        }),
        _ => MoNode::DataCollection(DataCollectionMo {
            container_path: "//sp.example/cse-dc/cnt".into(),
        }),
    };
    tree.insert(PARENT, parent);
    let family = suid / 10;
    let profile = AuthenticationProfile {
        suid: Suid(suid),
        symm_key_id: (family == 1).then(|| "k1@mef".to_string()),
        key_reg_duration: matches!(family, 2 | 3).then(|| XsDuration::from_secs(3600)),
        key_reg_labels: Some(vec!["kl".into()]),
        tls_ciphersuites: Some(if family == 4 {
            vec![0xC02B, CERT_MANDATORY_SUITES[0]]
        } else {
            vec![PSK_MANDATORY_SUITES[1]]
        }),
        my_cert_fingerprint: (family == 4).then(|| "fp-me".to_string()),
        ..AuthenticationProfile::default()
    };
    tree.insert(AP, MoNode::AuthenticationProfile(profile));
    match family {
        2 => {
            tree.insert("./p/ap/mef", MoNode::MefClientRegCfg(cfg(MEF)));
        }
        3 => {
            tree.insert(
                "./p/ap/maf",
                MoNode::MafClientRegCfg(cfg("maf.m2mtrust.example")),
            );
        }
        4 => {
            tree.insert(
                "./p/ap/ta",
                MoNode::TrustAnchorCred(TrustAnchorCred {
                    cert_fingerprint: "fp-ta".into(),
                    ..TrustAnchorCred::default()
                }),
            );
        }
        _ => {}
    }
    tree
}

/// Breaks one requirement of the table in a consistent tree.
fn break_requirement(tree: &mut MoTree, req: SuidRequirement) {
    let ap = |t: &mut MoTree| t.auth_profile_mut(AP).unwrap().clone();
    let mut p = ap(tree);
    match req {
        SuidRequirement::ParentIs(t) => {
            let other = if t == MoNodeType::Registration {
                MoNode::DataCollection(DataCollectionMo {
                    container_path: "/c/x".into(),
                })
            } else {
                MoNode::Registration(RegistrationMo {
                    registrar_cse_id: "/c".into(),
                })
            };
            tree.insert(PARENT, other);
        }
        SuidRequirement::HasChild(t) => {
            let child = tree
                .children(AP)
                .find(|(_, n)| n.node_type() == t)
                .unwrap()
                .0
                .to_string();
            tree.remove(&child);
        }
        SuidRequirement::TrustAnchorChild => {
            tree.remove("./p/ap/ta");
        }
        SuidRequirement::SymmKeyId => p.symm_key_id = None,
        SuidRequirement::KeyRegDuration => p.key_reg_duration = None,
        SuidRequirement::PskCiphersuites => {
            p.tls_ciphersuites = Some(vec![0xC02B, CERT_MANDATORY_SUITES[0]])
        }
        SuidRequirement::CertCiphersuites => {
            p.tls_ciphersuites = Some(PSK_MANDATORY_SUITES.to_vec())
        }
        SuidRequirement::MyCertFingerprint => p.my_cert_fingerprint = None,
    }
    if !matches!(
        req,
        SuidRequirement::ParentIs(_)
            | SuidRequirement::HasChild(_)
            | SuidRequirement::TrustAnchorChild
    ) {
        *tree.auth_profile_mut(AP).unwrap() = p;
    }
}

fn mo_cmd(suid_arg: Option<Value>) -> Value {
    let mut args = json!({"objectPath": AP, "objectTypeID": 1});
    if let Some(a) = suid_arg {
        args["objectTypeSpecifcArgs"] = a;
    }
    cmd(
        1,
        10,
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": args}}),
    )
}

/// An executor under which every consistent profile processes successfully.
fn capable() -> Exec {
    Exec {
        symm_keys: vec!["k1@mef".into()],
        certs: vec!["fp-me".into()],
        ..Exec::new()
    }
}

#[test]
fn suid_table_every_row() {
    // Every SUID an MO_NODE command can process is consistent in its tree and processes OK.
    for suid in [11u16, 12, 13, 21, 22, 23, 32, 33, 41, 42, 43] {
        let mut tree = consistent_tree(suid);
        assert_eq!(check_suid_consistency(&tree, AP), Ok(()), "SUID {suid}");
        let got = status_of(run(
            ClientKind::Node,
            &mut capable(),
            &mut tree,
            mo_cmd(Some(json!({"SUID": suid}))),
        ));
        assert_eq!(got, 20, "SUID {suid}");
    }
    // Every row, every SUID of the row: breaking the requirement gives 304.
    let mut checked = 0;
    for rule in SUID_CONSISTENCY {
        for &suid in rule.suids {
            if suid == 31 {
                continue; // invalid anyway, below
            }
            let mut tree = consistent_tree(suid);
            break_requirement(&mut tree, rule.requirement);
            assert_eq!(
                check_suid_consistency(&tree, AP),
                Err(Inconsistency::Unmet(rule.requirement)),
                "SUID {suid} {:?}",
                rule.requirement
            );
            let got = status_of(run(
                ClientKind::Node,
                &mut capable(),
                &mut tree,
                mo_cmd(Some(json!({"SUID": suid}))),
            ));
            assert_eq!(got, 304, "SUID {suid} {:?}", rule.requirement);
            checked += 1;
        }
    }
    assert_eq!(checked, 38, "every (row, SUID) pair except 31");
    // Missing TLSCiphersuites fails both ciphersuite rows.
    for suid in [12u16, 42] {
        let mut tree = consistent_tree(suid);
        tree.auth_profile_mut(AP).unwrap().tls_ciphersuites = None;
        assert_eq!(
            status_of(run(
                ClientKind::Node,
                &mut capable(),
                &mut tree,
                mo_cmd(Some(json!({"SUID": suid})))
            )),
            304
        );
    }
    // SUIDs not processable by MO_NODE, and 31 (digest §B.29).
    for suid in [10u16, 14, 15, 24, 25, 31, 34, 35, 40, 44, 45, 99] {
        let mut tree = consistent_tree(suid);
        assert_eq!(
            check_suid_consistency(&tree, AP),
            Err(Inconsistency::UnsupportedSuid(Suid(suid)))
        );
        assert_eq!(
            status_of(run(
                ClientKind::Node,
                &mut capable(),
                &mut tree,
                mo_cmd(Some(json!({"SUID": suid})))
            )),
            304,
            "SUID {suid}"
        );
    }
}

#[test]
fn mo_node_generic_checks() {
    let mut exec = capable();
    let mut tree = consistent_tree(12);
    let c = |path: &str, ty: u8, extra: Option<Value>| {
        let mut a = json!({"objectPath": path, "objectTypeID": ty});
        if let Some(e) = extra {
            a["objectTypeSpecifcArgs"] = e;
        }
        cmd(
            1,
            10,
            json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": a}}),
        )
    };
    for (name, body, want) in [
        ("no node", c("./nope", 1, Some(json!({"SUID": 12}))), 300),
        ("type conflict", c(AP, 2, None), 301),
        (
            "type conflict, parent is registration",
            c(PARENT, 3, None),
            301,
        ),
        ("unknown object type", c(AP, 9, None), 301),
        ("args missing", c(AP, 1, None), 302),
        (
            "args unparsable",
            c(AP, 1, Some(json!({"SUID": "twelve"}))),
            302,
        ),
        (
            "args unknown member",
            c(AP, 1, Some(json!({"SUID": 12, "x": 1}))),
            302,
        ),
        ("other SUID", c(AP, 1, Some(json!({"SUID": 22}))), 303),
        (
            "trailing slash",
            c("./p/ap/", 1, Some(json!({"SUID": 12}))),
            20,
        ),
    ] {
        assert_eq!(
            status_of(run(ClientKind::Node, &mut exec, &mut tree, body)),
            want,
            "{name}"
        );
    }
}

#[test]
fn mo_node_authentication_profile_processes() {
    let arg = |s: u16| Some(json!({"SUID": s}));
    // {11,12,13}: symmKeyValue present ⇒ OK without a local key; symmKeyID without a local
    // key ⇒ 305.
    let mut tree = consistent_tree(13);
    tree.auth_profile_mut(AP).unwrap().symm_key_value = Some(SecretKey::new(vec![1; 32]));
    assert_eq!(
        status_of(run(
            ClientKind::Node,
            &mut Exec::new(),
            &mut tree,
            mo_cmd(arg(13))
        )),
        20
    );
    assert_eq!(
        status_of(run(
            ClientKind::Node,
            &mut Exec::new(),
            &mut consistent_tree(12),
            mo_cmd(arg(12))
        )),
        305
    );
    // {41,42,43}: certificate present ⇒ associated + OK; absent ⇒ 305 (digest §B.27).
    let mut tree = consistent_tree(42);
    assert_eq!(
        status_of(run(
            ClientKind::Node,
            &mut capable(),
            &mut tree,
            mo_cmd(arg(42))
        )),
        20
    );
    assert!(tree.auth_profile(AP).unwrap().certificate_associated);
    assert_eq!(
        status_of(run(
            ClientKind::Node,
            &mut Exec::new(),
            &mut consistent_tree(42),
            mo_cmd(arg(42))
        )),
        305
    );

    // {21,22,23}: the request formed from the MO tree (§8.3.9.9.4).
    for (suid, target) in [
        (21u16, "maf.m2mtrust.example"),
        (22, "/cse-in"),
        (23, "//sp.example/cse-dc"),
    ] {
        let mut tree = consistent_tree(suid);
        let mut exec = Exec::new();
        assert_eq!(
            status_of(run(
                ClientKind::Node,
                &mut exec,
                &mut tree,
                mo_cmd(arg(suid))
            )),
            20,
            "SUID {suid}"
        );
        assert_eq!(exec.calls, [format!("mef {MEF}")]);
        let req = &exec.key_requests[0];
        assert_eq!(req.fqdn, MEF);
        assert_eq!(req.exp, ts(t0() + TimeDelta::hours(1)));
        assert_eq!(req.lbl, Some(vec!["kl".to_string()]));
        assert_eq!(req.admin_fqdn, ADMIN);
        assert_eq!(req.suid, Suid(suid));
        assert_eq!(req.tids, Some(vec![target.to_string()]));
        assert!(req.kv.is_none(), "keyValue shall not be present");
        assert_eq!(
            tree.auth_profile(AP)
                .unwrap()
                .key_registration
                .as_ref()
                .unwrap()
                .rki,
            "ABCD"
        );
    }
    // {32,33} go to the MAF of the child [MAFClientRegCfg].
    for suid in [32u16, 33] {
        let mut exec = Exec::new();
        assert_eq!(
            status_of(run(
                ClientKind::Node,
                &mut exec,
                &mut consistent_tree(suid),
                mo_cmd(arg(suid))
            )),
            20
        );
        assert_eq!(exec.calls, ["maf maf.m2mtrust.example"]);
    }
    // Response verification failures ⇒ 305, nothing stored.
    let tampers: [(&str, fn(&mut KeyRegResponse)); 5] = [
        ("expired", |r| r.exp = "20200101T000000".into()),
        ("other source", |r| r.src_id = "dev-9".into()),
        ("other admin", |r| r.admin_fqdn = "x.example".into()),
        ("other SUID", |r| r.suid = Suid(23)),
        ("other targets", |r| r.tids = vec!["/cse-x".into()]),
    ];
    for (name, t) in tampers {
        for suid in [22u16, 32] {
            let mut tree = consistent_tree(suid);
            let mut exec = Exec {
                tamper_key: Some(t),
                ..Exec::new()
            };
            assert_eq!(
                status_of(run(
                    ClientKind::Node,
                    &mut exec,
                    &mut tree,
                    mo_cmd(arg(suid))
                )),
                305,
                "{name} {suid}"
            );
            assert!(tree.auth_profile(AP).unwrap().key_registration.is_none());
        }
    }
    // A [dataCollection] parent whose containerPath names no CSE ⇒ 305.
    let mut tree = consistent_tree(23);
    tree.insert(
        PARENT,
        MoNode::DataCollection(DataCollectionMo {
            container_path: "cnt".into(),
        }),
    );
    assert_eq!(
        status_of(run(
            ClientKind::Node,
            &mut Exec::new(),
            &mut tree,
            mo_cmd(arg(23))
        )),
        305
    );
    // The default executor cannot register keys ⇒ 305.
    struct Nothing;
    impl CommandExecutor for Nothing {}
    let o = CommandRunner::new(profile(ClientKind::Node)).process(
        &mo_cmd(arg(22)),
        &mut consistent_tree(22),
        &mut Nothing,
        t0(),
    );
    assert_eq!(status_of(o), 305);
}

#[test]
fn mo_node_trust_anchor_and_maf_registration() {
    let ta_cmd = cmd(
        1,
        10,
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "./ta", "objectTypeID": 2}}}),
    );
    let ta = |uri: Option<&str>| {
        let mut t = MoTree::new();
        t.insert(
            "./ta",
            MoNode::TrustAnchorCred(TrustAnchorCred {
                cert_fingerprint: "fp".into(),
                uri: uri.map(String::from),
                ..TrustAnchorCred::default()
            }),
        );
        t
    };
    // (local copy, URI, fetch result, expected status, fetched)
    let cases: Vec<(bool, Option<&str>, Option<Result<Vec<u8>, ()>>, u16, bool)> = vec![
        (true, None, None, 20, false),
        (
            false,
            Some("https://ca.example/ta.der"),
            Some(Ok(b"CERT".to_vec())),
            20,
            true,
        ),
        (
            false,
            Some("https://ca.example/ta.der"),
            Some(Ok(b"OTHER".to_vec())),
            305,
            false,
        ),
        (
            false,
            Some("https://ca.example/ta.der"),
            Some(Err(())),
            305,
            false,
        ),
        (false, None, None, 305, false),
    ];
    for (i, (local, uri, fetch, want, fetched)) in cases.into_iter().enumerate() {
        let mut tree = ta(uri);
        let mut exec = Exec {
            anchors: if local { vec!["fp".into()] } else { vec![] },
            fetch,
            ..Exec::new()
        };
        assert_eq!(
            status_of(run(ClientKind::Node, &mut exec, &mut tree, ta_cmd.clone())),
            want,
            "case {i}"
        );
        let MoNode::TrustAnchorCred(t) = tree.get("./ta").unwrap() else {
            panic!()
        };
        assert_eq!(t.associated, want == 20, "case {i}");
        assert_eq!(t.certificate.is_some(), fetched, "case {i}");
    }

    let maf_cmd = cmd(
        1,
        10,
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "./maf", "objectTypeID": 3}}}),
    );
    let tampers: [(&str, Option<fn(&mut ClientRegResponse)>, u16); 4] = [
        ("ok", None, 20),
        ("expired", Some(|r| r.exp = "20200101T000000".into()), 305),
        ("other client", Some(|r| r.client_id = "dev-9".into()), 305),
        (
            "other admin",
            Some(|r| r.admin_fqdn = "x.example".into()),
            305,
        ),
    ];
    for (name, t, want) in tampers {
        let mut tree = MoTree::new();
        tree.insert(
            "./maf",
            MoNode::MafClientRegCfg(cfg("maf.m2mtrust.example")),
        );
        let mut exec = Exec {
            tamper_reg: t,
            ..Exec::new()
        };
        assert_eq!(
            status_of(run(ClientKind::Node, &mut exec, &mut tree, maf_cmd.clone())),
            want,
            "{name}"
        );
        let MoNode::MafClientRegCfg(c) = tree.get("./maf").unwrap() else {
            panic!()
        };
        assert_eq!(c.registration.is_some(), want == 20, "{name}");
    }
    // No expirationTime in the MO ⇒ the request cannot be formed ⇒ 305.
    let mut tree = MoTree::new();
    tree.insert(
        "./maf",
        MoNode::MafClientRegCfg(ClientRegCfg {
            expiration_time: None,
            ..cfg("maf.m2mtrust.example")
        }),
    );
    assert_eq!(
        status_of(run(ClientKind::Node, &mut Exec::new(), &mut tree, maf_cmd)),
        305
    );
}

// =============================================================================================
// End to end: the client runner against the real MEF procedures

/// An executor that performs the MEF Key Registration against a [`Procedures`] instance.
struct Loopback<'a> {
    fx: &'a Fixture,
    session: Session,
}

impl CommandExecutor for Loopback<'_> {
    fn mef_key_registration(
        &mut self,
        _cfg: &ClientRegCfg,
        req: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        let body = json!({"sec:keyReg": serde_json::to_value(req).unwrap()});
        let r = self.fx.call(
            &self.session,
            Operation::Create,
            "mef/keys",
            Some(body),
            t0(),
        );
        if r.status != Rsc::CREATED {
            return Err(ProcessingFailure(format!("{:?}", r.status)));
        }
        serde_json::from_value(r.content.unwrap()["sec:keyReg"].clone())
            .map_err(|e| ProcessingFailure(e.to_string()))
    }
}

#[test]
fn end_to_end_command_loop() {
    let fx = memory();
    let now = t0();
    let id = fx.register(&dev1(), CMDS, now);
    fx.register(&dev1(), ADMIN, now);
    let cmd_path = format!("mef/reg/{id}/cmd");
    let mut tree = consistent_tree(22);
    let mut runner = CommandRunner::new(profile(ClientKind::Ae));
    let mut exec = Loopback {
        fx: &fx,
        session: dev1(),
    };
    let mut resp = fx.call(&dev1(), Operation::Retrieve, &cmd_path, None, now);
    let mut statuses = vec![];
    let retry = loop {
        match runner.process(resp.content.as_ref().unwrap(), &mut tree, &mut exec, now) {
            Outcome::Update(u) => {
                statuses.push(u.status.0);
                let b = json!({"sec:cmdUpd": serde_json::to_value(u).unwrap()});
                resp = fx.call(&dev1(), Operation::Update, &cmd_path, Some(b), now);
                assert_eq!(resp.status, Rsc::UPDATED);
            }
            Outcome::Retry { after, .. } => break after,
            Outcome::Unparsable(e) => panic!("{e}"),
        }
    };
    // CERT_PROV: Loopback has no EST client ⇒ 101; MO_NODE SUID 22 ⇒ key registered ⇒ 20.
    assert_eq!(statuses, [101, 20]);
    assert_eq!(retry, XsDuration::from_secs(600));
    let reports: Vec<u16> = fx
        .procs
        .command_state(&id)
        .unwrap()
        .reports
        .iter()
        .map(|r| r.status.0)
        .collect();
    assert_eq!(reports, [101, 20]);
    // The key the command registered is retrievable by its target.
    let kreg = tree
        .auth_profile(AP)
        .unwrap()
        .key_registration
        .clone()
        .unwrap();
    assert_eq!(kreg.rki, EXPORT_ID_HEX);
    let r = fx.call(
        &session("/cse-in"),
        Operation::Retrieve,
        &format!("mef/keys/{}", kreg.kid),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK);
}
