//! TS-0003 §8.4.3.1.1 / §8.4.3.1.2 ESPrim rand objects and §10.3.8.2 sessionESPrimKey.
//!
//! Wire profile of the JSON representation (the `oro`/`rro` header parameters, the
//! `sharedReceiverESPrimRandObject` of e2eSecInfo, the `esprimRandObject` of a securityInfo):
//! short names `esri`, `esrv`, `esrx`, `esk` / `esks`, `espa` are written, long names are
//! accepted too. `esrv` is the 128-bit value as 32 hexadecimal digits (lower case written, either
//! case read). `esrx` is written as an absolute `YYYYMMDDTHHMMSS[,ffffff]` UTC timestamp; a
//! relative expiry (milliseconds, number or digit string) is resolved against the time of
//! receipt the caller passes.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::EsPrimError;
use crate::esdata::ContentEncryption;
use crate::kdf::derive_session_es_prim_key;
use crate::secret::{SecretKey, encode_hex};

fn malformed(what: impl Into<String>) -> EsPrimError {
    EsPrimError::Malformed(what.into())
}

/// `esprimRandID`: the identifier a generator assigns to its rand object.
///
/// Accepted on input: 1 to 128 characters of `[A-Za-z0-9._-]`. Identifiers made here start with
/// `s` (shared receiver objects) or `u` (unique objects); only the issuer interprets them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EsPrimRandId(String);

impl EsPrimRandId {
    /// Checks an identifier received from a peer.
    pub fn parse(id: &str) -> Result<Self, EsPrimError> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(malformed(format!("invalid esprimRandID {id:?}")))
        }
    }

    /// A fresh identifier: `s` (shared) or `u` (unique) and 16 random hexadecimal digits from
    /// OpenSSL's CSPRNG.
    pub fn generate(shared: bool) -> Result<Self, EsPrimError> {
        let mut bytes = [0u8; 8];
        openssl::rand::rand_bytes(&mut bytes)
            .map_err(|e| EsPrimError::EncryptionError(e.to_string()))?;
        let prefix = if shared { "s" } else { "u" };
        Ok(Self(format!("{prefix}{}", encode_hex(&bytes))))
    }

    /// Whether the identifier marks a shared receiver object (our `s` prefix).
    pub fn is_shared(&self) -> bool {
        self.0.starts_with('s')
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EsPrimRandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EsPrimRandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `esprimRandValue`: "A 128-bit randomly-generated value". It is public (it travels in
/// e2eSecInfo and in headers); the secret is the pairwise key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EsPrimRandValue([u8; 16]);

impl EsPrimRandValue {
    /// A fresh value from OpenSSL's CSPRNG.
    pub fn generate() -> Result<Self, EsPrimError> {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes)
            .map_err(|e| EsPrimError::EncryptionError(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The value with these octets.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses 32 hexadecimal digits, in either case.
    pub fn from_hex(hex: &str) -> Result<Self, EsPrimError> {
        let bytes = crate::secret::decode_hex(hex)
            .map_err(|_| malformed(format!("esprimRandValue {hex:?} is not hexadecimal")))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| malformed("esprimRandValue is not 128 bits"))?;
        Ok(Self(bytes))
    }

    /// The wire form: 32 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The 16 octets.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for EsPrimRandValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// `m2m:esprimKeyGenAlgID`; unknown numbers are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EsPrimKeyGenAlgId(pub u8);

impl EsPrimKeyGenAlgId {
    /// HMAC-SHA256 (TS-0003 §10.3.8.2), the only algorithm and mandatory (Table 10.3.8.1-1).
    pub const HMAC_SHA256: Self = Self(1);
}

/// `m2m:esprimProtocolAndAlgID`; unknown numbers are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EsPrimProtocolAndAlgId(pub u8);

impl EsPrimProtocolAndAlgId {
    /// JWE Compact Serialization with `enc` A128GCM.
    pub const JWE_A128GCM: Self = Self(10);
    /// JWE Compact Serialization with `enc` A192GCM.
    pub const JWE_A192GCM: Self = Self(11);
    /// JWE Compact Serialization with `enc` A256GCM.
    pub const JWE_A256GCM: Self = Self(12);

    /// The identifier of the JWE `enc`.
    pub fn for_enc(enc: ContentEncryption) -> Self {
        match enc {
            ContentEncryption::A128Gcm => Self::JWE_A128GCM,
            ContentEncryption::A192Gcm => Self::JWE_A192GCM,
            ContentEncryption::A256Gcm => Self::JWE_A256GCM,
        }
    }

    /// The JWE `enc` this identifier stands for, if known.
    pub fn content_encryption(self) -> Option<ContentEncryption> {
        match self {
            Self::JWE_A128GCM => Some(ContentEncryption::A128Gcm),
            Self::JWE_A192GCM => Some(ContentEncryption::A192Gcm),
            Self::JWE_A256GCM => Some(ContentEncryption::A256Gcm),
            _ => None,
        }
    }
}

/// TS-0003 Table 8.4.3.1.1-1: the Originator's input to the session key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginatorEsPrimRandObject {
    /// `esprimRandID` (`esri`).
    pub id: EsPrimRandId,
    /// `esprimRandValue` (`esrv`).
    pub value: EsPrimRandValue,
    /// `esprimRandExpiry` (`esrx`), resolved to an absolute time.
    pub expiry: DateTime<Utc>,
    /// `esprimKeyGenAlgID` (`esk`): the one algorithm selected.
    pub key_gen_alg: EsPrimKeyGenAlgId,
    /// `esprimProtocolAndAlgIDs` (`espa`): the AEAD algorithms the Originator supports.
    pub protocol_and_alg_ids: Vec<EsPrimProtocolAndAlgId>,
}

/// TS-0003 Table 8.4.3.1.2-1: the Receiver's input to the session key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverEsPrimRandObject {
    /// `esprimRandID` (`esri`).
    pub id: EsPrimRandId,
    /// `esprimRandValue` (`esrv`).
    pub value: EsPrimRandValue,
    /// `esprimRandExpiry` (`esrx`), resolved to an absolute time.
    pub expiry: DateTime<Utc>,
    /// `esprimKeyGenAlgIDs` (`esks`): the key generation algorithms offered.
    pub key_gen_algs: Vec<EsPrimKeyGenAlgId>,
    /// `esprimProtocolAndAlgIDs` (`espa`): the AEAD algorithms offered.
    pub protocol_and_alg_ids: Vec<EsPrimProtocolAndAlgId>,
}

/// Formats an expiry as `YYYYMMDDTHHMMSS`, with `,ffffff` when it has microseconds.
fn format_timestamp(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y%m%dT%H%M%S").to_string()
    } else {
        t.format("%Y%m%dT%H%M%S,%6f").to_string()
    }
}

/// Parses `YYYYMMDDTHHMMSS` with an optional `,fff…`/`.fff…` fraction and an optional `Z`.
fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (main, frac) = match s.split_once([',', '.']) {
        Some((main, frac)) => (main, Some(frac)),
        None => (s, None),
    };
    if main.len() != 15 || !main.is_ascii() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(main, "%Y%m%dT%H%M%S")
        .ok()?
        .and_utc();
    let Some(frac) = frac else { return Some(t) };
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    t.checked_add_signed(TimeDelta::microseconds(micros))
}

