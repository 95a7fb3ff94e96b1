//! End-to-End Security of Data for an application (TS-0003 §8.5): an AE stores sealed content
//! through the CSE, which keeps only the envelope; the AE (or anyone holding the key) opens it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, m2mtrust};
use m2mtrust_client::esdata::ContentProtection;
use m2mtrust_client::{Client, ClientOptions, Credential, PrivateKeyPem};
use m2mtrust_crypto::SecretKey;
use m2mtrust_model::{Operation, Request, ResourceType, ResponseStatusCode};
use serde_json::json;

#[test]
fn sealed_content_is_stored_as_an_envelope_and_opens_for_the_key_holder() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("in"), &[]);
    let prefix = dir.path().join("Csealer");
    let (code, out, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        s.data.to_str().unwrap(),
        "--ae-id",
        "Csealer",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let options = ClientOptions::new(Credential::Certificate {
        chain_pem: std::fs::read(format!("{}.pem", prefix.display())).unwrap(),
        key_pem: PrivateKeyPem::new(
            std::fs::read_to_string(format!("{}-key.pem", prefix.display())).unwrap(),
        ),
    })
    .with_trust_anchors(std::fs::read(s.data.join("pki/ca.pem")).unwrap())
    .with_server_name("localhost");
    let client = Client::new(&format!("https://127.0.0.1:{}", s.tls_addr.port()), options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send = |op, to: &str, ty: Option<u16>, content| {
        let mut r = Request::new(op, to, Some("Csealer".into()));
        r.request_id = m2mtrust_client::request_id();
        r.resource_type = ty.map(ResourceType);
        r.content = content;
        rt.block_on(client.send(&r)).unwrap()
    };
    let ae = json!({"m2m:ae": {"rn": "sealer", "api": "Nsealer", "rr": false, "srv": ["3"]}});
    assert_eq!(
        send(Operation::Create, "cse-in", Some(2), Some(ae)).status,
        ResponseStatusCode::CREATED
    );
    let cnt = json!({"m2m:cnt": {"rn": "vault"}});
    assert_eq!(
        send(Operation::Create, "cse-in/sealer", Some(3), Some(cnt)).status,
        ResponseStatusCode::CREATED
    );

    let key = SecretKey::from_slice(&[0x5c; 32]);
    let protection = ContentProtection::key_wrap("vault-key@m2mtrust.example", &key).unwrap();
    let reading = json!({"heartRate": 72, "patient": "p-17"});
    let sealed = protection.seal(&reading).unwrap();
    let cin = json!({"m2m:cin": {"rn": "r1", "cnf": "application/jose", "con": sealed}});
    assert_eq!(
        send(Operation::Create, "cse-in/sealer/vault", Some(4), Some(cin)).status,
        ResponseStatusCode::CREATED
    );

    // What the CSE holds is the envelope, not the reading.
    let stored = s.call("GET", "/cse-in/sealer/vault/r1", Some("CAdmin"), None, None);
    assert_eq!(stored.rsc(), 2000, "{}", stored.body);
    let con = stored.json()["m2m:cin"]["con"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(con, sealed);
    assert!(!stored.body.contains("heartRate") && !stored.body.contains("p-17"));

    // The key holder reads it back and opens it; another key does not.
    let back = send(Operation::Retrieve, "cse-in/sealer/vault/r1", None, None);
    let con = back.content.unwrap()["m2m:cin"]["con"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(protection.open(&con).unwrap(), reading);
    let stranger = ContentProtection::key_wrap(
        "vault-key@m2mtrust.example",
        &SecretKey::from_slice(&[1; 32]),
    )
    .unwrap();
    assert!(stranger.open(&con).is_err());
}
