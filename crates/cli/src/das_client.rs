//! The hosting CSE's client of Dynamic Authorization Systems (TS-0003 §7.3.2.2 step 2.3,
//! §7.3.2.3 step 5): request primitives over TLS to each `dynamicAuthorizationPoA`, the CSE
//! authenticated by its own certificate (which names its CSE-ID), the DAS's certificate
//! verified against the CSE's trust anchors. Per DAS URI a few kept-alive connections, used in
//! turn (one connection carries one request at a time).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2mtrust_client::{Client, ClientOptions, Credential};
use m2mtrust_cse::dynauth::DasClient;
use m2mtrust_model::{Request, Response};

/// At most this many DAS URIs keep a pool; a `dap` beyond them gets a fresh client per request.
const MAX_POOLS: usize = 64;
/// Connections per DAS URI.
const CONNECTIONS_PER_DAS: usize = 8;

/// The connections to one DAS.
struct Pool {
    clients: Vec<Arc<Client>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    fn pick(&self) -> Arc<Client> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[i % self.clients.len()].clone()
    }
}

/// Sends to DASs as this CSE.
pub struct CseDasClient {
    chain_pem: Vec<u8>,
    key_pem: m2mtrust_crypto::PrivateKeyPem,
    trust_anchors_pem: Vec<u8>,
    timeout: Duration,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl CseDasClient {
    /// A client presenting `chain_pem`/`key_pem` and trusting `trust_anchors_pem`.
    pub fn new(
        chain_pem: Vec<u8>,
        key_pem: m2mtrust_crypto::PrivateKeyPem,
        trust_anchors_pem: Vec<u8>,
        timeout: Duration,
    ) -> Self {
        Self {
            chain_pem,
            key_pem,
            trust_anchors_pem,
            timeout,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, uri: &str) -> Result<Arc<Client>, String> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(uri) {
            return Ok(pool.pick());
        }
        let options = ClientOptions::new(Credential::Certificate {
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        })
        .with_trust_anchors(self.trust_anchors_pem.clone())
        .with_timeout(self.timeout);
        let size = if pools.len() < MAX_POOLS {
            CONNECTIONS_PER_DAS
        } else {
            1
        };
        let mut clients = Vec::with_capacity(size);
        for _ in 0..size {
            clients.push(Arc::new(
                Client::new(uri, options.clone())
                    .map_err(|e| format!("DAS address {uri:?}: {e}"))?,
            ));
        }
        let pool = Arc::new(Pool {
            clients,
            next: std::sync::atomic::AtomicUsize::new(0),
        });
        if size > 1 {
            pools.insert(uri.to_string(), pool.clone());
        }
        Ok(pool.pick())
    }
}

impl DasClient for CseDasClient {
    fn send(
        &self,
        uri: &str,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        let client = self.client(uri);
        Box::pin(async move {
            let client = client?;
            client.send(&req).await.map_err(|e| e.to_string())
        })
    }
}
