//! MEF procedures (TS-0003 §8.3.5.2.3-§8.3.5.2.10) and MEF Client Commands (§8.3.9).
//!
//! [`Procedures::handle`] is the MEF side: it receives one [`MefRequest`] on a connection whose
//! MEF Handshake (§8.3.5.2.2, step 1 of every procedure) produced a [`Session`], and answers
//! with a [`Response`]. Who the client is comes only from the session (digest §B.14). The
//! project JSON mapping (TS-0032 is not available, digest §B.34):
//!
//! | Procedure | Request |
//! |---|---|
//! | Client Registration §8.3.5.2.3 | `POST mef/reg` `{"sec:mefClientReg": {...}}` |
//! | Client Configuration Retrieval §8.3.5.2.4 | `GET mef/reg/<MEFClientRegID>` |
//! | Client Registration Update §8.3.5.2.5 | `PUT mef/reg/<MEFClientRegID>` |
//! | Client De-Registration §8.3.5.2.6 | `DELETE mef/reg/<MEFClientRegID>` |
//! | Key Registration §8.3.5.2.7 | `POST mef/keys` `{"sec:keyReg": {...}}` |
//! | Key Retrieval §8.3.5.2.8 | `GET mef/keys/<RelativeKeyID>` |
//! | Key Registration Update §8.3.5.2.9 | `PUT mef/keys/<RelativeKeyID>` |
//! | Key De-Registration §8.3.5.2.10 | `DELETE mef/keys/<RelativeKeyID>` |
//! | Command Retrieve §8.3.9.2 | `GET mef/reg/<MEFClientRegID>/cmd` |
//! | Command Update §8.3.9.3 | `PUT mef/reg/<MEFClientRegID>/cmd` `{"sec:cmdUpd": {...}}` |
//!
//! The M2M Authentication Function runs the same engine ([`Procedures::maf`], [`Role::Maf`]):
//! its procedures (TS-0003 §8.8.2.3-§8.8.2.10) are the MEF's without commands, under `maf/reg`
//! and `maf/keys`, with the members `sec:mafClientReg` and `sec:mafClientCfg` (`sec:keyReg` is
//! shared), the MAF-distributed SUIDs 32-35, and a KmID (`assignedSymmKeyID`) for clients that
//! register with a remotely provisioned credential ([`KmAssigner`], §8.8.2.3 steps 1a and 5).
//!
//! Each procedure runs in one registry transaction; an error response changes nothing, except
//! that a record found expired is purged. Access decisions are audit events (target `audit`).
//!
//! [`client`] is the device side of the commands: the parse-and-execute state machine of
//! §8.3.9.2 step 4 and the class processes of §8.3.9.6-§8.3.9.9.

pub mod client;
pub mod messages;
pub mod registry;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use m2mtrust_crypto::Fqdn;
use m2mtrust_model::types::Operation;
use m2mtrust_model::{Response, ResponseStatusCode};
use rand::Rng as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::wire::{MefRequest, Session};
use messages::{
    ClientRegRequest, ClientRegResponse, ClientRegUpdate, KEY_CLIENT_CFG, KEY_CLIENT_CMD,
    KEY_CLIENT_REG, KEY_CMD_UPDATE, KEY_KEY_REG, KEY_MAF_CLIENT_CFG, KEY_MAF_CLIENT_REG,
    KeyRegRequest, KeyRegResponse, KeyRegUpdate, KeyRetrieveResponse, MafClientRegResponse,
};
pub use registry::{
    CommandReport, CommandState, IssuedCommand, KeyRegistration, MemoryRegistry, Registration,
    Registry, RegistryError, RegistryTx, SqliteRegistry,
};
use types::{
    CmdArgs, CmdDescription, CmdStatusCode, CmdUpdate, KeyUsage, MefClientCmd, Suid, XsDuration,
    format_timestamp, parse_timestamp, whole_seconds,
};

/// Smallest and largest Key Value a source may supply, in bytes.
pub const KEY_VALUE_LEN: std::ops::RangeInclusive<usize> = 16..=64;
/// Most labels accepted in one record.
pub const MAX_LABELS: usize = 32;
/// Longest label, target ID or path identifier accepted.
pub const MAX_ID_LEN: usize = 512;

