//! Dynamic authorization at the hosting CSE (TS-0003 §7.3).
//!
//! - **Direct** (§7.3.2.2): when access control denies a request and the target (or the
//!   nearest ancestor that has them) links enabled `<dynamicAuthorizationConsultation>`
//!   resources through `dynamicAuthorizationConsultationIDs`, the CSE sends the DAS a NOTIFY
//!   carrying `m2m:securityInfo` type 1 (`dasRequest`), verifies the tokens of the type 2
//!   answer, turns its `dynamicACPInfo` into a dynamic ACP of the target that expires with the
//!   privileges lifetime, caches both, and decides again. No consultation, a disabled one, a DAS
//!   that cannot be reached, or an answer that is not type 2 leave the refusal (4103).
//! - **Indirect**, step 2 (§7.3.2.3): a refused request with the token request indicator is
//!   answered with the Token Request Information (`tqf`) naming the DASs to ask, and step 5:
//!   Token-IDs (`tids`) are resolved from the Token Repository (`<token>` resources here) or
//!   from the DAS of the token's issuer.
//!
//! Dynamic ACPs are kept apart from the resource tree (many resource types cannot have an ACP
//! child, and linking them into `acpi` would change what the owner configured): they are
//! evaluated, after the static policy and the tokens, for the resource they were granted on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use m2mtrust_authz::{CompiledAcp, Decision, RuleSet};
use m2mtrust_model::{
    Operation, Originator, Request, Resource, ResourceType as T, ResponseStatusCode as Rsc,
    Timestamp,
};
use m2mtrust_store::StoreExt;
use serde_json::{Value, json};

use crate::access::Operation as AccessOp;
use crate::error::Result;
use crate::tokens::VerifiedToken;
use crate::{Cse, CseError, Ctx};

/// `securityInfoType` of a Dynamic Authorization Request.
pub const SIT_DYNAMIC_AUTHORIZATION_REQUEST: u64 = 1;
/// `securityInfoType` of a Dynamic Authorization Response.
pub const SIT_DYNAMIC_AUTHORIZATION_RESPONSE: u64 = 2;

/// Sends request primitives to Dynamic Authorization Systems (a NOTIFY to a
/// `dynamicAuthorizationPoA`), authenticated as this CSE.
pub trait DasClient: Send + Sync {
    /// Sends `req` to the DAS at `uri` and returns its response.
    fn send(
        &self,
        uri: &str,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<m2mtrust_model::Response, String>> + Send>>;
}

/// What access control refused in a request: the resource and the operation.
#[derive(Clone, Debug)]
pub(crate) struct Denied {
    pub target: Resource,
    pub op: AccessOp,
}

/// The last refusal of a request, recorded by the access check.
#[derive(Default)]
pub(crate) struct LastDenial(Mutex<Option<Denied>>);

impl LastDenial {
    pub(crate) fn record(&self, target: &Resource, op: AccessOp) {
        if let Ok(mut d) = self.0.lock() {
            *d = Some(Denied {
                target: target.clone(),
                op,
            });
        }
    }

    pub(crate) fn take(&self) -> Option<Denied> {
        self.0.lock().ok().and_then(|mut d| d.take())
    }
}

/// A dynamic `<accessControlPolicy>` from `dynamicACPInfo`.
struct DynamicAcp {
    acp: Arc<CompiledAcp>,
    not_after: DateTime<Utc>,
}

/// Dynamic ACPs kept per resource; older ones make room.
const ACPS_PER_TARGET: usize = 8;
/// Tokens kept per (holder, resource) from direct consultations; older ones make room.
const TOKENS_PER_TARGET: usize = 4;
/// (holder, resource) pairs with cached tokens at most; beyond, expired entries are dropped
/// and, if that is not enough, the cache starts again.
const MAX_TOKEN_ENTRIES: usize = 100_000;

/// The CSE's dynamic authorization state: the DAS client, dynamic ACPs by target `ri`, and the
/// tokens DASs issued in direct consultations, by (holder, target `ri`).
#[derive(Default)]
pub(crate) struct DynamicState {
    client: OnceLock<Arc<dyn DasClient>>,
    acps: RwLock<HashMap<String, Vec<DynamicAcp>>>,
    tokens: RwLock<HashMap<HolderTarget, Vec<Arc<VerifiedToken>>>>,
}

/// (holder, target `ri`).
type HolderTarget = (String, String);

/// What a DAS granted in one consultation.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Granted {
    pub tokens: usize,
    pub acp: bool,
}

