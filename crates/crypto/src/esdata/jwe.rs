//! TS-0003 §8.5.2.2 / §8.5.3.2 Encryption-only ESData: JWE (RFC 7516).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::{JweContentEncryption, JweEncrypter, JweHeader, JweHeaderSet};
use serde_json::{Map, Value};

use super::{
    ContentEncryption, DecryptionKey, EncryptionKey, EsData, EsDataError, KeyManagementAlgorithm,
    Serialization,
};

/// How [`EsData::encrypt`] builds the envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JweOptions {
    /// The content encryption algorithm (`enc`).
    pub enc: ContentEncryption,
    /// The serialization of the envelope.
    pub serialization: Serialization,
    /// The `cty` header parameter (media type of the payload), if any.
    pub content_type: Option<String>,
}

impl JweOptions {
    /// Options with no `cty`.
    pub fn new(enc: ContentEncryption, serialization: Serialization) -> Self {
        Self {
            enc,
            serialization,
            content_type: None,
        }
    }
}

/// A decrypted envelope (TS-0003 §8.5.2.2.1 step E.2: "the verified plaintext").
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub payload: Vec<u8>,
    /// The identifier of the configured key that decrypted it.
    pub kid: String,
    /// The key management algorithm of the recipient entry that was used.
    pub alg: KeyManagementAlgorithm,
    /// The content encryption algorithm.
    pub enc: ContentEncryption,
    /// The `cty` header parameter, if any.
    pub content_type: Option<String>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("payload_len", &self.payload.len())
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("enc", &self.enc)
            .field("content_type", &self.content_type)
            .finish()
    }
}

fn malformed(what: impl Into<String>) -> EsDataError {
    EsDataError::Malformed(what.into())
}

/// Decodes one base64url (no padding) component.
pub(super) fn b64(part: &str, what: &str) -> Result<Vec<u8>, EsDataError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("{what} is not base64url")))
}

/// Decodes a protected header: base64url of a JSON object.
pub(super) fn header_object(part: &str, what: &str) -> Result<Map<String, Value>, EsDataError> {
    if part.is_empty() {
        return Err(malformed(format!("{what} is empty")));
    }
    serde_json::from_slice(&b64(part, what)?)
        .map_err(|_| malformed(format!("{what} is not a JSON object")))
}

/// Adds `more` to `into`; a parameter present in both is an error (RFC 7516 §7.2.1).
pub(super) fn merge(
    into: &mut Map<String, Value>,
    more: &Map<String, Value>,
) -> Result<(), EsDataError> {
    for (k, v) in more {
        if into.insert(k.clone(), v.clone()).is_some() {
            return Err(malformed(format!("header parameter {k:?} appears twice")));
        }
    }
    Ok(())
}

/// An optional string header parameter.
pub(super) fn opt_str<'a>(
    header: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, EsDataError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!(
            "header parameter {name:?} is not a string"
        ))),
    }
}

/// The header parameters this profile acts on, after the allow-list checks.
struct JweParams {
    alg: KeyManagementAlgorithm,
    enc: ContentEncryption,
    kid: Option<String>,
    content_type: Option<String>,
}

fn check_header(header: &Map<String, Value>) -> Result<JweParams, EsDataError> {
    for refused in ["crit", "zip"] {
        if header.contains_key(refused) {
            return Err(EsDataError::UnsupportedHeader(refused));
        }
    }
    let alg = opt_str(header, "alg")?.ok_or_else(|| malformed("no alg"))?;
    let alg = KeyManagementAlgorithm::from_name(alg)
        .ok_or_else(|| EsDataError::AlgorithmNotAllowed(alg.to_owned()))?;
    let enc = opt_str(header, "enc")?.ok_or_else(|| malformed("no enc"))?;
    let enc = ContentEncryption::from_name(enc)
        .ok_or_else(|| EsDataError::AlgorithmNotAllowed(enc.to_owned()))?;
    Ok(JweParams {
        alg,
        enc,
        kid: opt_str(header, "kid")?.map(str::to_owned),
        content_type: opt_str(header, "cty")?.map(str::to_owned),
    })
}

