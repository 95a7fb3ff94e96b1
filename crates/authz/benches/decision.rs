//! One access decision (TS-0003 §7.1.5) for a resource linked to 3 ACPs of 10 rules each, with
//! the permit on the very last rule and with no rule matching, and the same after looking the
//! 3 ACPs up in a store of 10 000 compiled ACPs.

// Benchmark set-up: a panic means the fixture is wrong.
#![allow(clippy::expect_used)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use m2mtrust_authz::{
    CompiledAcp, Directory, GroupMember, HostingCse, NoDirectory, Operation, Pdp, Request, RuleSet,
};
use serde_json::{Value, json};

/// A rule as deployments write them: two originators, a time window and an address range.
fn rule(acp: usize, k: usize, bare: bool) -> Value {
    let acor = if bare {
        json!([format!("Cuser{acp}x{k}"), format!("Capp{acp}x{k}")])
    } else {
        json!([
            format!("/id-in/Cuser{acp}x{k}"),
            format!("//m2mtrust.example/id-in/Capp{acp}x{k}*")
        ])
    };
    json!({
        "acor": acor,
        "acop": 3,
        "acco": [{"actw": ["* * 6-21 * * 1-5"], "acip": {"ipv4": ["10.0.0.0/8", "192.168.0.0/16"]}}],
    })
}

fn acp(i: usize, bare: bool) -> CompiledAcp {
    let rules: Vec<Value> = (0..10).map(|k| rule(i, k, bare)).collect();
    CompiledAcp::compile(&json!({
        "ri": format!("acp{i}"),
        "pv": {"acr": rules},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]},
    }))
    .expect("benchmark ACP")
}

struct Groups(HashMap<String, Vec<GroupMember>>);

impl Directory for Groups {
    fn group_members(&self, group_id: &str) -> Option<Cow<'_, [GroupMember]>> {
        self.0.get(group_id).map(|m| Cow::Borrowed(m.as_slice()))
    }
}

fn decisions(c: &mut Criterion) {
    let pdp = Pdp::new(HostingCse::new("//m2mtrust.example", "/id-in").expect("hosting"));
    let now = Utc
        .with_ymd_and_hms(2024, 1, 1, 10, 0, 0)
        .single()
        .expect("time");
    let hit = pdp.originator("Capp2x9-sensor").expect("originator");
    let hit_bare = pdp.originator("Capp2x9").expect("originator");
    let miss = pdp.originator("Cstranger").expect("originator");
    let ip = Some("10.1.2.3".parse().expect("ip"));

    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));

    for (name, bare, hit) in [("3x10", false, &hit), ("3x10-bare-stems", true, &hit_bare)] {
        let acps: Vec<Arc<CompiledAcp>> = (0..3).map(|i| Arc::new(acp(i, bare))).collect();
        // Rules naming no group never ask the directory, however large it is.
        let groups = Groups(
            (0..1000)
                .map(|g| {
                    (
                        format!("grp{g}"),
                        vec![GroupMember::Originator(format!("Cm{g}"))],
                    )
                })
                .collect(),
        );
        for (case, originator) in [("hit-last-rule", hit), ("miss", &miss)] {
            let mut request = Request::new(originator, Operation::Retrieve, now);
            request.peer_address = ip;
            let expected = case == "hit-last-rule";
            assert_eq!(
                pdp.decide(&acps, RuleSet::Privileges, &request, &groups)
                    .is_permit(),
                expected
            );
            group.bench_function(format!("{name}/{case}"), |b| {
                b.iter(|| {
                    pdp.decide(
                        black_box(&acps),
                        RuleSet::Privileges,
                        black_box(&request),
                        &groups,
                    )
                })
            });
        }
    }

    // A policy store of 10 000 compiled ACPs; the resource links 3 of them.
    let store: HashMap<String, Arc<CompiledAcp>> = (0..10_000)
        .map(|i| (format!("acp{i}"), Arc::new(acp(i, false))))
        .collect();
    let acpi = ["acp17", "acp4711", "acp9999"];
    let target = pdp.originator("Capp9999x9-meter").expect("originator");
    for (case, originator) in [("hit-last-rule", &target), ("miss", &miss)] {
        let mut request = Request::new(originator, Operation::Retrieve, now);
        request.peer_address = ip;
        group.bench_function(format!("store-10000/{case}"), |b| {
            b.iter(|| {
                let acps = black_box(&acpi).iter().filter_map(|id| store.get(*id));
                pdp.decide(acps, RuleSet::Privileges, black_box(&request), &NoDirectory)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