/// Why a MEF or MAF procedure failed. [`ResponseStatusCode::from`] picks the wire code.
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    /// The request body is missing, is not the expected JSON, or a value is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request names another MEF (MAF) in its MEF-FQDN (MAF-FQDN).
    #[error("request addressed to {requested:?}, this is {ours}")]
    WrongMef {
        /// The MEF-FQDN (MAF-FQDN) in the request.
        requested: String,
        /// This function's FQDN.
        ours: String,
    },
    /// No procedure at this path.
    #[error("no resource at {0:?}")]
    UnknownPath(String),
    /// The path exists but not for this operation.
    #[error("operation {op:?} not allowed on {path:?}")]
    OperationNotAllowed {
        /// The operation.
        op: Operation,
        /// The path.
        path: String,
    },
    /// No registration with this MEFClientRegID (mafClientRegID).
    #[error("unknown client registration {0}")]
    UnknownRegistration(String),
    /// The registration expired (it is purged).
    #[error("client registration {0} expired")]
    RegistrationExpired(String),
    /// No key registration with this RelativeKeyID.
    #[error("unknown key registration {0}")]
    UnknownKey(String),
    /// The key registration expired (it is purged).
    #[error("key registration {0} expired")]
    KeyExpired(String),
    /// The authenticated client did not create the record.
    #[error("{client} does not own {what}")]
    NotOwner {
        /// The authenticated MEF Client ID.
        client: String,
        /// The record.
        what: String,
    },
    /// The authenticated client is not among the key's targetIDs (§8.3.5.2.8).
    #[error("{client} is not a target of key {rki}")]
    NotTarget {
        /// The authenticated MEF Client ID.
        client: String,
        /// The RelativeKeyID.
        rki: String,
    },
    /// The adminFQDN is not an administrating stakeholder this MEF (MAF) serves.
    #[error("administrating stakeholder {0} is not known here")]
    UnknownAdmin(String),
    /// The administrating stakeholder does not authorize this update (§8.3.5.2.5, §8.3.5.2.9).
    #[error("administrating stakeholder {0} does not authorize updates")]
    UpdateNotAuthorized(String),
    /// Key Registration pre-condition: no MEF (MAF) Client Registration for the adminFQDN.
    #[error("{client} has no client registration for {admin}")]
    NotRegistered {
        /// The authenticated MEF Client ID.
        client: String,
        /// The adminFQDN of the key registration.
        admin: String,
    },
    /// The client already holds a live registration for this administrating stakeholder.
    #[error("{client} already has client registration {id} for {admin}")]
    AlreadyRegistered {
        /// The authenticated MEF Client ID.
        client: String,
        /// The adminFQDN.
        admin: String,
        /// The existing MEFClientRegID.
        id: String,
    },
    /// No MEF (MAF) Client Configuration is associated with the registration (§8.3.5.2.4,
    /// §8.8.2.4).
    #[error("no client configuration for administrating stakeholder {0}")]
    NoConfiguration(String),
    /// A MAF Client Registration on a session authenticated with a remotely provisioned
    /// credential (§8.8.2.3 step 1a), at a MAF that has no [`KmAssigner`] to give it a KmID.
    #[error(
        "this MAF does not assign KmIDs to remotely provisioned clients (KeID {0}): \
         register with a pre-provisioned credential or a certificate"
    )]
    NoKmAssigner(String),
    /// The [`KmAssigner`] could not confirm the remotely provisioned credential, e.g. the MEF
    /// answered `/fetchCredentials` with `status` false (§8.3.2.1, Table 8.3.2.1-6).
    #[error("the remotely provisioned credential {key_id} was refused: {reason}")]
    RemoteCredentialRefused {
        /// The KeID the client authenticated with.
        key_id: String,
        /// Why, as far as the peer may know.
        reason: String,
    },
    /// A Key Registration without Key Value on a session without TLS key export.
    #[error("no Key Value in the request and no TLS key export on this session")]
    NoKeyMaterial,
    /// No unused identifier could be drawn.
    #[error("could not draw an unused identifier")]
    IdExhausted,
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<&ProcedureError> for ResponseStatusCode {
    fn from(e: &ProcedureError) -> Self {
        use ProcedureError as E;
        match e {
            E::BadRequest(_) | E::WrongMef { .. } | E::NoKeyMaterial => Self::BAD_REQUEST,
            E::UnknownPath(_)
            | E::UnknownRegistration(_)
            | E::RegistrationExpired(_)
            | E::UnknownKey(_)
            | E::KeyExpired(_)
            | E::NoConfiguration(_) => Self::NOT_FOUND,
            E::OperationNotAllowed { .. } => Self::OPERATION_NOT_ALLOWED,
            E::NotOwner { .. }
            | E::NotTarget { .. }
            | E::UnknownAdmin(_)
            | E::UpdateNotAuthorized(_)
            | E::RemoteCredentialRefused { .. } => Self::ORIGINATOR_HAS_NO_PRIVILEGE,
            // The request is well-formed and the client may register; this MAF does not offer
            // remote provisioning. 5001 is not 5000, so the reason reaches the client.
            E::NoKmAssigner(_) => Self::NOT_IMPLEMENTED,
            E::NotRegistered { .. } => Self::ORIGINATOR_HAS_NOT_REGISTERED,
            E::AlreadyRegistered { .. } => Self::ORIGINATOR_HAS_ALREADY_REGISTERED,
            E::IdExhausted | E::Registry(_) => Self::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What one administrating stakeholder instructs the MEF to do ("based on instruction from
/// the administrating stakeholder", §8.3.5.2.3-§8.3.5.2.9).
#[derive(Clone, Debug, Default)]
pub struct AdminPolicy {
    /// The MEFClientCfg returned by Configuration Retrieval (§8.3.5.2.4); `None` ⇒ error.
    pub client_config: Option<Value>,
    /// Commands queued for every new registration of this stakeholder (§8.3.9).
    pub initial_commands: Vec<CmdDescription>,
    /// Whether clients may update their registrations and key registrations.
    pub allow_updates: bool,
}

/// The MEF's procedure policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Longest registration lifetime granted; a later proposed expirationTime is shortened.
    pub max_registration_lifetime: TimeDelta,
    /// Longest key registration lifetime granted.
    pub max_key_lifetime: TimeDelta,
    /// retryDuration of NO_MORE_COMMANDS (§8.3.9.6).
    pub retry_duration: XsDuration,
    /// The administrating stakeholders this MEF serves. Registration for any other adminFQDN
    /// is refused.
    pub admins: HashMap<Fqdn, AdminPolicy>,
}

impl Default for Policy {
    /// One-day registrations and keys, retry after one hour, no stakeholders.
    fn default() -> Self {
        Self {
            max_registration_lifetime: TimeDelta::days(1),
            max_key_lifetime: TimeDelta::days(1),
            retry_duration: XsDuration::from_secs(3600),
            admins: HashMap::new(),
        }
    }
}

impl Policy {
    /// Adds an administrating stakeholder.
    pub fn with_admin(mut self, admin: Fqdn, policy: AdminPolicy) -> Self {
        self.admins.insert(admin, policy);
        self
    }
}

/// Which trust function's procedures a [`Procedures`] engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The M2M Enrolment Function: TS-0003 §8.3.5.2.3-§8.3.5.2.10 and the commands of §8.3.9,
    /// under `mef/…`; key SUIDs 21-25.
    Mef,
    /// The M2M Authentication Function: TS-0003 §8.8.2.3-§8.8.2.10 (no commands), under
    /// `maf/…`; key SUIDs 32-35.
    Maf,
}

impl Role {
    /// The first path segment of the function's resources: `mef` or `maf`.
    pub fn path_prefix(self) -> &'static str {
        match self {
            Self::Mef => "mef",
            Self::Maf => "maf",
        }
    }

    /// The JSON member of Client Registration and Registration Update bodies.
    pub fn client_reg_key(self) -> &'static str {
        match self {
            Self::Mef => KEY_CLIENT_REG,
            Self::Maf => KEY_MAF_CLIENT_REG,
        }
    }

    /// The JSON member of the Client Configuration Retrieval response.
    pub fn client_cfg_key(self) -> &'static str {
        match self {
            Self::Mef => KEY_CLIENT_CFG,
            Self::Maf => KEY_MAF_CLIENT_CFG,
        }
    }

    /// The usage of a key a Source Client may register under `suid` at this function
    /// ([`Suid::mef_key_usage`], [`Suid::maf_key_usage`]); `None` ⇒ refused.
    pub fn key_usage(self, suid: Suid) -> Option<KeyUsage> {
        match self {
            Self::Mef => suid.mef_key_usage(),
            Self::Maf => suid.maf_key_usage(),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mef => "MEF",
            Self::Maf => "MAF",
        })
    }
}

