//! Wire data types of the MEF Client Commands (TS-0003 §8.3.9, §12.3.2, §12.4.4-12.4.10),
//! the m2m:suid values the procedures classify, `xs:duration` and `m2m:timestamp` helpers.
//!
//! Enumerations keep unknown numbers (a client answers an unknown cmdClassID with
//! `MEF_CLIENT_CMD_CLASS_NOT_SUPPORTED`, it does not fail to parse). Element names are the
//! clause-12 names; the spellings of digest §B.32 are accepted on input.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use m2mtrust_model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $konst:ident = $num:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $repr);

        impl $name {
            $(
                $(#[$vmeta])*
                pub const $konst: Self = Self($num);
            )*

            /// The specification's name of a known value.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some($text),)*
                    _ => None,
                }
            }

            /// True for a value the specification defines.
            pub fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{} {}", self.0, n),
                    None => write!(f, "{}", self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

wire_enum! {
    /// sec:cmdClassID, TS-0003 §12.3.2.3.
    CmdClassId(u8) {
        /// No more commands (§8.3.9.6).
        NO_MORE_COMMANDS = 0 => "NO_MORE_COMMANDS",
        /// Certificate provisioning (§8.3.9.7).
        CERT_PROV = 1 => "CERT_PROV",
        /// Device configuration (§8.3.9.8).
        DEV_CFG = 2 => "DEV_CFG",
        /// Processing of a management-object node (§8.3.9.9).
        MO_NODE = 3 => "MO_NODE",
    }
}

wire_enum! {
    /// sec:cmdStatusCode, TS-0003 §12.3.2.4 (names of §8.3.9.5; 305 is called
    /// `..._EXECUTION_ERROR` in §12.3.2.4, digest §B.25).
    CmdStatusCode(u16) {
        /// 10: issued for the first time (set by the MEF).
        ISSUED = 10 => "MEF_CLIENT_CMD_ISSUED",
        /// 11: issued again because no Command Update arrived (set by the MEF).
        REISSUED = 11 => "MEF_CLIENT_CMD_REISSUED",
        /// 20: the client performed the command.
        OK = 20 => "MEF_CLIENT_CMD_OK",
        /// 40: the cmdID equals the one of the client's most recent Command Update.
        REPEATED_CMD_ID = 40 => "MEF_CLIENT_CMD_REPEATED_CMD_ID",
        /// 41: the client does not support the command class.
        CLASS_NOT_SUPPORTED = 41 => "MEF_CLIENT_CMD_CLASS_NOT_SUPPORTED",
        /// 42: cmdArgs could not be parsed.
        BAD_ARGUMENTS = 42 => "MEF_CLIENT_CMD_BAD_ARGUMENTS",
        /// 43: cmdArgs parsed but a value is unacceptable.
        UNACCEPTABLE_ARGUMENTS = 43 => "MEF_CLIENT_CMD_UNACCEPTABLE_ARGUMENTS",
        /// 100: certificate provisioning failed at or towards the server.
        CERT_PROV_SERVER_ERROR = 100 => "MEF_CLIENT_CMD_CERT_PROV_SERVER_ERROR",
        /// 101: certificate provisioning failed in the client.
        CERT_PROV_CLIENT_ERROR = 101 => "MEF_CLIENT_CMD_CERT_PROV_CLIENT_ERROR",
        /// 201: device configuration failed at or towards the DM server.
        DEV_CFG_SERVER_ERROR = 201 => "MEF_CLIENT_CMD_DEV_CFG_SERVER_ERROR",
        /// 202: device configuration failed in the DM client.
        DEV_CFG_CLIENT_ERROR = 202 => "MEF_CLIENT_CMD_DEV_CFG_CLIENT_ERROR",
        /// 300: no MO node at objectPath.
        MO_NODE_NOT_FOUND = 300 => "MEF_CLIENT_CMD_MO_NODE_NOT_FOUND",
        /// 301: the MO node has another type than objectTypeID.
        MO_NODE_TYPE_CONFLICT = 301 => "MEF_CLIENT_CMD_MO_NODE_TYPE_CONFLICT",
        /// 302: objectTypeSpecificArgs could not be parsed.
        MO_NODE_BAD_ARGS = 302 => "MEF_CLIENT_CMD_MO_NODE_BAD_ARGS",
        /// 303: objectTypeSpecificArgs are unacceptable (e.g. another SUID).
        MO_NODE_UNACCEPTABLE_ARGS = 303 => "MEF_CLIENT_CMD_MO_NODE_UNACCEPTABLE_ARGS",
        /// 304: the MO nodes are configured inconsistently.
        MO_NODE_INCONSISTENT_CONFIG = 304 => "MEF_CLIENT_CMD_MO_NODE_INCONSISTENT_CONFIG",
        /// 305: processing the MO node failed.
        MO_NODE_PROCESSING_FAILED = 305 => "MEF_CLIENT_CMD_MO_NODE_PROCESSING_FAILED",
    }
}

wire_enum! {
    /// sec:certProvProtocolID, TS-0003 §12.3.2.5.
    CertProvProtocolId(u8) {
        /// EST (RFC 7030), §8.3.6.2.
        EST = 1 => "EST",
        /// SCEP, §8.3.6.3.
        SCEP = 2 => "SCEP",
    }
}

wire_enum! {
    /// sec:certSubjectType, TS-0003 §12.3.2.6.
    CertSubjectType(u8) {
        /// The certificate names a Node-ID.
        NODE_ID = 1 => "Node-ID",
        /// The certificate names a CSE-ID.
        CSE_ID = 2 => "CSE-ID",
        /// The certificate names an AE-ID.
        AE_ID = 3 => "AE-ID",
    }
}

wire_enum! {
    /// sec:objectTypeID, TS-0003 §12.3.2.7 (`[MAFClientRefCfg]` there is `[MAFClientRegCfg]`,
    /// digest §B.25).
    ObjectTypeId(u8) {
        /// `[authenticationProfile]`.
        AUTHENTICATION_PROFILE = 1 => "authenticationProfile",
        /// `[trustAnchorCred]`.
        TRUST_ANCHOR_CRED = 2 => "trustAnchorCred",
        /// `[MAFClientRegCfg]`.
        MAF_CLIENT_REG_CFG = 3 => "MAFClientRegCfg",
    }
}

wire_enum! {
    /// sec:devMgmtID, TS-0003 §12.3.2.2.
    DevMgmtId(u8) {
        /// OMA DM v1.3.
        OMA_DM_1_3 = 1 => "OMA DMv1.3",
        /// OMA DM v2.0.
        OMA_DM_2_0 = 2 => "OMA DMv2.0",
        /// OMA LwM2M.
        OMA_LWM2M = 3 => "OMA LwM2M",
        /// BBF TR-069.
        BBF_TR069 = 4 => "BBF TR-069",
    }
}

/// An m2m:suid (TS-0004 §6.3.4.2.39): which security usage a key or credential serves.
/// Unknown values round-trip.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Suid(pub u16);

/// What a key registered under a SUID is used for (TS-0003 Table 8.3.5.1-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsage {
    /// Key shared with a MAF (MAF Security Frameworks): one target.
    Maf,
    /// Security Association Establishment: one target.
    Saef,
    /// End-to-end security of primitives: one target.
    EsPrim,
    /// End-to-end security of data: one or more targets.
    EsData,
}

