//! The hosting CSE as Receiver of ESPrim Objects (TS-0003 §8.4.2 Phase B/C, §7.2.2): the real
//! engine on a real SQLite store, with objects built by `m2mtrust-crypto` as an Originator
//! would build them, then altered the ways a transit CSE or an attacker could.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::ContentEncryption;
use m2mtrust_crypto::esprim::{
    EsPrimHeader, EsPrimObject, EsPrimProtocolAndAlgId, EsPrimRandId, EsPrimRandValue,
    OriginatorEsPrimRandObject, ReceiverEsPrimRandObject, SessionKey,
};
use m2mtrust_cse::esprim::{EsCertKeRefusal, EsCertKeTerminator, EsPrimKeys, PairwiseKey};
use m2mtrust_cse::{Cse, CseConfig, Notifier};
use m2mtrust_model::{
    Authentication, Operation, PeerIdentity, Request, ResourceType, Response, ResponseStatusCode,
};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};

const KID: &str = "e2e1@in.m2mtrust.example";
const KEY: [u8; 32] = [0x42; 32];

struct Keys;

impl EsPrimKeys for Keys {
    fn pairwise(&self, kid: &str) -> Option<PairwiseKey> {
        match kid {
            KID => Some(PairwiseKey {
                key: SecretKey::from_slice(&KEY),
                identity: "Cae1".into(),
                not_after: None,
            }),
            "expired@in.m2mtrust.example" => Some(PairwiseKey {
                key: SecretKey::from_slice(&KEY),
                identity: "Cae1".into(),
                not_after: Some(Utc::now() - Duration::seconds(1)),
            }),
            _ => None,
        }
    }
}

fn peer(id: &str) -> PeerIdentity {
    PeerIdentity {
        addr: Some("127.0.0.1:5000".parse().unwrap()),
        authentication: Authentication::Credential {
            credential_id: format!("12-{id}@m2mtrust.example"),
            bound_ids: vec![id.to_string()],
        },
    }
}

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
    cse.set_esprim_keys(Arc::new(Keys));
    for ae in ["Cae1", "Cae2"] {
        let mut r = Request::new(Operation::Create, "cse-in", Some(ae.into()));
        r.request_id = "reg".into();
        r.resource_type = Some(ResourceType::AE);
        r.content = Some(json!({"m2m:ae": {"rn": ae, "api": "Napp", "rr": false, "srv": ["3"]}}));
        let resp = cse.handle(r, peer(ae)).await;
        assert_eq!(resp.status, ResponseStatusCode::CREATED);
    }
    Fixture { _dir: dir, cse }
}

fn outer(from: &str, seci: Value) -> Request {
    let mut r = Request::new(Operation::Notify, "cse-in", Some(from.into()));
    r.request_id = "outer".into();
    r.content = Some(json!({ "m2m:seci": seci }));
    r
}

/// An Originator's session: the Receiver's rand object, ours, the session key.
struct Session {
    receiver: ReceiverEsPrimRandObject,
    originator: OriginatorEsPrimRandObject,
    key: SessionKey,
}

impl Fixture {
    async fn session(&self, from: &str) -> Session {
        let resp = self
            .cse
            .handle(outer(from, json!({"sit": 3})), peer(from))
            .await;
        assert_eq!(resp.status, ResponseStatusCode::OK, "{:?}", resp.content);
        let seci = &resp.content.unwrap()["m2m:seci"];
        assert_eq!(seci["sit"], json!(4));
        let receiver = ReceiverEsPrimRandObject::from_json(&seci["ero"], Utc::now()).unwrap();
        assert!(!receiver.id.is_shared());
        let originator = OriginatorEsPrimRandObject::for_receiver(
            &receiver,
            EsPrimRandId::generate(false).unwrap(),
            EsPrimRandValue::generate().unwrap(),
            receiver.expiry,
            vec![EsPrimProtocolAndAlgId::JWE_A256GCM],
            Utc::now(),
        )
        .unwrap();
        let key = SessionKey::derive(&SecretKey::from_slice(&KEY), &receiver, &originator).unwrap();
        Session {
            receiver,
            originator,
            key,
        }
    }

