//! The DAS Server's part of Dynamic Authorization (TS-0003 §7.3.2.2 step 3, §7.3.2.3 steps 3
//! and 5): who is asking, for whom and for which hosting CSE; which policy grants what; the
//! token claims and dynamicACPInfo that carry the grant.
//!
//! **Architecture Invariant:** no I/O and no clock reads: `now`, the policies and the stored
//! tokens are arguments.

use chrono::{DateTime, TimeDelta, Utc};
use m2mtrust_model::{Authentication, CseId, Home, Originator, PeerIdentity};
use serde_json::{Value, json};

use crate::policy::{Policy, ResourceAddress, absolute_originator};
use crate::request::{DasRequest, SIT_DYNAMIC_AUTHORIZATION_RESPONSE};
use crate::{DasError, TokenClaims, TokenPermission, TokenPermissions, to_m2m_timestamp};

/// The entity that sent the Dynamic Authorization Request, after the identity checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// Its absolute ID (`//sp/id-in`, `//sp/id-in/Cae1`).
    pub absolute: String,
    /// Its CSE-ID when it is a CSE (a hosting CSE consulting the DAS).
    pub cse: Option<CseId>,
    /// The Credential-ID of its security association, for audit.
    pub credential_id: String,
}

/// TS-0003 §7.2.1 applied to the DAS: `From` must be an identity bound to the credential that
/// authenticated the connection.
pub fn identify(
    from: Option<&str>,
    peer: &PeerIdentity,
    home: &Home,
) -> Result<Requester, DasError> {
    let (credential_id, bound_ids) = match &peer.authentication {
        Authentication::None => {
            return Err(DasError::NotAuthenticated(
                "the DAS Server answers only over a security association (TLS with a PSK or certificate)".into(),
            ));
        }
        Authentication::Credential {
            credential_id,
            bound_ids,
        } => (credential_id, bound_ids),
    };
    let from = from.ok_or_else(|| DasError::BadRequest("the request has no From".into()))?;
    let originator =
        Originator::parse(from, home).map_err(|e| DasError::BadRequest(format!("From: {e}")))?;
    let canonical = originator.canonical();
    if !bound_ids.contains(&canonical) {
        return Err(DasError::NotBound(format!(
            "From {from} is not the identity bound to credential {credential_id} ({})",
            if bound_ids.is_empty() {
                "none".to_owned()
            } else {
                bound_ids.join(", ")
            }
        )));
    }
    Ok(Requester {
        absolute: originator.absolute(home),
        cse: match originator {
            Originator::Cse(cse) => Some(cse),
            _ => None,
        },
        credential_id: credential_id.clone(),
    })
}

/// What the requester asks the DAS Server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Decide on a request that the hosting CSE could not grant (Direct DA, §7.3.2.2), or that
    /// an Originator wants a token for (Indirect DA, §7.3.2.3 step 3).
    Decide {
        /// The hosting CSE's absolute CSE-ID: the token audience.
        audience: String,
        /// The Originator's absolute ID: the token holder.
        holder: String,
        /// `trid` as received: the token's resourceIDs.
        trid: String,
        /// `trid` with its hosting CSE.
        target: ResourceAddress,
        /// The accessControlOperations bit of `op`.
        operation_bit: u8,
        /// `ppl`.
        proposed_end: Option<DateTime<Utc>>,
        /// Whether dynamicACPInfo can be used: only a hosting CSE creates dynamic ACPs.
        dynamic_acp: bool,
    },
    /// Return the stored tokens named by `tids` (§7.3.2.3 step 5).
    Resolve {
        /// The hosting CSE asking: tokens must name it in their audience.
        audience: String,
        /// The Originator: tokens must be held by it.
        holder: String,
        /// The Token-IDs, duplicates removed, in request order.
        token_ids: Vec<String>,
    },
}

