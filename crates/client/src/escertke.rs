//! The Initiating End-Point of End-to-End Certificate-based Key Establishment (TS-0003 §8.7)
//! over oneM2M primitives.
//!
//! [`establish`] carries the four ESCertKE Messages of an
//! [`Initiator`](m2mtrust_channel::escertke::Initiator) in two NOTIFY exchanges with the
//! Terminating End-Point's `<CSEBase>`: message 1 in the first request and message 2 in its
//! response, message 3 in the second request and message 4 in its response, each as
//! `{"m2m:seci": {"sit": 6, "eckm": "<base64 of the message>"}}`. The Terminator correlates the
//! two requests by their `From`. The result is a pairwiseE2EKey with its identifier, which the
//! Terminator also holds as a pairwiseESPrimKey (use it with
//! [`EsPrimOriginator`](crate::esprim::EsPrimOriginator)).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use m2mtrust_channel::escertke::Initiator;
use m2mtrust_crypto::SecretKey;
use m2mtrust_model::{Operation, Request, ResponseStatusCode};
use serde_json::{Value, json};

use crate::{Client, ClientError};

/// `securityInfoType` of an ESCertKE Message.
const SIT_ESCERTKE_MESSAGE: u64 = 6;

/// A pairwise key established with a Terminating End-Point.
pub struct Established {
    /// pairwiseE2EKeyID (16 bytes).
    pub key_id: [u8; 16],
    /// The pairwiseESPrimKey identifier both ends use: `<hex of key_id>@<M2M SP domain>`.
    pub kid: String,
    /// pairwiseE2EKey (32 bytes).
    pub key: SecretKey,
    /// The Terminator's identity, as its certificate proved it (e.g. `/id-in`).
    pub peer: String,
    /// The negotiated TLS suite (OpenSSL name).
    pub cipher: String,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("kid", &self.kid)
            .field("key", &self.key)
            .field("peer", &self.peer)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

fn escertke(msg: impl Into<String>) -> ClientError {
    ClientError::EsCertKe(msg.into())
}

/// Runs the ESCertKE Procedure (§8.7.2.2 C.1, C.2) with the Terminating End-Point whose
/// `<CSEBase>` is `receiver` (the `To` of both NOTIFYs: `/id-in/cse-in`, or `cse-in` on the
/// CSE the client talks to), as the originator `from` (the Initiator's AE-ID or CSE-ID, which
/// its certificate names). `initiator` holds the certificate, the trust anchors and the
/// expected Terminator identity.
pub async fn establish(
    client: &Client,
    receiver: &str,
    from: &str,
    mut initiator: Initiator,
) -> Result<Established, ClientError> {
    let msg1 = initiator
        .start()
        .map_err(|e| escertke(format!("message 1: {e}")))?;
    let msg2 = exchange(client, receiver, from, &msg1, 1).await?;
    let msg3 = initiator
        .finish(&msg2)
        .map_err(|e| escertke(format!("message 2 refused: {e}")))?;
    let msg4 = exchange(client, receiver, from, &msg3, 3).await?;
    let outcome = initiator
        .confirm(&msg4)
        .map_err(|e| escertke(format!("message 4 refused: {e}")))?;
    Ok(Established {
        key_id: outcome.key_id,
        kid: outcome.esprim_kid(),
        key: SecretKey::from_slice(outcome.key.expose_secret()),
        peer: outcome.peer_id().to_string(),
        cipher: outcome.cipher.clone(),
    })
}

/// One NOTIFY: message `n` out, message `n + 1` back.
async fn exchange(
    client: &Client,
    receiver: &str,
    from: &str,
    message: &[u8],
    n: u8,
) -> Result<Vec<u8>, ClientError> {
    let mut req = Request::new(Operation::Notify, receiver, Some(from.to_string()));
    req.request_id = crate::request_id();
    req.content = Some(json!({
        "m2m:seci": {"sit": SIT_ESCERTKE_MESSAGE, "eckm": BASE64.encode(message)}
    }));
    let resp = client.send(&req).await?;
    if resp.status != ResponseStatusCode::OK {
        return Err(escertke(format!(
            "the Terminating End-Point refused message {n}: {} {}",
            resp.status,
            resp.debug_message().unwrap_or("")
        )));
    }
    let eckm = resp
        .content
        .as_ref()
        .and_then(|c| c.get("m2m:seci"))
        .filter(|s| s.get("sit").and_then(Value::as_u64) == Some(SIT_ESCERTKE_MESSAGE))
        .and_then(|s| s.get("eckm"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            escertke(format!(
                "the answer to message {n} holds no ESCertKE Message"
            ))
        })?;
    BASE64
        .decode(eckm)
        .map_err(|_| escertke(format!("the answer to message {n} is not base64")))
}
