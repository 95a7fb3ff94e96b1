//! The device side of the MEF procedures over a MEF session: TS-0003 §8.3.5.2.3-§8.3.5.2.10
//! (Client Registration, Configuration Retrieval, Registration Update, De-Registration, Key
//! Registration, Key Retrieval, Key Registration Update, Key De-Registration) and the MEF
//! Client Command loop of §8.3.9.2-§8.3.9.3 with certificate provisioning (§8.3.9.7) by EST on
//! the same session (§8.3.6.2).
//!
//! Every procedure is one request on a [`MefConnection`] in the project JSON mapping
//! (`docs/mef.md`, [`crate::procedures`]); step 1 of each, the MEF Handshake, is the TLS session
//! the connection runs on. A refusal comes back as [`SessionError::Refused`] with the Response
//! Status Code and the MEF's `m2m:dbg`.
//!
//! A Key Registration without Key Value makes the MEF store the RFC 5705 export
//! `EXPORTER-oneM2M-Connection` of the session (§8.3.5.2.7 step 5). The device computes the same
//! bytes from its end of the TLS session, which it must do before the stream is handed to
//! HTTP: [`MefSession`] opens the session, exports ([`ConnectionExport`]) and then starts
//! HTTP/1.1.
//!
//! The same procedures at a MAF (TS-0003 §8.8.2.3-§8.8.2.10) are the `maf_*` functions
//! ([`maf_register`], …): paths `maf/reg…` and `maf/keys…`, members `sec:mafClientReg` and
//! `sec:mafClientCfg`, and the `assignedSymmKeyID` of a remotely provisioned client
//! ([`ClientRegistration::assigned_symm_key_id`]). The TLS session is then the MAF Handshake
//! (§8.8.2.2) or the remotely provisioned one (§8.8.2.3 step 1a); the connection type is the
//! same.
//!
//! [`run_commands`] drives the pure [`CommandRunner`]: the runner decides, this module performs
//! the network actions its decision needs (see [`SessionExecutor`]).