/// `m2m:absRelTimestamp`: an absolute timestamp, or milliseconds after `received_at`.
fn parse_expiry(v: &Value, received_at: DateTime<Utc>) -> Result<DateTime<Utc>, EsPrimError> {
    let relative = |ms: i64| {
        TimeDelta::try_milliseconds(ms)
            .and_then(|d| received_at.checked_add_signed(d))
            .ok_or_else(|| malformed("esprimRandExpiry out of range"))
    };
    match v {
        Value::Number(n) => relative(
            n.as_i64()
                .ok_or_else(|| malformed("esprimRandExpiry is not an integer"))?,
        ),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => relative(
            s.parse()
                .map_err(|_| malformed("esprimRandExpiry too large"))?,
        ),
        Value::String(s) => {
            parse_timestamp(s).ok_or_else(|| malformed(format!("esprimRandExpiry {s:?}")))
        }
        _ => Err(malformed("esprimRandExpiry is not a timestamp")),
    }
}

/// The member with the short or the long name (not both).
fn member<'a>(
    obj: &'a Map<String, Value>,
    short: &str,
    long: &str,
) -> Result<&'a Value, EsPrimError> {
    match (obj.get(short), obj.get(long)) {
        (Some(v), None) | (None, Some(v)) => Ok(v),
        (Some(_), Some(_)) => Err(malformed(format!("both {short} and {long}"))),
        (None, None) => Err(malformed(format!("no {short}"))),
    }
}

