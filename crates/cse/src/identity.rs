//! What an originator may call itself on its connection: TS-0003 §7.2.1 (registrar verification
//! of AE-IDs), §8.2.1 (identity association after the security association) and seed 003
//! change 1 step 002 (a pre-assigned CSE-ID).

use m2mtrust_model::{Authentication, CseId, Originator, ResourceType as T};
use serde_json::Value;

use crate::error::Result;
use crate::{Cse, CseError, Ctx};

impl Cse {
    /// Checks `From` against the identities bound to the connection's credential and fills in
    /// a registering entity's pre-assigned ID when `From` is empty.
    pub(crate) fn bind_identity(&self, ctx: &mut Ctx<'_>, registration: Option<T>) -> Result<()> {
        let bound = match &ctx.peer.authentication {
            Authentication::None => {
                let is_cse = matches!(
                    ctx.originator,
                    Some(Originator::Cse(_) | Originator::RemoteAe(..))
                ) || registration == Some(T::REMOTE_CSE);
                if is_cse && self.config().require_sa_for_cse {
                    return Err(CseError::SecurityAssociationRequired(
                        "requests from a CSE need a security association (TLS with a PSK or certificate)".into(),
                    ));
                }
                return Ok(());
            }
            Authentication::Credential {
                bound_ids,
                credential_id,
            } => {
                if bound_ids.is_empty() {
                    // §8.2.2.1 step 4: the security context is associated with the Credential-ID
                    // only; it vouches for no CSE-ID.
                    if matches!(ctx.originator, Some(Originator::Cse(_)))
                        || registration == Some(T::REMOTE_CSE)
                    {
                        return Err(CseError::NotRegistered(format!(
                            "credential {credential_id} is not bound to a CSE-ID"
                        )));
                    }
                    return Ok(());
                }
                (bound_ids.clone(), credential_id.clone())
            }
        };
        let (bound_ids, credential_id) = bound;
        let mismatch = |what: &str| {
            CseError::NotRegistered(format!(
                "{what} does not match the identity bound to credential {credential_id} ({})",
                bound_ids.join(", ")
            ))
        };
        match (&ctx.originator, registration) {
            // An empty `From` on registration: the Receiver sets the pre-assigned ID.
            (None, Some(T::AE)) => {
                let ae = bound_ids
                    .iter()
                    .find(|b| b.starts_with(['C', 'S']))
                    .ok_or_else(|| mismatch("an AE registration"))?;
                self.set_originator(ctx, ae)?;
            }
            (None, Some(T::REMOTE_CSE)) => {
                let cse = bound_ids
                    .iter()
                    .find(|b| b.starts_with('/'))
                    .ok_or_else(|| mismatch("a CSE registration"))?;
                self.set_originator(ctx, cse)?;
            }
            (None, _) => {}
            (Some(orig), _) => {
                let me = orig.canonical();
                // "C" and "S" ask the CSE to assign an AE-ID; with a bound credential it is the bound one.
                if registration == Some(T::AE) && (me == "C" || me == "S") {
                    let ae = bound_ids
                        .iter()
                        .find(|b| b.starts_with(['C', 'S']))
                        .ok_or_else(|| mismatch("an AE registration"))?;
                    self.set_originator(ctx, ae)?;
                } else if !bound_ids.contains(&me) && !relayed_by_bound_cse(orig, &bound_ids) {
                    return Err(mismatch(&format!("originator {me}")));
                }
            }
        }
        // Seed 003 change 1 step 002: a CSE-ID in the content must match the pre-assigned one.
        if registration == Some(T::REMOTE_CSE) {
            let csi = ctx
                .req
                .content
                .as_ref()
                .and_then(|c| c.get("m2m:csr"))
                .and_then(|c| c.get("csi"))
                .and_then(Value::as_str);
            if let Some(csi) = csi {
                let csi = CseId::parse(csi).map_err(|e| CseError::BadRequest(e.to_string()))?;
                if !bound_ids.iter().any(|b| b == csi.as_str()) {
                    return Err(mismatch(&format!("CSE-ID {csi} in the content")));
                }
            }
        }
        Ok(())
    }

    fn set_originator(&self, ctx: &mut Ctx<'_>, id: &str) -> Result<()> {
        let orig =
            Originator::parse(id, self.home()).map_err(|e| CseError::BadRequest(e.to_string()))?;
        ctx.authz_originator = crate::access::authz_originator(self, &orig);
        ctx.originator = Some(orig);
        Ok(())
    }
}

/// Digest §4 (TS-0003 §7.2.1 for CSEs): a registree CSE may send requests on behalf of the AEs
/// registered with it (`/id-mn/Cabc`), but not for another CSE's.
fn relayed_by_bound_cse(orig: &Originator, bound_ids: &[String]) -> bool {
    matches!(orig, Originator::RemoteAe(cse, _) if bound_ids.iter().any(|b| b == cse.as_str()))
}