use std::fmt;

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use m2mtrust_channel::{LABEL_CONNECTION, TlsStream, TrustAnchors, export_keying_material};
use m2mtrust_crypto::kdf::split_exporter_output;
use m2mtrust_crypto::{CertProfile, Fqdn, SecretKey};
use m2mtrust_model::{Response, ResponseStatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::client::{EnrolError, EnrolledCertificate, MefConnection};
use crate::enrolee::{EnroleeCredential, bootstrap};
use crate::error::BootstrapError;
use crate::est;
use crate::procedures::client::{
    CertProvFailure, ClientRegCfg, CommandExecutor, CommandRunner, DevCfgFailure, MoTree, Outcome,
    ProcessingFailure,
};
use crate::procedures::messages::{
    ClientRegRequest, ClientRegResponse, ClientRegUpdate, KEY_CLIENT_CMD, KEY_CMD_UPDATE,
    KEY_KEY_REG, KeyRegRequest, KeyRegResponse, KeyRegUpdate, KeyRetrieveResponse,
    MafClientRegResponse,
};
use crate::procedures::types::{
    CertProvArgs, CertProvProtocolId, CertSubjectType, CmdClassId, CmdUpdate, DevMgmtId, Suid,
    XsDuration, format_timestamp, parse_timestamp,
};
use crate::procedures::{Role, command_path};

/// Most commands one [`run_commands`] call processes before it gives up on a MEF that never
/// says NO_MORE_COMMANDS.
pub const MAX_COMMANDS_PER_RUN: usize = 64;

/// Characters of a record identifier sent as a path segment unescaped (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a MEF (or MAF) procedure failed on the device side.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The MEF Handshake failed.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The TLS key export `EXPORTER-oneM2M-Connection` failed.
    #[error("TLS key export failed: {0}")]
    Export(String),
    /// The HTTP exchange on the session failed.
    #[error(transparent)]
    Connection(#[from] EnrolError),
    /// The MEF (MAF) answered with an error Response Status Code; nothing was changed
    /// (`docs/mef.md`).
    #[error("the {procedure} was refused: {rsc:?}: {dbg}")]
    Refused {
        /// The procedure refused.
        procedure: &'static str,
        /// The Response Status Code.
        rsc: ResponseStatusCode,
        /// The MEF's `m2m:dbg` (empty when it sent none).
        dbg: String,
    },
    /// The MEF's (MAF's) answer does not follow the protocol.
    #[error("unexpected answer to the {procedure}: {detail}")]
    Protocol {
        /// The procedure.
        procedure: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl SessionError {
    /// The Response Status Code of a refusal.
    pub fn rsc(&self) -> Option<ResponseStatusCode> {
        match self {
            Self::Refused { rsc, .. } => Some(*rsc),
            _ => None,
        }
    }

    /// The MEF's `m2m:dbg` of a refusal.
    pub fn dbg(&self) -> Option<&str> {
        match self {
            Self::Refused { dbg, .. } => Some(dbg),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The session

/// The device's copy of the RFC 5705 export with label `EXPORTER-oneM2M-Connection` (48 bytes,
/// no context) of its MEF session, split as in §10.3.1: the RelativeKeyID bytes (0..16) and the
/// key (16..48). It is the Key Value the MEF stores for a Key Registration without one
/// (§8.3.5.2.7 step 5, digest §B.4).
pub struct ConnectionExport {
    relative_key_id: [u8; 16],
    key: SecretKey,
}

impl fmt::Debug for ConnectionExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionExport")
            .field("relative_key_id", &self.relative_key_id_hex())
            .field("key", &self.key)
            .finish()
    }
}

impl ConnectionExport {
    /// Runs the export on an established MEF session. Call it before the stream is handed to
    /// [`MefConnection::open`], which takes the stream.
    pub fn from_stream(stream: &TlsStream) -> Result<Self, SessionError> {
        let km = export_keying_material(stream.ssl(), LABEL_CONNECTION)
            .map_err(|e| SessionError::Export(e.to_string()))?;
        let (relative_key_id, key) = split_exporter_output(km.expose_secret());
        Ok(Self {
            relative_key_id,
            key,
        })
    }

    /// The RelativeKeyID the MEF prefers for the exported key: upper-case hexBinary of bytes
    /// 0..16 (§8.3.5.2.7 step 6, digest §B.5, §B.7).
    pub fn relative_key_id_hex(&self) -> String {
        self.relative_key_id
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// The key, bytes 16..48.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
}

/// An authenticated MEF session of a MEF Client: the HTTP/1.1 connection and the session's
/// `EXPORTER-oneM2M-Connection` export, taken before HTTP started.
pub struct MefSession {
    conn: MefConnection,
    export: ConnectionExport,
    mef: Fqdn,
}

impl fmt::Debug for MefSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MefSession")
            .field("mef", &self.mef)
            .finish_non_exhaustive()
    }
}

impl MefSession {
    /// Runs the MEF Handshake (§8.3.5.2.2) with the MEF named `mef_name` over `tcp` and opens
    /// the session. `mef_trust` verifies the MEF's certificate; a PSK client ignores it.
    pub async fn connect(
        tcp: tokio::net::TcpStream,
        mef_name: &str,
        credential: EnroleeCredential,
        mef_trust: Option<TrustAnchors>,
    ) -> Result<Self, SessionError> {
        let mef = Fqdn::parse(mef_name)
            .map_err(|_| BootstrapError::InvalidMefName(mef_name.chars().take(64).collect()))?;
        let (stream, _) = bootstrap(tcp, mef.as_str(), credential, mef_trust).await?;
        Self::open(stream, &mef).await
    }

    /// Opens a session on an established TLS stream to the MEF `mef`: exports the connection
    /// key, then starts HTTP/1.1.
    pub async fn open(stream: TlsStream, mef: &Fqdn) -> Result<Self, SessionError> {
        let export = ConnectionExport::from_stream(&stream)?;
        let conn = MefConnection::open(stream, mef.as_str()).await?;
        Ok(Self {
            conn,
            export,
            mef: mef.clone(),
        })
    }

    /// The HTTP connection, for the procedure functions of this module.
    pub fn connection(&mut self) -> &mut MefConnection {
        &mut self.conn
    }

    /// The session's connection export.
    pub fn export(&self) -> &ConnectionExport {
        &self.export
    }

    /// The MEF's FQDN.
    pub fn mef_fqdn(&self) -> &Fqdn {
        &self.mef
    }

    /// The connection and the export at once (a keyless Key Registration needs both).
    pub fn parts(&mut self) -> (&mut MefConnection, &ConnectionExport) {
        (&mut self.conn, &self.export)
    }
}

// ---------------------------------------------------------------------------------------------
// Client registration

/// What a MEF Client asks for in a Client Registration (Table 8.3.5.2.3-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRequest {
    /// The administrating stakeholder.
    pub admin_fqdn: Fqdn,
    /// The proposed expirationTime; the MEF may shorten it.
    pub expiration: DateTime<Utc>,
    /// Labels.
    pub labels: Option<Vec<String>>,
}

/// A MEF Client Registration as the MEF granted it (Table 8.3.5.2.3-2), or a MAF Client
/// Registration as the MAF granted it (Table 8.8.2.3-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistration {
    /// MEFClientRegID (mafClientRegID).
    pub id: String,
    /// The expirationTime the MEF (MAF) granted.
    pub expiration: DateTime<Utc>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// The client ID the MEF (MAF) authenticated (`mefClientID`, `mafClientID`).
    pub client_id: String,
    /// The administrating stakeholder.
    pub admin_fqdn: Fqdn,
    /// Paths of command resources with commands waiting (§8.3.4.6 trigger); empty when none,
    /// always at a MAF.
    pub commands: Vec<String>,
    /// MAF only: `assignedSymmKeyID`, the KmID the client uses as its Master Credential ID
    /// hereafter (§8.8.2.3 step 5); present when it registered with a remotely provisioned
    /// credential. Always `None` at a MEF.
    pub assigned_symm_key_id: Option<String>,
}

/// The changes of a Client Registration Update (Tables 8.3.5.2.5-1/-2): in a request what to
/// change (at least one), in the answer the values the MEF granted for exactly those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationChanges {
    /// expirationTime.
    pub expiration: Option<DateTime<Utc>>,
    /// Labels.
    pub labels: Option<Vec<String>>,
}

/// TS-0003 §8.3.5.2.3 MEF Client Registration.
pub async fn register(
    conn: &mut MefConnection,
    mef: &Fqdn,
    request: &RegistrationRequest,
) -> Result<ClientRegistration, SessionError> {
    register_in(Role::Mef, conn, mef, request).await
}

/// TS-0003 §8.8.2.3 MAF Client Registration at the MAF `maf`. On a session authenticated with
/// a remotely provisioned credential (step 1a) the answer carries the KmID to use hereafter
/// ([`ClientRegistration::assigned_symm_key_id`]).
pub async fn maf_register(
    conn: &mut MefConnection,
    maf: &Fqdn,
    request: &RegistrationRequest,
) -> Result<ClientRegistration, SessionError> {
    register_in(Role::Maf, conn, maf, request).await
}