/// Lengths RFC 7518 fixes, checked before any key is used: a 96-bit IV and a 128-bit tag for
/// AES-GCM (§5.3), no Encrypted Key with `dir` (§4.5), a wrapped CEK of at least 24 octets in
/// 64-bit blocks for AES Key Wrap (§4.4, RFC 3394), some Encrypted Key for RSA-OAEP.
fn check_iv_and_tag(iv: &[u8], tag: &[u8]) -> Result<(), EsDataError> {
    if iv.len() != 12 {
        return Err(malformed(format!("IV of {} octets", iv.len())));
    }
    if tag.len() != 16 {
        return Err(malformed(format!("tag of {} octets", tag.len())));
    }
    Ok(())
}

fn check_encrypted_key(alg: KeyManagementAlgorithm, key: &[u8]) -> Result<(), EsDataError> {
    let ok = match alg {
        KeyManagementAlgorithm::Dir => key.is_empty(),
        KeyManagementAlgorithm::RsaOaep256 => !key.is_empty(),
        _ => key.len() >= 24 && key.len().is_multiple_of(8),
    };
    if ok {
        Ok(())
    } else {
        Err(malformed(format!(
            "an encrypted key of {} octets does not fit {alg}",
            key.len()
        )))
    }
}

/// The keys that may decrypt for a recipient with `params`: same algorithm, and the same
/// identifier when the header names one.
fn candidates<'k>(
    params: &JweParams,
    keys: &'k [&'k DecryptionKey],
) -> impl Iterator<Item = &'k DecryptionKey> {
    let alg = params.alg;
    let kid = params.kid.clone();
    keys.iter()
        .copied()
        .filter(move |k| k.algorithm() == alg && kid.as_deref().is_none_or(|kid| kid == k.kid()))
}

/// One recipient entry of a received JWE: its merged header, the outcome of the header and
/// length checks, and its Encrypted Key.
struct Entry {
    header: Map<String, Value>,
    params: Result<JweParams, EsDataError>,
    encrypted_key: Vec<u8>,
}

impl Entry {
    fn new(header: Map<String, Value>, encrypted_key: Vec<u8>) -> Self {
        let params = check_header(&header).and_then(|params| {
            check_encrypted_key(params.alg, &encrypted_key)?;
            Ok(params)
        });
        Self {
            header,
            params,
            encrypted_key,
        }
    }
}

/// A received JWE in any serialization, decoded but not decrypted.
struct Received {
    /// The additional authenticated data: `protected` or `protected '.' aad` (RFC 7516 §5.1
    /// step 14).
    aad: String,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    entries: Vec<Entry>,
}

fn parse_compact(envelope: &str) -> Result<Received, EsDataError> {
    let parts: Vec<&str> = envelope.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(malformed(format!(
            "a compact JWE has 5 parts, got {}",
            parts.len()
        )));
    };
    let header = header_object(protected, "protected header")?;
    Ok(Received {
        aad: (*protected).to_owned(),
        iv: b64(iv, "IV")?,
        ciphertext: b64(ciphertext, "ciphertext")?,
        tag: b64(tag, "tag")?,
        entries: vec![Entry::new(header, b64(encrypted_key, "encrypted key")?)],
    })
}

fn parse_json(envelope: &str) -> Result<Received, EsDataError> {
    let Value::Object(top) =
        serde_json::from_str::<Value>(envelope).map_err(|_| malformed("not a JSON object"))?
    else {
        return Err(malformed("not a JSON object"));
    };
    let string = |name: &str| match top.get(name) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.as_str())),
        Some(_) => Err(malformed(format!("{name} is not a string"))),
    };
    let required = |name: &str| {
        string(name)?
            .ok_or_else(|| malformed(format!("no {name}")))
            .and_then(|v| b64(v, name))
    };
    let protected = string("protected")?.unwrap_or_default();
    let mut shared = if protected.is_empty() {
        Map::new()
    } else {
        header_object(protected, "protected header")?
    };
    match top.get("unprotected") {
        None => {}
        Some(Value::Object(u)) => merge(&mut shared, u)?,
        Some(_) => return Err(malformed("unprotected is not an object")),
    }
    let aad = match string("aad")? {
        None => protected.to_owned(),
        Some(a) => {
            b64(a, "aad")?;
            format!("{protected}.{a}")
        }
    };
    let raw_entries: Vec<&Map<String, Value>> = match top.get("recipients") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|r| match r {
                Value::Object(r) => Ok(r),
                _ => Err(malformed("a recipient is not an object")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(malformed("recipients is not a non-empty array")),
        None => vec![&top],
    };
    let mut entries = Vec::with_capacity(raw_entries.len());
    for entry in raw_entries {
        let mut merged = shared.clone();
        match entry.get("header") {
            None => {}
            Some(Value::Object(h)) => merge(&mut merged, h)?,
            Some(_) => return Err(malformed("header is not an object")),
        }
        let encrypted_key = match entry.get("encrypted_key") {
            None => Vec::new(),
            Some(Value::String(k)) => b64(k, "encrypted_key")?,
            Some(_) => return Err(malformed("encrypted_key is not a string")),
        };
        entries.push(Entry::new(merged, encrypted_key));
    }
    Ok(Received {
        aad,
        iv: required("iv")?,
        ciphertext: required("ciphertext")?,
        tag: required("tag")?,
        entries,
    })
}