fn id_number(v: &Value, what: &str) -> Result<u8, EsPrimError> {
    v.as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| malformed(format!("{what} is not a small unsigned integer")))
}

fn id_list(v: &Value, what: &str) -> Result<Vec<u8>, EsPrimError> {
    match v {
        Value::Array(list) if !list.is_empty() => list.iter().map(|n| id_number(n, what)).collect(),
        _ => Err(malformed(format!("{what} is not a non-empty list"))),
    }
}

/// The fields both objects share.
struct Common {
    id: EsPrimRandId,
    value: EsPrimRandValue,
    expiry: DateTime<Utc>,
    protocol_and_alg_ids: Vec<EsPrimProtocolAndAlgId>,
}

fn common(
    v: &Value,
    received_at: DateTime<Utc>,
) -> Result<(Common, &Map<String, Value>), EsPrimError> {
    let Value::Object(obj) = v else {
        return Err(malformed("rand object is not a JSON object"));
    };
    let id = match member(obj, "esri", "esprimRandID")? {
        Value::String(s) => EsPrimRandId::parse(s)?,
        _ => return Err(malformed("esprimRandID is not a string")),
    };
    let value = match member(obj, "esrv", "esprimRandValue")? {
        Value::String(s) => EsPrimRandValue::from_hex(s)?,
        _ => return Err(malformed("esprimRandValue is not a string")),
    };
    let expiry = parse_expiry(member(obj, "esrx", "esprimRandExpiry")?, received_at)?;
    let protocol_and_alg_ids = id_list(
        member(obj, "espa", "esprimProtocolAndAlgIDs")?,
        "esprimProtocolAndAlgIDs",
    )?
    .into_iter()
    .map(EsPrimProtocolAndAlgId)
    .collect();
    Ok((
        Common {
            id,
            value,
            expiry,
            protocol_and_alg_ids,
        },
        obj,
    ))
}

fn espa_json(ids: &[EsPrimProtocolAndAlgId]) -> Value {
    Value::from(ids.iter().map(|i| i.0).collect::<Vec<_>>())
}

impl OriginatorEsPrimRandObject {
    /// TS-0003 §8.4.2 step B.2g: the Originator's object for a session with `receiver`.
    ///
    /// Refuses (and so never sends) an object the Receiver would reject: the receiver's object
    /// must be unexpired, `expiry` must lie after `now` and "not later than the ESPrimRandExpiry
    /// in the receiverESPrimRandObject", the receiver must offer HMAC-SHA256 (the one key
    /// generation algorithm, selected as `esk`), and `protocol_and_alg_ids` must be "one or more
    /// of" the receiver's.
    pub fn for_receiver(
        receiver: &ReceiverEsPrimRandObject,
        id: EsPrimRandId,
        value: EsPrimRandValue,
        expiry: DateTime<Utc>,
        protocol_and_alg_ids: Vec<EsPrimProtocolAndAlgId>,
        now: DateTime<Utc>,
    ) -> Result<Self, EsPrimError> {
        let object = Self {
            id,
            value,
            expiry,
            key_gen_alg: EsPrimKeyGenAlgId::HMAC_SHA256,
            protocol_and_alg_ids,
        };
        check_pair(&object, receiver, now)?;
        Ok(object)
    }

    /// Reads the JSON representation (short or long names); a relative expiry counts from
    /// `received_at`.
    pub fn from_json(v: &Value, received_at: DateTime<Utc>) -> Result<Self, EsPrimError> {
        let (c, obj) = common(v, received_at)?;
        let key_gen_alg = EsPrimKeyGenAlgId(id_number(
            member(obj, "esk", "esprimKeyGenAlgID")?,
            "esprimKeyGenAlgID",
        )?);
        Ok(Self {
            id: c.id,
            value: c.value,
            expiry: c.expiry,
            key_gen_alg,
            protocol_and_alg_ids: c.protocol_and_alg_ids,
        })
    }

    /// The JSON representation with short names.
    pub fn to_json(&self) -> Value {
        json!({
            "esri": self.id.as_str(),
            "esrv": self.value.to_hex(),
            "esrx": format_timestamp(self.expiry),
            "esk": self.key_gen_alg.0,
            "espa": espa_json(&self.protocol_and_alg_ids),
        })
    }
}

