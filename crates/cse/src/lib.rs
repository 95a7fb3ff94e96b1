//! The oneM2M CSE resource engine: registration of AEs and CSEs, the resource types of
//! TS-0001 §9.6 that this CSE hosts, discovery, subscriptions and notifications, groups with
//! fan-out, and expiry.
//!
//! [`Cse::handle`] takes a request primitive and the [`PeerIdentity`] its channel authenticated
//! and returns the response primitive. It never sees a transport.
//!
//! **Architecture Invariant:** every request passes [`access::check`] before it reads or changes a
//! resource, except the registrations (CREATE `<AE>` / `<remoteCSE>`), which TS-0001 §10.2.2
//! governs by registration rules instead.

pub mod access;
mod config;
mod create;
pub mod dynauth;
mod error;
pub mod esprim;
mod expiry;
pub mod forward;
mod group;
mod identity;
mod notify;
mod retrieve;
mod roles;
mod target;
pub mod tokens;
mod transport;
mod update;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use m2mtrust_model::{
    Home, Operation, Originator, PeerIdentity, Request, Resource, ResourceType, Response,
    ResponseStatusCode as Rsc, Timestamp, primitive::SUPPORTED_RVI,
};
use m2mtrust_store::{Store, StoreExt};
use serde_json::{Map, Value, json};

pub use config::CseConfig;
pub use error::CseError;
use error::Result;
pub use notify::{NotificationTransport, Notifier};
use target::Addressed;
pub use transport::HttpNotificationTransport;

/// One CSE: configuration, store, and the in-memory indexes derived from the store.
pub struct Cse {
    cfg: CseConfig,
    store: Arc<dyn Store>,
    /// `ri`s of resources with at least one `<subscription>` child; rebuilt from the store at start.
    subscribed: RwLock<HashSet<String>>,
    notifier: Notifier,
    /// The decision point of TS-0003 §7.1.
    pdp: m2mtrust_authz::Pdp,
    /// Compiled `<accessControlPolicy>` resources by `ri`; dropped when they change.
    acp_cache: RwLock<HashMap<String, Arc<m2mtrust_authz::CompiledAcp>>>,
    /// Verifier of tokens from trusted issuers (TS-0003 §7.3).
    token_verifier: std::sync::OnceLock<Arc<dyn tokens::TokenVerifier>>,
    /// Verified tokens by the Local-Token-ID assigned to them.
    local_tokens: RwLock<tokens::LocalTokens>,
    /// The next Local-Token-ID number.
    next_local_token: std::sync::atomic::AtomicU64,
    /// Direct dynamic authorization: the DAS client, dynamic ACPs, tokens from DASs.
    dynamic: dynauth::DynamicState,
    /// End-to-end security of primitives as Receiver: keys, rand objects, replay memory.
    esprim: esprim::EsPrimState,
    /// Carries requests for other CSEs (TS-0001 §8.2); without one they are refused.
    forwarder: std::sync::OnceLock<Arc<dyn forward::Forwarder>>,
}

impl std::fmt::Debug for Cse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cse")
            .field("cse_id", &self.cfg.home.cse_id)
            .finish_non_exhaustive()
    }
}

/// The context every operation works with: who asks, about what, when.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request,
    pub peer: &'a PeerIdentity,
    /// `None` only for a registration without `From`.
    pub originator: Option<Originator>,
    /// The originator as the access control engine matches it.
    pub authz_originator: Option<m2mtrust_authz::Originator>,
    pub now: Timestamp,
    /// Verified tokens of the request (`tkns` and `ltids`).
    pub tokens: Vec<Arc<tokens::VerifiedToken>>,
    /// Local-Token-IDs assigned to this request's tokens, for the response (`ati`).
    pub assigned_tokens: Vec<(String, String)>,
    /// Role-IDs of the request (`rids`) verified against `<role>` resources (TS-0003 §7.4).
    pub roles: Vec<String>,
    /// What access control refused last, for dynamic authorization.
    pub denied: dynauth::LastDenial,
}

impl Ctx<'_> {
    /// The canonical originator, or empty.
    pub fn orig(&self) -> String {
        self.originator
            .as_ref()
            .map(Originator::canonical)
            .unwrap_or_default()
    }
}

