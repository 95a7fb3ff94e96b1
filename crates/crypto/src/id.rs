//! Key and credential identifiers (TS-0003 §10.4 Credential-ID, §10.5 KpsaID, §10.6 KmID,
//! §10.1.2 public key identifiers).
//!
//! Each identifier is a newtype that can only be built by parsing, so a value of the type is
//! known to be well formed wherever it travels.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Longest accepted FQDN in characters (RFC 1035 §2.3.4 without the trailing dot).
pub const MAX_FQDN_LEN: usize = 253;
/// Longest accepted issuer-relative part of a KpsaID or KmID.
pub const MAX_RELATIVE_ID_LEN: usize = 128;
/// Longest accepted Credential-ID value part.
pub const MAX_CREDENTIAL_VALUE_LEN: usize = 1024;

/// Error when parsing an [`Fqdn`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FqdnError {
    /// The name is empty.
    #[error("FQDN is empty")]
    Empty,
    /// The name exceeds [`MAX_FQDN_LEN`].
    #[error("FQDN is {0} characters long, at most {MAX_FQDN_LEN} are allowed")]
    TooLong(usize),
    /// A label (between dots) is empty, e.g. `a..b` or a trailing dot.
    #[error("FQDN has an empty label")]
    EmptyLabel,
    /// A label exceeds 63 characters.
    #[error("FQDN label `{0}` is longer than 63 characters")]
    LabelTooLong(String),
    /// A label contains a character other than letters, digits and '-'.
    #[error("FQDN label `{label}` contains `{ch}`; only letters, digits and '-' are allowed")]
    InvalidChar {
        /// The offending label.
        label: String,
        /// The offending character.
        ch: char,
    },
    /// A label starts or ends with '-'.
    #[error("FQDN label `{0}` starts or ends with '-'")]
    HyphenAtEdge(String),
}

/// A fully qualified domain name: dot-separated LDH labels (RFC 1123 §2.1), no trailing dot,
/// no wildcards (TS-0003 §10.1.1.6). Stored in lower case because DNS names compare
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fqdn(String);

