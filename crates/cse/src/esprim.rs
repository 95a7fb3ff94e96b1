//! The hosting CSE as Receiver of End-to-End Security of Primitives (TS-0003 §8.4, §7.2.2).
//!
//! A NOTIFY to `<CSEBase>` whose content is `m2m:securityInfo`:
//! - type 3 (receiverESPrimRandObject Request) is answered with type 4 and a fresh, non-shared
//!   receiver rand object (step B.2e/f), remembered until it expires;
//! - type 5 (ESPrim Object) is opened (steps C.6a-c: `kid` → pairwiseESPrimKey, `rri`, `ori`/
//!   `oro`, algorithm agreement, AEAD), checked against replay, its inner `From` compared with
//!   the identity of the pairwise key (§7.2.2, 4116), and the inner request is processed as
//!   authenticated by that key — through the same access control as any request. The inner
//!   response goes back protected with the same session key (step C.8), as type 5.
//!
//! - type 6 (ESCertKE Message, TS-0003 §8.7) carries a flight of the certificate-based key
//!   establishment: message 1 or 3 in the request, message 2 or 4 in the response. The CSE is the
//!   Terminating End-Point through an [`EsCertKeTerminator`]; the TLS work and the keys it yields
//!   (pairwiseESPrimKeys for later type 5 objects) stay outside this crate.
//!
//! Failures of the ESPrim layer are unsecured outer responses with the RSCs 4111-4116, 5210,
//! 5211 (TS-0004 Table 7.6.2-1); failures of the inner request are protected inner responses.
//! Refused ESCertKE Messages are unsecured responses with the codes of [`EsCertKeRefusal::rsc`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use chrono::{DateTime, Utc};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esprim::{
    EsPrimError, EsPrimHeader, EsPrimKeyGenAlgId, EsPrimObject, EsPrimProtocolAndAlgId,
    EsPrimRandId, EsPrimRandValue, OriginatorEsPrimRandObject, ReceiverEsPrimRandObject,
    ReplayGuard, SessionKey, check_session,
};
use m2mtrust_model::{
    Authentication, Operation, Originator, PeerIdentity, Request, Response,
    ResponseStatusCode as Rsc,
};
use serde_json::{Value, json};

use crate::Cse;

/// `securityInfoType` 3: receiverESPrimRandObject Request.
pub const SIT_RAND_REQUEST: u64 = 3;
/// `securityInfoType` 4: receiverESPrimRandObject Response.
pub const SIT_RAND_RESPONSE: u64 = 4;
/// `securityInfoType` 5: ESPrim Object.
pub const SIT_ESPRIM_OBJECT: u64 = 5;
/// `securityInfoType` 6: ESCertKE Message (`escertkeMessage`, short name `eckm`).
pub const SIT_ESCERTKE_MESSAGE: u64 = 6;

/// Media type (`cty`) of an inner request and an inner response.
pub const CTY_REQUEST: &str = "vnd.onem2m-preq+json";
/// Media type of an inner response.
pub const CTY_RESPONSE: &str = "vnd.onem2m-prsp+json";

/// The SUIDs this CSE advertises in `e2eSecInfo.supportedE2ESecFeatures`: ESPrim with a
/// pre-provisioned key (13), one provisioned by a MEF's RSPF (23), one distributed by a MAF
/// (33), or one established from certificates by ESCertKE (43).
pub const SUPPORTED_ESPRIM_SUIDS: [u64; 4] = [13, 23, 33, 43];

/// The longest `eckm` accepted (base64 characters); ESCertKE Messages are a few KiB.
const MAX_ESCERTKE_MESSAGE_B64: usize = 64 * 1024;

/// Receiver rand objects remembered at most (each about 200 bytes).
const MAX_RECEIVER_OBJECTS: usize = 100_000;
/// Originator rand objects remembered at most.
const MAX_ORIGINATOR_OBJECTS: usize = 100_000;
/// ESPrim Objects remembered against replay at most.
const REPLAY_CAPACITY: usize = 1_000_000;

