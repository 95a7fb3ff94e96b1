//! Identity binding (TS-0003 §7.2.1, §8.2.1; seed 003 change 1): the real engine on a real
//! SQLite store, with the peer identities a TLS channel produces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use m2mtrust_cse::{Cse, CseConfig, Notifier};
use m2mtrust_model::{Authentication, Operation, PeerIdentity, Request, ResourceType, Response};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    cse: Arc<Cse>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("db"), Durability::Full).unwrap());
    let cse = Cse::start(CseConfig::default(), store, Notifier::disconnected())
        .await
        .unwrap();
    Fixture { _dir: dir, cse }
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

fn plain() -> PeerIdentity {
    PeerIdentity::unauthenticated(Some("127.0.0.1:5000".parse().unwrap()))
}

fn request(
    op: Operation,
    to: &str,
    from: Option<&str>,
    ty: Option<ResourceType>,
    content: Option<Value>,
) -> Request {
    let mut r = Request::new(op, to, from.map(String::from));
    r.request_id = "rq".into();
    r.resource_type = ty;
    r.content = content;
    r
}

async fn register_cse(
    f: &Fixture,
    from: Option<&str>,
    csi: Option<&str>,
    p: PeerIdentity,
) -> Response {
    let mut csr = json!({"cb": "//m2mtrust.example/id-mn/cse-mn", "rr": true});
    if let Some(csi) = csi {
        csr["csi"] = json!(csi);
    }
    let req = request(
        Operation::Create,
        "cse-in",
        from,
        Some(ResourceType::REMOTE_CSE),
        Some(json!({"m2m:csr": csr})),
    );
    f.cse.handle(req, p).await
}

#[tokio::test]
async fn cse_registration_with_a_pre_assigned_cse_id() {
    let f = fixture().await;
    // Mismatch in From, then in the content: refused, nothing created.
    let r = register_cse(&f, Some("/id-other"), Some("/id-other"), peer(&["/id-mn"])).await;
    assert_eq!(r.status.0, 4106, "{:?}", r.debug_message());
    let r = register_cse(&f, Some("/id-mn"), Some("/id-other"), peer(&["/id-mn"])).await;
    assert_eq!(r.status.0, 4106, "{:?}", r.debug_message());
    // Empty From: the pre-assigned CSE-ID is used.
    let r = register_cse(&f, None, Some("/id-mn"), peer(&["/id-mn"])).await;
    assert_eq!(r.status.0, 2001, "{:?}", r.debug_message());
    assert_eq!(r.content.unwrap()["m2m:csr"]["csi"], "/id-mn");
    // Matching From: conflicts only because it is registered already.
    let r = register_cse(&f, Some("/id-mn"), Some("/id-mn"), peer(&["/id-mn"])).await;
    assert_eq!(r.status.0, 4105, "{:?}", r.debug_message());
    // The registered CSE reads its own <remoteCSE> over its association.
    let get = request(
        Operation::Retrieve,
        "cse-in/id-mn",
        Some("/id-mn"),
        None,
        None,
    );
    assert_eq!(
        f.cse.handle(get.clone(), peer(&["/id-mn"])).await.status.0,
        2000
    );
    // The MN-CSE may relay for its own AEs (past identity binding, access control decides: the
    // AE does not own the <remoteCSE>), not for another CSE's.
    let relayed = request(
        Operation::Retrieve,
        "cse-in/id-mn",
        Some("/id-mn/Cdevice"),
        None,
        None,
    );
    assert_eq!(
        f.cse.handle(relayed, peer(&["/id-mn"])).await.status.0,
        4103
    );
    let foreign = request(
        Operation::Retrieve,
        "cse-in/id-mn",
        Some("/id-other/Cdevice"),
        None,
        None,
    );
    assert_eq!(
        f.cse.handle(foreign, peer(&["/id-mn"])).await.status.0,
        4106
    );
    // Without a security association a CSE is refused (Mcc needs one).
    assert_eq!(f.cse.handle(get, plain()).await.status.0, 4107);
    let r = register_cse(&f, Some("/id-x"), Some("/id-x"), plain()).await;
    assert_eq!(r.status.0, 4107);
    // A credential bound to no CSE-ID cannot register one.
    let r = register_cse(&f, Some("/id-y"), Some("/id-y"), peer(&[])).await;
    assert_eq!(r.status.0, 4106);
}

#[tokio::test]
async fn an_ae_cannot_impersonate_another() {
    let f = fixture().await;
    let ae = |rn: &str| Some(json!({"m2m:ae": {"rn": rn, "api": "Nx", "rr": false}}));
    // "C" on a credential bound to Calice registers Calice.
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-in",
                Some("C"),
                Some(ResourceType::AE),
                ae("a"),
            ),
            peer(&["Calice"]),
        )
        .await;
    assert_eq!(r.status.0, 2001, "{:?}", r.debug_message());
    assert_eq!(r.content.unwrap()["m2m:ae"]["aei"], "Calice");
    // Bob registers over plain HTTP (AEs may; rq_authn stays false).
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-in",
                Some("Cbob"),
                Some(ResourceType::AE),
                ae("b"),
            ),
            plain(),
        )
        .await;
    assert_eq!(r.status.0, 2001);
    // Alice's connection sending From: Cbob is refused, and nothing is created.
    let cnt = Some(json!({"m2m:cnt": {"rn": "forged"}}));
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-in/b",
                Some("Cbob"),
                Some(ResourceType::CONTAINER),
                cnt.clone(),
            ),
            peer(&["Calice"]),
        )
        .await;
    assert_eq!(r.status.0, 4106, "{:?}", r.debug_message());
    let get = request(
        Operation::Retrieve,
        "cse-in/b/forged",
        Some("CAdmin"),
        None,
        None,
    );
    assert_eq!(f.cse.handle(get, plain()).await.status.0, 4004);
    // Registering under another AE-ID than the bound one is refused too.
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-in",
                Some("Cmallory"),
                Some(ResourceType::AE),
                ae("m"),
            ),
            peer(&["Calice"]),
        )
        .await;
    assert_eq!(r.status.0, 4106);
    // Alice as herself works.
    let r = f
        .cse
        .handle(
            request(
                Operation::Create,
                "cse-in/a",
                Some("Calice"),
                Some(ResourceType::CONTAINER),
                cnt,
            ),
            peer(&["Calice"]),
        )
        .await;
    assert_eq!(r.status.0, 2001);
}
