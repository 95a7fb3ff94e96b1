//! The MEF as a network service: every connection starts with the MEF Handshake
//! ([`Bootstrap`]), then carries HTTP/1.1 requests of the authenticated client over that TLS
//! session: the Enrolment Exchange, EST, `/fetchCredentials` and the MEF procedures
//! (`docs/mef.md` has the wire format).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use m2mtrust_channel::KpsaId;
use m2mtrust_crypto::{CertProfile, Fqdn, SecretKey, kdf};
use m2mtrust_model::types::Operation;
use m2mtrust_model::{CseId, Response, ResponseStatusCode, Timestamp};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::enrollees::Assignment;
use crate::est::EstServer;
use crate::exchange::{
    Acknowledgement, ENROLMENT_ACK, ENROLMENT_END, ENROLMENT_INSTRUCTION, ENROLMENT_REQUEST,
    EnrolmentRequest, FETCH_CREDENTIALS, FetchCredentialsResponse, Instruction, InstructionType,
    SecurityProfile,
};
use crate::mef::{Accepted, Bootstrap, Enrolment};
use crate::procedures::Procedures;
use crate::target::{Provisioned, Provisioning};
use crate::wire::{MefRequest, Session};

/// The Security Usage Identifier of keys the MEF provisions for a target CSE: 22, "RSPF key
/// for the SAEF" (TS-0004 m2m:suid).
pub const SUID_RSPF_SAEF: u32 = 22;
/// SUID 23: a symmetric key provisioned via the RSPF for ESPrim with the target.
pub const SUID_RSPF_ESPRIM: u32 = 23;

/// Largest request body the MEF reads (CSRs and JSON messages are small).
const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The enrolment target this MEF provisions: the IN-CSE enrolees register with.
#[derive(Clone, Debug)]
pub struct TargetCse {
    /// Its CSE-ID, SP-relative (`/id-in`).
    pub cse_id: CseId,
    /// The M2M SP domain (`m2mtrust.example`).
    pub sp_domain: String,
    /// URI of its `<CSEBase>`, given to enrolees.
    pub cse_base_uri: String,
}

impl TargetCse {
    /// The FQDN representation of the target's CSE-ID (TS-0001 §6.5.1.1), the
    /// Enrolment-Target-ID of the usage-constrained key (§10.3.7).
    pub fn fqdn(&self) -> String {
        m2mtrust_channel::cse_public_domain_name(&self.cse_id, &self.cse_id, &self.sp_domain)
    }
}

pub use crate::procedures::Role;

/// A MAF the MEF enrols devices for (Table 8.3.2.1-3).
#[derive(Clone, Debug)]
pub struct MafTarget {
    /// Its FQDN.
    pub fqdn: String,
    /// Its base URI (`https://host:port`).
    pub base_uri: String,
}

/// What the MEF service is configured with.
pub struct MefConfig {
    /// MEF or MAF.
    pub role: Role,
    /// The MAF enrolees are instructed to register with when they are prepared to (MEF only).
    pub maf: Option<MafTarget>,
    /// The enrolment target.
    pub target: TargetCse,
    /// The externally reachable base URI of this MEF (`https://host:port`), used in the EST
    /// instruction.
    pub base_uri: String,
    /// The EST server; without one the MEF does not provision certificates.
    pub est: Option<Arc<EstServer>>,
    /// The MEF procedures; without them `mef/reg…` and `mef/keys…` answer 4004.
    pub procedures: Option<Arc<Procedures>>,
}

/// The MEF service: handshake, then requests.
pub struct MefService {
    bootstrap: Bootstrap,
    config: MefConfig,
    provisioning: Arc<dyn Provisioning>,
}

impl std::fmt::Debug for MefService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefService")
            .field("fqdn", self.bootstrap.fqdn())
            .field("target", &self.config.target)
            .finish_non_exhaustive()
    }
}

