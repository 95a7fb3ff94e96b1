//! What the MEF keeps of an enrolment and how the enrolment target receives its key
//! (TS-0003 §8.3.2.1 "Use of Remotely Provisioned Credential", §10.3.7, §10.7).
//!
//! The MEF records Ke under its KeID (sealed, with the Enrolee-ID and the Enrolment Expiry) so
//! that a target can fetch its usage-constrained key later (`/fetchCredentials`). When the
//! target CSE shares the MEF's store (`m2mtrust up`), the MEF also writes the target's
//! credential directly: `12-<KeID>`, the usage-constrained key, bound to the Enrolee-ID and
//! expiring with the enrolment. The Ke record is written when the exchange starts (a MAF may
//! fetch during it), the target's credential when it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use m2mtrust_channel::KpsaId;
use m2mtrust_crypto::{Sealer, SecretKey};
use m2mtrust_model::Timestamp;
use m2mtrust_store::{CredentialRecord, Store, StoreError, StoreExt};

use crate::enrollees::Assignment;

/// Kind of an enrolment record (Ke) in the credential table; its id is `ke:<KeID>`.
pub const KE_KIND: &str = "ke";

/// The credential-table id of the Ke record of `ke_id`.
pub fn ke_record_id(ke_id: &KpsaId) -> String {
    format!("ke:{ke_id}")
}

/// One completed enrolment, as the MEF provisions it.
pub struct Provisioned {
    /// KeID.
    pub ke_id: KpsaId,
    /// Ke.
    pub ke: SecretKey,
    /// The Enrolee-ID.
    pub assignment: Assignment,
    /// The usage-constrained key for the enrolment target (§10.3.7).
    pub target_key: SecretKey,
    /// Enrolment Expiry.
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("ke_id", &self.ke_id)
            .field("assignment", &self.assignment)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A stored enrolment, read back for `/fetchCredentials`.
pub struct StoredEnrolment {
    /// Ke.
    pub ke: SecretKey,
    /// The Enrolee-ID.
    pub assignment: Assignment,
    /// Enrolment Expiry.
    pub expires: DateTime<Utc>,
}

/// Why provisioning failed. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The store refused or failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Sealing or opening a secret failed.
    #[error("sealing: {0}")]
    Seal(String),
}

/// A boxed future of a provisioning step.
pub type ProvisionFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProvisionError>> + Send + 'a>>;

/// Where the MEF records enrolments and delivers target keys.
pub trait Provisioning: Send + Sync + 'static {
    /// Records the enrolment (Ke under its KeID, §8.3.2.1 Enrolment Key Generation step 3), so
    /// that targets (a MAF during the exchange, a CSE later) can fetch their keys.
    fn record_enrolment(&self, p: &Provisioned) -> ProvisionFuture<'_, ()>;
    /// Delivers the target's key at the end of the exchange.
    fn provision(&self, p: Provisioned) -> ProvisionFuture<'_, ()>;
    /// The enrolment recorded under `ke_id`, if any.
    fn enrolment(&self, ke_id: &KpsaId) -> Result<Option<StoredEnrolment>, ProvisionError>;
}

/// [`Provisioning`] in the data folder's store.
pub struct StoreProvisioning {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    local_target: bool,
}

impl StoreProvisioning {
    /// Records in `store`, secrets sealed with `sealer`. With `local_target`, the target CSE
    /// reads its credentials from the same store and receives `12-<KeID>` there.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, local_target: bool) -> Self {
        Self {
            store,
            sealer,
            local_target,
        }
    }
}

fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_micros())
}

impl Provisioning for StoreProvisioning {
    fn record_enrolment(&self, p: &Provisioned) -> ProvisionFuture<'_, ()> {
        let now = Timestamp::now();
        let (kind, ids) = p.assignment.record_binding();
        let ke_id = ke_record_id(&p.ke_id);
        let sealed = self
            .sealer
            .seal(p.ke.expose_bytes(), ke_id.as_bytes())
            .map_err(|e| ProvisionError::Seal(e.to_string()));
        let expires = Some(to_timestamp(p.expires));
        Box::pin(async move {
            let record = CredentialRecord {
                id: ke_id,
                kind: KE_KIND.into(),
                sealed_secret: Some(sealed?),
                binding: kind.into(),
                bound_ids: ids,
                created: now,
                expires,
            };
            self.store.write(move |w| w.put_credential(&record)).await?;
            Ok(())
        })
    }

    fn provision(&self, p: Provisioned) -> ProvisionFuture<'_, ()> {
        Box::pin(async move {
            if !self.local_target {
                // The target fetches its key (`/fetchCredentials`).
                return Ok(());
            }
            let now = Timestamp::now();
            let expires = Some(to_timestamp(p.expires));
            let (kind, ids) = p.assignment.record_binding();
            let id = m2mtrust_channel::kpsa_credential_id(&p.ke_id);
            let sealed = self
                .sealer
                .seal(p.target_key.expose_bytes(), id.as_bytes())
                .map_err(|e| ProvisionError::Seal(e.to_string()))?;
            let record = CredentialRecord {
                id,
                kind: "psk".into(),
                sealed_secret: Some(sealed),
                binding: kind.into(),
                bound_ids: ids,
                created: now,
                expires,
            };
            self.store.write(move |w| w.put_credential(&record)).await?;
            Ok(())
        })
    }

    fn enrolment(&self, ke_id: &KpsaId) -> Result<Option<StoredEnrolment>, ProvisionError> {
        let id = ke_record_id(ke_id);
        let lookup = id.clone();
        let Some(record) = self.store.read(move |r| r.credential(&lookup))? else {
            return Ok(None);
        };
        if record.kind != KE_KIND {
            return Ok(None);
        }
        let Some(sealed) = record.sealed_secret.as_deref() else {
            return Ok(None);
        };
        let ke = self
            .sealer
            .open(sealed, id.as_bytes())
            .map_err(|e| ProvisionError::Seal(e.to_string()))?;
        let Some(assignment) = Assignment::from_record(&record) else {
            return Ok(None);
        };
        let expires = crate::enrollees::record_expiry(&record);
        Ok(Some(StoredEnrolment {
            ke,
            assignment,
            expires,
        }))
    }
}
