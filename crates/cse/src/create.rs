//! CREATE (TS-0001 §10.1.1.1), AE registration (§10.1.1.2.2), CSE registration (seed 003 change 1),
//! and the per-type rules applied when a resource is made.

use m2mtrust_model::{
    CseId, NotificationEventType, Originator, Resource, ResourceType as T, Response,
    ResponseStatusCode as Rsc, ResultContent, Timestamp, schema,
};
use m2mtrust_store::{StoreError, StoreExt};
use serde_json::{Map, Value};

use crate::access::Operation as AccessOp;
use crate::error::{Result, bad_request};
use crate::notify::Event;
use crate::target::RESERVED_NAMES;
use crate::{Cse, CseError, Ctx, new_id};

/// Splits `{"m2m:xx": {...}}` into the type and the attribute map; the key must match `expected`.
pub(crate) fn unwrap_content(content: Option<&Value>, expected: T) -> Result<Map<String, Value>> {
    let Some(Value::Object(outer)) = content else {
        return Err(bad_request!(
            "the request content must be a JSON object such as {{\"m2m:cnt\": {{...}}}}"
        ));
    };
    let name = expected.short_name().unwrap_or("m2m:?");
    if outer.len() != 1 {
        return Err(bad_request!(
            "the request content must have exactly one member, {name:?}"
        ));
    }
    match outer.get(name) {
        Some(Value::Object(attrs)) => Ok(attrs.clone()),
        Some(_) => Err(bad_request!("{name:?} must be a JSON object")),
        None => {
            let found = outer.keys().next().cloned().unwrap_or_default();
            Err(bad_request!(
                "content {found:?} does not match the resource type {} ({name})",
                expected.0
            ))
        }
    }
}

/// Content size of a `con` value: the byte length of a string, else of its JSON text.
pub(crate) fn content_size(con: &Value) -> u64 {
    match con {
        Value::String(s) => s.len() as u64,
        other => other.to_string().len() as u64,
    }
}

fn check_resource_name(rn: &str) -> Result<()> {
    if rn.is_empty() || rn.len() > 255 {
        return Err(bad_request!("resourceName must be 1 to 255 characters"));
    }
    if rn
        .chars()
        .any(|c| c == '/' || c.is_control() || c.is_whitespace())
        || rn.starts_with(['~', '_'])
    {
        return Err(bad_request!(
            "resourceName {rn:?} contains '/', whitespace or control characters, or starts with '~' or '_'"
        ));
    }
    if RESERVED_NAMES.contains(&rn) {
        return Err(bad_request!(
            "resourceName {rn:?} is reserved for a virtual resource"
        ));
    }
    Ok(())
}

impl Cse {
    /// Resolves `et`: absent → default lifetime; in the past → 4000; beyond the maximum → clamped.
    pub(crate) fn expiration(
        &self,
        requested: Option<&Value>,
        now: Timestamp,
    ) -> Result<Timestamp> {
        let max = now.plus_secs(self.config().max_expiration_secs);
        match requested.and_then(Value::as_str) {
            None => Ok(now
                .plus_secs(self.config().default_expiration_secs)
                .min(max)),
            Some(s) => {
                let et = Timestamp::parse(s)
                    .ok_or_else(|| bad_request!("expirationTime {s:?} is not a timestamp"))?;
                if et <= now {
                    return Err(bad_request!("expirationTime {s} is in the past"));
                }
                Ok(et.min(max))
            }
        }
    }

