//! Forwarding of requests whose target another CSE hosts: TS-0001 §8.2 (a Receiver that is not
//! the Hosting CSE sends the request on towards it) with the registrar's part of TS-0003 §7.2.1
//! (the originator is checked against the security association here, before forwarding; the
//! hosting CSE takes a CSE-forwarded request on the association with this CSE).
//!
//! The engine picks the next hop and rewrites `From`; a [`Forwarder`] carries the request
//! there. Tokens, Role-IDs and access control are left to the hosting CSE: a transit CSE
//! neither verifies nor reads them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use m2mtrust_model::{Authentication, CseId, Originator, Request, ResourceType, Response};
use m2mtrust_store::StoreExt;

use crate::error::Result;
use crate::{Cse, CseError, Ctx};

/// Carries requests to other CSEs: the network side of forwarding.
pub trait Forwarder: Send + Sync {
    /// The CSE this one is registered with: the next hop towards every CSE that is not
    /// registered here. `None` for a CSE without a registrar (an IN-CSE).
    fn registrar(&self) -> Option<&CseId>;

    /// Sends `req` to the CSE `next_hop` over a security association with it and returns its
    /// response unchanged. `Err` says why no response came (no route, connection or handshake
    /// failure, timeout); the implementation bounds how long it waits.
    fn forward(
        &self,
        next_hop: &CseId,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Response, String>> + Send>>;
}

impl Cse {
    /// Installs the forwarder. Without one, a target on another CSE is refused with 5103.
    pub fn set_forwarder(&self, forwarder: Arc<dyn Forwarder>) {
        let _ = self.forwarder.set(forwarder);
    }

    /// True when requests for other CSEs are forwarded.
    pub(crate) fn forwards(&self) -> bool {
        self.forwarder.get().is_some()
    }

    /// Forwards the request to the next hop towards `target` and returns the next hop's
    /// response as it is. The originator checks ran before (identity binding, registration);
    /// access control is the hosting CSE's.
    pub(crate) async fn forward(&self, ctx: &Ctx<'_>, target: &CseId) -> Result<Response> {
        let Some(forwarder) = self.forwarder.get() else {
            return Err(CseError::TargetNotReachable(format!(
                "target {} is hosted by {target}, which this CSE does not forward to",
                ctx.req.to
            )));
        };
        let home = self.home();
        // A registered <remoteCSE> is reached directly; any other CSE through the registrar.
        let next_hop = if self.registered_cse(target, ctx)? {
            target.clone()
        } else {
            forwarder.registrar().cloned().ok_or_else(|| {
                CseError::TargetNotReachable(format!(
                    "target {} is hosted by {target}, which is not registered with this CSE, and this CSE has no registrar",
                    ctx.req.to
                ))
            })?
        };
        if next_hop == home.cse_id {
            return Err(CseError::TargetNotReachable(format!(
                "target {}: the next hop towards {target} would be this CSE",
                ctx.req.to
            )));
        }
        if came_from(ctx, &next_hop) {
            return Err(CseError::TargetNotReachable(format!(
                "target {}: the request came from {next_hop}, the next hop towards {target}; not sending it back",
                ctx.req.to
            )));
        }
        // Only an originator the connection's credential vouches for is carried further: the
        // next hop takes this CSE's word for who it is.
        if !vouched_for(ctx) {
            return Err(CseError::NotRegistered(format!(
                "{} is not the identity bound to this connection; requests for other CSEs are forwarded only for it",
                ctx.orig()
            )));
        }
        let mut req = ctx.req.clone();
        req.from = ctx
            .originator
            .as_ref()
            .map(|o| forwarded_from(o, ctx.req, home));
        let from = req.from.clone().unwrap_or_default();
        let result = forwarder.forward(&next_hop, req).await;
        match &result {
            Ok(resp) => tracing::info!(
                target: "audit", originator = %from, peer = ?ctx.peer.addr, to = %ctx.req.to,
                next_hop = %next_hop, operation = ?ctx.req.operation, rsc = resp.status.0,
                "request forwarded"
            ),
            Err(e) => tracing::warn!(
                target: "audit", originator = %from, peer = ?ctx.peer.addr, to = %ctx.req.to,
                next_hop = %next_hop, operation = ?ctx.req.operation, error = %e,
                "request not forwarded: next hop unreachable"
            ),
        }
        // The transport detail (addresses, TLS alerts) stays in the log.
        result.map_err(|_| {
            CseError::TargetNotReachable(format!(
                "target {}: next hop {next_hop} did not answer",
                ctx.req.to
            ))
        })
    }

    /// True when `cse` has a live `<remoteCSE>` here.
    fn registered_cse(&self, cse: &CseId, ctx: &Ctx<'_>) -> Result<bool> {
        Ok(self
            .store()
            .read(|r| r.get(cse.bare()))?
            .is_some_and(|r| r.ty == ResourceType::REMOTE_CSE && !r.is_expired(ctx.now)))
    }
}

/// `From` as the next hop needs it: a C-type AE-ID registered here, which the originator may
/// give in its CSE-relative form (`Cae1`), becomes SP-relative (`/id-mn/Cae1`) so that other
/// CSEs can tell whose it is. Every other form passes as the originator sent it.
fn forwarded_from(orig: &Originator, req: &Request, home: &m2mtrust_model::Home) -> String {
    let sent = req.from.as_deref().unwrap_or_default();
    match orig {
        Originator::LocalAe(ae) if !sent.starts_with('/') => format!("{}/{ae}", home.cse_id),
        // The identity binding may have set the originator of an empty `From`.
        _ if sent.is_empty() => orig.canonical(),
        _ => sent.to_string(),
    }
}

/// True when the connection's credential is bound to the originator (or, for an AE of a CSE
/// registered here, to that CSE).
fn vouched_for(ctx: &Ctx<'_>) -> bool {
    let (Some(orig), Authentication::Credential { bound_ids, .. }) =
        (&ctx.originator, &ctx.peer.authentication)
    else {
        return false;
    };
    let me = orig.canonical();
    bound_ids.contains(&me)
        || matches!(orig, Originator::RemoteAe(c, _) if bound_ids.iter().any(|b| b == c.as_str()))
}

/// True when the request arrived over an association bound to `cse`, or names an originator
/// of `cse`: sending it back there would make a loop.
fn came_from(ctx: &Ctx<'_>, cse: &CseId) -> bool {
    let bound = match &ctx.peer.authentication {
        Authentication::Credential { bound_ids, .. } => bound_ids.iter().any(|b| b == cse.as_str()),
        Authentication::None => false,
    };
    let originated = matches!(
        &ctx.originator,
        Some(Originator::Cse(c) | Originator::RemoteAe(c, _)) if c == cse
    );
    bound || originated
}