impl Granted {
    fn any(&self) -> bool {
        self.tokens > 0 || self.acp
    }
}

fn to_utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The oneM2M operation number (TS-0004 `m2m:operation`) of an access operation.
fn operation_number(op: AccessOp) -> u8 {
    match op {
        AccessOp::Create => 1,
        AccessOp::Retrieve | AccessOp::Discovery => 2,
        AccessOp::Update => 3,
        AccessOp::Delete => 4,
        AccessOp::Notify => 5,
    }
}

impl Cse {
    /// Installs the client the CSE consults Dynamic Authorization Systems with; without one,
    /// no DAS is consulted and Token-IDs resolve only from local `<token>` resources.
    pub fn set_das_client(&self, client: Arc<dyn DasClient>) {
        let _ = self.dynamic.client.set(client);
    }

    /// The enabled `<dynamicAuthorizationConsultation>`s that apply to `target`: those its
    /// `daci` names; when it has none (or only dangling ones), its parent's, up to `<CSEBase>`.
    pub(crate) fn consultations(&self, target: &Resource) -> Result<Vec<Resource>> {
        let mut current = target.clone();
        loop {
            let ids = current.str_list("daci");
            if !ids.is_empty() {
                let mut found = Vec::new();
                for id in ids {
                    let local = id.rsplit('/').next().unwrap_or(id);
                    if let Some(dac) = self
                        .store()
                        .read(|s| s.get(local))?
                        .filter(|r| r.ty == T::DYNAMIC_AUTHORIZATION_CONSULTATION)
                    {
                        found.push(dac);
                    }
                }
                if !found.is_empty() {
                    // A disabled consultation is still the applicable one: the CSE "shall NOT
                    // initiate" consultation with it, and does not look further up.
                    found.retain(|d| d.attrs.get("dae").and_then(Value::as_bool) == Some(true));
                    return Ok(found);
                }
            }
            if current.ty == T::CSE_BASE {
                return Ok(Vec::new());
            }
            let Some((parent, _)) = current.srn.rsplit_once('/') else {
                return Ok(Vec::new());
            };
            let parent = parent.to_string();
            match self.store().read(|s| s.get_by_srn(&parent))? {
                Some(p) => current = p,
                None => return Ok(Vec::new()),
            }
        }
    }