impl Fqdn {
    /// Parses and lower-cases an FQDN.
    pub fn parse(s: &str) -> Result<Self, FqdnError> {
        if s.is_empty() {
            return Err(FqdnError::Empty);
        }
        if s.len() > MAX_FQDN_LEN {
            return Err(FqdnError::TooLong(s.len()));
        }
        for label in s.split('.') {
            check_label(label)?;
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks one DNS label (letters, digits, hyphen; not at the edges; 1..=63 characters).
pub(crate) fn check_label(label: &str) -> Result<(), FqdnError> {
    if label.is_empty() {
        return Err(FqdnError::EmptyLabel);
    }
    if label.len() > 63 {
        return Err(FqdnError::LabelTooLong(label.to_owned()));
    }
    if let Some(ch) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(FqdnError::InvalidChar {
            label: label.to_owned(),
            ch,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(FqdnError::HyphenAtEdge(label.to_owned()));
    }
    Ok(())
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Fqdn {
    type Err = FqdnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Fqdn {
    type Error = FqdnError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Fqdn> for String {
    fn from(v: Fqdn) -> Self {
        v.0
    }
}

/// Error when parsing a [`KpsaId`] or [`KmId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIdError {
    /// There is no '@' between the relative part and the FQDN.
    #[error("key identifier `{0}` has no '@' separating the relative part from the FQDN")]
    MissingAt(String),
    /// The part before '@' is empty.
    #[error("key identifier has an empty relative part")]
    EmptyRelative,
    /// The part before '@' exceeds [`MAX_RELATIVE_ID_LEN`].
    #[error(
        "key identifier relative part is {0} characters long, at most {MAX_RELATIVE_ID_LEN} are allowed"
    )]
    RelativeTooLong(usize),
    /// The part before '@' contains a character outside `[A-Za-z0-9._-]`.
    #[error(
        "key identifier relative part contains `{0}`; only letters, digits, '.', '_' and '-' are allowed"
    )]
    InvalidRelativeChar(char),
    /// The part after '@' is not a valid FQDN.
    #[error("key identifier issuer FQDN is invalid: {0}")]
    Fqdn(#[from] FqdnError),
}

/// Checks a relative key identifier (TS-0003 sec:relKeyID, §10.5, §10.6): `[A-Za-z0-9._-]+`.
fn check_relative(rel: &str) -> Result<(), KeyIdError> {
    if rel.is_empty() {
        return Err(KeyIdError::EmptyRelative);
    }
    if rel.len() > MAX_RELATIVE_ID_LEN {
        return Err(KeyIdError::RelativeTooLong(rel.len()));
    }
    match rel
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(ch) => Err(KeyIdError::InvalidRelativeChar(ch)),
        None => Ok(()),
    }
}

/// Splits `relative@fqdn` and checks both parts.
fn parse_key_id(s: &str) -> Result<(&str, Fqdn), KeyIdError> {
    let (rel, fqdn) = s
        .split_once('@')
        .ok_or_else(|| KeyIdError::MissingAt(s.to_owned()))?;
    check_relative(rel)?;
    Ok((rel, Fqdn::parse(fqdn)?))
}

macro_rules! string_newtype_impls {
    ($ty:ident, $err:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> Self {
                v.0
            }
        }

        impl $ty {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// TS-0003 §10.5 KpsaID: `Issuer_Relative_KpsaID@Issuer-FQDN`, relative part `[A-Za-z0-9._-]+`.
///
/// The relative part is case-sensitive; the FQDN is stored in lower case.
/// The same shape serves the MAF Key Identifier of §10.3.5 (`RelativeKeyID@MAF-FQDN`) and the
/// KeID of §10.3.4 (`hexBinary(RelativeKeID)@MEF-FQDN`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KpsaId(String);

impl KpsaId {
    /// Parses `relative@fqdn`.
    pub fn parse(s: &str) -> Result<Self, KeyIdError> {
        let (rel, fqdn) = parse_key_id(s)?;
        Ok(Self(format!("{rel}@{fqdn}")))
    }

    /// Builds the identifier from an issuer-relative part and the issuer's FQDN.
    pub fn new(relative: &str, issuer: &Fqdn) -> Result<Self, KeyIdError> {
        check_relative(relative)?;
        Ok(Self(format!("{relative}@{issuer}")))
    }

    /// Builds the identifier from a binary relative identifier in upper-case `hexBinary`
    /// (TS-0003 §10.3.4 KeID, §10.3.5 Key Identifier).
    pub fn from_binary_relative(relative: &[u8], issuer: &Fqdn) -> Self {
        let hex = crate::secret::encode_hex(relative).to_ascii_uppercase();
        Self(format!("{hex}@{issuer}"))
    }

    /// The issuer-relative part (before '@').
    pub fn relative(&self) -> &str {
        self.0.split_once('@').map_or("", |(r, _)| r)
    }

    /// The issuer FQDN (after '@').
    pub fn issuer(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, f)| f)
    }
}

string_newtype_impls!(KpsaId, KeyIdError);

/// TS-0003 §10.6 KmID: `MAF_RELATIVE_KmID@MAF-FQDN`, relative part `[A-Za-z0-9._-]+` and
/// "not case sensitive".
///
/// Stored entirely in lower case, so equality and hashing ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KmId(String);

impl KmId {
    /// Parses `relative@maf-fqdn` and lower-cases it.
    pub fn parse(s: &str) -> Result<Self, KeyIdError> {
        let (rel, fqdn) = parse_key_id(s)?;
        Ok(Self(format!("{}@{fqdn}", rel.to_ascii_lowercase())))
    }

    /// Builds the identifier from a MAF-relative part and the MAF FQDN.
    pub fn new(relative: &str, maf: &Fqdn) -> Result<Self, KeyIdError> {
        check_relative(relative)?;
        Ok(Self(format!("{}@{maf}", relative.to_ascii_lowercase())))
    }

    /// The MAF-relative part (before '@'), in lower case.
    pub fn relative(&self) -> &str {
        self.0.split_once('@').map_or("", |(r, _)| r)
    }

    /// The MAF FQDN (after '@').
    pub fn maf(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, f)| f)
    }
}

string_newtype_impls!(KmId, KeyIdError);

/// Credential-ID type (TS-0003 sec:credIDTypeID). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialTypeId(pub u32);

