//! The operator's pre-registered bootstrap credentials (Bootstrap Credential Configuration and
//! Bootstrap Instruction Configuration, TS-0003 §8.3.2.1).

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use m2mtrust_channel::{Binding, KpsaId, PskKey};

/// What the MEF hands to enrolment targets along with the enrolee's key: the identity the
/// enrolee will use (TS-0003 §8.3.2.1, "Enrolee-ID").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// The enrolee is the CSE with this CSE-ID, e.g. `/id-mn`.
    CseId(String),
    /// The enrolee is an AE with one of these AE-IDs.
    AeIds(Vec<String>),
}

impl Assignment {
    /// The binding of the bootstrap security association.
    pub(crate) fn binding(&self) -> Binding {
        match self {
            Self::CseId(id) => Binding::Cse(id.clone()),
            Self::AeIds(ids) => match ids.as_slice() {
                [one] => Binding::Ae(one.clone()),
                _ => Binding::AeList(ids.clone()),
            },
        }
    }
}

/// One pre-registered enrolee.
#[derive(Clone, Debug)]
pub struct Enrollee {
    /// Kpm for the PPSK RSPF; `None` for an enrolee that authenticates by certificate only.
    pub kpm: Option<PskKey>,
    /// What the enrolee will be assigned.
    pub assignment: Assignment,
    /// Enrolment Expiry: the lifetime of Ke (TS-0003 §10.7). No bootstrap is accepted at or after
    /// this instant.
    pub expires: DateTime<Utc>,
}

impl Enrollee {
    /// True when the enrolment is no longer valid at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires
    }
}

/// Where the MEF finds its enrolees. Called from inside the TLS handshake, so implementations
/// must not block for long (an in-memory map or a cache, not a network call).
pub trait Enrollees: Send + Sync + 'static {
    /// The enrolee pre-provisioned with this KpmID (PPSK RSPF).
    fn kpm(&self, kpm_id: &KpsaId) -> Option<Enrollee>;
    /// The enrolee whose verified certificate has this Credential-ID (TS-0003 §10.4, e.g.
    /// `33-/id-in/Cdev1`, `32-/id-mn`, `30-ni:///sha-256;…`; certificate RSPF).
    fn by_certificate(&self, credential_id: &str) -> Option<Enrollee>;

    /// True when `kpm_id` names a remotely provisioned key (a KeID whose key came from a MEF,
    /// TS-0003 §8.8.2.3 step 1a) rather than a pre-provisioned one.
    fn is_remote(&self, kpm_id: &KpsaId) -> bool {
        let _ = kpm_id;
        false
    }
}

/// An in-memory [`Enrollees`].
#[derive(Debug, Default)]
pub struct MemoryEnrollees {
    by_kpm: RwLock<HashMap<KpsaId, Enrollee>>,
    by_cert: RwLock<HashMap<String, Enrollee>>,
}

impl MemoryEnrollees {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a PPSK enrolee under its KpmID.
    pub fn insert_kpm(&self, kpm_id: KpsaId, enrollee: Enrollee) {
        self.by_kpm
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kpm_id, enrollee);
    }

    /// Registers (or replaces) a certificate enrolee under its Credential-ID.
    pub fn insert_certificate(&self, credential_id: impl Into<String>, enrollee: Enrollee) {
        self.by_cert
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(credential_id.into(), enrollee);
    }

    /// Removes a PPSK enrolee.
    pub fn remove_kpm(&self, kpm_id: &KpsaId) -> Option<Enrollee> {
        self.by_kpm
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(kpm_id)
    }

    /// Removes a certificate enrolee.
    pub fn remove_certificate(&self, credential_id: &str) -> Option<Enrollee> {
        self.by_cert
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(credential_id)
    }
}

impl Enrollees for MemoryEnrollees {
    fn kpm(&self, kpm_id: &KpsaId) -> Option<Enrollee> {
        self.by_kpm
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kpm_id)
            .cloned()
    }

    fn by_certificate(&self, credential_id: &str) -> Option<Enrollee> {
        self.by_cert
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(credential_id)
            .cloned()
    }
}

/// Kind of a stored factory PSK (Kpm) in the credential table; its Credential-ID is `10-<KpmID>`.
pub const KPM_KIND: &str = "kpm";

/// Kind of a certificate enrolee in the credential table; its id is the certificate's
/// Credential-ID (`30-ni:///sha-256;…`, `32-<CSE-ID>`, `33-<AE-ID>`).
pub const CERT_ENROLLEE_KIND: &str = "enrollee-cert";

/// Enrollees kept in the data folder's credential table (secrets sealed), so that the operator's
/// `m2mtrust mef enrollee add/remove` take effect while the MEF runs.
pub struct StoreEnrollees {
    store: std::sync::Arc<dyn m2mtrust_store::Store>,
    sealer: std::sync::Arc<m2mtrust_crypto::Sealer>,
}