/// Assigns the KmID of a MAF Client that registers with a remotely provisioned credential
/// (TS-0003 §8.8.2.3 step 1a: the client offered its KeID, the MAF fetched the key from the
/// MEF with SUID 21; step 5: the response's `assignedSymmKeyID` is the client's Master
/// Credential ID hereafter). The implementation provisions the Km/KmID pair for later MAF
/// Handshakes (§8.8.2.2) and returns the KmID.
///
/// It is called inside the registry transaction of the registration, after every check has
/// passed: an error refuses the registration and nothing is stored. (If the registry then
/// fails to commit, the KmID was assigned for a registration that does not exist; the client
/// sees 5000 and registers again.) It holds the registry while it runs, so it should not wait
/// long.
pub trait KmAssigner: Send + Sync {
    /// The KmID for the client of `session` (whose [`Session::remote_key_id`] is set), for the
    /// registration `reg_id` that expires at `expires`. Refusals that the client may learn
    /// about are [`ProcedureError::RemoteCredentialRefused`]; internal failures
    /// [`ProcedureError::Registry`] (answered 5000 without detail).
    fn assign(
        &self,
        session: &Session,
        reg_id: &str,
        expires: DateTime<Utc>,
    ) -> Result<String, ProcedureError>;
}

/// The MEF (or MAF) procedures over a [`Registry`].
pub struct Procedures {
    role: Role,
    mef_fqdn: Fqdn,
    registry: Arc<dyn Registry>,
    policy: Policy,
    km_assigner: Option<Arc<dyn KmAssigner>>,
}

impl std::fmt::Debug for Procedures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Procedures")
            .field("role", &self.role)
            .field("fqdn", &self.mef_fqdn)
            .field("km_assigner", &self.km_assigner.is_some())
            .finish_non_exhaustive()
    }
}

/// Path of the command resource of a registration.
pub fn command_path(reg_id: &str) -> String {
    format!("mef/reg/{reg_id}/cmd")
}

impl Procedures {
    /// Procedures of the MEF `mef_fqdn` ([`Role::Mef`]).
    pub fn new(mef_fqdn: Fqdn, registry: Arc<dyn Registry>, policy: Policy) -> Self {
        Self::with_role(Role::Mef, mef_fqdn, registry, policy)
    }

    /// Procedures of the MAF `maf_fqdn` ([`Role::Maf`], TS-0003 §8.8.2). Without
    /// [`Self::with_km_assigner`] it refuses registrations of remotely provisioned clients.
    pub fn maf(maf_fqdn: Fqdn, registry: Arc<dyn Registry>, policy: Policy) -> Self {
        Self::with_role(Role::Maf, maf_fqdn, registry, policy)
    }

    /// Procedures of the function `role` named `fqdn`.
    pub fn with_role(role: Role, fqdn: Fqdn, registry: Arc<dyn Registry>, policy: Policy) -> Self {
        Self {
            role,
            mef_fqdn: fqdn,
            registry,
            policy,
            km_assigner: None,
        }
    }

    /// Sets the hook that assigns KmIDs to MAF Clients registering with a remotely
    /// provisioned credential (§8.8.2.3 step 1a). A MEF never calls it.
    pub fn with_km_assigner(mut self, assigner: Arc<dyn KmAssigner>) -> Self {
        self.km_assigner = Some(assigner);
        self
    }

    /// Which function this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The function's FQDN (MEF-FQDN or MAF-FQDN).
    pub fn fqdn(&self) -> &Fqdn {
        &self.mef_fqdn
    }

    /// The MEF's FQDN (the MAF's, for [`Role::Maf`]); the same as [`Self::fqdn`].
    pub fn mef_fqdn(&self) -> &Fqdn {
        &self.mef_fqdn
    }