    async fn send_epo(&self, from: &str, epo: &str) -> Response {
        self.cse
            .handle(outer(from, json!({"sit": 5, "epo": epo})), peer(from))
            .await
    }
}

impl Session {
    fn header(&self, kid: &str, with_oro: bool) -> EsPrimHeader {
        let mut h = EsPrimHeader::new(
            ContentEncryption::A256Gcm,
            kid,
            self.originator.id.clone(),
            self.receiver.id.clone(),
        );
        if with_oro {
            h.oro = Some(self.originator.clone());
        }
        h
    }

    fn protect(&self, inner: &Request, header: &EsPrimHeader) -> String {
        let bytes = serde_json::to_vec(&inner.to_primitive_json()).unwrap();
        EsPrimObject::protect(&bytes, &self.key, header).unwrap()
    }

    /// Opens a type 5 answer into the inner response.
    fn open(&self, resp: &Response) -> Response {
        assert_eq!(resp.status, ResponseStatusCode::OK, "{:?}", resp.content);
        let seci = &resp.content.as_ref().unwrap()["m2m:seci"];
        assert_eq!(seci["sit"], json!(5));
        let object = EsPrimObject::parse(seci["epo"].as_str().unwrap(), Utc::now()).unwrap();
        assert_eq!(object.header().ori, self.originator.id);
        assert_eq!(object.header().rri, self.receiver.id);
        let bytes = object.open(&self.key).unwrap();
        Response::from_primitive_json(&serde_json::from_slice(&bytes).unwrap()).unwrap()
    }
}

fn create_container(from: &str, rn: &str) -> Request {
    let mut r = Request::new(
        Operation::Create,
        format!("cse-in/{from}"),
        Some(from.into()),
    );
    r.request_id = format!("inner-{rn}");
    r.resource_type = Some(ResourceType::CONTAINER);
    r.content = Some(json!({"m2m:cnt": {"rn": rn}}));
    r
}

async fn exists(f: &Fixture, path: &str) -> bool {
    let mut r = Request::new(Operation::Retrieve, path, Some("CAdmin".into()));
    r.request_id = "check".into();
    f.cse.handle(r, peer("CAdmin")).await.status == ResponseStatusCode::OK
}

#[tokio::test]
async fn a_protected_request_is_processed_and_its_response_protected() {
    let f = fixture().await;
    let s = f.session("Cae1").await;
    let epo = s.protect(&create_container("Cae1", "e2e"), &s.header(KID, true));
    let resp = f.send_epo("Cae1", &epo).await;
    let inner = s.open(&resp);
    assert_eq!(
        inner.status,
        ResponseStatusCode::CREATED,
        "{:?}",
        inner.content
    );
    assert_eq!(inner.request_id, "inner-e2e");
    assert!(exists(&f, "cse-in/Cae1/e2e").await);
    // The session goes on without `oro`.
    let mut read = Request::new(Operation::Retrieve, "cse-in/Cae1/e2e", Some("Cae1".into()));
    read.request_id = "inner-read".into();
    let resp = f
        .send_epo("Cae1", &s.protect(&read, &s.header(KID, false)))
        .await;
    let inner = s.open(&resp);
    assert_eq!(inner.status, ResponseStatusCode::OK);
    assert_eq!(inner.content.unwrap()["m2m:cnt"]["rn"], json!("e2e"));
    // Access control still decides about the inner request: Cae1 may not write into Cae2.
    let resp = f
        .send_epo(
            "Cae1",
            &s.protect(
                &{
                    let mut r = create_container("Cae1", "intruder");
                    r.to = "cse-in/Cae2".into();
                    r
                },
                &s.header(KID, false),
            ),
        )
        .await;
    assert_eq!(
        s.open(&resp).status,
        ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE
    );
}