async fn register_in(
    role: Role,
    conn: &mut MefConnection,
    fqdn: &Fqdn,
    request: &RegistrationRequest,
) -> Result<ClientRegistration, SessionError> {
    let p = name(role, "MEF Client Registration", "MAF Client Registration");
    // Step 2: the request (Table 8.3.5.2.3-1, Table 8.8.2.3-1).
    let body = ClientRegRequest {
        fqdn: fqdn.as_str().to_owned(),
        exp: format_timestamp(request.expiration),
        lbl: request.labels.clone(),
        admin_fqdn: request.admin_fqdn.as_str().to_owned(),
    };
    let key = role.client_reg_key();
    let resp = conn
        .send(
            Method::POST,
            &format!("/{}/reg", role.path_prefix()),
            Some(&wrap(p, key, &body)?),
        )
        .await?;
    // Step 4: the response (Table 8.3.5.2.3-2, Table 8.8.2.3-2).
    let content = expect(p, &resp, ResponseStatusCode::CREATED)?;
    let (r, assigned_symm_key_id) = match role {
        Role::Mef => (unwrap_body::<ClientRegResponse>(p, content, key)?, None),
        Role::Maf => {
            let m: MafClientRegResponse = unwrap_body(p, content, key)?;
            let common = ClientRegResponse {
                ri: m.ri,
                exp: m.exp,
                lbl: m.lbl,
                client_id: m.maf_client_id,
                admin_fqdn: m.admin_fqdn,
                ch: None,
            };
            // Step 5: "If assignedSymmKeyID is present, the client uses it as Master
            // Credential ID (KmID) hereafter".
            if m.assigned_symm_key_id.as_deref() == Some("") {
                return Err(protocol(p, "empty assignedSymmKeyID".into()));
            }
            (common, m.assigned_symm_key_id)
        }
    };
    let admin_fqdn =
        Fqdn::parse(&r.admin_fqdn).map_err(|e| protocol(p, format!("adminFQDN: {e}")))?;
    if admin_fqdn != request.admin_fqdn {
        return Err(protocol(
            p,
            format!(
                "registered for {admin_fqdn}, requested {}",
                request.admin_fqdn
            ),
        ));
    }
    if r.ri.is_empty() {
        return Err(protocol(p, "empty registration ID".into()));
    }
    Ok(ClientRegistration {
        expiration: timestamp(p, &r.exp)?,
        id: r.ri,
        labels: r.lbl,
        client_id: r.client_id,
        admin_fqdn,
        commands: r.ch.unwrap_or_default(),
        assigned_symm_key_id,
    })
}

/// TS-0003 §8.3.5.2.4 MEF Client Configuration Retrieval: the MEFClientCfg of the
/// registration's administrating stakeholder. Its content is the stakeholder's (the project
/// mapping does not fix a schema), so it is returned as JSON.
pub async fn retrieve_configuration(
    conn: &mut MefConnection,
    reg_id: &str,
) -> Result<Value, SessionError> {
    retrieve_configuration_in(Role::Mef, conn, reg_id).await
}

/// TS-0003 §8.8.2.4 MAF Client Configuration Retrieval: the mafClientCfg, as JSON.
pub async fn maf_retrieve_configuration(
    conn: &mut MefConnection,
    reg_id: &str,
) -> Result<Value, SessionError> {
    retrieve_configuration_in(Role::Maf, conn, reg_id).await
}

async fn retrieve_configuration_in(
    role: Role,
    conn: &mut MefConnection,
    reg_id: &str,
) -> Result<Value, SessionError> {
    let p = name(
        role,
        "MEF Client Configuration Retrieval",
        "MAF Client Configuration Retrieval",
    );
    let resp = conn
        .send(Method::GET, &reg_path(role, reg_id), None)
        .await?;
    let content = expect(p, &resp, ResponseStatusCode::OK)?;
    let key = role.client_cfg_key();
    content
        .and_then(|c| c.get(key))
        .cloned()
        .ok_or_else(|| protocol(p, format!("no {key}")))
}

/// TS-0003 §8.3.5.2.5 MEF Client Registration Update.
pub async fn update_registration(
    conn: &mut MefConnection,
    mef: &Fqdn,
    reg_id: &str,
    changes: &RegistrationChanges,
) -> Result<RegistrationChanges, SessionError> {
    update_registration_in(Role::Mef, conn, mef, reg_id, changes).await
}

/// TS-0003 §8.8.2.5 MAF Client Registration Update.
pub async fn maf_update_registration(
    conn: &mut MefConnection,
    maf: &Fqdn,
    reg_id: &str,
    changes: &RegistrationChanges,
) -> Result<RegistrationChanges, SessionError> {
    update_registration_in(Role::Maf, conn, maf, reg_id, changes).await
}

async fn update_registration_in(
    role: Role,
    conn: &mut MefConnection,
    fqdn: &Fqdn,
    reg_id: &str,
    changes: &RegistrationChanges,
) -> Result<RegistrationChanges, SessionError> {
    let p = name(
        role,
        "MEF Client Registration Update",
        "MAF Client Registration Update",
    );
    let body = ClientRegUpdate {
        fqdn: Some(fqdn.as_str().to_owned()),
        exp: changes.expiration.map(format_timestamp),
        lbl: changes.labels.clone(),
    };
    let key = role.client_reg_key();
    let resp = conn
        .send(
            Method::PUT,
            &reg_path(role, reg_id),
            Some(&wrap(p, key, &body)?),
        )
        .await?;
    let content = expect(p, &resp, ResponseStatusCode::UPDATED)?;
    let r: ClientRegUpdate = unwrap_body(p, content, key)?;
    Ok(RegistrationChanges {
        expiration: r.exp.as_deref().map(|e| timestamp(p, e)).transpose()?,
        labels: r.lbl,
    })
}

/// TS-0003 §8.3.5.2.6 MEF Client De-Registration.
pub async fn deregister(conn: &mut MefConnection, reg_id: &str) -> Result<(), SessionError> {
    deregister_in(Role::Mef, conn, reg_id).await
}

/// TS-0003 §8.8.2.6 MAF Client De-Registration.
pub async fn maf_deregister(conn: &mut MefConnection, reg_id: &str) -> Result<(), SessionError> {
    deregister_in(Role::Maf, conn, reg_id).await
}

async fn deregister_in(
    role: Role,
    conn: &mut MefConnection,
    reg_id: &str,
) -> Result<(), SessionError> {
    let p = name(
        role,
        "MEF Client De-Registration",
        "MAF Client De-Registration",
    );
    let resp = conn
        .send(Method::DELETE, &reg_path(role, reg_id), None)
        .await?;
    expect(p, &resp, ResponseStatusCode::DELETED)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Key registration

/// What a Source MEF Client registers (Table 8.3.5.2.7-1 without the Key Value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRegistrationRequest {
    /// The administrating stakeholder (the client needs a registration for it).
    pub admin_fqdn: Fqdn,
    /// The proposed expirationTime.
    pub expiration: DateTime<Utc>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// The key's security usage (21-25 at a MEF, 32-35 at a MAF).
    pub suid: Suid,
    /// targetIDs: who may retrieve the key.
    pub target_ids: Vec<String>,
}

