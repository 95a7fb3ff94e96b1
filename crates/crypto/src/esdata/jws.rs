//! TS-0003 §8.5.2.3 / §8.5.3.3 Signature-only ESData: JWS (RFC 7515).
//!
//! The envelope is assembled and parsed here; the signatures are josekit's (OpenSSL), and HMAC
//! values are compared in constant time by [`VerificationKey`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::jwe::{b64, header_object, merge, opt_str};
use super::{EsData, EsDataError, Serialization, SignatureAlgorithm, SigningKey, VerificationKey};

/// A signature that verified with a configured key (TS-0003 §8.5.2.3.1 step C.3: the Target
/// "shall record the credential(s) used to verify the Payload").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// The identifier of the configured key that verified the signature.
    pub kid: String,
    /// The signature algorithm.
    pub alg: SignatureAlgorithm,
    /// The `cty` header parameter of that signature, if any.
    pub content_type: Option<String>,
}

/// A verified envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payload.
    pub payload: Vec<u8>,
    /// The signatures that verified, in envelope order.
    pub signers: Vec<VerifiedSigner>,
    /// How many signatures were not checked: no configured key, or an algorithm or header
    /// parameter this profile refuses.
    pub ignored: usize,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("payload_len", &self.payload.len())
            .field("signers", &self.signers)
            .field("ignored", &self.ignored)
            .finish()
    }
}

fn malformed(what: impl Into<String>) -> EsDataError {
    EsDataError::Malformed(what.into())
}

/// One signature of an envelope, before verification.
struct Entry<'a> {
    protected: &'a str,
    header: Option<&'a Map<String, Value>>,
    signature: &'a str,
}

enum Outcome {
    Verified(VerifiedSigner),
    Ignored(EsDataError),
    Failed(EsDataError),
}

fn check(
    entry: &Entry<'_>,
    payload_b64: &str,
    keys: &[&VerificationKey],
    nested: bool,
) -> Result<Outcome, EsDataError> {
    let protected = header_object(entry.protected, "protected header")?;
    let mut merged = protected.clone();
    if let Some(h) = entry.header {
        merge(&mut merged, h)?;
    }
    for refused in ["crit", "b64"] {
        if merged.contains_key(refused) {
            return Ok(Outcome::Ignored(EsDataError::UnsupportedHeader(refused)));
        }
    }
    // The algorithm must be integrity protected.
    let Some(alg) = opt_str(&protected, "alg")? else {
        return Ok(Outcome::Ignored(malformed(
            "no alg in the protected header",
        )));
    };
    let Some(alg) = SignatureAlgorithm::from_name(alg) else {
        return Ok(Outcome::Ignored(EsDataError::AlgorithmNotAllowed(
            alg.to_owned(),
        )));
    };
    if nested && alg.is_symmetric() {
        return Ok(Outcome::Ignored(EsDataError::SymmetricSignatureInNested));
    }
    let kid = opt_str(&merged, "kid")?;
    let content_type = opt_str(&merged, "cty")?.map(str::to_owned);
    let candidates: Vec<&VerificationKey> = keys
        .iter()
        .copied()
        .filter(|k| k.algorithm() == alg && kid.is_none_or(|kid| kid == k.kid()))
        .collect();
    let Some(first) = candidates.first() else {
        return Ok(Outcome::Ignored(EsDataError::NoMatchingKey {
            kid: kid.map(str::to_owned),
            alg: alg.name().to_owned(),
        }));
    };
    let signature = b64(entry.signature, "signature")?;
    let input = format!("{}.{payload_b64}", entry.protected);
    for key in &candidates {
        if key.verifies(input.as_bytes(), &signature) {
            return Ok(Outcome::Verified(VerifiedSigner {
                kid: key.kid().to_owned(),
                alg,
                content_type,
            }));
        }
    }
    Ok(Outcome::Failed(EsDataError::BadSignature {
        kid: first.kid().to_owned(),
    }))
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, EsDataError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!("{name} is not a string"))),
        None => Err(malformed(format!("no {name}"))),
    }
}

fn entry(obj: &Map<String, Value>) -> Result<Entry<'_>, EsDataError> {
    Ok(Entry {
        protected: str_member(obj, "protected")?,
        header: match obj.get("header") {
            None => None,
            Some(Value::Object(h)) => Some(h),
            Some(_) => return Err(malformed("header is not an object")),
        },
        signature: str_member(obj, "signature")?,
    })
}