/// A pairwiseESPrimKey and what it is bound to.
pub struct PairwiseKey {
    /// The key.
    pub key: SecretKey,
    /// The identity associated with it (canonical AE-ID or CSE-ID, e.g. `/id-mn/Cae1`).
    pub identity: String,
    /// When it expires; `None`: never (§8.4.2 Phase A).
    pub not_after: Option<DateTime<Utc>>,
}

/// Where the CSE finds pairwiseESPrimKeys by identifier (provisioned, from a MEF, or derived
/// from a MAF-distributed Kc).
pub trait EsPrimKeys: Send + Sync {
    /// The key named `kid`, if any.
    fn pairwise(&self, kid: &str) -> Option<PairwiseKey>;
}

/// Why the Terminating End-Point refused an ESCertKE Message. The variant picks the Response
/// Status Code ([`EsCertKeRefusal::rsc`]); the text goes to the Initiator, except for
/// [`EsCertKeRefusal::Internal`], whose detail is only logged.
#[derive(Debug, thiserror::Error)]
pub enum EsCertKeRefusal {
    /// Not an ESCertKE Message, the wrong message, or message 3 without a handshake in progress
    /// for this `From`: 4000.
    #[error("{0}")]
    Malformed(String),
    /// Nothing in the message this end-point supports (TLS version, cipher suites): 4111.
    #[error("{0}")]
    Unsupported(String),
    /// The Initiator was not authenticated: its certificate or identity was refused, or its
    /// Finished did not verify: 4103.
    #[error("{0}")]
    Refused(String),
    /// A local failure (storage, too many handshakes in progress): 5000.
    #[error("{0}")]
    Internal(String),
}