/// Where the Key Value of a Key Registration comes from (§8.3.5.2.7 step 5).
#[derive(Clone, Copy, Debug)]
pub enum KeyValue<'a> {
    /// The source chose the key; it travels in the request.
    Supplied(&'a SecretKey),
    /// No Key Value in the request: both ends use the session's connection export.
    Exported(&'a ConnectionExport),
}

/// A registered key (Table 8.3.5.2.7-2) and the key itself, which the MEF never sends back:
/// the supplied key, or the device's own copy of the exported one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredKey {
    /// RelativeKeyID.
    pub relative_key_id: String,
    /// Key Identifier `RelativeKeyID@MEF-FQDN`.
    pub key_id: String,
    /// The expirationTime the MEF granted.
    pub expiration: DateTime<Utc>,
    /// The Source MEF Client ID.
    pub source_id: String,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// The administrating stakeholder.
    pub admin_fqdn: String,
    /// The SUID.
    pub suid: Suid,
    /// targetIDs.
    pub target_ids: Vec<String>,
    /// The Key Value.
    pub key: SecretKey,
}

/// A key as a Target MEF Client retrieved it (Table 8.3.5.2.8-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievedKey {
    /// RelativeKeyID.
    pub relative_key_id: String,
    /// Key Identifier.
    pub key_id: String,
    /// expirationTime.
    pub expiration: DateTime<Utc>,
    /// The Source MEF Client ID.
    pub source_id: String,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// The administrating stakeholder.
    pub admin_fqdn: String,
    /// The SUID.
    pub suid: Suid,
    /// The Key Value.
    pub key: SecretKey,
}

/// The changes of a Key Registration Update (Tables 8.3.5.2.9-1/-2): in a request what to
/// change (at least one), in the answer the values the MEF granted for exactly those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// expirationTime.
    pub expiration: Option<DateTime<Utc>>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// targetIDs.
    pub target_ids: Option<Vec<String>>,
}

/// TS-0003 §8.3.5.2.7 MEF Key Registration. With [`KeyValue::Exported`] the request carries no
/// Key Value and the returned key is the device's own export, the same bytes the MEF stored.
pub async fn register_key(
    conn: &mut MefConnection,
    mef: &Fqdn,
    request: &KeyRegistrationRequest,
    value: KeyValue<'_>,
) -> Result<RegisteredKey, SessionError> {
    register_key_in(Role::Mef, conn, mef, request, value).await
}

/// TS-0003 §8.8.2.7 MAF Key Registration (SUIDs 32-35) at the MAF `maf`; the Key Identifier
/// is `RelativeKeyID@MAF-FQDN` (step 12).
pub async fn maf_register_key(
    conn: &mut MefConnection,
    maf: &Fqdn,
    request: &KeyRegistrationRequest,
    value: KeyValue<'_>,
) -> Result<RegisteredKey, SessionError> {
    register_key_in(Role::Maf, conn, maf, request, value).await
}

async fn register_key_in(
    role: Role,
    conn: &mut MefConnection,
    mef: &Fqdn,
    request: &KeyRegistrationRequest,
    value: KeyValue<'_>,
) -> Result<RegisteredKey, SessionError> {
    let p = name(role, "MEF Key Registration", "MAF Key Registration");
    let (kv, key) = match value {
        KeyValue::Supplied(k) => (Some(k.clone()), k.clone()),
        KeyValue::Exported(export) => (None, export.key().clone()),
    };
    // Step 4: the request (Table 8.3.5.2.7-1).
    let body = KeyRegRequest {
        fqdn: mef.as_str().to_owned(),
        exp: format_timestamp(request.expiration),
        lbl: request.labels.clone(),
        admin_fqdn: request.admin_fqdn.as_str().to_owned(),
        suid: request.suid,
        tids: Some(request.target_ids.clone()),
        kv,
    };
    let resp = conn
        .send(
            Method::POST,
            &format!("/{}/keys", role.path_prefix()),
            Some(&wrap(p, KEY_KEY_REG, &body)?),
        )
        .await?;
    // Step 7: the response (Table 8.3.5.2.7-2; at a MAF step 10, Table 8.8.2.7-2).
    let content = expect(p, &resp, ResponseStatusCode::CREATED)?;
    let r: KeyRegResponse = unwrap_body(p, content, KEY_KEY_REG)?;
    check_key_id(p, &r.rki, &r.kid, mef)?;
    if r.suid != request.suid {
        return Err(protocol(
            p,
            format!("registered {:?}, requested {:?}", r.suid, request.suid),
        ));
    }
    Ok(RegisteredKey {
        expiration: timestamp(p, &r.exp)?,
        relative_key_id: r.rki,
        key_id: r.kid,
        source_id: r.src_id,
        labels: r.lbl,
        admin_fqdn: r.admin_fqdn,
        suid: r.suid,
        target_ids: r.tids,
        key,
    })
}

/// TS-0003 §8.3.5.2.8 MEF Key Retrieval by a Target MEF Client; `rki` is the RelativeKeyID or
/// the Key Identifier.
pub async fn retrieve_key(
    conn: &mut MefConnection,
    mef: &Fqdn,
    rki: &str,
) -> Result<RetrievedKey, SessionError> {
    retrieve_key_in(Role::Mef, conn, mef, rki).await
}

/// TS-0003 §8.8.2.8 MAF Key Retrieval by a Target MAF Client; `rki` is the RelativeKeyID or
/// the Key Identifier. The caller checks that the SUID fits its intended use (digest §6.8).
pub async fn maf_retrieve_key(
    conn: &mut MefConnection,
    maf: &Fqdn,
    rki: &str,
) -> Result<RetrievedKey, SessionError> {
    retrieve_key_in(Role::Maf, conn, maf, rki).await
}