    pub(crate) async fn create(&self, ctx: &Ctx<'_>, parent: Resource) -> Result<Response> {
        let ty = ctx
            .req
            .resource_type
            .ok_or_else(|| bad_request!("CREATE needs a resource type (ty)"))?;
        if schema::specific_attributes(ty).is_none() || !schema::CREATABLE.contains(&ty) {
            return Err(bad_request!(
                "resource type {} cannot be created on this CSE",
                ty.0
            ));
        }
        let mut attrs = unwrap_content(ctx.req.content.as_ref(), ty)?;
        schema::check(ty, m2mtrust_model::Operation::Create, &attrs)?;
        if !schema::allowed_children(parent.ty).contains(&ty) {
            return Err(CseError::InvalidChildType(format!(
                "a resource of type {} cannot be created under {} (type {})",
                ty.0, parent.srn, parent.ty.0
            )));
        }
        let now = ctx.now;
        let (ri, default_rn) = match ty {
            T::AE => self.register_ae(ctx, &parent, &attrs)?,
            T::REMOTE_CSE => self.register_cse(ctx, &parent, &attrs)?,
            _ => {
                if matches!(ty, T::ROLE | T::TOKEN) {
                    self.check_authorization_resource(ctx, ty, &attrs)?;
                }
                self.check_access(ctx, &parent, AccessOp::Create)?;
                let prefix = ty
                    .short_name()
                    .and_then(|n| n.strip_prefix("m2m:"))
                    .unwrap_or("r");
                let ri = new_id(prefix);
                (ri.clone(), ri)
            }
        };
        let rn = match attrs.remove("rn") {
            Some(Value::String(rn)) => rn,
            _ => default_rn,
        };
        check_resource_name(&rn)?;
        let et = self.expiration(attrs.get("et"), now)?;
        let mut full = Map::new();
        full.insert("ty".into(), ty.0.into());
        full.insert("ri".into(), ri.clone().into());
        full.insert("rn".into(), rn.clone().into());
        full.insert("pi".into(), parent.ri().into());
        full.insert("ct".into(), now.to_onem2m().into());
        full.insert("lt".into(), now.to_onem2m().into());
        full.insert("et".into(), et.to_onem2m().into());
        attrs.remove("et");
        let creator_attr = schema::attribute(ty, "cr").is_some();
        attrs.remove("cr");
        full.extend(attrs);
        if creator_attr {
            full.insert("cr".into(), ctx.orig().into());
        }
        let mut resource = Resource {
            ty,
            srn: format!("{}/{rn}", parent.srn),
            attrs: full,
        };
        match ty {
            T::AE => {
                let api = resource
                    .attrs
                    .get("api")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if api.len() < 2 || !api.starts_with(['R', 'N']) {
                    return Err(bad_request!(
                        "App-ID (api) {api:?} must start with 'R' (registered) or 'N' (non-registered)"
                    ));
                }
                resource.attrs.insert("aei".into(), ri.clone().into());
            }
            T::CONTAINER => {
                resource.attrs.insert("cni".into(), 0.into());
                resource.attrs.insert("cbs".into(), 0.into());
                resource.attrs.insert("st".into(), 0.into());
            }
            T::CONTENT_INSTANCE => {
                let con = resource.attrs.get("con").cloned().unwrap_or(Value::Null);
                let cs = content_size(&con);
                if let Some(mbs) = parent.uint("mbs")
                    && cs > mbs
                {
                    return Err(CseError::NotAcceptable(format!(
                        "content of {cs} bytes exceeds the container's maxByteSize {mbs}"
                    )));
                }
                resource.attrs.insert("cs".into(), cs.into());
                resource.attrs.insert("st".into(), 0.into());
                if let Some(mia) = parent.uint("mia") {
                    let limit = now.plus_secs(i64::try_from(mia).unwrap_or(i64::MAX));
                    if limit < et {
                        resource.attrs.insert("et".into(), limit.to_onem2m().into());
                    }
                }
            }
            T::ACCESS_CONTROL_POLICY => check_acp(&resource.attrs)?,
            T::SUBSCRIPTION => self.prepare_subscription(ctx, &mut resource).await?,
            T::GROUP => self.validate_group(ctx, &mut resource)?,
            _ => {}
        }
        self.check_acpi(&resource)?;
        if ty == T::REMOTE_CSE && resource.attrs.get("csi").is_none() {
            return Err(bad_request!("CSE-ID (csi) is missing"));
        }

        let to_store = resource.clone();
        let parent_ri = parent.ri().to_string();
        let (stored, trimmed) = self
            .store()
            .write(move |w| -> Result<(Resource, Vec<Resource>)> {
                if w.get(to_store.ri())?.is_some() {
                    return Err(CseError::Conflict(format!(
                        "resource ID {} is already in use",
                        to_store.ri()
                    )));
                }
                match w.insert(&to_store) {
                    Err(StoreError::Duplicate(_)) => {
                        return Err(CseError::Conflict(format!(
                            "a resource named {:?} already exists under this parent",
                            to_store.rn()
                        )));
                    }
                    other => other?,
                }
                let mut trimmed = Vec::new();
                if to_store.ty == T::CONTENT_INSTANCE {
                    trimmed = add_instance(w, &parent_ri, &to_store, now)?;
                }
                Ok((to_store, trimmed))
            })
            .await?;
        if ty == T::ACCESS_CONTROL_POLICY {
            self.recompile_acp(stored.ri());
        }
        if ty == T::SUBSCRIPTION
            && let Ok(mut s) = self.subscribed.write()
        {
            s.insert(parent.ri().to_string());
        }
        self.notify(Event::child_created(&parent, &stored));
        for old in &trimmed {
            self.notify(Event::child_deleted(&parent, old));
        }
        tracing::info!(target: "audit", originator = %ctx.orig(), resource = %stored.srn, ty = ty.0, "created");

        let mut resp = Response::new(Rsc::CREATED, None);
        resp.content_location = Some(self.address_of(ctx, &stored));
        resp.content = match ctx.req.result_content.unwrap_or(ResultContent::Attributes) {
            ResultContent::Nothing => None,
            ResultContent::HierarchicalAddress => Some(serde_json::json!({"m2m:uri": stored.srn})),
            ResultContent::HierarchicalAddressAndAttributes => Some(
                serde_json::json!({"m2m:rce": {"uri": stored.srn, stored.ty.short_name().unwrap_or("m2m:?"): stored.attrs}}),
            ),
            ResultContent::Attributes => Some(stored.to_json()),
            other => {
                return Err(bad_request!(
                    "result content {other:?} is not valid for CREATE"
                ));
            }
        };
        let _ = NotificationEventType::CreateOfDirectChildResource;
        Ok(resp)
    }