#[tokio::test]
async fn altered_or_replayed_objects_are_refused_and_change_nothing() {
    let f = fixture().await;
    let s = f.session("Cae1").await;
    let epo = s.protect(&create_container("Cae1", "tampered"), &s.header(KID, true));
    // One byte of the ciphertext changed on the way: bad MAC.
    let mut parts: Vec<String> = epo.split('.').map(str::to_string).collect();
    let mut ct = parts[3].clone().into_bytes();
    ct[0] = if ct[0] == b'A' { b'B' } else { b'A' };
    parts[3] = String::from_utf8(ct).unwrap();
    let resp = f.send_epo("Cae1", &parts.join(".")).await;
    assert_eq!(
        resp.status,
        ResponseStatusCode::ESPRIM_BAD_MAC,
        "{:?}",
        resp.content
    );
    assert!(!exists(&f, "cse-in/Cae1/tampered").await);
    // The same with a changed protected header (the AAD).
    let mut h = s.header(KID, true);
    h.content_type = Some("x".into());
    let other = s.protect(&create_container("Cae1", "tampered"), &h);
    let spliced = format!(
        "{}.{}",
        other.split('.').next().unwrap(),
        epo.split_once('.').unwrap().1
    );
    let resp = f.send_epo("Cae1", &spliced).await;
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_BAD_MAC);
    assert!(!exists(&f, "cse-in/Cae1/tampered").await);
    // The genuine object passes once; a replay is refused.
    assert_eq!(
        s.open(&f.send_epo("Cae1", &epo).await).status,
        ResponseStatusCode::CREATED
    );
    let replay = f.send_epo("Cae1", &epo).await;
    assert_eq!(
        replay.status,
        ResponseStatusCode::BAD_REQUEST,
        "{:?}",
        replay.content
    );
}

#[tokio::test]
async fn the_inner_originator_must_be_the_keys_identity() {
    let f = fixture().await;
    // Cae2 holds Cae1's key material and claims to be Cae2 inside: 4116, nothing created.
    let s = f.session("Cae2").await;
    let epo = s.protect(&create_container("Cae2", "imposter"), &s.header(KID, true));
    let resp = f.send_epo("Cae2", &epo).await;
    assert_eq!(
        resp.status,
        ResponseStatusCode::ESPRIM_IMPERSONATION_ERROR,
        "{:?}",
        resp.content
    );
    assert!(!exists(&f, "cse-in/Cae2/imposter").await);
}

#[tokio::test]
async fn unknown_keys_rand_objects_and_options_get_their_codes() {
    let f = fixture().await;
    let s = f.session("Cae1").await;
    let inner = create_container("Cae1", "never");
    // Unknown and expired kid: 4112.
    for kid in ["nobody@in.m2mtrust.example", "expired@in.m2mtrust.example"] {
        let resp = f
            .send_epo("Cae1", &s.protect(&inner, &s.header(kid, true)))
            .await;
        assert_eq!(
            resp.status,
            ResponseStatusCode::ESPRIM_UNKNOWN_KEY_ID,
            "{kid}"
        );
    }
    // A receiver rand object this CSE never gave: 4114.
    let mut h = s.header(KID, true);
    h.rri = EsPrimRandId::generate(false).unwrap();
    let resp = f.send_epo("Cae1", &s.protect(&inner, &h)).await;
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_UNKNOWN_RECV_RAND_ID);
    // No `oro` and an `ori` never sent: 4113.
    let resp = f
        .send_epo("Cae1", &s.protect(&inner, &s.header(KID, false)))
        .await;
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_UNKNOWN_ORIG_RAND_ID);
    // An `enc` outside the originator's list: 4111.
    let mut h = s.header(KID, true);
    h.enc = ContentEncryption::A128Gcm;
    let resp = f.send_epo("Cae1", &s.protect(&inner, &h)).await;
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_UNSUPPORTED_OPTION);
    // Not a JWE at all: 4000; no epo: 4000.
    let resp = f.send_epo("Cae1", "not.a.jwe").await;
    assert_eq!(resp.status, ResponseStatusCode::BAD_REQUEST);
    let resp = f
        .cse
        .handle(outer("Cae1", json!({"sit": 5})), peer("Cae1"))
        .await;
    assert_eq!(resp.status, ResponseStatusCode::BAD_REQUEST);
    assert!(!exists(&f, "cse-in/Cae1/never").await);
}

#[tokio::test]
async fn the_cse_base_advertises_esprim_support() {
    let f = fixture().await;
    let mut r = Request::new(Operation::Retrieve, "cse-in", Some("CAdmin".into()));
    r.request_id = "cb".into();
    let cb = f.cse.handle(r, peer("CAdmin")).await.content.unwrap();
    assert_eq!(cb["m2m:cb"]["esi"]["esf"], json!([13, 23, 33, 43]));
}