fn cipher(enc: ContentEncryption) -> (openssl::symm::Cipher, &'static dyn JweContentEncryption) {
    match enc {
        ContentEncryption::A128Gcm => (
            openssl::symm::Cipher::aes_128_gcm(),
            &josekit::jwe::enc::A128GCM,
        ),
        ContentEncryption::A192Gcm => (
            openssl::symm::Cipher::aes_192_gcm(),
            &josekit::jwe::enc::A192GCM,
        ),
        ContentEncryption::A256Gcm => (
            openssl::symm::Cipher::aes_256_gcm(),
            &josekit::jwe::enc::A256GCM,
        ),
    }
}

/// RFC 7516 §5.2 steps 10–16 for one entry and one key: recovers the CEK with the key's
/// algorithm (josekit), then AES-GCM decryption with the AAD (OpenSSL). The entry passed the
/// header and length checks.
fn open(
    received: &Received,
    entry: &Entry,
    params: &JweParams,
    key: &DecryptionKey,
) -> Option<Vec<u8>> {
    let header = JweHeader::from_map(entry.header.clone()).ok()?;
    let (cipher, cencryption) = cipher(params.enc);
    let encrypted_key = (!entry.encrypted_key.is_empty()).then_some(entry.encrypted_key.as_slice());
    let cek = key
        .decrypter()
        .decrypt(encrypted_key, cencryption, &header)
        .ok()?;
    if cek.len() != params.enc.key_len() {
        return None;
    }
    openssl::symm::decrypt_aead(
        cipher,
        &cek,
        Some(&received.iv),
        received.aad.as_bytes(),
        &received.ciphertext,
        &received.tag,
    )
    .ok()
}

fn crypto(e: josekit::JoseError) -> EsDataError {
    EsDataError::Crypto(e.to_string())
}

