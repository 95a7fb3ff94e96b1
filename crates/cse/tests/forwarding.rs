//! Forwarding by a transit CSE (TS-0001 §8.2, TS-0003 §7.2.1): the real engine of an MN-CSE on
//! a real SQLite store, with a recording [`Forwarder`] in place of the network next hop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use m2mtrust_cse::forward::Forwarder;
use m2mtrust_cse::{Cse, CseConfig, Notifier};
use m2mtrust_model::{
    Authentication, CseId, Home, Operation, PeerIdentity, Request, ResourceType, Response,
    ResponseStatusCode as Rsc, SpId,
};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};

/// Stands in for the next hop: records what it was given and answers with `reply`.
struct Recorder {
    registrar: Option<CseId>,
    reply: Result<Response, String>,
    sent: Mutex<Vec<(CseId, Request)>>,
}

impl Recorder {
    fn new(registrar: Option<&str>, reply: Result<Response, String>) -> Arc<Self> {
        Arc::new(Self {
            registrar: registrar.map(|r| CseId::parse(r).unwrap()),
            reply,
            sent: Mutex::new(Vec::new()),
        })
    }

    fn sent(&self) -> Vec<(CseId, Request)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Forwarder for Recorder {
    fn registrar(&self) -> Option<&CseId> {
        self.registrar.as_ref()
    }

    fn forward(
        &self,
        next_hop: &CseId,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        self.sent.lock().unwrap().push((next_hop.clone(), req));
        let reply = self.reply.clone();
        Box::pin(async move { reply })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    cse: Arc<Cse>,
}

/// An MN-CSE `/id-mn` (`cse-mn`) with the AE `Cae1` registered over a credential bound to it.
async fn mn(forwarder: Option<Arc<Recorder>>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("db"), Durability::Full).unwrap());
    let cfg = CseConfig {
        home: Home {
            sp_id: SpId::parse("//m2mtrust.example").unwrap(),
            cse_id: CseId::parse("/id-mn").unwrap(),
            cse_base_name: "cse-mn".into(),
        },
        ..CseConfig::default()
    };
    let cse = Cse::start(cfg, store, Notifier::disconnected())
        .await
        .unwrap();
    if let Some(f) = forwarder {
        cse.set_forwarder(f);
    }
    let f = Fixture { _dir: dir, cse };
    let ae = json!({"m2m:ae": {"rn": "ae1", "api": "Nx", "rr": false}});
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-mn",
                Some("C"),
                Some(ResourceType::AE),
                Some(ae),
            ),
            peer(&["Cae1"]),
        )
        .await;
    assert_eq!(r.status.0, 2001, "{:?}", r.debug_message());
    f
}

/// Registers the CSE `cse` here (a `<remoteCSE>`), as over an association bound to it.
async fn register_cse(f: &Fixture, cse: &str) {
    let csr = json!({"m2m:csr": {
        "csi": cse,
        "cb": format!("//m2mtrust.example{cse}/cse"),
        "rr": true,
    }});
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-mn",
                Some(cse),
                Some(ResourceType::REMOTE_CSE),
                Some(csr),
            ),
            peer(&[cse]),
        )
        .await;
    assert_eq!(r.status.0, 2001, "{:?}", r.debug_message());
}

fn peer(bound: &[&str]) -> PeerIdentity {
    PeerIdentity {
        addr: Some("127.0.0.1:5000".parse().unwrap()),
        authentication: Authentication::Credential {
            credential_id: "12-dev@m2mtrust.example".into(),
            bound_ids: bound.iter().map(|s| s.to_string()).collect(),
        },
    }
}

fn request(
    op: Operation,
    to: &str,
    from: Option<&str>,
    ty: Option<ResourceType>,
    content: Option<Value>,
) -> Request {
    let mut r = Request::new(op, to, from.map(String::from));
    r.request_id = "rq-1".into();
    r.resource_type = ty;
    r.content = content;
    r
}

