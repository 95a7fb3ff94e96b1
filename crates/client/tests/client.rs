//! The client against a real server on 127.0.0.1: the TLS acceptor of the channel crate in
//! front of the receiver pipeline of the server crate, with a handler that echoes what the
//! channel authenticated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2mtrust_channel::{
    Binding, CertifiedKey, Credentials, IdentityRules, PskCredential, ServerConfig, TlsAcceptor,
    TlsStream, TrustAnchors, export_keying_material,
};
use m2mtrust_client::*;
use m2mtrust_crypto::{CertProfile, DevCa, Issued};
use m2mtrust_model::{
    Authentication, CseId, PeerIdentity, Request, ResourceType, Response, ResponseStatusCode,
};
use m2mtrust_server::{Acceptor, Handler, Limits};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SP: &str = "m2mtrust.example";
const KPSA_ID: &str = "dev1@mef.m2mtrust.example";
const KPSA: &str = "00112233445566778899aabbccddeeff";

struct Keys;

impl Credentials for Keys {
    fn psk(&self, id: &KpsaId) -> Option<PskCredential> {
        (id.as_str() == KPSA_ID).then(|| PskCredential {
            key: PskKey::from_hex(KPSA).unwrap(),
            bound: Binding::Ae("Cdev1".into()),
        })
    }
}

/// Echoes the peer's credential, bound IDs and the request parameters.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, req: Request, peer: PeerIdentity) -> Response {
        let (credential_id, bound) = match peer.authentication {
            Authentication::Credential {
                credential_id,
                bound_ids,
            } => (Some(credential_id), bound_ids),
            Authentication::None => (None, Vec::new()),
        };
        let mut resp = Response::new(
            ResponseStatusCode::OK,
            Some(json!({"echo": {
                "credentialId": credential_id,
                "bound": bound,
                "from": req.from,
                "to": req.to,
                "content": req.content,
            }})),
        );
        resp.request_id = req.request_id;
        resp
    }
}

/// The TLS acceptor behind the server crate's `Acceptor`, counting handshakes and keeping the
/// keying material each connection exports with `LABEL_BOOTSTRAP`.
struct TlsFront {
    acceptor: TlsAcceptor,
    accepted: AtomicUsize,
    exported: Mutex<Vec<[u8; 48]>>,
}

impl Acceptor for TlsFront {
    type Io = TlsStream;

    async fn accept(&self, tcp: TcpStream, _addr: SocketAddr) -> Option<(TlsStream, PeerIdentity)> {
        let (stream, established) = self.acceptor.accept(tcp).await.ok()?;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let km = export_keying_material(stream.ssl(), LABEL_BOOTSTRAP).ok()?;
        self.exported.lock().unwrap().push(*km.expose_secret());
        Some((stream, established.peer_identity()))
    }
}

struct Pki {
    ca: DevCa,
    server: Issued,
}

fn pki() -> Pki {
    let ca = DevCa::generate(SP).unwrap();
    let server = ca.issue(&CertProfile::dev_server(&[SP], None), 30).unwrap();
    Pki { ca, server }
}

struct TestServer {
    addr: SocketAddr,
    front: Arc<TlsFront>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    fn accepted(&self) -> usize {
        self.front.accepted.load(Ordering::SeqCst)
    }
}