    /// Answers one request of an authenticated session at time `now`. The request ID is echoed.
    pub fn handle(&self, session: &Session, req: &MefRequest, now: DateTime<Utc>) -> Response {
        let now = whole_seconds(now);
        let mut resp = match self.dispatch(session, req, now) {
            Ok(r) => r,
            Err(e) => {
                self.after_error(&e, now);
                let status = ResponseStatusCode::from(&e);
                tracing::info!(
                    target: "audit",
                    function = %self.role,
                    client_id = %session.client_id,
                    credential_id = %session.credential_id,
                    op = ?req.op,
                    path = %req.path,
                    rsc = status.0,
                    error = %e,
                    "procedure refused"
                );
                if status == ResponseStatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(function = %self.role, error = %e, path = %req.path, "procedure failed");
                    Response::error(status, "internal error")
                } else {
                    Response::error(status, e.to_string())
                }
            }
        };
        resp.request_id = req.request_id.clone();
        resp
    }

    /// Queues a command for a registration (the operator's or MEF's decision, §8.3.9.2 step 2).
    /// NO_MORE_COMMANDS is not queued: the MEF issues it when the queue is empty.
    /// A MAF has no commands (§8.8.2): it refuses.
    pub fn queue_command(&self, reg_id: &str, cmd: CmdDescription) -> Result<(), ProcedureError> {
        if self.role == Role::Maf {
            return Err(ProcedureError::BadRequest(
                "a MAF has no client commands".into(),
            ));
        }
        if matches!(cmd.args, CmdArgs::NoMore { .. }) {
            return Err(ProcedureError::BadRequest(
                "NO_MORE_COMMANDS is issued when the queue is empty".into(),
            ));
        }
        self.registry.transact(&mut |tx| {
            if tx.registration(reg_id)?.is_none() {
                return Err(ProcedureError::UnknownRegistration(reg_id.to_string()));
            }
            let mut state = tx.commands(reg_id)?;
            state.queue.push_back(cmd.clone());
            tx.put_commands(reg_id, &state)?;
            Ok(())
        })
    }

    /// The command state of a registration: queue, current command and reports.
    pub fn command_state(&self, reg_id: &str) -> Result<CommandState, ProcedureError> {
        let mut out = None;
        self.registry.transact(&mut |tx| {
            if tx.registration(reg_id)?.is_none() {
                return Err(ProcedureError::UnknownRegistration(reg_id.to_string()));
            }
            out = Some(tx.commands(reg_id)?);
            Ok(())
        })?;
        out.ok_or(ProcedureError::IdExhausted)
    }

    fn dispatch(
        &self,
        s: &Session,
        req: &MefRequest,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
        let body = req.content.as_ref();
        let not_allowed = || ProcedureError::OperationNotAllowed {
            op: req.op,
            path: req.path.clone(),
        };
        // The function's own prefix only: a MAF has no `mef/…` resources and vice versa.
        let segments = match segments.split_first() {
            Some((first, rest)) if *first == self.role.path_prefix() => rest,
            _ => return Err(ProcedureError::UnknownPath(truncate(&req.path))),
        };
        let commands = self.role == Role::Mef;
        match segments {
            ["reg"] => match req.op {
                Operation::Create => self.client_registration(s, body, now),
                _ => Err(not_allowed()),
            },
            ["reg", id] => {
                let id = path_id(id, &req.path)?;
                match req.op {
                    Operation::Retrieve => self.configuration_retrieval(s, id, now),
                    Operation::Update => self.registration_update(s, id, body, now),
                    Operation::Delete => self.de_registration(s, id, now),
                    _ => Err(not_allowed()),
                }
            }
            // §8.3.9: MEF Client Commands; a MAF has none (§8.8.2).
            ["reg", id, "cmd"] if commands => {
                let id = path_id(id, &req.path)?;
                match req.op {
                    Operation::Retrieve => self.command_retrieve(s, id, now),
                    Operation::Update => self.command_update(s, id, body, now),
                    _ => Err(not_allowed()),
                }
            }
            ["keys"] => match req.op {
                Operation::Create => self.key_registration(s, body, now),
                _ => Err(not_allowed()),
            },
            ["keys", rki] => {
                let rki = self.relative_key_id(rki, &req.path)?;
                match req.op {
                    Operation::Retrieve => self.key_retrieval(s, &rki, now),
                    Operation::Update => self.key_registration_update(s, &rki, body, now),
                    Operation::Delete => self.key_de_registration(s, &rki, now),
                    _ => Err(not_allowed()),
                }
            }
            _ => Err(ProcedureError::UnknownPath(truncate(&req.path))),
        }
    }

    /// Purges a record an error found expired (the only write an error response makes).
    fn after_error(&self, e: &ProcedureError, now: DateTime<Utc>) {
        let purged = match e {
            ProcedureError::RegistrationExpired(id) => self.registry.transact(&mut |tx| {
                if let Some(r) = tx.registration(id)?
                    && r.expiration <= now
                {
                    tx.delete_registration(id)?;
                }
                Ok(())
            }),
            ProcedureError::KeyExpired(rki) => self.registry.transact(&mut |tx| {
                if let Some(k) = tx.key(rki)?
                    && k.expiration <= now
                {
                    tx.delete_key(rki)?;
                }
                Ok(())
            }),
            _ => return,
        };
        if let Err(err) = purged {
            tracing::warn!(error = %err, "purging an expired MEF record failed");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

    fn check_mef(&self, fqdn: &str) -> Result<(), ProcedureError> {
        match Fqdn::parse(fqdn) {
            Ok(f) if f == self.mef_fqdn => Ok(()),
            _ => Err(ProcedureError::WrongMef {
                requested: truncate(fqdn),
                ours: self.mef_fqdn.as_str().to_string(),
            }),
        }
    }

    fn admin_policy(&self, admin: &Fqdn) -> Result<&AdminPolicy, ProcedureError> {
        self.policy
            .admins
            .get(admin)
            .ok_or_else(|| ProcedureError::UnknownAdmin(admin.as_str().to_string()))
    }

    /// RelativeKeyID from the path: `<rki>` or the full Key Identifier `<rki>@<MEF-FQDN>`.
    /// MEF-chosen RelativeKeyIDs are upper-case hex; lookups ignore case (digest §B.7).
    fn relative_key_id(&self, seg: &str, path: &str) -> Result<String, ProcedureError> {
        let rki = match seg.split_once('@') {
            Some((rki, fqdn)) => {
                if Fqdn::parse(fqdn).ok().as_ref() != Some(&self.mef_fqdn) {
                    return Err(ProcedureError::UnknownKey(truncate(seg)));
                }
                rki
            }
            None => seg,
        };
        Ok(path_id(rki, path)?.to_ascii_uppercase())
    }

    /// Looks up a registration the session's client owns and that has not expired.
    fn owned_registration(
        tx: &mut dyn RegistryTx,
        s: &Session,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Registration, ProcedureError> {
        let reg = tx
            .registration(id)?
            .ok_or_else(|| ProcedureError::UnknownRegistration(id.to_string()))?;
        if reg.expiration <= now {
            return Err(ProcedureError::RegistrationExpired(id.to_string()));
        }
        if reg.client_id != s.client_id {
            return Err(ProcedureError::NotOwner {
                client: s.client_id.clone(),
                what: format!("client registration {id}"),
            });
        }
        Ok(reg)
    }

    /// Looks up a key registration that has not expired.
    fn live_key(
        tx: &mut dyn RegistryTx,
        rki: &str,
        now: DateTime<Utc>,
    ) -> Result<KeyRegistration, ProcedureError> {
        let key = tx
            .key(rki)?
            .ok_or_else(|| ProcedureError::UnknownKey(rki.to_string()))?;
        if key.expiration <= now {
            return Err(ProcedureError::KeyExpired(rki.to_string()));
        }
        Ok(key)
    }

    fn source_key(
        tx: &mut dyn RegistryTx,
        s: &Session,
        rki: &str,
        now: DateTime<Utc>,
    ) -> Result<KeyRegistration, ProcedureError> {
        let key = Self::live_key(tx, rki, now)?;
        if key.source_client_id != s.client_id {
            return Err(ProcedureError::NotOwner {
                client: s.client_id.clone(),
                what: format!("key registration {rki}"),
            });
        }
        Ok(key)
    }

    fn kid(&self, rki: &str) -> String {
        format!("{rki}@{}", self.mef_fqdn.as_str())
    }

    // -----------------------------------------------------------------------------------------
    // §8.3.5.2.3 MEF Client Registration, §8.8.2.3 MAF Client Registration

    fn client_registration(
        &self,
        s: &Session,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        // TS-0003 §8.3.5.2.3 step 2: the request (Table 8.3.5.2.3-1; at a MAF §8.8.2.3 step 2,
        // Table 8.8.2.3-1, the same parameters with the MAF-FQDN).
        let req: ClientRegRequest = body_of(body, self.role.client_reg_key())?;
        self.check_mef(&req.fqdn)?;
        let admin = parse_admin(&req.admin_fqdn)?;
        let proposed = parse_future(&req.exp, now)?;
        let labels = check_labels(req.lbl)?;
        // Step 3: "The MEF may assign different values ... based on instruction from the
        // administrating stakeholder": unknown stakeholders are refused, the lifetime capped.
        let admin_policy = self.admin_policy(&admin)?;
        let expiration = proposed.min(now + self.policy.max_registration_lifetime);
        // TS-0003 §8.8.2.3 step 1a: a client that authenticated with a remotely provisioned
        // credential (its KeID) is given a KmID; a MAF that cannot assign one refuses before
        // anything is stored. The MEF has no such step.
        let assigner = match (self.role, &s.remote_key_id) {
            (Role::Maf, Some(ke_id)) => Some(
                self.km_assigner
                    .as_ref()
                    .ok_or_else(|| ProcedureError::NoKmAssigner(truncate(ke_id)))?,
            ),
            _ => None,
        };
        let mut created = None;
        self.registry.transact(&mut |tx| {
            // One registration per client and administrating stakeholder (§8.3.5.1 step 3).
            for r in tx.registrations_of(&s.client_id)? {
                if r.admin_fqdn == admin {
                    if r.expiration > now {
                        return Err(ProcedureError::AlreadyRegistered {
                            client: s.client_id.clone(),
                            admin: admin.as_str().to_string(),
                            id: r.id,
                        });
                    }
                    tx.delete_registration(&r.id)?;
                }
            }
            let id = fresh_id(
                |id| Ok(tx.registration(id)?.is_none()),
                || format!("R{:016X}", rand::rng().random::<u64>()),
            )?;
            // §8.8.2.3 step 5: the KmID, inside the transaction so that a failed assignment
            // leaves no registration behind.
            let km_id = match assigner {
                Some(a) => Some(a.assign(s, &id, expiration)?),
                None => None,
            };
            let reg = Registration {
                id: id.clone(),
                client_id: s.client_id.clone(),
                admin_fqdn: admin.clone(),
                expiration,
                labels: labels.clone(),
            };
            tx.put_registration(&reg)?;
            // §8.3.9 commands exist at the MEF only.
            let mut has_commands = false;
            if self.role == Role::Mef {
                let state = CommandState {
                    queue: admin_policy.initial_commands.iter().cloned().collect(),
                    ..CommandState::default()
                };
                tx.put_commands(&id, &state)?;
                has_commands = !state.queue.is_empty();
            }
            created = Some((reg, has_commands, km_id));
            Ok(())
        })?;
        let (reg, has_commands, km_id) = created.ok_or(ProcedureError::IdExhausted)?;
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            credential_id = %s.credential_id,
            reg_id = %reg.id,
            admin = %reg.admin_fqdn.as_str(),
            remote_key_id = s.remote_key_id.as_deref(),
            km_id = km_id.as_deref(),
            "client registration created"
        );
        // Step 4: the response (Table 8.3.5.2.3-2; at a MAF Table 8.8.2.3-2).
        let body = match self.role {
            Role::Mef => serde_json::to_value(ClientRegResponse {
                ri: reg.id.clone(),
                exp: format_timestamp(reg.expiration),
                lbl: reg.labels,
                client_id: reg.client_id,
                admin_fqdn: reg.admin_fqdn.as_str().to_string(),
                ch: has_commands.then(|| vec![command_path(&reg.id)]),
            }),
            Role::Maf => serde_json::to_value(MafClientRegResponse {
                ri: reg.id.clone(),
                exp: format_timestamp(reg.expiration),
                lbl: reg.labels,
                maf_client_id: reg.client_id,
                admin_fqdn: reg.admin_fqdn.as_str().to_string(),
                assigned_symm_key_id: km_id,
            }),
        }
        .map_err(|e| RegistryError::Corrupt(format!("encoding a response: {e}")))?;
        Ok(Response::new(
            ResponseStatusCode::CREATED,
            Some(wrap(self.role.client_reg_key(), &body)?),
        ))
    }

    // §8.3.5.2.4 MEF Client Configuration Retrieval

    fn configuration_retrieval(
        &self,
        s: &Session,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let mut found = None;
        self.registry.transact(&mut |tx| {
            found = Some(Self::owned_registration(tx, s, id, now)?);
            Ok(())
        })?;
        let reg = found.ok_or_else(|| ProcedureError::UnknownRegistration(id.into()))?;
        // "If error cases are encountered, including if there is no MEF Client Configuration
        // currently associated with the identified MEF Client registration record ..."
        let cfg = self
            .policy
            .admins
            .get(&reg.admin_fqdn)
            .and_then(|a| a.client_config.clone())
            .ok_or_else(|| ProcedureError::NoConfiguration(reg.admin_fqdn.as_str().into()))?;
        let mut map = Map::new();
        map.insert(self.role.client_cfg_key().into(), cfg);
        Ok(Response::new(
            ResponseStatusCode::OK,
            Some(Value::Object(map)),
        ))
    }

    // §8.3.5.2.5 MEF Client Registration Update

    fn registration_update(
        &self,
        s: &Session,
        id: &str,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let req: ClientRegUpdate = body_of(body, self.role.client_reg_key())?;
        if let Some(fqdn) = &req.fqdn {
            self.check_mef(fqdn)?;
        }
        // Table 8.3.5.2.5-1 NOTE 1: at least one of expirationTime and labels.
        if req.exp.is_none() && req.lbl.is_none() {
            return Err(ProcedureError::BadRequest(
                "at least one of exp and lbl is required".into(),
            ));
        }
        let proposed = req
            .exp
            .as_deref()
            .map(|e| parse_future(e, now))
            .transpose()?;
        let labels = check_labels(req.lbl)?;
        let mut updated = None;
        self.registry.transact(&mut |tx| {
            let mut reg = Self::owned_registration(tx, s, id, now)?;
            let admin = self.admin_policy(&reg.admin_fqdn)?;
            if !admin.allow_updates {
                return Err(ProcedureError::UpdateNotAuthorized(
                    reg.admin_fqdn.as_str().into(),
                ));
            }
            if let Some(p) = proposed {
                reg.expiration = p.min(now + self.policy.max_registration_lifetime);
            }
            if labels.is_some() {
                reg.labels = labels.clone();
            }
            tx.put_registration(&reg)?;
            updated = Some(reg);
            Ok(())
        })?;
        let reg = updated.ok_or_else(|| ProcedureError::UnknownRegistration(id.into()))?;
        // Table 8.3.5.2.5-2 NOTE 2: only what the request had.
        let out = ClientRegUpdate {
            fqdn: None,
            exp: proposed.map(|_| format_timestamp(reg.expiration)),
            lbl: labels.map(|_| reg.labels.clone().unwrap_or_default()),
        };
        Ok(Response::new(
            ResponseStatusCode::UPDATED,
            Some(wrap(self.role.client_reg_key(), &out)?),
        ))
    }

    // §8.3.5.2.6 MEF Client De-Registration

    fn de_registration(
        &self,
        s: &Session,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        self.registry.transact(&mut |tx| {
            Self::owned_registration(tx, s, id, now)?;
            tx.delete_registration(id)?;
            Ok(())
        })?;
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            reg_id = %id,
            "client registration deleted"
        );
        Ok(Response::new(ResponseStatusCode::DELETED, None))
    }

    // §8.3.5.2.7 MEF Key Registration

    fn key_registration(
        &self,
        s: &Session,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        // Step 4: the request (Table 8.3.5.2.7-1).
        let req: KeyRegRequest = body_of(body, KEY_KEY_REG)?;
        self.check_mef(&req.fqdn)?;
        let admin = parse_admin(&req.admin_fqdn)?;
        let proposed = parse_future(&req.exp, now)?;
        let labels = check_labels(req.lbl)?;
        // Registrable SUIDs: 21-25 at a MEF, 32-35 at a MAF (Table 8.8.1-1).
        let usage = self.role.key_usage(req.suid).ok_or_else(|| {
            ProcedureError::BadRequest(format!(
                "SUID {} is not a key a client registers at the {}",
                req.suid, self.role
            ))
        })?;
        // "SAEF or ESPrim ⇒ exactly one Absolute AE-ID or Absolute CSE-ID; ESData ⇒ any
        // non-zero number"; a MAF key names the MAF.
        let target_ids = check_targets(req.tids.unwrap_or_default(), usage)?;
        // Step 5: "If the request included a value in the Key Value parameter, then the MEF
        // shall store this value. Otherwise, the MEF shall generate Key Value from the (D)TLS
        // session using TLS Key Export" (label EXPORTER-oneM2M-Connection, digest §B.4).
        let (preferred_rki, key) = match req.kv {
            Some(kv) => {
                if !KEY_VALUE_LEN.contains(&kv.len()) {
                    return Err(ProcedureError::BadRequest(format!(
                        "kv must be {} to {} bytes",
                        KEY_VALUE_LEN.start(),
                        KEY_VALUE_LEN.end()
                    )));
                }
                (None, kv)
            }
            None => match &s.connection_export {
                Some((id, key)) => (Some(hex_upper(id)), key.clone()),
                None => return Err(ProcedureError::NoKeyMaterial),
            },
        };
        let expiration = proposed.min(now + self.policy.max_key_lifetime);
        let mut created = None;
        self.registry.transact(&mut |tx| {
            // Pre-condition: a MEF Client Registration for this adminFQDN.
            let registered = tx
                .registrations_of(&s.client_id)?
                .iter()
                .any(|r| r.admin_fqdn == admin && r.expiration > now);
            if !registered {
                return Err(ProcedureError::NotRegistered {
                    client: s.client_id.clone(),
                    admin: admin.as_str().into(),
                });
            }
            // Step 6: "The MEF shall select a previously-unused value of RelativeKeyID":
            // hex(KcID) when exported, a fresh value on collision or for a supplied Key Value
            // (digest §B.5).
            let rki = match &preferred_rki {
                Some(p) if tx.key(p)?.is_none() => p.clone(),
                _ => fresh_id(
                    |id| Ok(tx.key(id)?.is_none()),
                    || {
                        let mut bytes = [0u8; 16];
                        rand::rng().fill(&mut bytes);
                        hex_upper(&bytes)
                    },
                )?,
            };
            let record = KeyRegistration {
                relative_key_id: rki,
                source_client_id: s.client_id.clone(),
                admin_fqdn: admin.clone(),
                suid: req.suid,
                target_ids: target_ids.clone(),
                labels: labels.clone(),
                expiration,
                key: key.clone(),
            };
            tx.put_key(&record)?;
            created = Some(record);
            Ok(())
        })?;
        let record = created.ok_or(ProcedureError::IdExhausted)?;
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            credential_id = %s.credential_id,
            rki = %record.relative_key_id,
            suid = record.suid.0,
            targets = ?record.target_ids,
            exported = preferred_rki.is_some(),
            "key registered"
        );
        // Step 7: the response (Table 8.3.5.2.7-2), never the key.
        let out = KeyRegResponse {
            kid: self.kid(&record.relative_key_id),
            rki: record.relative_key_id,
            exp: format_timestamp(record.expiration),
            src_id: record.source_client_id,
            lbl: record.labels,
            admin_fqdn: record.admin_fqdn.as_str().into(),
            suid: record.suid,
            tids: record.target_ids,
        };
        Ok(Response::new(
            ResponseStatusCode::CREATED,
            Some(wrap(KEY_KEY_REG, &out)?),
        ))
    }

    // §8.3.5.2.8 MEF Key Retrieval

    fn key_retrieval(
        &self,
        s: &Session,
        rki: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let mut found = None;
        self.registry.transact(&mut |tx| {
            found = Some(Self::live_key(tx, rki, now)?);
            Ok(())
        })?;
        let key = found.ok_or_else(|| ProcedureError::UnknownKey(rki.into()))?;
        // Step 3: "the MEF shall verify that the authenticated identity of the Target MEF
        // Client is included in the targetIDs"; otherwise an error and no key.
        let usage = self.role.key_usage(key.suid);
        let candidates = std::iter::once(&s.client_id).chain(s.bound_ids.iter());
        let authorized = candidates
            .clone()
            .any(|id| key.target_ids.iter().any(|t| same_target(t, id, usage)));
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            credential_id = %s.credential_id,
            rki = %rki,
            decision = if authorized { "permit" } else { "deny" },
            "key retrieval"
        );
        if !authorized {
            return Err(ProcedureError::NotTarget {
                client: s.client_id.clone(),
                rki: rki.into(),
            });
        }
        let out = KeyRetrieveResponse {
            kid: self.kid(&key.relative_key_id),
            rki: key.relative_key_id.clone(),
            exp: format_timestamp(key.expiration),
            src_id: key.source_client_id.clone(),
            lbl: key.labels.clone(),
            admin_fqdn: key.admin_fqdn.as_str().into(),
            suid: key.suid,
            kv: key.key.clone(),
        };
        Ok(Response::new(
            ResponseStatusCode::OK,
            Some(wrap(KEY_KEY_REG, &out)?),
        ))
    }

    // §8.3.5.2.9 MEF Key Registration Update

    fn key_registration_update(
        &self,
        s: &Session,
        rki: &str,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let req: KeyRegUpdate = body_of(body, KEY_KEY_REG)?;
        if let Some(fqdn) = &req.fqdn {
            self.check_mef(fqdn)?;
        }
        // Table 8.3.5.2.9-1: at least one of expirationTime, labels and targetIDs.
        if req.exp.is_none() && req.lbl.is_none() && req.tids.is_none() {
            return Err(ProcedureError::BadRequest(
                "at least one of exp, lbl and tids is required".into(),
            ));
        }
        let proposed = req
            .exp
            .as_deref()
            .map(|e| parse_future(e, now))
            .transpose()?;
        let labels = check_labels(req.lbl)?;
        let mut updated = None;
        self.registry.transact(&mut |tx| {
            let mut key = Self::source_key(tx, s, rki, now)?;
            let admin = self.admin_policy(&key.admin_fqdn)?;
            if !admin.allow_updates {
                return Err(ProcedureError::UpdateNotAuthorized(
                    key.admin_fqdn.as_str().into(),
                ));
            }
            if let Some(tids) = &req.tids {
                let usage = self.role.key_usage(key.suid).ok_or_else(|| {
                    ProcedureError::BadRequest(format!("SUID {} has no targets", key.suid))
                })?;
                key.target_ids = check_targets(tids.clone(), usage)?;
            }
            if let Some(p) = proposed {
                key.expiration = p.min(now + self.policy.max_key_lifetime);
            }
            if labels.is_some() {
                key.labels = labels.clone();
            }
            tx.put_key(&key)?;
            updated = Some(key);
            Ok(())
        })?;
        let key = updated.ok_or_else(|| ProcedureError::UnknownKey(rki.into()))?;
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            rki = %rki,
            targets = ?key.target_ids,
            "key registration updated"
        );
        // Table 8.3.5.2.9-2: only what the request had.
        let out = KeyRegUpdate {
            fqdn: None,
            exp: proposed.map(|_| format_timestamp(key.expiration)),
            lbl: labels.map(|_| key.labels.clone().unwrap_or_default()),
            tids: req.tids.as_ref().map(|_| key.target_ids.clone()),
        };
        Ok(Response::new(
            ResponseStatusCode::UPDATED,
            Some(wrap(KEY_KEY_REG, &out)?),
        ))
    }

    // §8.3.5.2.10 MEF Key De-Registration

    fn key_de_registration(
        &self,
        s: &Session,
        rki: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        self.registry.transact(&mut |tx| {
            Self::source_key(tx, s, rki, now)?;
            tx.delete_key(rki)?;
            Ok(())
        })?;
        tracing::info!(
            target: "audit",
            function = %self.role,
            client_id = %s.client_id,
            rki = %rki,
            "key deleted"
        );
        Ok(Response::new(ResponseStatusCode::DELETED, None))
    }

    // -----------------------------------------------------------------------------------------
    // §8.3.9.2 MEF Client Command Retrieve

    fn command_retrieve(
        &self,
        s: &Session,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        let mut issued = None;
        self.registry.transact(&mut |tx| {
            Self::owned_registration(tx, s, id, now)?;
            let mut state = tx.commands(id)?;
            // Steps 2-3: the current command, a reissue, or NO_MORE_COMMANDS.
            let cmd = self.next_command(&mut state);
            tx.put_commands(id, &state)?;
            issued = Some(cmd);
            Ok(())
        })?;
        let cmd = issued.ok_or_else(|| ProcedureError::UnknownRegistration(id.into()))?;
        Ok(Response::new(
            ResponseStatusCode::OK,
            Some(wrap(KEY_CLIENT_CMD, &cmd)?),
        ))
    }

    // §8.3.9.3 MEF Client Command Update

    fn command_update(
        &self,
        s: &Session,
        id: &str,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Response, ProcedureError> {
        // Step 2a: "If parsing fails, then the MEF shall send ... BAD_REQUEST".
        let update: CmdUpdate = body_of(body, KEY_CMD_UPDATE)?;
        let mut issued = None;
        self.registry.transact(&mut |tx| {
            Self::owned_registration(tx, s, id, now)?;
            let mut state = tx.commands(id)?;
            // Step 2b: a status for the most recently issued command is recorded; any other
            // cmdID is discarded.
            match &mut state.current {
                Some(cur) if cur.cmd_id == update.cmd_id => {
                    cur.awaiting_update = false;
                    let report = CommandReport {
                        cmd_id: cur.cmd_id,
                        description: cur.description.clone(),
                        status: update.status,
                    };
                    state.reports.push(report);
                }
                _ => tracing::info!(
                    reg_id = %id,
                    cmd_id = update.cmd_id,
                    "stale cmdID in Command Update discarded"
                ),
            }
            // Step 2c: the next command, as in §8.3.9.2 step 3.
            let cmd = self.next_command(&mut state);
            tx.put_commands(id, &state)?;
            issued = Some(cmd);
            Ok(())
        })?;
        let cmd = issued.ok_or_else(|| ProcedureError::UnknownRegistration(id.into()))?;
        Ok(Response::new(
            ResponseStatusCode::UPDATED,
            Some(wrap(KEY_CLIENT_CMD, &cmd)?),
        ))
    }

    /// §8.3.9.2 step 2: a command awaiting its Update is REISSUED; otherwise the next queued
    /// command is ISSUED under a fresh cmdID; with an empty queue NO_MORE_COMMANDS is issued
    /// (fresh cmdID, no Update expected, never reissued).
    fn next_command(&self, state: &mut CommandState) -> MefClientCmd {
        if let Some(cur) = &state.current
            && cur.awaiting_update
        {
            return MefClientCmd {
                cmd_id: cur.cmd_id,
                description: cur.description.clone(),
                status: CmdStatusCode::REISSUED,
            };
        }
        let previous = state.current.as_ref().map(|c| c.cmd_id);
        let cmd_id = loop {
            // cmdIDs stay below 2^53 so that every JSON implementation reads them exactly.
            let id = rand::rng().random_range(1..(1u64 << 53));
            if Some(id) != previous {
                break id;
            }
        };
        let (description, awaiting_update) = match state.queue.pop_front() {
            Some(d) => (d, true),
            None => (
                CmdDescription::new(CmdArgs::NoMore {
                    retry_duration: self.policy.retry_duration,
                }),
                false,
            ),
        };
        state.current = Some(IssuedCommand {
            cmd_id,
            description: description.clone(),
            awaiting_update,
        });
        MefClientCmd {
            cmd_id,
            description,
            status: CmdStatusCode::ISSUED,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Free helpers

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A path segment naming a record: `[A-Za-z0-9._-]+` (sec:relKeyID, §12.2).
fn path_id<'a>(seg: &'a str, path: &str) -> Result<&'a str, ProcedureError> {
    if seg.is_empty()
        || seg.len() > MAX_ID_LEN
        || !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ProcedureError::UnknownPath(truncate(path)));
    }
    Ok(seg)
}