async fn retrieve_key_in(
    role: Role,
    conn: &mut MefConnection,
    mef: &Fqdn,
    rki: &str,
) -> Result<RetrievedKey, SessionError> {
    let p = name(role, "MEF Key Retrieval", "MAF Key Retrieval");
    let resp = conn.send(Method::GET, &key_path(role, rki), None).await?;
    let content = expect(p, &resp, ResponseStatusCode::OK)?;
    let r: KeyRetrieveResponse = unwrap_body(p, content, KEY_KEY_REG)?;
    check_key_id(p, &r.rki, &r.kid, mef)?;
    Ok(RetrievedKey {
        expiration: timestamp(p, &r.exp)?,
        relative_key_id: r.rki,
        key_id: r.kid,
        source_id: r.src_id,
        labels: r.lbl,
        admin_fqdn: r.admin_fqdn,
        suid: r.suid,
        key: r.kv,
    })
}

/// TS-0003 §8.3.5.2.9 MEF Key Registration Update by the Source MEF Client.
pub async fn update_key(
    conn: &mut MefConnection,
    mef: &Fqdn,
    rki: &str,
    changes: &KeyChanges,
) -> Result<KeyChanges, SessionError> {
    update_key_in(Role::Mef, conn, mef, rki, changes).await
}

/// TS-0003 §8.8.2.9 MAF Key Registration Update by the Source MAF Client.
pub async fn maf_update_key(
    conn: &mut MefConnection,
    maf: &Fqdn,
    rki: &str,
    changes: &KeyChanges,
) -> Result<KeyChanges, SessionError> {
    update_key_in(Role::Maf, conn, maf, rki, changes).await
}

async fn update_key_in(
    role: Role,
    conn: &mut MefConnection,
    mef: &Fqdn,
    rki: &str,
    changes: &KeyChanges,
) -> Result<KeyChanges, SessionError> {
    let p = name(
        role,
        "MEF Key Registration Update",
        "MAF Key Registration Update",
    );
    let body = KeyRegUpdate {
        fqdn: Some(mef.as_str().to_owned()),
        exp: changes.expiration.map(format_timestamp),
        lbl: changes.labels.clone(),
        tids: changes.target_ids.clone(),
    };
    let resp = conn
        .send(
            Method::PUT,
            &key_path(role, rki),
            Some(&wrap(p, KEY_KEY_REG, &body)?),
        )
        .await?;
    let content = expect(p, &resp, ResponseStatusCode::UPDATED)?;
    let r: KeyRegUpdate = unwrap_body(p, content, KEY_KEY_REG)?;
    Ok(KeyChanges {
        expiration: r.exp.as_deref().map(|e| timestamp(p, e)).transpose()?,
        labels: r.lbl,
        target_ids: r.tids,
    })
}

/// TS-0003 §8.3.5.2.10 MEF Key De-Registration by the Source MEF Client.
pub async fn deregister_key(conn: &mut MefConnection, rki: &str) -> Result<(), SessionError> {
    deregister_key_in(Role::Mef, conn, rki).await
}

/// TS-0003 §8.8.2.10 MAF Key De-Registration by the Source MAF Client.
pub async fn maf_deregister_key(conn: &mut MefConnection, rki: &str) -> Result<(), SessionError> {
    deregister_key_in(Role::Maf, conn, rki).await
}

