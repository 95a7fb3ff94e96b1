//! The MEF Client side of the MEF Client Commands (TS-0003 §8.3.9): the parse-and-execute
//! steps of §8.3.9.2 step 4 and the class-specific processes of §8.3.9.6-§8.3.9.9, as a pure
//! state machine.
//!
//! [`CommandRunner::process`] takes one Command Retrieve or Command Update response and says
//! what to do next ([`Outcome`]): send a Command Update with a status, wait `retryDuration`
//! (NO_MORE_COMMANDS), or give up on an unparsable response. Everything that touches the
//! outside world (EST, device management, HTTPS, the MEF and MAF procedures, local key and
//! certificate stores) is a [`CommandExecutor`] call; the device-management tree the MO_NODE
//! commands refer to is an in-memory [`MoTree`].
//!
//! **Architecture Invariant:** no I/O and no clock here; `now` is an argument.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use m2mtrust_crypto::{Fqdn, SecretKey};
use serde::Deserialize;
use serde_json::Value;

use super::messages::{
    ClientRegRequest, ClientRegResponse, KEY_CLIENT_CMD, KeyRegRequest, KeyRegResponse,
};
use super::types::{
    CertProvArgs, CertProvProtocolId, CertSubjectType, CmdArgs, CmdClassId, CmdStatusCode,
    CmdUpdate, DevMgmtId, ObjectTypeId, RawCmdDescription, Suid, XsDuration, format_timestamp,
    parse_timestamp,
};

/// The mandatory TLS and DTLS ciphersuites of the PSK frameworks (TS-0003 §10.2.2):
/// `TLS_PSK_WITH_AES_128_CBC_SHA256`, `TLS_PSK_WITH_AES_128_CCM_8`.
pub const PSK_MANDATORY_SUITES: [u16; 2] = [0x00AE, 0xC0A8];
/// The mandatory TLS and DTLS ciphersuites of the certificate frameworks (TS-0003 §10.2.3):
/// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8`.
pub const CERT_MANDATORY_SUITES: [u16; 2] = [0xC023, 0xC0AE];

/// What kind of entity the MEF Client is in (TS-0003 §8.3.9.7 certSubjectType checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// A Node acting on behalf of a CSE and/or AEs: Node, CSE and AE certificates.
    Node,
    /// A CSE: CSE-ID certificates only.
    Cse,
    /// An AE: AE-ID certificates only (digest §B.28).
    Ae,
}

/// What the MEF Client is and supports.
#[derive(Clone, Debug)]
pub struct ClientProfile {
    /// The FQDN of the MEF issuing the commands (CERT_PROV and DEV_CFG URIs must name it).
    pub mef_fqdn: Fqdn,
    /// The client's own MEF Client ID, as the MEF reports it (`mefClientID`, `srcID`).
    pub client_id: String,
    /// Node, CSE or AE.
    pub kind: ClientKind,
    /// Supported command classes (NO_MORE_COMMANDS should always be among them).
    pub classes: Vec<CmdClassId>,
    /// Supported certificate provisioning protocols.
    pub cert_prov_protocols: Vec<CertProvProtocolId>,
    /// Supported device-management technologies.
    pub dev_mgmt: Vec<DevMgmtId>,
}

/// Why certificate provisioning failed (TS-0003 §8.3.9.7 step 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertProvFailure {
    /// Communicating with the server, or an error inside the server (status 100).
    #[error("certificate provisioning server error")]
    Server,
    /// An error in the client (status 101).
    #[error("certificate provisioning client error")]
    Client,
}

/// Why device configuration failed (TS-0003 §8.3.9.8 step 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DevCfgFailure {
    /// Communicating with the DM server, or an error inside it (status 201).
    #[error("device configuration server error")]
    Server,
    /// An error in the DM client (status 202).
    #[error("device configuration client error")]
    Client,
}

/// A failed external step of an MO_NODE process (status 305).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MO node processing failed: {0}")]
pub struct ProcessingFailure(pub String);

/// The outside world of the command processes. Every method has a refusing default, so an
/// executor implements only what its device supports.
pub trait CommandExecutor {
    /// Runs EST or SCEP with the verified arguments (§8.3.9.7 step 5); the subject identity
    /// goes into the SubjectAltName of the CSR.
    fn cert_prov(&mut self, args: &CertProvArgs) -> Result<(), CertProvFailure> {
        let _ = args;
        Err(CertProvFailure::Client)
    }

    /// Runs TS-0022 device configuration with the DM server (§8.3.9.8 step 5).
    fn dev_cfg(&mut self, dev_mgmt: DevMgmtId, server_uri: &str) -> Result<(), DevCfgFailure> {
        let _ = (dev_mgmt, server_uri);
        Err(DevCfgFailure::Client)
    }

    /// Whether a local copy of the symmetric key `symm_key_id` exists (§8.3.9.9.3).
    fn has_symmetric_key(&self, symm_key_id: &str) -> bool {
        let _ = symm_key_id;
        false
    }

    /// Whether a local certificate matching `fingerprint` and its private key exist
    /// (§8.3.9.9.6).
    fn has_certificate(&self, fingerprint: &str) -> bool {
        let _ = fingerprint;
        false
    }