fn created() -> Response {
    let mut resp = Response::new(
        Rsc::CREATED,
        Some(json!({"m2m:cin": {"ri": "cin1", "cr": "/id-mn/Cae1"}})),
    );
    resp.request_id = "rq-1".into();
    resp.content_location = Some("/id-in/cin1".into());
    resp.assigned_tokens = vec![("lt1".into(), "tk1@das".into())];
    resp
}

fn cin() -> Option<Value> {
    Some(json!({"m2m:cin": {"con": "21.5"}}))
}

#[tokio::test]
async fn an_ae_request_for_the_in_cse_goes_to_the_registrar_with_an_sp_relative_from() {
    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    // The MN hosts nothing under this address and Cae1 has no privilege here: forwarded all
    // the same, with its tokens and Role-IDs, which only the hosting CSE verifies.
    let mut req = request(
        Operation::Create,
        "/id-in/cse-in/data",
        Some("Cae1"),
        Some(ResourceType::CONTENT_INSTANCE),
        cin(),
    );
    req.tokens = vec!["not.a.token".into()];
    req.role_ids = vec!["reader@das.m2mtrust.example".into()];
    let resp = f.cse.handle(req.clone(), peer(&["Cae1"])).await;
    // The next hop's response comes back as it is.
    assert_eq!(resp, created());
    let sent = next.sent();
    assert_eq!(sent.len(), 1);
    let (hop, fwd) = &sent[0];
    assert_eq!(
        hop.as_str(),
        "/id-in",
        "an unregistered CSE is reached through the registrar"
    );
    assert_eq!(fwd.from.as_deref(), Some("/id-mn/Cae1"));
    let expected = Request {
        from: Some("/id-mn/Cae1".into()),
        ..req
    };
    assert_eq!(fwd, &expected, "only From changes");
}

#[tokio::test]
async fn from_keeps_its_sp_relative_and_absolute_forms() {
    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    for from in ["/id-mn/Cae1", "//m2mtrust.example/id-mn/Cae1"] {
        let req = request(Operation::Retrieve, "/id-in/cse-in", Some(from), None, None);
        let resp = f.cse.handle(req, peer(&["Cae1"])).await;
        assert_eq!(resp.status, Rsc::CREATED, "{from}");
    }
    // This CSE as originator passes as it is, and so does an absolute target of this SP.
    let req = request(
        Operation::Retrieve,
        "//m2mtrust.example/id-in/cse-in",
        Some("/id-mn"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["/id-mn"])).await;
    assert_eq!(resp.status, Rsc::CREATED, "{:?}", resp.debug_message());
    let froms: Vec<_> = next
        .sent()
        .into_iter()
        .map(|(_, r)| (r.from.unwrap(), r.to))
        .collect();
    assert_eq!(
        froms,
        [
            ("/id-mn/Cae1".to_string(), "/id-in/cse-in".to_string()),
            (
                "//m2mtrust.example/id-mn/Cae1".into(),
                "/id-in/cse-in".into()
            ),
            ("/id-mn".into(), "//m2mtrust.example/id-in/cse-in".into()),
        ]
    );
}

#[tokio::test]
async fn the_originator_checks_run_before_forwarding() {
    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    // Another AE's ID on Cae1's association, and an AE that is not registered here.
    let forged = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae2"),
        None,
        None,
    );
    assert_eq!(f.cse.handle(forged, peer(&["Cae1"])).await.status.0, 4106);
    let stranger = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae2"),
        None,
        None,
    );
    assert_eq!(
        f.cse
            .handle(stranger, PeerIdentity::unauthenticated(None))
            .await
            .status
            .0,
        4106
    );
    // No originator at all.
    let anonymous = request(Operation::Retrieve, "/id-in/cse-in", None, None, None);
    assert_eq!(
        f.cse.handle(anonymous, peer(&["Cae1"])).await.status.0,
        4000
    );
    assert!(next.sent().is_empty());
}

#[tokio::test]
async fn a_registered_remote_cse_is_reached_directly() {
    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    register_cse(&f, "/id-asn").await;
    let req = request(
        Operation::Retrieve,
        "/id-asn/cse-asn/x",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::CREATED);
    assert_eq!(next.sent()[0].0.as_str(), "/id-asn");
}

