//! The calls the CSE makes, beyond single decisions: discovery filtering, the default policy
//! of resources without `acpi`, rule-set selection, audit text, errors and shared ACPs.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use m2mtrust_authz::{
    Attributes, CompiledAcp, Decision, DenyReason, HostingCse, Indeterminacy, NoDirectory,
    Operation, Pdp, Problem, Request, RuleSet,
};
use serde_json::json;

fn pdp() -> Pdp {
    Pdp::new(HostingCse::new("//m2mtrust.example", "/id-in").unwrap())
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 0).unwrap()
}

fn acp(pv: serde_json::Value) -> Arc<CompiledAcp> {
    Arc::new(
        CompiledAcp::compile(
            &json!({"pv": {"acr": pv}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}),
        )
        .unwrap(),
    )
}

#[test]
fn discovery_drops_what_may_not_be_discovered() {
    let pdp = pdp();
    let discover = acp(json!([{"acor": ["Cabc"], "acop": 32}]));
    let retrieve_only = acp(json!([{"acor": ["Cabc"], "acop": 2}]));
    let other = acp(json!([{"acor": ["Cxyz"], "acop": 63}]));
    let acp_self = acp(json!([]));
    let mut items: Vec<(&str, RuleSet, Vec<Arc<CompiledAcp>>)> = vec![
        ("cnt1", RuleSet::Privileges, vec![discover.clone()]),
        ("cnt2", RuleSet::Privileges, vec![retrieve_only.clone()]),
        (
            "cnt3",
            RuleSet::Privileges,
            vec![other.clone(), discover.clone()],
        ),
        ("cnt4", RuleSet::Privileges, vec![]),
        ("acp1", RuleSet::SelfPrivileges, vec![acp_self]),
    ];
    let from = pdp.originator("Cabc").unwrap();
    // The operation in the request does not matter: discovery is checked.
    let request = Request::new(&from, Operation::Retrieve, now());
    let dropped = pdp.filter_discovery(&mut items, &request, &NoDirectory, |(_, set, acps)| {
        (*set, acps.clone())
    });
    let kept: Vec<&str> = items.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(kept, ["cnt1", "cnt3"]);
    assert_eq!(dropped, 3);
}

#[test]
fn default_policy_grants_the_creator_only() {
    let pdp = pdp();
    let creator = pdp.originator("/id-in/Cowner").unwrap();
    let policy = [CompiledAcp::for_creator(&creator)];
    let someone = pdp.originator("Cother").unwrap();
    for op in Operation::ALL {
        for set in [RuleSet::Privileges, RuleSet::SelfPrivileges] {
            let own = Request::new(&creator, op, now());
            assert!(
                pdp.decide(&policy, set, &own, &NoDirectory).is_permit(),
                "{op:?} {set}"
            );
            let other = Request::new(&someone, op, now());
            assert!(!pdp.decide(&policy, set, &other, &NoDirectory).is_permit());
        }
    }
    let same_creator_other_form = pdp.originator("Cowner").unwrap();
    let request = Request::new(&same_creator_other_form, Operation::Delete, now());
    assert!(
        pdp.decide(&policy, RuleSet::Privileges, &request, &NoDirectory)
            .is_permit()
    );
}

#[test]
fn rule_set_selection() {
    assert_eq!(RuleSet::select(false, false), RuleSet::Privileges);
    assert_eq!(RuleSet::select(true, false), RuleSet::SelfPrivileges);
    assert_eq!(RuleSet::select(false, true), RuleSet::SelfPrivileges);
    assert_eq!(RuleSet::select(true, true), RuleSet::SelfPrivileges);
    assert_eq!(RuleSet::Privileges.to_string(), "pv");
    assert_eq!(RuleSet::SelfPrivileges.short_name(), "pvs");
}