impl Cse {
    /// Opens the CSE on a store, creating `<CSEBase>` on first start.
    pub async fn start(
        cfg: CseConfig,
        store: Arc<dyn Store>,
        notifier: Notifier,
    ) -> Result<Arc<Self>> {
        let hosting =
            m2mtrust_authz::HostingCse::new(cfg.home.sp_id.as_str(), cfg.home.cse_id.as_str())
                .map_err(|e| {
                    CseError::BadRequest(format!(
                        "this CSE's identity cannot be used for access control: {e}"
                    ))
                })?;
        let pdp = m2mtrust_authz::Pdp::new(hosting).with_time_zone(cfg.time_zone);
        if cfg.admin_bypass {
            tracing::warn!(admin = %cfg.admin_originator, "the admin originator bypasses access control (--no-admin-bypass turns this off)");
        }
        let cse = Arc::new(Self {
            cfg,
            store,
            subscribed: RwLock::new(HashSet::new()),
            notifier,
            pdp,
            acp_cache: RwLock::new(HashMap::new()),
            token_verifier: std::sync::OnceLock::new(),
            local_tokens: RwLock::new(tokens::LocalTokens::default()),
            next_local_token: std::sync::atomic::AtomicU64::new(1),
            dynamic: dynauth::DynamicState::default(),
            esprim: esprim::EsPrimState::default(),
            forwarder: std::sync::OnceLock::new(),
        });
        cse.ensure_cse_base().await?;
        let parents = cse.store.read(|r| r.subscribed_parents())?;
        if let Ok(mut s) = cse.subscribed.write() {
            s.extend(parents);
        }
        Ok(cse)
    }

    /// The configuration in force.
    pub fn config(&self) -> &CseConfig {
        &self.cfg
    }