    /// TS-0001 §10.1.1.2.2 (AE registration): the AE-ID from `From`, or assigned by the CSE.
    fn register_ae(
        &self,
        ctx: &Ctx<'_>,
        parent: &Resource,
        _attrs: &Map<String, Value>,
    ) -> Result<(String, String)> {
        if parent.ty != T::CSE_BASE {
            return Err(CseError::InvalidChildType(
                "AEs register directly under <CSEBase>".into(),
            ));
        }
        let aei = match &ctx.originator {
            None => new_id("C"),
            Some(Originator::LocalAe(a)) if a == "C" => new_id("C"),
            Some(Originator::SpAe(a)) if a == "S" => new_id("S"),
            Some(Originator::LocalAe(a)) if a.starts_with('C') => a.clone(),
            Some(Originator::SpAe(a)) => a.clone(),
            Some(other) => {
                return Err(bad_request!(
                    "an AE registers with an empty originator or an AE-ID starting with 'C' or 'S', not {other}"
                ));
            }
        };
        if let Some(existing) = self.store().read(|r| r.get(&aei))? {
            let what = if existing.ty == T::AE {
                "an AE with this AE-ID is already registered"
            } else {
                "the AE-ID is in use"
            };
            return Err(CseError::Conflict(format!("{what}: {aei}")));
        }
        Ok((aei.clone(), aei))
    }

    /// Seed 003 change 1, step 002: the registering CSE's ID comes from `csi` and must agree with `From`.
    fn register_cse(
        &self,
        ctx: &Ctx<'_>,
        parent: &Resource,
        attrs: &Map<String, Value>,
    ) -> Result<(String, String)> {
        if parent.ty != T::CSE_BASE {
            return Err(CseError::InvalidChildType(
                "remote CSEs register directly under <CSEBase>".into(),
            ));
        }
        let csi = attrs
            .get("csi")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request!("CSE-ID (csi) is missing"))?;
        let csi = CseId::parse(csi).map_err(|e| CseError::BadRequest(e.to_string()))?;
        match &ctx.originator {
            None => {}
            Some(Originator::Cse(from)) if *from == csi => {}
            Some(other) => {
                return Err(bad_request!(
                    "the originator {other} does not match the registering CSE-ID {csi}"
                ));
            }
        }
        if csi == self.home().cse_id {
            return Err(bad_request!(
                "a remote CSE cannot use this CSE's own CSE-ID {csi}"
            ));
        }
        if self.store().read(|r| r.get(csi.bare()))?.is_some() {
            return Err(CseError::Conflict(format!(
                "CSE {csi} is already registered"
            )));
        }
        Ok((csi.bare().to_string(), csi.bare().to_string()))
    }

    /// Every `acpi` entry must name an existing `<accessControlPolicy>`.
    pub(crate) fn check_acpi(&self, r: &Resource) -> Result<()> {
        for id in r.str_list("acpi") {
            let found = self.store().read(|s| s.get(id))?;
            if found.is_none_or(|a| a.ty != T::ACCESS_CONTROL_POLICY) {
                return Err(bad_request!(
                    "accessControlPolicyIDs names {id:?}, which is not an <accessControlPolicy>"
                ));
            }
        }
        Ok(())
    }
}

