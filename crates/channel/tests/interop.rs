//! Interoperability with the unmodified `openssl` command-line tool (`s_client`, `s_server`),
//! and the audit events of the acceptor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pki::{San, Validity};
use common::*;
use m2mtrust_channel::{
    Binding, CredentialKind, HandshakeError, ServerConfig, TlsAcceptor, TlsConnector,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

fn openssl_available() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: the `openssl` binary is not installed; interop not tested");
    }
    ok
}

fn temp_pem(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

/// Reads the child's stdout until a line equals `want`.
async fn wait_for_line(child: &mut Child, want: &str) -> bool {
    let stdout = child.stdout.as_mut().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim_end() == want {
                return true;
            }
        }
        false
    })
    .await;
    found.unwrap_or(false)
}

/// Accepts one connection and echoes one line back.
async fn echo_once(acceptor: &TlsAcceptor, listener: &TcpListener) -> common::ServerResult {
    let (tcp, _) = listener.accept().await.unwrap();
    let (mut s, est) = acceptor.accept(tcp).await?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while s.read_exact(&mut byte).await.is_ok() {
        buf.push(byte[0]);
        if byte[0] == b'\n' || buf.len() > 256 {
            break;
        }
    }
    s.write_all(&buf).await.unwrap();
    s.flush().await.unwrap();
    Ok((s, est))
}

async fn run_s_client(
    acceptor: &TlsAcceptor,
    args: &[&str],
    line: &str,
) -> (common::ServerResult, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let server = echo_once(acceptor, &listener);
    let client = wait_for_line(&mut child, line);
    let (srv, echoed) = tokio::join!(server, client);
    drop(stdin);
    let _ = child.kill().await;
    (srv, echoed)
}

#[tokio::test]
async fn openssl_s_client_psk_interop() {
    if !openssl_available() {
        return;
    }
    let acceptor = TlsAcceptor::new(ServerConfig::new(rules()), Arc::new(creds())).unwrap();
    let args = [
        "-psk",
        KEY_HEX,
        "-psk_identity",
        KPSA_ID,
        "-tls1_2",
        "-cipher",
        "PSK-AES128-CBC-SHA256",
        "-servername",
        SERVER_NAME,
    ];
    let (srv, echoed) = run_s_client(&acceptor, &args, "hello-from-s_client-42").await;
    let (_, est) = srv.unwrap();
    assert!(echoed, "s_client did not print the echoed line");
    assert_eq!(est.credential_id, format!("12-{KPSA_ID}"));
    assert_eq!(est.binding, Binding::Ae("Cdev1".into()));
    assert_eq!(est.cipher, "PSK-AES128-CBC-SHA256");
    assert_eq!(est.sni.as_deref(), Some(SERVER_NAME));

    // The same tool with a wrong key is refused.
    let args = [
        "-psk",
        "0badc0de0badc0de0badc0de0badc0de",
        "-psk_identity",
        KPSA_ID,
        "-tls1_2",
        "-cipher",
        "PSK-AES128-CBC-SHA256",
    ];
    let (srv, echoed) = run_s_client(&acceptor, &args, "never-echoed").await;
    assert!(matches!(srv, Err(HandshakeError::BadKeyOrMac)), "{srv:?}");
    assert!(!echoed);
}

