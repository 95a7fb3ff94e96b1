//! The MAF procedures (TS-0003 §8.8.2.3-§8.8.2.10) on the MEF procedure engine in the MAF role
//! ([`Procedures::maf`]): the digest's §10.5 cases MAF-1 to MAF-5, the role separation of
//! paths, JSON members and SUIDs, and the KmID assignment of remotely provisioned clients
//! (§8.8.2.3 steps 1a and 5), against the in-memory and the SQLite registry.
//!
//! The over-the-wire path is not covered here: `MefService` dispatches `mef/…` paths only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use m2mtrust_crypto::{Fqdn, Sealer, SecretKey};
use m2mtrust_mef::procedures::messages::MafClientRegResponse;
use m2mtrust_mef::procedures::types::{
    CertProvArgs, CertProvProtocolId, CertSubjectType, CmdArgs, CmdDescription, Suid, XsDuration,
};
use m2mtrust_mef::procedures::{
    AdminPolicy, KmAssigner, MemoryRegistry, Policy, ProcedureError, Procedures, Registry,
    RegistryError, Role, SqliteRegistry,
};
use m2mtrust_mef::wire::{MefRequest, Session};
use m2mtrust_model::types::Operation;
use m2mtrust_model::{Response, ResponseStatusCode as Rsc};
use serde_json::{Value, json};

const MAF: &str = "maf.m2mtrust.example";
const MEF: &str = "mef.m2mtrust.example";
/// Known stakeholder with a configuration and updates allowed.
const ADMIN: &str = "admin.m2mtrust.example";
/// Known stakeholder whose MEF policy queues commands (a MAF must ignore them).
const CMDS: &str = "cmds.m2mtrust.example";
const EXPORT_ID: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const EXPORT_ID_HEX: &str = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF";
const KE_ID: &str = "4F1C2D3E4F5A6B7C8D9EAFB0C1D2E3F4@mef.m2mtrust.example";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

