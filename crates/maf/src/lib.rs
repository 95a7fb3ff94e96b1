//! M2M Authentication Function (TS-0003 §8.8) and the MAF-based security association of
//! §8.2.2.3.
//!
//! The MAF runs on the same service machinery as the MEF (`m2mtrust_mef::server::MefService`
//! in [`Role::Maf`](m2mtrust_mef::server::Role::Maf), its procedures engine in the MAF role);
//! this crate adds what is particular to it:
//!
//! - [`MafClients`]: who may complete the MAF Handshake (§8.8.2.2). Pre-provisioned master
//!   credentials (Km, `11-<KmID>` in the credential table, sealed, bound to the client's
//!   CSE-ID/AE-ID) and remotely provisioned ones (§8.8.2.3 step 1a): a client enrolled by the
//!   MEF of the same data folder offers its KeID; its Km is the usage-constrained key of
//!   §10.3.7 with SUID 21 and the MAF's FQDN as Enrolment-Target-ID, derived from the MEF's
//!   sealed Ke record.
//! - [`assigned_km_id`]: the KmID a remotely provisioned client is assigned at registration
//!   (`assignedSymmKeyID`): `<RelativeKeID>@<MAF-FQDN>` (§10.6 format). It names the same Km,
//!   which is never stored on its own and expires with the enrolment (§10.7).
//! - [`MAF_SAEF_SUID`] and the checks Entity B applies to a retrieved key
//!   ([`check_retrieved`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use m2mtrust_channel::{KpsaId, PskKey};
use m2mtrust_crypto::{Fqdn, Sealer, kdf};
use m2mtrust_mef::target::{Provisioning, StoreProvisioning};
use m2mtrust_mef::{Assignment, Enrollee, Enrollees};
use m2mtrust_model::Timestamp;
use m2mtrust_store::{CredentialRecord, Store};

/// Kind of a pre-provisioned master credential (Km) in the credential table; its id is
/// `11-<KmID>`.
pub const KM_KIND: &str = "km";

/// The SUID of a MAF-distributed key for the SAEF (TS-0004 m2m:suid 32).
pub const MAF_SAEF_SUID: u32 = 32;

/// SUID 33: a MAF-distributed symmetric key for ESPrim (TS-0004 Table 6.3.4.2.39-1); the
/// Receiver derives the pairwiseESPrimKey from it (TS-0003 §8.4.2 Phase A).
pub const MAF_ESPRIM_SUID: u32 = 33;

/// The SUID of the key a MEF provisions for a MAF (21, "RSPF key shared with a MAF").
pub const RSPF_MAF_SUID: &str = "21";

/// The Credential-ID of a master credential: `11-<KmID>` (TS-0003 §10.4).
pub fn km_credential_id(km_id: &KpsaId) -> String {
    format!("11-{km_id}")
}

/// The record the operator stores for a pre-provisioned master credential.
pub fn km_record(
    sealer: &Sealer,
    km_id: &KpsaId,
    km: &[u8],
    assignment: &Assignment,
    now: Timestamp,
    expires: Timestamp,
) -> Result<CredentialRecord, m2mtrust_crypto::SealError> {
    let id = km_credential_id(km_id);
    let sealed = sealer.seal(km, id.as_bytes())?;
    let (binding, bound_ids) = assignment.record_binding();
    Ok(CredentialRecord {
        id,
        kind: KM_KIND.into(),
        sealed_secret: Some(sealed),
        binding: binding.into(),
        bound_ids,
        created: now,
        expires: Some(expires),
    })
}

/// The KmID a client that registered with its KeID is assigned (`assignedSymmKeyID`):
/// `<RelativeKeID>@<MAF-FQDN>`.
pub fn assigned_km_id(ke_id: &KpsaId, maf: &Fqdn) -> Option<KpsaId> {
    KpsaId::parse(&format!("{}@{}", ke_id.relative(), maf.as_str())).ok()
}

/// The MAF's clients: pre-provisioned Km in the credential table, and keys remotely
/// provisioned by the MEF that shares the data folder.
pub struct MafClients {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    maf: Fqdn,
    mef: Option<(Fqdn, StoreProvisioning)>,
}

impl std::fmt::Debug for MafClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MafClients")
            .field("maf", &self.maf)
            .field("mef", &self.mef.as_ref().map(|(f, _)| f))
            .finish_non_exhaustive()
    }
}