impl CredentialTypeId {
    /// KpmID: key pre-provisioned with a MEF.
    pub const KPM_ID: Self = Self(10);
    /// KmID: master credential shared with a MAF.
    pub const KM_ID: Self = Self(11);
    /// KpsaID or KcID: symmetric key for a security association (SAEF).
    pub const KPSA_ID: Self = Self(12);
    /// pairwiseESPrimKeyID.
    pub const PAIRWISE_ES_PRIM_KEY_ID: Self = Self(13);
    /// ESData symmetric key for direct encryption.
    pub const ES_DATA_DIRECT_ENCRYPTION: Self = Self(14);
    /// ESData symmetric key for key wrapping.
    pub const ES_DATA_KEY_WRAP: Self = Self(15);
    /// ESData symmetric key for HMAC.
    pub const ES_DATA_HMAC: Self = Self(16);
    /// Raw public key, identified by its public key identifier (§10.1.2).
    pub const RAW_PUBLIC_KEY: Self = Self(30);
    /// Device certificate, identified by a hardware instance identifier.
    pub const DEVICE_CERTIFICATE: Self = Self(31);
    /// CSE-ID certificate, identified by the CSE-ID.
    pub const CSE_ID_CERTIFICATE: Self = Self(32);
    /// AE-ID certificate, identified by the AE-ID.
    pub const AE_ID_CERTIFICATE: Self = Self(33);
    /// Node-ID certificate (added in TS-0003 v3.18).
    pub const NODE_ID_CERTIFICATE: Self = Self(34);
}

impl fmt::Display for CredentialTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Error when parsing a [`CredentialId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialIdError {
    /// There is no '-' between type and value.
    #[error("credential-ID `{0}` has no '-' separating the type-ID from the value")]
    MissingSeparator(String),
    /// The type part is not a positive decimal integer without leading zeros.
    #[error("credential-ID type `{0}` is not a positive integer")]
    InvalidType(String),
    /// The value part is empty.
    #[error("credential-ID value is empty")]
    EmptyValue,
    /// The value part exceeds [`MAX_CREDENTIAL_VALUE_LEN`].
    #[error(
        "credential-ID value is {0} characters long, at most {MAX_CREDENTIAL_VALUE_LEN} are allowed"
    )]
    ValueTooLong(usize),
    /// The value part contains a character that is not allowed.
    #[error("credential-ID value contains `{0}`; allowed are letters, digits and . _ - @ / : ; =")]
    InvalidValueChar(char),
}

/// TS-0003 §10.4 Credential-ID: `<type-ID>-<value>`, parsed by splitting at the first '-'.
///
/// The type-ID is a positive integer (sec:credIDTypeID). The value may use "the Roman alphabet,
/// numerals, '.', '_', '-', and '@'". This type also accepts `/`, `:`, `;` and `=`, because the
/// certificate credential IDs carry CSE-IDs (`/id-mn`), SP-relative AE-IDs (`/id-mn/Cabc`) and
/// RFC 6920 public key identifiers (`ni:///sha-256;…`) as values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

fn check_credential_value(value: &str) -> Result<(), CredentialIdError> {
    if value.is_empty() {
        return Err(CredentialIdError::EmptyValue);
    }
    if value.len() > MAX_CREDENTIAL_VALUE_LEN {
        return Err(CredentialIdError::ValueTooLong(value.len()));
    }
    match value.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '/' | ':' | ';' | '='))
    }) {
        Some(ch) => Err(CredentialIdError::InvalidValueChar(ch)),
        None => Ok(()),
    }
}

impl CredentialId {
    /// Parses `<type-ID>-<value>`.
    pub fn parse(s: &str) -> Result<Self, CredentialIdError> {
        let (ty, value) = s
            .split_once('-')
            .ok_or_else(|| CredentialIdError::MissingSeparator(s.to_owned()))?;
        parse_type(ty)?;
        check_credential_value(value)?;
        Ok(Self(s.to_owned()))
    }

    /// Builds a Credential-ID from a type and a value.
    pub fn new(ty: CredentialTypeId, value: &str) -> Result<Self, CredentialIdError> {
        if ty.0 == 0 {
            return Err(CredentialIdError::InvalidType("0".into()));
        }
        check_credential_value(value)?;
        Ok(Self(format!("{ty}-{value}")))
    }

    /// `11-<KmID>`.
    pub fn km(id: &KmId) -> Self {
        Self(format!("{}-{id}", CredentialTypeId::KM_ID))
    }

    /// `12-<KpsaID>` (also used for KcID).
    pub fn kpsa(id: &KpsaId) -> Self {
        Self(format!("{}-{id}", CredentialTypeId::KPSA_ID))
    }

    /// `32-<CSE-ID>`, e.g. `32-/id-mn`.
    pub fn cse_certificate(cse_id: &str) -> Result<Self, CredentialIdError> {
        Self::new(CredentialTypeId::CSE_ID_CERTIFICATE, cse_id)
    }

    /// `33-<AE-ID>`, e.g. `33-Cabc`.
    pub fn ae_certificate(ae_id: &str) -> Result<Self, CredentialIdError> {
        Self::new(CredentialTypeId::AE_ID_CERTIFICATE, ae_id)
    }

