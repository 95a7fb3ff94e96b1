//! Bodies of the MEF procedure messages (TS-0003 Tables 8.3.5.2.3-1 to 8.3.5.2.10-1) in the
//! project JSON mapping (`docs/mef.md`; TS-0032 is not available, digest §B.34).
//!
//! Every body is a JSON object with one namespaced key: `sec:mefClientReg`, `sec:mefClientCfg`,
//! `sec:keyReg`, `sec:mefClientCmd`, `sec:cmdUpd`; at a MAF (TS-0003 §8.8.2.3-§8.8.2.10, same
//! shapes) `sec:mafClientReg`, `sec:mafClientCfg` and `sec:keyReg`. Times are m2m:timestamp text
//! (`YYYYMMDDTHHMMSS`), Key Values base64 (standard alphabet, padded).
//!
//! The same types serve the MEF (parsing requests, forming responses) and the client side
//! ([`super::client`] forms Key Registration requests and checks their responses).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use m2mtrust_crypto::SecretKey;
use serde::{Deserialize, Serialize};

use super::types::Suid;

/// JSON key of MEF Client Registration bodies.
pub const KEY_CLIENT_REG: &str = "sec:mefClientReg";
/// JSON key of the MEF Client Configuration in a Configuration Retrieval response.
pub const KEY_CLIENT_CFG: &str = "sec:mefClientCfg";
/// JSON key of MAF Client Registration bodies (TS-0003 §8.8.2.3, §8.8.2.5).
pub const KEY_MAF_CLIENT_REG: &str = "sec:mafClientReg";
/// JSON key of the MAF Client Configuration in a MAF Configuration Retrieval response
/// (§8.8.2.4).
pub const KEY_MAF_CLIENT_CFG: &str = "sec:mafClientCfg";
/// JSON key of Key Registration bodies (MEF and MAF alike).
pub const KEY_KEY_REG: &str = "sec:keyReg";
/// JSON key of a MEF Client Command in Command Retrieve / Update responses.
pub const KEY_CLIENT_CMD: &str = "sec:mefClientCmd";
/// JSON key of a Command Update request.
pub const KEY_CMD_UPDATE: &str = "sec:cmdUpd";

/// MEF Client Registration request (TS-0003 Table 8.3.5.2.3-1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegRequest {
    /// `fqdn`: MEF-FQDN, the MEF the client means to register with.
    pub fqdn: String,
    /// `exp`: proposed expirationTime.
    pub exp: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `adminFQDN`: the administrating stakeholder.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
}

/// MEF Client Registration response (TS-0003 Table 8.3.5.2.3-2); also the shape the client
/// side expects from a MAF Client Registration (8.8.2.3), where `mafClientID` is accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRegResponse {
    /// `ri`: MEFClientRegID.
    pub ri: String,
    /// `exp`: the expirationTime the MEF granted.
    pub exp: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `mefClientID`: the authenticated MEF Client ID (digest §B.14).
    #[serde(rename = "mefClientID", alias = "mafClientID")]
    pub client_id: String,
    /// `adminFQDN`.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// `ch`: child resources, here the command resource when commands are waiting
    /// (TS-0003 §8.3.4.6 trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ch: Option<Vec<String>>,
}

/// MAF Client Registration response (TS-0003 Table 8.8.2.3-2). The request is a
/// [`ClientRegRequest`] whose `fqdn` is the MAF-FQDN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MafClientRegResponse {
    /// `ri`: mafClientRegID.
    pub ri: String,
    /// `exp`: the expirationTime the MAF granted.
    pub exp: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `mafClientID`: the MAF Client ID the MAF Handshake (or the remotely provisioned
    /// credential) authenticated.
    #[serde(rename = "mafClientID")]
    pub maf_client_id: String,
    /// `adminFQDN`.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// `assignedSymmKeyID`: the KmID the client uses hereafter as its Master Credential ID
    /// (§8.8.2.3 step 5); present only when the client registered with a remotely
    /// provisioned credential (step 1a).
    #[serde(
        rename = "assignedSymmKeyID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub assigned_symm_key_id: Option<String>,
}

/// MEF Client Registration Update request and response (TS-0003 Tables 8.3.5.2.5-1/-2).
/// The response carries only the fields the request had.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegUpdate {
    /// `fqdn`: MEF-FQDN (request only; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// `exp`: proposed (request) or granted (response) expirationTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<String>,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
}

/// Key Registration request (TS-0003 Table 8.3.5.2.7-1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegRequest {
    /// `fqdn`: MEF-FQDN.
    pub fqdn: String,
    /// `exp`: proposed expirationTime.
    pub exp: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `adminFQDN`.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// `suid`.
    pub suid: Suid,
    /// `tids`: targetIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tids: Option<Vec<String>>,
    /// `kv`: Key Value chosen by the source (base64); absent ⇒ the MEF uses the TLS export.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_secret")]
    pub kv: Option<SecretKey>,
}

/// Key Registration response (TS-0003 Table 8.3.5.2.7-2). Never carries the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRegResponse {
    /// `rki`: RelativeKeyID.
    pub rki: String,
    /// `kid`: Key Identifier `RelativeKeyID@MEF-FQDN` (§10.3.5, digest §B.6).
    pub kid: String,
    /// `exp`: the expirationTime the MEF granted.
    pub exp: String,
    /// `srcID`: Source MEF Client ID.
    #[serde(rename = "srcID")]
    pub src_id: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `adminFQDN`.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// `suid`.
    pub suid: Suid,
    /// `tids`: targetIDs.
    pub tids: Vec<String>,
}

/// Key Retrieval response (TS-0003 Table 8.3.5.2.8-2): the metadata and the Key Value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRetrieveResponse {
    /// `rki`: RelativeKeyID.
    pub rki: String,
    /// `kid`: Key Identifier.
    pub kid: String,
    /// `exp`: expirationTime.
    pub exp: String,
    /// `srcID`: Source MEF Client ID.
    #[serde(rename = "srcID")]
    pub src_id: String,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `adminFQDN`.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: String,
    /// `suid`.
    pub suid: Suid,
    /// `kv`: the Key Value (base64).
    #[serde(with = "b64_secret_required")]
    pub kv: SecretKey,
}

/// Key Registration Update request and response (TS-0003 Tables 8.3.5.2.9-1/-2). The
/// response carries only the fields the request had.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegUpdate {
    /// `fqdn`: MEF-FQDN (request only; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// `exp`: expirationTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<String>,
    /// `lbl`: labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// `tids`: targetIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tids: Option<Vec<String>>,
}

/// Decodes standard base64 (padded) into a secret.
pub(crate) fn decode_b64_secret(s: &str) -> Option<SecretKey> {
    B64.decode(s.as_bytes()).ok().map(SecretKey::new)
}

mod b64_secret {
    use super::B64;
    use base64::Engine as _;
    use m2mtrust_crypto::SecretKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<SecretKey>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.serialize_str(&B64.encode(k.expose_bytes())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretKey>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => super::decode_b64_secret(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("kv is not valid base64")),
        }
    }
}

mod b64_secret_required {
    use super::B64;
    use base64::Engine as _;
    use m2mtrust_crypto::SecretKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(k.expose_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
        let s = String::deserialize(d)?;
        super::decode_b64_secret(&s)
            .ok_or_else(|| serde::de::Error::custom("kv is not valid base64"))
    }
}