impl Suid {
    /// The usage of a SUID whose key a Source MEF Client may register at the MEF
    /// (the RSPF-established range 21-25); `None` for every other SUID.
    pub fn mef_key_usage(self) -> Option<KeyUsage> {
        match self.0 {
            21 => Some(KeyUsage::Maf),
            22 => Some(KeyUsage::Saef),
            23 => Some(KeyUsage::EsPrim),
            24 | 25 => Some(KeyUsage::EsData),
            _ => None,
        }
    }

    /// The usage of a SUID whose key a Source MAF Client may register at a MAF (the
    /// MAF-distributed range 32-35 of TS-0004 m2m:suid; TS-0003 Table 8.8.1-1); `None` for
    /// every other SUID, the RSPF range 21-25 included.
    pub fn maf_key_usage(self) -> Option<KeyUsage> {
        match self.0 {
            32 => Some(KeyUsage::Saef),
            33 => Some(KeyUsage::EsPrim),
            34 | 35 => Some(KeyUsage::EsData),
            _ => None,
        }
    }

    /// How many target IDs a key of this usage needs: `(min, max)` (TS-0003 §8.3.5.2.7).
    pub fn target_bounds(usage: KeyUsage) -> (usize, usize) {
        match usage {
            KeyUsage::Maf | KeyUsage::Saef | KeyUsage::EsPrim => (1, 1),
            KeyUsage::EsData => (1, usize::MAX),
        }
    }
}