/// Unwraps `{"<key>": {...}}` into `T`.
fn body_of<T: DeserializeOwned>(content: Option<&Value>, key: &str) -> Result<T, ProcedureError> {
    let obj = content
        .and_then(Value::as_object)
        .ok_or_else(|| ProcedureError::BadRequest(format!("expected a {{\"{key}\": ...}} body")))?;
    if obj.len() != 1 {
        return Err(ProcedureError::BadRequest(format!(
            "the body must have exactly one member, {key}"
        )));
    }
    let inner = obj
        .get(key)
        .ok_or_else(|| ProcedureError::BadRequest(format!("expected member {key}")))?;
    serde_json::from_value(inner.clone())
        .map_err(|e| ProcedureError::BadRequest(format!("{key}: {e}")))
}

fn wrap<T: serde::Serialize>(key: &str, body: &T) -> Result<Value, ProcedureError> {
    let v = serde_json::to_value(body)
        .map_err(|e| RegistryError::Corrupt(format!("encoding a response: {e}")))?;
    let mut map = Map::new();
    map.insert(key.into(), v);
    Ok(Value::Object(map))
}

fn parse_admin(s: &str) -> Result<Fqdn, ProcedureError> {
    Fqdn::parse(s).map_err(|e| ProcedureError::BadRequest(format!("adminFQDN: {e}")))
}