    /// Starts the background task that deletes expired resources; it ends with the returned handle.
    pub fn spawn_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        expiry::spawn(self.clone())
    }

    async fn ensure_cse_base(&self) -> Result<()> {
        let home = &self.cfg.home;
        let name = home.cse_base_name.clone();
        if let Some(mut cb) = self.store.read(|r| r.get_by_srn(&name))? {
            // The points of access are where this process listens now; e2eSecInfo is what
            // this version supports.
            let poa = serde_json::to_value(&self.cfg.poa).unwrap_or_default();
            let esi = e2e_sec_info();
            if cb.attrs.get("poa") != Some(&poa) || cb.attrs.get("esi") != Some(&esi) {
                cb.attrs.insert("poa".into(), poa);
                cb.attrs.insert("esi".into(), esi);
                Self::touch(&mut cb.attrs, Timestamp::now());
                self.store.write(move |w| w.update(&cb)).await?;
            }
            return Ok(());
        }
        let now = Timestamp::now().to_onem2m();
        let srt: Vec<u16> = m2mtrust_model::schema::CREATABLE
            .iter()
            .map(|t| t.0)
            .chain([5])
            .collect();
        let attrs = json!({
            "ty": ResourceType::CSE_BASE.0,
            "ri": home.cse_id.bare(),
            "rn": name,
            "pi": "",
            "ct": now,
            "lt": now,
            "cst": 1,
            "csi": home.cse_id.as_str(),
            "srt": srt,
            "poa": self.cfg.poa,
            "csz": ["application/json"],
            "srv": ["2a", "3", "4"],
            "esi": e2e_sec_info(),
        });
        let cb = Resource {
            ty: ResourceType::CSE_BASE,
            srn: name,
            attrs: attrs.as_object().cloned().unwrap_or_default(),
        };
        self.store.write(move |w| w.insert(&cb)).await?;
        Ok(())
    }

    /// Processes one request primitive from an authenticated (or not) peer.
    pub async fn handle(&self, req: Request, peer: PeerIdentity) -> Response {
        let started = std::time::Instant::now();
        let mut resp = match self.dispatch(&req, &peer).await {
            Ok(r) => r,
            Err(e) => match e {
                CseError::Store(inner) => {
                    tracing::error!(error = %inner, rqi = %req.request_id, "storage failure");
                    Response::error(Rsc::INTERNAL_SERVER_ERROR, "internal error")
                }
                CseError::AskDas(message, info) => {
                    let mut resp = Response::error(Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, message);
                    resp.token_request_info = Some(*info);
                    resp
                }
                e => Response::error(Rsc::from(&e), e.to_string()),
            },
        };
        resp.request_id = req.request_id.clone();
        tracing::debug!(
            op = ?req.operation, to = %req.to, from = req.from.as_deref().unwrap_or(""),
            rsc = resp.status.0, micros = started.elapsed().as_micros() as u64, "request"
        );
        resp
    }

    fn dispatch<'a>(
        &'a self,
        req: &'a Request,
        peer: &'a PeerIdentity,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(rvi) = &req.release_version
                && !SUPPORTED_RVI.contains(&rvi.as_str())
            {
                return Err(CseError::ReleaseVersionNotSupported(format!(
                    "release version {rvi:?} is not supported (supported: {})",
                    SUPPORTED_RVI.join(", ")
                )));
            }
            let originator = match req.from.as_deref() {
                None | Some("") => None,
                Some(f) => Some(
                    Originator::parse(f, &self.cfg.home)
                        .map_err(|e| CseError::BadRequest(e.to_string()))?,
                ),
            };
            let authz_originator = originator
                .as_ref()
                .and_then(|o| access::authz_originator(self, o));
            let mut ctx = Ctx {
                req,
                peer,
                originator,
                authz_originator,
                now: Timestamp::now(),
                tokens: Vec::new(),
                assigned_tokens: Vec::new(),
                roles: Vec::new(),
                denied: dynauth::LastDenial::default(),
            };
            let addressed = self.resolve(&ctx)?;
            let registering = req.operation == Operation::Create
                && matches!(
                    req.resource_type,
                    Some(ResourceType::AE | ResourceType::REMOTE_CSE)
                )
                && matches!(&addressed, Addressed::Resource(r) if r.ty == ResourceType::CSE_BASE);
            let registration = registering.then_some(req.resource_type).flatten();
            self.bind_identity(&mut ctx, registration)?;
            if !registering {
                self.check_registered(&ctx)?;
            }
            // Tokens, Role-IDs and access control of a forwarded request are the hosting CSE's.
            if matches!(addressed, Addressed::Remote { .. }) {
                return self.operate(&ctx, addressed).await;
            }
            // End-to-end security of primitives (TS-0003 §8.4): securityInfo to <CSEBase>.
            if req.operation == Operation::Notify
                && matches!(&addressed, Addressed::Resource(r) if r.ty == ResourceType::CSE_BASE)
                && let Some(resp) = self.esprim_notify(req, peer).await
            {
                return Ok(resp);
            }
            self.verify_tokens(&mut ctx).await?;
            self.verify_roles(&mut ctx)?;
            let assigned = std::mem::take(&mut ctx.assigned_tokens);
            let mut result = self.operate(&ctx, addressed).await;
            // Dynamic authorization (TS-0003 §7.3) when access control refused: the Token
            // Request Information for an originator prepared to request tokens (§7.3.2.3),
            // otherwise one consultation of the DAS and a second decision (§7.3.2.2).
            if let Err(CseError::NoPrivilege(message)) = &result
                && let Some(denied) = ctx.denied.take()
            {
                if req.token_request_indicator {
                    if let Some(info) = self.token_request_info(&ctx, &denied)? {
                        result = Err(CseError::AskDas(message.clone(), Box::new(info)));
                    }
                } else if self.consult(&mut ctx, &denied).await? {
                    let addressed = self.resolve(&ctx)?;
                    result = self.operate(&ctx, addressed).await;
                }
            }
            result.map(|mut resp| {
                resp.assigned_tokens = assigned;
                resp
            })
        })
    }

    /// Carries out the operation on what the request addresses.
    async fn operate(&self, ctx: &Ctx<'_>, addressed: Addressed) -> Result<Response> {
        match (ctx.req.operation, addressed) {
            (Operation::Create, Addressed::Resource(parent)) => self.create(ctx, parent).await,
            (Operation::Retrieve, Addressed::Resource(r)) => self.retrieve(ctx, r),
            (Operation::Update, Addressed::Resource(r)) => self.update(ctx, r).await,
            (Operation::Delete, Addressed::Resource(r)) => self.delete(ctx, r).await,
            (Operation::Notify, Addressed::Resource(_)) => Err(CseError::OperationNotAllowed(
                "this CSE does not accept notifications for hosted resources".into(),
            )),
            (op, Addressed::Latest(cnt) | Addressed::Oldest(cnt))
                if !matches!(op, Operation::Retrieve | Operation::Delete) =>
            {
                Err(CseError::OperationNotAllowed(format!(
                    "only RETRIEVE and DELETE apply to <latest>/<oldest> of {}",
                    cnt.srn
                )))
            }
            (op, Addressed::Latest(cnt)) => self.edge(ctx, op, cnt, true).await,
            (op, Addressed::Oldest(cnt)) => self.edge(ctx, op, cnt, false).await,
            (_, Addressed::FanOut { group, rest }) => self.fan_out(ctx, group, rest).await,
            (_, Addressed::Remote { cse }) => self.forward(ctx, &cse).await,
        }
    }

    /// TS-0003 §7.2.1 / digest §4: an AE-ID or CSE-ID that is not registered here may not send
    /// requests (except its registration); 4106.
    fn check_registered(&self, ctx: &Ctx<'_>) -> Result<()> {
        let Some(orig) = &ctx.originator else {
            return Err(bad_request("the request has no originator (X-M2M-Origin)"));
        };
        if self.is_admin(orig) {
            return Ok(());
        }
        let registered = match orig {
            Originator::LocalAe(ae) | Originator::SpAe(ae) => self
                .store
                .read(|r| r.get(ae))?
                .is_some_and(|r| r.ty == ResourceType::AE && !r.is_expired(ctx.now)),
            Originator::Cse(c) => {
                c == &self.cfg.home.cse_id || self.remote_cse(c.bare())?.is_some()
            }
            Originator::RemoteAe(c, _) => self.remote_cse(c.bare())?.is_some(),
            // Other SPs reach us only through a registered CSE; access control decides.
            Originator::Foreign(_) => true,
        };
        if registered {
            Ok(())
        } else {
            Err(CseError::NotRegistered(format!(
                "originator {orig} is not registered with this CSE"
            )))
        }
    }

    fn remote_cse(&self, ri: &str) -> Result<Option<Resource>> {
        Ok(self
            .store
            .read(|r| r.get(ri))?
            .filter(|r| r.ty == ResourceType::REMOTE_CSE))
    }

    pub(crate) fn is_admin(&self, orig: &Originator) -> bool {
        orig.canonical() == self.cfg.admin_originator
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn home(&self) -> &Home {
        &self.cfg.home
    }

    /// The address of `r` in the form the request used: structured (`cse-in/ae`) or unstructured (`ri`).
    pub(crate) fn address_of(&self, ctx: &Ctx<'_>, r: &Resource) -> String {
        if target::is_structured(ctx.req, self.home()) {
            r.srn.clone()
        } else {
            r.ri().to_string()
        }
    }

    /// Sets `lt` and keeps `et` within bounds.
    pub(crate) fn touch(attrs: &mut Map<String, Value>, now: Timestamp) {
        attrs.insert("lt".into(), Value::String(now.to_onem2m()));
    }
}

/// `e2eSecInfo` (`esi`) of `<CSEBase>`: the ESPrim SUIDs this CSE supports as Receiver; rand
/// objects are generated on request (no shared one).
fn e2e_sec_info() -> Value {
    json!({ "esf": esprim::SUPPORTED_ESPRIM_SUIDS })
}

pub(crate) fn bad_request(msg: &str) -> CseError {
    CseError::BadRequest(msg.to_string())
}

/// A fresh identifier: a type prefix and 12 random base-36 characters.
pub(crate) fn new_id(prefix: &str) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 12);
    s.push_str(prefix);
    for _ in 0..12 {
        s.push(CHARS[rng.random_range(0..CHARS.len())] as char);
    }
    s
}