    /// Whether a local trust-anchor certificate matching `fingerprint` exists (§8.3.9.9.7).
    fn has_trust_anchor(&self, fingerprint: &str) -> bool {
        let _ = fingerprint;
        false
    }

    /// HTTPS GET of a trust-anchor certificate (§8.3.9.9.7 step 2).
    fn https_get(&mut self, uri: &str) -> Result<Vec<u8>, ProcessingFailure> {
        Err(ProcessingFailure(format!("no HTTPS client for {uri}")))
    }

    /// Whether `payload` parses as a certificate matching `fingerprint` (§8.3.9.9.7 step 3).
    fn certificate_matches(&self, payload: &[u8], fingerprint: &str) -> bool {
        let _ = (payload, fingerprint);
        false
    }

    /// Performs the MEF Key Registration (§8.3.5.2.7) with the MEF of `mef` over the protocol
    /// its port attributes allow (§8.3.9.9.4).
    fn mef_key_registration(
        &mut self,
        mef: &ClientRegCfg,
        request: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        let _ = request;
        Err(ProcessingFailure(format!("no MEF client for {}", mef.fqdn)))
    }

    /// Performs the MAF Key Registration (§8.8.2.7) with the MAF of `maf` (§8.3.9.9.5).
    fn maf_key_registration(
        &mut self,
        maf: &ClientRegCfg,
        request: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        let _ = request;
        Err(ProcessingFailure(format!("no MAF client for {}", maf.fqdn)))
    }

    /// Performs the MAF Client Registration (§8.8.2.3) with the MAF of `maf` (§8.3.9.9.8).
    fn maf_client_registration(
        &mut self,
        maf: &ClientRegCfg,
        request: &ClientRegRequest,
    ) -> Result<ClientRegResponse, ProcessingFailure> {
        let _ = request;
        Err(ProcessingFailure(format!("no MAF client for {}", maf.fqdn)))
    }
}

/// What the client does after processing one command response.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Send a Command Update (§8.3.9.3) with this cmdID and status.
    Update(CmdUpdate),
    /// NO_MORE_COMMANDS (§8.3.9.6): no Update; set a timer of `after` and perform a Command
    /// Retrieve when it fires, unless another command procedure happens first.
    Retry {
        /// cmdID of the NO_MORE_COMMANDS command.
        cmd_id: u64,
        /// retryDuration.
        after: XsDuration,
    },
    /// §8.3.9.2 step 4a: the response did not parse; no Update. The client "may choose to exit
    /// the procedure, or may return to step 1".
    Unparsable(String),
}

/// The wire frame of a command as far as §8.3.9.2 step 4a parses it.
#[derive(Deserialize)]
struct RawCmd {
    #[serde(rename = "cmdID")]
    cmd_id: u64,
    #[serde(rename = "cmdDescription")]
    description: RawCmdDescription,
    #[serde(rename = "cmdStatusCode")]
    status: CmdStatusCode,
}

/// The client's command state machine (TS-0003 §8.3.9.2 step 4 and §8.3.9.6-§8.3.9.9).
#[derive(Debug)]
pub struct CommandRunner {
    profile: ClientProfile,
    last_update: Option<CmdUpdate>,
}

impl CommandRunner {
    /// A runner that has sent no Command Update yet.
    pub fn new(profile: ClientProfile) -> Self {
        Self {
            profile,
            last_update: None,
        }
    }

    /// The client's profile.
    pub fn profile(&self) -> &ClientProfile {
        &self.profile
    }

    /// The most recent Command Update this runner asked to send.
    pub fn last_update(&self) -> Option<CmdUpdate> {
        self.last_update
    }

    /// Processes one Command Retrieve or Command Update response body (`{"sec:mefClientCmd":
    /// {...}}`, or the inner object) and returns what to do next. A returned
    /// [`Outcome::Update`] is remembered as the most recent Command Update.
    pub fn process(
        &mut self,
        response: &Value,
        tree: &mut MoTree,
        exec: &mut dyn CommandExecutor,
        now: DateTime<Utc>,
    ) -> Outcome {
        // §8.3.9.2 step 4a: parse into cmdID, cmdDescription, cmdStatusCode, and the
        // description into cmdClassID and cmdArgs.
        let inner = response.get(KEY_CLIENT_CMD).unwrap_or(response);
        let cmd = match RawCmd::deserialize(inner) {
            Ok(c) => c,
            Err(e) => return Outcome::Unparsable(e.to_string()),
        };
        // Step 4b: the cmdID of the most recent Command Update again. A REISSUED command whose
        // Update was lost is "already performed": its status is reported again without
        // executing it twice (§8.3.9.5.3). Any other repetition is REPEATED_CMD_ID.
        if let Some(last) = self.last_update
            && last.cmd_id == cmd.cmd_id
        {
            if cmd.status == CmdStatusCode::REISSUED {
                return Outcome::Update(last);
            }
            return Outcome::Update(CmdUpdate {
                cmd_id: cmd.cmd_id,
                status: CmdStatusCode::REPEATED_CMD_ID,
            });
        }
        // Step 4c: the class must be supported.
        let class = cmd.description.class_id;
        if !class.is_known() || !self.profile.classes.contains(&class) {
            return self.update(cmd.cmd_id, CmdStatusCode::CLASS_NOT_SUPPORTED);
        }
        // Step 4d: class-specific processing; every class starts by parsing cmdArgs
        // (§8.3.9.6 step 3: failure is BAD_ARGUMENTS).
        let args = match CmdArgs::from_value(class, cmd.description.args) {
            Ok(a) => a,
            Err(_) => return self.update(cmd.cmd_id, CmdStatusCode::BAD_ARGUMENTS),
        };
        let status = match args {
            CmdArgs::NoMore { retry_duration } => {
                return Outcome::Retry {
                    cmd_id: cmd.cmd_id,
                    after: retry_duration,
                };
            }
            CmdArgs::CertProv(a) => self.cert_prov(&a, exec),
            CmdArgs::DevCfg { device_config_uri } => self.dev_cfg(&device_config_uri, exec),
            CmdArgs::MoNode(a) => self.mo_node(&a, tree, exec, now),
        };
        self.update(cmd.cmd_id, status)
    }

