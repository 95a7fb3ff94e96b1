//! The HTTPS listener: TLS 1.2 security associations (TS-0003 §8.2.2.1 PSK and §8.2.2.2
//! certificates on one port) whose authenticated identity reaches the CSE with every request.

use std::net::SocketAddr;
use std::sync::Arc;

use m2mtrust_channel::{
    Binding, Credentials, KpsaId, PskCredential, PskKey, TlsAcceptor, TlsStream,
};
use m2mtrust_crypto::Sealer;
use m2mtrust_model::PeerIdentity;
use m2mtrust_store::{Store, StoreExt};
use tokio::net::TcpStream;

/// PSK credentials from the data folder's database, opened with its master key at each
/// handshake, so `m2mtrust credential add-psk/remove` take effect without a restart.
pub struct StoreCredentials {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl StoreCredentials {
    /// Credentials of `store`, sealed with `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self { store, sealer }
    }
}

impl Credentials for StoreCredentials {
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential> {
        let id = m2mtrust_channel::kpsa_credential_id(kpsa_id);
        let record = match self.store.read(|r| r.credential(&id)) {
            Ok(Some(r)) if r.kind == "psk" => r,
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(error = %e, credential = %id, "cannot read credential");
                return None;
            }
        };
        // TS-0003 §10.7: a key whose enrolment expired stops working.
        if record.is_expired(m2mtrust_model::Timestamp::now()) {
            tracing::info!(target: "audit", credential = %id, "expired credential refused");
            return None;
        }
        let sealed = record.sealed_secret.as_ref()?;
        let key = match self.sealer.open(sealed, id.as_bytes()) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, credential = %id, "cannot open sealed key");
                return None;
            }
        };
        let key = PskKey::new(key.expose_bytes().to_vec()).ok()?;
        let bound = match (record.binding.as_str(), record.bound_ids.as_slice()) {
            ("cse", [cse]) => Binding::Cse(cse.clone()),
            ("ae", [ae]) => Binding::Ae(ae.clone()),
            ("ae-list", ids) if !ids.is_empty() => Binding::AeList(ids.to_vec()),
            _ => Binding::Unbound,
        };
        Some(PskCredential { key, bound })
    }
}

/// The TLS handshake as the server's connection acceptor.
pub struct TlsServerAcceptor(pub TlsAcceptor);

impl m2mtrust_server::Acceptor for TlsServerAcceptor {
    type Io = TlsStream;

    async fn accept(&self, tcp: TcpStream, _addr: SocketAddr) -> Option<(TlsStream, PeerIdentity)> {
        // Refusals are audit events emitted by the acceptor, with the reason.
        let (stream, established) = self.0.accept(tcp).await.ok()?;
        Some((stream, established.peer_identity()))
    }
}
