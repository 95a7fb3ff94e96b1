//! The Enrolment Exchange messages (TS-0003 §8.3.2.1, Tables 8.3.2.1-1 to 8.3.2.1-6) and the
//! `<securityProfile>` a provisioned enrolee receives (seed 001, Msce), in the project JSON
//! mapping of `docs/mef.md`.

use serde::{Deserialize, Serialize};

/// Key of the first Enrolment Exchange request.
pub const ENROLMENT_REQUEST: &str = "sec:enrReq";
/// Key of an acknowledgement that an instruction was carried out.
pub const ENROLMENT_ACK: &str = "sec:enrAck";
/// Key of an instruction response.
pub const ENROLMENT_INSTRUCTION: &str = "sec:enrInstr";
/// Key of the response ending the exchange.
pub const ENROLMENT_END: &str = "sec:enrEnd";
/// Key of a `/fetchCredentials` response (Tables 8.3.2.1-5 and 8.3.2.1-6).
pub const FETCH_CREDENTIALS: &str = "sec:fetchCredRsp";

/// Table 8.3.2.1-1: what the enrolee is prepared to do, plus the seed-001 Msce request
/// parameters of a field CSE (M2M-Node-ID, optional location).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// The M2M-Node-ID of the enrolee's node.
    #[serde(rename = "nodeID", default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The enrolee's geographical location, informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// CertificateEnrolmentIndication.
    #[serde(default)]
    pub certificate_enrolment_indication: bool,
    /// MAFEnrolmentIndication.
    #[serde(rename = "MAFEnrolmentIndication", default)]
    pub maf_enrolment_indication: bool,
    /// RemoteManagementIndication.
    #[serde(default)]
    pub remote_management_indication: bool,
}

/// What an instruction asks the enrolee to do (the InstructionType of Tables 8.3.2.1-2 to -4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstructionType {
    /// Certificate Enrolment through EST (§8.3.6).
    CertificateEnrolment,
    /// MAF Client Registration.
    MAFEnrolment,
    /// Contact a remote management server.
    RemoteManagementServer,
}

/// Table 8.3.2.1-2 (certificate enrolment) as sent by this MEF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instruction {
    /// The instruction.
    pub instruction_type: InstructionType,
    /// The base URI of the service to use (the EST base URI, `…/.well-known/est`).
    #[serde(rename = "URI")]
    pub uri: String,
    /// certSubjectType (sec:certSubjectType): 1 Node-ID, 2 CSE-ID, 3 AE-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_subject_type: Option<u8>,
    /// certSubjectID: the identity the certificate will carry.
    #[serde(
        rename = "certSubjectID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_subject_id: Option<String>,
    /// Table 8.3.2.1-3 CredentialType of a MAF enrolment: `symmetric` (the key the MAF fetches
    /// from this MEF with SUID 21) or `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_type: Option<String>,
    /// Table 8.3.2.1-3 MAFClientRegistrationURI (`…/maf/reg`).
    #[serde(
        rename = "MAFClientRegistrationURI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maf_client_registration_uri: Option<String>,
    /// Table 8.3.2.1-3 MAFKeyRegistrationURI (`…/maf/keys`).
    #[serde(
        rename = "MAFKeyRegistrationURI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maf_key_registration_uri: Option<String>,
    /// Table 8.3.2.1-3 MAFKeyRetrievalURI (`…/maf/keys`).
    #[serde(
        rename = "MAFKeyRetrievalURI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maf_key_retrieval_uri: Option<String>,
    /// The administrating stakeholder the enrolee registers with at the MAF (`adminFQDN`).
    #[serde(rename = "adminFQDN", default, skip_serializing_if = "Option::is_none")]
    pub admin_fqdn: Option<String>,
    /// The MAF's FQDN (the Enrolment-Target-ID of the SUID-21 key, §10.3.7).
    #[serde(rename = "MAFFQDN", default, skip_serializing_if = "Option::is_none")]
    pub maf_fqdn: Option<String>,
}

/// The enrolee's report that it carried out (or failed) an instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acknowledgement {
    /// The instruction acknowledged.
    pub instruction_type: InstructionType,
    /// True on success.
    pub status: bool,
}

/// The `<securityProfile>` (seed 001): what the enrolee needs to join the service provider.
/// The long-term key itself never travels: the enrolee derives it from Ke (TS-0003 §10.3.7)
/// and the enrolment target receives it from the MEF; the profile names it by its KeID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityProfile {
    /// Enrolee-ID: the CSE-ID or AE-IDs assigned to the enrolee.
    #[serde(rename = "enroleeID")]
    pub enrolee_id: Vec<String>,
    /// True when the enrolee is a CSE (the IDs are a CSE-ID).
    pub cse: bool,
    /// KeID, the `psk_identity` to use with the target (§8.3.2.1 Use of Remotely Provisioned
    /// Credential, step b).
    #[serde(rename = "keyID")]
    pub key_id: String,
    /// The Security Usage Identifier the key is constrained to (22: RSPF key for the SAEF).
    pub suid: u32,
    /// The enrolment target: the SP-relative CSE-ID of the CSE to register with.
    #[serde(rename = "targetID")]
    pub target_id: String,
    /// The FQDN representation of the target's CSE-ID, the Enrolment-Target-ID input of the
    /// usage-constrained key derivation (§10.3.7).
    #[serde(rename = "targetFQDN")]
    pub target_fqdn: String,
    /// URI of the `<CSEBase>` to register with.
    #[serde(rename = "cseBaseURI")]
    pub cse_base_uri: String,
    /// Enrolment Expiry (m2m:timestamp): the key stops working then (§10.7).
    pub expiration_time: String,
}

/// Table 8.3.2.1-5 / 8.3.2.1-6: the answer to `/fetchCredentials/<KeID>/<SUID>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchCredentialsResponse {
    /// True with a credential, false with an error string.
    pub status: bool,
    /// The usage-constrained key, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The Enrolee-ID (CSE-ID or AE-IDs).
    #[serde(rename = "enroleeID", default, skip_serializing_if = "Option::is_none")]
    pub enrolee_id: Option<Vec<String>>,
    /// Lifetime (m2m:timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<String>,
    /// Failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_string: Option<String>,
}

impl std::fmt::Display for InstructionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CertificateEnrolment => "CertificateEnrolment",
            Self::MAFEnrolment => "MAFEnrolment",
            Self::RemoteManagementServer => "RemoteManagementServer",
        })
    }
}