    /// The `dasRequest` (Table 7.3.2.2-1, `m2m:dynAuthDasRequest`) about a refused request.
    fn das_request(&self, ctx: &Ctx<'_>, denied: &Denied, lifetime: Option<u64>) -> Value {
        let home = self.home();
        let mut dreq = serde_json::Map::new();
        if let Some(orig) = &ctx.originator {
            dreq.insert("or".into(), orig.absolute(home).into());
            let trt = match orig {
                Originator::Cse(_) => T::REMOTE_CSE.0,
                _ => T::AE.0,
            };
            dreq.insert("trt".into(), trt.into());
        }
        dreq.insert("op".into(), operation_number(denied.op).into());
        dreq.insert(
            "trid".into(),
            format!("{}/{}", home.cse_id, denied.target.srn).into(),
        );
        dreq.insert("rts".into(), ctx.now.to_onem2m().into());
        if let Some(addr) = ctx.peer.addr {
            let ip = addr.ip().to_canonical();
            let key = if ip.is_ipv4() { "ip4" } else { "ip6" };
            dreq.insert("oip".into(), json!({ key: ip.to_string() }));
        }
        if let Some(secs) = lifetime {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000);
            dreq.insert("ppl".into(), ctx.now.plus_secs(secs).to_onem2m().into());
        }
        if !ctx.req.role_ids.is_empty() {
            dreq.insert("orid".into(), ctx.req.role_ids.clone().into());
        }
        Value::Object(dreq)
    }

    /// The DAS URIs of the consultations, in order, each once, with the shortest lifetime any
    /// of them prefers.
    fn das_points(&self, target: &Resource) -> Result<(Vec<String>, Option<u64>)> {
        let mut uris: Vec<String> = Vec::new();
        let mut lifetime: Option<u64> = None;
        for dac in self.consultations(target)? {
            for uri in dac.str_list("dap") {
                // Only the DASs the operator configured: a consultation resource names where
                // to ask, not whom to trust (anyone who may create one could point it at a
                // server of their own).
                let trusted = self
                    .cfg
                    .das_uris
                    .iter()
                    .any(|t| t.trim_end_matches('/') == uri.trim_end_matches('/'));
                if !trusted {
                    tracing::warn!(target: "audit", das = %uri, consultation = %dac.srn, "DAS not configured as trusted; not consulted");
                    continue;
                }
                if !uris.iter().any(|u| u == uri) {
                    uris.push(uri.to_string());
                }
            }
            if let Some(dal) = dac.uint("dal") {
                lifetime = Some(lifetime.map_or(dal, |l| l.min(dal)));
            }
        }
        Ok((uris, lifetime))
    }

    /// §7.3.2.3 step 2.3: the Token Request Information (`m2m:dynAuthTokenReqInfo`) of a
    /// refusal, or `None` when no consultation applies.
    pub(crate) fn token_request_info(
        &self,
        ctx: &Ctx<'_>,
        denied: &Denied,
    ) -> Result<Option<Value>> {
        let (uris, lifetime) = self.das_points(&denied.target)?;
        if uris.is_empty() {
            return Ok(None);
        }
        let dreq = self.das_request(ctx, denied, lifetime);
        let dasi: Vec<Value> = uris
            .iter()
            .map(|uri| json!({"uri": uri, "dreq": dreq}))
            .collect();
        Ok(Some(json!({ "dasi": dasi })))
    }

    /// §7.3.2.2 steps 2.2-4.1: consults the DASs of the refused target; verified tokens join
    /// the request and the cache, `dynamicACPInfo` becomes a dynamic ACP. Whether anything was
    /// granted (the caller then decides again).
    pub(crate) async fn consult(&self, ctx: &mut Ctx<'_>, denied: &Denied) -> Result<bool> {
        let (uris, lifetime) = self.das_points(&denied.target)?;
        if uris.is_empty() {
            tracing::debug!(resource = %denied.target.srn, "no enabled dynamic authorization consultation applies");
            return Ok(false);
        }
        let Some(client) = self.dynamic.client.get().cloned() else {
            tracing::warn!(resource = %denied.target.srn, "a dynamic authorization consultation applies but this CSE has no DAS client");
            return Ok(false);
        };
        let dreq = self.das_request(ctx, denied, lifetime);
        for uri in uris {
            let answer = match self.ask_das(client.as_ref(), &uri, &dreq).await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::warn!(das = %uri, error = %e, "DAS unreachable");
                    continue;
                }
            };
            if answer.status != Rsc::OK {
                tracing::info!(das = %uri, rsc = answer.status.0, "DAS refused the consultation");
                continue;
            }
            let granted = self.accept_das_response(ctx, denied, answer.content.as_ref());
            tracing::info!(
                target: "audit", originator = %ctx.orig(), resource = %denied.target.srn, das = %uri,
                tokens = granted.tokens, dynamic_acp = granted.acp, "dynamic authorization consulted"
            );
            if granted.any() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sends `dreq` to the DAS at `uri` as this CSE (NOTIFY, `securityInfo` type 1) and waits
    /// at most the configured time for its answer.
    async fn ask_das(
        &self,
        client: &dyn DasClient,
        uri: &str,
        dreq: &Value,
    ) -> std::result::Result<m2mtrust_model::Response, String> {
        let mut notify = Request::new(
            Operation::Notify,
            uri,
            Some(self.home().cse_id.as_str().to_string()),
        );
        notify.request_id = crate::new_id("das");
        notify.content = Some(json!({"m2m:seci": {
            "sit": SIT_DYNAMIC_AUTHORIZATION_REQUEST,
            "dreq": dreq,
        }}));
        match tokio::time::timeout(self.cfg.das_timeout, client.send(uri, notify)).await {
            Ok(answer) => answer,
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// Step 4.1 on one DAS answer: verifies its tokens (issuer, audience = this CSE, holder =
    /// the originator, validity) and installs its dynamic ACP. Nothing is granted unless the
    /// answer is `securityInfo` type 2.
    fn accept_das_response(
        &self,
        ctx: &mut Ctx<'_>,
        denied: &Denied,
        content: Option<&Value>,
    ) -> Granted {
        let mut granted = Granted::default();
        let Some(dres) = das_response(content) else {
            return granted;
        };
        let now = to_utc(ctx.now);
        let Some(orig) = &ctx.originator else {
            return granted;
        };
        let holder = orig.absolute(self.home());
        if let Some(tkns) = dres.get("tkns").and_then(Value::as_array) {
            let audience = self.absolute_cse_id();
            for jwt in tkns.iter().filter_map(Value::as_str) {
                let Some(verifier) = self.token_verifier.get() else {
                    tracing::warn!("a DAS returned tokens but this CSE trusts no token issuer");
                    break;
                };
                match verifier.verify(jwt, &audience, &holder, now) {
                    Ok(token) => {
                        let token = Arc::new(token);
                        self.cache_direct_token(&holder, denied.target.ri(), token.clone(), now);
                        ctx.tokens.push(token);
                        granted.tokens += 1;
                    }
                    Err(why) => {
                        tracing::info!(target: "audit", originator = %holder, reason = %why, "token from DAS refused");
                    }
                }
            }
        }
        if let Some(dai) = dres.get("dai")
            && let Some(gp) = dai.get("gp")
        {
            let not_after = match dai.get("pl").and_then(Value::as_str) {
                Some(pl) => match Timestamp::parse(pl) {
                    Some(t) => Some(to_utc(t)),
                    None => {
                        tracing::info!(
                            pl,
                            "DAS privileges lifetime is not a timestamp; dynamic ACP ignored"
                        );
                        None
                    }
                },
                None => Some(now + chrono::Duration::seconds(self.cfg.default_dynamic_acp_secs)),
            };
            match (
                not_after,
                CompiledAcp::compile(&json!({"pv": gp, "pvs": gp})),
            ) {
                (Some(not_after), Ok(acp)) if not_after > now => {
                    let id = format!("dynamic-{}", crate::new_id(""));
                    let acp = Arc::new(acp.with_id(id.as_str()));
                    if let Ok(mut acps) = self.dynamic.acps.write() {
                        let list = acps.entry(denied.target.ri().to_string()).or_default();
                        list.retain(|a| a.not_after > now);
                        if list.len() >= ACPS_PER_TARGET {
                            list.remove(0);
                        }
                        list.push(DynamicAcp { acp, not_after });
                    }
                    tracing::info!(target: "audit", resource = %denied.target.srn, until = %not_after, "dynamic ACP created");
                    granted.acp = true;
                }
                (Some(_), Ok(_)) => {
                    tracing::info!("DAS privileges lifetime already passed; dynamic ACP ignored")
                }
                (_, Err(e)) => {
                    tracing::info!(error = %e, "DAS granted privileges that do not compile; ignored")
                }
                (None, _) => {}
            }
        }
        granted
    }

    fn cache_direct_token(
        &self,
        holder: &str,
        target_ri: &str,
        token: Arc<VerifiedToken>,
        now: DateTime<Utc>,
    ) {
        if let Ok(mut map) = self.dynamic.tokens.write() {
            if map.len() >= MAX_TOKEN_ENTRIES {
                map.retain(|_, l| l.iter().any(|t| t.not_after > now));
                if map.len() >= MAX_TOKEN_ENTRIES {
                    map.clear();
                }
            }
            let list = map
                .entry((holder.to_string(), target_ri.to_string()))
                .or_default();
            list.retain(|t| t.not_after > now && t.token_id != token.token_id);
            if list.len() >= TOKENS_PER_TARGET {
                list.remove(0);
            }
            list.push(token);
        }
    }

    /// Tokens DASs issued to `holder` in earlier direct consultations about `target_ri`, still
    /// valid: a later request of the same holder uses them without asking again (§7.3.2.2
    /// step 4.1.1.3).
    pub(crate) fn cached_direct_tokens(
        &self,
        holder: &str,
        target_ri: &str,
        now: DateTime<Utc>,
    ) -> Vec<Arc<VerifiedToken>> {
        let Ok(map) = self.dynamic.tokens.read() else {
            return Vec::new();
        };
        map.get(&(holder.to_string(), target_ri.to_string()))
            .map(|l| l.iter().filter(|t| t.not_after > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a dynamic ACP of `target` permits `op` (expired ones are dropped).
    pub(crate) fn dynamic_acp_permits(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
    ) -> Option<String> {
        let authz_orig = ctx.authz_originator.as_ref()?;
        let now = to_utc(ctx.now);
        let acps: Vec<Arc<CompiledAcp>> = {
            let map = self.dynamic.acps.read().ok()?;
            let list = map.get(target.ri())?;
            list.iter()
                .filter(|a| a.not_after > now)
                .map(|a| a.acp.clone())
                .collect()
        };
        if acps.is_empty() {
            if let Ok(mut map) = self.dynamic.acps.write()
                && map
                    .get(target.ri())
                    .is_some_and(|l| l.iter().all(|a| a.not_after <= now))
            {
                map.remove(target.ri());
            }
            return None;
        }
        let roles = self.roles_for(ctx, target);
        let req = self.token_access_request(ctx, authz_orig, op, &roles);
        match self
            .pdp
            .decide(&acps, RuleSet::Privileges, &req, &crate::access::NoGroups)
        {
            Decision::Permit(_) => Some(format!("dynamic ACP permits {op:?}")),
            Decision::Deny(_) => None,
        }
    }

    /// This CSE's Absolute CSE-ID, the audience its tokens must name.
    pub(crate) fn absolute_cse_id(&self) -> String {
        format!("{}{}", self.home().sp_id, self.home().cse_id)
    }

    /// §7.3.2.3 step 5: the tokens named by Token-IDs, from `<token>` resources of this CSE's
    /// Token Repository or else from the DAS of each issuer. Every ID must resolve.
    pub(crate) async fn resolve_token_ids(&self, ctx: &Ctx<'_>) -> Result<Vec<String>> {
        let ids = &ctx.req.token_ids;
        let mut found: Vec<Option<String>> = vec![None; ids.len()];
        let repository = self.repository(T::TOKEN)?;
        for (i, id) in ids.iter().enumerate() {
            found[i] = repository
                .iter()
                .filter(|t| t.attrs.get("tkid").and_then(Value::as_str) == Some(id))
                .find(|t| self.is_authority(t.creator()))
                .and_then(|t| t.attrs.get("tkob").and_then(Value::as_str))
                .map(str::to_string);
        }
        // Unresolved IDs go to their issuers' DASs, one request per DAS.
        let mut by_das: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            if found[i].is_some() {
                continue;
            }
            let issuer = id.rsplit_once('@').map(|(_, fqdn)| fqdn).unwrap_or("");
            let Some(uri) = self.cfg.token_issuer_das.get(issuer) else {
                return Err(CseError::NoPrivilege(format!(
                    "Token-ID {id} cannot be resolved: no token repository entry and no DAS known for issuer {issuer:?}"
                )));
            };
            by_das.entry(uri.clone()).or_default().push(i);
        }
        if !by_das.is_empty() {
            let Some(client) = self.dynamic.client.get().cloned() else {
                return Err(CseError::NoPrivilege(
                    "Token-IDs cannot be resolved: this CSE has no DAS client".into(),
                ));
            };
            for (uri, indexes) in by_das {
                let tids: Vec<&str> = indexes.iter().map(|&i| ids[i].as_str()).collect();
                let mut dreq = json!({
                    "op": operation_number(crate::access::access_op(ctx.req.operation)),
                    "tids": tids,
                });
                if let Some(orig) = &ctx.originator {
                    dreq["or"] = orig.absolute(self.home()).into();
                }
                let answer = self.ask_das(client.as_ref(), &uri, &dreq).await;
                let tokens: Vec<String> = match answer {
                    Ok(resp) if resp.status == Rsc::OK => das_response(resp.content.as_ref())
                        .and_then(|d| d.get("tkns"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    Ok(resp) => {
                        return Err(CseError::NoPrivilege(format!(
                            "the DAS at {uri} refused to resolve Token-IDs ({})",
                            resp.status.0
                        )));
                    }
                    Err(e) => {
                        return Err(CseError::NoPrivilege(format!(
                            "the DAS at {uri} could not be asked for Token-IDs: {e}"
                        )));
                    }
                };
                // Match returned tokens to the IDs by their `jti` (read unverified here; every
                // token is verified before use).
                for jwt in tokens {
                    let unresolved: Vec<usize> = indexes
                        .iter()
                        .copied()
                        .filter(|&i| found[i].is_none())
                        .collect();
                    let slot = match unverified_jti(&jwt) {
                        Some(jti) => unresolved.into_iter().find(|&i| ids[i] == jti),
                        // An encrypted token answers the one ID still open, if only one is.
                        None if unresolved.len() == 1 => Some(unresolved[0]),
                        None => None,
                    };
                    if let Some(i) = slot {
                        found[i] = Some(jwt);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, jwt) in found.into_iter().enumerate() {
            match jwt {
                Some(jwt) => out.push(jwt),
                None => {
                    return Err(CseError::NoPrivilege(format!(
                        "Token-ID {} could not be retrieved",
                        ids[i]
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Whether `creator` is an Authorization Authority of this CSE.
    pub(crate) fn is_authority(&self, creator: Option<&str>) -> bool {
        let Some(creator) = creator else {
            return false;
        };
        creator == self.cfg.admin_originator
            || self.cfg.role_authorities.iter().any(|a| a == creator)
    }
}

/// The `dasResponse` of a DAS answer, when it is a Dynamic Authorization Response
/// (`securityInfo` type 2); nothing is granted otherwise.
fn das_response(content: Option<&Value>) -> Option<&Value> {
    let seci = content?.get("m2m:seci")?;
    if seci.get("sit").and_then(Value::as_u64) != Some(SIT_DYNAMIC_AUTHORIZATION_RESPONSE) {
        tracing::info!(sit = ?seci.get("sit"), "DAS answer is not a Dynamic Authorization Response");
        return None;
    }
    seci.get("dres")
}

/// The `jti` of a compact JWS, read without verification; `None` for anything else (a JWE's
/// payload is encrypted).
fn unverified_jti(jwt: &str) -> Option<String> {
    use base64::Engine;
    let mut parts = jwt.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("jti")?.as_str().map(str::to_string)
}
