//! Dynamic authorization and roles at the hosting CSE (TS-0003 §7.3.2.2, §7.3.2.3, §7.4):
//! the real engine on a real SQLite store. The DAS answers through a scripted client (to
//! produce every kind of answer, including the broken ones); its tokens are real JWS signed
//! with `m2mtrust-das` and verified by the CSE's verifier. The same flows over TLS against the
//! real DAS are in the CLI tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use m2mtrust_cse::dynauth::DasClient;
use m2mtrust_cse::tokens::{TokenGrant, TokenVerifier as CseVerifier, VerifiedToken};
use m2mtrust_cse::{Cse, CseConfig, Notifier};
use m2mtrust_das::{
    TokenClaims, TokenIssuer, TokenPermission, TokenPermissions, TokenVerifier, TrustedIssuer,
    VerificationKey,
};
use m2mtrust_model::{
    Authentication, Operation, PeerIdentity, Request, ResourceType, Response, ResponseStatusCode,
    Timestamp,
};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const DAS: &str = "das.m2mtrust.example";
const DAS_URI: &str = "https://das.m2mtrust.example:8446/das";
const HCSE: &str = "//m2mtrust.example/id-in";

/// How the scripted DAS answers.
#[derive(Clone)]
enum Answer {
    /// Cannot be reached.
    Unreachable,
    /// A response primitive with this status and content.
    Reply(ResponseStatusCode, Option<Value>),
    /// A type 2 answer with a token for the request's originator and target granting `acop`,
    /// signed by `issuer` for `audience`, valid for `secs`.
    Token {
        issuer: &'static str,
        audience: &'static str,
        holder: Option<&'static str>,
        acop: u32,
        secs: i64,
    },
    /// A type 2 answer with `dynamicACPInfo` granting `acop` for `secs`.
    Acp { acop: u32, secs: i64 },
    /// Resolves Token-IDs from this list of (jti, jwt).
    Resolve(Vec<(String, String)>),
}

struct ScriptedDas {
    answer: Mutex<Answer>,
    calls: AtomicUsize,
    last: Mutex<Option<Request>>,
}

impl ScriptedDas {
    fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            calls: AtomicUsize::new(0),
            last: Mutex::new(None),
        })
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last_dreq(&self) -> Value {
        let last = self.last.lock().unwrap().clone().unwrap();
        last.content.unwrap()["m2m:seci"]["dreq"].clone()
    }
}

fn seci(dres: Value) -> Option<Value> {
    Some(json!({"m2m:seci": {"sit": 2, "dres": dres}}))
}

fn token(
    issuer: &str,
    audience: &str,
    holder: &str,
    ris: &[&str],
    acop: u32,
    (nbf, secs): (DateTime<Utc>, i64),
    rids: Option<Vec<String>>,
) -> (String, String) {
    let signer = TokenIssuer::hs256(issuer, SECRET).unwrap();
    let jti = format!("t{}@{issuer}", rand_id());
    let claims = TokenClaims {
        version: "1".into(),
        token_id: jti.clone(),
        issuer: issuer.into(),
        holder: holder.into(),
        not_before: nbf,
        not_after: nbf + Duration::seconds(secs),
        token_name: None,
        audience: vec![audience.into()],
        permissions: Some(TokenPermissions {
            pm: vec![TokenPermission {
                ris: (!ris.is_empty()).then(|| ris.iter().map(|s| s.to_string()).collect()),
                pv: (acop > 0).then(|| json!({"acr": [{"acor": [holder], "acop": acop}]})),
                rids,
            }],
        }),
        extension: None,
    };
    (jti, signer.issue(&claims).unwrap())
}

fn rand_id() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(1);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

