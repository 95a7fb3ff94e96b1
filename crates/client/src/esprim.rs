//! The Originator side of End-to-End Security of Primitives (TS-0003 §8.4): a request is
//! encrypted for its Receiver with a session key derived from a pairwiseESPrimKey, so CSEs on
//! the way only route it.
//!
//! [`EsPrimOriginator::send`] asks the Receiver's `<CSEBase>` for a receiverESPrimRandObject
//! (NOTIFY, `securityInfo` type 3) when it has no valid session, derives the sessionESPrimKey,
//! sends the inner request as an ESPrim Object (NOTIFY, type 5; the first object of a session
//! carries the originatorESPrimRandObject) and opens the protected inner response.

use chrono::{DateTime, Duration, Utc};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::ContentEncryption;
use m2mtrust_crypto::esprim::{
    EsPrimHeader, EsPrimObject, EsPrimProtocolAndAlgId, EsPrimRandId, EsPrimRandValue,
    OriginatorEsPrimRandObject, ReceiverEsPrimRandObject, SessionKey,
};
use m2mtrust_model::{Operation, Request, Response, ResponseStatusCode};
use serde_json::{Value, json};

use crate::{Client, ClientError};

/// A session is renewed this long before its rand objects expire, so a response still finds
/// it valid.
const RENEW_BEFORE_SECS: i64 = 30;

struct Session {
    receiver: ReceiverEsPrimRandObject,
    originator: OriginatorEsPrimRandObject,
    key: SessionKey,
    enc: ContentEncryption,
    /// Whether the Receiver has accepted an object with `oro`.
    established: bool,
}

/// An Originator's ESPrim sessions with one Receiver over one pairwiseESPrimKey.
pub struct EsPrimOriginator {
    kid: String,
    pairwise: SecretKey,
    from: String,
    receiver: String,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for EsPrimOriginator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsPrimOriginator")
            .field("kid", &self.kid)
            .field("from", &self.from)
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

fn esprim(msg: impl Into<String>) -> ClientError {
    ClientError::EsPrim(msg.into())
}

fn seci_of(resp: &Response, sit: u64) -> Option<&Value> {
    resp.content
        .as_ref()?
        .get("m2m:seci")
        .filter(|s| s.get("sit").and_then(Value::as_u64) == Some(sit))
}

impl EsPrimOriginator {
    /// Sessions for `from` (the Originator's AE-ID or CSE-ID, the identity the Receiver
    /// associates with the key) with the Receiver whose `<CSEBase>` or `<AE>` is `receiver`
    /// (the `To` of the outer requests, e.g. `/id-in/cse-in`), over the pairwiseESPrimKey
    /// `pairwise` named `kid`.
    pub fn new(
        kid: impl Into<String>,
        pairwise: SecretKey,
        from: impl Into<String>,
        receiver: impl Into<String>,
    ) -> Self {
        Self {
            kid: kid.into(),
            pairwise,
            from: from.into(),
            receiver: receiver.into(),
            session: tokio::sync::Mutex::new(None),
        }
    }

    fn outer(&self, content: Value) -> Request {
        let mut req = Request::new(
            Operation::Notify,
            self.receiver.clone(),
            Some(self.from.clone()),
        );
        req.request_id = crate::request_id();
        req.content = Some(json!({ "m2m:seci": content }));
        req
    }