impl MafClients {
    /// The clients of the MAF `maf` in `store`. With `mef`, the MEF of the same store whose
    /// enrolees may register with their KeID.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, maf: Fqdn, mef: Option<Fqdn>) -> Self {
        let mef = mef.map(|fqdn| {
            (
                fqdn,
                StoreProvisioning::new(store.clone(), sealer.clone(), false),
            )
        });
        Self {
            store,
            sealer,
            maf,
            mef,
        }
    }

    fn pre_provisioned(&self, km_id: &KpsaId) -> Option<Enrollee> {
        m2mtrust_mef::sealed_key_enrollee(
            &self.store,
            &self.sealer,
            &km_credential_id(km_id),
            KM_KIND,
        )
    }

    /// The Km of an enrolee of the local MEF, by its KeID.
    fn remote(&self, ke_id: &KpsaId) -> Option<Enrollee> {
        let (_, provisioning) = self.mef.as_ref()?;
        let stored = match provisioning.enrolment(ke_id) {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, ke_id = %ke_id, "cannot read an enrolment");
                return None;
            }
        };
        let km =
            kdf::derive_usage_constrained(&stored.ke, RSPF_MAF_SUID, self.maf.as_str()).ok()?;
        Some(Enrollee {
            kpm: Some(PskKey::new(km.expose_bytes().to_vec()).ok()?),
            assignment: stored.assignment,
            expires: stored.expires,
        })
    }

    /// The KeID an assigned KmID stands for.
    fn ke_id_of(&self, km_id: &KpsaId) -> Option<KpsaId> {
        let (mef, _) = self.mef.as_ref()?;
        KpsaId::parse(&format!("{}@{}", km_id.relative(), mef.as_str())).ok()
    }
}

impl Enrollees for MafClients {
    fn kpm(&self, id: &KpsaId) -> Option<Enrollee> {
        if let Some(e) = self.pre_provisioned(id) {
            return Some(e);
        }
        if self.is_remote(id) {
            return self.remote(id);
        }
        if id.issuer().eq_ignore_ascii_case(self.maf.as_str()) {
            return self.remote(&self.ke_id_of(id)?);
        }
        None
    }

    fn by_certificate(&self, _credential_id: &str) -> Option<Enrollee> {
        // Certificate clients of the MAF are CSE-ID/AE-ID certificates, known by their names.
        None
    }

    fn is_remote(&self, id: &KpsaId) -> bool {
        self.mef
            .as_ref()
            .is_some_and(|(mef, _)| id.issuer().eq_ignore_ascii_case(mef.as_str()))
    }
}

/// Why Entity B refuses a key retrieved from the MAF.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetrievedKeyError {
    /// The key was registered for another use (§8.8.2.8: the SUID must be the SAEF's).
    #[error("the key is for SUID {0}, not the MAF-based SAEF ({MAF_SAEF_SUID})")]
    WrongUsage(u32),
    /// Its lifetime is over (§8.2.2.3 step f).
    #[error("the key expired")]
    Expired,
}

/// Entity B's checks of a retrieved Kc (§8.2.2.3 steps c-f, §8.8.2.8).
pub fn check_retrieved(
    suid: u32,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), RetrievedKeyError> {
    if suid != MAF_SAEF_SUID {
        return Err(RetrievedKeyError::WrongUsage(suid));
    }
    if expires.is_some_and(|e| e <= now) {
        return Err(RetrievedKeyError::Expired);
    }
    Ok(())
}

/// The [`KmAssigner`](m2mtrust_mef::procedures::KmAssigner) of a MAF next to its MEF: the
/// client authenticated with its KeID, so the MAF already holds its Km (derived from the MEF's
/// Ke record); the assigned KmID is [`assigned_km_id`], which names that same Km in later
/// MAF Handshakes.
#[derive(Debug)]
pub struct KmFromKe {
    maf: Fqdn,
}

impl KmFromKe {
    /// The assigner of the MAF `maf`.
    pub fn new(maf: Fqdn) -> Self {
        Self { maf }
    }
}

impl m2mtrust_mef::procedures::KmAssigner for KmFromKe {
    fn assign(
        &self,
        session: &m2mtrust_mef::wire::Session,
        _reg_id: &str,
        _expires: DateTime<Utc>,
    ) -> Result<String, m2mtrust_mef::procedures::ProcedureError> {
        let refused =
            |reason: &str| m2mtrust_mef::procedures::ProcedureError::RemoteCredentialRefused {
                key_id: session.remote_key_id.clone().unwrap_or_default(),
                reason: reason.to_owned(),
            };
        let ke_id = session
            .remote_key_id
            .as_deref()
            .and_then(|k| KpsaId::parse(k).ok())
            .ok_or_else(|| refused("no KeID on this session"))?;
        let km_id = assigned_km_id(&ke_id, &self.maf).ok_or_else(|| refused("KeID too long"))?;
        tracing::info!(target: "audit", event = "km_assigned", ke_id = %ke_id, km_id = %km_id);
        Ok(km_id.to_string())
    }
}