/// An m2m:timestamp strictly after `now`.
fn parse_future(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ProcedureError> {
    let t = parse_timestamp(s).ok_or_else(|| {
        ProcedureError::BadRequest(format!("exp {:?} is not an m2m:timestamp", truncate(s)))
    })?;
    if t <= now {
        return Err(ProcedureError::BadRequest(format!(
            "exp {} is not in the future",
            format_timestamp(t)
        )));
    }
    Ok(t)
}

fn check_labels(labels: Option<Vec<String>>) -> Result<Option<Vec<String>>, ProcedureError> {
    if let Some(l) = &labels {
        if l.len() > MAX_LABELS {
            return Err(ProcedureError::BadRequest(format!(
                "at most {MAX_LABELS} labels"
            )));
        }
        if l.iter()
            .any(|s| s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control))
        {
            return Err(ProcedureError::BadRequest(
                "labels must be non-empty text".into(),
            ));
        }
    }
    Ok(labels)
}

/// targetIDs for a key of `usage` (TS-0003 §8.3.5.2.7): the count rule, no duplicates,
/// identifiers without whitespace; a MAF key's target is the MAF-FQDN.
fn check_targets(tids: Vec<String>, usage: KeyUsage) -> Result<Vec<String>, ProcedureError> {
    let (min, max) = Suid::target_bounds(usage);
    if tids.len() < min || tids.len() > max {
        return Err(ProcedureError::BadRequest(match usage {
            KeyUsage::EsData => "an ESData key needs at least one target ID".to_string(),
            _ => format!("a {usage:?} key needs exactly one target ID"),
        }));
    }
    for (i, t) in tids.iter().enumerate() {
        if t.is_empty()
            || t.len() > MAX_ID_LEN
            || t.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ProcedureError::BadRequest(format!(
                "target ID {:?} is not an identifier",
                truncate(t)
            )));
        }
        if usage == KeyUsage::Maf && Fqdn::parse(t).is_err() {
            return Err(ProcedureError::BadRequest(format!(
                "the target of a MAF key must be the MAF-FQDN, not {:?}",
                truncate(t)
            )));
        }
        if tids.iter().take(i).any(|u| u == t) {
            return Err(ProcedureError::BadRequest(format!(
                "target ID {:?} appears twice",
                truncate(t)
            )));
        }
    }
    Ok(tids)
}

/// Whether an authenticated identity matches a target ID: FQDN targets (MAF keys) compare
/// case-insensitively (digest §B.22), M2M identifiers exactly.
fn same_target(target: &str, id: &str, usage: Option<KeyUsage>) -> bool {
    if usage == Some(KeyUsage::Maf) {
        target.eq_ignore_ascii_case(id)
    } else {
        target == id
    }
}

/// Upper-case hexBinary (digest §B.7).
fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Draws identifiers until `unused` accepts one (a few tries; collisions are astronomically
/// rare with 64 or 128 random bits).
fn fresh_id(
    mut unused: impl FnMut(&str) -> Result<bool, ProcedureError>,
    mut draw: impl FnMut() -> String,
) -> Result<String, ProcedureError> {
    for _ in 0..8 {
        let id = draw();
        if unused(&id)? {
            return Ok(id);
        }
    }
    Err(ProcedureError::IdExhausted)
}