fn export_key() -> SecretKey {
    SecretKey::new((0x40u8..0x60).collect())
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
            client_config: Some(json!({"mafKeyRegCfg": {"adminFQDN": ADMIN, "SUID": 32}})),
            initial_commands: vec![],
            allow_updates: true,
        },
    )
    .with_admin(
        Fqdn::parse(CMDS).unwrap(),
        AdminPolicy {
            client_config: None,
            initial_commands: vec![CmdDescription::new(CmdArgs::CertProv(CertProvArgs {
                protocol: CertProvProtocolId::EST,
                uri: format!("https://{MEF}/.well-known/est"),
                subject_type: CertSubjectType::AE_ID,
                subject_id: "Cdev1".into(),
            }))],
            allow_updates: true,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// KmID assignment hook

/// What the test assigner does when called.
#[derive(Clone)]
enum Assign {
    /// Returns this KmID.
    Ok(String),
    /// The MEF refused the KeID (`/fetchCredentials` status false).
    Refused,
    /// An internal failure.
    Broken,
}

/// One call of the assigner: (client ID, reg_id, expires, KeID).
type Call = (String, String, DateTime<Utc>, Option<String>);

/// Records every call.
struct TestAssigner {
    mode: Assign,
    calls: Mutex<Vec<Call>>,
}

impl TestAssigner {
    fn new(mode: Assign) -> Arc<Self> {
        Arc::new(Self {
            mode,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl KmAssigner for TestAssigner {
    fn assign(
        &self,
        session: &Session,
        reg_id: &str,
        expires: DateTime<Utc>,
    ) -> Result<String, ProcedureError> {
        self.calls.lock().unwrap().push((
            session.client_id.clone(),
            reg_id.to_owned(),
            expires,
            session.remote_key_id.clone(),
        ));
        match &self.mode {
            Assign::Ok(km_id) => Ok(km_id.clone()),
            Assign::Refused => Err(ProcedureError::RemoteCredentialRefused {
                key_id: session.remote_key_id.clone().unwrap_or_default(),
                reason: "the MEF answered status false".into(),
            }),
            Assign::Broken => Err(ProcedureError::Registry(RegistryError::Corrupt(
                "secret detail".into(),
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Sqlite,
}

struct Fixture {
    procs: Procedures,
    registry: Arc<dyn Registry>,
    _dir: Option<tempfile::TempDir>,
}

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::from_key(SecretKey::new(vec![7u8; 32])).unwrap())
}

/// An engine of `role` over a fresh registry, optionally with a KmID assigner.
fn fixture(backend: Backend, role: Role, assigner: Option<Arc<TestAssigner>>) -> Fixture {
    let (registry, dir): (Arc<dyn Registry>, _) = match backend {
        Backend::Memory => (Arc::new(MemoryRegistry::new()), None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let reg = SqliteRegistry::open(&dir.path().join("maf.db"), sealer()).unwrap();
            (Arc::new(reg), Some(dir))
        }
    };
    let fqdn = Fqdn::parse(match role {
        Role::Mef => MEF,
        Role::Maf => MAF,
    })
    .unwrap();
    let mut procs = match role {
        Role::Mef => Procedures::new(fqdn, registry.clone(), policy()),
        Role::Maf => Procedures::maf(fqdn, registry.clone(), policy()),
    };
    if let Some(a) = assigner {
        procs = procs.with_km_assigner(a);
    }
    assert_eq!(procs.role(), role);
    Fixture {
        procs,
        registry,
        _dir: dir,
    }
}

fn maf(backend: Backend) -> Fixture {
    fixture(backend, Role::Maf, None)
}

fn session(client: &str) -> Session {
    Session {
        client_id: client.into(),
        credential_id: format!("11-{client}@{MAF}"),
        bound_ids: vec![],
        certificate_authenticated: false,
        connection_export: Some((EXPORT_ID, export_key())),
        remote_key_id: None,
    }
}

/// Entity A, the Source MAF Client.
fn src() -> Session {
    session("Csrc")
}

/// Entity B, a Target MAF Client authenticated by an AE-ID certificate.
fn tgt() -> Session {
    Session {
        bound_ids: vec!["Ctgt".into()],
        certificate_authenticated: true,
        ..session("Ctgt")
    }
}

/// A client that authenticated with a remotely provisioned credential (§8.8.2.3 step 1a).
fn remote(client: &str) -> Session {
    Session {
        credential_id: format!("12-{KE_ID}"),
        remote_key_id: Some(KE_ID.into()),
        ..session(client)
    }
}

thread_local! {
    static RQI: Cell<u32> = const { Cell::new(0) };
}

impl Fixture {
    /// Sends one request; checks the echoed request ID and that errors carry m2m:dbg.
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
            "maf/reg",
            Some(reg_body(admin, now + TimeDelta::hours(2))),
            now,
        );
        assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
        body(&r, "sec:mafClientReg")["ri"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn register_key(&self, s: &Session, b: Value, now: DateTime<Utc>) -> Value {
        let r = self.call(s, Operation::Create, "maf/keys", Some(b), now);
        assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
        body(&r, "sec:keyReg").clone()
    }

    /// The registrations of `client` and the key registered under `rki`, for "nothing
    /// stored" checks.
    fn dump(&self, client: &str, rki: &str) -> String {
        let mut out = String::new();
        self.registry
            .transact(&mut |tx| {
                out = format!(
                    "regs: {:?}\nkey: {:?}",
                    tx.registrations_of(client)?,
                    tx.key(rki)?.map(|k| k.relative_key_id)
                );
                Ok(())
            })
            .unwrap();
        out
    }

    fn registration_count(&self, client: &str) -> usize {
        let mut n = 0;
        self.registry
            .transact(&mut |tx| {
                n = tx.registrations_of(client)?.len();
                Ok(())
            })
            .unwrap();
        n
    }
}

fn reg_body(admin: &str, exp: DateTime<Utc>) -> Value {
    json!({"sec:mafClientReg": {"fqdn": MAF, "exp": ts(exp), "lbl": ["site/7"], "adminFQDN": admin}})
}

fn key_body(suid: u16, tids: &[&str], kv: Option<&[u8]>, exp: DateTime<Utc>) -> Value {
    let mut inner =
        json!({"fqdn": MAF, "exp": ts(exp), "adminFQDN": ADMIN, "suid": suid, "tids": tids});
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

fn kv_of(v: &Value) -> Vec<u8> {
    B64.decode(v["kv"].as_str().unwrap()).unwrap()
}

/// Runs a test body once per registry implementation.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn memory_registry() {
                ($body)(Backend::Memory);
            }
            #[test]
            fn sqlite_registry() {
                ($body)(Backend::Sqlite);
            }
        }
    };
}

// =============================================================================================
// MAF-1: Client Registration, Configuration Retrieval, Update, De-Registration (§8.8.2.3-6)

both!(maf1_registration_lifecycle, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    let s = src();
    let r = fx.call(
        &s,
        Operation::Create,
        "maf/reg",
        Some(reg_body(ADMIN, now + TimeDelta::days(3))),
        now,
    );
    assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
    // Table 8.8.2.3-2: mafClientRegID, labels, expirationTime, MAF Client ID, adminFQDN; no
    // assignedSymmKeyID for a pre-provisioned client, no commands.
    let reg = body(&r, "sec:mafClientReg");
    let keys: Vec<&String> = reg.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ri", "exp", "lbl", "mafClientID", "adminFQDN"]);
    assert_eq!(reg["mafClientID"], json!("Csrc"));
    assert_eq!(reg["adminFQDN"], json!(ADMIN));
    assert_eq!(reg["lbl"], json!(["site/7"]));
    // The MAF shortens the proposed three days to its one-day maximum (step 3).
    assert_eq!(reg["exp"], json!(ts(now + TimeDelta::days(1))));
    let parsed: MafClientRegResponse = serde_json::from_value(reg.clone()).unwrap();
    assert_eq!(parsed.assigned_symm_key_id, None);
    let id = parsed.ri;
    let path = format!("maf/reg/{id}");

    // §8.8.2.4: the configuration under the MAF member name.
    let r = fx.call(&s, Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::OK);
    assert_eq!(
        body(&r, "sec:mafClientCfg"),
        &json!({"mafKeyRegCfg": {"adminFQDN": ADMIN, "SUID": 32}})
    );

    // §8.8.2.5: labels only ⇒ the response has only labels.
    let r = fx.call(
        &s,
        Operation::Update,
        &path,
        Some(json!({"sec:mafClientReg": {"fqdn": MAF, "lbl": ["site/9"]}})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED, "{:?}", r.content);
    assert_eq!(body(&r, "sec:mafClientReg"), &json!({"lbl": ["site/9"]}));
    // expirationTime only ⇒ only expirationTime.
    let r = fx.call(
        &s,
        Operation::Update,
        &path,
        Some(json!({"sec:mafClientReg": {"exp": ts(now + TimeDelta::hours(5))}})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED, "{:?}", r.content);
    assert_eq!(
        body(&r, "sec:mafClientReg"),
        &json!({"exp": ts(now + TimeDelta::hours(5))})
    );
    // Another client may not see or change the record.
    let r = fx.call(&tgt(), Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);

    // §8.8.2.6: De-Registration deletes; a retrieve afterwards is 4004.
    let r = fx.call(&s, Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::DELETED);
    assert_eq!(fx.registration_count("Csrc"), 0);
    let r = fx.call(&s, Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

both!(maf1_no_commands_at_a_maf, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    // The stakeholder's MEF policy queues commands; the MAF has none (§8.8.2).
    let r = fx.call(
        &src(),
        Operation::Create,
        "maf/reg",
        Some(reg_body(CMDS, now + TimeDelta::hours(1))),
        now,
    );
    assert_eq!(r.status, Rsc::CREATED);
    let reg = body(&r, "sec:mafClientReg");
    assert!(reg.get("ch").is_none(), "no command resource: {reg}");
    let id = reg["ri"].as_str().unwrap();
    for op in [Operation::Retrieve, Operation::Update] {
        let r = fx.call(
            &src(),
            op,
            &format!("maf/reg/{id}/cmd"),
            Some(json!({"sec:cmdUpd": {"cmdID": 1, "cmdStatusCode": 1}})),
            now,
        );
        assert_eq!(r.status, Rsc::NOT_FOUND, "{op:?}");
    }
    // Nor can the operator queue one.
    let cmd = policy().admins[&Fqdn::parse(CMDS).unwrap()].initial_commands[0].clone();
    assert!(fx.procs.queue_command(id, cmd).is_err());
    // No configuration for that stakeholder ⇒ 4004 (§8.8.2.4 step 3).
    let r = fx.call(
        &src(),
        Operation::Retrieve,
        &format!("maf/reg/{id}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

both!(maf1_role_separation_of_paths_and_names, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    let exp = now + TimeDelta::hours(1);
    let mef_named = json!({"sec:mefClientReg": reg_body(ADMIN, exp)["sec:mafClientReg"]});
    let other_fqdn = {
        let mut v = reg_body(ADMIN, exp);
        v["sec:mafClientReg"]["fqdn"] = json!(MEF);
        v
    };
    let cases: Vec<(&str, &str, Value, Rsc)> = vec![
        (
            "MEF path at a MAF",
            "mef/reg",
            reg_body(ADMIN, exp),
            Rsc::NOT_FOUND,
        ),
        ("MEF member name", "maf/reg", mef_named, Rsc::BAD_REQUEST),
        (
            "MEF-FQDN instead of MAF-FQDN",
            "maf/reg",
            other_fqdn,
            Rsc::BAD_REQUEST,
        ),
        (
            "key path of a MEF",
            "mef/keys",
            key_body(32, &["Ctgt"], None, exp),
            Rsc::NOT_FOUND,
        ),
    ];
    for (name, path, b, rsc) in cases {
        let r = fx.call(&src(), Operation::Create, path, Some(b), now);
        assert_eq!(r.status, rsc, "{name}: {:?}", r.content);
    }
    assert_eq!(fx.registration_count("Csrc"), 0, "nothing stored");

    // And the MEF engine knows nothing under `maf/`.
    let mef = fixture(b, Role::Mef, None);
    let r = mef.call(
        &src(),
        Operation::Create,
        "maf/reg",
        Some(reg_body(ADMIN, exp)),
        now,
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

// =============================================================================================
// MAF-2: empty updates and unknown identifiers

both!(maf2_empty_updates_and_unknown_ids, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    let id = fx.register(&src(), ADMIN, now);
    let key = fx.register_key(
        &src(),
        key_body(32, &["Ctgt"], None, now + TimeDelta::hours(1)),
        now,
    );
    let rki = key["rki"].as_str().unwrap();
    let before = fx.dump("Csrc", rki);
    // Neither expirationTime nor labels (Table 8.8.2.5-1).
    let r = fx.call(
        &src(),
        Operation::Update,
        &format!("maf/reg/{id}"),
        Some(json!({"sec:mafClientReg": {"fqdn": MAF}})),
        now,
    );
    assert_eq!(r.status, Rsc::BAD_REQUEST);
    // None of expirationTime, labels, targetIDs (Table 8.8.2.9-1).
    let r = fx.call(
        &src(),
        Operation::Update,
        &format!("maf/keys/{rki}"),
        Some(json!({"sec:keyReg": {"fqdn": MAF}})),
        now,
    );
    assert_eq!(r.status, Rsc::BAD_REQUEST);
    assert_eq!(
        fx.dump("Csrc", rki),
        before,
        "a refused update changes nothing"
    );
    // Unknown mafClientRegID / RelativeKeyID ⇒ 4004 for every operation.
    let upd_reg = json!({"sec:mafClientReg": {"lbl": ["x"]}});
    let upd_key = json!({"sec:keyReg": {"lbl": ["x"]}});
    for (op, content) in [
        (Operation::Retrieve, None),
        (Operation::Update, Some(upd_reg)),
        (Operation::Delete, None),
    ] {
        let r = fx.call(&src(), op, "maf/reg/R0000000000000000", content, now);
        assert_eq!(r.status, Rsc::NOT_FOUND, "reg {op:?}");
    }
    for (op, content) in [
        (Operation::Retrieve, None),
        (Operation::Update, Some(upd_key)),
        (Operation::Delete, None),
    ] {
        let r = fx.call(
            &src(),
            op,
            "maf/keys/00112233445566778899AABBCCDDEEFF",
            content,
            now,
        );
        assert_eq!(r.status, Rsc::NOT_FOUND, "key {op:?}");
    }
});

// =============================================================================================
// MAF-3: Key Value exported or supplied (§8.8.2.7 steps 2, 6, 8, 12)

both!(maf3_exported_and_supplied_key, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    fx.register(&src(), ADMIN, now);
    let exp = now + TimeDelta::hours(2);

    // Without Key Value both sides export: RelativeKeyID = hex(KcID), key = the export.
    let k = fx.register_key(&src(), key_body(32, &["Ctgt"], None, exp), now);
    assert_eq!(k["rki"], json!(EXPORT_ID_HEX));
    assert_eq!(k["kid"], json!(format!("{EXPORT_ID_HEX}@{MAF}")));
    assert_eq!(k["srcID"], json!("Csrc"));
    assert_eq!(k["suid"], json!(32));
    assert_eq!(k["tids"], json!(["Ctgt"]));
    assert_eq!(k["adminFQDN"], json!(ADMIN));
    assert_eq!(k["exp"], json!(ts(exp)));
    assert!(k.get("kv").is_none(), "the response never carries the key");
    let r = fx.call(
        &tgt(),
        Operation::Retrieve,
        &format!("maf/keys/{EXPORT_ID_HEX}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::OK);
    assert_eq!(kv_of(body(&r, "sec:keyReg")), export_key().expose_bytes());

    // With a Key Value the MAF stores it and assigns a fresh RelativeKeyID.
    let kv = [0x5au8; 32];
    let k = fx.register_key(&src(), key_body(33, &["Ctgt"], Some(&kv), exp), now);
    let rki = k["rki"].as_str().unwrap().to_owned();
    assert_ne!(rki, EXPORT_ID_HEX);
    assert_eq!(rki.len(), 32);
    assert!(
        rki.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert_eq!(k["kid"], json!(format!("{rki}@{MAF}")));
    // Retrieval by the Key Identifier `<rki>@<MAF-FQDN>` as well as by the RelativeKeyID.
    for path in [format!("maf/keys/{rki}"), format!("maf/keys/{rki}@{MAF}")] {
        let r = fx.call(&tgt(), Operation::Retrieve, &path, None, now);
        assert_eq!(r.status, Rsc::OK, "{path}");
        assert_eq!(kv_of(body(&r, "sec:keyReg")), kv);
    }
    // A Key Identifier of another function is not this MAF's key.
    let r = fx.call(
        &tgt(),
        Operation::Retrieve,
        &format!("maf/keys/{rki}@{MEF}"),
        None,
        now,
    );
    assert_eq!(r.status, Rsc::NOT_FOUND);

    // A second exported registration on the same session collides with hex(KcID): the MAF
    // picks another unused RelativeKeyID (step 8).
    let k = fx.register_key(&src(), key_body(32, &["Ctgt"], None, exp), now);
    assert_ne!(k["rki"], json!(EXPORT_ID_HEX));
});

both!(
    maf3_key_registration_needs_a_client_registration,
    |b: Backend| {
        let fx = maf(b);
        let now = t0();
        let r = fx.call(
            &src(),
            Operation::Create,
            "maf/keys",
            Some(key_body(32, &["Ctgt"], None, now + TimeDelta::hours(1))),
            now,
        );
        assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NOT_REGISTERED);
        assert!(fx.dump("Csrc", EXPORT_ID_HEX).ends_with("key: None"));
    }
);

// =============================================================================================
// MAF-4: targetIDs cardinality; SUIDs of the other function

both!(maf4_target_count_per_suid, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    fx.register(&src(), ADMIN, now);
    let exp = now + TimeDelta::hours(1);
    let none: &[&str] = &[];
    let one: &[&str] = &["Ctgt"];
    let two: &[&str] = &["Ctgt", "/cse-2"];
    // (SUID, targets, accepted): SAEF 32 and ESPrim 33 exactly one, ESData 34/35 at least one.
    let cases: [(u16, &[&str], bool); 12] = [
        (32, none, false),
        (32, one, true),
        (32, two, false),
        (33, none, false),
        (33, one, true),
        (33, two, false),
        (34, none, false),
        (34, one, true),
        (34, two, true),
        (35, none, false),
        (35, one, true),
        (35, two, true),
    ];
    for (suid, tids, accepted) in cases {
        // Supplied keys, so that every accepted registration gets its own RelativeKeyID.
        let r = fx.call(
            &src(),
            Operation::Create,
            "maf/keys",
            Some(key_body(suid, tids, Some(&[1u8; 32]), exp)),
            now,
        );
        if accepted {
            assert_eq!(r.status, Rsc::CREATED, "SUID {suid} {tids:?}");
            assert_eq!(body(&r, "sec:keyReg")["tids"], json!(tids));
        } else {
            assert_eq!(r.status, Rsc::BAD_REQUEST, "SUID {suid} {tids:?}");
        }
    }
    // Absent targetIDs count as none.
    let mut b_ = key_body(32, one, None, exp);
    b_["sec:keyReg"].as_object_mut().unwrap().remove("tids");
    let r = fx.call(&src(), Operation::Create, "maf/keys", Some(b_), now);
    assert_eq!(r.status, Rsc::BAD_REQUEST);
    // A refused exported registration stores nothing.
    assert!(fx.dump("Csrc", EXPORT_ID_HEX).ends_with("key: None"));

    // An update keeps the rule: an ESPrim key cannot get two targets.
    let k = fx.register_key(&src(), key_body(33, one, None, exp), now);
    let rki = k["rki"].as_str().unwrap();
    let r = fx.call(
        &src(),
        Operation::Update,
        &format!("maf/keys/{rki}"),
        Some(json!({"sec:keyReg": {"tids": two}})),
        now,
    );
    assert_eq!(r.status, Rsc::BAD_REQUEST);
    // An ESData key can.
    let k = fx.register_key(&src(), key_body(34, one, Some(&[2u8; 32]), exp), now);
    let rki = k["rki"].as_str().unwrap();
    let r = fx.call(
        &src(),
        Operation::Update,
        &format!("maf/keys/{rki}"),
        Some(json!({"sec:keyReg": {"tids": two}})),
        now,
    );
    assert_eq!(r.status, Rsc::UPDATED, "{:?}", r.content);
    assert_eq!(body(&r, "sec:keyReg"), &json!({"tids": two}));
});

both!(maf4_suids_of_the_other_function_refused, |b: Backend| {
    let now = t0();
    let exp = now + TimeDelta::hours(1);
    // MEF SUIDs (RSPF-established, 21-25) and others at the MAF.
    let fx = maf(b);
    fx.register(&src(), ADMIN, now);
    for suid in [10u16, 12, 21, 22, 23, 24, 25, 31, 36, 40] {
        let tids: &[&str] = if suid == 21 { &[MAF] } else { &["Ctgt"] };
        let r = fx.call(
            &src(),
            Operation::Create,
            "maf/keys",
            Some(key_body(suid, tids, None, exp)),
            now,
        );
        assert_eq!(r.status, Rsc::BAD_REQUEST, "SUID {suid} at the MAF");
        assert!(
            r.debug_message().unwrap().contains("MAF"),
            "{:?}",
            r.debug_message()
        );
    }
    assert!(fx.dump("Csrc", EXPORT_ID_HEX).ends_with("key: None"));

    // MAF SUIDs (32-35) at the MEF.
    let mef = fixture(b, Role::Mef, None);
    let r = mef.call(
        &src(),
        Operation::Create,
        "mef/reg",
        Some(json!({"sec:mefClientReg": {"fqdn": MEF, "exp": ts(exp), "adminFQDN": ADMIN}})),
        now,
    );
    assert_eq!(r.status, Rsc::CREATED);
    for suid in [32u16, 33, 34, 35] {
        let mut kb = key_body(suid, &["Ctgt"], None, exp);
        kb["sec:keyReg"]["fqdn"] = json!(MEF);
        let r = mef.call(&src(), Operation::Create, "mef/keys", Some(kb), now);
        assert_eq!(r.status, Rsc::BAD_REQUEST, "SUID {suid} at the MEF");
    }
    // The MEF's own SUID still works there (control).
    let mut kb = key_body(22, &["Ctgt"], None, exp);
    kb["sec:keyReg"]["fqdn"] = json!(MEF);
    let r = mef.call(&src(), Operation::Create, "mef/keys", Some(kb), now);
    assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
});

// =============================================================================================
// MAF-5: Key Retrieval (§8.8.2.8)

both!(maf5_retrieval_target_non_target_expired, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    fx.register(&src(), ADMIN, now);
    let exp = now + TimeDelta::hours(1);
    let kv = [0x33u8; 32];
    let k = fx.register_key(&src(), key_body(32, &["Ctgt"], Some(&kv), exp), now);
    let rki = k["rki"].as_str().unwrap().to_owned();
    let path = format!("maf/keys/{rki}");

    // The authorized Target gets Key Value, SUID, Source MAF Client ID and expirationTime.
    let r = fx.call(&tgt(), Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::OK);
    let got = body(&r, "sec:keyReg");
    assert_eq!(kv_of(got), kv);
    assert_eq!(got["suid"], json!(32));
    assert_eq!(got["srcID"], json!("Csrc"));
    assert_eq!(got["exp"], json!(ts(exp)));
    assert_eq!(got["adminFQDN"], json!(ADMIN));
    assert_eq!(got["kid"], json!(format!("{rki}@{MAF}")));
    // A Target authenticated under another client ID but bound to the target ID.
    let bound = Session {
        bound_ids: vec!["Ctgt".into()],
        ..session("11-kmid-of-tgt")
    };
    let r = fx.call(&bound, Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::OK);

    // Not a target (a third client, and the source itself): 4103 and no Key Value.
    for s in [session("Cother"), src()] {
        let r = fx.call(&s, Operation::Retrieve, &path, None, now);
        assert_eq!(
            r.status,
            Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
            "{}",
            s.client_id
        );
        let text = serde_json::to_string(&r.content).unwrap();
        assert!(
            !text.contains(&B64.encode(kv)) && !text.contains("\"kv\""),
            "{text}"
        );
    }

    // Expired: 4004, and the record is purged.
    let later = exp + TimeDelta::seconds(1);
    let r = fx.call(&tgt(), Operation::Retrieve, &path, None, later);
    assert_eq!(r.status, Rsc::NOT_FOUND);
    let mut gone = false;
    fx.registry
        .transact(&mut |tx| {
            gone = tx.key(&rki)?.is_none();
            Ok(())
        })
        .unwrap();
    assert!(gone, "expired key purged");
});

both!(maf5_source_only_updates_and_deletes, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    fx.register(&src(), ADMIN, now);
    let k = fx.register_key(
        &src(),
        key_body(32, &["Ctgt"], None, now + TimeDelta::hours(1)),
        now,
    );
    let path = format!("maf/keys/{}", k["rki"].as_str().unwrap());
    let r = fx.call(
        &tgt(),
        Operation::Update,
        &path,
        Some(json!({"sec:keyReg": {"lbl": ["x"]}})),
        now,
    );
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    let r = fx.call(&tgt(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    // §8.8.2.10: the source de-registers; the target then finds nothing.
    let r = fx.call(&src(), Operation::Delete, &path, None, now);
    assert_eq!(r.status, Rsc::DELETED);
    let r = fx.call(&tgt(), Operation::Retrieve, &path, None, now);
    assert_eq!(r.status, Rsc::NOT_FOUND);
});

// =============================================================================================
// Remote provisioning: assignedSymmKeyID (§8.8.2.3 steps 1a and 5)

both!(
    km_assigned_iff_remote_and_assigner_succeeds,
    |b: Backend| {
        let now = t0();
        let assigner = TestAssigner::new(Assign::Ok("KmID-42@maf.m2mtrust.example".into()));
        let fx = fixture(b, Role::Maf, Some(assigner.clone()));

        // A pre-provisioned client: no assignedSymmKeyID, the assigner is not asked.
        let r = fx.call(
            &src(),
            Operation::Create,
            "maf/reg",
            Some(reg_body(ADMIN, now + TimeDelta::hours(2))),
            now,
        );
        assert_eq!(r.status, Rsc::CREATED);
        assert!(
            body(&r, "sec:mafClientReg")
                .get("assignedSymmKeyID")
                .is_none()
        );
        assert!(assigner.calls().is_empty());

        // A remotely provisioned client: the KmID from the assigner, for this registration.
        let r = fx.call(
            &remote("Cremote"),
            Operation::Create,
            "maf/reg",
            Some(reg_body(ADMIN, now + TimeDelta::hours(2))),
            now,
        );
        assert_eq!(r.status, Rsc::CREATED, "{:?}", r.content);
        let reg = body(&r, "sec:mafClientReg");
        assert_eq!(
            reg["assignedSymmKeyID"],
            json!("KmID-42@maf.m2mtrust.example")
        );
        let keys: Vec<&String> = reg.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "ri",
                "exp",
                "lbl",
                "mafClientID",
                "adminFQDN",
                "assignedSymmKeyID"
            ]
        );
        let calls = assigner.calls();
        assert_eq!(calls.len(), 1);
        let (client, reg_id, expires, ke_id) = &calls[0];
        assert_eq!(client, "Cremote");
        assert_eq!(reg["ri"], json!(reg_id));
        assert_eq!(reg["exp"], json!(ts(*expires)));
        assert_eq!(ke_id.as_deref(), Some(KE_ID));
        assert_eq!(fx.registration_count("Cremote"), 1);

        // A MEF ignores remote_key_id: no assigner call, no member.
        let mef = fixture(b, Role::Mef, Some(assigner.clone()));
        let r = mef.call(
        &remote("Cremote"),
        Operation::Create,
        "mef/reg",
        Some(json!({"sec:mefClientReg": {"fqdn": MEF, "exp": ts(now + TimeDelta::hours(1)), "adminFQDN": ADMIN}})),
        now,
    );
        assert_eq!(r.status, Rsc::CREATED);
        assert!(
            body(&r, "sec:mefClientReg")
                .get("assignedSymmKeyID")
                .is_none()
        );
        assert_eq!(assigner.calls().len(), 1);
    }
);

both!(km_no_assigner_refuses_remote_clients, |b: Backend| {
    let fx = maf(b);
    let now = t0();
    let r = fx.call(
        &remote("Cremote"),
        Operation::Create,
        "maf/reg",
        Some(reg_body(ADMIN, now + TimeDelta::hours(2))),
        now,
    );
    assert_eq!(r.status, Rsc::NOT_IMPLEMENTED);
    let dbg = r.debug_message().unwrap();
    assert!(
        dbg.contains("remotely provisioned") && dbg.contains(KE_ID),
        "{dbg}"
    );
    assert_eq!(fx.registration_count("Cremote"), 0);
    // The same client with a pre-provisioned credential registers.
    fx.register(&session("Cremote"), ADMIN, now);
});

both!(km_assigner_failure_stores_nothing, |b: Backend| {
    let now = t0();
    for (mode, rsc) in [
        (Assign::Refused, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE),
        (Assign::Broken, Rsc::INTERNAL_SERVER_ERROR),
    ] {
        let assigner = TestAssigner::new(mode);
        let fx = fixture(b, Role::Maf, Some(assigner.clone()));
        let r = fx.call(
            &remote("Cremote"),
            Operation::Create,
            "maf/reg",
            Some(reg_body(ADMIN, now + TimeDelta::hours(2))),
            now,
        );
        assert_eq!(r.status, rsc);
        assert_eq!(assigner.calls().len(), 1, "the assigner was asked");
        assert!(
            !r.debug_message().unwrap().contains("secret detail"),
            "internal detail stays in the log"
        );
        assert_eq!(fx.registration_count("Cremote"), 0, "nothing stored");
        // No half-made registration blocks a new one (4117 would say otherwise).
        fx.register(&session("Cremote"), ADMIN, now);
        assert_eq!(fx.registration_count("Cremote"), 1);
    }
});

#[test]
fn maf_key_usage_table() {
    use m2mtrust_mef::procedures::types::KeyUsage;
    for n in 0u16..=100 {
        let want = match n {
            32 => Some(KeyUsage::Saef),
            33 => Some(KeyUsage::EsPrim),
            34 | 35 => Some(KeyUsage::EsData),
            _ => None,
        };
        assert_eq!(Suid(n).maf_key_usage(), want, "SUID {n}");
        assert_eq!(Role::Maf.key_usage(Suid(n)), want, "SUID {n}");
        assert_eq!(Role::Mef.key_usage(Suid(n)), Suid(n).mef_key_usage());
    }
    assert_eq!(Role::Maf.path_prefix(), "maf");
    assert_eq!(Role::Maf.client_reg_key(), "sec:mafClientReg");
    assert_eq!(Role::Maf.client_cfg_key(), "sec:mafClientCfg");
    assert_eq!(Role::Mef.client_reg_key(), "sec:mefClientReg");
}