impl StoreEnrollees {
    /// Enrollees of `store`, their Kpm sealed with `sealer`.
    pub fn new(
        store: std::sync::Arc<dyn m2mtrust_store::Store>,
        sealer: std::sync::Arc<m2mtrust_crypto::Sealer>,
    ) -> Self {
        Self { store, sealer }
    }

    /// The Credential-ID of a factory PSK: `10-<KpmID>` (TS-0003 §10.4, type 10).
    pub fn kpm_credential_id(kpm_id: &KpsaId) -> String {
        format!("10-{kpm_id}")
    }

    /// The record the operator tooling stores for a certificate enrolee.
    pub fn certificate_record(
        credential_id: &str,
        assignment: &Assignment,
        now: m2mtrust_model::Timestamp,
        expires: m2mtrust_model::Timestamp,
    ) -> m2mtrust_store::CredentialRecord {
        let (binding, bound_ids) = assignment.record_binding();
        m2mtrust_store::CredentialRecord {
            id: credential_id.to_owned(),
            kind: CERT_ENROLLEE_KIND.into(),
            sealed_secret: None,
            binding: binding.into(),
            bound_ids,
            created: now,
            expires: Some(expires),
        }
    }

    /// The record the operator tooling stores for a factory PSK.
    pub fn record(
        &self,
        kpm_id: &KpsaId,
        kpm: &[u8],
        assignment: &Assignment,
        now: m2mtrust_model::Timestamp,
        expires: m2mtrust_model::Timestamp,
    ) -> Result<m2mtrust_store::CredentialRecord, m2mtrust_crypto::SealError> {
        let id = Self::kpm_credential_id(kpm_id);
        let sealed = self.sealer.seal(kpm, id.as_bytes())?;
        let (binding, bound_ids) = assignment.record_binding();
        Ok(m2mtrust_store::CredentialRecord {
            id,
            kind: KPM_KIND.into(),
            sealed_secret: Some(sealed),
            binding: binding.into(),
            bound_ids,
            created: now,
            expires: Some(expires),
        })
    }
}

impl Enrollees for StoreEnrollees {
    fn kpm(&self, kpm_id: &KpsaId) -> Option<Enrollee> {
        sealed_key_enrollee(
            &self.store,
            &self.sealer,
            &Self::kpm_credential_id(kpm_id),
            KPM_KIND,
        )
    }

    fn by_certificate(&self, credential_id: &str) -> Option<Enrollee> {
        use m2mtrust_store::StoreExt;
        let record = match self.store.read(|r| r.credential(credential_id)) {
            Ok(Some(r)) if r.kind == CERT_ENROLLEE_KIND => r,
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(error = %e, enrolee = %credential_id, "cannot read enrollee");
                return None;
            }
        };
        Some(Enrollee {
            kpm: None,
            assignment: Assignment::from_record(&record)?,
            expires: record_expiry(&record),
        })
    }
}

impl Assignment {
    /// How the credential table stores this assignment: the `binding` kind (`cse`, `ae`,
    /// `ae-list`) and the bound IDs.
    pub fn record_binding(&self) -> (&'static str, Vec<String>) {
        match self {
            Self::CseId(c) => ("cse", vec![c.clone()]),
            Self::AeIds(ids) if ids.len() == 1 => ("ae", ids.clone()),
            Self::AeIds(ids) => ("ae-list", ids.clone()),
        }
    }

    /// The assignment a credential-table record stores; `None` for a `cse` binding without
    /// a CSE-ID.
    pub fn from_record(record: &m2mtrust_store::CredentialRecord) -> Option<Self> {
        Some(match record.binding.as_str() {
            "cse" => Self::CseId(record.bound_ids.first()?.clone()),
            _ => Self::AeIds(record.bound_ids.clone()),
        })
    }
}

/// When a credential-table record stops working; no expiry is the far future.
pub fn record_expiry(record: &m2mtrust_store::CredentialRecord) -> DateTime<Utc> {
    record
        .expires
        .and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The enrolee (or MAF client) whose sealed pre-shared key is stored under `id` with `kind`:
/// the key opened with the data folder's master key (AAD = `id`), the assignment and expiry.
/// Read and open failures are logged and give `None` (the handshake then refuses).
pub fn sealed_key_enrollee(
    store: &std::sync::Arc<dyn m2mtrust_store::Store>,
    sealer: &m2mtrust_crypto::Sealer,
    id: &str,
    kind: &str,
) -> Option<Enrollee> {
    use m2mtrust_store::StoreExt;
    let record = match store.read(|r| r.credential(id)) {
        Ok(Some(r)) if r.kind == kind => r,
        Ok(_) => return None,
        Err(e) => {
            tracing::error!(error = %e, credential = %id, "cannot read a stored key");
            return None;
        }
    };
    let key = match sealer.open(record.sealed_secret.as_deref()?, id.as_bytes()) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, credential = %id, "cannot open a sealed key");
            return None;
        }
    };
    Some(Enrollee {
        kpm: Some(PskKey::new(key.expose_bytes().to_vec()).ok()?),
        assignment: Assignment::from_record(&record)?,
        expires: record_expiry(&record),
    })
}