impl ReceiverEsPrimRandObject {
    /// Reads the JSON representation (short or long names); a relative expiry counts from
    /// `received_at`.
    pub fn from_json(v: &Value, received_at: DateTime<Utc>) -> Result<Self, EsPrimError> {
        let (c, obj) = common(v, received_at)?;
        let key_gen_algs = id_list(
            member(obj, "esks", "esprimKeyGenAlgIDs")?,
            "esprimKeyGenAlgIDs",
        )?
        .into_iter()
        .map(EsPrimKeyGenAlgId)
        .collect();
        Ok(Self {
            id: c.id,
            value: c.value,
            expiry: c.expiry,
            key_gen_algs,
            protocol_and_alg_ids: c.protocol_and_alg_ids,
        })
    }

    /// The JSON representation with short names.
    pub fn to_json(&self) -> Value {
        json!({
            "esri": self.id.as_str(),
            "esrv": self.value.to_hex(),
            "esrx": format_timestamp(self.expiry),
            "esks": self.key_gen_algs.iter().map(|a| a.0).collect::<Vec<_>>(),
            "espa": espa_json(&self.protocol_and_alg_ids),
        })
    }
}

/// The rand-object checks of step C.6b.2 (i) and (ii) and the list check of C.6c.1.
fn check_pair(
    originator: &OriginatorEsPrimRandObject,
    receiver: &ReceiverEsPrimRandObject,
    now: DateTime<Utc>,
) -> Result<(), EsPrimError> {
    if receiver.expiry <= now {
        return Err(EsPrimError::UnknownReceiverRandId(format!(
            "{} expired",
            receiver.id
        )));
    }
    if originator.expiry <= now {
        return Err(EsPrimError::UnknownOriginatorRandId(format!(
            "{} expired",
            originator.id
        )));
    }
    if originator.expiry > receiver.expiry {
        return Err(EsPrimError::UnknownOriginatorRandId(format!(
            "{} expires after receiver object {}",
            originator.id, receiver.id
        )));
    }
    if originator.key_gen_alg != EsPrimKeyGenAlgId::HMAC_SHA256
        || !receiver.key_gen_algs.contains(&originator.key_gen_alg)
    {
        return Err(EsPrimError::UnsupportedOption(format!(
            "key generation algorithm {} is not agreed",
            originator.key_gen_alg.0
        )));
    }
    if originator.protocol_and_alg_ids.is_empty()
        || !originator
            .protocol_and_alg_ids
            .iter()
            .all(|id| receiver.protocol_and_alg_ids.contains(id))
    {
        return Err(EsPrimError::UnsupportedOption(
            "the originator's esprimProtocolAndAlgIDs are not a subset of the receiver's".into(),
        ));
    }
    Ok(())
}

/// TS-0003 §8.4.2 steps C.6b.2 and C.6c.1, at the Receiver, for an object protected with `enc`:
/// both rand objects unexpired at `now`, the originator's expiry not after the receiver's,
/// `esk` HMAC-SHA256 and offered by the receiver, the originator's `espa` a subset of the
/// receiver's, and `enc` in the originator's `espa` ("shall agree" with both lists, §8.4.3.2).
pub fn check_session(
    originator: &OriginatorEsPrimRandObject,
    receiver: &ReceiverEsPrimRandObject,
    enc: ContentEncryption,
    now: DateTime<Utc>,
) -> Result<(), EsPrimError> {
    check_pair(originator, receiver, now)?;
    if !originator
        .protocol_and_alg_ids
        .contains(&EsPrimProtocolAndAlgId::for_enc(enc))
    {
        return Err(EsPrimError::UnsupportedOption(format!(
            "enc {enc} is not in the originator's esprimProtocolAndAlgIDs"
        )));
    }
    Ok(())
}

/// How a rand object becomes octets in the sessionESPrimKey derivation. TS-0003 §10.3.8.2
/// concatenates "receiverESPrimRandObject || originatorESPrimRandObject" without saying which
/// octets stand for an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RandObjectOctets {
    /// The 16 decoded octets of `esprimRandValue` (this implementation's profile).
    #[default]
    DecodedValue,
    /// The ASCII of the 32 lower-case hexadecimal digits of `esprimRandValue`.
    HexText,
}

impl RandObjectOctets {
    fn of(self, value: &EsPrimRandValue) -> Vec<u8> {
        match self {
            Self::DecodedValue => value.as_bytes().to_vec(),
            Self::HexText => value.to_hex().into_bytes(),
        }
    }
}

/// The sessionESPrimKey: the CEK of the ESPrim Objects of one session (zeroized on drop, never
/// printed).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(SecretKey);