/// Checks `pv`/`pvs` by compiling them as access control will (TS-0004 §6.3.5.29 `m2m:setOfAcrs`);
/// the error names the offending element.
pub(crate) fn check_acp(attrs: &Map<String, Value>) -> Result<()> {
    m2mtrust_authz::CompiledAcp::compile(&Value::Object(attrs.clone()))
        .map(|_| ())
        .map_err(|e| bad_request!("invalid access control policy: {e}"))
}

/// Adds a new instance to its container's counters and removes the oldest instances while
/// `mni` or `mbs` is exceeded (TS-0001 §9.6.7). Returns the removed instances.
fn add_instance(
    w: &mut dyn m2mtrust_store::Writer,
    container_ri: &str,
    cin: &Resource,
    now: Timestamp,
) -> Result<Vec<Resource>> {
    let Some(mut cnt) = w.get(container_ri)? else {
        return Err(CseError::NotFound(format!(
            "container {container_ri} no longer exists"
        )));
    };
    let cs = cin.uint("cs").unwrap_or(0);
    let mut cni = cnt.uint("cni").unwrap_or(0) + 1;
    let mut cbs = cnt.uint("cbs").unwrap_or(0) + cs;
    let mni = cnt.uint("mni");
    let mbs = cnt.uint("mbs");
    let mut trimmed = Vec::new();
    while mni.is_some_and(|m| cni > m) || mbs.is_some_and(|m| cbs > m) {
        let Some(oldest) = w.edge_child(
            container_ri,
            T::CONTENT_INSTANCE,
            false,
            Timestamp(i64::MIN),
        )?
        else {
            break;
        };
        if oldest.ri() == cin.ri() {
            break;
        }
        w.delete_subtree(oldest.ri())?;
        cni -= 1;
        cbs = cbs.saturating_sub(oldest.uint("cs").unwrap_or(0));
        trimmed.push(oldest);
    }
    let st = cnt.uint("st").unwrap_or(0) + 1;
    cnt.attrs.insert("cni".into(), cni.into());
    cnt.attrs.insert("cbs".into(), cbs.into());
    cnt.attrs.insert("st".into(), st.into());
    Cse::touch(&mut cnt.attrs, now);
    w.update(&cnt)?;
    Ok(trimmed)
}

/// Recomputes a container's counters after instances were removed without [`add_instance`].
pub(crate) fn recount(
    w: &mut dyn m2mtrust_store::Writer,
    container_ri: &str,
    now: Timestamp,
) -> Result<()> {
    let Some(mut cnt) = w.get(container_ri)? else {
        return Ok(());
    };
    if cnt.ty != T::CONTAINER {
        return Ok(());
    }
    let instances = w.children(container_ri, Some(T::CONTENT_INSTANCE))?;
    let cbs: u64 = instances.iter().map(|i| i.uint("cs").unwrap_or(0)).sum();
    cnt.attrs
        .insert("cni".into(), (instances.len() as u64).into());
    cnt.attrs.insert("cbs".into(), cbs.into());
    Cse::touch(&mut cnt.attrs, now);
    w.update(&cnt)?;
    Ok(())
}

/// Trims a container to its (possibly lowered) `mni`/`mbs`; returns the removed instances.
pub(crate) fn trim(w: &mut dyn m2mtrust_store::Writer, cnt: &Resource) -> Result<Vec<Resource>> {
    let mut instances = w.children(cnt.ri(), Some(T::CONTENT_INSTANCE))?;
    let mut cbs: u64 = instances.iter().map(|i| i.uint("cs").unwrap_or(0)).sum();
    let mut removed = Vec::new();
    while !instances.is_empty()
        && (cnt.uint("mni").is_some_and(|m| instances.len() as u64 > m)
            || cnt.uint("mbs").is_some_and(|m| cbs > m))
    {
        let oldest = instances.remove(0);
        w.delete_subtree(oldest.ri())?;
        cbs = cbs.saturating_sub(oldest.uint("cs").unwrap_or(0));
        removed.push(oldest);
    }
    Ok(removed)
}
