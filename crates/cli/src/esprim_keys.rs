//! pairwiseESPrimKeys of the data folder (TS-0003 §8.4.2 Phase A, provisioned framework): the
//! credential table's `13-<pairwiseESPrimKeyID>` records (kind `esprim`, key sealed, bound to
//! the AE-ID or CSE-ID the key authenticates), added with `m2mtrust credential add-esprim` or
//! established by ESCertKE; and (MAF framework) keys named by a Key Identifier of the MAF,
//! retrieved from it on first use (§8.8.2.8, SUID 33), the pairwiseESPrimKey derived from Kc and
//! kept as such a record until Kc expires; and (RSPF) keys named by the KeID of an enrolment
//! with this CSE as target (SUID 23): derived from Ke when the MEF shares the data folder,
//! fetched from a remote MEF (`/fetchCredentials/<KeID>/23`) otherwise.

use std::sync::Arc;

use m2mtrust_crypto::esprim::{KC_PAIRWISE_LABEL, derive_pairwise_key_from_kc};
use m2mtrust_crypto::{CredentialId, CredentialTypeId, KpsaId, Sealer, SecretKey};
use m2mtrust_cse::esprim::{EsPrimKeys, PairwiseKey};
use m2mtrust_mef::remote::RemoteMef;
use m2mtrust_mef::target::Provisioning;
use m2mtrust_store::{Store, StoreExt};

/// The credential kind of a pairwiseESPrimKey record.
pub const KIND: &str = "esprim";

/// The Credential-ID of the pairwiseESPrimKey named `kid`.
pub fn credential_id(kid: &str) -> Result<String, String> {
    CredentialId::new(CredentialTypeId::PAIRWISE_ES_PRIM_KEY_ID, kid)
        .map(|c| c.to_string())
        .map_err(|e| format!("pairwiseESPrimKeyID {kid:?}: {e}"))
}

/// Keys from the credential table, and from the MAF.
pub struct StoreEsPrimKeys {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    maf: Option<Arc<RemoteMef>>,
    /// The FQDN this CSE is known by as enrolment target of the MEF sharing the data folder.
    local_mef_target: Option<String>,
    remote_mef: Option<Arc<RemoteMef>>,
    /// This CSE's identity, to read the identities keys come with.
    home: m2mtrust_model::Home,
}