    /// Steps B.2d-B.2h: a receiver rand object on request, our own, the session key.
    async fn new_session(
        &self,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<Session, ClientError> {
        let resp = client.send(&self.outer(json!({"sit": 3}))).await?;
        if resp.status != ResponseStatusCode::OK {
            return Err(esprim(format!(
                "the Receiver refused a rand object: {} {}",
                resp.status,
                resp.debug_message().unwrap_or("")
            )));
        }
        let ero = seci_of(&resp, 4)
            .and_then(|s| s.get("ero"))
            .ok_or_else(|| esprim("the Receiver's answer holds no receiverESPrimRandObject"))?;
        let receiver =
            ReceiverEsPrimRandObject::from_json(ero, now).map_err(|e| esprim(e.to_string()))?;
        // The strongest AEAD the Receiver offers.
        let preferred = [
            EsPrimProtocolAndAlgId::JWE_A256GCM,
            EsPrimProtocolAndAlgId::JWE_A192GCM,
            EsPrimProtocolAndAlgId::JWE_A128GCM,
        ];
        let chosen = preferred
            .into_iter()
            .find(|p| receiver.protocol_and_alg_ids.contains(p))
            .ok_or_else(|| esprim("the Receiver offers no AES-GCM ESPrim algorithm"))?;
        let enc = chosen
            .content_encryption()
            .ok_or_else(|| esprim("unknown ESPrim algorithm"))?;
        let id = EsPrimRandId::generate(false).map_err(|e| esprim(e.to_string()))?;
        let value = EsPrimRandValue::generate().map_err(|e| esprim(e.to_string()))?;
        let originator = OriginatorEsPrimRandObject::for_receiver(
            &receiver,
            id,
            value,
            receiver.expiry,
            vec![chosen],
            now,
        )
        .map_err(|e| esprim(e.to_string()))?;
        let key = SessionKey::derive(&self.pairwise, &receiver, &originator)
            .map_err(|e| esprim(e.to_string()))?;
        Ok(Session {
            receiver,
            originator,
            key,
            enc,
            established: false,
        })
    }

    /// Sends `inner` protected end to end and returns the Receiver's inner response. An
    /// ESPrim-layer refusal (4111-4116, 5210, 5211) is returned as the outer response.
    pub async fn send(&self, client: &Client, inner: &Request) -> Result<Response, ClientError> {
        let now = Utc::now();
        let mut slot = self.session.lock().await;
        let fresh = slot.as_ref().is_some_and(|s| {
            s.receiver.expiry.min(s.originator.expiry) > now + Duration::seconds(RENEW_BEFORE_SECS)
        });
        if !fresh {
            *slot = Some(self.new_session(client, now).await?);
        }
        let Some(session) = slot.as_mut() else {
            return Err(esprim("no session"));
        };
        let mut header = EsPrimHeader::new(
            session.enc,
            self.kid.clone(),
            session.originator.id.clone(),
            session.receiver.id.clone(),
        );
        header.content_type = Some("vnd.onem2m-preq+json".into());
        if !session.established {
            header.oro = Some(session.originator.clone());
        }
        let plaintext =
            serde_json::to_vec(&inner.to_primitive_json()).map_err(|e| esprim(e.to_string()))?;
        let epo = EsPrimObject::protect(&plaintext, &session.key, &header)
            .map_err(|e| esprim(e.to_string()))?;
        let resp = client
            .send(&self.outer(json!({"sit": 5, "epo": epo})))
            .await?;
        let Some(epo) = seci_of(&resp, 5)
            .and_then(|s| s.get("epo"))
            .and_then(Value::as_str)
        else {
            // An unsecured refusal of the ESPrim layer (or of a CSE on the way).
            if !resp.status.is_success() && matches!(resp.status.0, 4111..=4116 | 5210 | 5211) {
                // The Receiver no longer knows this session: start a new one next time.
                *slot = None;
            }
            return Ok(resp);
        };
        // C.10/C.11: the response must belong to this session, and open with its key.
        let object = EsPrimObject::parse(epo, Utc::now()).map_err(|e| esprim(e.to_string()))?;
        let h = object.header();
        if h.kid != self.kid || h.ori != session.originator.id || h.rri != session.receiver.id {
            return Err(esprim("the protected response belongs to another session"));
        }
        let bytes = object
            .open(&session.key)
            .map_err(|e| esprim(format!("the protected response does not open: {e}")))?;
        session.established = true;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| esprim(e.to_string()))?;
        if value.get("m2m:rsp").is_none() {
            return Err(esprim("the protected answer is not a response primitive"));
        }
        Response::from_primitive_json(&value).map_err(|e| esprim(e.to_string()))
    }
}