/// Reads `dreq` in the light of who sent it.
///
/// - A CSE asking for another originator is a hosting CSE (Direct DA): the audience is that
///   CSE; relative IDs in `or` and `trid` are read against it.
/// - Anyone asking for itself is an Originator (Indirect DA): the audience is the CSE named by
///   `trid`, which must therefore carry a CSE-ID.
/// - An AE asking for someone else is refused (4103).
pub fn plan(requester: &Requester, dreq: &DasRequest, home: &Home) -> Result<Ask, DasError> {
    // Relative IDs in a hosting CSE's request are relative to that CSE.
    let reference = match &requester.cse {
        Some(cse) => Home {
            sp_id: home.sp_id.clone(),
            cse_id: cse.clone(),
            cse_base_name: home.cse_base_name.clone(),
        },
        None => home.clone(),
    };
    let holder = absolute_originator(&dreq.originator, &reference)
        .map_err(|e| DasError::BadRequest(format!("dreq.or: {e}")))?;
    if !dreq.token_ids.is_empty() {
        if requester.cse.is_none() {
            return Err(DasError::NoPrivilege(format!(
                "{} is not a CSE: Token-IDs (dreq.tids) are resolved for hosting CSEs only",
                requester.absolute
            )));
        }
        let mut token_ids: Vec<String> = Vec::new();
        for id in &dreq.token_ids {
            if !token_ids.contains(id) {
                token_ids.push(id.clone());
            }
        }
        return Ok(Ask::Resolve {
            audience: requester.absolute.clone(),
            holder,
            token_ids,
        });
    }
    let Some(trid) = dreq.targeted_resource_id.clone() else {
        return Err(DasError::BadRequest(
            "dreq.trid (targeted resource ID) is missing".into(),
        ));
    };
    let target = ResourceAddress::parse(&trid, home.sp_id.as_str())
        .map_err(|e| DasError::BadRequest(format!("dreq.trid: {e}")))?;
    let common = |audience: String, target: ResourceAddress, dynamic_acp: bool| Ask::Decide {
        audience,
        holder: holder.clone(),
        trid: trid.clone(),
        target,
        operation_bit: dreq.operation_bit(),
        proposed_end: dreq.proposed_privileges_lifetime,
        dynamic_acp,
    };
    if requester.cse.is_some() && holder != requester.absolute {
        // TS-0003 §7.3.2.2 step 2.3: the hosting CSE asks on behalf of the Originator.
        let target = target.hosted_by(&requester.absolute);
        return Ok(common(requester.absolute.clone(), target, true));
    }
    // TS-0003 §7.3.2.3 step 3: the Originator asks for itself.
    if holder != requester.absolute {
        return Err(DasError::NoPrivilege(format!(
            "{} may ask for its own privileges only, not for {holder}",
            requester.absolute
        )));
    }
    let Some(audience) = target.cse.clone() else {
        return Err(DasError::BadRequest(format!(
            "dreq.trid {trid:?} names no hosting CSE; an originator asking for itself gives \
             /CSE-ID/path or //SP-ID/CSE-ID/path"
        )));
    };
    Ok(common(audience, target, false))
}

/// What a policy grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'p> {
    /// The policy that matched.
    pub policy: &'p Policy,
    /// When the privileges end.
    pub not_after: DateTime<Utc>,
}

/// The first policy (in creation order) covering the request decides; later matches are not
/// merged, so what a requester gets never depends on how many policies overlap.
pub fn decide<'p>(
    policies: &'p [Policy],
    holder: &str,
    target: &ResourceAddress,
    operation_bit: u8,
    proposed_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Grant<'p>> {
    let policy = policies
        .iter()
        .find(|p| p.matches(holder, target, operation_bit))?;
    Some(Grant {
        policy,
        not_after: now + lifetime(policy.lifetime_secs, proposed_end, now),
    })
}