async fn deregister_key_in(
    role: Role,
    conn: &mut MefConnection,
    rki: &str,
) -> Result<(), SessionError> {
    let p = name(role, "MEF Key De-Registration", "MAF Key De-Registration");
    let resp = conn
        .send(Method::DELETE, &key_path(role, rki), None)
        .await?;
    expect(p, &resp, ResponseStatusCode::DELETED)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MEF Client Commands

/// TS-0003 §8.3.9.2 MEF Client Command Retrieve: the response body
/// (`{"sec:mefClientCmd": {...}}`) for [`CommandRunner::process`].
pub async fn retrieve_command(
    conn: &mut MefConnection,
    reg_id: &str,
) -> Result<Value, SessionError> {
    const P: &str = "MEF Client Command Retrieve";
    let resp = conn
        .send(
            Method::GET,
            &format!("/{}", command_path(&segment(reg_id))),
            None,
        )
        .await?;
    command_body(P, &resp, ResponseStatusCode::OK)
}

/// TS-0003 §8.3.9.3 MEF Client Command Update: reports a status and returns the next command's
/// response body.
pub async fn update_command(
    conn: &mut MefConnection,
    reg_id: &str,
    update: CmdUpdate,
) -> Result<Value, SessionError> {
    const P: &str = "MEF Client Command Update";
    let resp = conn
        .send(
            Method::PUT,
            &format!("/{}", command_path(&segment(reg_id))),
            Some(&wrap(P, KEY_CMD_UPDATE, &update)?),
        )
        .await?;
    command_body(P, &resp, ResponseStatusCode::UPDATED)
}

fn command_body(
    procedure: &'static str,
    resp: &Response,
    expected: ResponseStatusCode,
) -> Result<Value, SessionError> {
    Ok(expect(procedure, resp, expected)?
        .cloned()
        .unwrap_or(Value::Null))
}

/// Performs the MEF Client Commands of registration `reg_id` (TS-0003 §8.3.9.2-§8.3.9.3):
/// Command Retrieve, then parse-and-execute by `runner` and Command Update with its status,
/// until the MEF issues NO_MORE_COMMANDS; returns that command's retryDuration, after which
/// the client should retrieve again (§8.3.9.6).
///
/// The runner is synchronous and does no I/O; EST needs this session. Before the runner sees
/// a command, a dry run of the same decision (a scratch runner with the same profile; CERT_PROV
/// does not depend on the MO tree or the clock) says whether it will execute a CERT_PROV and
/// with which arguments. Only then does the loop run EST on `conn`; the runner then processes
/// the command for real and `executor` hands it the outcome. A command whose cmdID is that of
/// the most recent Command Update is never executed again (§8.3.9.2 step 4b).
///
/// A response that does not parse ends the procedure with [`SessionError::Protocol`] and no
/// Update (§8.3.9.2 step 4a allows exiting), as does a MEF that issues more than
/// [`MAX_COMMANDS_PER_RUN`] commands without NO_MORE_COMMANDS.
pub async fn run_commands<E: CommandExecutor>(
    conn: &mut MefConnection,
    reg_id: &str,
    runner: &mut CommandRunner,
    tree: &mut MoTree,
    executor: &mut SessionExecutor<E>,
) -> Result<XsDuration, SessionError> {
    const P: &str = "MEF Client Command";
    // §8.3.9.2 step 1: Command Retrieve.
    let mut body = retrieve_command(conn, reg_id).await?;
    for _ in 0..MAX_COMMANDS_PER_RUN {
        if let Some(args) = planned_cert_prov(runner, &body) {
            // §8.3.9.7 step 5 on this session (the URI's host is the MEF, step 4).
            let result = est_cert_prov(conn, &args).await;
            executor.prepared = Some((args, result));
        }
        // §8.3.9.2 step 4: parse and execute.
        let outcome = runner.process(&body, tree, executor, Utc::now());
        executor.prepared = None;
        match outcome {
            // §8.3.9.3: the status, and the next command in the answer.
            Outcome::Update(update) => body = update_command(conn, reg_id, update).await?,
            Outcome::Retry { after, .. } => return Ok(after),
            Outcome::Unparsable(detail) => return Err(protocol(P, detail)),
        }
    }
    Err(protocol(
        P,
        format!("more than {MAX_COMMANDS_PER_RUN} commands without NO_MORE_COMMANDS"),
    ))
}

/// The CERT_PROV arguments `runner` will hand its executor for this command response, by a
/// dry run on a scratch runner; `None` when it will not execute a CERT_PROV.
fn planned_cert_prov(runner: &CommandRunner, body: &Value) -> Option<CertProvArgs> {
    let inner = body.get(KEY_CLIENT_CMD).unwrap_or(body);
    let cmd_id = inner.get("cmdID")?.as_u64()?;
    // §8.3.9.2 step 4b: the cmdID of the most recent Update is answered without execution.
    if runner.last_update().is_some_and(|u| u.cmd_id == cmd_id) {
        return None;
    }
    let class = inner.get("cmdDescription")?.get("cmdClassID")?.as_u64()?;
    if class != u64::from(CmdClassId::CERT_PROV.0) {
        return None;
    }
    let mut probe = Probe::default();
    let mut scratch = MoTree::new();
    CommandRunner::new(runner.profile().clone()).process(
        body,
        &mut scratch,
        &mut probe,
        Utc::now(),
    );
    probe.cert_prov
}

/// Records the CERT_PROV a dry run would execute; executes nothing.
#[derive(Default)]
struct Probe {
    cert_prov: Option<CertProvArgs>,
}

impl CommandExecutor for Probe {
    fn cert_prov(&mut self, args: &CertProvArgs) -> Result<(), CertProvFailure> {
        self.cert_prov = Some(args.clone());
        Err(CertProvFailure::Client)
    }
}

/// An executor that supports none of the external steps: every [`CommandExecutor`] default
/// refuses. For devices whose only command is CERT_PROV.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDeviceSupport;

impl CommandExecutor for NoDeviceSupport {}

/// The [`CommandExecutor`] of [`run_commands`]: CERT_PROV by EST on the MEF session, every
/// other external step by the device's own executor `inner`. Certificates obtained are kept
/// until the device takes them.
///
/// Outside [`run_commands`] its `cert_prov` performs nothing and reports a client error: the
/// network step is done by the loop, which hands the result in before the runner asks.
pub struct SessionExecutor<E> {
    inner: E,
    certificates: Vec<EnrolledCertificate>,
    prepared: Option<(CertProvArgs, Result<EnrolledCertificate, CertProvFailure>)>,
}

impl<E: fmt::Debug> fmt::Debug for SessionExecutor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionExecutor")
            .field("inner", &self.inner)
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl<E: CommandExecutor> SessionExecutor<E> {
    /// Wraps the device's executor.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            certificates: Vec::new(),
            prepared: None,
        }
    }

    /// The device's executor.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The device's executor, mutable.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// The certificates provisioned by CERT_PROV commands, oldest first.
    pub fn certificates(&self) -> &[EnrolledCertificate] {
        &self.certificates
    }

    /// Takes the provisioned certificates (to install them).
    pub fn take_certificates(&mut self) -> Vec<EnrolledCertificate> {
        std::mem::take(&mut self.certificates)
    }

    /// The device's executor and the certificates.
    pub fn into_parts(self) -> (E, Vec<EnrolledCertificate>) {
        (self.inner, self.certificates)
    }
}

impl<E: CommandExecutor> CommandExecutor for SessionExecutor<E> {
    fn cert_prov(&mut self, args: &CertProvArgs) -> Result<(), CertProvFailure> {
        match self.prepared.take() {
            Some((planned, result)) if planned == *args => {
                let cert = result?;
                self.certificates.push(cert);
                Ok(())
            }
            _ => Err(CertProvFailure::Client),
        }
    }

    fn dev_cfg(&mut self, dev_mgmt: DevMgmtId, server_uri: &str) -> Result<(), DevCfgFailure> {
        self.inner.dev_cfg(dev_mgmt, server_uri)
    }

    fn has_symmetric_key(&self, symm_key_id: &str) -> bool {
        self.inner.has_symmetric_key(symm_key_id)
    }

    fn has_certificate(&self, fingerprint: &str) -> bool {
        self.inner.has_certificate(fingerprint)
    }

    fn has_trust_anchor(&self, fingerprint: &str) -> bool {
        self.inner.has_trust_anchor(fingerprint)
    }

    fn https_get(&mut self, uri: &str) -> Result<Vec<u8>, ProcessingFailure> {
        self.inner.https_get(uri)
    }

    fn certificate_matches(&self, payload: &[u8], fingerprint: &str) -> bool {
        self.inner.certificate_matches(payload, fingerprint)
    }

    fn mef_key_registration(
        &mut self,
        mef: &ClientRegCfg,
        request: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        self.inner.mef_key_registration(mef, request)
    }

    fn maf_key_registration(
        &mut self,
        maf: &ClientRegCfg,
        request: &KeyRegRequest,
    ) -> Result<KeyRegResponse, ProcessingFailure> {
        self.inner.maf_key_registration(maf, request)
    }