#[tokio::test]
async fn openssl_s_client_certificate_interop() {
    if !openssl_available() {
        return;
    }
    let pki = ServerPki::new();
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (cert, key, ca) = (
        temp_pem(&leaf.cert_pem),
        temp_pem(&leaf.key_pem),
        temp_pem(&pki.ca.cert_pem),
    );
    let acceptor = TlsAcceptor::new(pki.server_config(), Arc::new(creds())).unwrap();
    let path = |f: &tempfile::NamedTempFile| f.path().to_str().unwrap().to_string();
    let (cert, key, ca) = (path(&cert), path(&key), path(&ca));
    let args = [
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-SHA256",
        "-cert",
        &cert,
        "-key",
        &key,
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-verify_hostname",
        SERVER_NAME,
        "-servername",
        SERVER_NAME,
    ];
    let (srv, echoed) = run_s_client(&acceptor, &args, "hello-cert-7").await;
    let (_, est) = srv.unwrap();
    assert!(echoed);
    assert_eq!(est.kind, CredentialKind::Certificate);
    assert_eq!(est.credential_id, "32-/id-mn");
    assert_eq!(est.cipher, "ECDHE-ECDSA-AES128-SHA256");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `openssl s_server -rev` (answers each line reversed) and waits for it to listen.
async fn s_server(args: &[&str]) -> (Child, u16) {
    let port = free_port();
    let mut child = Command::new("openssl")
        .arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-rev", "-tls1_2"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        wait_for_line(&mut child, "ACCEPT").await,
        "s_server did not start"
    );
    (child, port)
}

#[tokio::test]
async fn connector_against_openssl_s_server() {
    if !openssl_available() {
        return;
    }
    let (mut child, port) = s_server(&[
        "-psk",
        KEY_HEX,
        "-nocert",
        "-cipher",
        "PSK-AES128-CBC-SHA256",
    ])
    .await;
    let connector = TlsConnector::new(psk_client(KPSA_ID, KEY_HEX)).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut s = connector.connect(tcp, SERVER_NAME).await.unwrap();
    assert_eq!(
        s.ssl().current_cipher().unwrap().name(),
        "PSK-AES128-CBC-SHA256"
    );
    s.write_all(b"abc\n").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"cba\n");
    drop(s);
    let _ = child.kill().await;

    // Certificate mode: the client verifies s_server's CSE-ID certificate by name.
    let pki = ServerPki::new();
    let (cert, key) = (
        temp_pem(&pki.server.cert_pem),
        temp_pem(&pki.server.key_pem),
    );
    let leaf = pki.ca.leaf(
        "MN",
        &[San::Dns("id-mn.id-in.m2mtrust.example")],
        Validity::Current,
        2,
    );
    let (mut child, port) = s_server(&[
        "-cert",
        cert.path().to_str().unwrap(),
        "-key",
        key.path().to_str().unwrap(),
        "-cipher",
        "ECDHE-ECDSA-AES128-SHA256",
    ])
    .await;
    let connector = TlsConnector::new(pki.client(&leaf)).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s = connector.connect(tcp, SERVER_NAME).await.unwrap();
    assert_eq!(
        s.ssl().current_cipher().unwrap().name(),
        "ECDHE-ECDSA-AES128-SHA256"
    );
    drop(s);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await;
    // Same server, wrong expected name: refused by the client.
    if let Ok(tcp) = tcp {
        let e = connector
            .connect(tcp, "id-x.id-in.m2mtrust.example")
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "certificate_name_mismatch", "{e:?}");
    }
    let _ = child.kill().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_outcome_is_an_audit_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_target(true)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (srv, _) = pair(
        ServerConfig::new(rules()),
        creds(),
        psk_client(KPSA_ID, KEY_HEX),
        SERVER_NAME,
    )
    .await;
    srv.unwrap();
    let (srv, _) = pair(
        ServerConfig::new(rules()),
        creds(),
        psk_client("nobody@mef.m2mtrust.example", KEY_HEX),
        SERVER_NAME,
    )
    .await;
    assert!(srv.is_err());

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let ok = log
        .lines()
        .find(|l| l.contains("security_association_established"))
        .expect(&log);
    assert!(
        ok.contains("audit") && ok.contains(&format!("12-{KPSA_ID}")) && ok.contains("127.0.0.1"),
        "{ok}"
    );
    let refused = log
        .lines()
        .find(|l| l.contains("security_association_refused"))
        .expect(&log);
    assert!(
        refused.contains("WARN") && refused.contains("audit"),
        "{refused}"
    );
    assert!(
        refused.contains("unknown_psk_identity") && refused.contains("127.0.0.1"),
        "{refused}"
    );
    assert!(!log.contains(KEY_HEX), "a key reached the log");
}
