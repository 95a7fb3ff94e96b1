//! The access decision every request passes: TS-0003 §7.1 through the pure engine of
//! `m2mtrust-authz`, with the CSE supplying the inputs (ACP sets, `rq_authn`, peer address,
//! time, originator location, group membership).
//!
//! Which policy governs a resource: its own `accessControlPolicyIDs`; without them, the default
//! policy of TS-0001 §9.6.1.3 (the creator — or the AE or remote CSE whose registration
//! resource it is — has unrestricted access); when that does not permit either, the parent's
//! policy, up to `<CSEBase>`, whose own `acpi` (if any) is the last word. An
//! `<accessControlPolicy>` is governed by its own `selfPrivileges`, and changing a resource's
//! `acpi` needs UPDATE in the `selfPrivileges` of the ACPs that governed it before.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use m2mtrust_authz::{
    AttributeGrant, Attributes, CompiledAcp, CreateDetails, Decision, DenyReason, Directory,
    GroupMember, Operation as AccessOp, Request as AccessRequest, RuleSet,
};
use m2mtrust_model::{Authentication, Originator, Resource, ResourceType as T};
use m2mtrust_store::StoreExt;
use serde_json::Value;

use crate::error::Result;
use crate::{Cse, CseError, Ctx};

pub use m2mtrust_authz::Operation;

/// What a permit covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// The whole resource.
    All,
    /// Only these attributes (`aca` rules).
    Only(BTreeSet<String>),
}

/// The policy that decides about one resource for one originator.
enum Policy {
    /// The default policy settled it.
    Default(bool),
    /// These ACPs decide; `level` is the structured address whose `acpi` they come from.
    Acps {
        level: String,
        rule_set: RuleSet,
        acps: Vec<Arc<CompiledAcp>>,
    },
}

/// Decisions of one request, shared across the items of a discovery: by the structured address
/// of the level whose policy decided.
#[derive(Default)]
pub(crate) struct Memo {
    decided: HashMap<String, bool>,
}

/// No group lookups (token privileges name originators directly).
pub(crate) struct NoGroups;

impl Directory for NoGroups {
    fn group_members(&self, _group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        None
    }
}

/// `<group>` membership from the store (the PIP of TS-0003 §6.2.2).
struct StoreDirectory<'a>(&'a Cse);

impl Directory for StoreDirectory<'_> {
    fn group_members(&self, group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        let store = self.0.store();
        let group = store
            .read(|s| s.get(group_id))
            .ok()
            .flatten()
            .filter(|g| g.ty == T::GROUP)?;
        let mut members = Vec::new();
        for id in group.str_list("mid") {
            let local = id.rsplit('/').next().unwrap_or(id);
            let resolved = store.read(|s| s.get(local)).ok().flatten();
            members.push(match resolved {
                Some(r) if r.ty == T::GROUP => GroupMember::Group(r.ri().to_string()),
                Some(r) if r.ty == T::AE => GroupMember::Originator(r.ri().to_string()),
                Some(r) if r.ty == T::REMOTE_CSE => GroupMember::Originator(
                    r.attrs
                        .get("csi")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                _ => GroupMember::Originator(id.to_string()),
            });
        }
        Some(Cow::Owned(members))
    }
}

/// The default policy's "creator": the `cr`, the `custodian` (which later releases make act as
/// the creator), or the entity whose registration resource this is.
fn owns(me: &str, r: &Resource) -> bool {
    r.creator() == Some(me)
        || r.attrs.get("cstn").and_then(Value::as_str) == Some(me)
        || (r.ty == T::AE && r.ri() == me)
        || (r.ty == T::REMOTE_CSE && r.attrs.get("csi").and_then(Value::as_str) == Some(me))
}