async fn start_tls_on(pki: &Pki, listener: TcpListener) -> TestServer {
    let in_cse = CseId::parse("/id-in").unwrap();
    let rules = IdentityRules::new(SP, in_cse.clone(), in_cse).unwrap();
    let mut config = ServerConfig::new(rules);
    config.certificate = Some(
        CertifiedKey::from_pem(
            pki.server.chain_pem.as_bytes(),
            pki.server.key_pem.expose_pem().as_bytes(),
        )
        .unwrap(),
    );
    config.client_trust = Some(TrustAnchors::from_pem(pki.ca.cert_pem().as_bytes()).unwrap());
    let front = Arc::new(TlsFront {
        acceptor: TlsAcceptor::new(config, Arc::new(Keys)).unwrap(),
        accepted: AtomicUsize::new(0),
        exported: Mutex::new(Vec::new()),
    });
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(m2mtrust_server::serve(
        listener,
        Arc::clone(&front),
        Arc::new(Echo),
        Limits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    TestServer {
        addr,
        front,
        stop,
        task,
    }
}

async fn start_tls(pki: &Pki) -> TestServer {
    start_tls_on(pki, TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

fn psk_options(key_hex: &str) -> ClientOptions {
    ClientOptions::new(Credential::Psk {
        kpsa_id: KpsaId::parse(KPSA_ID).unwrap(),
        key: PskKey::from_hex(key_hex).unwrap(),
    })
    .with_timeout(Duration::from_secs(10))
}

fn cert_options(pki: &Pki, ae: &Issued) -> ClientOptions {
    ClientOptions::new(Credential::Certificate {
        chain_pem: ae.chain_pem.clone().into_bytes(),
        key_pem: ae.key_pem.clone(),
    })
    .with_trust_anchors(pki.ca.cert_pem().as_bytes())
    .with_timeout(Duration::from_secs(10))
}

fn ae_cert(pki: &Pki) -> Issued {
    pki.ca
        .issue(
            &CertProfile::AeId {
                ae_id: "Cabc".into(),
                cse_id: "/id-in".into(),
                sp_domain: SP.into(),
            },
            30,
        )
        .unwrap()
}

fn echo(resp: &Response) -> &Value {
    &resp.content.as_ref().expect("content")["echo"]
}

fn handshake_error(e: ClientError) -> HandshakeError {
    match e {
        ClientError::Handshake { source, .. } => source,
        other => panic!("expected a handshake error, got {other}"),
    }
}

#[tokio::test]
async fn psk_round_trip() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let client = Client::new(&format!("https://{}", server.addr), psk_options(KPSA)).unwrap();
    let req = retrieve("cse-in", "Cdev1");
    let resp = client.send(&req).await.unwrap();
    assert_eq!(resp.status, ResponseStatusCode::OK);
    assert_eq!(resp.request_id, req.request_id);
    let e = echo(&resp);
    assert_eq!(e["credentialId"], format!("12-{KPSA_ID}"));
    assert_eq!(e["bound"], json!(["Cdev1"]));
    assert_eq!(e["from"], "Cdev1");
    assert_eq!(e["to"], "cse-in");

    let create = create(
        "cse-in",
        "Cdev1",
        ResourceType::AE,
        json!({"m2m:ae": {"rn": "x"}}),
    );
    let resp = client.send(&create).await.unwrap();
    assert_eq!(echo(&resp)["content"], json!({"m2m:ae": {"rn": "x"}}));
    server.stop().await;
}

#[tokio::test]
async fn certificate_round_trip() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let ae = ae_cert(&pki);
    // Default server name: the URL host, an IP address in the server certificate's SANs.
    let client = Client::new(&format!("https://{}", server.addr), cert_options(&pki, &ae)).unwrap();
    let resp = client.send(&retrieve("cse-in", "Cabc")).await.unwrap();
    let e = echo(&resp);
    let cred = e["credentialId"].as_str().unwrap();
    assert!(cred.starts_with("33-"), "{cred}");
    assert!(cred.contains("Cabc"), "{cred}");
    let bound = e["bound"].as_array().unwrap();
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert!(bound[0].as_str().unwrap().ends_with("Cabc"), "{bound:?}");

    // Also by DNS name, the way a deployment names its CSE.
    let client = Client::new(
        &format!("https://localhost:{}/", server.addr.port()),
        cert_options(&pki, &ae).with_server_name(SP),
    )
    .unwrap();
    let resp = client.send(&retrieve("cse-in", "Cabc")).await.unwrap();
    assert_eq!(echo(&resp)["credentialId"], cred);
    server.stop().await;
}

#[tokio::test]
async fn requests_share_one_connection() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let client =
        Arc::new(Client::new(&format!("https://{}", server.addr), psk_options(KPSA)).unwrap());
    for i in 0..5 {
        let resp = client
            .send(&retrieve(&format!("cse-in/n{i}"), "Cdev1"))
            .await
            .unwrap();
        assert_eq!(echo(&resp)["to"], format!("cse-in/n{i}"));
    }
    // Concurrent callers queue on the same connection.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let req = retrieve(&format!("cse-in/t{i}"), "Cdev1");
            let resp = client.send(&req).await.unwrap();
            assert_eq!(resp.request_id, req.request_id);
            assert_eq!(echo(&resp)["to"], format!("cse-in/t{i}"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(client.connections_opened(), 1);
    server.stop().await;
}

#[tokio::test]
async fn reconnects_after_the_server_closed_the_connection() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let addr = server.addr;
    let client = Client::new(&format!("https://{addr}"), psk_options(KPSA)).unwrap();
    client.send(&retrieve("cse-in", "Cdev1")).await.unwrap();
    assert_eq!(server.accepted(), 1);
    // Shutdown closes the idle keep-alive connection; a new server takes the same port.
    server.stop().await;
    let server = start_tls_on(&pki, TcpListener::bind(addr).await.unwrap()).await;
    let resp = client.send(&retrieve("cse-in", "Cdev1")).await.unwrap();
    assert_eq!(echo(&resp)["credentialId"], format!("12-{KPSA_ID}"));
    assert_eq!(server.accepted(), 1);
    assert_eq!(client.connections_opened(), 2);

    // A non-idempotent request too, once the client has seen the close.
    server.stop().await;
    let server = start_tls_on(&pki, TcpListener::bind(addr).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = client
        .send(&create(
            "cse-in",
            "Cdev1",
            ResourceType::AE,
            json!({"m2m:ae": {}}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status, ResponseStatusCode::OK);
    assert_eq!(client.connections_opened(), 3);
    server.stop().await;
}

#[tokio::test]
async fn wrong_psk_is_a_handshake_error() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let url = format!("https://{}", server.addr);
    let client = Client::new(&url, psk_options("ffeeddccbbaa99887766554433221100")).unwrap();
    let e = client.send(&retrieve("cse-in", "Cdev1")).await.unwrap_err();
    assert!(e.to_string().contains("handshake"), "{e}");
    let h = handshake_error(e);
    assert!(matches!(h, HandshakeError::BadKeyOrMac), "{h}");

    let unknown = ClientOptions::new(Credential::Psk {
        kpsa_id: KpsaId::parse("nobody@mef.m2mtrust.example").unwrap(),
        key: PskKey::from_hex(KPSA).unwrap(),
    });
    let client = Client::new(&url, unknown).unwrap();
    let h = handshake_error(client.connect().await.unwrap_err());
    assert!(matches!(h, HandshakeError::IdentityRefusedByPeer), "{h}");
    assert_eq!(server.accepted(), 0);
    server.stop().await;
}

#[tokio::test]
async fn untrusted_server_certificate_is_refused() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let other_ca = DevCa::generate(SP).unwrap();
    let ae = ae_cert(&pki);
    let options = cert_options(&pki, &ae).with_trust_anchors(other_ca.cert_pem().as_bytes());
    let client = Client::new(&format!("https://{}", server.addr), options).unwrap();
    let h = handshake_error(client.send(&retrieve("cse-in", "Cabc")).await.unwrap_err());
    assert!(
        matches!(
            h,
            HandshakeError::Certificate {
                problem: CertificateProblem::Untrusted,
                ..
            }
        ),
        "{h}"
    );
    assert_eq!(server.accepted(), 0);
    server.stop().await;
}

#[tokio::test]
async fn server_name_mismatch_is_refused() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let ae = ae_cert(&pki);
    let options = cert_options(&pki, &ae).with_server_name("other.m2mtrust.example");
    let client = Client::new(&format!("https://{}", server.addr), options).unwrap();
    let h = handshake_error(client.connect().await.unwrap_err());
    assert!(
        matches!(
            h,
            HandshakeError::Certificate {
                problem: CertificateProblem::NameMismatch,
                ..
            }
        ),
        "{h}"
    );
    server.stop().await;
}

#[tokio::test]
async fn exported_keys_match_the_server() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let client = Client::new(&format!("https://{}", server.addr), psk_options(KPSA)).unwrap();
    let km = client.exported_key(LABEL_BOOTSTRAP).await.unwrap();
    assert_eq!(format!("{km:?}"), "<redacted>");
    // The connection made for the export carries the next request.
    client.send(&retrieve("cse-in", "Cdev1")).await.unwrap();
    let again = client.exported_key(LABEL_BOOTSTRAP).await.unwrap();
    let other = client.exported_key(LABEL_CONNECTION).await.unwrap();
    let server_side = server.front.exported.lock().unwrap().clone();
    assert_eq!(server_side.len(), 1);
    assert_eq!(km.expose_secret(), &server_side[0]);
    assert_eq!(again.expose_secret(), km.expose_secret());
    assert_ne!(other.expose_secret(), km.expose_secret());

    // A certificate association exports too.
    let ae = ae_cert(&pki);
    let client = Client::new(&format!("https://{}", server.addr), cert_options(&pki, &ae)).unwrap();
    let km = client.exported_key(LABEL_BOOTSTRAP).await.unwrap();
    let server_side = server.front.exported.lock().unwrap().clone();
    assert_eq!(server_side.len(), 2);
    assert_eq!(km.expose_secret(), &server_side[1]);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_round_trip() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(m2mtrust_server::serve_http(
        listener,
        Arc::new(Echo),
        Limits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = Client::new(
        &format!("http://{addr}"),
        ClientOptions::new(Credential::None),
    )
    .unwrap();
    let resp = client
        .send(&retrieve("/id-in/cse-in", "CAdmin"))
        .await
        .unwrap();
    let e = echo(&resp);
    assert_eq!(e["credentialId"], Value::Null);
    assert_eq!(e["from"], "CAdmin");
    assert_eq!(e["to"], "/id-in/cse-in");
    let resp = client
        .send(&update(
            "cse-in/x",
            "CAdmin",
            json!({"m2m:ae": {"lbl": ["a"]}}),
        ))
        .await
        .unwrap();
    assert_eq!(echo(&resp)["content"], json!({"m2m:ae": {"lbl": ["a"]}}));
    assert_eq!(client.connections_opened(), 1);
    assert!(matches!(
        client.exported_key(LABEL_BOOTSTRAP).await,
        Err(ClientError::NotTls)
    ));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn response_larger_than_the_limit_is_refused() {
    let pki = pki();
    let server = start_tls(&pki).await;
    let mut options = psk_options(KPSA);
    options.max_response_body = 256;
    let client = Client::new(&format!("https://{}", server.addr), options).unwrap();
    let big = create(
        "cse-in",
        "Cdev1",
        ResourceType::AE,
        json!({"m2m:ae": {"lbl": ["x".repeat(400)]}}),
    );
    let e = client.send(&big).await.unwrap_err();
    assert!(
        matches!(e, ClientError::ResponseTooLarge { limit: 256, .. }),
        "{e}"
    );
    // Small responses still fit; a new connection replaces the abandoned one.
    let resp = client.send(&delete("cse-in/a", "Cdev1")).await.unwrap();
    assert_eq!(echo(&resp)["to"], "cse-in/a");
    assert_eq!(client.connections_opened(), 2);
    server.stop().await;
}

#[tokio::test]
async fn unreachable_server_and_timeouts() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let client = Client::new(&format!("https://{addr}"), psk_options(KPSA)).unwrap();
    let e = client.send(&retrieve("cse-in", "C")).await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");

    // A server that accepts and never speaks: the handshake, or the HTTP exchange, times out.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let quick = Duration::from_millis(300);
    let client = Client::new(
        &format!("https://{addr}"),
        psk_options(KPSA).with_timeout(quick),
    )
    .unwrap();
    let e = client.send(&retrieve("cse-in", "C")).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Timeout { .. }
                | ClientError::Handshake {
                    source: HandshakeError::Timeout(_),
                    ..
                }
        ),
        "{e}"
    );
    let client = Client::new(
        &format!("http://{addr}"),
        ClientOptions::new(Credential::None).with_timeout(quick),
    )
    .unwrap();
    let e = client.send(&retrieve("cse-in", "C")).await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    hold.abort();
}

#[test]
fn options_must_fit_the_url() {
    let pki = pki();
    let ae = ae_cert(&pki);
    let invalid_options = |r: Result<Client, ClientError>| match r {
        Err(ClientError::InvalidOptions(why)) => why,
        other => panic!("expected invalid options, got {other:?}"),
    };
    // A credential on plain HTTP would silently not be used.
    invalid_options(Client::new("http://127.0.0.1:1", psk_options(KPSA)));
    invalid_options(Client::new(
        "http://127.0.0.1:1",
        ClientOptions::new(Credential::None).with_trust_anchors(pki.ca.cert_pem().as_bytes()),
    ));
    // HTTPS with nothing to authenticate the server.
    invalid_options(Client::new(
        "https://127.0.0.1:1",
        ClientOptions::new(Credential::None),
    ));
    let mut no_anchors = cert_options(&pki, &ae);
    no_anchors.trust_anchors_pem = None;
    invalid_options(Client::new("https://127.0.0.1:1", no_anchors));
    // Server authentication only is allowed.
    Client::new(
        "https://127.0.0.1:1",
        ClientOptions::new(Credential::None).with_trust_anchors(pki.ca.cert_pem().as_bytes()),
    )
    .unwrap();

    for url in [
        "ftp://h/",
        "not a url",
        "https://",
        "/cse-in",
        "https://u@h/",
    ] {
        let e = Client::new(url, psk_options(KPSA)).unwrap_err();
        assert!(matches!(e, ClientError::InvalidUrl { .. }), "{url}: {e}");
    }

    let mut bad_key = cert_options(&pki, &ae);
    bad_key.credential = Credential::Certificate {
        chain_pem: ae.chain_pem.clone().into_bytes(),
        key_pem: pki.server.key_pem.clone(),
    };
    let e = Client::new("https://127.0.0.1:1", bad_key).unwrap_err();
    assert!(matches!(e, ClientError::Credential { .. }), "{e}");
    let e = Client::new(
        "https://127.0.0.1:1",
        psk_options(KPSA).with_trust_anchors(b"garbage".to_vec()),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Credential {
                what: "trust anchors",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let pki = pki();
    let ae = ae_cert(&pki);
    let options = cert_options(&pki, &ae);
    let text = format!("{options:?}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let options = psk_options(KPSA);
    let text = format!("{options:?}");
    assert!(
        !text.contains(KPSA) && !text.contains("0, 17, 34"),
        "{text}"
    );
    let client = Client::new("https://127.0.0.1:1", options).unwrap();
    let text = format!("{client:?}");
    assert!(!text.contains(KPSA), "{text}");
}