    fn update(&mut self, cmd_id: u64, status: CmdStatusCode) -> Outcome {
        let u = CmdUpdate { cmd_id, status };
        self.last_update = Some(u);
        Outcome::Update(u)
    }

    /// §8.3.9.7 CERT_PROV steps 4-6.
    fn cert_prov(&self, a: &CertProvArgs, exec: &mut dyn CommandExecutor) -> CmdStatusCode {
        let protocol_ok = self.profile.cert_prov_protocols.contains(&a.protocol);
        let uri_ok = uri_names(&a.uri, &self.profile.mef_fqdn);
        let type_ok = match self.profile.kind {
            ClientKind::Node => matches!(
                a.subject_type,
                CertSubjectType::NODE_ID | CertSubjectType::CSE_ID | CertSubjectType::AE_ID
            ),
            ClientKind::Cse => a.subject_type == CertSubjectType::CSE_ID,
            ClientKind::Ae => a.subject_type == CertSubjectType::AE_ID,
        };
        // Digest §B.28: CSE ⇒ CSE-ID, AE ⇒ AE-ID (the text swaps them).
        let id_ok = match a.subject_type {
            CertSubjectType::NODE_ID => is_node_id(&a.subject_id),
            CertSubjectType::CSE_ID => is_cse_id(&a.subject_id),
            CertSubjectType::AE_ID => is_ae_id(&a.subject_id),
            _ => false,
        };
        if !(protocol_ok && uri_ok && type_ok && id_ok) {
            return CmdStatusCode::UNACCEPTABLE_ARGUMENTS;
        }
        match exec.cert_prov(a) {
            Ok(()) => CmdStatusCode::OK,
            Err(CertProvFailure::Server) => CmdStatusCode::CERT_PROV_SERVER_ERROR,
            Err(CertProvFailure::Client) => CmdStatusCode::CERT_PROV_CLIENT_ERROR,
        }
    }

    /// §8.3.9.8 DEV_CFG steps 3-6.
    fn dev_cfg(&self, device_config_uri: &str, exec: &mut dyn CommandExecutor) -> CmdStatusCode {
        let Some((dev_mgmt, uri)) = super::types::split_device_config_uri(device_config_uri) else {
            return CmdStatusCode::BAD_ARGUMENTS;
        };
        if !self.profile.dev_mgmt.contains(&dev_mgmt) || !uri_names(uri, &self.profile.mef_fqdn) {
            return CmdStatusCode::UNACCEPTABLE_ARGUMENTS;
        }
        match exec.dev_cfg(dev_mgmt, uri) {
            Ok(()) => CmdStatusCode::OK,
            Err(DevCfgFailure::Server) => CmdStatusCode::DEV_CFG_SERVER_ERROR,
            Err(DevCfgFailure::Client) => CmdStatusCode::DEV_CFG_CLIENT_ERROR,
        }
    }

    /// §8.3.9.9.1 MO_NODE steps 4-5.
    fn mo_node(
        &self,
        a: &super::types::MoNodeArgs,
        tree: &mut MoTree,
        exec: &mut dyn CommandExecutor,
        now: DateTime<Utc>,
    ) -> CmdStatusCode {
        // Step 4a: an MO node at objectPath.
        let Some(node) = tree.get(&a.object_path) else {
            return CmdStatusCode::MO_NODE_NOT_FOUND;
        };
        // Step 4b: of the type objectTypeID names.
        if node.node_type().object_type_id() != Some(a.object_type) {
            return CmdStatusCode::MO_NODE_TYPE_CONFLICT;
        }
        let path = normalize(&a.object_path).to_string();
        match a.object_type {
            ObjectTypeId::AUTHENTICATION_PROFILE => self.auth_profile(a, &path, tree, exec, now),
            ObjectTypeId::TRUST_ANCHOR_CRED => trust_anchor(&path, tree, exec),
            ObjectTypeId::MAF_CLIENT_REG_CFG => self.maf_client_reg(&path, tree, exec, now),
            _ => CmdStatusCode::MO_NODE_TYPE_CONFLICT,
        }
    }

