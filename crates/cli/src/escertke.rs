//! ESCertKE (TS-0003 §8.7) in the binary: the CSE as Terminating End-Point (installed in
//! `serve.rs`), and the Initiating End-Point of `m2mtrust request --escertke`.
//!
//! The Terminator authenticates with the CSE's server certificate, trusts the data folder's CA
//! plus `https.trust_anchors` (and `https.crls`), and accepts an Initiator only when its
//! certificate names the originator of the NOTIFYs (canonical AE-ID or CSE-ID). Message 3 is
//! correlated with message 1 by that originator; at most [`MAX_PENDING`] procedures wait for
//! their message 3, each for [`PENDING_TIMEOUT`]. A successful procedure leaves the
//! pairwiseE2EKey in the credential table as the pairwiseESPrimKey `13-<kid>` (kind `esprim`,
//! sealed, bound to the Initiator's identity), kid = `<hex of pairwiseE2EKeyID>@<SP domain>`,
//! valid for [`KEY_LIFETIME_SECS`] or until the Initiator's certificate expires.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m2mtrust_channel::escertke::{
    EsCertKeConfig, EsCertKeError, ExpectedPeer, Initiator, InitiatorContext, Terminator,
    TerminatorContext, initiator_rules, is_first_message,
};
use m2mtrust_channel::{Binding, CertifiedKey, IdentityRules, TrustAnchors};
use m2mtrust_crypto::Sealer;
use m2mtrust_cse::esprim::{EsCertKeRefusal, EsCertKeTerminator};
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{CredentialRecord, Store, StoreExt};

use crate::config::Settings;

/// Procedures waiting for their message 3 at most.
pub const MAX_PENDING: usize = 1000;
/// How long a procedure waits for its message 3.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest life of an established pairwiseESPrimKey (pairwiseESPrimKeyLifetime).
pub const KEY_LIFETIME_SECS: i64 = 24 * 3600;

struct Pending {
    terminator: Terminator,
    started: Instant,
}

struct Inner {
    ctx: TerminatorContext,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// The CSE's Terminating End-Point.
pub struct CseTerminator {
    inner: Arc<Inner>,
}

impl CseTerminator {
    /// The Terminator of the CSE configured by `settings`, with its certificate chain and key.
    pub fn build(
        settings: &Settings,
        (chain, key): (String, m2mtrust_crypto::PrivateKeyPem),
        ca: &m2mtrust_crypto::DevCa,
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
    ) -> Result<Arc<Self>, String> {
        let home = &settings.cse.home;
        let certificate = CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
            .map_err(|e| format!("ESCertKE: server certificate: {e}"))?;
        let trust = crate::serve::client_trust(settings, ca)?;
        let rules = IdentityRules::new(
            home.sp_id.domain(),
            home.cse_id.clone(),
            home.cse_id.clone(),
        )
        .map_err(|e| format!("ESCertKE identity rules: {e}"))?;
        let ctx = TerminatorContext::new(&EsCertKeConfig::new(certificate, trust, rules))
            .map_err(|e| format!("ESCertKE: {e}"))?;
        Ok(Arc::new(Self {
            inner: Arc::new(Inner {
                ctx,
                store,
                sealer,
                pending: Mutex::new(HashMap::new()),
            }),
        }))
    }
}

/// The one mapping from engine errors to the refusals the CSE answers with.
fn refusal(e: &EsCertKeError) -> EsCertKeRefusal {
    if e.is_authentication_failure() {
        EsCertKeRefusal::Refused(e.to_string())
    } else if e.is_unsupported() {
        EsCertKeRefusal::Unsupported(e.to_string())
    } else if matches!(e, EsCertKeError::Setup(_) | EsCertKeError::Export(_)) {
        EsCertKeRefusal::Internal(e.to_string())
    } else {
        EsCertKeRefusal::Malformed(e.to_string())
    }
}

impl Inner {
    /// C.1c: message 1 starts a procedure for `from` (replacing one in progress).
    fn first(&self, from: &str, msg1: &[u8]) -> Result<Vec<u8>, EsCertKeRefusal> {
        {
            let mut pending = self
                .pending
                .lock()
                .map_err(|_| EsCertKeRefusal::Internal("pending map poisoned".into()))?;
            if pending.len() >= MAX_PENDING {
                pending.retain(|_, p| p.started.elapsed() < PENDING_TIMEOUT);
            }
            if pending.len() >= MAX_PENDING && !pending.contains_key(from) {
                return Err(EsCertKeRefusal::Internal(
                    "too many ESCertKE procedures in progress".into(),
                ));
            }
        }
        let mut terminator = Terminator::new(&self.ctx, ExpectedPeer::Identity(from.to_string()))
            .map_err(|e| refusal(&e))?;
        let msg2 = terminator.respond(msg1).map_err(|e| refusal(&e))?;
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| EsCertKeRefusal::Internal("pending map poisoned".into()))?;
        pending.insert(
            from.to_string(),
            Pending {
                terminator,
                started: Instant::now(),
            },
        );
        Ok(msg2)
    }

