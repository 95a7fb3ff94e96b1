//! Shared test helpers: the test PKI, a map-backed `Credentials`, and a loopback handshake pair.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pki;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use m2mtrust_channel::{
    Binding, CertifiedKey, ClientConfig, Credentials, Established, HandshakeError, IdentityRules,
    KpsaId, PskCredential, PskKey, ServerConfig, TlsAcceptor, TlsConnector, TlsStream,
    TrustAnchors,
};
use m2mtrust_model::CseId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SP: &str = "m2mtrust.example";
pub const KPSA_ID: &str = "dev1@mef.m2mtrust.example";
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

/// `Credentials` backed by two maps.
#[derive(Default)]
pub struct MapCredentials {
    pub psk: HashMap<String, (String, Binding)>,
    pub certs: HashMap<String, Binding>,
}

impl Credentials for MapCredentials {
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential> {
        let (hex, bound) = self.psk.get(kpsa_id.as_str())?;
        Some(PskCredential {
            key: PskKey::from_hex(hex).ok()?,
            bound: bound.clone(),
        })
    }
    fn certificate(&self, credential_id: &str) -> Option<Binding> {
        self.certs.get(credential_id).cloned()
    }
}

pub fn creds() -> MapCredentials {
    let mut c = MapCredentials::default();
    c.psk.insert(
        KPSA_ID.into(),
        (KEY_HEX.into(), Binding::Ae("Cdev1".into())),
    );
    c
}

pub fn rules() -> IdentityRules {
    IdentityRules::new(
        SP,
        CseId::parse("/id-in").unwrap(),
        CseId::parse("/id-in").unwrap(),
    )
    .unwrap()
}

pub fn certified(leaf: &pki::Leaf) -> CertifiedKey {
    CertifiedKey::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap()
}

pub fn anchors(ca: &pki::Ca) -> TrustAnchors {
    TrustAnchors::from_pem(ca.cert_pem.as_bytes()).unwrap()
}

pub fn psk_client(kpsa_id: &str, key_hex: &str) -> ClientConfig {
    ClientConfig::psk(
        KpsaId::parse(kpsa_id).unwrap(),
        PskKey::from_hex(key_hex).unwrap(),
    )
}

/// The server's PKI: a CA, the IN-CSE certificate (CSE-ID public domain name), a server config
/// that serves it and trusts client certificates from the same CA.
pub struct ServerPki {
    pub ca: pki::Ca,
    pub server: pki::Leaf,
}

pub const SERVER_NAME: &str = "id-in.m2mtrust.example";

impl ServerPki {
    pub fn new() -> Self {
        let ca = pki::Ca::new("m2mtrust test CA");
        let server = ca.leaf(
            "IN-CSE",
            &[pki::San::Dns(SERVER_NAME)],
            pki::Validity::Current,
            100,
        );
        Self { ca, server }
    }

    pub fn server_config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::new(rules());
        cfg.certificate = Some(certified(&self.server));
        cfg.client_trust = Some(anchors(&self.ca));
        cfg.handshake_timeout = Duration::from_secs(5);
        cfg
    }

    pub fn client(&self, leaf: &pki::Leaf) -> ClientConfig {
        ClientConfig::certificate(certified(leaf), anchors(&self.ca))
    }
}

pub type ServerResult = Result<(TlsStream, Established), HandshakeError>;
pub type ClientResult = Result<TlsStream, HandshakeError>;

/// Runs one handshake over 127.0.0.1 between a fresh acceptor and connector; on success both
/// sides exchange one echoed line.
pub async fn pair(
    server: ServerConfig,
    creds: MapCredentials,
    client: ClientConfig,
    server_name: &str,
) -> (ServerResult, ClientResult) {
    let acceptor = TlsAcceptor::new(server, Arc::new(creds)).unwrap();
    let connector = TlsConnector::new(client).unwrap();
    pair_with(&acceptor, &connector, server_name).await
}

pub async fn pair_with(
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
    server_name: &str,
) -> (ServerResult, ClientResult) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut r = acceptor.accept(tcp).await;
        if let Ok((s, _)) = &mut r {
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
        }
        r
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = connector.connect(tcp, server_name).await?;
        // The server may still refuse after the client's side of the handshake completed (an
        // anonymous client): that shows up here as an I/O error.
        s.write_all(b"ping\n").await.map_err(HandshakeError::Io)?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.map_err(HandshakeError::Io)?;
        assert_eq!(&buf, b"ping\n");
        Ok(s)
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(server, client)
    })
    .await
    .expect("handshake pair hung")
}