    /// §8.3.9.9.2 `[authenticationProfile]`.
    fn auth_profile(
        &self,
        a: &super::types::MoNodeArgs,
        path: &str,
        tree: &mut MoTree,
        exec: &mut dyn CommandExecutor,
        now: DateTime<Utc>,
    ) -> CmdStatusCode {
        // Step 2: parse objectTypeSpecificArgs (302 on failure; it "is present" for this type).
        let args = match a.auth_profile_args() {
            Some(Ok(args)) => args,
            _ => return CmdStatusCode::MO_NODE_BAD_ARGS,
        };
        let Some(profile) = tree.auth_profile(path).cloned() else {
            return CmdStatusCode::MO_NODE_TYPE_CONFLICT;
        };
        // Step 3: the SUID argument must equal the MO node's SUID (303).
        if args.suid != profile.suid {
            return CmdStatusCode::MO_NODE_UNACCEPTABLE_ARGS;
        }
        // Step 4: SUID / MO-tree consistency (304).
        if check_suid_consistency(tree, path).is_err() {
            return CmdStatusCode::MO_NODE_INCONSISTENT_CONFIG;
        }
        // Step 5: dispatch by SUID.
        match profile.suid.0 {
            11..=13 => {
                // §8.3.9.9.3: symmKeyValue present, or a local key named symmKeyID.
                let ok = profile.symm_key_value.is_some()
                    || profile
                        .symm_key_id
                        .as_deref()
                        .is_some_and(|id| exec.has_symmetric_key(id));
                if ok {
                    CmdStatusCode::OK
                } else {
                    CmdStatusCode::MO_NODE_PROCESSING_FAILED
                }
            }
            21..=23 => self.key_registration(path, &profile, tree, exec, now, Via::Mef),
            32 | 33 => self.key_registration(path, &profile, tree, exec, now, Via::Maf),
            41..=43 => {
                // §8.3.9.9.6 with the branches of digest §B.27: present ⇒ associate + OK.
                let fp = profile.my_cert_fingerprint.as_deref().unwrap_or_default();
                if exec.has_certificate(fp) {
                    if let Some(p) = tree.auth_profile_mut(path) {
                        p.certificate_associated = true;
                    }
                    CmdStatusCode::OK
                } else {
                    CmdStatusCode::MO_NODE_PROCESSING_FAILED
                }
            }
            _ => CmdStatusCode::MO_NODE_INCONSISTENT_CONFIG,
        }
    }

    /// §8.3.9.9.4 (MEF) and §8.3.9.9.5 (MAF): register a key for the profile.
    fn key_registration(
        &self,
        path: &str,
        profile: &AuthenticationProfile,
        tree: &mut MoTree,
        exec: &mut dyn CommandExecutor,
        now: DateTime<Utc>,
        via: Via,
    ) -> CmdStatusCode {
        let failed = CmdStatusCode::MO_NODE_PROCESSING_FAILED;
        let child_type = match via {
            Via::Mef => MoNodeType::MefClientRegCfg,
            Via::Maf => MoNodeType::MafClientRegCfg,
        };
        let Some(cfg) = tree
            .child_of_type(path, child_type)
            .and_then(|(_, n)| match n {
                MoNode::MefClientRegCfg(c) | MoNode::MafClientRegCfg(c) => Some(c.clone()),
                _ => None,
            })
        else {
            return failed;
        };
        // targetIDs from the parent MO node.
        let targets = match tree.parent(path).map(|(_, n)| n) {
            Some(MoNode::Registration(r)) => vec![r.registrar_cse_id.clone()],
            Some(MoNode::DataCollection(d)) => match cse_of_container_path(&d.container_path) {
                Some(c) => vec![c],
                None => return failed,
            },
            Some(MoNode::MafClientRegCfg(m)) if via == Via::Mef => vec![m.fqdn.clone()],
            _ => return failed,
        };
        let Some(duration) = profile.key_reg_duration else {
            return failed;
        };
        let request = KeyRegRequest {
            fqdn: cfg.fqdn.clone(),
            exp: format_timestamp(now + duration.to_delta()),
            lbl: profile.key_reg_labels.clone(),
            admin_fqdn: cfg.admin_fqdn.clone(),
            suid: profile.suid,
            tids: Some(targets),
            kv: None,
        };
        let result = match via {
            Via::Mef => exec.mef_key_registration(&cfg, &request),
            Via::Maf => exec.maf_key_registration(&cfg, &request),
        };
        let Ok(response) = result else {
            return failed;
        };
        // Step 10 verification.
        let exp_ok =
            parse_timestamp(&response.exp).is_some_and(|t| t >= super::types::whole_seconds(now));
        let ok = exp_ok
            && response.src_id == self.profile.client_id
            && response
                .admin_fqdn
                .eq_ignore_ascii_case(&request.admin_fqdn)
            && response.suid == request.suid
            && Some(&response.tids) == request.tids.as_ref();
        if !ok {
            return failed;
        }
        if let Some(p) = tree.auth_profile_mut(path) {
            p.key_registration = Some(response);
        }
        CmdStatusCode::OK
    }