impl Cse {
    /// The compiled ACP with this resource ID, from the cache or the store. A missing or
    /// unreadable ACP contributes no rules (it can only take permissions away).
    fn acp(&self, ri: &str) -> Result<Option<Arc<CompiledAcp>>> {
        if let Some(hit) = self.acp_cache.read().ok().and_then(|c| c.get(ri).cloned()) {
            return Ok(Some(hit));
        }
        let Some(stored) = self
            .store()
            .read(|s| s.get(ri))?
            .filter(|r| r.ty == T::ACCESS_CONTROL_POLICY)
        else {
            return Ok(None);
        };
        match CompiledAcp::compile(&Value::Object(stored.attrs.clone())) {
            Ok(acp) => {
                let acp = Arc::new(acp.with_id(ri));
                if let Ok(mut c) = self.acp_cache.write() {
                    c.insert(ri.to_string(), acp.clone());
                }
                Ok(Some(acp))
            }
            Err(e) => {
                tracing::error!(acp = ri, error = %e, "stored ACP does not compile; it grants nothing");
                Ok(None)
            }
        }
    }

    /// Forgets compiled ACPs after they changed or were deleted.
    pub(crate) fn forget_acp(&self, ri: &str) {
        if let Ok(mut c) = self.acp_cache.write() {
            c.remove(ri);
        }
    }

    /// Compiles a just-stored ACP into the cache, so that no request pays for it
    /// (the ACP is compiled once when stored; a failure leaves it to the next lookup).
    pub(crate) fn recompile_acp(&self, ri: &str) {
        self.forget_acp(ri);
        if let Err(e) = self.acp(ri) {
            tracing::warn!(acp = ri, error = %e, "cannot compile the stored ACP now");
        }
    }