    /// `30-ni:///sha-256;<base64url(sha256(spki))>` for a raw public key (TS-0003 §10.1.2).
    pub fn public_key(spki_der: &[u8]) -> Self {
        Self(format!(
            "{}-{}",
            CredentialTypeId::RAW_PUBLIC_KEY,
            public_key_id(spki_der)
        ))
    }

    /// The type-ID.
    pub fn type_id(&self) -> CredentialTypeId {
        self.0
            .split_once('-')
            .and_then(|(t, _)| t.parse().ok())
            .map_or(CredentialTypeId(0), CredentialTypeId)
    }

    /// The value (after the first '-').
    pub fn value(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, v)| v)
    }
}

fn parse_type(ty: &str) -> Result<u32, CredentialIdError> {
    let bad = || CredentialIdError::InvalidType(ty.to_owned());
    if ty.is_empty() || !ty.bytes().all(|b| b.is_ascii_digit()) || ty.starts_with('0') {
        return Err(bad());
    }
    ty.parse::<u32>().map_err(|_| bad())
}

string_newtype_impls!(CredentialId, CredentialIdError);

/// RFC 6920 public key identifier with the `sha-256` suite (TS-0003 §10.1.2):
/// `ni:///sha-256;` followed by the unpadded base64url SHA-256 digest of the DER
/// SubjectPublicKeyInfo.
pub fn public_key_id(spki_der: &[u8]) -> String {
    let digest = openssl::sha::sha256(spki_der);
    format!("ni:///sha-256;{}", URL_SAFE_NO_PAD.encode(digest))
}