/// Verifies an envelope in any serialization; `nested` refuses HS* signatures (TS-0003
/// §8.5.3.4).
///
/// The envelope verifies when at least one signature verifies with a configured key and no
/// signature made by a configured key fails; signatures without a configured key, or with a
/// refused algorithm or header parameter, are counted in [`Verified::ignored`].
pub(super) fn verify(
    envelope: &str,
    keys: &[&VerificationKey],
    nested: bool,
) -> Result<Verified, EsDataError> {
    let json_top;
    let (payload_b64, entries): (&str, Vec<Entry<'_>>) = if envelope.trim_start().starts_with('{') {
        json_top = match serde_json::from_str::<Value>(envelope) {
            Ok(Value::Object(top)) => top,
            _ => return Err(malformed("not a JSON object")),
        };
        let payload = str_member(&json_top, "payload")?;
        let entries = match (
            json_top.get("signatures"),
            json_top.contains_key("signature"),
        ) {
            (Some(_), true) => return Err(malformed("both signatures and signature")),
            (Some(Value::Array(list)), false) if !list.is_empty() => list
                .iter()
                .map(|s| match s {
                    Value::Object(s) => entry(s),
                    _ => Err(malformed("a signature is not an object")),
                })
                .collect::<Result<_, _>>()?,
            (Some(_), false) => return Err(malformed("signatures is not a non-empty array")),
            (None, _) => vec![entry(&json_top)?],
        };
        (payload, entries)
    } else {
        let parts: Vec<&str> = envelope.split('.').collect();
        let [protected, payload, signature] = parts.as_slice() else {
            return Err(malformed(format!(
                "a compact JWS has 3 parts, got {}",
                parts.len()
            )));
        };
        (
            *payload,
            vec![Entry {
                protected,
                header: None,
                signature,
            }],
        )
    };
    let payload = b64(payload_b64, "payload")?;
    let single = entries.len() == 1;
    let mut signers = Vec::new();
    let mut ignored = Vec::new();
    for e in &entries {
        match check(e, payload_b64, keys, nested)? {
            Outcome::Verified(s) => signers.push(s),
            Outcome::Ignored(why) => ignored.push(why),
            Outcome::Failed(why) => return Err(why),
        }
    }
    if !signers.is_empty() {
        return Ok(Verified {
            payload,
            signers,
            ignored: ignored.len(),
        });
    }
    if let Some(pos) = ignored
        .iter()
        .position(|e| matches!(e, EsDataError::SymmetricSignatureInNested))
    {
        return Err(ignored.swap_remove(pos));
    }
    match (single, ignored.pop()) {
        (true, Some(why)) => Err(why),
        _ => Err(EsDataError::NoMatchingKey {
            kid: None,
            alg: "no signature has a configured key".into(),
        }),
    }
}

impl EsData {
    /// TS-0003 §8.5.2.3.1 step B: signs `payload` with every key of `signers` (one data element
    /// per credential). Each protected header holds `alg` and `kid`. The Compact and flattened
    /// serializations take exactly one signer.
    pub fn sign(
        &self,
        payload: &[u8],
        signers: &[&SigningKey],
        serialization: Serialization,
    ) -> Result<String, EsDataError> {
        if signers.is_empty() {
            return Err(EsDataError::InvalidRequest("no signer".into()));
        }
        if serialization != Serialization::GeneralJson && signers.len() != 1 {
            return Err(EsDataError::InvalidRequest(format!(
                "{serialization:?} serialization takes one signature, got {}",
                signers.len()
            )));
        }
        let payload_b64 = URL_SAFE_NO_PAD.encode(payload);
        let mut signatures = Vec::with_capacity(signers.len());
        for s in signers {
            let header = json!({"alg": s.algorithm().name(), "kid": s.kid()});
            let protected = URL_SAFE_NO_PAD.encode(header.to_string());
            let signature = s.sign(format!("{protected}.{payload_b64}").as_bytes())?;
            signatures.push((protected, URL_SAFE_NO_PAD.encode(signature)));
        }
        Ok(match (serialization, signatures.as_slice()) {
            (Serialization::Compact, [(protected, signature)]) => {
                format!("{protected}.{payload_b64}.{signature}")
            }
            (Serialization::FlattenedJson, [(protected, signature)]) => json!({
                "payload": payload_b64,
                "protected": protected,
                "signature": signature,
            })
            .to_string(),
            _ => json!({
                "payload": payload_b64,
                "signatures": signatures
                    .iter()
                    .map(|(p, s)| json!({"protected": p, "signature": s}))
                    .collect::<Vec<_>>(),
            })
            .to_string(),
        })
    }

    /// TS-0003 §8.5.2.3.1 step C: verifies an envelope in any serialization with `keys` and
    /// returns the payload with the credentials that verified it.
    ///
    /// A signature is checked only with a key of the same algorithm and, when the header has a
    /// `kid`, the same identifier; `alg` must be in the protected header. The envelope is refused
    /// if a signature by a configured key fails, or if no signature verifies.
    pub fn verify(
        &self,
        envelope: &str,
        keys: &[&VerificationKey],
    ) -> Result<Verified, EsDataError> {
        verify(envelope, keys, false)
    }
}