    fn acps(&self, ids: &[&str]) -> Result<Vec<Arc<CompiledAcp>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let local = id.rsplit('/').next().unwrap_or(id);
            if let Some(acp) = self.acp(local)? {
                out.push(acp);
            }
        }
        Ok(out)
    }

    /// Finds the policy governing `target` for `me`, walking up while the default policy does
    /// not settle it. `memo` short-cuts levels already decided for this request.
    fn policy(
        &self,
        me: &str,
        target: &Resource,
        self_privileges: bool,
        memo: &Memo,
    ) -> Result<(Policy, Vec<String>)> {
        let mut visited = Vec::new();
        if target.ty == T::ACCESS_CONTROL_POLICY {
            let acps = self.acps(&[target.ri()])?;
            return Ok((
                Policy::Acps {
                    level: target.srn.clone(),
                    rule_set: RuleSet::SelfPrivileges,
                    acps,
                },
                visited,
            ));
        }
        let rule_set = if self_privileges {
            RuleSet::SelfPrivileges
        } else {
            RuleSet::Privileges
        };
        let mut current = target.clone();
        loop {
            if let Some(&known) = memo.decided.get(&current.srn) {
                return Ok((Policy::Default(known), visited));
            }
            let acpi = current.str_list("acpi");
            if !acpi.is_empty() {
                let acps = self.acps(&acpi)?;
                return Ok((
                    Policy::Acps {
                        level: current.srn.clone(),
                        rule_set,
                        acps,
                    },
                    visited,
                ));
            }
            if current.ty == T::CSE_BASE {
                return Ok((Policy::Default(false), visited));
            }
            if owns(me, &current) {
                return Ok((Policy::Default(true), visited));
            }
            visited.push(current.srn.clone());
            let Some((parent, _)) = current.srn.rsplit_once('/') else {
                return Ok((Policy::Default(false), visited));
            };
            let parent = parent.to_string();
            match self.store().read(|s| s.get_by_srn(&parent))? {
                Some(p) => current = p,
                None => return Ok((Policy::Default(false), visited)),
            }
        }
    }

    fn access_request<'a>(
        &'a self,
        ctx: &'a Ctx<'_>,
        orig: &'a m2mtrust_authz::Originator,
        op: AccessOp,
        create: CreateDetails<'a>,
        attributes: Attributes<'a>,
        roles: &'a [&'a str],
    ) -> AccessRequest<'a> {
        let mut req = AccessRequest::new(orig, op, ctx.authz_time());
        req.role_ids = roles;
        req.authenticated = match &ctx.peer.authentication {
            Authentication::None => false,
            Authentication::Credential { bound_ids, .. } => {
                bound_ids.iter().any(|b| *b == ctx.orig())
            }
        };
        req.peer_address = ctx.peer.addr.map(|a| a.ip());
        req.location = self.config().locations.get(&ctx.orig());
        req.create = create;
        req.attributes = attributes;
        req
    }

    /// The access request of a token permission check: the request's inputs, whole resource.
    pub(crate) fn token_access_request<'a>(
        &'a self,
        ctx: &'a Ctx<'_>,
        orig: &'a m2mtrust_authz::Originator,
        op: AccessOp,
        roles: &'a [&'a str],
    ) -> AccessRequest<'a> {
        self.access_request(
            ctx,
            orig,
            op,
            CreateDetails::default(),
            Attributes::Whole,
            roles,
        )
    }

    /// The verified Role-IDs of the originator for `target` (digest §6 [K]): those of valid
    /// `<role>` resources it named in `rids`, and the `roleIDs` of its verified tokens'
    /// permissions that apply to `target`.
    pub(crate) fn roles_for<'c>(&self, ctx: &'c Ctx<'_>, target: &Resource) -> Vec<&'c str> {
        let mut roles: Vec<&str> = ctx.roles.iter().map(String::as_str).collect();
        for token in &ctx.tokens {
            for grant in &token.permissions {
                let Some(rids) = &grant.role_ids else {
                    continue;
                };
                if let Some(ris) = &grant.resource_ids
                    && !ris
                        .iter()
                        .any(|id| crate::tokens::names(id, target, self.home()))
                {
                    continue;
                }
                roles.extend(rids.iter().map(String::as_str));
            }
        }
        roles
    }

    /// The decision for `op` on `target`, with the attributes it touches.
    pub(crate) fn evaluate(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
        touched: &[&str],
        self_privileges: bool,
        memo: &mut Memo,
    ) -> Result<(Option<Grant>, String)> {
        let Some(orig) = &ctx.originator else {
            return Ok((None, "no originator".into()));
        };
        if self.is_admin(orig) && self.config().admin_bypass {
            return Ok((Some(Grant::All), "admin originator bypass".into()));
        }
        let me = orig.canonical();
        let (policy, visited) = self.policy(&me, target, self_privileges, memo)?;
        let (grant, why, level) = match policy {
            Policy::Default(true) => (
                Some(Grant::All),
                "default policy: creator".to_string(),
                None,
            ),
            Policy::Default(false) => (
                None,
                "no policy grants access (default policy: not the creator)".into(),
                None,
            ),
            Policy::Acps {
                level,
                rule_set,
                acps,
            } => {
                let Some(authz_orig) = ctx.authz_originator.as_ref() else {
                    return Ok((
                        None,
                        format!("originator {me} cannot be matched against access control rules"),
                    ));
                };
                let create = CreateDetails {
                    target_resource_type: (op == AccessOp::Create).then_some(target.ty.0),
                    resource_type: (op == AccessOp::Create)
                        .then(|| ctx.req.resource_type.map(|t| t.0))
                        .flatten(),
                    specialization: None,
                };
                let attributes = if touched.is_empty() {
                    Attributes::Whole
                } else {
                    Attributes::Touched(touched)
                };
                let roles = self.roles_for(ctx, target);
                let req = self.access_request(ctx, authz_orig, op, create, attributes, &roles);
                let directory = StoreDirectory(self);
                let decision = self.pdp.decide(&acps, rule_set, &req, &directory);
                match &decision {
                    Decision::Permit(_) => (Some(Grant::All), decision.to_string(), Some(level)),
                    Decision::Deny(d)
                        if d.reason == DenyReason::AttributesNotGranted
                            && op == AccessOp::Retrieve =>
                    {
                        match self
                            .pdp
                            .permitted_attributes(&acps, rule_set, &req, &directory)
                        {
                            AttributeGrant::Only(set) if !set.is_empty() => {
                                (Some(Grant::Only(set)), decision.to_string(), Some(level))
                            }
                            _ => (None, decision.to_string(), Some(level)),
                        }
                    }
                    Decision::Deny(_) => (None, decision.to_string(), Some(level)),
                }
            }
        };
        // Memoise whole-resource answers of levels that do not depend on the target's own type.
        // Token roles may differ per target, so their requests are not memoised.
        if touched.is_empty()
            && op != AccessOp::Create
            && ctx.tokens.is_empty()
            && matches!(grant, None | Some(Grant::All))
        {
            for srn in visited.into_iter().chain(level) {
                memo.decided.insert(srn, grant.is_some());
            }
        }
        Ok((grant, why))
    }

    /// Permits or refuses `op` on `target`; refusals are 4103 and every decision is audited.
    pub(crate) fn check_access(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
    ) -> Result<Grant> {
        self.check(ctx, target, op, &[], false)
    }

    /// The same, for an UPDATE touching `attributes` or, with `self_privileges`, changing `acpi`.
    pub(crate) fn check(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
        attributes: &[&str],
        self_privileges: bool,
    ) -> Result<Grant> {
        let (grant, why) = self.evaluate(
            ctx,
            target,
            op,
            attributes,
            self_privileges,
            &mut Memo::default(),
        )?;
        // Tokens, then dynamic ACPs, are consulted when the static policy denies (TS-0003
        // §7.3.2.3 step 6.3, §7.3.2.2 step 4.2).
        // They never reach `selfPrivileges`: changing `acpi`, or an `<accessControlPolicy>`
        // itself, needs the static policy's permission.
        if grant.is_none() && !self_privileges && target.ty != T::ACCESS_CONTROL_POLICY {
            let dynamic = self
                .token_permits(ctx, target, op)
                .or_else(|| self.dynamic_acp_permits(ctx, target, op));
            if let Some(why) = dynamic {
                audit(ctx, target, op, true, &why);
                return Ok(Grant::All);
            }
            ctx.denied.record(target, op);
        }
        audit(ctx, target, op, grant.is_some(), &why);
        grant.ok_or_else(|| {
            CseError::NoPrivilege(format!(
                "originator {} has no privilege to {op:?} {}",
                ctx.orig(),
                target.srn
            ))
        })
    }

    /// The decision without the error, for filtering discovery results (dropped, not refused).
    pub(crate) fn permits(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
        memo: &mut Memo,
    ) -> Result<bool> {
        let (grant, why) = self.evaluate(ctx, target, op, &[], false, memo)?;
        audit(ctx, target, op, grant.is_some(), &why);
        Ok(grant.is_some())
    }
}