/// TS-0003 §10.1.2 matching: recomputes the digest of `spki_der` with the algorithm named in
/// the trusted identifier `ni` (`sha-256`, `sha-256-128` or `sha-256-120`, truncated to the
/// left-most bits) and compares. Unknown algorithms or malformed identifiers do not match.
pub fn public_key_id_matches(ni: &str, spki_der: &[u8]) -> bool {
    let Some(rest) = ni.strip_prefix("ni:///") else {
        return false;
    };
    let Some((alg, value)) = rest.split_once(';') else {
        return false;
    };
    let len = match alg {
        "sha-256" => 32,
        "sha-256-128" => 16,
        "sha-256-120" => 15,
        _ => return false,
    };
    let Ok(expected) = URL_SAFE_NO_PAD.decode(value) else {
        return false;
    };
    let digest = openssl::sha::sha256(spki_der);
    digest
        .get(..len)
        .is_some_and(|d| crate::secret::constant_time_eq(d, &expected))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn relative_ids_from_spec() {
        // TS-0003 sec:relKeyID examples.
        for rel in ["1he83he", "my-key_name", "firstname.lastname"] {
            let id = KpsaId::parse(&format!("{rel}@mef.example.com")).unwrap();
            assert_eq!(id.relative(), rel);
            assert_eq!(id.issuer(), "mef.example.com");
            let km = KmId::parse(&format!("{rel}@maf.example.com")).unwrap();
            assert_eq!(km.relative(), rel.to_ascii_lowercase());
        }
    }

    #[test]
    fn key_id_failures() {
        let cases: &[(&str, KeyIdError)] = &[
            ("nofqdn", KeyIdError::MissingAt("nofqdn".into())),
            ("@mef.example.com", KeyIdError::EmptyRelative),
            ("a b@mef.example.com", KeyIdError::InvalidRelativeChar(' ')),
            (
                "a@b@mef.example.com",
                KeyIdError::Fqdn(FqdnError::InvalidChar {
                    label: "b@mef".into(),
                    ch: '@',
                }),
            ),
            ("k@", KeyIdError::Fqdn(FqdnError::Empty)),
            ("k@mef..com", KeyIdError::Fqdn(FqdnError::EmptyLabel)),
            ("k@mef.com.", KeyIdError::Fqdn(FqdnError::EmptyLabel)),
            (
                "k@-mef.com",
                KeyIdError::Fqdn(FqdnError::HyphenAtEdge("-mef".into())),
            ),
            (
                "k@*.mef.com",
                KeyIdError::Fqdn(FqdnError::InvalidChar {
                    label: "*".into(),
                    ch: '*',
                }),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(&KpsaId::parse(input).unwrap_err(), err, "{input}");
        }
        let long_rel = "a".repeat(MAX_RELATIVE_ID_LEN + 1);
        assert_eq!(
            KpsaId::parse(&format!("{long_rel}@x.com")).unwrap_err(),
            KeyIdError::RelativeTooLong(MAX_RELATIVE_ID_LEN + 1)
        );
        let long_label = "a".repeat(64);
        assert!(matches!(
            Fqdn::parse(&format!("{long_label}.com")),
            Err(FqdnError::LabelTooLong(_))
        ));
        let long_name = vec!["abcdefghi"; 30].join(".");
        assert!(matches!(
            Fqdn::parse(&long_name),
            Err(FqdnError::TooLong(_))
        ));
    }

    #[test]
    fn km_id_is_case_insensitive() {
        let a = KmId::parse("MyKey@MAF.Example.com").unwrap();
        let b = KmId::parse("mykey@maf.example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "mykey@maf.example.com");
        // KpsaID keeps the case of the relative part.
        assert_ne!(
            KpsaId::parse("MyKey@mef.example.com").unwrap(),
            KpsaId::parse("mykey@mef.example.com").unwrap()
        );
    }

    #[test]
    fn keid_from_exporter_bytes() {
        // TS-0003 §10.3.4: RelativeKeID 00..0f, MEF-FQDN mef.example.com.
        let rel: Vec<u8> = (0u8..16).collect();
        let id = KpsaId::from_binary_relative(&rel, &Fqdn::parse("mef.example.com").unwrap());
        assert_eq!(
            id.as_str(),
            "000102030405060708090A0B0C0D0E0F@mef.example.com"
        );
    }

    #[test]
    fn credential_ids_from_spec() {
        // TS-0003 §12.2 example.
        let id = CredentialId::parse("10-thiskey@mymef.com").unwrap();
        assert_eq!(id.type_id(), CredentialTypeId::KPM_ID);
        assert_eq!(id.value(), "thiskey@mymef.com");
        // Split at the first '-': the value may contain '-'.
        let id = CredentialId::parse("12-my-key_name@mef.example.com").unwrap();
        assert_eq!(id.type_id(), CredentialTypeId::KPSA_ID);
        assert_eq!(id.value(), "my-key_name@mef.example.com");

        let kpsa = KpsaId::parse("1he83he@mef.example.com").unwrap();
        assert_eq!(
            CredentialId::kpsa(&kpsa).as_str(),
            "12-1he83he@mef.example.com"
        );
        let km = KmId::parse("firstname.lastname@maf.example.com").unwrap();
        assert_eq!(
            CredentialId::km(&km).as_str(),
            "11-firstname.lastname@maf.example.com"
        );
        assert_eq!(
            CredentialId::cse_certificate("/id-mn").unwrap().as_str(),
            "32-/id-mn"
        );
        assert_eq!(
            CredentialId::ae_certificate("Cabc").unwrap().as_str(),
            "33-Cabc"
        );
        assert_eq!(
            CredentialId::parse("999-x").unwrap().type_id(),
            CredentialTypeId(999)
        );
    }

    #[test]
    fn credential_id_failures() {
        let cases: &[(&str, CredentialIdError)] = &[
            (
                "thiskey",
                CredentialIdError::MissingSeparator("thiskey".into()),
            ),
            ("-abc", CredentialIdError::InvalidType("".into())),
            ("0-abc", CredentialIdError::InvalidType("0".into())),
            ("012-abc", CredentialIdError::InvalidType("012".into())),
            ("+1-abc", CredentialIdError::InvalidType("+1".into())),
            ("x1-abc", CredentialIdError::InvalidType("x1".into())),
            (
                "99999999999-abc",
                CredentialIdError::InvalidType("99999999999".into()),
            ),
            ("12-", CredentialIdError::EmptyValue),
            ("12-a b", CredentialIdError::InvalidValueChar(' ')),
            ("12-a\u{e9}", CredentialIdError::InvalidValueChar('\u{e9}')),
            ("12-a?b", CredentialIdError::InvalidValueChar('?')),
        ];
        for (input, err) in cases {
            assert_eq!(&CredentialId::parse(input).unwrap_err(), err, "{input}");
        }
        assert!(matches!(
            CredentialId::cse_certificate("/id mn"),
            Err(CredentialIdError::InvalidValueChar(' '))
        ));
    }

    #[test]
    fn serde_parses() {
        let id: CredentialId = serde_json::from_str("\"32-/id-mn\"").unwrap();
        assert_eq!(id.value(), "/id-mn");
        assert!(serde_json::from_str::<CredentialId>("\"bad\"").is_err());
        assert!(serde_json::from_str::<KmId>("\"bad\"").is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"32-/id-mn\"");
    }
}