/// A stand-in Terminating End-Point: echoes the message reversed with the From in front,
/// refuses `refuse`, fails on `fail`.
struct EchoTerminator;

impl EsCertKeTerminator for EchoTerminator {
    fn respond(
        &self,
        from: String,
        message: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, EsCertKeRefusal>> + Send>>
    {
        Box::pin(async move {
            match message.as_slice() {
                b"refuse" => Err(EsCertKeRefusal::Refused("certificate untrusted".into())),
                b"fail" => Err(EsCertKeRefusal::Internal("disk on fire".into())),
                _ => {
                    let mut out = from.into_bytes();
                    out.push(b':');
                    out.extend(message.iter().rev());
                    Ok(out)
                }
            }
        })
    }
}

#[tokio::test]
async fn escertke_messages_reach_the_terminator() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let f = fixture().await;
    let msg = |m: &[u8]| json!({"sit": 6, "eckm": b64.encode(m)});
    // Without a Terminating End-Point: 4111.
    let resp = f.cse.handle(outer("Cae1", msg(b"abc")), peer("Cae1")).await;
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_UNSUPPORTED_OPTION);
    f.cse.set_escertke(Arc::new(EchoTerminator));
    let resp = f.cse.handle(outer("Cae1", msg(b"abc")), peer("Cae1")).await;
    assert_eq!(resp.status, ResponseStatusCode::OK);
    let seci = &resp.content.unwrap()["m2m:seci"];
    assert_eq!(seci["sit"], json!(6));
    let back = b64.decode(seci["eckm"].as_str().unwrap()).unwrap();
    assert_eq!(back, b"Cae1:cba");
    // Refusals keep their codes; an internal failure shows no detail.
    let resp = f
        .cse
        .handle(outer("Cae1", msg(b"refuse")), peer("Cae1"))
        .await;
    assert_eq!(resp.status, ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE);
    let resp = f
        .cse
        .handle(outer("Cae1", msg(b"fail")), peer("Cae1"))
        .await;
    assert_eq!(resp.status, ResponseStatusCode::INTERNAL_SERVER_ERROR);
    assert!(!format!("{:?}", resp.content).contains("fire"));
    // No eckm, or not base64: 4000.
    for bad in [json!({"sit": 6}), json!({"sit": 6, "eckm": "%%%"})] {
        let resp = f.cse.handle(outer("Cae1", bad), peer("Cae1")).await;
        assert_eq!(resp.status, ResponseStatusCode::BAD_REQUEST);
    }
    // The From must be the connection's identity, as for any request.
    let resp = f.cse.handle(outer("Cae2", msg(b"abc")), peer("Cae1")).await;
    assert!(!resp.status.is_success());
}

#[tokio::test]
async fn one_originator_holds_a_bounded_number_of_receiver_rand_objects() {
    let f = fixture().await;
    // The first session, then 64 more requests for rand objects by the same originator: the
    // oldest object gives way, so the first session's object is unknown.
    let first = f.session("Cae1").await;
    for _ in 0..64 {
        f.session("Cae1").await;
    }
    let epo = first.protect(&create_container("Cae1", "late"), &first.header(KID, true));
    let resp = f.send_epo("Cae1", &epo).await;
    assert_eq!(
        resp.status,
        ResponseStatusCode::ESPRIM_UNKNOWN_RECV_RAND_ID,
        "{:?}",
        resp.content
    );
    // Another originator's objects are not touched by Cae1's requests.
    let other = f.session("Cae2").await;
    for _ in 0..64 {
        f.session("Cae1").await;
    }
    let mut inner = create_container("Cae2", "kept");
    inner.from = Some("Cae2".into());
    let epo = other.protect(&inner, &other.header(KID, true));
    let resp = f.send_epo("Cae2", &epo).await;
    // The rand object is still known; the key belongs to Cae1, so the answer is 4116.
    assert_eq!(resp.status, ResponseStatusCode::ESPRIM_IMPERSONATION_ERROR);
}
