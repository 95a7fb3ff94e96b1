//! Indirect dynamic authorization at the hosting CSE (TS-0003 §7.3.2.3, §7.3.2.5): tokens a
//! request carries (`tkns`), names by Token-ID (`tids`, fetched from the Token Repository or
//! the issuer's DAS) or by the Local-Token-IDs assigned earlier (`ltids`), are verified all
//! together — one that cannot be retrieved or verified fails the request (step 6.1.4) — and
//! their permissions are evaluated when the static policy denies (§7.3.2.5 step 3). Tokens a
//! DAS issued to the same holder in a direct consultation (§7.3.2.2) join them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use m2mtrust_authz::{CompiledAcp, Decision, RuleSet};
use m2mtrust_model::{Home, Resource};
use serde_json::{Value, json};

use crate::access::Operation as AccessOp;
use crate::error::Result;
use crate::{Cse, CseError, Ctx};

/// One permission of a token (`m2m:tokenPermission`).
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// `ris`: the resources it applies to (any addressing form); `None`: no restriction.
    pub resource_ids: Option<Vec<String>>,
    /// `pv`: the privileges (`setOfAcrs`), evaluated like an ACP's `privileges`.
    pub privileges: Option<Value>,
    /// `rids`: role IDs it grants.
    pub role_ids: Option<Vec<String>>,
}

/// A token whose signature, issuer, audience, holder and validity were verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// `jti`.
    pub token_id: String,
    /// `iss`.
    pub issuer: String,
    /// `azp`: the Absolute AE-ID or CSE-ID it was issued to.
    pub holder: String,
    /// `exp`.
    pub not_after: DateTime<Utc>,
    /// `tkps`.
    pub permissions: Vec<TokenGrant>,
}

/// Verifies oneM2M tokens (§7.3.2.6 "Validating a JWT"): the hosting CSE supplies its own
/// Absolute CSE-ID as the expected audience and the request's Absolute originator as holder.
pub trait TokenVerifier: Send + Sync {
    /// The verified token, or why it is refused.
    fn verify(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<VerifiedToken, String>;
}

/// Local-Token-IDs held at most; beyond, expired ones are dropped and, if that is not enough,
/// the Local-Token-IDs of new tokens are not kept (the tokens still serve the request that
/// carried them; a later use of such a Local-Token-ID is refused as unknown).
const MAX_LOCAL_TOKENS: usize = 100_000;

/// Verified tokens by the Local-Token-ID assigned to them, and the reverse index.
#[derive(Default)]
pub(crate) struct LocalTokens {
    by_lti: std::collections::HashMap<String, Arc<VerifiedToken>>,
    /// (issuer, Token-ID, holder) → Local-Token-ID.
    by_token: std::collections::HashMap<(String, String, String), String>,
}

impl LocalTokens {
    fn key(t: &VerifiedToken) -> (String, String, String) {
        (t.issuer.clone(), t.token_id.clone(), t.holder.clone())
    }

    fn get(&self, lti: &str) -> Option<Arc<VerifiedToken>> {
        self.by_lti.get(lti).cloned()
    }

    fn remove(&mut self, lti: &str) {
        if let Some(t) = self.by_lti.remove(lti) {
            self.by_token.remove(&Self::key(&t));
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        self.by_lti.retain(|_, t| t.not_after > now);
        let by_lti = &self.by_lti;
        self.by_token.retain(|_, lti| by_lti.contains_key(lti));
    }
}

fn refused(msg: impl Into<String>) -> CseError {
    CseError::NoPrivilege(msg.into())
}

impl Cse {
    /// Installs the verifier of tokens from trusted issuers; without one, requests carrying
    /// tokens are refused.
    pub fn set_token_verifier(&self, verifier: Arc<dyn TokenVerifier>) {
        let _ = self.token_verifier.set(verifier);
    }

