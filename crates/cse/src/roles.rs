//! Role Based Access Control at the hosting CSE (TS-0003 §7.4): this CSE is the Role and
//! Token Repository for `<role>` and `<token>` resources under its `<CSEBase>`, and the PDP
//! that verifies the Role-IDs a request names (`rids`).
//!
//! Only an Authorization Authority (the admin originator or a configured
//! `role_authorities` originator) may create `<role>` and `<token>` resources — otherwise an
//! originator could assign itself any role. A Role-ID is used only when a `<role>` with that
//! `roleID` exists that an Authorization Authority created, whose issuer is accepted, whose
//! holder is the originator, and whose validity window contains now ("Only valid roles/tokens
//! shall be used", §7.4 step 4). Other Role-IDs are ignored; access control then simply finds
//! no rule for them.

use m2mtrust_model::{ResourceType as T, Timestamp};
use m2mtrust_store::StoreExt;
use serde_json::{Map, Value};

use crate::error::{Result, bad_request};
use crate::{Cse, CseError, Ctx};

/// Whether `id` has the Role-ID / Token-ID form `name@issuer-fqdn` (TS-0001 §7.1.14,
/// §7.1.15): a non-empty name and a lowercase domain name.
pub(crate) fn is_issued_id(id: &str) -> bool {
    let Some((name, fqdn)) = id.rsplit_once('@') else {
        return false;
    };
    !name.is_empty()
        && !name.contains(char::is_whitespace)
        && !fqdn.is_empty()
        && fqdn.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

impl Cse {
    /// Checks a `<role>` or `<token>` about to be created: by an Authorization Authority,
    /// with well-formed identifiers and a validity window that is not empty.
    pub(crate) fn check_authorization_resource(
        &self,
        ctx: &Ctx<'_>,
        ty: T,
        attrs: &Map<String, Value>,
    ) -> Result<()> {
        let creator = ctx.orig();
        if !self.is_authority(Some(&creator)) {
            return Err(CseError::NoPrivilege(format!(
                "only an Authorization Authority may create <{}> resources; {creator} is not one",
                if ty == T::ROLE { "role" } else { "token" }
            )));
        }
        let text = |k: &str| attrs.get(k).and_then(Value::as_str);
        if ty == T::ROLE {
            let rlid = text("rlid").unwrap_or_default();
            if !is_issued_id(rlid) {
                return Err(bad_request!(
                    "roleID (rlid) {rlid:?} must have the form name@issuer-fqdn"
                ));
            }
            let nb = text("tknb").and_then(Timestamp::parse);
            let na = text("tkna").and_then(Timestamp::parse);
            if let (Some(nb), Some(na)) = (nb, na)
                && na <= nb
            {
                return Err(bad_request!(
                    "notAfter (tkna) must be later than notBefore (tknb)"
                ));
            }
        } else {
            let tkid = text("tkid").unwrap_or_default();
            if !is_issued_id(tkid) {
                return Err(bad_request!(
                    "tokenID (tkid) {tkid:?} must have the form name@issuer-fqdn"
                ));
            }
            let tkob = text("tkob").unwrap_or_default();
            let parts = tkob.split('.').count();
            if parts != 3 && parts != 5 {
                return Err(bad_request!(
                    "tokenObject (tkob) must be a compact JWS or JWE (m2m:dynAuthJWT)"
                ));
            }
        }
        Ok(())
    }

    /// The `<role>` or `<token>` resources (`ty`) of this CSE's Role and Token Repository: the
    /// children of `<CSEBase>`.
    pub(crate) fn repository(&self, ty: T) -> Result<Vec<m2mtrust_model::Resource>> {
        Ok(self
            .store()
            .read(|s| match s.get_by_srn(&self.home().cse_base_name)? {
                Some(base) => s.children(base.ri(), Some(ty)),
                None => Ok(Vec::new()),
            })?)
    }

    /// TS-0003 §7.4 steps 2-4: the request's Role-IDs that valid `<role>` resources here
    /// assign to its originator.
    pub(crate) fn verify_roles(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        if ctx.req.role_ids.is_empty() {
            return Ok(());
        }
        let Some(orig) = &ctx.originator else {
            return Ok(());
        };
        let holder = orig.absolute(self.home());
        let canonical = orig.canonical();
        let now = ctx.now;
        let roles = self.repository(T::ROLE)?;
        for rid in &ctx.req.role_ids {
            let valid = roles.iter().find(|r| {
                let text = |k: &str| r.attrs.get(k).and_then(Value::as_str);
                let time = |k: &str| text(k).and_then(Timestamp::parse);
                text("rlid") == Some(rid.as_str())
                    && text("tkhd").is_some_and(|h| h == holder || h == canonical)
                    && text("tkis").is_some_and(|i| self.cfg.role_issuers.iter().any(|t| t == i))
                    && time("tknb").is_some_and(|nb| nb <= now)
                    && time("tkna").is_some_and(|na| now < na)
                    && !r.is_expired(now)
                    && self.is_authority(r.creator())
            });
            match valid {
                Some(_) => ctx.roles.push(rid.clone()),
                None => tracing::info!(
                    target: "audit", originator = %holder, role = %rid,
                    "Role-ID ignored: no valid <role> assigns it to this originator"
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_issued_id;

    #[test]
    fn issued_ids_name_a_lowercase_issuer() {
        for ok in ["r1@das.example.com", "reader@das", "a.b@x-1.example"] {
            assert!(is_issued_id(ok), "{ok}");
        }
        for bad in [
            "r1",
            "@das.example",
            "r1@",
            "r1@Das.example",
            "r1@das..example",
            "r1@-das.example",
            "r 1@das.example",
            "r1@das_example",
        ] {
            assert!(!is_issued_id(bad), "{bad}");
        }
    }
}
