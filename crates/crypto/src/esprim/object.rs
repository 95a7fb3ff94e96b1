//! TS-0003 §8.4.3.2: the ESPrim Object, a JWE Compact Serialization in Direct Encryption mode.
//!
//! `BASE64URL(UTF8(header)) '.' '' '.' BASE64URL(IV) '.' BASE64URL(ciphertext) '.'
//! BASE64URL(tag)`, AES-GCM with a 96-bit IV and a 128-bit tag, the additional authenticated
//! data being the ASCII of the first part (RFC 7516 §5.1 step 14). The protected header is
//! written in the order `alg`, `enc`, `kid`, `cty`, `ori`, `rri`, `oro`, `rro` (Table
//! 8.4.3.2-2), without white space.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EsPrimError;
use super::rand::{EsPrimRandId, OriginatorEsPrimRandObject, ReceiverEsPrimRandObject, SessionKey};
use crate::esdata::ContentEncryption;

/// Length of the AES-GCM IV (RFC 7518 §5.3: 96 bits).
pub const IV_LEN: usize = 12;
/// Length of the AES-GCM authentication tag (RFC 7518 §5.3: 128 bits).
pub const TAG_LEN: usize = 16;

/// The protected header of an ESPrim Object (TS-0003 Table 8.4.3.2-2); `alg` is always `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsPrimHeader {
    /// `enc`: one of the AEAD algorithms both rand objects list.
    pub enc: ContentEncryption,
    /// `kid`: the pairwiseESPrimKey identifier.
    pub kid: String,
    /// `cty`: the media type of the inner primitive's serialization, e.g.
    /// `vnd.onem2m-preq+json` for a request and `vnd.onem2m-prsp+json` for a response.
    pub content_type: Option<String>,
    /// `ori`: the esprimRandID of the originatorESPrimRandObject in use.
    pub ori: EsPrimRandId,
    /// `rri`: the esprimRandID of the receiverESPrimRandObject in use.
    pub rri: EsPrimRandId,
    /// `oro`: the Originator's full rand object, at the start of a session or to refresh it;
    /// sent only by the Originator.
    pub oro: Option<OriginatorEsPrimRandObject>,
    /// `rro`: the Receiver's full rand object, to refresh the session; sent only by the
    /// Receiver.
    pub rro: Option<ReceiverEsPrimRandObject>,
}

impl EsPrimHeader {
    /// A header without `cty`, `oro` and `rro`.
    pub fn new(
        enc: ContentEncryption,
        kid: impl Into<String>,
        ori: EsPrimRandId,
        rri: EsPrimRandId,
    ) -> Self {
        Self {
            enc,
            kid: kid.into(),
            content_type: None,
            ori,
            rri,
            oro: None,
            rro: None,
        }
    }

    /// The exact protected header octets this implementation writes.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, EsPrimError> {
        #[derive(Serialize)]
        struct Wire<'a> {
            alg: &'static str,
            enc: &'static str,
            kid: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            cty: Option<&'a str>,
            ori: &'a str,
            rri: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            oro: Option<Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rro: Option<Value>,
        }
        serde_json::to_vec(&Wire {
            alg: "dir",
            enc: self.enc.name(),
            kid: &self.kid,
            cty: self.content_type.as_deref(),
            ori: self.ori.as_str(),
            rri: self.rri.as_str(),
            oro: self.oro.as_ref().map(OriginatorEsPrimRandObject::to_json),
            rro: self.rro.as_ref().map(ReceiverEsPrimRandObject::to_json),
        })
        .map_err(|e| EsPrimError::EncryptionError(e.to_string()))
    }
}

/// The protected header as received; each known parameter at most once.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    enc: Option<Value>,
    kid: Option<Value>,
    cty: Option<Value>,
    ori: Option<Value>,
    rri: Option<Value>,
    oro: Option<Value>,
    rro: Option<Value>,
    crit: Option<Value>,
    zip: Option<Value>,
}

fn malformed(what: impl Into<String>) -> EsPrimError {
    EsPrimError::Malformed(what.into())
}