impl fmt::Debug for Suid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SUID {}", self.0)
    }
}

impl fmt::Display for Suid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why an `xs:duration` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not of the form `PnDTnHnMnS`.
    #[error("invalid xs:duration {0:?}: expected PnDTnHnMnS")]
    Syntax(String),
    /// Years and months have no fixed length and are not accepted.
    #[error("xs:duration {0:?} uses years or months, which have no fixed length")]
    YearsOrMonths(String),
    /// Negative durations make no sense for retry or key lifetimes.
    #[error("xs:duration {0:?} is negative")]
    Negative(String),
    /// The value does not fit.
    #[error("xs:duration {0:?} is too large")]
    Overflow(String),
}

/// An `xs:duration` restricted to days, hours, minutes and seconds (`PnDTnHnMnS`, fractional
/// seconds allowed): retryDuration (§12.4.6) and keyRegDuration (§8.3.9.9.4), digest §B.42.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct XsDuration(pub Duration);

impl XsDuration {
    /// A duration of whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The duration as a [`chrono::TimeDelta`], saturating at its maximum.
    pub fn to_delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Parses `PnDTnHnMnS`; every part is optional but at least one must be present, and `T`
    /// must be followed by a time part.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let syntax = || DurationError::Syntax(s.chars().take(64).collect());
        let overflow = || DurationError::Overflow(s.chars().take(64).collect());
        if s.starts_with('-') {
            return Err(DurationError::Negative(s.chars().take(64).collect()));
        }
        let body = s.strip_prefix('P').ok_or_else(syntax)?;
        let (date, time) = match body.split_once('T') {
            Some((d, t)) => {
                if t.is_empty() {
                    return Err(syntax());
                }
                (d, Some(t))
            }
            None => (body, None),
        };
        if date.is_empty() && time.is_none() {
            return Err(syntax());
        }
        let mut total = Duration::ZERO;
        // Date part: only days.
        if !date.is_empty() {
            let (num, unit, tail) = split_number(date).ok_or_else(syntax)?;
            match unit {
                'D' => {
                    let days: u64 = num.parse().map_err(|_| overflow())?;
                    total = days
                        .checked_mul(86_400)
                        .map(Duration::from_secs)
                        .ok_or_else(overflow)?;
                }
                'Y' | 'M' => {
                    return Err(DurationError::YearsOrMonths(s.chars().take(64).collect()));
                }
                _ => return Err(syntax()),
            }
            if !tail.is_empty() {
                return Err(syntax());
            }
        }
        if let Some(mut t) = time {
            let mut order = 0u8;
            while !t.is_empty() {
                let (num, unit, tail) = split_number(t).ok_or_else(syntax)?;
                let rank = match unit {
                    'H' => 1,
                    'M' => 2,
                    'S' => 3,
                    _ => return Err(syntax()),
                };
                if rank <= order {
                    return Err(syntax());
                }
                order = rank;
                let part = if unit == 'S' {
                    parse_seconds(num).ok_or_else(syntax)?
                } else {
                    if num.contains('.') {
                        return Err(syntax());
                    }
                    let n: u64 = num.parse().map_err(|_| overflow())?;
                    let mult = if unit == 'H' { 3600 } else { 60 };
                    n.checked_mul(mult)
                        .map(Duration::from_secs)
                        .ok_or_else(overflow)?
                };
                total = total.checked_add(part).ok_or_else(overflow)?;
                t = tail;
            }
        }
        Ok(Self(total))
    }
}