impl SessionKey {
    /// TS-0003 §10.3.8.2: `HMAC-SHA256(pairwiseESPrimKey, receiverESPrimRandObject ||
    /// originatorESPrimRandObject || "oneM2M HMAC-SHA256 sessionESPrimKey derivation
    /// algorithm")`, the receiver's object first, with [`RandObjectOctets::DecodedValue`].
    pub fn derive(
        pairwise: &SecretKey,
        receiver: &ReceiverEsPrimRandObject,
        originator: &OriginatorEsPrimRandObject,
    ) -> Result<Self, EsPrimError> {
        Self::derive_with(pairwise, receiver, originator, RandObjectOctets::default())
    }

    /// [`SessionKey::derive`] with another octet profile for the rand objects.
    pub fn derive_with(
        pairwise: &SecretKey,
        receiver: &ReceiverEsPrimRandObject,
        originator: &OriginatorEsPrimRandObject,
        octets: RandObjectOctets,
    ) -> Result<Self, EsPrimError> {
        if originator.key_gen_alg != EsPrimKeyGenAlgId::HMAC_SHA256 {
            return Err(EsPrimError::UnsupportedOption(format!(
                "key generation algorithm {}",
                originator.key_gen_alg.0
            )));
        }
        derive_session_es_prim_key(
            pairwise,
            &octets.of(&receiver.value),
            &octets.of(&originator.value),
        )
        .map(Self)
        .map_err(|e| EsPrimError::EncryptionError(e.to_string()))
    }

    /// A session key kept from an earlier derivation.
    pub fn from_secret(key: SecretKey) -> Self {
        Self(key)
    }

    /// The whole 32-byte key.
    pub fn expose_secret(&self) -> &SecretKey {
        &self.0
    }

    /// The AES-GCM key for `enc`: the leftmost 16, 24 or 32 bytes ("The sessionESPrimKey shall
    /// be used directly as the symmetric key", step C.3; the key is longer than A128GCM and
    /// A192GCM take).
    pub(super) fn cek(&self, enc: ContentEncryption) -> Option<&[u8]> {
        self.0.expose_bytes().get(..enc.key_len())
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps() {
        let t = parse_timestamp("20261124T153000").unwrap();
        assert_eq!(format_timestamp(t), "20261124T153000");
        let f = parse_timestamp("20261124T153000,5Z").unwrap();
        assert_eq!(format_timestamp(f), "20261124T153000,500000");
        assert_eq!(parse_timestamp(&format_timestamp(f)), Some(f));
        for bad in [
            "",
            "2026",
            "20261324T153000",
            "20261124T153000,",
            "2026-11-24T15:30:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn relative_expiry() {
        let now = parse_timestamp("20261124T153000").unwrap();
        let in_a_minute = parse_timestamp("20261124T153100").unwrap();
        assert_eq!(parse_expiry(&json!(60000), now).unwrap(), in_a_minute);
        assert_eq!(parse_expiry(&json!("60000"), now).unwrap(), in_a_minute);
        assert!(parse_expiry(&json!(true), now).is_err());
        // Out-of-range relative expiries are refused, never a panic.
        for extreme in [
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!("99999999999999999999"),
        ] {
            assert!(parse_expiry(&extreme, now).is_err(), "{extreme}");
        }
        assert!(parse_expiry(&json!(-1000), now).unwrap() < now);
    }

    #[test]
    fn rand_ids() {
        assert!(EsPrimRandId::parse("s0001").unwrap().is_shared());
        assert!(!EsPrimRandId::parse("u7f3a").unwrap().is_shared());
        for bad in ["", "a b", "x/y", &"a".repeat(129)] {
            assert!(EsPrimRandId::parse(bad).is_err(), "{bad}");
        }
        let g = EsPrimRandId::generate(true).unwrap();
        assert!(g.is_shared() && g.as_str().len() == 17);
        assert_ne!(g, EsPrimRandId::generate(true).unwrap());
    }

    #[test]
    fn rand_values() {
        let v = EsPrimRandValue::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
        assert_eq!(v.to_hex(), "00112233445566778899aabbccddeeff");
        assert!(EsPrimRandValue::from_hex("0011").is_err());
        assert!(EsPrimRandValue::from_hex("zz112233445566778899aabbccddeeff").is_err());
        assert_ne!(
            EsPrimRandValue::generate().unwrap(),
            EsPrimRandValue::generate().unwrap()
        );
    }
}
