//! How this CSE reaches the next hop of a forwarded request (TS-0001 §8.2) over a TS-0003 §8.2
//! security association: the registrar over the same kind of association registration uses
//! (`[registrar]`: PSK, enrolment key or certificate), a `<remoteCSE>` registered here at its
//! `https` point of access, authenticated by this CSE's certificate (which names its CSE-ID)
//! and verified against the data folder's CA plus `https.trust_anchors`. One kept-alive
//! [`Client`] per next hop.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2mtrust_client::{Client, ClientOptions, Credential};
use m2mtrust_cse::forward::Forwarder;
use m2mtrust_model::{CseId, Request, ResourceType, Response};
use m2mtrust_store::{Store, StoreExt};
use serde_json::Value;

use crate::config::RegistrarSection;

/// How long a next hop may take to answer, connecting included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards as this CSE.
pub struct CseForwarder {
    /// The registrar and the client for it, or why there is none (reported per request).
    registrar: Option<(CseId, Result<Arc<Client>, String>)>,
    store: Arc<dyn Store>,
    /// This CSE's certificate chain and key, for `<remoteCSE>`s.
    chain_pem: Vec<u8>,
    key_pem: m2mtrust_crypto::PrivateKeyPem,
    trust_anchors_pem: Vec<u8>,
    /// Clients of `<remoteCSE>`s by CSE-ID; replaced when the point of access changes.
    remote: Mutex<HashMap<CseId, Arc<Client>>>,
}

impl CseForwarder {
    /// A forwarder towards `registrar` (if any) and the `<remoteCSE>`s in `store`, presenting
    /// `identity` to the latter and trusting `trust_anchors_pem`. A registrar that cannot be
    /// reached as configured is logged; its requests then fail with the reason.
    pub fn new(
        registrar: Option<&RegistrarSection>,
        store: Arc<dyn Store>,
        identity: (String, m2mtrust_crypto::PrivateKeyPem),
        trust_anchors_pem: Vec<u8>,
    ) -> Self {
        let registrar = registrar.and_then(|reg| match CseId::parse(&reg.cse_id) {
            Ok(id) => {
                let client = registrar_client(reg);
                if let Err(e) = &client {
                    tracing::warn!(registrar = %id, error = %e, "requests cannot be forwarded to the registrar");
                }
                Some((id, client))
            }
            Err(e) => {
                tracing::warn!(error = %e, "registrar.cse_id: requests are not forwarded to the registrar");
                None
            }
        });
        let (chain, key_pem) = identity;
        Self {
            registrar,
            store,
            chain_pem: chain.into_bytes(),
            key_pem,
            trust_anchors_pem,
            remote: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `next_hop`.
    fn client(&self, next_hop: &CseId) -> Result<Arc<Client>, String> {
        if let Some((id, client)) = &self.registrar
            && id == next_hop
        {
            return client.clone();
        }
        let url = self.point_of_access(next_hop)?;
        let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = remote.get(next_hop)
            && client.url() == url
        {
            return Ok(client.clone());
        }
        let options = ClientOptions::new(Credential::Certificate {
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        })
        .with_trust_anchors(self.trust_anchors_pem.clone())
        .with_timeout(FORWARD_TIMEOUT);
        let client = Arc::new(
            Client::new(&url, options)
                .map_err(|e| format!("point of access {url:?} of {next_hop}: {e}"))?,
        );
        remote.insert(next_hop.clone(), client.clone());
        Ok(client)
    }

    /// The first `https` point of access of the `<remoteCSE>` of `cse`.
    fn point_of_access(&self, cse: &CseId) -> Result<String, String> {
        let ri = cse.bare().to_string();
        let csr = self
            .store
            .read(move |r| r.get(&ri))
            .map_err(|e| format!("cannot read the <remoteCSE> of {cse}: {e}"))?
            .filter(|r| r.ty == ResourceType::REMOTE_CSE)
            .ok_or_else(|| format!("{cse} is not registered with this CSE"))?;
        csr.attrs
            .get("poa")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|p| p.starts_with("https://"))
            .map(|p| origin(p).to_string())
            .ok_or_else(|| format!("{cse} has no https point of access"))
    }
}

impl Forwarder for CseForwarder {
    fn registrar(&self) -> Option<&CseId> {
        self.registrar.as_ref().map(|(id, _)| id)
    }

    fn forward(
        &self,
        next_hop: &CseId,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        let client = self.client(next_hop);
        Box::pin(async move {
            let client = client?;
            client.send(&req).await.map_err(|e| e.to_string())
        })
    }
}

/// The registrar's client: `registrar.url` without its path, so that `To` names the target.
fn registrar_client(reg: &RegistrarSection) -> Result<Arc<Client>, String> {
    let options = crate::register::registrar_options(reg)?.with_timeout(FORWARD_TIMEOUT);
    Client::new(origin(&reg.url), options)
        .map(Arc::new)
        .map_err(|e| format!("registrar.url: {e}"))
}

/// `scheme://authority` of a URL: requests to it carry their target in the path.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find(['/', '?']) {
        Some(end) => &url[..start + end],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(
            origin("https://in.example:8443/cse-in"),
            "https://in.example:8443"
        );
        assert_eq!(origin("https://127.0.0.1:8443"), "https://127.0.0.1:8443");
        assert_eq!(origin("https://[::1]:8443/a/b?x=1"), "https://[::1]:8443");
    }
}