impl Ctx<'_> {
    fn authz_time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.now.0).unwrap_or(chrono::DateTime::UNIX_EPOCH)
    }
}

/// Maps a primitive to the operation access control sees.
pub(crate) fn access_op(op: m2mtrust_model::Operation) -> AccessOp {
    match op {
        m2mtrust_model::Operation::Create => AccessOp::Create,
        m2mtrust_model::Operation::Retrieve => AccessOp::Retrieve,
        m2mtrust_model::Operation::Update => AccessOp::Update,
        m2mtrust_model::Operation::Delete => AccessOp::Delete,
        m2mtrust_model::Operation::Notify => AccessOp::Notify,
    }
}

/// The authz form of an originator; `None` for forms the engine cannot match (fail closed).
pub(crate) fn authz_originator(cse: &Cse, orig: &Originator) -> Option<m2mtrust_authz::Originator> {
    cse.pdp.originator(&orig.absolute(cse.home())).ok()
}

fn audit(ctx: &Ctx<'_>, target: &Resource, op: AccessOp, permit: bool, why: &str) {
    if permit {
        tracing::debug!(
            target: "audit", originator = %ctx.orig(), peer = ?ctx.peer.addr, resource = %target.srn,
            operation = ?op, decision = "permit", reason = why, "access decision"
        );
    } else {
        tracing::info!(
            target: "audit", originator = %ctx.orig(), peer = ?ctx.peer.addr, resource = %target.srn,
            operation = ?op, decision = "deny", reason = why, "access decision"
        );
    }
}