/// The policy's lifetime, shortened to end at the proposed privileges lifetime (`ppl`) when
/// that lies in the future; a `ppl` in the past proposes nothing and is ignored.
pub fn lifetime(
    policy_secs: u32,
    proposed_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> TimeDelta {
    let policy = TimeDelta::seconds(i64::from(policy_secs));
    match proposed_end {
        Some(end) if end > now => policy.min(end - now),
        _ => policy,
    }
}

/// The setOfAcrs granting `operations` to `holder`.
pub fn privileges(holder: &str, operations: u8) -> Value {
    json!({"acr": [{"acor": [holder], "acop": operations}]})
}

/// `dynamicACPInfo` (`dai`, TS-0003 Table 7.3.2.2-2): granted privileges and their end.
pub fn dynamic_acp_info(holder: &str, operations: u8, not_after: DateTime<Utc>) -> Value {
    json!({"gp": privileges(holder, operations), "pl": to_m2m_timestamp(not_after)})
}

/// What an issued token states.
#[derive(Debug, Clone)]
pub struct TokenGrant<'a> {
    /// The issuer ID (`iss`).
    pub issuer: &'a str,
    /// The Token-ID (`jti`).
    pub token_id: String,
    /// The holder (`azp`).
    pub holder: &'a str,
    /// The hosting CSE (`aud`).
    pub audience: &'a str,
    /// The resource (`ris`).
    pub resource: &'a str,
    /// accessControlOperations (`acop`).
    pub operations: u8,
    /// Role-IDs (`rids`).
    pub role_ids: &'a [String],
    /// `nbf`.
    pub not_before: DateTime<Utc>,
    /// `exp`.
    pub not_after: DateTime<Utc>,
}

impl TokenGrant<'_> {
    /// The claim set (TS-0003 §7.3.2.4; one permission: the privileges on the resource, plus the
    /// role IDs when the policy lists some).
    pub fn claims(&self) -> TokenClaims {
        TokenClaims {
            version: "1".into(),
            token_id: self.token_id.clone(),
            issuer: self.issuer.to_owned(),
            holder: self.holder.to_owned(),
            not_before: self.not_before,
            not_after: self.not_after,
            token_name: None,
            audience: vec![self.audience.to_owned()],
            permissions: Some(TokenPermissions {
                pm: vec![TokenPermission {
                    ris: Some(vec![self.resource.to_owned()]),
                    pv: Some(privileges(self.holder, self.operations)),
                    rids: (!self.role_ids.is_empty()).then(|| self.role_ids.to_vec()),
                }],
            }),
            extension: None,
        }
    }
}

/// A token the DAS Server issued, as it keeps it for Token-ID resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// `jti`.
    pub token_id: String,
    /// `azp`.
    pub holder: String,
    /// `aud`.
    pub audience: Vec<String>,
    /// The compact JWT.
    pub jwt: String,
    /// `exp`.
    pub not_after: DateTime<Utc>,
}

impl StoredToken {
    /// TS-0003 §7.3.2.3 step 5: the DAS returns "only those … applicable to the Hosting CSE":
    /// the asking CSE is in the audience, the holder is the Originator, and it has not expired.
    pub fn usable_by(&self, audience: &str, holder: &str, now: DateTime<Utc>) -> bool {
        self.audience.iter().any(|a| a == audience) && self.holder == holder && self.not_after > now
    }
}