    /// §8.3.9.9.8 `[MAFClientRegCfg]`: MAF Client Registration.
    fn maf_client_reg(
        &self,
        path: &str,
        tree: &mut MoTree,
        exec: &mut dyn CommandExecutor,
        now: DateTime<Utc>,
    ) -> CmdStatusCode {
        let failed = CmdStatusCode::MO_NODE_PROCESSING_FAILED;
        let Some(MoNode::MafClientRegCfg(cfg)) = tree.get(path).cloned() else {
            return failed;
        };
        let Some(exp) = cfg.expiration_time else {
            return failed;
        };
        let request = ClientRegRequest {
            fqdn: cfg.fqdn.clone(),
            exp: format_timestamp(exp),
            lbl: cfg.labels.clone(),
            admin_fqdn: cfg.admin_fqdn.clone(),
        };
        let Ok(response) = exec.maf_client_registration(&cfg, &request) else {
            return failed;
        };
        let exp_ok =
            parse_timestamp(&response.exp).is_some_and(|t| t >= super::types::whole_seconds(now));
        let ok = exp_ok
            && response.client_id == self.profile.client_id
            && response
                .admin_fqdn
                .eq_ignore_ascii_case(&request.admin_fqdn);
        if !ok {
            return failed;
        }
        if let Some(MoNode::MafClientRegCfg(c)) = tree.get_mut(path) {
            c.registration = Some(response);
        }
        CmdStatusCode::OK
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Mef,
    Maf,
}

/// §8.3.9.9.7 `[trustAnchorCred]`.
fn trust_anchor(path: &str, tree: &mut MoTree, exec: &mut dyn CommandExecutor) -> CmdStatusCode {
    let failed = CmdStatusCode::MO_NODE_PROCESSING_FAILED;
    let Some(MoNode::TrustAnchorCred(ta)) = tree.get(path).cloned() else {
        return failed;
    };
    // Step 1: a local copy matching certFingerprint is associated.
    if exec.has_trust_anchor(&ta.cert_fingerprint) {
        if let Some(MoNode::TrustAnchorCred(t)) = tree.get_mut(path) {
            t.associated = true;
        }
        return CmdStatusCode::OK;
    }
    // Step 2: HTTPS GET of URI.
    let Some(uri) = ta.uri.as_deref() else {
        return failed;
    };
    let Ok(payload) = exec.https_get(uri) else {
        return failed;
    };
    // Step 3: the payload must be a certificate matching certFingerprint.
    if !exec.certificate_matches(&payload, &ta.cert_fingerprint) {
        return failed;
    }
    if let Some(MoNode::TrustAnchorCred(t)) = tree.get_mut(path) {
        t.certificate = Some(payload);
        t.associated = true;
    }
    CmdStatusCode::OK
}

// ---------------------------------------------------------------------------------------------
// The SUID consistency table of §8.3.9.9.2 step 4

/// One requirement of the SUID / MO-tree consistency check (TS-0003 §8.3.9.9.2 step 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuidRequirement {
    /// The parent MO node is of this type.
    ParentIs(MoNodeType),
    /// A child MO node of this type exists.
    HasChild(MoNodeType),
    /// `symmKeyID` is present.
    SymmKeyId,
    /// `keyRegDuration` (`MAFKeyRegDuration`) is present.
    KeyRegDuration,
    /// `TLSCiphersuites` is present and includes a mandatory suite of §10.2.2.
    PskCiphersuites,
    /// `TLSCiphersuites` is present and includes a mandatory suite of §10.2.3.
    CertCiphersuites,
    /// `myCertFingerprint` is present.
    MyCertFingerprint,
    /// At least one `[trustAnchorCred]` child (the text says "fails if it has one or more",
    /// inverted by digest §B.26).
    TrustAnchorChild,
}

/// One row of the consistency table: a set of SUIDs and a requirement that applies to them.
#[derive(Clone, Copy, Debug)]
pub struct SuidRule {
    /// The SUIDs the row applies to.
    pub suids: &'static [u16],
    /// What the row requires.
    pub requirement: SuidRequirement,
}

