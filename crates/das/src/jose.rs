//! The compact serializations of `m2m:dynAuthJWT` (TS-0003 §7.3.2.6, RFC 7515 §7.1, RFC 7516 §7.1)
//! and the JOSE header rules of the oneM2M JWT profile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::TokenError;

/// base64url without padding (RFC 7515 §2). Padding and non-canonical trailing bits are refused.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Inverse of [`b64_encode`].
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// A compact JWS split into its parts (nothing verified yet).
pub(crate) struct CompactJws<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the JWS Signing Input.
    pub signing_input: &'a str,
    /// The decoded protected header.
    pub header: Map<String, Value>,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// The two forms of `m2m:dynAuthJWT`.
pub(crate) enum Compact<'a> {
    /// `a.b.c` with a and c non-empty.
    Jws(CompactJws<'a>),
    /// `a.b.c.d.e` with a and d non-empty.
    Jwe {
        /// The decoded protected header.
        header: Map<String, Value>,
        /// The whole token, for the JWE library.
        token: &'a str,
    },
}

/// TS-0003 §7.3.2.6 "Validating a JWT" step 1: the token conforms to `m2m:dynAuthJWT`.
pub(crate) fn split(token: &str) -> Result<Compact<'_>, TokenError> {
    let token = token.trim_ascii();
    if token.starts_with('{') {
        return Err(TokenError::Malformed(
            "JSON serialization is not an m2m:dynAuthJWT; only compact serializations are".into(),
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [h, p, s] => {
            if h.is_empty() || s.is_empty() {
                return Err(TokenError::Malformed(
                    "compact JWS needs a non-empty header and signature".into(),
                ));
            }
            let header = decode_header(h)?;
            let payload = b64_decode(p)
                .map_err(|e| TokenError::Malformed(format!("JWS payload is not base64url: {e}")))?;
            let signature = b64_decode(s).map_err(|e| {
                TokenError::Malformed(format!("JWS signature is not base64url: {e}"))
            })?;
            // The signing input is the header and payload parts exactly as received.
            let signing_input = token
                .get(..h.len() + 1 + p.len())
                .ok_or_else(|| TokenError::Malformed("JWS signing input".into()))?;
            Ok(Compact::Jws(CompactJws {
                signing_input,
                header,
                payload,
                signature,
            }))
        }
        [h, _, _, d, _] => {
            if h.is_empty() || d.is_empty() {
                return Err(TokenError::Malformed(
                    "compact JWE needs a non-empty header and ciphertext".into(),
                ));
            }
            Ok(Compact::Jwe {
                header: decode_header(h)?,
                token,
            })
        }
        _ => Err(TokenError::Malformed(format!(
            "a compact JWS has 3 parts and a compact JWE 5, this token has {}",
            parts.len()
        ))),
    }
}

fn decode_header(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = b64_decode(part)
        .map_err(|e| TokenError::Malformed(format!("JOSE header is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Malformed(
            "JOSE header is not a JSON object".into(),
        )),
        Err(e) => Err(TokenError::Malformed(format!(
            "JOSE header is not JSON: {e}"
        ))),
    }
}

/// TS-0003 §7.3.2.6 JOSE header rules for a Signature-only JWT: `"typ":"JWT"` present, no
/// `"cty"`. `crit` is refused since no extension is understood (RFC 7515 §4.1.11). Returns `alg`.
pub(crate) fn check_jws_header(header: &Map<String, Value>) -> Result<&str, TokenError> {
    match header.get("typ") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(other) => {
            return Err(TokenError::Malformed(format!(
                "JWS header typ must be \"JWT\", is {other}"
            )));
        }
        None => return Err(TokenError::Malformed("JWS header lacks typ \"JWT\"".into())),
    }
    if header.contains_key("cty") {
        return Err(TokenError::Malformed(
            "a Signature-only oneM2M JWT shall not carry cty".into(),
        ));
    }
    if header.contains_key("crit") {
        return Err(TokenError::Unsupported(
            "JWS header crit: no extension is understood".into(),
        ));
    }
    match header.get("alg") {
        Some(Value::String(alg)) => Ok(alg),
        _ => Err(TokenError::Malformed(
            "JWS header lacks a string alg".into(),
        )),
    }
}

/// TS-0003 §7.3.2.6 JOSE header rules for the JWE of a Nested JWT: `"typ":"JWT"` and
/// `"cty":"JWT"`; only `A256KW`/`dir` with `A256GCM`; no `zip`, no `crit`. Returns `alg`.
/// A JWE without `cty` is the Encryption-only class, which is not supported.
pub(crate) fn check_nested_jwe_header(header: &Map<String, Value>) -> Result<&str, TokenError> {
    match header.get("typ") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        _ => return Err(TokenError::Malformed("JWE header lacks typ \"JWT\"".into())),
    }
    match header.get("cty") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        None => {
            return Err(TokenError::Unsupported(
                "Encryption-only oneM2M JWTs (JWE without cty \"JWT\") are not supported".into(),
            ));
        }
        Some(other) => {
            return Err(TokenError::Malformed(format!(
                "nested JWT: JWE cty must be \"JWT\", is {other}"
            )));
        }
    }
    if header.contains_key("zip") || header.contains_key("crit") {
        return Err(TokenError::Unsupported("JWE header zip or crit".into()));
    }
    match header.get("enc") {
        Some(Value::String(enc)) if enc == crate::ENC_A256GCM => {}
        other => {
            return Err(TokenError::Unsupported(format!(
                "JWE enc {other:?}; only A256GCM is supported"
            )));
        }
    }
    match header.get("alg") {
        Some(Value::String(alg)) if alg == crate::ALG_A256KW || alg == crate::ALG_DIR => Ok(alg),
        other => Err(TokenError::Unsupported(format!(
            "JWE alg {other:?}; only A256KW and dir are supported"
        ))),
    }
}