#[tokio::test]
async fn refusals_are_5103() {
    // No forwarder: nothing leaves this CSE.
    let f = mn(None).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE);
    assert!(
        resp.debug_message().unwrap().contains("does not forward"),
        "{:?}",
        resp.debug_message()
    );

    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    // Another service provider's CSE.
    let req = request(
        Operation::Retrieve,
        "//other.example/id-x/cse-x",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE);
    assert!(resp.debug_message().unwrap().contains("service provider"));
    // Back to the CSE the request came from: the registrar, for a CSE it does not know.
    register_cse(&f, "/id-in").await;
    for to in ["/id-elsewhere/cse", "/id-in/cse-in"] {
        let req = request(Operation::Retrieve, to, Some("/id-in/Cx"), None, None);
        let resp = f.cse.handle(req, peer(&["/id-in"])).await;
        assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE, "{to}");
        assert!(
            resp.debug_message().unwrap().contains("came from /id-in"),
            "{:?}",
            resp.debug_message()
        );
    }
    assert!(next.sent().is_empty());

    // No registrar and the target CSE is not registered here.
    let next = Recorder::new(None, Ok(created()));
    let f = mn(Some(next.clone())).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE);
    assert!(resp.debug_message().unwrap().contains("no registrar"));
    // A registrar that would be this CSE itself.
    let next = Recorder::new(Some("/id-mn"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE);
    assert!(next.sent().is_empty());
}

#[tokio::test]
async fn a_next_hop_that_does_not_answer_is_5103_naming_it() {
    let next = Recorder::new(
        Some("/id-in"),
        Err("connection to https://127.0.0.1:1 refused".into()),
    );
    let f = mn(Some(next.clone())).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in",
        Some("Cae1"),
        None,
        None,
    );
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::TARGET_NOT_REACHABLE);
    assert_eq!(resp.request_id, "rq-1");
    let msg = resp.debug_message().unwrap();
    assert!(msg.contains("next hop /id-in"), "{msg}");
    assert!(
        !msg.contains("127.0.0.1"),
        "the transport detail stays in the log: {msg}"
    );
}

#[tokio::test]
async fn errors_of_the_hosting_cse_pass_through() {
    let mut denied = Response::error(Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "no privilege at /id-in");
    denied.token_request_info = Some(json!({"m2m:dasi": [{"url": "https://das"}]}));
    let next = Recorder::new(Some("/id-in"), Ok(denied.clone()));
    let f = mn(Some(next)).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in/data",
        Some("Cae1"),
        None,
        None,
    );
    let mut resp = f.cse.handle(req, peer(&["Cae1"])).await;
    resp.request_id.clear();
    assert_eq!(resp, denied);
}

#[tokio::test]
async fn only_originators_the_connection_vouches_for_are_forwarded() {
    let next = Recorder::new(Some("/id-in"), Ok(created()));
    let f = mn(Some(next.clone())).await;
    let req = request(
        Operation::Retrieve,
        "/id-in/cse-in/data",
        Some("Cae1"),
        None,
        None,
    );
    // A credential that vouches for no identity, and no security association at all: the
    // registered Cae1 could be anyone, so the request is not carried to the next hop.
    let unbound = PeerIdentity {
        addr: Some("127.0.0.1:5000".parse().unwrap()),
        authentication: Authentication::Credential {
            credential_id: "11-someone@maf.m2mtrust.example".into(),
            bound_ids: Vec::new(),
        },
    };
    let plain = PeerIdentity::unauthenticated(Some("127.0.0.1:5000".parse().unwrap()));
    for p in [unbound, plain] {
        let resp = f.cse.handle(req.clone(), p).await;
        assert_eq!(
            resp.status,
            Rsc::ORIGINATOR_HAS_NOT_REGISTERED,
            "{:?}",
            resp.debug_message()
        );
    }
    assert!(next.sent().is_empty());
    // Bound to Cae1: forwarded.
    let resp = f.cse.handle(req, peer(&["Cae1"])).await;
    assert_eq!(resp.status, Rsc::CREATED);
    assert_eq!(next.sent().len(), 1);
}