    /// C.1g and C.2: message 3 of the procedure `from` started; the key is stored before
    /// message 4 leaves.
    async fn third(&self, from: &str, msg3: &[u8]) -> Result<Vec<u8>, EsCertKeRefusal> {
        let pending = self
            .pending
            .lock()
            .map_err(|_| EsCertKeRefusal::Internal("pending map poisoned".into()))?
            .remove(from)
            .filter(|p| p.started.elapsed() < PENDING_TIMEOUT)
            .ok_or_else(|| {
                EsCertKeRefusal::Malformed(format!(
                    "no ESCertKE procedure of {from} is waiting for message 3 (send message 1 first)"
                ))
            })?;
        let (msg4, outcome) = pending.terminator.finish(msg3).map_err(|e| refusal(&e))?;
        let kid = outcome.esprim_kid();
        let id = crate::esprim_keys::credential_id(&kid).map_err(EsCertKeRefusal::Internal)?;
        let sealed = self
            .sealer
            .seal(outcome.key.expose_secret(), id.as_bytes())
            .map_err(|e| EsCertKeRefusal::Internal(format!("cannot seal the key: {e}")))?;
        let binding = match outcome.peer {
            Binding::Cse(_) => "cse",
            _ => "ae",
        };
        let now = Timestamp::now();
        // The key does not outlive the certificate that authenticated it.
        let certificate_secs =
            m2mtrust_crypto::pki::certificate_identity_der(&outcome.peer_certificate_der)
                .map(|c| (c.not_after - chrono::Utc::now()).num_seconds())
                .unwrap_or(0);
        let lifetime = KEY_LIFETIME_SECS.min(certificate_secs).max(1);
        let record = CredentialRecord {
            id: id.clone(),
            kind: crate::esprim_keys::KIND.into(),
            sealed_secret: Some(sealed),
            binding: binding.into(),
            bound_ids: vec![outcome.peer_id().to_string()],
            created: now,
            expires: Some(now.plus_secs(lifetime)),
        };
        self.store
            .write(move |w| w.put_credential(&record))
            .await
            .map_err(|e| EsCertKeRefusal::Internal(format!("cannot store {id}: {e}")))?;
        tracing::info!(
            target: "audit",
            event = "escertke_established",
            from = %from,
            credential_id = %format!("13-{kid}"),
            peer_credential_id = %outcome.peer_credential_id,
            cipher = %outcome.cipher,
            lifetime_secs = lifetime,
        );
        Ok(msg4)
    }
}

impl EsCertKeTerminator for CseTerminator {
    fn respond(
        &self,
        from: String,
        message: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, EsCertKeRefusal>> + Send>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if is_first_message(&message) {
                inner.first(&from, &message)
            } else {
                inner.third(&from, &message).await
            }
        })
    }
}

/// The Terminator's CSE-ID for `request --escertke`: the first segment of an SP-relative
/// (`/id-in/cse-in`) or absolute (`//sp/id-in/cse-in`) receiver, or the registrar named in an
/// AE-ID certificate for a CSE-relative one (`cse-in`).
fn terminator_cse(receiver: &str, certificate: &CertifiedKey) -> Result<CseId, String> {
    let first = |path: &str| path.split('/').next().unwrap_or("").to_string();
    let cse = if let Some(absolute) = receiver.strip_prefix("//") {
        first(absolute.split_once('/').map(|(_, p)| p).unwrap_or(""))
    } else if let Some(sp_relative) = receiver.strip_prefix('/') {
        first(sp_relative)
    } else {
        // CSE-relative: the CSE the AE is registered with, as its certificate says.
        let uri = certificate
            .leaf()
            .and_then(|c| c.subject_alt_names())
            .and_then(|names| names.iter().find_map(|n| n.uri().map(str::to_string)));
        match uri.and_then(|u| m2mtrust_crypto::pki::parse_ae_id_uri(&u).ok()) {
            Some(ae) if ae.cse_id.is_some() => ae.cse_id.unwrap_or_default(),
            _ => {
                return Err(format!(
                    "cannot tell the CSE-ID of the receiver {receiver:?}; give an SP-relative \
                     --esprim-receiver (/<cse-id>/<CSEBase>)"
                ));
            }
        }
    };
    CseId::parse(&cse).map_err(|e| format!("receiver {receiver:?}: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The Initiating End-Point of `request --escertke`: the certificate and key of `--cert`/`--key`,
/// the trust anchors of `--ca`, expecting the CSE that hosts `receiver`.
pub fn initiator(cert: &Path, key: &Path, ca: &Path, receiver: &str) -> Result<Initiator, String> {
    let certificate = CertifiedKey::from_pem(&read(cert)?, &read(key)?)
        .map_err(|e| format!("--escertke: {e}"))?;
    let trust = TrustAnchors::from_pem(&read(ca)?).map_err(|e| format!("--ca: {e}"))?;
    let terminator = terminator_cse(receiver, &certificate)?;
    let rules = initiator_rules(&certificate, &terminator).map_err(|e| format!("--cert: {e}"))?;
    let ctx = InitiatorContext::new(&EsCertKeConfig::new(certificate, trust, rules))
        .map_err(|e| format!("--escertke: {e}"))?;
    Initiator::new(&ctx, ExpectedPeer::Identity(terminator.to_string()))
        .map_err(|e| format!("--escertke: {e}"))
}