    fn maf_client_registration(
        &mut self,
        maf: &ClientRegCfg,
        request: &ClientRegRequest,
    ) -> Result<ClientRegResponse, ProcessingFailure> {
        self.inner.maf_client_registration(maf, request)
    }
}

// ---------------------------------------------------------------------------------------------
// CERT_PROV by EST on the session

/// TS-0003 §8.3.9.7 step 5 with EST (§8.3.6.2.2 on the MEF session): `/cacerts`, `/csrattrs`,
/// a CSR from a fresh P-256 key for the commanded identity, `/simpleenroll`. Failures at or
/// towards the MEF are [`CertProvFailure::Server`], failures of the device
/// [`CertProvFailure::Client`]; the detail goes to the log.
async fn est_cert_prov(
    conn: &mut MefConnection,
    args: &CertProvArgs,
) -> Result<EnrolledCertificate, CertProvFailure> {
    let fail = |kind: CertProvFailure, detail: String| {
        tracing::warn!(
            subject = %args.subject_id,
            uri = %args.uri,
            failure = %kind,
            detail = %detail,
            "CERT_PROV by EST failed"
        );
        kind
    };
    use CertProvFailure::{Client, Server};
    if args.protocol != CertProvProtocolId::EST {
        return Err(fail(
            Client,
            format!("{:?} is not implemented", args.protocol),
        ));
    }
    let base = est_base_path(&args.uri)
        .ok_or_else(|| fail(Client, "the URI is not an https URI".to_owned()))?;
    let mut get = async |op: &str| -> Result<bytes::Bytes, CertProvFailure> {
        let (status, _, body) = conn
            .raw(Method::GET, &format!("{base}/{op}"), None, Vec::new())
            .await
            .map_err(|e| fail(Server, format!("{op}: {e}")))?;
        if status != StatusCode::OK {
            return Err(fail(Server, http_failure(op, status, &body)));
        }
        Ok(body)
    };
    // §8.3.6.2.2 steps a-b: the CA certificates.
    let body = get("cacerts").await?;
    let ca_der = est::parse_certs_only(&body).map_err(|e| fail(Server, format!("cacerts: {e}")))?;
    // Steps d-e: what the MEF wants in the CSR, and the identity it certifies.
    let body = get("csrattrs").await?;
    let attrs = est::parse_csrattrs(&body).map_err(|e| fail(Server, format!("csrattrs: {e}")))?;
    let profile = csr_profile(args, &attrs).map_err(|(kind, detail)| fail(kind, detail))?;
    // Steps f-g: a fresh key and the CSR.
    let (csr, key_pem) = est::generate_csr(&profile, attrs.challenge_password.as_deref())
        .map_err(|e| fail(Client, format!("CSR: {e}")))?;
    // Steps h-j: enrolment.
    let (status, _, body) = conn
        .raw(
            Method::POST,
            &format!("{base}/simpleenroll"),
            Some("application/pkcs10"),
            csr.into_bytes(),
        )
        .await
        .map_err(|e| fail(Server, format!("simpleenroll: {e}")))?;
    if status != StatusCode::OK {
        return Err(fail(Server, http_failure("simpleenroll", status, &body)));
    }
    let certs =
        est::parse_certs_only(&body).map_err(|e| fail(Server, format!("simpleenroll: {e}")))?;
    check_issued(&certs, &profile, &key_pem).map_err(|detail| fail(Server, detail))?;
    let chain_pem = ders_to_pem(&certs).map_err(|detail| fail(Server, detail))?;
    let ca_pem = ders_to_pem(&ca_der).map_err(|detail| fail(Server, detail))?;
    tracing::info!(
        target: "audit",
        event = "cert_prov",
        subject = %args.subject_id,
        subject_type = ?args.subject_type,
        "certificate provisioned by EST"
    );
    Ok(EnrolledCertificate {
        chain_pem,
        key_pem,
        ca_pem,
    })
}

/// The path of the EST base URI (`https://host[:port]/path`), default `/.well-known/est`. The
/// host was checked against the MEF's FQDN by the runner; the port is not compared, the session
/// already reaches that MEF.
fn est_base_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("https://")?;
    let path = rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    Some(if path.is_empty() {
        "/.well-known/est".to_owned()
    } else {
        path.to_owned()
    })
}

/// The certificate profile of the CSR: the commanded certSubjectType and certSubjectID, which
/// must be exactly the identity the MEF asks for in `/csrattrs` (§8.3.6.2.2 step e).
fn csr_profile(
    args: &CertProvArgs,
    attrs: &est::CsrAttrs,
) -> Result<CertProfile, (CertProvFailure, String)> {
    use m2mtrust_crypto::pki::{San, parse_ae_id_uri};
    let server = |d: String| (CertProvFailure::Server, d);
    let id = args.subject_id.as_str();
    let profile = match (args.subject_type, attrs.subject_alt_names.as_slice()) {
        (CertSubjectType::AE_ID, [San::Uri(uri)]) => {
            let parsed =
                parse_ae_id_uri(uri).map_err(|e| server(format!("csrattrs AE-ID {uri}: {e}")))?;
            // The stem is the last segment of any AE-ID form.
            let stem = id.rsplit('/').next().unwrap_or(id);
            if stem != parsed.ae_id {
                return Err(server(format!("the command names {id}, csrattrs {uri}")));
            }
            CertProfile::AeId {
                ae_id: parsed.ae_id,
                cse_id: parsed.cse_id.unwrap_or_default(),
                sp_domain: parsed.sp_domain,
            }
        }
        (CertSubjectType::CSE_ID, [San::Dns(dns)]) => {
            let bare = id.rsplit('/').next().unwrap_or(id);
            let rest = dns
                .strip_prefix(bare)
                .and_then(|r| r.strip_prefix('.'))
                .ok_or_else(|| server(format!("the command names {id}, csrattrs {dns}")))?;
            // `<cse>.<in-cse>.<sp>` for a CSE other than the IN-CSE, `<in-cse>.<sp>` for it.
            let (in_cse, sp) = match rest.split_once('.') {
                Some((in_cse, sp)) if sp.contains('.') => (format!("/{in_cse}"), sp.to_owned()),
                _ => (format!("/{bare}"), rest.to_owned()),
            };
            CertProfile::CseId {
                cse_id: format!("/{bare}"),
                in_cse_id: in_cse,
                sp_domain: sp,
            }
        }
        (CertSubjectType::NODE_ID, _) => {
            return Err((
                CertProvFailure::Client,
                "Node-ID certificates are not implemented".to_owned(),
            ));
        }
        (t, sans) => {
            return Err(server(format!(
                "csrattrs asks for {sans:?}, the command for a {t:?} certificate"
            )));
        }
    };
    // The profile must reproduce exactly what the MEF asked for.
    let sans = profile
        .subject_alt_names()
        .map_err(|e| (CertProvFailure::Client, e.to_string()))?;
    if sans != attrs.subject_alt_names {
        return Err(server(format!(
            "csrattrs asks for {:?}, the command's identity gives {sans:?}",
            attrs.subject_alt_names
        )));
    }
    Ok(profile)
}