impl EsData {
    /// TS-0003 §8.5.2.2.1 steps B–C: encrypts `payload` for `recipients`.
    ///
    /// With `dir` the recipient's key is the CEK, so there must be exactly one recipient and the
    /// key length must be the `enc` key length ("This mode shall only be used when there is a
    /// single symmetric key"). Otherwise a fresh CEK is encrypted for every recipient (Encrypted
    /// Key Mode). The Compact and flattened serializations take one recipient; they carry `alg`,
    /// `enc`, `kid` and `cty` in the protected header. The general serialization protects `enc`
    /// and `cty` and lists `alg`, `kid` (and `epk` for ECDH-ES) in each recipient's header.
    pub fn encrypt(
        &self,
        payload: &[u8],
        recipients: &[&EncryptionKey],
        options: &JweOptions,
    ) -> Result<String, EsDataError> {
        let enc = options.enc;
        let Some(first) = recipients.first() else {
            return Err(EsDataError::InvalidRequest("no recipient".into()));
        };
        for r in recipients {
            if r.algorithm() == KeyManagementAlgorithm::Dir {
                if recipients.len() > 1 {
                    return Err(EsDataError::InvalidRequest(
                        "Direct Encryption Mode takes a single symmetric key".into(),
                    ));
                }
                if r.direct_len() != enc.key_len() {
                    return Err(EsDataError::InvalidRequest(format!(
                        "a {}-byte dir key cannot be the CEK of {enc}",
                        r.direct_len()
                    )));
                }
            }
        }
        match options.serialization {
            Serialization::Compact | Serialization::FlattenedJson => {
                if recipients.len() != 1 {
                    return Err(EsDataError::InvalidRequest(format!(
                        "{:?} serialization takes one recipient, got {}",
                        options.serialization,
                        recipients.len()
                    )));
                }
                if options.serialization == Serialization::Compact {
                    let mut header = JweHeader::new();
                    header.set_algorithm(first.algorithm().name());
                    header.set_content_encryption(enc.name());
                    header.set_key_id(first.kid());
                    if let Some(cty) = &options.content_type {
                        header.set_content_type(cty);
                    }
                    self.jwe
                        .serialize_compact(payload, &header, first.encrypter())
                        .map_err(crypto)
                } else {
                    let mut header = JweHeaderSet::new();
                    header.set_algorithm(first.algorithm().name(), true);
                    header.set_content_encryption(enc.name(), true);
                    header.set_key_id(first.kid(), true);
                    if let Some(cty) = &options.content_type {
                        header.set_content_type(cty, true);
                    }
                    self.jwe
                        .serialize_flattened_json(
                            payload,
                            Some(&header),
                            None,
                            None,
                            first.encrypter(),
                        )
                        .map_err(crypto)
                }
            }
            Serialization::GeneralJson => {
                let mut shared = JweHeaderSet::new();
                shared.set_content_encryption(enc.name(), true);
                if let Some(cty) = &options.content_type {
                    shared.set_content_type(cty, true);
                }
                let headers: Vec<JweHeader> = recipients
                    .iter()
                    .map(|r| {
                        let mut h = JweHeader::new();
                        h.set_algorithm(r.algorithm().name());
                        h.set_key_id(r.kid());
                        h
                    })
                    .collect();
                let list: Vec<(Option<&JweHeader>, &dyn JweEncrypter)> = headers
                    .iter()
                    .zip(recipients)
                    .map(|(h, r)| (Some(h), r.encrypter()))
                    .collect();
                self.jwe
                    .serialize_general_json(payload, Some(&shared), &list, None)
                    .map_err(crypto)
            }
        }
    }

    /// TS-0003 §8.5.2.2.1 steps D–E: decrypts an envelope in any of the three serializations
    /// with one of `keys`.
    ///
    /// A recipient entry is used only with a key of the same algorithm and, when the entry has a
    /// `kid`, the same identifier. Entries with algorithms outside Table 8.5.3.2-3 are skipped
    /// (they may be meant for other targets); an envelope whose only entry is refused, or whose
    /// `enc` is outside Table 8.5.3.2-4, fails with the refusal.
    pub fn decrypt(
        &self,
        envelope: &str,
        keys: &[&DecryptionKey],
    ) -> Result<Decrypted, EsDataError> {
        let received = if envelope.trim_start().starts_with('{') {
            parse_json(envelope)?
        } else {
            parse_compact(envelope)?
        };
        let usable: Vec<(&Entry, &JweParams)> = received
            .entries
            .iter()
            .filter_map(|e| e.params.as_ref().ok().map(|p| (e, p)))
            .collect();
        if usable.is_empty() {
            return Err(match received.entries.into_iter().next() {
                Some(Entry { params: Err(e), .. }) => e,
                _ => malformed("no recipient"),
            });
        }
        check_iv_and_tag(&received.iv, &received.tag)?;
        let mut failure = None;
        for (entry, params) in &usable {
            for key in candidates(params, keys) {
                match open(&received, entry, params, key) {
                    Some(payload) => {
                        return Ok(Decrypted {
                            payload,
                            kid: key.kid().to_owned(),
                            alg: key.algorithm(),
                            enc: params.enc,
                            content_type: params.content_type.clone(),
                        });
                    }
                    None => {
                        failure = Some(EsDataError::DecryptionFailed {
                            kid: key.kid().to_owned(),
                        });
                    }
                }
            }
        }
        Err(failure.unwrap_or_else(|| match usable.as_slice() {
            [(_, only)] => EsDataError::NoMatchingKey {
                kid: only.kid.clone(),
                alg: only.alg.name().to_owned(),
            },
            many => EsDataError::NoMatchingKey {
                kid: None,
                alg: many
                    .iter()
                    .map(|(_, p)| p.alg.name())
                    .collect::<Vec<_>>()
                    .join(","),
            },
        }))
    }
}