#[test]
fn operation_bits_and_primitives() {
    let bits: Vec<u8> = Operation::ALL.iter().map(|o| o.bit()).collect();
    assert_eq!(bits, [1, 2, 4, 8, 16, 32]);
    assert_eq!(Operation::from_primitive(1, None), Some(Operation::Create));
    assert_eq!(
        Operation::from_primitive(2, None),
        Some(Operation::Retrieve)
    );
    assert_eq!(
        Operation::from_primitive(2, Some(2)),
        Some(Operation::Retrieve)
    );
    assert_eq!(
        Operation::from_primitive(2, Some(1)),
        Some(Operation::Discovery)
    );
    assert_eq!(
        Operation::from_primitive(2, Some(3)),
        Some(Operation::Discovery)
    );
    assert_eq!(Operation::from_primitive(2, Some(9)), None);
    assert_eq!(
        Operation::from_primitive(3, Some(1)),
        Some(Operation::Update)
    );
    assert_eq!(Operation::from_primitive(4, None), Some(Operation::Delete));
    assert_eq!(Operation::from_primitive(5, None), Some(Operation::Notify));
    assert_eq!(Operation::from_primitive(6, None), None);
}

#[test]
fn audit_text_and_fields() {
    let pdp = pdp();
    let acps = [
        acp(json!([{"acor": ["Cxyz"], "acop": 2}])),
        Arc::new(
            CompiledAcp::compile(&json!({"pv": {"acr": [{"acor": ["Cabc"], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}))
                .unwrap()
                .with_id("acp9"),
        ),
    ];
    let from = pdp.originator("Cabc").unwrap();
    let decision = pdp.decide(
        &acps,
        RuleSet::Privileges,
        &Request::new(&from, Operation::Retrieve, now()),
        &NoDirectory,
    );
    assert_eq!(decision.to_string(), "permit by pv acp[1] (acp9) rule 0");
    let Decision::Permit(permit) = decision else {
        panic!("expected a permit");
    };
    assert_eq!(permit.rule.acp_id.as_deref(), Some("acp9"));

    let denied = pdp.decide(
        &acps,
        RuleSet::Privileges,
        &Request::new(&from, Operation::Update, now()),
        &NoDirectory,
    );
    assert_eq!(denied.to_string(), "deny: no pv rule matched");

    let with_ip = [acp(
        json!([{"acor": ["Cabc"], "acop": 2, "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}}]}]),
    )];
    let denied = pdp.decide(
        &with_ip,
        RuleSet::Privileges,
        &Request::new(&from, Operation::Retrieve, now()),
        &NoDirectory,
    );
    assert_eq!(
        denied.to_string(),
        "deny: pv acp[0] rule 0 indeterminate: no peer IP address for acip"
    );
    let Decision::Deny(deny) = denied else {
        panic!("expected a deny");
    };
    assert_eq!(
        deny.reason,
        DenyReason::Indeterminate {
            rule: m2mtrust_authz::RuleRef {
                acp_index: 0,
                acp_id: None,
                rule_index: 0
            },
            cause: Indeterminacy::PeerAddressUnavailable,
        }
    );
}

#[test]
fn compile_errors_name_the_field() {
    let err = CompiledAcp::compile(
        &json!({"pv": {"acr": [{"acor": ["Cabc"], "acop": 64}]}, "pvs": {"acr": []}}),
    )
    .unwrap_err();
    assert_eq!(err.path, "pv.acr[0].acop");
    assert!(matches!(err.problem, Problem::Invalid(_)));
    assert_eq!(
        err.to_string(),
        "invalid accessControlPolicy: `pv.acr[0].acop` is invalid: 64 is not a bitmask in 1-63"
    );
    let err = CompiledAcp::compile(&json!({"pv": {"acr": [{"acop": 2}]}, "pvs": {"acr": []}}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid accessControlPolicy: `pv.acr[0].acor` is missing"
    );
}

#[test]
fn not_understood_rules_are_reported_with_the_reason() {
    let acp = CompiledAcp::compile(&json!({
        "pv": {"acr": [{"acor": ["Cabc"], "acop": 2}, {"acor": ["Cabc", "//*.org"], "acop": 2}]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63, "acco": [{"actw": ["* * * * * *"], "acfoo": 1}]}]}
    }))
    .unwrap();
    let reported: Vec<(RuleSet, usize, String)> = acp
        .not_understood()
        .map(|(set, i, why)| (set, i, why.to_owned()))
        .collect();
    assert_eq!(
        reported,
        [
            (
                RuleSet::Privileges,
                1,
                "pv.acr[1].acor[1]: `//*.org`: wildcards are not applicable to SP domain names"
                    .to_owned()
            ),
            (
                RuleSet::SelfPrivileges,
                0,
                "pvs.acr[0].acco[0].acfoo: unknown element".to_owned()
            ),
        ]
    );
    assert_eq!(acp.rule_count(RuleSet::Privileges), 2);
}

#[test]
fn shared_policy_store() {
    let pdp = pdp();
    let mut store: HashMap<String, Arc<CompiledAcp>> = HashMap::new();
    for i in 0..100 {
        let json = json!({"ri": format!("acp{i}"), "pv": {"acr": [{"acor": [format!("C{i}")], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}});
        store.insert(
            format!("acp{i}"),
            Arc::new(CompiledAcp::compile(&json).unwrap()),
        );
    }
    let acpi = ["acp3", "acp42", "missing", "acp7"];
    // Dangling IDs are skipped by the caller; the rest is passed by reference.
    let acps: Vec<&CompiledAcp> = acpi
        .iter()
        .filter_map(|id| store.get(*id))
        .map(|a| &**a)
        .collect();
    let from = pdp.originator("C42").unwrap();
    let decision = pdp.decide(
        acps.iter().copied(),
        RuleSet::Privileges,
        &Request::new(&from, Operation::Retrieve, now()),
        &NoDirectory,
    );
    assert_eq!(decision.to_string(), "permit by pv acp[1] (acp42) rule 0");
    // The same ACPs can be shared with another thread.
    let shared = store.get("acp7").cloned().unwrap();
    let handle = std::thread::spawn(move || shared.rule_count(RuleSet::Privileges));
    assert_eq!(handle.join().unwrap(), 1);
}

#[test]
fn hosting_identity_is_checked() {
    assert!(HostingCse::new("m2mtrust.example", "/id-in").is_err());
    assert!(HostingCse::new("//m2mtrust.example", "id-in").is_err());
    assert!(HostingCse::new("//", "/id-in").is_err());
    assert!(HostingCse::new("//a/b", "/id-in").is_err());
    assert!(HostingCse::new("//a", "/id/in").is_err());
    let h = HostingCse::new("//a.example", "/cse1").unwrap();
    assert_eq!((h.sp_domain(), h.cse_bare()), ("a.example", "cse1"));
}

#[test]
fn touched_attributes_and_whole_resource() {
    let pdp = pdp();
    let acps = [acp(json!([{"acor": ["Cabc"], "acop": 4, "aca": ["lbl"]}]))];
    let from = pdp.originator("Cabc").unwrap();
    let mut request = Request::new(&from, Operation::Update, now());
    let decide = |r: &Request<'_>| pdp.decide(&acps, RuleSet::Privileges, r, &NoDirectory);
    assert!(!decide(&request).is_permit());
    request.attributes = Attributes::Touched(&["lbl"]);
    assert!(decide(&request).is_permit());
    request.attributes = Attributes::Touched(&["lbl", "et"]);
    assert!(matches!(
        decide(&request),
        Decision::Deny(d) if d.reason == DenyReason::AttributesNotGranted
    ));
    let grant = pdp.permitted_attributes(&acps, RuleSet::Privileges, &request, &NoDirectory);
    assert!(grant.allows("lbl") && !grant.allows("et"));
}