/// `m2m:seci` with `sit` 2 and the `dres` parts that are present; no `dres` when nothing is
/// granted (TS-0004: "no Content if nothing is granted" is read as an empty response).
pub fn response(dynamic_acp_info: Option<Value>, tokens: Vec<String>) -> Value {
    let mut dres = serde_json::Map::new();
    if let Some(dai) = dynamic_acp_info {
        dres.insert("dai".into(), dai);
    }
    if !tokens.is_empty() {
        dres.insert("tkns".into(), json!(tokens));
    }
    let mut seci = serde_json::Map::new();
    seci.insert("sit".into(), json!(SIT_DYNAMIC_AUTHORIZATION_RESPONSE));
    if !dres.is_empty() {
        seci.insert("dres".into(), Value::Object(dres));
    }
    json!({ "m2m:seci": seci })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::policy::{GrantMode, PolicySpec};
    use crate::{parse_m2m_timestamp, request::RequestError};
    use m2mtrust_model::SpId;

    const SP: &str = "//m2mtrust.example";

    fn home() -> Home {
        Home {
            sp_id: SpId::parse(SP).unwrap(),
            cse_id: CseId::parse("/id-in").unwrap(),
            cse_base_name: "cse-in".into(),
        }
    }

    fn peer(bound: &[&str]) -> PeerIdentity {
        PeerIdentity {
            addr: None,
            authentication: Authentication::Credential {
                credential_id: "32-/id-in".into(),
                bound_ids: bound.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }

    fn dreq(v: Value) -> Result<DasRequest, RequestError> {
        DasRequest::from_content(Some(&json!({"m2m:seci": {"sit": 1, "dreq": v}})))
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_m2m_timestamp(s).unwrap()
    }

    #[test]
    fn from_must_be_bound_to_the_association() {
        let h = home();
        let cse = identify(Some("/id-in"), &peer(&["/id-in"]), &h).unwrap();
        assert_eq!(cse.absolute, "//m2mtrust.example/id-in");
        assert_eq!(cse.cse, Some(CseId::parse("/id-in").unwrap()));
        // The absolute form of the bound ID is the same identity.
        let abs = identify(Some("//m2mtrust.example/id-in"), &peer(&["/id-in"]), &h).unwrap();
        assert_eq!(abs, cse);
        let ae = identify(Some("Cae1"), &peer(&["Cae1"]), &h).unwrap();
        assert_eq!(ae.absolute, "//m2mtrust.example/id-in/Cae1");
        assert_eq!(ae.cse, None);
        let ae = identify(Some("/id-in/Cae1"), &peer(&["Cae1"]), &h).unwrap();
        assert_eq!(ae.absolute, "//m2mtrust.example/id-in/Cae1");

        let code = |r: Result<Requester, DasError>| {
            m2mtrust_model::ResponseStatusCode::from(&r.unwrap_err()).0
        };
        assert_eq!(code(identify(Some("Cae2"), &peer(&["Cae1"]), &h)), 4106);
        assert_eq!(code(identify(Some("/id-mn"), &peer(&["/id-in"]), &h)), 4106);
        assert_eq!(code(identify(Some("Cae1"), &peer(&[]), &h)), 4106);
        assert_eq!(code(identify(None, &peer(&["Cae1"]), &h)), 4000);
        assert_eq!(
            code(identify(Some("Cae1"), &PeerIdentity::internal(), &h)),
            4103
        );
    }

    fn requester(from: &str) -> Requester {
        let h = home();
        let canonical = Originator::parse(from, &h).unwrap().canonical();
        identify(Some(from), &peer(&[&canonical]), &h).unwrap()
    }

    #[test]
    fn a_hosting_cse_asks_for_the_originator_and_is_the_audience() {
        let h = home();
        let r = requester("/id-in");
        let d = dreq(
            json!({"or": "//m2mtrust.example/id-in/Cae1", "op": 2, "trid": "cse-in/ae1/cnt1"}),
        )
        .unwrap();
        let Ask::Decide {
            audience,
            holder,
            target,
            dynamic_acp,
            operation_bit,
            ..
        } = plan(&r, &d, &h).unwrap()
        else {
            panic!("not a decision")
        };
        assert_eq!(audience, "//m2mtrust.example/id-in");
        assert_eq!(holder, "//m2mtrust.example/id-in/Cae1");
        assert_eq!(target.cse.as_deref(), Some("//m2mtrust.example/id-in"));
        assert_eq!(target.path, "cse-in/ae1/cnt1");
        assert!(dynamic_acp);
        assert_eq!(operation_bit, 2);

        // Relative IDs in an MN-CSE's request are read against that CSE.
        let mn = requester("/id-mn");
        let d = dreq(json!({"or": "Cae1", "op": 1, "trid": "mn-cse/x"})).unwrap();
        let Ask::Decide {
            audience, holder, ..
        } = plan(&mn, &d, &h).unwrap()
        else {
            panic!("not a decision")
        };
        assert_eq!(audience, "//m2mtrust.example/id-mn");
        assert_eq!(holder, "//m2mtrust.example/id-mn/Cae1");
    }

    #[test]
    fn an_originator_asks_for_itself_and_trid_names_the_audience() {
        let h = home();
        let ae = requester("Cae1");
        // (trid, audience)
        let table = [
            ("/id-in/cse-in/ae1/cnt1", "//m2mtrust.example/id-in"),
            (
                "//m2mtrust.example/id-in/cse-in/x",
                "//m2mtrust.example/id-in",
            ),
            ("/id-mn/mn-cse/x", "//m2mtrust.example/id-mn"),
            ("//other.example/id-x/base/y", "//other.example/id-x"),
        ];
        for (trid, want) in table {
            let d = dreq(json!({"or": "//m2mtrust.example/id-in/Cae1", "op": 2, "trid": trid}))
                .unwrap();
            let Ask::Decide {
                audience,
                dynamic_acp,
                ..
            } = plan(&ae, &d, &h).unwrap()
            else {
                panic!("not a decision")
            };
            assert_eq!(audience, want, "{trid}");
            assert!(!dynamic_acp);
        }
        // A CSE-relative trid names no hosting CSE.
        let d = dreq(json!({"or": "Cae1", "op": 2, "trid": "cse-in/x"})).unwrap();
        let err = plan(&ae, &d, &h).unwrap_err();
        assert_eq!(m2mtrust_model::ResponseStatusCode::from(&err).0, 4000);
        // Asking for someone else.
        let d = dreq(json!({"or": "Cae2", "op": 2, "trid": "/id-in/cse-in/x"})).unwrap();
        let err = plan(&ae, &d, &h).unwrap_err();
        assert_eq!(m2mtrust_model::ResponseStatusCode::from(&err).0, 4103);
        // A CSE asking for itself is an originator too.
        let cse = requester("/id-in");
        let d = dreq(json!({"or": "/id-in", "op": 2, "trid": "/id-mn/x"})).unwrap();
        let Ask::Decide {
            audience,
            dynamic_acp,
            ..
        } = plan(&cse, &d, &h).unwrap()
        else {
            panic!("not a decision")
        };
        assert_eq!(audience, "//m2mtrust.example/id-mn");
        assert!(!dynamic_acp);
    }

    #[test]
    fn token_ids_are_resolved_for_hosting_cses_only() {
        let h = home();
        let d = dreq(json!({"or": "Cae1", "op": 2, "tids": ["a", "b", "a"]})).unwrap();
        assert_eq!(
            plan(&requester("/id-in"), &d, &h).unwrap(),
            Ask::Resolve {
                audience: "//m2mtrust.example/id-in".into(),
                holder: "//m2mtrust.example/id-in/Cae1".into(),
                token_ids: vec!["a".into(), "b".into()],
            }
        );
        let err = plan(&requester("Cae1"), &d, &h).unwrap_err();
        assert_eq!(m2mtrust_model::ResponseStatusCode::from(&err).0, 4103);
    }

    #[test]
    fn lifetime_is_clamped_by_the_proposed_end() {
        let now = t("20261124T110000");
        // (policy seconds, ppl, expected seconds)
        let table = [
            (3600, None, 3600),
            (3600, Some("20261124T113000"), 1800),
            (3600, Some("20261124T130000"), 3600),
            (3600, Some("20261124T110001"), 1),
            (3600, Some("20261124T110000"), 3600), // not in the future: ignored
            (3600, Some("20261124T100000"), 3600),
            (60, Some("20261124T113000"), 60),
        ];
        for (secs, ppl, want) in table {
            let got = lifetime(secs, ppl.map(t), now);
            assert_eq!(got.num_seconds(), want, "{secs} {ppl:?}");
        }
    }

    fn policy(id: &str, originator: &str, target: &str, ops: u8, secs: u32) -> Policy {
        Policy::new(
            id.into(),
            &PolicySpec {
                originators: vec![originator.into()],
                targets: vec![target.into()],
                operations: ops,
                lifetime_secs: secs,
                grant: GrantMode::Both,
                role_ids: Vec::new(),
            },
            &home(),
            t("20260101T000000"),
        )
        .unwrap()
    }

    #[test]
    fn the_first_matching_policy_decides() {
        let now = t("20261124T110000");
        let target = ResourceAddress::parse("/id-in/cse-in/ae1/cnt1", SP).unwrap();
        let ae = "//m2mtrust.example/id-in/Cae1";
        let policies = vec![
            policy("p1", "Cae2", "all", 63, 100),
            policy("p2", "C*", "cse-in/ae1/*", 3, 200),
            policy("p3", "all", "all", 63, 300),
        ];
        let g = decide(&policies, ae, &target, 2, None, now).unwrap();
        assert_eq!(g.policy.id, "p2");
        assert_eq!(g.not_after, now + TimeDelta::seconds(200));
        // Delete (8) is outside p2 and falls through to p3.
        let g = decide(&policies, ae, &target, 8, None, now).unwrap();
        assert_eq!(g.policy.id, "p3");
        assert!(decide(&policies[..2], ae, &target, 8, None, now).is_none());
        assert!(decide(&[], ae, &target, 2, None, now).is_none());
        let g = decide(&policies, ae, &target, 2, Some(t("20261124T110100")), now).unwrap();
        assert_eq!(g.not_after, t("20261124T110100"));
    }

    #[test]
    fn token_claims_and_dynamic_acp_info() {
        let now = t("20261124T110000");
        let roles = vec!["r1".to_string()];
        let grant = TokenGrant {
            issuer: "das.m2mtrust.example",
            token_id: "abc@das.m2mtrust.example".into(),
            holder: "//m2mtrust.example/id-in/Cae1",
            audience: "//m2mtrust.example/id-in",
            resource: "/id-in/cse-in/ae1/cnt1",
            operations: 3,
            role_ids: &roles,
            not_before: now,
            not_after: now + TimeDelta::seconds(60),
        };
        let c = grant.claims();
        c.validate().unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({
                "tkvr": "1", "jti": "abc@das.m2mtrust.example", "iss": "das.m2mtrust.example",
                "azp": "//m2mtrust.example/id-in/Cae1", "nbf": now.timestamp(),
                "exp": now.timestamp() + 60, "aud": ["//m2mtrust.example/id-in"],
                "tkps": {"pm": [{"ris": ["/id-in/cse-in/ae1/cnt1"],
                    "pv": {"acr": [{"acor": ["//m2mtrust.example/id-in/Cae1"], "acop": 3}]},
                    "rids": ["r1"]}]}
            })
        );
        assert_eq!(
            dynamic_acp_info("//sp/id-in/Cae1", 2, t("20261124T120000")),
            json!({"gp": {"acr": [{"acor": ["//sp/id-in/Cae1"], "acop": 2}]}, "pl": "20261124T120000"})
        );
        assert_eq!(response(None, Vec::new()), json!({"m2m:seci": {"sit": 2}}));
        assert_eq!(
            response(None, vec!["j".into()]),
            json!({"m2m:seci": {"sit": 2, "dres": {"tkns": ["j"]}}})
        );
    }

    #[test]
    fn stored_tokens_are_returned_to_their_audience_and_holder_only() {
        let now = t("20261124T110000");
        let token = StoredToken {
            token_id: "t@das".into(),
            holder: "//sp/id-in/Cae1".into(),
            audience: vec!["//sp/id-in".into()],
            jwt: "a.b.c".into(),
            not_after: now + TimeDelta::seconds(10),
        };
        // (audience, holder, at, usable)
        let table = [
            ("//sp/id-in", "//sp/id-in/Cae1", now, true),
            ("//sp/id-mn", "//sp/id-in/Cae1", now, false),
            ("//sp/id-in", "//sp/id-in/Cae2", now, false),
            (
                "//sp/id-in",
                "//sp/id-in/Cae1",
                now + TimeDelta::seconds(10),
                false,
            ),
            (
                "//sp/id-in",
                "//sp/id-in/Cae1",
                now + TimeDelta::seconds(9),
                true,
            ),
        ];
        for (audience, holder, at, want) in table {
            assert_eq!(
                token.usable_by(audience, holder, at),
                want,
                "{audience} {holder} {at}"
            );
        }
    }
}
