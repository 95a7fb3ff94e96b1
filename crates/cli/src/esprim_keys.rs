//! pairwiseESPrimKeys of the data folder (TS-0003 §8.4.2 Phase A, provisioned framework): the
//! credential table's `13-<pairwiseESPrimKeyID>` records (kind `esprim`, key sealed, bound to
//! the AE-ID or CSE-ID the key authenticates), added with `m2mtrust credential add-esprim`.

use std::sync::Arc;

use m2mtrust_crypto::{CredentialId, CredentialTypeId, Sealer, SecretKey};
use m2mtrust_cse::esprim::{EsPrimKeys, PairwiseKey};
use m2mtrust_store::{Store, StoreExt};

/// The credential kind of a pairwiseESPrimKey record.
pub const KIND: &str = "esprim";

/// The Credential-ID of the pairwiseESPrimKey named `kid`.
pub fn credential_id(kid: &str) -> Result<String, String> {
    CredentialId::new(CredentialTypeId::PAIRWISE_ES_PRIM_KEY_ID, kid)
        .map(|c| c.to_string())
        .map_err(|e| format!("pairwiseESPrimKeyID {kid:?}: {e}"))
}

/// Keys from the credential table.
pub struct StoreEsPrimKeys {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl StoreEsPrimKeys {
    /// Keys of `store`, unsealed with `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self { store, sealer }
    }
}

impl EsPrimKeys for StoreEsPrimKeys {
    fn pairwise(&self, kid: &str) -> Option<PairwiseKey> {
        let id = credential_id(kid).ok()?;
        let record = match self.store.read(|r| r.credential(&id)) {
            Ok(Some(r)) if r.kind == KIND => r,
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(error = %e, credential = %id, "cannot read credential");
                return None;
            }
        };
        let identity = record.bound_ids.first()?.clone();
        let sealed = record.sealed_secret.as_ref()?;
        let key = match self.sealer.open(sealed, id.as_bytes()) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, credential = %id, "cannot open sealed key");
                return None;
            }
        };
        Some(PairwiseKey {
            key: SecretKey::from_slice(key.expose_bytes()),
            identity,
            not_after: record
                .expires
                .and_then(|t| chrono::DateTime::from_timestamp_micros(t.0)),
        })
    }
}