impl StoreEsPrimKeys {
    /// Keys of `store`, unsealed with `sealer`, for the CSE `home`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, home: m2mtrust_model::Home) -> Self {
        Self {
            store,
            sealer,
            maf: None,
            local_mef_target: None,
            remote_mef: None,
            home,
        }
    }

    /// The canonical form of an AE-ID or CSE-ID a MAF or MEF associates with a key (the form
    /// the inner `From` is compared in, §7.2.2); `None` for anything else.
    fn identity(&self, id: &str) -> Option<String> {
        match m2mtrust_model::Originator::parse(id, &self.home).ok()? {
            m2mtrust_model::Originator::Foreign(_) => None,
            o => Some(o.canonical()),
        }
    }

    /// Also derive ESPrim keys of enrolments recorded by the MEF sharing the data folder, whose
    /// target this CSE is, known by `target_fqdn`.
    pub fn with_local_mef(mut self, target_fqdn: String) -> Self {
        self.local_mef_target = Some(target_fqdn);
        self
    }

    /// Also fetch ESPrim keys of enrolments from the remote MEF `mef`.
    pub fn with_remote_mef(mut self, mef: Arc<RemoteMef>) -> Self {
        self.remote_mef = Some(mef);
        self
    }

    /// The ESPrim key (SUID 23) of the enrolment `kid` names, from the local MEF's record or
    /// the remote MEF.
    fn enrolment_key(&self, kid: &str, id: &str) -> Option<PairwiseKey> {
        let ke_id = KpsaId::parse(kid).ok()?;
        let suid = m2mtrust_mef::server::SUID_RSPF_ESPRIM.to_string();
        let now = chrono::Utc::now();
        let (key, identity, expires) = if let Some(fqdn) = &self.local_mef_target {
            let provisioning = m2mtrust_mef::target::StoreProvisioning::new(
                self.store.clone(),
                self.sealer.clone(),
                true,
            );
            match provisioning.enrolment(&ke_id) {
                Ok(Some(e)) if e.expires > now => {
                    let key =
                        m2mtrust_crypto::kdf::derive_usage_constrained(&e.ke, &suid, fqdn).ok()?;
                    let identity = match e.assignment {
                        m2mtrust_mef::Assignment::CseId(c) => self.identity(&c)?,
                        m2mtrust_mef::Assignment::AeIds(ids) => self.single_identity(&ids)?,
                    };
                    (key, identity, Some(e.expires))
                }
                _ => return self.fetch_enrolment_key(&ke_id, id),
            }
        } else {
            return self.fetch_enrolment_key(&ke_id, id);
        };
        Some(self.keep(id, key, identity, expires))
    }

    fn fetch_enrolment_key(&self, ke_id: &KpsaId, id: &str) -> Option<PairwiseKey> {
        let mef = self.remote_mef.as_ref()?;
        if !mef.issues(ke_id) {
            return None;
        }
        let fetched = match mef.fetch_esprim_blocking(ke_id) {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(target: "audit", event = "esprim_key_fetch_failed", kid = %ke_id, reason = %e);
                return None;
            }
        };
        if fetched.expires.is_some_and(|e| e <= chrono::Utc::now()) {
            return None;
        }
        let identity = self.single_identity(&fetched.enrolee_id)?;
        Some(self.keep(id, fetched.key, identity, fetched.expires))
    }

    /// The key, kept as a `13-<kid>` record (written in the background) for later objects.
    fn keep(
        &self,
        id: &str,
        key: SecretKey,
        identity: String,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> PairwiseKey {
        match self.sealer.seal(key.expose_bytes(), id.as_bytes()) {
            Ok(sealed) => crate::tls::keep_in_background(
                self.store.clone(),
                m2mtrust_store::CredentialRecord {
                    id: id.to_owned(),
                    kind: KIND.into(),
                    sealed_secret: Some(sealed),
                    binding: if identity.starts_with('/') && !identity[1..].contains('/') {
                        "cse".into()
                    } else {
                        "ae".into()
                    },
                    bound_ids: vec![identity.clone()],
                    created: m2mtrust_model::Timestamp::now(),
                    expires: expires.map(|t| m2mtrust_model::Timestamp(t.timestamp_micros())),
                },
            ),
            Err(e) => tracing::error!(error = %e, credential = %id, "cannot seal an ESPrim key"),
        }
        PairwiseKey {
            key,
            identity,
            not_after: expires,
        }
    }

    /// The identity of a key associated with exactly one AE-ID or CSE-ID.
    fn single_identity(&self, ids: &[String]) -> Option<String> {
        match ids {
            [one] => self.identity(one),
            _ => None,
        }
    }

    /// Also retrieve keys named by Key Identifiers of `maf` from it.
    pub fn with_maf(mut self, maf: Arc<RemoteMef>) -> Self {
        self.maf = Some(maf);
        self
    }

    /// MAF Key Retrieval of `kid` for ESPrim: Kc for SUID 33, unexpired, registered by a
    /// client known by one AE-ID or CSE-ID; the pairwise key derived and kept.
    fn retrieve_from_maf(&self, kid: &str, id: &str) -> Option<PairwiseKey> {
        let maf = self.maf.as_ref()?;
        let key_id = KpsaId::parse(kid).ok()?;
        if !maf.issues(&key_id) {
            return None;
        }
        let fetched = match maf.retrieve_key_blocking(&key_id) {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(target: "audit", event = "esprim_key_retrieval_failed", kid, reason = %e);
                return None;
            }
        };
        let now = chrono::Utc::now();
        if fetched.suid != Some(m2mtrust_maf::MAF_ESPRIM_SUID)
            || fetched.expires.is_some_and(|e| e <= now)
        {
            tracing::info!(target: "audit", event = "esprim_key_refused", kid, suid = ?fetched.suid, "not an unexpired ESPrim key");
            return None;
        }
        let Some(identity) = self.single_identity(&fetched.enrolee_id) else {
            tracing::info!(target: "audit", event = "esprim_key_refused", kid, "the key's client is not one AE-ID or CSE-ID");
            return None;
        };
        let key = derive_pairwise_key_from_kc(&fetched.key, KC_PAIRWISE_LABEL).ok()?;
        Some(self.keep(id, key, identity, fetched.expires))
    }
}

impl EsPrimKeys for StoreEsPrimKeys {
    fn pairwise(&self, kid: &str) -> Option<PairwiseKey> {
        let id = credential_id(kid).ok()?;
        let record = match self.store.read(|r| r.credential(&id)) {
            Ok(Some(r)) if r.kind == KIND => r,
            Ok(Some(_)) => return None,
            Ok(None) => {
                return self
                    .retrieve_from_maf(kid, &id)
                    .or_else(|| self.enrolment_key(kid, &id));
            }
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
