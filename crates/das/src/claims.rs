//! The token claim set and its JWT claim mapping (TS-0003 §7.3.2.4, Table 7.3.2.6.2-1).
//!
//! [`TokenClaims`] mirrors `m2m:tokenClaimSet`; its serde form *is* the JWT claim set:
//! `tkvr`, `jti`, `iss`, `azp`, `nbf`, `exp`, `tknm`, `aud`, `tkps`, `tkex`. `nbf`/`exp` are
//! NumericDate integers (sub-second precision is dropped), `aud` is always emitted as an array
//! and accepted as a single string on input (RFC 7519 §4.1.3). Unknown extra claims are ignored.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::TokenError;

/// `m2m:tokenClaimSet` in its JWT form (TS-0003 §7.3.2.4, Table 7.3.2.6.2-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// version (`tkvr`).
    #[serde(rename = "tkvr")]
    pub version: String,
    /// tokenID (`jti`), "name@issuer-fqdn" style (TS-0001 §7.1.15); not checked here.
    #[serde(rename = "jti")]
    pub token_id: String,
    /// issuer (`iss`).
    #[serde(rename = "iss")]
    pub issuer: String,
    /// holder (`azp`): the Absolute AE-ID or CSE-ID of the Originator allowed to use the token.
    #[serde(rename = "azp")]
    pub holder: String,
    /// notBefore (`nbf`, NumericDate).
    #[serde(rename = "nbf", with = "numeric_date")]
    pub not_before: DateTime<Utc>,
    /// notAfter (`exp`, NumericDate).
    #[serde(rename = "exp", with = "numeric_date")]
    pub not_after: DateTime<Utc>,
    /// tokenName (`tknm`), human readable.
    #[serde(rename = "tknm", default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// audience (`aud`): the CSE-IDs expected to accept the token. Omitted when empty.
    #[serde(
        rename = "aud",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_array"
    )]
    pub audience: Vec<String>,
    /// permissions (`tkps`), the JSON serialization of `m2m:tokenPermissions`.
    #[serde(rename = "tkps", default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<TokenPermissions>,
    /// extension (`tkex`), e.g. application-specific information.
    #[serde(rename = "tkex", default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

impl TokenClaims {
    /// Checks the rules serde cannot express: notBefore precedes notAfter, and every permission
    /// obeys TS-0001 Table 9.6.39-3.
    pub fn validate(&self) -> Result<(), TokenError> {
        if self.not_after.timestamp() <= self.not_before.timestamp() {
            return Err(TokenError::InvalidClaims(
                "exp (notAfter) must be later than nbf (notBefore)".into(),
            ));
        }
        if let Some(permissions) = &self.permissions {
            for permission in &permissions.pm {
                permission.validate()?;
            }
        }
        Ok(())
    }
}

/// `m2m:tokenPermissions` (TS-0001 §9.6.39): `{"pm": [...]}`.
///
/// The fields keep their short wire names (unlike the long-name convention elsewhere) because
/// the CSE integration was written against this API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPermissions {
    /// The permissions, evaluated one by one until one permits the request (TS-0003 §7.3.2.5).
    #[serde(alias = "permission")]
    pub pm: Vec<TokenPermission>,
}

/// `m2m:tokenPermission` (TS-0001 Table 9.6.39-3).
///
/// Deserialization rejects an entry with neither `pv` nor `rids`, and `pv` without `ris`.
/// The long names `resourceIDs`, `privileges` and `roleIDs` are accepted on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTokenPermission")]
pub struct TokenPermission {
    /// resourceIDs (`ris`): the resources the permission is restricted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ris: Option<Vec<String>>,
    /// privileges (`pv`): a `setOfAcrs` as JSON, e.g. `{"acr":[{"acor":["..."],"acop":2}]}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pv: Option<serde_json::Value>,
    /// roleIDs (`rids`): roles that count as verified on the permitted resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rids: Option<Vec<String>>,
}

impl TokenPermission {
    /// TS-0001 Table 9.6.39-3: at least one of privileges or roleIDs; "If the privileges element
    /// is present, then resourceIDs shall be present"; privileges is a `setOfAcrs` object.
    pub fn validate(&self) -> Result<(), TokenError> {
        if self.pv.is_none() && self.rids.is_none() {
            return Err(TokenError::InvalidClaims(
                "token permission has neither pv (privileges) nor rids (roleIDs)".into(),
            ));
        }
        if let Some(privileges) = &self.pv {
            if self.ris.is_none() {
                return Err(TokenError::InvalidClaims(
                    "token permission has pv (privileges) but no ris (resourceIDs)".into(),
                ));
            }
            if !privileges.is_object() {
                return Err(TokenError::InvalidClaims(
                    "token permission pv (privileges) is not a setOfAcrs object".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The wire form before the Table 9.6.39-3 checks.
#[derive(Deserialize)]
struct RawTokenPermission {
    #[serde(default, alias = "resourceIDs")]
    ris: Option<Vec<String>>,
    #[serde(default, alias = "privileges")]
    pv: Option<serde_json::Value>,
    #[serde(default, alias = "roleIDs")]
    rids: Option<Vec<String>>,
}

impl TryFrom<RawTokenPermission> for TokenPermission {
    type Error = TokenError;

    fn try_from(raw: RawTokenPermission) -> Result<Self, Self::Error> {
        let permission = Self {
            ris: raw.ris,
            pv: raw.pv,
            rids: raw.rids,
        };
        permission.validate()?;
        Ok(permission)
    }
}

/// Accepts `"aud": "x"` as well as `"aud": ["x", ...]` (RFC 7519 §4.1.3); `null` means empty.
fn string_or_array<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// NumericDate (RFC 7519 §2): seconds since the epoch. Integers are emitted; on input a
/// non-integer value is floored.
mod numeric_date {
    use chrono::{DateTime, Utc};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_any(NumericDateVisitor)
    }

    struct NumericDateVisitor;

    impl Visitor<'_> for NumericDateVisitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate (seconds since the epoch)")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            DateTime::from_timestamp(v, 0).ok_or_else(|| E::custom("NumericDate out of range"))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let v = i64::try_from(v).map_err(|_| E::custom("NumericDate out of range"))?;
            self.visit_i64(v)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // The range check keeps the cast below exact and in range.
            if !v.is_finite() || v.abs() > 1e15 {
                return Err(E::custom("NumericDate out of range"));
            }
            #[allow(clippy::cast_possible_truncation)]
            self.visit_i64(v.floor() as i64)
        }
    }
}

/// Formats a time as an `m2m:timestamp` (ISO 8601 basic, `YYYYMMDDThhmmss`, UTC), the form of
/// notBefore/notAfter in the XML/JSON `m2m:tokenClaimSet` (TS-0004).
pub fn to_m2m_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

/// Parses an `m2m:timestamp` (`YYYYMMDDThhmmss`, UTC; a trailing `,fff` fraction is accepted
/// and dropped) into the instant a NumericDate carries.
pub fn parse_m2m_timestamp(s: &str) -> Result<DateTime<Utc>, TokenError> {
    let whole = s.split_once(',').map_or(s, |(whole, _)| whole);
    NaiveDateTime::parse_from_str(whole, "%Y%m%dT%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|e| TokenError::InvalidClaims(format!("bad m2m:timestamp {s:?}: {e}")))
}