/// Where the Enrolment Exchange of one connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the Table 8.3.2.1-1 request.
    Start,
    /// An instruction was sent; waiting for its acknowledgement.
    Await(InstructionType),
    /// The exchange ended.
    Done,
}

/// Per-connection state.
struct Connection {
    session: Session,
    enrolment: Option<Enrolment>,
    stage: Stage,
    /// Instructions still to send, in order (certificate enrolment, then MAF enrolment).
    pending: Vec<InstructionType>,
    /// The one-time challengePassword of this session's EST enrolment (digest §B.17).
    challenge: Option<String>,
    /// DER of the client certificate that authenticated the session (for re-enrolment).
    peer_certificate: Option<Vec<u8>>,
}

impl MefService {
    /// A MEF with its handshake, configuration and provisioning back end.
    pub fn new(
        bootstrap: Bootstrap,
        config: MefConfig,
        provisioning: Arc<dyn Provisioning>,
    ) -> Self {
        Self {
            bootstrap,
            config,
            provisioning,
        }
    }

    /// The MEF's FQDN.
    pub fn fqdn(&self) -> &Fqdn {
        self.bootstrap.fqdn()
    }

    /// Accepts connections on `listener` until `shutdown` resolves; each connection runs the
    /// MEF Handshake and then serves the client's requests.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (tcp, _) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "MEF accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let me = Arc::clone(&self);
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { me.connection(tcp, stop).await });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        Ok(())
    }

    /// One connection: the MEF Handshake, then HTTP/1.1 until the client or the exchange ends
    /// it.
    pub async fn connection(
        self: Arc<Self>,
        tcp: tokio::net::TcpStream,
        mut stop: watch::Receiver<bool>,
    ) {
        let Ok((stream, Accepted { session, enrolment })) = self.bootstrap.accept_any(tcp).await
        else {
            // Refusals are audit events emitted by the handshake.
            return;
        };
        let peer_certificate = stream
            .ssl()
            .peer_certificate()
            .and_then(|c| c.to_der().ok());
        let state = Arc::new(Mutex::new(Connection {
            session,
            enrolment,
            stage: Stage::Start,
            pending: Vec::new(),
            challenge: None,
            peer_certificate,
        }));
        let me = Arc::clone(&self);
        let service = service_fn(move |req: http::Request<Incoming>| {
            let me = Arc::clone(&me);
            let state = Arc::clone(&state);
            async move { Ok::<_, std::convert::Infallible>(me.request(req, &state).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "MEF connection ended");
                }
            }
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            }
        }
    }

    async fn request(
        &self,
        req: http::Request<Incoming>,
        state: &Mutex<Connection>,
    ) -> http::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let request_id = header(&parts.headers, "x-m2m-ri").unwrap_or_default();
        let body = match read_body(&parts.headers, body).await {
            Ok(b) => b,
            Err(msg) => {
                let mut r = Response::error(ResponseStatusCode::BAD_REQUEST, msg);
                r.request_id = request_id;
                let mut out = m2mtrust_binding_http::encode_response(&r, None);
                out.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                return out;
            }
        };
        if let Some(op) = path
            .strip_prefix("/.well-known/est/")
            .filter(|_| self.config.role == Role::Mef)
        {
            return self.est(&parts.method, op, &body, state);
        }
        let op = match parts.method {
            Method::POST => Operation::Create,
            Method::GET => Operation::Retrieve,
            Method::PUT => Operation::Update,
            Method::DELETE => Operation::Delete,
            _ => {
                let mut r = Response::error(
                    ResponseStatusCode::OPERATION_NOT_ALLOWED,
                    format!("method {} is not used by the MEF", parts.method),
                );
                r.request_id = request_id;
                return m2mtrust_binding_http::encode_response(&r, None);
            }
        };
        let content = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v @ Value::Object(_)) => Some(v),
                Ok(_) => {
                    let mut r = Response::error(
                        ResponseStatusCode::BAD_REQUEST,
                        "the body must be a JSON object",
                    );
                    r.request_id = request_id;
                    return m2mtrust_binding_http::encode_response(&r, None);
                }
                Err(e) => {
                    let mut r = Response::error(
                        ResponseStatusCode::BAD_REQUEST,
                        format!("the body is not JSON: {e}"),
                    );
                    r.request_id = request_id;
                    return m2mtrust_binding_http::encode_response(&r, None);
                }
            }
        };
        let decoded = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        let mreq = MefRequest {
            op,
            path: decoded,
            from: header(&parts.headers, "x-m2m-origin"),
            request_id: request_id.clone(),
            content,
        };
        let (mut resp, close) = self.dispatch(&mreq, state).await;
        resp.request_id = request_id;
        let mut out = m2mtrust_binding_http::encode_response(&resp, None);
        if close {
            out.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        out
    }

    async fn dispatch(&self, req: &MefRequest, state: &Mutex<Connection>) -> (Response, bool) {
        let role = self.config.role;
        let segments: Vec<&str> = req.path.split('/').collect();
        match (role, segments.as_slice()) {
            (Role::Mef, ["mef", "enrolment"]) if req.op == Operation::Create => {
                self.exchange(req, state).await
            }
            (Role::Mef, ["fetchCredentials", ke_id, suid]) if req.op == Operation::Retrieve => {
                (self.fetch_credentials(ke_id, suid, state), false)
            }
            // The procedures of this function: `mef/…` at a MEF, `maf/…` at a MAF.
            (_, [first, ..]) if *first == role.path_prefix() => match &self.config.procedures {
                Some(p) => {
                    let guard = lock(state);
                    (p.handle(&guard.session, req, Utc::now()), false)
                }
                None => (
                    Response::error(
                        ResponseStatusCode::NOT_FOUND,
                        format!("the {role} procedures are not enabled"),
                    ),
                    false,
                ),
            },
            _ => (
                Response::error(
                    ResponseStatusCode::NOT_FOUND,
                    format!("no {role} resource at /{}", req.path),
                ),
                false,
            ),
        }
    }

    /// The Enrolment Exchange state machine (§8.3.2.1, digest §5.1).
    async fn exchange(&self, req: &MefRequest, state: &Mutex<Connection>) -> (Response, bool) {
        let Some(Value::Object(map)) = &req.content else {
            return (
                Response::error(
                    ResponseStatusCode::BAD_REQUEST,
                    format!(
                        "expected {{\"{ENROLMENT_REQUEST}\": …}} or {{\"{ENROLMENT_ACK}\": …}}"
                    ),
                ),
                false,
            );
        };
        let stage = {
            let guard = lock(state);
            if guard.enrolment.is_none() {
                return (
                    Response::error(
                        ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
                        "only an enrolee (factory PSK or registered certificate) has an Enrolment Exchange",
                    ),
                    false,
                );
            }
            guard.stage
        };
        match (stage, map.iter().next()) {
            (Stage::Start, Some((k, v))) if k == ENROLMENT_REQUEST && map.len() == 1 => {
                let request: EnrolmentRequest = match serde_json::from_value(v.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        return (
                            Response::error(
                                ResponseStatusCode::BAD_REQUEST,
                                format!("{ENROLMENT_REQUEST}: {e}"),
                            ),
                            false,
                        );
                    }
                };
                // The MEF decides per its own policy (§8.3.2.1 step 2): certificates when it has
                // a CA, a MAF when one is configured; never remote management.
                let mut pending = Vec::new();
                if request.certificate_enrolment_indication && self.config.est.is_some() {
                    pending.push(InstructionType::CertificateEnrolment);
                }
                if request.maf_enrolment_indication && self.config.maf.is_some() {
                    pending.push(InstructionType::MAFEnrolment);
                }
                lock(state).pending = pending;
                // Both sides store Ke and KeID (§8.3.2.1): a MAF may fetch its key during the
                // exchange.
                let record = {
                    let guard = lock(state);
                    guard.enrolment.as_ref().map(|e| Provisioned {
                        ke_id: e.ke_id.clone(),
                        ke: SecretKey::from_slice(e.ke.expose_bytes()),
                        assignment: e.assignment.clone(),
                        target_key: SecretKey::from_slice(&[]),
                        expires: e.expires,
                    })
                };
                if let Some(record) = record
                    && let Err(err) = self.provisioning.record_enrolment(&record).await
                {
                    tracing::error!(error = %err, ke_id = %record.ke_id, "recording the enrolment failed");
                    return (
                        Response::error(
                            ResponseStatusCode::INTERNAL_SERVER_ERROR,
                            "the enrolment could not be stored; nothing was provisioned",
                        ),
                        true,
                    );
                }
                self.next_instruction(state).await
            }
            (Stage::Await(expected), Some((k, v))) if k == ENROLMENT_ACK && map.len() == 1 => {
                let ack: Acknowledgement = match serde_json::from_value(v.clone()) {
                    Ok(a) => a,
                    Err(e) => {
                        return (
                            Response::error(
                                ResponseStatusCode::BAD_REQUEST,
                                format!("{ENROLMENT_ACK}: {e}"),
                            ),
                            false,
                        );
                    }
                };
                if ack.instruction_type != expected {
                    return (
                        Response::error(
                            ResponseStatusCode::BAD_REQUEST,
                            format!(
                                "the pending instruction is {expected}, not {}",
                                ack.instruction_type
                            ),
                        ),
                        false,
                    );
                }
                if !ack.status {
                    tracing::info!(
                        target: "audit",
                        event = "enrolment_instruction_failed",
                        instruction = %expected,
                        client = %lock(state).session.client_id,
                    );
                }
                self.next_instruction(state).await
            }
            (Stage::Done, _) => (
                Response::error(
                    ResponseStatusCode::OPERATION_NOT_ALLOWED,
                    "the Enrolment Exchange of this session has ended",
                ),
                true,
            ),
            (stage, _) => (
                Response::error(
                    ResponseStatusCode::BAD_REQUEST,
                    match stage {
                        Stage::Start => format!("expected {{\"{ENROLMENT_REQUEST}\": …}}"),
                        _ => format!("expected {{\"{ENROLMENT_ACK}\": …}}"),
                    },
                ),
                false,
            ),
        }
    }

    /// Sends the next pending instruction, or provisions and ends the exchange.
    async fn next_instruction(&self, state: &Mutex<Connection>) -> (Response, bool) {
        let next = {
            let mut guard = lock(state);
            if guard.pending.is_empty() {
                None
            } else {
                Some(guard.pending.remove(0))
            }
        };
        let instruction = match next {
            None => return self.end(state).await,
            Some(InstructionType::CertificateEnrolment) => self.certificate_instruction(state),
            Some(InstructionType::MAFEnrolment) => match &self.config.maf {
                Some(maf) => Instruction {
                    instruction_type: InstructionType::MAFEnrolment,
                    uri: maf.base_uri.clone(),
                    cert_subject_type: None,
                    cert_subject_id: None,
                    credential_type: Some("symmetric".into()),
                    maf_client_registration_uri: Some(format!("{}/maf/reg", maf.base_uri)),
                    maf_key_registration_uri: Some(format!("{}/maf/keys", maf.base_uri)),
                    maf_key_retrieval_uri: Some(format!("{}/maf/keys", maf.base_uri)),
                    maf_fqdn: Some(maf.fqdn.clone()),
                    admin_fqdn: Some(self.config.target.sp_domain.clone()),
                },
                None => return self.end(state).await,
            },
            Some(InstructionType::RemoteManagementServer) => return self.end(state).await,
        };
        lock(state).stage = Stage::Await(instruction.instruction_type);
        (
            Response::new(
                ResponseStatusCode::OK,
                Some(json!({ ENROLMENT_INSTRUCTION: instruction })),
            ),
            false,
        )
    }

    fn certificate_instruction(&self, state: &Mutex<Connection>) -> Instruction {
        let guard = lock(state);
        let (subject_type, subject_id) = match guard.enrolment.as_ref().map(|e| &e.assignment) {
            Some(Assignment::CseId(c)) => (2, Some(c.clone())),
            Some(Assignment::AeIds(ids)) => (3, ids.first().cloned()),
            None => (3, None),
        };
        Instruction {
            instruction_type: InstructionType::CertificateEnrolment,
            uri: format!("{}/.well-known/est", self.config.base_uri),
            cert_subject_type: Some(subject_type),
            cert_subject_id: subject_id,
            credential_type: None,
            maf_client_registration_uri: None,
            maf_key_registration_uri: None,
            maf_key_retrieval_uri: None,
            maf_fqdn: None,
            admin_fqdn: None,
        }
    }

    /// Provisions the target and ends the exchange with the securityProfile; the MEF closes
    /// the session after this response (§8.3.2.1 steps 6-7).
    async fn end(&self, state: &Mutex<Connection>) -> (Response, bool) {
        let target = &self.config.target;
        let target_fqdn = target.fqdn();
        let (provisioned, profile) = {
            let guard = lock(state);
            let Some(e) = guard.enrolment.as_ref() else {
                return (
                    Response::error(
                        ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
                        "not an enrolee",
                    ),
                    true,
                );
            };
            let target_key = match kdf::derive_usage_constrained(
                &e.ke,
                &SUID_RSPF_SAEF.to_string(),
                &target_fqdn,
            ) {
                Ok(k) => k,
                Err(err) => {
                    tracing::error!(error = %err, "usage-constrained key derivation failed");
                    return (
                        Response::error(
                            ResponseStatusCode::INTERNAL_SERVER_ERROR,
                            "key derivation failed",
                        ),
                        true,
                    );
                }
            };
            let (ids, cse) = match &e.assignment {
                Assignment::CseId(c) => (vec![c.clone()], true),
                Assignment::AeIds(ids) => (ids.clone(), false),
            };
            let profile = SecurityProfile {
                enrolee_id: ids,
                cse,
                key_id: e.ke_id.to_string(),
                suid: SUID_RSPF_SAEF,
                target_id: target.cse_id.as_str().to_owned(),
                target_fqdn: target_fqdn.clone(),
                cse_base_uri: target.cse_base_uri.clone(),
                expiration_time: Timestamp(e.expires.timestamp_micros()).to_onem2m(),
            };
            let provisioned = Provisioned {
                ke_id: e.ke_id.clone(),
                ke: SecretKey::from_slice(e.ke.expose_bytes()),
                assignment: e.assignment.clone(),
                target_key,
                expires: e.expires,
            };
            (provisioned, profile)
        };
        let ke_id = provisioned.ke_id.clone();
        if let Err(err) = self.provisioning.provision(provisioned).await {
            tracing::error!(error = %err, ke_id = %ke_id, "provisioning failed");
            return (
                Response::error(
                    ResponseStatusCode::INTERNAL_SERVER_ERROR,
                    "the enrolment could not be stored; nothing was provisioned",
                ),
                true,
            );
        }
        lock(state).stage = Stage::Done;
        tracing::info!(
            target: "audit",
            event = "enrolment_provisioned",
            ke_id = %ke_id,
            enrolee = ?profile.enrolee_id,
            target = %profile.target_id,
            expires = %profile.expiration_time,
        );
        (
            Response::new(
                ResponseStatusCode::OK,
                Some(json!({ ENROLMENT_END: { "securityProfile": profile } })),
            ),
            true,
        )
    }

    /// `/fetchCredentials/<KeID>/<SUID>` (§8.3.2.1 step f): only the enrolment target, for the
    /// SUID the MEF provisions it with, before the enrolment expires.
    fn fetch_credentials(&self, ke_id: &str, suid: &str, state: &Mutex<Connection>) -> Response {
        let (client, bound) = {
            let guard = lock(state);
            (
                guard.session.client_id.clone(),
                guard.session.bound_ids.clone(),
            )
        };
        let refuse = |status: ResponseStatusCode, reason: &str| {
            tracing::info!(
                target: "audit",
                event = "fetch_credentials_refused",
                client = %client,
                ke_id = %ke_id,
                suid = %suid,
                reason,
            );
            let body = FetchCredentialsResponse {
                status: false,
                credential: None,
                enrolee_id: None,
                lifetime: None,
                error_string: Some(reason.to_owned()),
            };
            Response::new(status, Some(json!({ FETCH_CREDENTIALS: body })))
        };
        let Ok(ke_id) = KpsaId::parse(ke_id) else {
            return refuse(ResponseStatusCode::BAD_REQUEST, "malformed KeID");
        };
        let target = self.config.target.cse_id.as_str();
        if client != target && !bound.iter().any(|b| b == target) {
            return refuse(
                ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
                "the originator is not an enrolment target of this enrolee",
            );
        }
        if suid != SUID_RSPF_SAEF.to_string() && suid != SUID_RSPF_ESPRIM.to_string() {
            return refuse(
                ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
                "the target may not fetch credentials with this Security Usage Identifier",
            );
        }
        let stored = match self.provisioning.enrolment(&ke_id) {
            Ok(Some(s)) => s,
            Ok(None) => return refuse(ResponseStatusCode::NOT_FOUND, "unknown KeID"),
            Err(e) => {
                tracing::error!(error = %e, "reading an enrolment failed");
                return refuse(ResponseStatusCode::INTERNAL_SERVER_ERROR, "store failure");
            }
        };
        if Utc::now() >= stored.expires {
            return refuse(ResponseStatusCode::NOT_FOUND, "the enrolment expired");
        }
        let key = match kdf::derive_usage_constrained(&stored.ke, suid, &self.config.target.fqdn())
        {
            Ok(k) => k,
            Err(_) => {
                return refuse(
                    ResponseStatusCode::INTERNAL_SERVER_ERROR,
                    "derivation failed",
                );
            }
        };
        let ids = match stored.assignment {
            Assignment::CseId(c) => vec![c],
            Assignment::AeIds(ids) => ids,
        };
        tracing::info!(target: "audit", event = "credentials_fetched", client = %client, ke_id = %ke_id);
        let body = FetchCredentialsResponse {
            status: true,
            credential: Some(B64.encode(key.expose_bytes())),
            enrolee_id: Some(ids),
            lifetime: Some(Timestamp(stored.expires.timestamp_micros()).to_onem2m()),
            error_string: None,
        };
        Response::new(
            ResponseStatusCode::OK,
            Some(json!({ FETCH_CREDENTIALS: body })),
        )
    }

    /// RFC 7030 operations on the authenticated session (§8.3.6.2).
    fn est(
        &self,
        method: &Method,
        op: &str,
        body: &[u8],
        state: &Mutex<Connection>,
    ) -> http::Response<Full<Bytes>> {
        let Some(est) = &self.config.est else {
            return plain(
                StatusCode::NOT_FOUND,
                "this MEF does not provision certificates\n",
            );
        };
        let mut guard = lock(state);
        let profile = match self.profile_of(&guard) {
            Some(p) => p,
            None => {
                return plain(
                    StatusCode::FORBIDDEN,
                    "this MEF client has no identity to certify\n",
                );
            }
        };
        let client = guard.session.client_id.clone();
        let challenge = match &guard.challenge {
            Some(c) => c.clone(),
            None => {
                let c = one_time_challenge();
                guard.challenge = Some(c.clone());
                c
            }
        };
        let result = match (method, op) {
            (&Method::GET, "cacerts") => est.cacerts().map(pkcs7),
            (&Method::GET, "csrattrs") => est.csrattrs(&profile, &challenge).map(|b| {
                let mut r = http::Response::new(Full::new(Bytes::from(b)));
                let h = r.headers_mut();
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/csrattrs"),
                );
                h.insert(
                    "content-transfer-encoding",
                    HeaderValue::from_static("base64"),
                );
                r
            }),
            (&Method::POST, "simpleenroll") => est
                .enroll(body, &profile, &challenge)
                .map(|issued| pkcs7(issued.pkcs7_base64)),
            (&Method::POST, "simplereenroll") => {
                let Some(current) = guard
                    .peer_certificate
                    .clone()
                    .filter(|_| guard.session.certificate_authenticated)
                else {
                    audit_est(&client, op, Some("not_certificate_authenticated"));
                    return plain(
                        StatusCode::FORBIDDEN,
                        "re-enrolment needs a session authenticated with the current certificate\n",
                    );
                };
                est.reenroll(body, &profile, &challenge, &current)
                    .map(|issued| pkcs7(issued.pkcs7_base64))
            }
            (_, "cacerts" | "csrattrs" | "simpleenroll" | "simplereenroll") => {
                return plain(StatusCode::METHOD_NOT_ALLOWED, "wrong method\n");
            }
            _ => return plain(StatusCode::NOT_FOUND, "unknown EST operation\n"),
        };
        match result {
            Ok(r) => {
                if op.starts_with("simple") {
                    // A challenge is good for one enrolment.
                    guard.challenge = None;
                    audit_est(&client, op, None);
                }
                r
            }
            Err(e) => {
                audit_est(&client, op, Some(e.reason()));
                let status =
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                plain(status, &format!("{e}\n"))
            }
        }
    }

    /// The certificate profile the client may obtain: its assigned identity (enrolees) or the
    /// identity of its CSE-ID/AE-ID certificate.
    fn profile_of(&self, c: &Connection) -> Option<CertProfile> {
        let target = &self.config.target;
        let ids: Vec<String> = match c.enrolment.as_ref().map(|e| &e.assignment) {
            Some(Assignment::CseId(id)) => {
                return Some(CertProfile::CseId {
                    cse_id: id.clone(),
                    in_cse_id: target.cse_id.as_str().to_owned(),
                    sp_domain: target.sp_domain.clone(),
                });
            }
            Some(Assignment::AeIds(ids)) => ids.clone(),
            None => c.session.bound_ids.clone(),
        };
        let id = ids.first()?;
        if id.starts_with('/') {
            return Some(CertProfile::CseId {
                cse_id: id.clone(),
                in_cse_id: target.cse_id.as_str().to_owned(),
                sp_domain: target.sp_domain.clone(),
            });
        }
        Some(CertProfile::AeId {
            ae_id: id.clone(),
            cse_id: target.cse_id.as_str().to_owned(),
            sp_domain: target.sp_domain.clone(),
        })
    }
}

fn audit_est(client: &str, op: &str, refused: Option<&str>) {
    match refused {
        None => tracing::info!(target: "audit", event = "est", client = %client, op),
        Some(reason) => {
            tracing::info!(target: "audit", event = "est_refused", client = %client, op, reason)
        }
    }
}

fn one_time_challenge() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pkcs7(body: String) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/pkcs7-mime; smime-type=certs-only"),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    r
}

fn plain(status: StatusCode, text: &str) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn lock(state: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

async fn read_body(headers: &http::HeaderMap, mut body: Incoming) -> Result<Bytes, String> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("the body exceeds {MAX_BODY} bytes"));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body failed: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                return Err(format!("the body exceeds {MAX_BODY} bytes"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