fn string(v: Option<Value>, name: &str) -> Result<String, EsPrimError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(malformed(format!("{name} is not a non-empty string"))),
        None => Err(malformed(format!("no {name}"))),
    }
}

fn cipher(enc: ContentEncryption) -> Cipher {
    match enc {
        ContentEncryption::A128Gcm => Cipher::aes_128_gcm(),
        ContentEncryption::A192Gcm => Cipher::aes_192_gcm(),
        ContentEncryption::A256Gcm => Cipher::aes_256_gcm(),
    }
}

/// A parsed ESPrim Object, not yet decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct EsPrimObject {
    header: EsPrimHeader,
    protected: String,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

impl fmt::Debug for EsPrimObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsPrimObject")
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl EsPrimObject {
    /// TS-0003 §8.4.3.2 "Forming an ESPrim Object": encrypts the serialized inner primitive
    /// with the session key under `header`, with a fresh IV from OpenSSL's CSPRNG.
    pub fn protect(
        plaintext: &[u8],
        key: &SessionKey,
        header: &EsPrimHeader,
    ) -> Result<String, EsPrimError> {
        let mut iv = [0u8; IV_LEN];
        openssl::rand::rand_bytes(&mut iv)
            .map_err(|e| EsPrimError::EncryptionError(e.to_string()))?;
        Self::dangerous_protect_with_iv(plaintext, key, header, iv)
    }

    /// [`EsPrimObject::protect`] with a caller-chosen IV, for known-answer tests. Reusing an IV
    /// under one key destroys AES-GCM's confidentiality and integrity; production code calls
    /// [`EsPrimObject::protect`].
    pub fn dangerous_protect_with_iv(
        plaintext: &[u8],
        key: &SessionKey,
        header: &EsPrimHeader,
        iv: [u8; IV_LEN],
    ) -> Result<String, EsPrimError> {
        if plaintext.is_empty() {
            return Err(EsPrimError::EncryptionError(
                "the inner primitive is empty".into(),
            ));
        }
        if header.kid.is_empty() {
            return Err(EsPrimError::EncryptionError("empty kid".into()));
        }
        let cek = key.cek(header.enc).ok_or_else(|| {
            EsPrimError::EncryptionError(format!("session key too short for {}", header.enc))
        })?;
        let protected = URL_SAFE_NO_PAD.encode(header.to_json_bytes()?);
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            cipher(header.enc),
            cek,
            Some(&iv),
            protected.as_bytes(),
            plaintext,
            &mut tag,
        )
        .map_err(|e| EsPrimError::EncryptionError(e.to_string()))?;
        Ok(format!(
            "{protected}..{}.{}.{}",
            URL_SAFE_NO_PAD.encode(iv),
            URL_SAFE_NO_PAD.encode(ciphertext),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// TS-0003 §8.4.2 step C.6a (first half): parses an ESPrim Object and checks its form.
    ///
    /// Not five base64url parts, a header that is not a JSON object, a missing or empty `kid`,
    /// `ori` or `rri`, a malformed `oro`/`rro` or an empty ciphertext give
    /// [`EsPrimError::Malformed`]; `alg` other than `dir`, a non-empty Encrypted Key, an `enc`
    /// other than A128GCM/A192GCM/A256GCM, `crit` or `zip` give
    /// [`EsPrimError::UnsupportedOption`]. Relative expiries in `oro`/`rro` count from
    /// `received_at`.
    pub fn parse(compact: &str, received_at: DateTime<Utc>) -> Result<Self, EsPrimError> {
        let parts: Vec<&str> = compact.split('.').collect();
        let [protected, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
            return Err(malformed(format!(
                "a JWE Compact Serialization has 5 parts, got {}",
                parts.len()
            )));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| malformed(format!("{what} is not base64url")))
        };
        if protected.is_empty() {
            return Err(malformed("empty protected header"));
        }
        let header_bytes = decode(protected, "protected header")?;
        let encrypted_key = decode(encrypted_key, "encrypted key")?;
        let iv = decode(iv, "IV")?;
        let ciphertext = decode(ciphertext, "ciphertext")?;
        let tag = decode(tag, "tag")?;
        let raw: RawHeader = serde_json::from_slice(&header_bytes)
            .map_err(|e| malformed(format!("protected header: {e}")))?;

        if raw.crit.is_some() || raw.zip.is_some() {
            return Err(EsPrimError::UnsupportedOption("crit or zip".into()));
        }
        let alg = string(raw.alg, "alg")?;
        if alg != "dir" {
            return Err(EsPrimError::UnsupportedOption(format!("alg {alg:?}")));
        }
        if !encrypted_key.is_empty() {
            return Err(EsPrimError::UnsupportedOption(
                "non-empty JWE Encrypted Key".into(),
            ));
        }
        let enc = string(raw.enc, "enc")?;
        let enc = ContentEncryption::from_name(&enc)
            .ok_or_else(|| EsPrimError::UnsupportedOption(format!("enc {enc:?}")))?;
        let kid = string(raw.kid, "kid")?;
        let ori = EsPrimRandId::parse(&string(raw.ori, "ori")?)?;
        let rri = EsPrimRandId::parse(&string(raw.rri, "rri")?)?;
        let content_type = match raw.cty {
            None => None,
            Some(v) => Some(string(Some(v), "cty")?),
        };
        let oro = raw
            .oro
            .map(|v| OriginatorEsPrimRandObject::from_json(&v, received_at))
            .transpose()?;
        let rro = raw
            .rro
            .map(|v| ReceiverEsPrimRandObject::from_json(&v, received_at))
            .transpose()?;
        if ciphertext.is_empty() {
            return Err(malformed("empty ciphertext"));
        }
        Ok(Self {
            header: EsPrimHeader {
                enc,
                kid,
                content_type,
                ori,
                rri,
                oro,
                rro,
            },
            protected: (*protected).to_owned(),
            iv,
            ciphertext,
            tag,
        })
    }

    /// The protected header.
    pub fn header(&self) -> &EsPrimHeader {
        &self.header
    }

    /// The initialization vector (used by [`super::ReplayGuard`]).
    pub fn iv(&self) -> &[u8] {
        &self.iv
    }

    /// TS-0003 §8.4.2 step C.6c.2 / C.11b: authenticated decryption with the session key of
    /// (`kid`, `ori`, `rri`).
    ///
    /// A tag that does not verify gives [`EsPrimError::BadMac`]; an IV that is not 96 bits or a
    /// key too short for `enc` give [`EsPrimError::DecryptionError`].
    pub fn open(&self, key: &SessionKey) -> Result<Vec<u8>, EsPrimError> {
        let enc = self.header.enc;
        let cek = key.cek(enc).ok_or_else(|| {
            EsPrimError::DecryptionError(format!("session key too short for {enc}"))
        })?;
        if self.iv.len() != IV_LEN {
            return Err(EsPrimError::DecryptionError(format!(
                "IV of {} bytes",
                self.iv.len()
            )));
        }
        if self.tag.len() != TAG_LEN {
            return Err(EsPrimError::BadMac);
        }
        decrypt_aead(
            cipher(enc),
            cek,
            Some(&self.iv),
            self.protected.as_bytes(),
            &self.ciphertext,
            &self.tag,
        )
        .map_err(|_| EsPrimError::BadMac)
    }
}

/// TS-0003 §8.4.3.2 "Processing an ESPrim Object": parses `compact`, asks `session_key` for the
/// sessionESPrimKey of its header (the caller records `oro`/`rro`, looks up `kid`, `ori`, `rri`
/// and runs [`super::check_session`], returning the matching [`EsPrimError`] otherwise), then
/// decrypts. Returns the inner primitive's bytes and the parsed object.
pub fn unprotect<F>(
    compact: &str,
    received_at: DateTime<Utc>,
    session_key: F,
) -> Result<(Vec<u8>, EsPrimObject), EsPrimError>
where
    F: FnOnce(&EsPrimHeader) -> Result<SessionKey, EsPrimError>,
{
    let object = EsPrimObject::parse(compact, received_at)?;
    let key = session_key(object.header())?;
    let plaintext = object.open(&key)?;
    Ok((plaintext, object))
}
