//! RETRIEVE with result content options, discovery (`fu=1`), `<latest>`/`<oldest>`, and DELETE.

use m2mtrust_model::{
    DiscoveryResultType, FilterUsage, Operation, Resource, ResourceType as T, Response,
    ResponseStatusCode as Rsc, ResultContent,
};
use m2mtrust_store::{DiscoveryQuery, StoreExt};
use serde_json::{Map, Value, json};

use crate::access::{Grant, Memo, Operation as AccessOp};
use crate::create::recount;
use crate::error::{Result, bad_request};
use crate::notify::Event;
use crate::{Cse, CseError, Ctx};

/// Deepest level of children nested in one `rcn=4` response.
const MAX_NESTING: usize = 8;

impl Cse {
    pub(crate) fn retrieve(&self, ctx: &Ctx<'_>, r: Resource) -> Result<Response> {
        if ctx.req.filter.filter_usage == FilterUsage::Discovery {
            return self.discover(ctx, r);
        }
        let r = match self.check_access(ctx, &r, AccessOp::Retrieve)? {
            Grant::All => r,
            // `aca` rules: only the granted attributes are returned.
            Grant::Only(allowed) => {
                let mut r = r;
                r.attrs.retain(|k, _| allowed.contains(k));
                r
            }
        };
        let content = match ctx.req.result_content.unwrap_or(ResultContent::Attributes) {
            ResultContent::Attributes | ResultContent::OriginalResource => r.to_json(),
            ResultContent::HierarchicalAddress => json!({"m2m:uri": r.srn}),
            ResultContent::HierarchicalAddressAndAttributes => {
                json!({"m2m:rce": {"uri": r.srn, r.ty.short_name().unwrap_or("m2m:?"): r.attrs}})
            }
            ResultContent::AttributesAndChildResources => {
                let mut attrs = r.attrs.clone();
                self.nest_children(ctx, &r, &mut attrs, 0)?;
                json!({ r.ty.short_name().unwrap_or("m2m:?"): attrs })
            }
            ResultContent::AttributesAndChildResourceReferences => {
                let mut attrs = r.attrs.clone();
                attrs.insert("ch".into(), Value::Array(self.child_refs(ctx, &r)?));
                json!({ r.ty.short_name().unwrap_or("m2m:?"): attrs })
            }
            ResultContent::ChildResourceReferences => {
                json!({"m2m:rrl": {"rrf": self.child_refs(ctx, &r)?}})
            }
            ResultContent::ChildResources => {
                let mut attrs = Map::new();
                self.nest_children(ctx, &r, &mut attrs, 0)?;
                json!({ r.ty.short_name().unwrap_or("m2m:?"): attrs })
            }
            other => {
                return Err(bad_request!(
                    "result content {other:?} is not valid for RETRIEVE"
                ));
            }
        };
        Ok(Response::new(Rsc::OK, Some(content)))
    }

    /// Children the originator may retrieve, filtered by the request's conditions, oldest first.
    fn visible_children(&self, ctx: &Ctx<'_>, r: &Resource) -> Result<Vec<Resource>> {
        let fc = &ctx.req.filter;
        let mut memo = Memo::default();
        let mut out = Vec::new();
        for c in self.store().read(|s| s.children(r.ri(), None))? {
            if c.is_expired(ctx.now) {
                continue;
            }
            if !fc.resource_types.is_empty() && !fc.resource_types.contains(&c.ty) {
                continue;
            }
            if !fc.labels.is_empty()
                && !c
                    .str_list("lbl")
                    .iter()
                    .any(|l| fc.labels.iter().any(|f| f == l))
            {
                continue;
            }
            if fc
                .created_after
                .is_some_and(|t| c.ct().is_none_or(|ct| ct <= t))
                || fc
                    .created_before
                    .is_some_and(|t| c.ct().is_none_or(|ct| ct >= t))
            {
                continue;
            }
            if self.permits(ctx, &c, AccessOp::Retrieve, &mut memo)? {
                out.push(c);
            }
            if fc.limit.is_some_and(|l| out.len() as u64 >= u64::from(l)) {
                break;
            }
        }
        Ok(out)
    }

    fn child_refs(&self, ctx: &Ctx<'_>, r: &Resource) -> Result<Vec<Value>> {
        Ok(self
            .visible_children(ctx, r)?
            .into_iter()
            .map(|c| json!({"nm": c.rn(), "typ": c.ty.0, "val": self.address_of(ctx, &c)}))
            .collect())
    }