/// The issued certificate (first of the response) carries the requested identity and the
/// public key of the device's new key.
fn check_issued(
    certs: &[Vec<u8>],
    profile: &CertProfile,
    key_pem: &m2mtrust_crypto::PrivateKeyPem,
) -> Result<(), String> {
    use m2mtrust_crypto::pki::{San, certificate_identity_der};
    let leaf = certs.first().ok_or("no certificate issued")?;
    let id = certificate_identity_der(leaf).map_err(|e| format!("issued certificate: {e}"))?;
    let wanted = profile.subject_alt_names().map_err(|e| e.to_string())?;
    let present = wanted.iter().all(|san| match san {
        San::Dns(d) => id.dns.iter().any(|x| x.eq_ignore_ascii_case(d)),
        San::Uri(u) => id.uris.contains(u),
        San::Ip(ip) => id.ips.contains(ip),
        San::Other(_) => false,
    });
    if !present {
        return Err(format!(
            "the issued certificate names {:?} {:?}, requested {wanted:?}",
            id.dns, id.uris
        ));
    }
    let cert = openssl::x509::X509::from_der(leaf).map_err(|e| e.to_string())?;
    let public = cert.public_key().map_err(|e| e.to_string())?;
    let private = openssl::pkey::PKey::private_key_from_pem(key_pem.expose_pem().as_bytes())
        .map_err(|e| e.to_string())?;
    if !public.public_eq(&private) {
        return Err("the issued certificate is not for the device's key".to_owned());
    }
    Ok(())
}

pub(crate) fn ders_to_pem(ders: &[Vec<u8>]) -> Result<String, String> {
    let mut out = String::new();
    for der in ders {
        let cert = openssl::x509::X509::from_der(der).map_err(|e| e.to_string())?;
        let pem = cert.to_pem().map_err(|e| e.to_string())?;
        out.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(out)
}

fn http_failure(op: &str, status: StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect();
    format!("{op}: HTTP {status}: {text}")
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A record identifier as one path segment.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// The procedure's name at the function `role`, for errors.
fn name(role: Role, mef: &'static str, maf: &'static str) -> &'static str {
    match role {
        Role::Mef => mef,
        Role::Maf => maf,
    }
}

/// `/mef/reg/<id>` or `/maf/reg/<id>`.
fn reg_path(role: Role, reg_id: &str) -> String {
    format!("/{}/reg/{}", role.path_prefix(), segment(reg_id))
}

/// `/mef/keys/<rki>` or `/maf/keys/<rki>`.
fn key_path(role: Role, rki: &str) -> String {
    format!("/{}/keys/{}", role.path_prefix(), segment(rki))
}

fn protocol(procedure: &'static str, detail: String) -> SessionError {
    SessionError::Protocol { procedure, detail }
}

/// The content of a response with the `expected` code; an error code is a refusal.
fn expect<'a>(
    procedure: &'static str,
    resp: &'a Response,
    expected: ResponseStatusCode,
) -> Result<Option<&'a Value>, SessionError> {
    if resp.status == expected {
        return Ok(resp.content.as_ref());
    }
    if resp.status.is_success() {
        return Err(protocol(
            procedure,
            format!("expected {expected:?}, got {:?}", resp.status),
        ));
    }
    Err(SessionError::Refused {
        procedure,
        rsc: resp.status,
        dbg: resp.debug_message().unwrap_or_default().to_owned(),
    })
}

/// `{"<key>": <body>}`.
fn wrap<T: Serialize>(procedure: &'static str, key: &str, body: &T) -> Result<Value, SessionError> {
    let v = serde_json::to_value(body).map_err(|e| protocol(procedure, e.to_string()))?;
    let mut map = Map::new();
    map.insert(key.to_owned(), v);
    Ok(Value::Object(map))
}

/// The `T` inside `{"<key>": ...}`.
fn unwrap_body<T: DeserializeOwned>(
    procedure: &'static str,
    content: Option<&Value>,
    key: &str,
) -> Result<T, SessionError> {
    let inner = content
        .and_then(|c| c.get(key))
        .ok_or_else(|| protocol(procedure, format!("no {key}")))?;
    T::deserialize(inner).map_err(|e| protocol(procedure, format!("{key}: {e}")))
}

fn timestamp(procedure: &'static str, s: &str) -> Result<DateTime<Utc>, SessionError> {
    parse_timestamp(s)
        .ok_or_else(|| protocol(procedure, format!("exp {s:?} is not an m2m:timestamp")))
}

/// Key Identifier = `RelativeKeyID@MEF-FQDN` (`@MAF-FQDN` at a MAF; §10.3.5, digest §B.6).
fn check_key_id(
    procedure: &'static str,
    rki: &str,
    kid: &str,
    mef: &Fqdn,
) -> Result<(), SessionError> {
    let ok = kid
        .split_once('@')
        .is_some_and(|(r, f)| r == rki && Fqdn::parse(f).is_ok_and(|f| &f == mef));
    if ok {
        Ok(())
    } else {
        Err(protocol(
            procedure,
            format!("Key Identifier {kid} is not {rki}@{mef}"),
        ))
    }
}
