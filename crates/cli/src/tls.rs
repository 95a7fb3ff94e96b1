//! The HTTPS listener: TLS 1.2 security associations (TS-0003 §8.2.2.1 PSK and §8.2.2.2
//! certificates on one port) whose authenticated identity reaches the CSE with every request.

use std::net::SocketAddr;
use std::sync::Arc;

use m2mtrust_channel::{
    Binding, Credentials, KpsaId, PskCredential, PskKey, TlsAcceptor, TlsStream,
};
use m2mtrust_crypto::Sealer;
use m2mtrust_mef::remote::RemoteMef;
use m2mtrust_model::PeerIdentity;
use m2mtrust_store::{Store, StoreExt};
use tokio::net::TcpStream;

/// PSK credentials from the data folder's database, opened with its master key at each
/// handshake, so `m2mtrust credential add-psk/remove` take effect without a restart.
pub struct StoreCredentials {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    remote: Option<Arc<RemoteMef>>,
    maf: Option<Arc<RemoteMef>>,
}

impl StoreCredentials {
    /// Credentials of `store`, sealed with `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self {
            store,
            sealer,
            remote: None,
            maf: None,
        }
    }

    /// Also retrieve MAF-distributed keys (psk_identity = a Key Identifier of `maf`) from it:
    /// Entity B of the MAF-based SAEF (TS-0003 §8.2.2.3 steps b-f).
    pub fn with_maf(mut self, maf: Arc<RemoteMef>) -> Self {
        self.maf = Some(maf);
        self
    }

    /// Also fetch unknown keys issued by `mef` from it (TS-0003 §8.3.2.1 steps c-g) and keep
    /// them in the credential table.
    pub fn with_remote_mef(mut self, mef: Arc<RemoteMef>) -> Self {
        self.remote = Some(mef);
        self
    }

    /// Step c-g for `kpsa_id`: fetch, store (sealed, bound, expiring), use.
    fn fetch(&self, kpsa_id: &KpsaId, id: &str) -> Option<PskCredential> {
        let result = match (&self.remote, &self.maf) {
            (Some(mef), _) if mef.issues(kpsa_id) => mef.fetch_blocking(kpsa_id),
            (_, Some(maf)) if maf.issues(kpsa_id) => maf.retrieve_key_blocking(kpsa_id),
            _ => return None,
        };
        let fetched = match result {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(target: "audit", event = "credential_fetch_failed", credential = %id, reason = %e);
                return None;
            }
        };
        if self.maf.as_ref().is_some_and(|m| m.issues(kpsa_id)) {
            // §8.8.2.8: a key for another use, or past its lifetime, is not used (§8.2.2.3 f).
            if let Err(e) = m2mtrust_maf::check_retrieved(
                fetched.suid.unwrap_or_default(),
                fetched.expires,
                chrono::Utc::now(),
            ) {
                tracing::info!(target: "audit", event = "credential_fetch_refused", credential = %id, reason = %e);
                return None;
            }
        }
        let key = PskKey::new(fetched.key.expose_bytes().to_vec()).ok()?;
        let (binding, kind) = match fetched.enrolee_id.as_slice() {
            [one] if one.starts_with('/') => (Binding::Cse(one.clone()), "cse"),
            [one] if one.starts_with('C') || one.starts_with('S') => {
                (Binding::Ae(one.clone()), "ae")
            }
            // A Source MAF Client known only by its Credential-ID (`11-<KmID>`): the
            // association is known by its own Credential-ID (§8.2.2.3 step e).
            [_] => (Binding::Unbound, "none"),
            [] => (Binding::Unbound, "none"),
            many => (Binding::AeList(many.to_vec()), "ae-list"),
        };
        let expires = fetched
            .expires
            .map(|t| m2mtrust_model::Timestamp(t.timestamp_micros()));
        if expires.is_some_and(|e| e <= m2mtrust_model::Timestamp::now()) {
            return None;
        }
        match self.sealer.seal(fetched.key.expose_bytes(), id.as_bytes()) {
            Ok(sealed) => {
                let record = m2mtrust_store::CredentialRecord {
                    id: id.to_owned(),
                    kind: "psk".into(),
                    sealed_secret: Some(sealed),
                    binding: kind.into(),
                    bound_ids: binding.bound_ids(),
                    created: m2mtrust_model::Timestamp::now(),
                    expires,
                };
                // Kept for later handshakes; this one proceeds with the fetched key.
                keep_in_background(self.store.clone(), record);
            }
            Err(e) => tracing::error!(error = %e, "cannot seal a fetched credential"),
        }
        tracing::info!(target: "audit", event = "credential_fetched", credential = %id, bound = ?binding);
        Some(PskCredential {
            key,
            bound: binding,
        })
    }
}

/// Writes a fetched or derived credential to the store without waiting for it (the caller runs
/// inside a TLS callback or a request and uses the key at once); a failure is logged.
pub(crate) fn keep_in_background(store: Arc<dyn Store>, record: m2mtrust_store::CredentialRecord) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let id = record.id.clone();
            if let Err(e) = store.write(move |w| w.put_credential(&record)).await {
                tracing::warn!(error = %e, credential = %id, "cannot keep a fetched credential");
            }
        });
    }
}

impl Credentials for StoreCredentials {
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential> {
        let id = m2mtrust_channel::kpsa_credential_id(kpsa_id);
        let record = match self.store.read(|r| r.credential(&id)) {
            Ok(Some(r)) if r.kind == "psk" => r,
            Ok(Some(_)) => return None,
            Ok(None) => return self.fetch(kpsa_id, &id),
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