/// TS-0003 §8.3.9.9.2 step 4, transcribed row by row.
pub const SUID_CONSISTENCY: &[SuidRule] = &[
    SuidRule {
        suids: &[11, 21, 31, 41],
        requirement: SuidRequirement::ParentIs(MoNodeType::MafClientRegCfg),
    },
    SuidRule {
        suids: &[12, 22, 32, 42],
        requirement: SuidRequirement::ParentIs(MoNodeType::Registration),
    },
    SuidRule {
        suids: &[13, 23, 33, 43],
        requirement: SuidRequirement::ParentIs(MoNodeType::DataCollection),
    },
    SuidRule {
        suids: &[11, 12, 13],
        requirement: SuidRequirement::SymmKeyId,
    },
    SuidRule {
        suids: &[21, 22, 23],
        requirement: SuidRequirement::KeyRegDuration,
    },
    SuidRule {
        suids: &[21, 22, 23],
        requirement: SuidRequirement::HasChild(MoNodeType::MefClientRegCfg),
    },
    SuidRule {
        suids: &[31, 32, 33],
        requirement: SuidRequirement::KeyRegDuration,
    },
    SuidRule {
        suids: &[31, 32, 33],
        requirement: SuidRequirement::HasChild(MoNodeType::MafClientRegCfg),
    },
    SuidRule {
        suids: &[11, 12, 21, 22, 31, 32],
        requirement: SuidRequirement::PskCiphersuites,
    },
    SuidRule {
        suids: &[41, 42, 43],
        requirement: SuidRequirement::MyCertFingerprint,
    },
    SuidRule {
        suids: &[41, 42, 43],
        requirement: SuidRequirement::CertCiphersuites,
    },
    SuidRule {
        suids: &[41, 42, 43],
        requirement: SuidRequirement::TrustAnchorChild,
    },
];

/// SUIDs an `[authenticationProfile]` MO_NODE command can process. Others (10, 14, 15, 24,
/// 25, 34, 35, 40, 44, 45) and 31 (not defined by TS-0004) are INCONSISTENT_CONFIG
/// (digest §B.29).
pub const MO_NODE_SUIDS: &[u16] = &[11, 12, 13, 21, 22, 23, 32, 33, 41, 42, 43];

/// Why an `[authenticationProfile]` is inconsistent with its SUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// No `[authenticationProfile]` at the path.
    #[error("no [authenticationProfile] at the path")]
    NotAProfile,
    /// The SUID cannot be processed by an MO_NODE command.
    #[error("SUID {0} cannot be processed")]
    UnsupportedSuid(Suid),
    /// A requirement of the table is not met.
    #[error("requirement {0:?} not met")]
    Unmet(SuidRequirement),
}

/// Checks the `[authenticationProfile]` at `path` against [`SUID_CONSISTENCY`].
pub fn check_suid_consistency(tree: &MoTree, path: &str) -> Result<(), Inconsistency> {
    let profile = tree.auth_profile(path).ok_or(Inconsistency::NotAProfile)?;
    let suid = profile.suid;
    if !MO_NODE_SUIDS.contains(&suid.0) {
        return Err(Inconsistency::UnsupportedSuid(suid));
    }
    for rule in SUID_CONSISTENCY
        .iter()
        .filter(|r| r.suids.contains(&suid.0))
    {
        let met = match rule.requirement {
            SuidRequirement::ParentIs(t) => {
                tree.parent(path).is_some_and(|(_, n)| n.node_type() == t)
            }
            SuidRequirement::HasChild(t) => tree.child_of_type(path, t).is_some(),
            SuidRequirement::SymmKeyId => profile.symm_key_id.is_some(),
            SuidRequirement::KeyRegDuration => profile.key_reg_duration.is_some(),
            SuidRequirement::PskCiphersuites => {
                includes_any(&profile.tls_ciphersuites, &PSK_MANDATORY_SUITES)
            }
            SuidRequirement::CertCiphersuites => {
                includes_any(&profile.tls_ciphersuites, &CERT_MANDATORY_SUITES)
            }
            SuidRequirement::MyCertFingerprint => profile.my_cert_fingerprint.is_some(),
            SuidRequirement::TrustAnchorChild => tree
                .child_of_type(path, MoNodeType::TrustAnchorCred)
                .is_some(),
        };
        if !met {
            return Err(Inconsistency::Unmet(rule.requirement));
        }
    }
    Ok(())
}

/// "includes the mandatory DTLS or TLS Ciphersuites": at least one of the two (a TLS-only
/// device need not list the DTLS suite).
fn includes_any(suites: &Option<Vec<u16>>, mandatory: &[u16]) -> bool {
    suites
        .as_ref()
        .is_some_and(|s| s.iter().any(|c| mandatory.contains(c)))
}

// ---------------------------------------------------------------------------------------------
// The MO tree

/// The MO node types the commands refer to (TS-0022 `<mgmtObj>` specializations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MoNodeType {
    /// `[authenticationProfile]`.
    AuthenticationProfile,
    /// `[trustAnchorCred]`.
    TrustAnchorCred,
    /// `[MAFClientRegCfg]`.
    MafClientRegCfg,
    /// `[MEFClientRegCfg]`.
    MefClientRegCfg,
    /// `[registration]`.
    Registration,
    /// `[dataCollection]`.
    DataCollection,
}

impl MoNodeType {
    /// The TS-0004 mgmtDefinition value (digest §8).
    pub fn mgmt_definition(self) -> u16 {
        match self {
            MoNodeType::Registration => 1020,
            MoNodeType::DataCollection => 1021,
            MoNodeType::AuthenticationProfile => 1022,
            MoNodeType::TrustAnchorCred => 1024,
            MoNodeType::MafClientRegCfg => 1025,
            MoNodeType::MefClientRegCfg => 1026,
        }
    }

