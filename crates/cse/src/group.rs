//! `<group>` membership validation (TS-0001 §10.2.7) and the `<fanOutPoint>` (§10.2.7.6).

use m2mtrust_model::{
    ConsistencyStrategy, Originator, Request, Resource, Response, ResponseStatusCode as Rsc,
    Target, types::MIXED_MEMBER_TYPE,
};
use m2mtrust_store::StoreExt;
use serde_json::{Value, json};

use crate::error::{Result, bad_request};
use crate::{Cse, CseError, Ctx};

impl Cse {
    /// Resolves a member ID to a hosted resource, if it is one.
    fn member(&self, id: &str, ctx: &Ctx<'_>) -> Result<Option<Resource>> {
        let path = match Target::parse(id, self.home()) {
            Ok(Target::Local(p)) => p,
            _ => return Ok(None),
        };
        let found = if path.contains('/') {
            self.store().read(|s| s.get_by_srn(&path))?
        } else {
            self.store().read(|s| s.get(&path))?
        };
        Ok(found.filter(|r| !r.is_expired(ctx.now)))
    }

    /// Checks `mid` against `mnm`, `mt` and `csy`; fills in `cnm`, `mtv` and `mt`.
    pub(crate) fn validate_group(&self, ctx: &Ctx<'_>, grp: &mut Resource) -> Result<()> {
        let mut ids: Vec<String> = Vec::new();
        for id in grp.str_list("mid") {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        let mnm = grp.uint("mnm").unwrap_or(u64::MAX);
        if ids.len() as u64 > mnm {
            return Err(CseError::MaxMembersExceeded(format!(
                "{} members exceed maxNrOfMembers {mnm}",
                ids.len()
            )));
        }
        let strategy = match grp.uint("csy") {
            None => ConsistencyStrategy::AbandonMember,
            Some(c) => ConsistencyStrategy::from_code(c)
                .ok_or_else(|| bad_request!("consistencyStrategy must be 1, 2 or 3"))?,
        };
        let mut mt = grp.uint("mt").unwrap_or(u64::from(MIXED_MEMBER_TYPE));
        let mut kept = Vec::new();
        for id in ids {
            let Some(member) = self.member(&id, ctx)? else {
                // TS-0001 §10.2.7.1: members that do not exist are removed from memberIDs.
                continue;
            };
            if mt != u64::from(MIXED_MEMBER_TYPE) && u64::from(member.ty.0) != mt {
                match strategy {
                    ConsistencyStrategy::AbandonMember => continue,
                    ConsistencyStrategy::AbandonGroup => {
                        return Err(CseError::GroupMemberTypeInconsistent(format!(
                            "member {id} has type {}, the group's memberType is {mt}",
                            member.ty.0
                        )));
                    }
                    ConsistencyStrategy::SetMixed => mt = u64::from(MIXED_MEMBER_TYPE),
                }
            }
            kept.push(Value::String(id));
        }
        grp.attrs.insert("cnm".into(), (kept.len() as u64).into());
        grp.attrs.insert("mid".into(), Value::Array(kept));
        grp.attrs.insert("mt".into(), mt.into());
        grp.attrs.insert("mtv".into(), true.into());
        Ok(())
    }

    /// Sends the request to every member (path `rest` appended) and aggregates the responses
    /// into `m2m:agr`. Each member request passes access control on its own.
    pub(crate) async fn fan_out(
        &self,
        ctx: &Ctx<'_>,
        group: Resource,
        rest: String,
    ) -> Result<Response> {
        let op = crate::access::access_op(ctx.req.operation);
        // The originator must be allowed the operation on the group's members as a whole
        // (`macp`); without ACP evaluation, owning the group stands in for it.
        self.check_access(ctx, &group, op)?;
        let depth = ctx.req.to.matches("/fopt").count() as u32;
        if depth > self.config().max_group_depth {
            return Err(bad_request!(
                "group nesting deeper than {}",
                self.config().max_group_depth
            ));
        }
        let mut responses = Vec::new();
        for id in group.str_list("mid") {
            let to = if rest.is_empty() {
                id.to_string()
            } else {
                format!("{id}/{rest}")
            };
            let mut member_req: Request = ctx.req.clone();
            member_req.to = to.clone();
            let resp = self.dispatch_member(member_req, ctx).await;
            let mut rsp = json!({"rsc": resp.status.0, "rqi": ctx.req.request_id, "to": to});
            if let Some(fr) = ctx.originator.as_ref().map(Originator::canonical) {
                rsp["fr"] = Value::String(fr);
            }
            if let Some(pc) = resp.content {
                rsp["pc"] = pc;
            }
            responses.push(rsp);
        }
        Ok(Response::new(
            Rsc::OK,
            Some(json!({"m2m:agr": {"m2m:rsp": responses}})),
        ))
    }

    async fn dispatch_member(&self, req: Request, ctx: &Ctx<'_>) -> Response {
        match self.dispatch(&req, ctx.peer).await {
            Ok(r) => r,
            Err(CseError::Store(e)) => {
                tracing::error!(error = %e, "storage failure in fan-out");
                Response::error(Rsc::INTERNAL_SERVER_ERROR, "internal error")
            }
            Err(e) => Response::error(Rsc::from(&e), e.to_string()),
        }
    }
}