/// Splits `123X...` into ("123", 'X', "...").
fn split_number(s: &str) -> Option<(&str, char, &str)> {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)?;
    if end == 0 {
        return None;
    }
    let num = s.get(..end)?;
    let unit = s.get(end..)?.chars().next()?;
    let tail = s.get(end + unit.len_utf8()..)?;
    Some((num, unit, tail))
}

/// Parses `12` or `12.345` seconds.
fn parse_seconds(num: &str) -> Option<Duration> {
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (num, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos = match frac {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return None;
        }
        Some(f) => {
            let mut digits = f.to_string();
            while digits.len() < 9 {
                digits.push('0');
            }
            digits.parse::<u32>().ok()?
        }
    };
    Some(Duration::new(secs, nanos))
}

impl fmt::Display for XsDuration {
    /// The canonical form: `P1D`, `PT1H30M`, `PT0.5S`, `PT0S`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (hours, rem) = (rem / 3600, rem % 3600);
        let (minutes, seconds) = (rem / 60, rem % 60);
        f.write_str("P")?;
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if hours == 0 && minutes == 0 && seconds == 0 && nanos == 0 {
            if days == 0 {
                f.write_str("T0S")?;
            }
            return Ok(());
        }
        f.write_str("T")?;
        if hours > 0 {
            write!(f, "{hours}H")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}M")?;
        }
        if seconds > 0 || nanos > 0 {
            if nanos > 0 {
                let frac = format!("{nanos:09}");
                write!(f, "{seconds}.{}S", frac.trim_end_matches('0'))?;
            } else {
                write!(f, "{seconds}S")?;
            }
        }
        Ok(())
    }
}

impl FromStr for XsDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for XsDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for XsDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Formats an m2m:timestamp `YYYYMMDDTHHMMSS` (UTC, whole seconds).
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

/// Parses an m2m:timestamp (`YYYYMMDDTHHMMSS`, optional fraction and `Z`), truncated to whole
/// seconds so that stored values round-trip through [`format_timestamp`].
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let t = Timestamp::parse(s)?;
    DateTime::<Utc>::from_timestamp(t.0.div_euclid(1_000_000), 0)
}

/// Truncates a time to whole seconds.
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// sec:cmdDescription (TS-0003 §12.4.4): what the MEF asks the client to do.
#[derive(Clone, Debug, PartialEq)]
pub struct CmdDescription {
    /// `cmdArgs`; its variant determines `cmdClassID`.
    pub args: CmdArgs,
    /// `targetID`: the entity the command is for when the client is a Node serving a CSE
    /// and AEs (optional on input and output, digest §B.30).
    pub target_id: Option<String>,
}

impl CmdDescription {
    /// A command for the client itself.
    pub fn new(args: CmdArgs) -> Self {
        Self {
            args,
            target_id: None,
        }
    }

    /// `cmdClassID`, derived from the arguments.
    pub fn class_id(&self) -> CmdClassId {
        self.args.class_id()
    }
}

/// The wire frame of a cmdDescription before its arguments are interpreted
/// (TS-0003 §8.3.9.2 step 4a parses only this far).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RawCmdDescription {
    #[serde(rename = "cmdClassID")]
    pub class_id: CmdClassId,
    #[serde(rename = "cmdArgs")]
    pub args: Value,
    #[serde(rename = "targetID", default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