    /// The sec:objectTypeID of types an MO_NODE command can address.
    pub fn object_type_id(self) -> Option<ObjectTypeId> {
        match self {
            MoNodeType::AuthenticationProfile => Some(ObjectTypeId::AUTHENTICATION_PROFILE),
            MoNodeType::TrustAnchorCred => Some(ObjectTypeId::TRUST_ANCHOR_CRED),
            MoNodeType::MafClientRegCfg => Some(ObjectTypeId::MAF_CLIENT_REG_CFG),
            _ => None,
        }
    }
}

/// `[authenticationProfile]` (TS-0022; attributes used by TS-0003 §8.3.8, §8.3.9.9.2).
#[derive(Clone, Debug, Default)]
pub struct AuthenticationProfile {
    /// `SUID`.
    pub suid: Suid,
    /// `symmKeyID`.
    pub symm_key_id: Option<String>,
    /// `symmKeyValue` (never set by a MEF, §8.3.8).
    pub symm_key_value: Option<SecretKey>,
    /// `MAFKeyRegDuration` (TS-0022) = `keyRegDuration` (§8.3.9.9.x), digest §B.25.
    pub key_reg_duration: Option<XsDuration>,
    /// `MAFKeyRegLabels` = `keyRegLabels`.
    pub key_reg_labels: Option<Vec<String>>,
    /// `TLSCiphersuites`: IANA code points.
    pub tls_ciphersuites: Option<Vec<u16>>,
    /// `myCertFingerprint`.
    pub my_cert_fingerprint: Option<String>,
    /// Result of §8.3.9.9.4/§8.3.9.9.5: the verified Key Registration response.
    pub key_registration: Option<KeyRegResponse>,
    /// Result of §8.3.9.9.6: the certificate and key are associated.
    pub certificate_associated: bool,
}

/// `[trustAnchorCred]` (TS-0022; §8.3.9.9.7).
#[derive(Clone, Debug, Default)]
pub struct TrustAnchorCred {
    /// `certFingerprint`.
    pub cert_fingerprint: String,
    /// `URI`: where to GET the certificate.
    pub uri: Option<String>,
    /// Result: a fetched certificate.
    pub certificate: Option<Vec<u8>>,
    /// Result: a certificate is associated with the node.
    pub associated: bool,
}

/// `[MEFClientRegCfg]` / `[MAFClientRegCfg]`: sec:clientRegCfg (TS-0003 §12.4.2).
#[derive(Clone, Debug, Default)]
pub struct ClientRegCfg {
    /// `expirationTime`.
    pub expiration_time: Option<DateTime<Utc>>,
    /// `labels`.
    pub labels: Option<Vec<String>>,
    /// `fqdn`: MEF-FQDN or MAF-FQDN.
    pub fqdn: String,
    /// `adminFQDN`.
    pub admin_fqdn: String,
    /// `httpPort` (u16, digest §B.24).
    pub http_port: Option<u16>,
    /// `coapPort`.
    pub coap_port: Option<u16>,
    /// `websocketPort`.
    pub websocket_port: Option<u16>,
    /// Result of §8.3.9.9.8: the verified MAF Client Registration response.
    pub registration: Option<ClientRegResponse>,
}

/// `[registration]` (TS-0022): where the node registers.
#[derive(Clone, Debug, Default)]
pub struct RegistrationMo {
    /// The CSE-ID of the Registrar CSE.
    pub registrar_cse_id: String,
}

/// `[dataCollection]` (TS-0022): where collected data goes.
#[derive(Clone, Debug, Default)]
pub struct DataCollectionMo {
    /// `containerPath`: the container's address; its CSE-ID is the key target.
    pub container_path: String,
}

/// One MO node.
#[derive(Clone, Debug)]
pub enum MoNode {
    /// `[authenticationProfile]`.
    AuthenticationProfile(AuthenticationProfile),
    /// `[trustAnchorCred]`.
    TrustAnchorCred(TrustAnchorCred),
    /// `[MAFClientRegCfg]`.
    MafClientRegCfg(ClientRegCfg),
    /// `[MEFClientRegCfg]`.
    MefClientRegCfg(ClientRegCfg),
    /// `[registration]`.
    Registration(RegistrationMo),
    /// `[dataCollection]`.
    DataCollection(DataCollectionMo),
}

impl MoNode {
    /// The node's type.
    pub fn node_type(&self) -> MoNodeType {
        match self {
            MoNode::AuthenticationProfile(_) => MoNodeType::AuthenticationProfile,
            MoNode::TrustAnchorCred(_) => MoNodeType::TrustAnchorCred,
            MoNode::MafClientRegCfg(_) => MoNodeType::MafClientRegCfg,
            MoNode::MefClientRegCfg(_) => MoNodeType::MefClientRegCfg,
            MoNode::Registration(_) => MoNodeType::Registration,
            MoNode::DataCollection(_) => MoNodeType::DataCollection,
        }
    }
}

/// An in-memory device-management tree: nodes addressed by `/`-separated paths; a node's
/// parent is the node at its path without the last segment.
#[derive(Clone, Debug, Default)]
pub struct MoTree {
    nodes: BTreeMap<String, MoNode>,
}

