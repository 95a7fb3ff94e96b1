//! Resolving `To` to a hosted resource or a virtual resource (TS-0001 §9.3.1, §9.6.27-28 `la`/`ol`,
//! §9.6.14 `fopt`).

use m2mtrust_model::{CseId, Home, Request, Resource, ResourceType, Target};
use m2mtrust_store::StoreExt;

use crate::error::Result;
use crate::{Cse, CseError, Ctx};

/// Names of virtual resources; a real child may not use them.
pub(crate) const RESERVED_NAMES: &[&str] = &["la", "ol", "fopt"];

/// What a request addresses.
pub(crate) enum Addressed {
    /// A hosted resource.
    Resource(Resource),
    /// `<latest>` of a container.
    Latest(Resource),
    /// `<oldest>` of a container.
    Oldest(Resource),
    /// `<fanOutPoint>` of a group, with the path below it (may be empty).
    FanOut { group: Resource, rest: String },
    /// A resource of another CSE of this SP, reached by forwarding (TS-0001 §8.2).
    Remote { cse: CseId },
}

/// True when the request's target is a structured address (its first local segment is the CSEBase name).
pub(crate) fn is_structured(req: &Request, home: &Home) -> bool {
    match Target::parse(&req.to, home) {
        Ok(Target::Local(path)) => path.split('/').next() == Some(home.cse_base_name.as_str()),
        _ => true,
    }
}

impl Cse {
    pub(crate) fn resolve(&self, ctx: &Ctx<'_>) -> Result<Addressed> {
        let home = self.home();
        let path = match Target::parse(&ctx.req.to, home)
            .map_err(|e| CseError::BadRequest(e.to_string()))?
        {
            Target::Local(p) => p,
            Target::Remote { sp, cse } => {
                return match sp {
                    Some(sp) if sp != home.sp_id.domain() => {
                        Err(CseError::TargetNotReachable(format!(
                            "target {} is in another service provider domain (//{sp}{cse})",
                            ctx.req.to
                        )))
                    }
                    _ if self.forwards() => Ok(Addressed::Remote {
                        cse: CseId::parse(&cse).map_err(|e| CseError::BadRequest(e.to_string()))?,
                    }),
                    _ => Err(CseError::TargetNotReachable(format!(
                        "target {} is hosted by {cse}, which this CSE does not forward to",
                        ctx.req.to
                    ))),
                };
            }
        };
        let segments: Vec<&str> = path.split('/').collect();
        let structured = segments.first() == Some(&home.cse_base_name.as_str());
        // Try the whole path, then shorter prefixes followed by a virtual resource.
        let lookup = |n: usize| -> Result<Option<Resource>> {
            let found = if structured {
                let srn = segments[..n].join("/");
                self.store().read(|r| r.get_by_srn(&srn))?
            } else if n == 1 {
                self.store().read(|r| r.get(segments[0]))?
            } else {
                // Hybrid: ri followed by names below it.
                let Some(base) = self.store().read(|r| r.get(segments[0]))? else {
                    return Ok(None);
                };
                let srn = format!("{}/{}", base.srn, segments[1..n].join("/"));
                self.store().read(|r| r.get_by_srn(&srn))?
            };
            Ok(found.filter(|r| !r.is_expired(ctx.now)))
        };
        if let Some(r) = lookup(segments.len())? {
            return Ok(Addressed::Resource(r));
        }
        let not_found = || CseError::NotFound(format!("resource {} does not exist", ctx.req.to));
        // `.../cnt/la`, `.../cnt/ol`
        if segments.len() >= 2 {
            let last = segments[segments.len() - 1];
            if last == "la" || last == "ol" {
                if let Some(parent) = lookup(segments.len() - 1)?
                    && parent.ty == ResourceType::CONTAINER
                {
                    return Ok(if last == "la" {
                        Addressed::Latest(parent)
                    } else {
                        Addressed::Oldest(parent)
                    });
                }
                return Err(not_found());
            }
        }
        // `.../grp/fopt[/rest]`
        if let Some(pos) = segments.iter().position(|s| *s == "fopt")
            && pos >= 1
            && let Some(group) = lookup(pos)?
            && group.ty == ResourceType::GROUP
        {
            return Ok(Addressed::FanOut {
                group,
                rest: segments[pos + 1..].join("/"),
            });
        }
        Err(not_found())
    }
}