impl Serialize for CmdDescription {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let args = serde_json::to_value(&self.args).map_err(serde::ser::Error::custom)?;
        RawCmdDescription {
            class_id: self.class_id(),
            args,
            target_id: self.target_id.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for CmdDescription {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawCmdDescription::deserialize(d)?;
        let args = CmdArgs::from_value(raw.class_id, raw.args).map_err(serde::de::Error::custom)?;
        Ok(Self {
            args,
            target_id: raw.target_id,
        })
    }
}

/// sec:cmdArgs (TS-0003 §12.4.5): an `xs:choice` of one element per command class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CmdArgs {
    /// `noMoreCmdArgs` (§12.4.6).
    #[serde(rename = "noMoreCmdArgs")]
    NoMore {
        /// `retryDuration`: when the client should try a Command Retrieve again.
        #[serde(rename = "retryDuration")]
        retry_duration: XsDuration,
    },
    /// `certProvCmdArgs` (§12.4.7).
    #[serde(rename = "certProvCmdArgs", alias = "certProvArgs")]
    CertProv(CertProvArgs),
    /// `devCfgCmdArgs` (§12.4.8).
    #[serde(rename = "devCfgCmdArgs", alias = "devCfgArgs")]
    DevCfg {
        /// `deviceConfigURI`: `<devMgmtID>:<URI>` (§12.2, digest §B.31).
        #[serde(rename = "deviceConfigURI")]
        device_config_uri: String,
    },
    /// `MONodeCmdArgs` (§12.4.9).
    #[serde(rename = "MONodeCmdArgs")]
    MoNode(MoNodeArgs),
}

/// Why cmdArgs did not parse for the command class.
#[derive(Debug, thiserror::Error)]
pub enum CmdArgsError {
    /// The JSON is not one of the four choices, or a field is missing or mistyped.
    #[error("cmdArgs: {0}")]
    Json(#[from] serde_json::Error),
    /// The choice element does not belong to the cmdClassID.
    #[error("cmdArgs element {found} does not match cmdClassID {class}")]
    WrongChoice {
        /// The class of the command.
        class: CmdClassId,
        /// The class whose element was present.
        found: CmdClassId,
    },
}

impl CmdArgs {
    /// The cmdClassID this choice belongs to.
    pub fn class_id(&self) -> CmdClassId {
        match self {
            CmdArgs::NoMore { .. } => CmdClassId::NO_MORE_COMMANDS,
            CmdArgs::CertProv(_) => CmdClassId::CERT_PROV,
            CmdArgs::DevCfg { .. } => CmdClassId::DEV_CFG,
            CmdArgs::MoNode(_) => CmdClassId::MO_NODE,
        }
    }

    /// Parses cmdArgs for a command of class `class` (TS-0003 §8.3.9.6 step 3: failure is
    /// MEF_CLIENT_CMD_BAD_ARGUMENTS).
    pub fn from_value(class: CmdClassId, value: Value) -> Result<Self, CmdArgsError> {
        let args: CmdArgs = serde_json::from_value(value)?;
        if args.class_id() != class {
            return Err(CmdArgsError::WrongChoice {
                class,
                found: args.class_id(),
            });
        }
        Ok(args)
    }

    /// `DEV_CFG` arguments split into (devMgmtID, DM server URI) at the first ':'
    /// (digest §B.31); `None` when this is not DEV_CFG or the prefix is not a number.
    pub fn dev_cfg_parts(&self) -> Option<(DevMgmtId, &str)> {
        match self {
            CmdArgs::DevCfg { device_config_uri } => split_device_config_uri(device_config_uri),
            _ => None,
        }
    }
}

/// Splits `1:http://server.dmprovider.com` into (1, `http://server.dmprovider.com`).
pub fn split_device_config_uri(s: &str) -> Option<(DevMgmtId, &str)> {
    let (id, uri) = s.split_once(':')?;
    if id.is_empty() || id.len() > 3 || !id.bytes().all(|b| b.is_ascii_digit()) || uri.is_empty() {
        return None;
    }
    Some((DevMgmtId(id.parse().ok()?), uri))
}

/// sec:certProvCmdArgs (TS-0003 §12.4.7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertProvArgs {
    /// `certProvProtocolID` (accepted as `certProvProtocol`, digest §B.32).
    #[serde(rename = "certProvProtocolID", alias = "certProvProtocol")]
    pub protocol: CertProvProtocolId,
    /// `URI`: the base URI of the EST or SCEP server; its host must be the MEF's FQDN.
    #[serde(rename = "URI")]
    pub uri: String,
    /// `certSubjectType`.
    #[serde(rename = "certSubjectType")]
    pub subject_type: CertSubjectType,
    /// `certSubjectID`: the Node-ID, CSE-ID or AE-ID to put in the SubjectAltName.
    #[serde(rename = "certSubjectID")]
    pub subject_id: String,
}

