//! Full TLS 1.2 handshakes per second (no resumption), PSK and mutual ECDSA P-256.
//!
//! ```text
//! handshake_bench inproc psk|ecdsa N          client and server in one current-thread runtime
//! handshake_bench pki DIR                     write a test PKI (PEM) to DIR
//! handshake_bench serve psk|ecdsa PORT DIR    only the acceptor (echo), for a client elsewhere
//! handshake_bench client psk|ecdsa PORT DIR N only the connector, against `serve` or `openssl s_server -rev`
//! ```
//! Each connection: full handshake, 2 bytes echoed, close. `benches/handshakes.sh` pins the
//! processes with `taskset` and runs the comparison with `openssl s_server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/pki.rs"]
#[allow(dead_code)]
mod pki;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use m2mtrust_channel::{
    Binding, CertifiedKey, ClientConfig, Credentials, IdentityRules, KpsaId, PskCredential, PskKey,
    ServerConfig, TlsAcceptor, TlsConnector, TrustAnchors,
};
use m2mtrust_model::CseId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KPSA_ID: &str = "bench@mef.m2mtrust.example";
const KEY_HEX: &str = "00112233445566778899aabbccddeeff";
const SERVER_NAME: &str = "id-in.m2mtrust.example";

struct OneKey;
impl Credentials for OneKey {
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential> {
        (kpsa_id.as_str() == KPSA_ID).then(|| PskCredential {
            key: PskKey::from_hex(KEY_HEX).unwrap(),
            bound: Binding::Ae("Cbench".into()),
        })
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn write_pki(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = pki::Ca::new("bench CA");
    let server = ca.leaf(
        "IN-CSE",
        &[pki::San::Dns(SERVER_NAME)],
        pki::Validity::Current,
        100,
    );
    let client = ca.leaf(
        "MN-CSE",
        &[pki::San::Dns("id-mn.id-in.m2mtrust.example")],
        pki::Validity::Current,
        101,
    );
    for (name, pem) in [
        ("ca.pem", &ca.cert_pem),
        ("server.pem", &server.cert_pem),
        ("server.key", &server.key_pem),
        ("client.pem", &client.cert_pem),
        ("client.key", &client.key_pem),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

fn acceptor(mode: &str, dir: &Path) -> TlsAcceptor {
    let rules = IdentityRules::new(
        "m2mtrust.example",
        CseId::parse("/id-in").unwrap(),
        CseId::parse("/id-in").unwrap(),
    )
    .unwrap();
    let mut cfg = ServerConfig::new(rules);
    if mode == "ecdsa" {
        cfg.certificate = Some(
            CertifiedKey::from_pem(&read(dir, "server.pem"), &read(dir, "server.key")).unwrap(),
        );
        cfg.client_trust = Some(TrustAnchors::from_pem(&read(dir, "ca.pem")).unwrap());
    }
    TlsAcceptor::new(cfg, Arc::new(OneKey)).unwrap()
}

fn connector(mode: &str, dir: &Path) -> TlsConnector {
    let mut cfg = if mode == "ecdsa" {
        ClientConfig::certificate(
            CertifiedKey::from_pem(&read(dir, "client.pem"), &read(dir, "client.key")).unwrap(),
            TrustAnchors::from_pem(&read(dir, "ca.pem")).unwrap(),
        )
    } else {
        ClientConfig::psk(
            KpsaId::parse(KPSA_ID).unwrap(),
            PskKey::from_hex(KEY_HEX).unwrap(),
        )
    };
    // The mandatory suites (TS-0003 §10.2.2/§10.2.3).
    cfg.ciphers = vec![if mode == "ecdsa" {
        "ECDHE-ECDSA-AES128-SHA256".into()
    } else {
        "PSK-AES128-CBC-SHA256".into()
    }];
    TlsConnector::new(cfg).unwrap()
}

async fn client_once(connector: &TlsConnector, port: u16) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut s = connector.connect(tcp, SERVER_NAME).await.unwrap();
    s.write_all(b"x\n").await.unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.unwrap();
}

async fn server_once(acceptor: &TlsAcceptor, listener: &TcpListener) -> Result<(), String> {
    let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut s, _) = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    s.write_all(&buf).await.map_err(|e| e.to_string())
}

fn report(what: &str, n: u32, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {n} handshakes in {secs:.3} s = {:.0} handshakes/s",
        f64::from(n) / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match arg(0) {
        "pki" => write_pki(Path::new(arg(1))),
        "inproc" => {
            let mode = arg(1);
            let n: u32 = arg(2).parse().unwrap_or(2000);
            let dir = tempfile::tempdir().unwrap();
            write_pki(dir.path());
            let (acc, con) = (acceptor(mode, dir.path()), connector(mode, dir.path()));
            rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                for _ in 0..50 {
                    let (s, ()) =
                        tokio::join!(server_once(&acc, &listener), client_once(&con, port));
                    s.unwrap();
                }
                let start = Instant::now();
                for _ in 0..n {
                    let (s, ()) =
                        tokio::join!(server_once(&acc, &listener), client_once(&con, port));
                    s.unwrap();
                }
                report(
                    &format!("inproc {mode} (client+server, one thread)"),
                    n,
                    start,
                );
            });
        }
        "serve" => {
            let (mode, port, dir) = (arg(1), arg(2).parse::<u16>().unwrap(), Path::new(arg(3)));
            let acc = acceptor(mode, dir);
            rt.block_on(async {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                println!("ACCEPT");
                loop {
                    // Port probes and aborted clients are not fatal here.
                    let _ = server_once(&acc, &listener).await;
                }
            });
        }
        "client" => {
            let (mode, port, dir) = (arg(1), arg(2).parse::<u16>().unwrap(), Path::new(arg(3)));
            let n: u32 = arg(4).parse().unwrap_or(2000);
            let con = connector(mode, dir);
            rt.block_on(async {
                for _ in 0..50 {
                    client_once(&con, port).await;
                }
                let start = Instant::now();
                for _ in 0..n {
                    client_once(&con, port).await;
                }
                report(&format!("client {mode} -> 127.0.0.1:{port}"), n, start);
            });
        }
        _ => eprintln!("usage: handshake_bench inproc|pki|serve|client ... (see the source)"),
    }
}