impl EsCertKeRefusal {
    /// The Response Status Code of the refusal.
    pub fn rsc(&self) -> Rsc {
        match self {
            Self::Malformed(_) => Rsc::BAD_REQUEST,
            Self::Unsupported(_) => Rsc::ESPRIM_UNSUPPORTED_OPTION,
            Self::Refused(_) => Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
            Self::Internal(_) => Rsc::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The Terminating End-Point of ESCertKE (TS-0003 §8.7.2.2). It takes message 1 or message 3
/// from the Initiator named `from` (the canonical originator of the outer NOTIFY) and returns
/// message 2 or message 4. It correlates message 3 with message 1 by `from`, and keeps the key
/// a successful procedure yields so that [`EsPrimKeys`] finds it.
pub trait EsCertKeTerminator: Send + Sync {
    /// Processes one ESCertKE Message.
    fn respond(
        &self,
        from: String,
        message: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, EsCertKeRefusal>> + Send>>;
}

/// Receiver rand objects outstanding per requester; a new one replaces its oldest.
const RECEIVER_OBJECTS_PER_REQUESTER: usize = 64;

/// The receiver rand objects handed out, by `esprimRandID`, and per requester in order.
#[derive(Default)]
struct ReceiverObjects {
    by_id: HashMap<String, ReceiverEsPrimRandObject>,
    by_requester: HashMap<String, std::collections::VecDeque<String>>,
}

impl ReceiverObjects {
    fn get(&self, id: &str) -> Option<ReceiverEsPrimRandObject> {
        self.by_id.get(id).cloned()
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        self.by_id.retain(|_, o| o.expiry > now);
        let by_id = &self.by_id;
        self.by_requester.retain(|_, ids| {
            ids.retain(|id| by_id.contains_key(id));
            !ids.is_empty()
        });
    }

    /// Keeps `object` for `requester`; `false` when the table is full of unexpired objects.
    fn insert(
        &mut self,
        requester: &str,
        object: &ReceiverEsPrimRandObject,
        now: DateTime<Utc>,
    ) -> bool {
        let ids = self.by_requester.entry(requester.to_string()).or_default();
        if ids.len() >= RECEIVER_OBJECTS_PER_REQUESTER
            && let Some(oldest) = ids.pop_front()
        {
            self.by_id.remove(&oldest);
        }
        if self.by_id.len() >= MAX_RECEIVER_OBJECTS {
            self.prune(now);
            if self.by_id.len() >= MAX_RECEIVER_OBJECTS {
                return false;
            }
        }
        let id = object.id.as_str().to_string();
        self.by_requester
            .entry(requester.to_string())
            .or_default()
            .push_back(id.clone());
        self.by_id.insert(id, object.clone());
        true
    }
}

/// The Receiver's ESPrim state.
pub(crate) struct EsPrimState {
    keys: OnceLock<Arc<dyn EsPrimKeys>>,
    escertke: OnceLock<Arc<dyn EsCertKeTerminator>>,
    receivers: Mutex<ReceiverObjects>,
    /// Originator rand objects by (`kid`, `esri`).
    originators: Mutex<HashMap<(String, String), OriginatorEsPrimRandObject>>,
    replay: Mutex<ReplayGuard>,
}

impl Default for EsPrimState {
    fn default() -> Self {
        Self {
            keys: OnceLock::new(),
            escertke: OnceLock::new(),
            receivers: Mutex::new(ReceiverObjects::default()),
            originators: Mutex::new(HashMap::new()),
            replay: Mutex::new(ReplayGuard::new(REPLAY_CAPACITY)),
        }
    }
}

/// An unsecured outer response for an ESPrim-layer failure.
fn outer_error(e: &EsPrimError) -> Response {
    Response::error(Rsc(e.rsc()), e.to_string())
}

fn seci(v: Value) -> Response {
    Response::new(Rsc::OK, Some(json!({ "m2m:seci": v })))
}

impl Cse {
    /// Installs where pairwiseESPrimKeys are looked up; without it, ESPrim Objects are refused
    /// with 4112 and `e2eSecInfo` is not advertised.
    pub fn set_esprim_keys(&self, keys: Arc<dyn EsPrimKeys>) {
        let _ = self.esprim.keys.set(keys);
    }

    /// Installs the ESCertKE Terminating End-Point; without it, ESCertKE Messages are refused
    /// with 4111.
    pub fn set_escertke(&self, terminator: Arc<dyn EsCertKeTerminator>) {
        let _ = self.esprim.escertke.set(terminator);
    }

    /// Whether this CSE takes ESPrim Objects.
    pub(crate) fn esprim_enabled(&self) -> bool {
        self.esprim.keys.get().is_some()
    }

    /// A NOTIFY to `<CSEBase>` carrying `m2m:seci` of type 3, 5 or 6; `None` for any other
    /// content (the caller goes on as usual).
    pub(crate) async fn esprim_notify(
        &self,
        req: &Request,
        peer: &PeerIdentity,
    ) -> Option<Response> {
        let seci = req.content.as_ref()?.get("m2m:seci")?;
        let sit = seci.get("sit").and_then(Value::as_u64)?;
        let now = Utc::now();
        match sit {
            SIT_RAND_REQUEST => {
                Some(self.receiver_rand_object(req.from.as_deref().unwrap_or(""), now))
            }
            SIT_ESPRIM_OBJECT => {
                let Some(epo) = seci.get("epo").and_then(Value::as_str) else {
                    return Some(Response::error(
                        Rsc::BAD_REQUEST,
                        "securityInfo type 5 needs an esprimObject (epo)",
                    ));
                };
                Some(self.open_esprim(epo, req, peer, now).await)
            }
            SIT_ESCERTKE_MESSAGE => Some(self.escertke_message(seci, req, peer).await),
            _ => None,
        }
    }

    /// TS-0003 §8.7.2.2 C.1c/C.1g at the Terminating End-Point: message 1 or 3 in, message 2
    /// or 4 out, each base64 in `eckm`.
    async fn escertke_message(&self, info: &Value, req: &Request, peer: &PeerIdentity) -> Response {
        let Some(terminator) = self.esprim.escertke.get() else {
            return Response::error(
                Rsc::ESPRIM_UNSUPPORTED_OPTION,
                "this CSE is not an ESCertKE Terminating End-Point",
            );
        };
        let Some(eckm) = info.get("eckm").and_then(Value::as_str) else {
            return Response::error(
                Rsc::BAD_REQUEST,
                "securityInfo type 6 needs an escertkeMessage (eckm)",
            );
        };
        if eckm.len() > MAX_ESCERTKE_MESSAGE_B64 {
            return Response::error(Rsc::BAD_REQUEST, "the ESCertKE Message is too long");
        }
        let Ok(message) = BASE64.decode(eckm) else {
            return Response::error(Rsc::BAD_REQUEST, "eckm is not base64");
        };
        // The Initiator's identity, for correlating message 3 with message 1; the dispatcher
        // has already checked it against the connection.
        let Some(from) = req
            .from
            .as_deref()
            .and_then(|f| Originator::parse(f, self.home()).ok())
            .map(|o| o.canonical())
        else {
            return Response::error(Rsc::BAD_REQUEST, "an ESCertKE Message needs a From");
        };
        let peer_addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
        match terminator.respond(from.clone(), message).await {
            Ok(reply) => seci(json!({"sit": SIT_ESCERTKE_MESSAGE, "eckm": BASE64.encode(reply)})),
            Err(refusal) => {
                tracing::warn!(target: "audit", event = "escertke_refused", from = %from, peer = %peer_addr, rsc = refusal.rsc().0, detail = %refusal, "ESCertKE Message refused");
                let message = match &refusal {
                    EsCertKeRefusal::Internal(_) => "internal error".to_string(),
                    other => other.to_string(),
                };
                Response::error(refusal.rsc(), message)
            }
        }
    }

    /// Step B.2e/f: a fresh non-shared receiver rand object.
    fn receiver_rand_object(&self, requester: &str, now: DateTime<Utc>) -> Response {
        if !self.esprim_enabled() {
            return outer_error(&EsPrimError::UnsupportedOption(
                "this CSE does not take ESPrim Objects".into(),
            ));
        }
        let made = EsPrimRandId::generate(false).and_then(|id| {
            Ok(ReceiverEsPrimRandObject {
                id,
                value: EsPrimRandValue::generate()?,
                expiry: now + chrono::Duration::seconds(self.cfg.esprim_rand_lifetime_secs),
                key_gen_algs: vec![EsPrimKeyGenAlgId::HMAC_SHA256],
                protocol_and_alg_ids: vec![
                    EsPrimProtocolAndAlgId::JWE_A128GCM,
                    EsPrimProtocolAndAlgId::JWE_A192GCM,
                    EsPrimProtocolAndAlgId::JWE_A256GCM,
                ],
            })
        });
        let object = match made {
            Ok(o) => o,
            Err(e) => return outer_error(&e),
        };
        let Ok(mut receivers) = self.esprim.receivers.lock() else {
            return Response::error(Rsc::INTERNAL_SERVER_ERROR, "internal error");
        };
        if !receivers.insert(requester, &object, now) {
            return Response::error(
                Rsc::INTERNAL_SERVER_ERROR,
                "too many ESPrim sessions are being set up; try again later",
            );
        }
        seci(json!({"sit": SIT_RAND_RESPONSE, "ero": object.to_json()}))
    }

    /// Steps C.5-C.9.
    async fn open_esprim(
        &self,
        epo: &str,
        outer: &Request,
        peer: &PeerIdentity,
        now: DateTime<Utc>,
    ) -> Response {
        let opened = self.open_object(epo, now);
        let (plaintext, object, key, identity) = match opened {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(target: "audit", from = outer.from.as_deref().unwrap_or(""), reason = e.reason(), error = %e, "ESPrim object refused");
                return outer_error(&e);
            }
        };
        let header = object.header();
        let protect = |resp: &Response| -> Response {
            let mut h = EsPrimHeader::new(
                header.enc,
                header.kid.clone(),
                header.ori.clone(),
                header.rri.clone(),
            );
            h.content_type = Some(CTY_RESPONSE.to_string());
            let bytes = serde_json::to_vec(&resp.to_primitive_json()).unwrap_or_default();
            match EsPrimObject::protect(&bytes, &key, &h) {
                Ok(epo) => seci(json!({"sit": SIT_ESPRIM_OBJECT, "epo": epo})),
                Err(e) => outer_error(&EsPrimError::EncryptionError(e.to_string())),
            }
        };
        let inner = match serde_json::from_slice::<Value>(&plaintext)
            .map_err(|e| e.to_string())
            .and_then(|v| Request::from_primitive_json(&v).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                return protect(&Response::error(
                    Rsc::BAD_REQUEST,
                    format!("the inner request primitive cannot be read: {e}"),
                ));
            }
        };
        // §7.2.2: the inner From must be the identity associated with the pairwise key.
        let from = inner
            .from
            .as_deref()
            .and_then(|f| Originator::parse(f, self.home()).ok())
            .map(|o| o.canonical())
            .unwrap_or_default();
        if let Err(e) = m2mtrust_crypto::esprim::check_originator(&from, &identity) {
            tracing::warn!(target: "audit", kid = %header.kid, from = %from, identity = %identity, "ESPrim impersonation refused");
            return outer_error(&e);
        }
        if inner.operation == Operation::Notify
            && inner
                .content
                .as_ref()
                .is_some_and(|c| c.get("m2m:seci").is_some())
        {
            return protect(&Response::error(
                Rsc::BAD_REQUEST,
                "an ESPrim Object cannot carry another securityInfo",
            ));
        }
        // The inner request is authenticated by the pairwise key (rq_authn true).
        let inner_peer = PeerIdentity {
            addr: peer.addr,
            authentication: Authentication::Credential {
                credential_id: format!("esprim:{}", header.kid),
                bound_ids: vec![identity.clone()],
            },
        };
        tracing::debug!(kid = %header.kid, from = %from, op = ?inner.operation, to = %inner.to, "ESPrim inner request");
        let mut resp = self.handle(inner.clone(), inner_peer).await;
        resp.request_id = inner.request_id.clone();
        protect(&resp)
    }

    /// Steps C.6a-c and the replay check: the plaintext, the object, the session key and the
    /// identity of the pairwise key.
    #[allow(clippy::type_complexity)]
    fn open_object(
        &self,
        epo: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, EsPrimObject, SessionKey, String), EsPrimError> {
        let object = EsPrimObject::parse(epo, now)?;
        let header = object.header();
        // The receiver rand object first: it is local, while an unknown `kid` may make the key
        // lookup ask the MAF or MEF.
        let receiver = self
            .esprim
            .receivers
            .lock()
            .ok()
            .and_then(|r| r.get(header.rri.as_str()))
            .filter(|r| r.expiry > now)
            .ok_or_else(|| EsPrimError::UnknownReceiverRandId(header.rri.to_string()))?;
        let keys = self
            .esprim
            .keys
            .get()
            .ok_or_else(|| EsPrimError::UnknownKeyId(header.kid.clone()))?;
        let pairwise = keys
            .pairwise(&header.kid)
            .filter(|k| k.not_after.is_none_or(|t| t > now))
            .ok_or_else(|| EsPrimError::UnknownKeyId(header.kid.clone()))?;
        let originator = match &header.oro {
            Some(oro) => {
                // At the start of a session `ori` names the object sent.
                if oro.id != header.ori {
                    return Err(EsPrimError::UnknownOriginatorRandId(format!(
                        "ori {} does not name the originatorESPrimRandObject sent ({})",
                        header.ori, oro.id
                    )));
                }
                oro.clone()
            }
            None => self
                .esprim
                .originators
                .lock()
                .ok()
                .and_then(|o| {
                    o.get(&(header.kid.clone(), header.ori.as_str().to_string()))
                        .cloned()
                })
                .ok_or_else(|| EsPrimError::UnknownOriginatorRandId(header.ori.to_string()))?,
        };
        check_session(&originator, &receiver, header.enc, now)?;
        let key = SessionKey::derive(&pairwise.key, &receiver, &originator)?;
        let plaintext = object.open(&key)?;
        let valid_until = [
            Some(originator.expiry),
            Some(receiver.expiry),
            pairwise.not_after,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        self.esprim
            .replay
            .lock()
            .map_err(|_| EsPrimError::ReplayMemoryFull)?
            .check_and_record(&object, valid_until, now)?;
        // Only an authenticated object records its originator rand object.
        if header.oro.is_some()
            && let Ok(mut originators) = self.esprim.originators.lock()
        {
            if originators.len() >= MAX_ORIGINATOR_OBJECTS {
                originators.retain(|_, o| o.expiry > now);
            }
            if originators.len() < MAX_ORIGINATOR_OBJECTS {
                originators.insert(
                    (header.kid.clone(), originator.id.as_str().to_string()),
                    originator,
                );
            }
        }
        Ok((plaintext, object, key, pairwise.identity))
    }
}