fn normalize(path: &str) -> &str {
    let p = path.trim_end_matches('/');
    if p.is_empty() { path } else { p }
}

impl MoTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a node at `path`, returning the one it replaces.
    pub fn insert(&mut self, path: &str, node: MoNode) -> Option<MoNode> {
        self.nodes.insert(normalize(path).to_string(), node)
    }

    /// Removes the node at `path`.
    pub fn remove(&mut self, path: &str) -> Option<MoNode> {
        self.nodes.remove(normalize(path))
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&MoNode> {
        self.nodes.get(normalize(path))
    }

    /// The node at `path`, mutable.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut MoNode> {
        self.nodes.get_mut(normalize(path))
    }

    /// The `[authenticationProfile]` at `path`.
    pub fn auth_profile(&self, path: &str) -> Option<&AuthenticationProfile> {
        match self.get(path)? {
            MoNode::AuthenticationProfile(p) => Some(p),
            _ => None,
        }
    }

    /// The `[authenticationProfile]` at `path`, mutable.
    pub fn auth_profile_mut(&mut self, path: &str) -> Option<&mut AuthenticationProfile> {
        match self.get_mut(path)? {
            MoNode::AuthenticationProfile(p) => Some(p),
            _ => None,
        }
    }

    /// The parent node of `path`.
    pub fn parent(&self, path: &str) -> Option<(&str, &MoNode)> {
        let (parent, _) = normalize(path).rsplit_once('/')?;
        self.nodes
            .get_key_value(parent)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The direct children of `path`.
    pub fn children<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a str, &'a MoNode)> + 'a {
        let prefix = format!("{}/", normalize(path));
        let bound = prefix.clone();
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&bound))
            .filter_map(move |(k, v)| {
                let rest = k.get(prefix.len()..)?;
                (!rest.is_empty() && !rest.contains('/')).then_some((k.as_str(), v))
            })
    }

    /// The first direct child of `path` of type `ty`.
    pub fn child_of_type(&self, path: &str, ty: MoNodeType) -> Option<(&str, &MoNode)> {
        self.children(path).find(|(_, n)| n.node_type() == ty)
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax helpers

/// Whether the host of `uri` (`scheme://[userinfo@]host[:port]/...`) is the FQDN `fqdn`.
pub fn uri_names(uri: &str, fqdn: &Fqdn) -> bool {
    uri_host(uri)
        .and_then(|h| Fqdn::parse(h).ok())
        .is_some_and(|h| &h == fqdn)
}

fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return None;
    }
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => host_port,
    };
    (!host.is_empty()).then_some(host)
}

fn plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= super::MAX_ID_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// m2m:nodeID: a non-empty identifier without `/` (e.g. an OID `0.2.481.1.100.3030.10011`).
pub fn is_node_id(s: &str) -> bool {
    plain_id(s) && !s.contains('/')
}

/// A CSE-ID: SP-relative `/cse` or absolute `//sp/cse`.
pub fn is_cse_id(s: &str) -> bool {
    if !plain_id(s) {
        return false;
    }
    let segments: Vec<&str> = if let Some(abs) = s.strip_prefix("//") {
        abs.split('/').collect()
    } else if let Some(rel) = s.strip_prefix('/') {
        std::iter::once("").chain(rel.split('/')).collect()
    } else {
        return false;
    };
    match segments.as_slice() {
        [sp, cse] => (s.starts_with("//") && !sp.is_empty() || sp.is_empty()) && !cse.is_empty(),
        _ => false,
    }
}

/// An AE-ID: a `C`/`S` stem, `/cse/Cxxx`, `//sp/cse/Cxxx` or `//sp/Sxxx`.
pub fn is_ae_id(s: &str) -> bool {
    if !plain_id(s) {
        return false;
    }
    let stem = |a: &str| a.len() > 1 && (a.starts_with('C') || a.starts_with('S'));
    if let Some(abs) = s.strip_prefix("//") {
        let parts: Vec<&str> = abs.split('/').collect();
        return match parts.as_slice() {
            [sp, ae] => !sp.is_empty() && ae.starts_with('S') && stem(ae),
            [sp, cse, ae] => !sp.is_empty() && !cse.is_empty() && stem(ae),
            _ => false,
        };
    }
    if let Some(rel) = s.strip_prefix('/') {
        return match rel.split_once('/') {
            Some((cse, ae)) => !cse.is_empty() && !ae.contains('/') && stem(ae),
            None => false,
        };
    }
    stem(s)
}

/// The CSE-ID of a `containerPath`: `//sp/cse/...` ⇒ `//sp/cse`, `/cse/...` ⇒ `/cse`.
pub fn cse_of_container_path(path: &str) -> Option<String> {
    if let Some(abs) = path.strip_prefix("//") {
        let mut it = abs.split('/');
        let sp = it.next().filter(|s| !s.is_empty())?;
        let cse = it.next().filter(|s| !s.is_empty())?;
        return Some(format!("//{sp}/{cse}"));
    }
    let rel = path.strip_prefix('/')?;
    let cse = rel.split('/').next().filter(|s| !s.is_empty())?;
    Some(format!("/{cse}"))
}