/// sec:MONodeCmdArgs (TS-0003 §12.4.9).
///
/// `objectTypeSpecifcArgs` (the clause-12 spelling, emitted; `objectTypeSpecificArgs` is
/// accepted) is kept as JSON: its type depends on objectTypeID, and a client that cannot parse
/// it answers MEF_CLIENT_CMD_MO_NODE_BAD_ARGS (302), not BAD_ARGUMENTS (42).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoNodeArgs {
    /// `objectPath`: the path of the MO node in the client's device-management tree.
    #[serde(rename = "objectPath")]
    pub object_path: String,
    /// `objectTypeID` (accepted as `objectTypelID`, the spelling of §12.3.2.7).
    #[serde(rename = "objectTypeID", alias = "objectTypelID")]
    pub object_type: ObjectTypeId,
    /// `objectTypeSpecifcArgs`: for `[authenticationProfile]` a sec:authProfileMONodeArgs.
    #[serde(
        rename = "objectTypeSpecifcArgs",
        alias = "objectTypeSpecificArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub object_type_specific_args: Option<Value>,
}

/// sec:authProfileMONodeArgs (TS-0003 §12.4.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthProfileMoNodeArgs {
    /// `SUID`: the SUID the MEF expects in the addressed `[authenticationProfile]`.
    #[serde(rename = "SUID")]
    pub suid: Suid,
}

impl MoNodeArgs {
    /// MO_NODE arguments for an `[authenticationProfile]` expected to carry `suid`.
    pub fn authentication_profile(path: impl Into<String>, suid: Suid) -> Self {
        Self {
            object_path: path.into(),
            object_type: ObjectTypeId::AUTHENTICATION_PROFILE,
            object_type_specific_args: Some(serde_json::json!({ "SUID": suid.0 })),
        }
    }

    /// MO_NODE arguments for a node type without type-specific arguments.
    pub fn plain(path: impl Into<String>, object_type: ObjectTypeId) -> Self {
        Self {
            object_path: path.into(),
            object_type,
            object_type_specific_args: None,
        }
    }

    /// Parses the `[authenticationProfile]` arguments; `None` when absent.
    pub fn auth_profile_args(&self) -> Option<Result<AuthProfileMoNodeArgs, serde_json::Error>> {
        self.object_type_specific_args
            .as_ref()
            .map(AuthProfileMoNodeArgs::deserialize)
    }
}

/// One MEF Client Command as carried in a Command Retrieve or Command Update response
/// (TS-0003 Table 8.3.9.2-2): `{"cmdID", "cmdDescription", "cmdStatusCode"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MefClientCmd {
    /// `cmdID`.
    #[serde(rename = "cmdID")]
    pub cmd_id: u64,
    /// `cmdDescription`.
    #[serde(rename = "cmdDescription")]
    pub description: CmdDescription,
    /// `cmdStatusCode`: ISSUED or REISSUED.
    #[serde(rename = "cmdStatusCode")]
    pub status: CmdStatusCode,
}

/// The body of a Command Update request (TS-0003 Table 8.3.9.3-1; MEFClientRegID is the
/// path): `{"sec:cmdUpd": {"cmdID", "cmdStatusCode"}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdUpdate {
    /// `cmdID` of the command the status is for.
    #[serde(rename = "cmdID")]
    pub cmd_id: u64,
    /// `cmdStatusCode`: the result of parsing and executing it.
    #[serde(rename = "cmdStatusCode")]
    pub status: CmdStatusCode,
}