impl DasClient for ScriptedDas {
    fn send(
        &self,
        uri: &str,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(uri, DAS_URI);
        assert_eq!(req.operation, Operation::Notify);
        assert_eq!(req.from.as_deref(), Some("/id-in"));
        let dreq = req.content.as_ref().unwrap()["m2m:seci"]["dreq"].clone();
        assert_eq!(
            req.content.as_ref().unwrap()["m2m:seci"]["sit"],
            json!(1),
            "a Dynamic Authorization Request"
        );
        *self.last.lock().unwrap() = Some(req);
        let or = dreq["or"].as_str().unwrap_or_default().to_string();
        let trid = dreq["trid"].as_str().unwrap_or_default().to_string();
        let answer = self.answer.lock().unwrap().clone();
        let resp = match answer {
            Answer::Unreachable => Err("connection refused".to_string()),
            Answer::Reply(status, content) => Ok(Response::new(status, content)),
            Answer::Token {
                issuer,
                audience,
                holder,
                acop,
                secs,
            } => {
                let holder = holder.map(str::to_string).unwrap_or(or);
                let (_, jwt) = token(
                    issuer,
                    audience,
                    &holder,
                    &[&trid],
                    acop,
                    // A negative lifetime: valid from 2 minutes ago until `-secs` ago.
                    (Utc::now() - Duration::seconds(120), 120 + secs),
                    None,
                );
                Ok(Response::new(
                    ResponseStatusCode::OK,
                    seci(json!({"tkns": [jwt]})),
                ))
            }
            Answer::Acp { acop, secs } => {
                let pl = Timestamp::now().plus_secs(secs).to_onem2m();
                Ok(Response::new(
                    ResponseStatusCode::OK,
                    seci(json!({"dai": {"gp": {"acr": [{"acor": [or], "acop": acop}]}, "pl": pl}})),
                ))
            }
            Answer::Resolve(known) => {
                let tids: Vec<String> = dreq["tids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                let tkns: Vec<&String> = known
                    .iter()
                    .filter(|(jti, _)| tids.contains(jti))
                    .map(|(_, jwt)| jwt)
                    .collect();
                Ok(Response::new(
                    ResponseStatusCode::OK,
                    seci(json!({"tkns": tkns})),
                ))
            }
        };
        Box::pin(async move { resp })
    }
}

/// The CSE's view of `m2mtrust-das` verification.
struct Verifier(TokenVerifier);

impl CseVerifier for Verifier {
    fn verify(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, String> {
        let c = self
            .0
            .verify(jwt, audience, holder, now)
            .map_err(|e| e.to_string())?;
        Ok(VerifiedToken {
            token_id: c.token_id,
            issuer: c.issuer,
            holder: c.holder,
            not_after: c.not_after,
            permissions: c
                .permissions
                .map(|p| {
                    p.pm.into_iter()
                        .map(|g| TokenGrant {
                            resource_ids: g.ris,
                            privileges: g.pv,
                            role_ids: g.rids,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    cse: Arc<Cse>,
    das: Arc<ScriptedDas>,
}

async fn fixture(answer: Answer) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("db"), Durability::Full).unwrap());
    let cfg = CseConfig {
        role_issuers: vec![DAS.into()],
        token_issuer_das: [(DAS.to_string(), DAS_URI.to_string())].into(),
        das_uris: vec![DAS_URI.to_string()],
        das_timeout: std::time::Duration::from_millis(500),
        ..CseConfig::default()
    };
    let cse = Cse::start(cfg, store, Notifier::disconnected())
        .await
        .unwrap();
    cse.set_token_verifier(Arc::new(Verifier(TokenVerifier::new(vec![
        TrustedIssuer {
            issuer: DAS.into(),
            keys: vec![VerificationKey::hs256(SECRET).unwrap()],
        },
    ]))));
    let das = ScriptedDas::new(answer);
    cse.set_das_client(das.clone());
    let f = Fixture {
        _dir: dir,
        cse,
        das,
    };
    // Two AEs, and a container only the admin may use, linked to a consultation.
    for ae in ["Cae1", "Cae2"] {
        let r = f
            .call(
                Operation::Create,
                "cse-in",
                ae,
                Some(ResourceType::AE),
                Some(json!({"m2m:ae": {"rn": ae, "api": "Napp", "rr": false, "srv": ["3"]}})),
                |_| {},
            )
            .await;
        assert_eq!(r.status, ResponseStatusCode::CREATED, "{:?}", r.content);
    }
    let admin_only = json!({"acr": [{"acor": ["CAdmin"], "acop": 63}]});
    f.admin(
        ResourceType::ACCESS_CONTROL_POLICY,
        "cse-in",
        json!({"m2m:acp": {"rn": "adminOnly", "pv": admin_only, "pvs": admin_only}}),
    )
    .await;
    f.admin(
        ResourceType::DYNAMIC_AUTHORIZATION_CONSULTATION,
        "cse-in",
        json!({"m2m:dac": {"rn": "ask", "dae": true, "dap": [DAS_URI], "dal": 600}}),
    )
    .await;
    f.admin(
        ResourceType::DYNAMIC_AUTHORIZATION_CONSULTATION,
        "cse-in",
        json!({"m2m:dac": {"rn": "off", "dae": false, "dap": [DAS_URI]}}),
    )
    .await;
    let acp = f.ri("cse-in/adminOnly").await;
    let dac = f.ri("cse-in/ask").await;
    f.admin(
        ResourceType::CONTAINER,
        "cse-in",
        json!({"m2m:cnt": {"rn": "data", "acpi": [acp], "daci": [dac]}}),
    )
    .await;
    f.admin(
        ResourceType::CONTAINER,
        "cse-in",
        json!({"m2m:cnt": {"rn": "plain", "acpi": [acp]}}),
    )
    .await;
    f
}

fn peer(bound: &str) -> PeerIdentity {
    PeerIdentity {
        addr: Some("127.0.0.1:5000".parse().unwrap()),
        authentication: Authentication::Credential {
            credential_id: format!("12-{bound}@m2mtrust.example"),
            bound_ids: vec![bound.to_string()],
        },
    }
}

impl Fixture {
    async fn call(
        &self,
        op: Operation,
        to: &str,
        from: &str,
        ty: Option<ResourceType>,
        content: Option<Value>,
        edit: impl FnOnce(&mut Request),
    ) -> Response {
        let mut r = Request::new(op, to, Some(from.to_string()));
        r.request_id = "rq".into();
        r.resource_type = ty;
        r.content = content;
        edit(&mut r);
        self.cse.handle(r, peer(from)).await
    }

    async fn admin(&self, ty: ResourceType, parent: &str, content: Value) -> Response {
        let r = self
            .call(
                Operation::Create,
                parent,
                "CAdmin",
                Some(ty),
                Some(content),
                |_| {},
            )
            .await;
        assert_eq!(r.status, ResponseStatusCode::CREATED, "{:?}", r.content);
        r
    }

    async fn ri(&self, path: &str) -> String {
        let r = self
            .call(Operation::Retrieve, path, "CAdmin", None, None, |_| {})
            .await;
        let content = r.content.unwrap();
        let (_, inner) = content.as_object().unwrap().iter().next().unwrap();
        inner["ri"].as_str().unwrap().to_string()
    }

    async fn read(&self, from: &str, path: &str) -> Response {
        self.call(Operation::Retrieve, path, from, None, None, |_| {})
            .await
    }

    async fn read_with(&self, from: &str, path: &str, edit: impl FnOnce(&mut Request)) -> Response {
        self.call(Operation::Retrieve, path, from, None, None, edit)
            .await
    }
}

const DENIED: ResponseStatusCode = ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE;
const OK: ResponseStatusCode = ResponseStatusCode::OK;

fn holder(ae: &str) -> String {
    format!("{HCSE}/{ae}")
}

#[tokio::test]
async fn without_an_enabled_consultation_no_das_is_asked() {
    let f = fixture(Answer::Acp { acop: 2, secs: 60 }).await;
    // No daci on the target nor its parents.
    assert_eq!(f.read("Cae1", "cse-in/plain").await.status, DENIED);
    assert_eq!(f.das.calls(), 0);
    // A disabled consultation: the CSE shall not initiate consultation.
    let off = f.ri("cse-in/off").await;
    let acp = f.ri("cse-in/adminOnly").await;
    f.admin(
        ResourceType::CONTAINER,
        "cse-in",
        json!({"m2m:cnt": {"rn": "offcnt", "acpi": [acp], "daci": [off]}}),
    )
    .await;
    assert_eq!(f.read("Cae1", "cse-in/offcnt").await.status, DENIED);
    assert_eq!(f.das.calls(), 0);
}

#[tokio::test]
async fn unusable_das_answers_leave_the_refusal() {
    let f = fixture(Answer::Unreachable).await;
    let r = f.read("Cae1", "cse-in/data").await;
    assert_eq!(r.status, DENIED);
    assert_eq!(f.das.calls(), 1);
    for answer in [
        Answer::Reply(ResponseStatusCode::BAD_REQUEST, None),
        Answer::Reply(OK, None),
        Answer::Reply(OK, Some(json!({"m2m:seci": {"sit": 2}}))),
        // Not a Dynamic Authorization Response: nothing granted even with privileges inside.
        Answer::Reply(
            OK,
            Some(
                json!({"m2m:seci": {"sit": 1, "dres": {"dai": {"gp": {"acr": [{"acor": ["all"], "acop": 63}]}}}}}),
            ),
        ),
        Answer::Reply(OK, Some(json!({"unexpected": true}))),
        Answer::Reply(
            OK,
            seci(
                json!({"dai": {"gp": {"acr": [{"acor": ["all"], "acop": 63}]}, "pl": "not-a-time"}}),
            ),
        ),
        Answer::Reply(
            OK,
            seci(
                json!({"dai": {"gp": {"acr": [{"acor": ["all"], "acop": 63}]}, "pl": "20000101T000000"}}),
            ),
        ),
        Answer::Reply(OK, seci(json!({"tkns": ["not.a.token"]}))),
    ] {
        f.das.set(answer);
        let before = f.das.calls();
        assert_eq!(f.read("Cae1", "cse-in/data").await.status, DENIED);
        assert_eq!(f.das.calls(), before + 1);
    }
}

#[tokio::test]
async fn the_das_request_describes_the_refused_request() {
    let f = fixture(Answer::Reply(OK, None)).await;
    f.read("Cae1", "cse-in/data").await;
    let dreq = f.das.last_dreq();
    assert_eq!(dreq["or"], json!(holder("Cae1")));
    assert_eq!(dreq["op"], json!(2));
    assert_eq!(dreq["trt"], json!(2));
    assert_eq!(dreq["trid"], json!("/id-in/cse-in/data"));
    assert_eq!(dreq["oip"], json!({"ip4": "127.0.0.1"}));
    // The consultation's dal becomes the proposed privileges lifetime.
    let ppl = Timestamp::parse(dreq["ppl"].as_str().unwrap()).unwrap();
    let expected = Timestamp::now().plus_secs(600);
    assert!((ppl.0 - expected.0).abs() < 5_000_000, "{ppl:?}");
    assert!(Timestamp::parse(dreq["rts"].as_str().unwrap()).is_some());
}

#[tokio::test]
async fn a_das_token_permits_and_is_reused_by_its_holder_only() {
    let f = fixture(Answer::Token {
        issuer: DAS,
        audience: HCSE,
        holder: None,
        acop: 2,
        secs: 60,
    })
    .await;
    assert_eq!(f.read("Cae1", "cse-in/data").await.status, OK);
    assert_eq!(f.das.calls(), 1);
    // Cached: no second consultation for the same holder.
    assert_eq!(f.read("Cae1", "cse-in/data").await.status, OK);
    assert_eq!(f.das.calls(), 1);
    // The token grants RETRIEVE only.
    let r = f
        .call(Operation::Delete, "cse-in/data", "Cae1", None, None, |_| {})
        .await;
    assert_eq!(r.status, DENIED);
    // Another originator does not profit from it; the DAS is asked for it and says no.
    f.das.set(Answer::Reply(OK, None));
    let before = f.das.calls();
    assert_eq!(f.read("Cae2", "cse-in/data").await.status, DENIED);
    assert_eq!(f.das.calls(), before + 1);
    // The token names cse-in/data only.
    assert_eq!(f.read("Cae1", "cse-in/plain").await.status, DENIED);
}

#[tokio::test]
async fn das_tokens_that_fail_verification_are_not_used() {
    for (what, answer) in [
        (
            "wrong issuer",
            Answer::Token {
                issuer: "other.m2mtrust.example",
                audience: HCSE,
                holder: None,
                acop: 2,
                secs: 60,
            },
        ),
        (
            "audience another CSE",
            Answer::Token {
                issuer: DAS,
                audience: "//m2mtrust.example/id-other",
                holder: None,
                acop: 2,
                secs: 60,
            },
        ),
        (
            "holder another AE",
            Answer::Token {
                issuer: DAS,
                audience: HCSE,
                holder: Some("//m2mtrust.example/id-in/Cae2"),
                acop: 2,
                secs: 60,
            },
        ),
        (
            "expired",
            Answer::Token {
                issuer: DAS,
                audience: HCSE,
                holder: None,
                acop: 2,
                secs: -30,
            },
        ),
    ] {
        let f = fixture(answer).await;
        assert_eq!(f.read("Cae1", "cse-in/data").await.status, DENIED, "{what}");
        assert_eq!(f.das.calls(), 1, "{what}");
    }
}

#[tokio::test]
async fn dynamic_acp_is_created_used_and_expires() {
    let f = fixture(Answer::Acp { acop: 2, secs: 2 }).await;
    assert_eq!(f.read("Cae1", "cse-in/data").await.status, OK);
    assert_eq!(f.das.calls(), 1);
    // Within the lifetime: permitted without asking.
    assert_eq!(f.read("Cae1", "cse-in/data").await.status, OK);
    assert_eq!(f.das.calls(), 1);
    // The dynamic ACP names Cae1 only: Cae2 is refused by it (and the DAS, now, too).
    f.das.set(Answer::Reply(OK, None));
    assert_eq!(f.read("Cae2", "cse-in/data").await.status, DENIED);
    assert_eq!(f.das.calls(), 2);
    // After the privileges lifetime: refused again (the DAS grants nothing any more).
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    assert_eq!(f.read("Cae1", "cse-in/data").await.status, DENIED);
    assert_eq!(f.das.calls(), 3);
}

#[tokio::test]
async fn consultations_are_inherited_from_the_parent() {
    let f = fixture(Answer::Acp { acop: 2, secs: 60 }).await;
    let acp = f.ri("cse-in/adminOnly").await;
    // A child of data without daci uses the parent's.
    f.admin(
        ResourceType::CONTAINER,
        "cse-in/data",
        json!({"m2m:cnt": {"rn": "child", "acpi": [acp]}}),
    )
    .await;
    // A child whose daci is dangling also uses the parent's.
    f.admin(
        ResourceType::CONTAINER,
        "cse-in/data",
        json!({"m2m:cnt": {"rn": "dangling", "acpi": [acp], "daci": ["dac-gone"]}}),
    )
    .await;
    assert_eq!(f.read("Cae1", "cse-in/data/child").await.status, OK);
    assert_eq!(f.das.last_dreq()["trid"], json!("/id-in/cse-in/data/child"));
    assert_eq!(f.read("Cae1", "cse-in/data/dangling").await.status, OK);
    assert_eq!(f.das.calls(), 2);
}

#[tokio::test]
async fn token_request_indicator_gets_the_das_list_instead_of_a_consultation() {
    let f = fixture(Answer::Acp { acop: 2, secs: 60 }).await;
    let r = f
        .read_with("Cae1", "cse-in/data", |r| r.token_request_indicator = true)
        .await;
    assert_eq!(r.status, DENIED);
    let tqf = r.token_request_info.expect("tqf");
    assert_eq!(tqf["dasi"][0]["uri"], json!(DAS_URI));
    assert_eq!(tqf["dasi"][0]["dreq"]["or"], json!(holder("Cae1")));
    assert_eq!(tqf["dasi"][0]["dreq"]["trid"], json!("/id-in/cse-in/data"));
    assert_eq!(tqf["dasi"].as_array().unwrap().len(), 1);
    assert_eq!(f.das.calls(), 0);
    // Without the indicator: no tqf.
    f.das.set(Answer::Reply(OK, None));
    let r = f.read("Cae1", "cse-in/data").await;
    assert_eq!(r.status, DENIED);
    assert!(r.token_request_info.is_none());
    // Nothing to ask: a plain refusal.
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| r.token_request_indicator = true)
        .await;
    assert_eq!(r.status, DENIED);
    assert!(r.token_request_info.is_none());
}

#[tokio::test]
async fn token_ids_are_resolved_at_the_das_and_get_local_token_ids() {
    let (jti, jwt) = token(
        DAS,
        HCSE,
        &holder("Cae1"),
        &["/id-in/cse-in/plain"],
        2,
        (Utc::now() - Duration::seconds(1), 60),
        None,
    );
    let f = fixture(Answer::Resolve(vec![(jti.clone(), jwt)])).await;
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| r.token_ids = vec![jti.clone()])
        .await;
    assert_eq!(r.status, OK, "{:?}", r.content);
    assert_eq!(f.das.calls(), 1);
    assert_eq!(f.das.last_dreq()["tids"], json!([jti]));
    let (lti, tkid) = r.assigned_tokens[0].clone();
    assert_eq!(tkid, jti);
    // The Local-Token-ID alone now suffices, without the DAS.
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| {
            r.local_token_ids = vec![lti.clone()]
        })
        .await;
    assert_eq!(r.status, OK);
    assert_eq!(f.das.calls(), 1);
    // Not for another holder.
    let r = f
        .read_with("Cae2", "cse-in/plain", |r| {
            r.local_token_ids = vec![lti.clone()]
        })
        .await;
    assert_eq!(r.status, DENIED);
    // An ID the DAS does not know fails the whole request, even with a good one beside it.
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| {
            r.token_ids = vec![jti.clone(), format!("unknown@{DAS}")]
        })
        .await;
    assert_eq!(r.status, DENIED);
    assert!(r.assigned_tokens.is_empty());
    // An issuer without a known DAS.
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| {
            r.token_ids = vec!["t1@elsewhere.example".into()]
        })
        .await;
    assert_eq!(r.status, DENIED);
    assert!(
        r.debug_message().unwrap().contains("elsewhere.example"),
        "{:?}",
        r.debug_message()
    );
}

#[tokio::test]
async fn token_ids_resolve_from_the_token_repository() {
    let f = fixture(Answer::Unreachable).await;
    let (jti, jwt) = token(
        DAS,
        HCSE,
        &holder("Cae1"),
        &["/id-in/cse-in/plain"],
        2,
        (Utc::now() - Duration::seconds(1), 60),
        None,
    );
    // Only an Authorization Authority stores tokens.
    let tk = json!({"m2m:tk": {"rn": "tk1", "tkid": jti, "tkob": jwt}});
    let r = f
        .call(
            Operation::Create,
            "cse-in",
            "Cae1",
            Some(ResourceType::TOKEN),
            Some(tk.clone()),
            |_| {},
        )
        .await;
    assert_eq!(r.status, DENIED);
    f.admin(ResourceType::TOKEN, "cse-in", tk).await;
    for (what, bad) in [
        (
            "tkid form",
            json!({"m2m:tk": {"rn": "b1", "tkid": "no-issuer", "tkob": "a.b.c"}}),
        ),
        (
            "tkob form",
            json!({"m2m:tk": {"rn": "b2", "tkid": "x@das.example", "tkob": "abc"}}),
        ),
    ] {
        let r = f
            .call(
                Operation::Create,
                "cse-in",
                "CAdmin",
                Some(ResourceType::TOKEN),
                Some(bad),
                |_| {},
            )
            .await;
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{what}");
    }
    let r = f
        .read_with("Cae1", "cse-in/plain", |r| r.token_ids = vec![jti.clone()])
        .await;
    assert_eq!(r.status, OK, "{:?}", r.content);
    assert_eq!(f.das.calls(), 0);
}

async fn role(f: &Fixture, rn: &str, rlid: &str, tkis: &str, tkhd: &str, from: i64, to: i64) {
    let now = Timestamp::now();
    f.admin(
        ResourceType::ROLE,
        "cse-in",
        json!({"m2m:rol": {
            "rn": rn, "rlid": rlid, "tkis": tkis, "tkhd": tkhd,
            "tknb": now.plus_secs(from).to_onem2m(), "tkna": now.plus_secs(to).to_onem2m()
        }}),
    )
    .await;
}

#[tokio::test]
async fn roles_grant_what_their_acp_rules_give_only_while_valid() {
    let f = fixture(Answer::Unreachable).await;
    let readers = json!({"acr": [
        {"acor": ["CAdmin"], "acop": 63},
        {"acor": [format!("reader@{DAS}")], "acop": 2}
    ]});
    f.admin(
        ResourceType::ACCESS_CONTROL_POLICY,
        "cse-in",
        json!({"m2m:acp": {"rn": "byRole", "pv": readers, "pvs": readers}}),
    )
    .await;
    let acp = f.ri("cse-in/byRole").await;
    f.admin(
        ResourceType::CONTAINER,
        "cse-in",
        json!({"m2m:cnt": {"rn": "roled", "acpi": [acp]}}),
    )
    .await;
    let rid = format!("reader@{DAS}");
    let with_role = |r: &mut Request| r.role_ids = vec![format!("reader@{DAS}")];
    // Claimed without any <role>: denied.
    assert_eq!(
        f.read_with("Cae1", "cse-in/roled", with_role).await.status,
        DENIED
    );
    role(&f, "r1", &rid, DAS, &holder("Cae1"), -5, 60).await;
    assert_eq!(
        f.read_with("Cae1", "cse-in/roled", with_role).await.status,
        OK
    );
    // Not without naming it, not for another originator, not for another operation.
    assert_eq!(f.read("Cae1", "cse-in/roled").await.status, DENIED);
    assert_eq!(
        f.read_with("Cae2", "cse-in/roled", with_role).await.status,
        DENIED
    );
    // Revoked: the Authorization Authority deletes the <role>.
    let r = f
        .call(Operation::Delete, "cse-in/r1", "CAdmin", None, None, |_| {})
        .await;
    assert_eq!(r.status, ResponseStatusCode::DELETED);
    assert_eq!(
        f.read_with("Cae1", "cse-in/roled", with_role).await.status,
        DENIED
    );
    // Expired, not yet valid, untrusted issuer, other holder: all ignored.
    role(&f, "old", &rid, DAS, &holder("Cae1"), -60, -1).await;
    role(&f, "future", &rid, DAS, &holder("Cae1"), 60, 120).await;
    role(&f, "rogue", &rid, "evil.example", &holder("Cae1"), -5, 60).await;
    role(&f, "other", &rid, DAS, &holder("Cae2"), -5, 60).await;
    assert_eq!(
        f.read_with("Cae1", "cse-in/roled", with_role).await.status,
        DENIED
    );
    // Cae2 does hold it.
    assert_eq!(
        f.read_with("Cae2", "cse-in/roled", with_role).await.status,
        OK
    );
}

#[tokio::test]
async fn only_authorization_authorities_create_roles_and_role_attributes_are_fixed() {
    let f = fixture(Answer::Unreachable).await;
    let now = Timestamp::now();
    let body = |rlid: &str, nb: i64, na: i64| {
        json!({"m2m:rol": {
            "rlid": rlid, "tkis": DAS, "tkhd": holder("Cae1"),
            "tknb": now.plus_secs(nb).to_onem2m(), "tkna": now.plus_secs(na).to_onem2m()
        }})
    };
    // An AE cannot assign itself a role, even with every privilege on <CSEBase>.
    let all = json!({"acr": [{"acor": ["all"], "acop": 63}]});
    let r = f
        .call(
            Operation::Create,
            "cse-in",
            "Cae1",
            Some(ResourceType::ROLE),
            Some(body(&format!("admin@{DAS}"), -5, 60)),
            |_| {},
        )
        .await;
    assert_eq!(r.status, DENIED, "{:?}", r.content);
    let _ = all;
    for (what, bad) in [
        ("Role-ID without issuer", body("reader", -5, 60)),
        (
            "Role-ID with uppercase issuer",
            body("reader@DAS.example", -5, 60),
        ),
        ("empty window", body(&format!("reader@{DAS}"), 60, 5)),
    ] {
        let r = f
            .call(
                Operation::Create,
                "cse-in",
                "CAdmin",
                Some(ResourceType::ROLE),
                Some(bad),
                |_| {},
            )
            .await;
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{what}");
    }
    let mut ok = body(&format!("reader@{DAS}"), -5, 60);
    ok["m2m:rol"]["rn"] = json!("r1");
    f.admin(ResourceType::ROLE, "cse-in", ok).await;
    // WO attributes cannot change; the token link can.
    for attr in ["rlid", "tkis", "tkhd", "tknb", "tkna", "rlnm"] {
        let value = if attr.starts_with("tkn") {
            json!(now.to_onem2m())
        } else {
            json!("x@y.example")
        };
        let r = f
            .call(
                Operation::Update,
                "cse-in/r1",
                "CAdmin",
                None,
                Some(json!({"m2m:rol": {attr: value}})),
                |_| {},
            )
            .await;
        assert_eq!(r.status, ResponseStatusCode::BAD_REQUEST, "{attr}");
    }
    let r = f
        .call(
            Operation::Update,
            "cse-in/r1",
            "CAdmin",
            None,
            Some(json!({"m2m:rol": {"rltl": "cse-in/tk1"}})),
            |_| {},
        )
        .await;
    assert_eq!(r.status, ResponseStatusCode::UPDATED, "{:?}", r.content);
}

#[tokio::test]
async fn token_role_ids_enable_role_rules_on_the_named_resources() {
    let f = fixture(Answer::Unreachable).await;
    let readers = json!({"acr": [
        {"acor": ["CAdmin"], "acop": 63},
        {"acor": [format!("reader@{DAS}")], "acop": 2}
    ]});
    f.admin(
        ResourceType::ACCESS_CONTROL_POLICY,
        "cse-in",
        json!({"m2m:acp": {"rn": "byRole", "pv": readers, "pvs": readers}}),
    )
    .await;
    let acp = f.ri("cse-in/byRole").await;
    for rn in ["roled", "other"] {
        f.admin(
            ResourceType::CONTAINER,
            "cse-in",
            json!({"m2m:cnt": {"rn": rn, "acpi": [acp]}}),
        )
        .await;
    }
    // A token whose only permission is the role, for cse-in/roled.
    let (_, jwt) = token(
        DAS,
        HCSE,
        &holder("Cae1"),
        &["/id-in/cse-in/roled"],
        0,
        (Utc::now() - Duration::seconds(1), 60),
        Some(vec![format!("reader@{DAS}")]),
    );
    let r = f
        .read_with("Cae1", "cse-in/roled", |r| r.tokens = vec![jwt.clone()])
        .await;
    assert_eq!(r.status, OK, "{:?}", r.content);
    let r = f
        .read_with("Cae1", "cse-in/other", |r| r.tokens = vec![jwt.clone()])
        .await;
    assert_eq!(r.status, DENIED);
}

#[tokio::test]
async fn token_privileges_never_reach_self_privileges() {
    let f = fixture(Answer::Unreachable).await;
    // A token granting UPDATE (and RETRIEVE) on cse-in/plain.
    let (_, jwt) = token(
        DAS,
        HCSE,
        &holder("Cae1"),
        &["/id-in/cse-in/plain", "/id-in/cse-in/adminOnly"],
        6,
        (Utc::now() - Duration::seconds(1), 60),
        None,
    );
    let update = |content: Value| {
        let jwt = jwt.clone();
        let f = &f;
        async move {
            f.call(
                Operation::Update,
                "cse-in/plain",
                "Cae1",
                None,
                Some(content),
                |r| r.tokens = vec![jwt],
            )
            .await
        }
    };
    // An ordinary attribute: permitted.
    let r = update(json!({"m2m:cnt": {"lbl": ["x"]}})).await;
    assert_eq!(r.status, ResponseStatusCode::UPDATED, "{:?}", r.content);
    // Its acpi: needs UPDATE in the selfPrivileges of its ACPs, which no token gives.
    let own = f.ri("cse-in/adminOnly").await;
    let r = update(json!({"m2m:cnt": {"acpi": [own]}})).await;
    assert_eq!(r.status, DENIED, "{:?}", r.content);
    // Nor the ACP itself, although the token names it.
    let r = f
        .call(
            Operation::Update,
            "cse-in/adminOnly",
            "Cae1",
            None,
            Some(json!({"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 63}]}}})),
            |r| r.tokens = vec![jwt.clone()],
        )
        .await;
    assert_eq!(r.status, DENIED, "{:?}", r.content);
}

#[tokio::test]
async fn only_configured_dass_are_consulted() {
    let f = fixture(Answer::Acp { acop: 63, secs: 60 }).await;
    // Cae1 creates a consultation of its own, pointing at a server it runs, and links a
    // resource of its own to it.
    let r = f
        .call(
            Operation::Create,
            "cse-in/Cae1",
            "Cae1",
            Some(ResourceType::DYNAMIC_AUTHORIZATION_CONSULTATION),
            Some(json!({"m2m:dac": {"rn": "mine", "dae": true, "dap": ["https://evil.example/das"]}})),
            |_| {},
        )
        .await;
    assert_eq!(r.status, ResponseStatusCode::CREATED, "{:?}", r.content);
    let dac = r.content.unwrap()["m2m:dac"]["ri"]
        .as_str()
        .unwrap()
        .to_string();
    let acp = f.ri("cse-in/adminOnly").await;
    f.admin(
        ResourceType::CONTAINER,
        "cse-in",
        json!({"m2m:cnt": {"rn": "lured", "acpi": [acp], "daci": [dac]}}),
    )
    .await;
    assert_eq!(f.read("Cae1", "cse-in/lured").await.status, DENIED);
    assert_eq!(f.das.calls(), 0, "an unconfigured DAS is never asked");
    let r = f
        .read_with("Cae1", "cse-in/lured", |r| r.token_request_indicator = true)
        .await;
    assert!(r.token_request_info.is_none());
}