    /// §7.3.2.3 step 6: verifies every token of the request (all or nothing) and assigns
    /// Local-Token-IDs to new ones (step 6.2/7).
    pub(crate) async fn verify_tokens(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let req = ctx.req;
        let now = chrono::DateTime::from_timestamp_micros(ctx.now.0).unwrap_or_else(Utc::now);
        if req.tokens.is_empty() && req.token_ids.is_empty() && req.local_token_ids.is_empty() {
            return Ok(());
        }
        let Some(orig) = &ctx.originator else {
            return Err(refused("a request with tokens needs an originator"));
        };
        let holder = orig.absolute(&self.cfg.home);
        let Some(verifier) = self.token_verifier.get() else {
            return Err(refused("this CSE trusts no token issuer"));
        };
        let fetched = if req.token_ids.is_empty() {
            Vec::new()
        } else {
            self.resolve_token_ids(ctx).await?
        };
        let audience = self.absolute_cse_id();
        for (i, jwt) in req.tokens.iter().chain(fetched.iter()).enumerate() {
            let token = verifier.verify(jwt, &audience, &holder, now).map_err(|why| {
                tracing::info!(target: "audit", originator = %holder, token = i, reason = %why, "token refused");
                refused(format!("token {} was refused: {why}", i + 1))
            })?;
            let token = Arc::new(token);
            let lti = self.local_token_id(&token);
            ctx.assigned_tokens.push((lti, token.token_id.clone()));
            ctx.tokens.push(token);
        }
        for lti in &req.local_token_ids {
            let cached = self.local_tokens.read().ok().and_then(|m| m.get(lti));
            let Some(token) = cached else {
                return Err(refused(format!("unknown Local-Token-ID {lti}")));
            };
            if token.not_after <= now {
                if let Ok(mut m) = self.local_tokens.write() {
                    m.remove(lti);
                }
                return Err(refused(format!(
                    "the token of Local-Token-ID {lti} expired"
                )));
            }
            // The holder is checked on every use (digest §5.3 [K]).
            if token.holder != holder {
                return Err(refused(format!(
                    "the token of Local-Token-ID {lti} is not held by {holder}"
                )));
            }
            ctx.tokens.push(token);
        }
        Ok(())
    }

    /// The Local-Token-ID of a verified token: the one assigned before to the same token, or
    /// a new one (§7.3.2.3 step 6.2; an NCName, unique here).
    fn local_token_id(&self, token: &Arc<VerifiedToken>) -> String {
        let key = LocalTokens::key(token);
        if let Ok(map) = self.local_tokens.read()
            && let Some(lti) = map.by_token.get(&key)
        {
            return lti.clone();
        }
        let lti = format!(
            "lt{}",
            self.next_local_token.fetch_add(1, Ordering::Relaxed)
        );
        if let Ok(mut map) = self.local_tokens.write() {
            if map.by_lti.len() >= MAX_LOCAL_TOKENS {
                map.prune(Utc::now());
            }
            if map.by_lti.len() < MAX_LOCAL_TOKENS {
                map.by_lti.insert(lti.clone(), token.clone());
                map.by_token.insert(key, lti.clone());
            }
        }
        lti
    }

    /// §7.3.2.5 step 3: the first token permission that applies to `target` and permits `op`,
    /// among the request's tokens and those a DAS gave the originator for `target` before.
    pub(crate) fn token_permits(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
    ) -> Option<String> {
        let authz_orig = ctx.authz_originator.as_ref()?;
        let cached = match &ctx.originator {
            Some(orig) => self.cached_direct_tokens(
                &orig.absolute(&self.cfg.home),
                target.ri(),
                chrono::DateTime::from_timestamp_micros(ctx.now.0).unwrap_or_else(Utc::now),
            ),
            None => Vec::new(),
        };
        if ctx.tokens.is_empty() && cached.is_empty() {
            return None;
        }
        for token in ctx.tokens.iter().chain(cached.iter()) {
            for grant in &token.permissions {
                let Some(pv) = &grant.privileges else {
                    continue;
                };
                if let Some(ris) = &grant.resource_ids
                    && !ris.iter().any(|id| names(id, target, &self.cfg.home))
                {
                    continue;
                }
                // Only `pv` is evaluated; `pvs` repeats it because a compiled ACP needs one.
                let acp = match CompiledAcp::compile(&json!({"pv": pv, "pvs": pv})) {
                    Ok(acp) => acp,
                    Err(e) => {
                        tracing::info!(target: "audit", token = %token.token_id, error = %e, "token privileges do not compile; they grant nothing");
                        continue;
                    }
                };
                let acps = [Arc::new(acp.with_id(token.token_id.as_str()))];
                let roles = self.roles_for(ctx, target);
                let req = self.token_access_request(ctx, authz_orig, op, &roles);
                if let Decision::Permit(_) =
                    self.pdp
                        .decide(&acps, RuleSet::Privileges, &req, &crate::access::NoGroups)
                {
                    return Some(format!(
                        "token {} of {} permits {op:?}",
                        token.token_id, token.issuer
                    ));
                }
            }
        }
        None
    }
}

/// Whether `id` (CSE-relative, SP-relative or absolute; structured or unstructured) names
/// `target`.
pub(crate) fn names(id: &str, target: &Resource, home: &Home) -> bool {
    let absolute = format!("{}{}/", home.sp_id, home.cse_id);
    let sp_relative = format!("{}/", home.cse_id);
    let local = id
        .strip_prefix(&absolute)
        .or_else(|| id.strip_prefix(&sp_relative))
        .unwrap_or(id);
    local == target.ri() || local == target.srn
}
