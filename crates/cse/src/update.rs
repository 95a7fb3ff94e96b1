//! UPDATE (TS-0001 §10.1.3): merge of the request's attributes, `null` deletes an attribute.

use m2mtrust_model::{
    Operation, Resource, ResourceType as T, Response, ResponseStatusCode as Rsc, ResultContent,
    schema,
};
use m2mtrust_store::StoreExt;
use serde_json::{Map, Value};

use crate::access::Operation as AccessOp;
use crate::create::{check_acp, recount, trim, unwrap_content};
use crate::error::{Result, bad_request};
use crate::notify::Event;
use crate::{Cse, CseError, Ctx};

impl Cse {
    pub(crate) async fn update(&self, ctx: &Ctx<'_>, r: Resource) -> Result<Response> {
        if r.ty == T::CSE_BASE {
            return Err(CseError::OperationNotAllowed(
                "<CSEBase> cannot be updated".into(),
            ));
        }
        if r.ty == T::CONTENT_INSTANCE {
            return Err(CseError::OperationNotAllowed(
                "a <contentInstance> cannot be updated".into(),
            ));
        }
        let changes = unwrap_content(ctx.req.content.as_ref(), r.ty)?;
        schema::check(r.ty, Operation::Update, &changes)?;
        // TS-0003 §7.1.1: changing `acpi` needs UPDATE in the selfPrivileges of the ACPs that
        // govern the resource now; the other attributes need the privileges as usual.
        if changes.contains_key("acpi") {
            self.check(ctx, &r, AccessOp::Update, &[], true)?;
        }
        let touched: Vec<&str> = changes
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "acpi")
            .collect();
        if !touched.is_empty() || !changes.contains_key("acpi") {
            self.check(ctx, &r, AccessOp::Update, &touched, false)?;
        }

        let mut updated = r.clone();
        for (key, value) in &changes {
            if value.is_null() {
                updated.attrs.remove(key);
            } else {
                updated.attrs.insert(key.clone(), value.clone());
            }
        }
        if changes.contains_key("et") {
            let et = self.expiration(changes.get("et").filter(|v| !v.is_null()), ctx.now)?;
            updated.attrs.insert("et".into(), et.to_onem2m().into());
        }
        Cse::touch(&mut updated.attrs, ctx.now);
        match r.ty {
            T::CONTAINER => {
                let st = updated.uint("st").unwrap_or(0) + 1;
                updated.attrs.insert("st".into(), st.into());
            }
            T::ACCESS_CONTROL_POLICY => check_acp(&updated.attrs)?,
            T::GROUP if changes.contains_key("mid") || changes.contains_key("mnm") => {
                self.validate_group(ctx, &mut updated)?;
            }
            T::SUBSCRIPTION if changes.contains_key("nu") || changes.contains_key("enc") => {
                let old: Vec<String> = r.str_list("nu").into_iter().map(String::from).collect();
                self.check_subscription(ctx, &mut updated, &old).await?;
            }
            _ => {}
        }
        if changes.contains_key("acpi") {
            self.check_acpi(&updated)?;
        }
        let to_store = updated.clone();
        let now = ctx.now;
        let trimmed = self
            .store()
            .write(move |w| -> Result<Vec<Resource>> {
                w.update(&to_store)?;
                if to_store.ty == T::CONTAINER {
                    let removed = trim(w, &to_store)?;
                    if !removed.is_empty() {
                        recount(w, to_store.ri(), now)?;
                    }
                    return Ok(removed);
                }
                Ok(Vec::new())
            })
            .await?;
        // After the commit, so that no request caches the old rules again.
        if r.ty == T::ACCESS_CONTROL_POLICY {
            self.recompile_acp(r.ri());
        }
        let stored = if trimmed.is_empty() {
            updated
        } else {
            self.store().read(|s| s.get(r.ri()))?.unwrap_or(updated)
        };
        for old in &trimmed {
            self.notify(Event::child_deleted(&stored, old));
        }
        let modified: Map<String, Value> = changes
            .keys()
            .filter_map(|k| stored.attrs.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        self.notify(Event::updated(&stored, &modified));
        tracing::info!(target: "audit", originator = %ctx.orig(), resource = %stored.srn, "updated");
        let content = match ctx.req.result_content.unwrap_or(ResultContent::Attributes) {
            ResultContent::Nothing => None,
            ResultContent::Attributes => Some(stored.to_json()),
            ResultContent::ModifiedAttributes => {
                Some(serde_json::json!({ stored.ty.short_name().unwrap_or("m2m:?"): modified }))
            }
            other => {
                return Err(bad_request!(
                    "result content {other:?} is not valid for UPDATE"
                ));
            }
        };
        Ok(Response::new(Rsc::UPDATED, content))
    }
}