    fn nest_children(
        &self,
        ctx: &Ctx<'_>,
        r: &Resource,
        into: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<()> {
        if depth >= MAX_NESTING {
            return Ok(());
        }
        for c in self.visible_children(ctx, r)? {
            let mut attrs = c.attrs.clone();
            self.nest_children(ctx, &c, &mut attrs, depth + 1)?;
            let key = c.ty.short_name().unwrap_or("m2m:?").to_string();
            match into.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(list) => list.push(Value::Object(attrs)),
                _ => {
                    return Err(bad_request!(
                        "child type collides with attribute of {}",
                        r.srn
                    ));
                }
            }
        }
        Ok(())
    }

    /// TS-0001 §10.2.6 (discovery): addresses of matching resources the originator may discover;
    /// the others are dropped, not refused.
    fn discover(&self, ctx: &Ctx<'_>, root: Resource) -> Result<Response> {
        let fc = &ctx.req.filter;
        let cap = self.config().max_discovery_results;
        let limit = fc.limit.map_or(cap, |l| l.min(cap));
        let q = DiscoveryQuery {
            root_srn: root.srn.clone(),
            root_depth: root.srn.matches('/').count() as u32,
            filter: fc.clone(),
            now: ctx.now,
            // Fetch more than the limit: some rows may be filtered out by access control.
            limit: limit.saturating_mul(4).max(limit),
            offset: fc.offset.unwrap_or(1).saturating_sub(1),
        };
        let found = self.store().read(|s| s.discover(&q))?;
        let mut memo = Memo::default();
        let mut uris = Vec::new();
        for r in found {
            if uris.len() as u32 >= limit {
                break;
            }
            if self.permits(ctx, &r, AccessOp::Discovery, &mut memo)? {
                uris.push(Value::String(match ctx.req.discovery_result_type {
                    DiscoveryResultType::Structured => r.srn.clone(),
                    DiscoveryResultType::Unstructured => r.ri().to_string(),
                }));
            }
        }
        Ok(Response::new(Rsc::OK, Some(json!({"m2m:uril": uris}))))
    }

    /// `<latest>` / `<oldest>` of a container (TS-0001 §9.6.27, §9.6.28).
    pub(crate) async fn edge(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        cnt: Resource,
        newest: bool,
    ) -> Result<Response> {
        let instance = self
            .store()
            .read(|s| s.edge_child(cnt.ri(), T::CONTENT_INSTANCE, newest, ctx.now))?
            .ok_or_else(|| {
                CseError::NotFound(format!("container {} has no content instance", cnt.srn))
            })?;
        match op {
            Operation::Delete => self.delete(ctx, instance).await,
            _ => self.retrieve(ctx, instance),
        }
    }

    pub(crate) async fn delete(&self, ctx: &Ctx<'_>, r: Resource) -> Result<Response> {
        if r.ty == T::CSE_BASE {
            return Err(CseError::OperationNotAllowed(
                "<CSEBase> cannot be deleted".into(),
            ));
        }
        self.check_access(ctx, &r, AccessOp::Delete)?;
        let rcn = ctx.req.result_content.unwrap_or(ResultContent::Nothing);
        let content = match rcn {
            ResultContent::Nothing => None,
            ResultContent::Attributes => Some(r.to_json()),
            other => {
                return Err(bad_request!(
                    "result content {other:?} is not valid for DELETE"
                ));
            }
        };
        self.remove(&r, ctx.now).await?;
        tracing::info!(target: "audit", originator = %ctx.orig(), resource = %r.srn, "deleted");
        Ok(Response::new(Rsc::DELETED, content))
    }

    /// Deletes `r` and its subtree, fixes its container's counters, and notifies.
    pub(crate) async fn remove(&self, r: &Resource, now: m2mtrust_model::Timestamp) -> Result<()> {
        let ri = r.ri().to_string();
        let parent_ri = r.pi().to_string();
        let (deleted, parent) = self
            .store()
            .write(move |w| -> Result<_> {
                let deleted = w.delete_subtree(&ri)?;
                let parent = w.get(&parent_ri)?;
                if let Some(p) = &parent
                    && p.ty == T::CONTAINER
                    && deleted.iter().any(|d| d.resource.ty == T::CONTENT_INSTANCE)
                {
                    recount(w, p.ri(), now)?;
                }
                Ok((deleted, parent))
            })
            .await?;
        for d in &deleted {
            let d = &d.resource;
            if d.ty == T::SUBSCRIPTION {
                self.subscription_removed(d);
            }
            if d.ty == T::ACCESS_CONTROL_POLICY {
                self.forget_acp(d.ri());
            }
            // Subscriptions to a deleted resource are gone with it, but hear about the deletion first.
            self.notify(Event::deleted(d, &deleted));
        }
        if let (Some(parent), Some(root)) = (parent, deleted.first()) {
            self.notify(Event::child_deleted(&parent, &root.resource));
        }
        Ok(())
    }
}
