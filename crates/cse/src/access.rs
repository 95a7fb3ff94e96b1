//! The access decision every request passes (TS-0003 §7.1 entry point).
//!
//! Until `<accessControlPolicy>` evaluation is wired in, the policy is deny-by-default: the admin
//! originator (while its bypass is on) and the owner of a resource are permitted; the owner is the
//! creator of the resource or of one of its ancestors below `<CSEBase>`, or the AE / remote CSE
//! whose registration resource is such an ancestor.

use std::collections::HashMap;

use m2mtrust_model::{Originator, Resource, ResourceType};
use m2mtrust_store::StoreExt;

use crate::error::Result;
use crate::{Cse, CseError, Ctx};

/// The operations access control distinguishes (TS-0003 §7.1.3, `accessControlOperations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessOp {
    /// 1
    Create,
    /// 2
    Retrieve,
    /// 4
    Update,
    /// 8
    Delete,
    /// 16
    Notify,
    /// 32: RETRIEVE with `fu=1`.
    Discover,
}

/// Ownership answers for one request, shared across the items of a discovery.
#[derive(Default)]
pub(crate) struct Memo {
    owned: HashMap<String, bool>,
}

impl Cse {
    /// Permits or refuses `op` on `target`; refusals are 4103 and every decision is audited.
    pub(crate) fn check_access(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
    ) -> Result<()> {
        if self.permits(ctx, target, op, &mut Memo::default())? {
            return Ok(());
        }
        Err(CseError::NoPrivilege(format!(
            "originator {} has no privilege to {op:?} {}",
            ctx.orig(),
            target.srn
        )))
    }

    /// The decision without the error, for filtering discovery results.
    pub(crate) fn permits(
        &self,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: AccessOp,
        memo: &mut Memo,
    ) -> Result<bool> {
        let Some(orig) = &ctx.originator else {
            audit(ctx, target, op, false, "no originator");
            return Ok(false);
        };
        if self.is_admin(orig) && self.config().admin_bypass {
            audit(ctx, target, op, true, "admin originator bypass");
            return Ok(true);
        }
        let owned = self.owns(orig, target, memo)?;
        audit(
            ctx,
            target,
            op,
            owned,
            if owned {
                "owner"
            } else {
                "default policy: not the owner"
            },
        );
        Ok(owned)
    }

    fn owns(&self, orig: &Originator, target: &Resource, memo: &mut Memo) -> Result<bool> {
        let me = orig.canonical();
        let mut srn = target.srn.clone();
        let mut current = Some(target.clone());
        let mut visited = Vec::new();
        let answer = loop {
            if let Some(&known) = memo.owned.get(&srn) {
                break known;
            }
            let Some(r) = current.take() else { break false };
            visited.push(srn.clone());
            if r.ty == ResourceType::CSE_BASE {
                break false;
            }
            let is_owner = r.creator() == Some(me.as_str())
                || (r.ty == ResourceType::AE && r.ri() == me)
                || (r.ty == ResourceType::REMOTE_CSE
                    && r.attrs.get("csi").and_then(|v| v.as_str()) == Some(&me));
            if is_owner {
                break true;
            }
            let Some((parent, _)) = srn.rsplit_once('/') else {
                break false;
            };
            srn = parent.to_string();
            current = self.store().read(|s| s.get_by_srn(&srn))?;
        };
        for s in visited {
            memo.owned.insert(s, answer);
        }
        Ok(answer)
    }
}

fn audit(ctx: &Ctx<'_>, target: &Resource, op: AccessOp, permit: bool, why: &str) {
    tracing::debug!(
        target: "audit",
        originator = %ctx.orig(),
        peer = ?ctx.peer.addr,
        resource = %target.srn,
        operation = ?op,
        decision = if permit { "permit" } else { "deny" },
        reason = why,
        "access decision"
    );
}
