//! Workload W1 against an in-process mock CSE that counts what it actually receives.
#![allow(
    clippy::unwrap_used,
    reason = "mock server scaffolding: a panic fails the test"
)]

mod mock;

use std::time::Duration;

use clap::Parser;
use m2mtrust_bench::{BenchError, Cleanup, Phase, Workload};
use mock::{Cmd, Mode, args, bench, get, start};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_what_the_server_received() {
    let (url, mock) = start(Mode::default()).await;
    let report = bench(&url, &["-n", "50", "-c", "4", "--label", "mock"])
        .await
        .unwrap();

    assert_eq!(report.label.as_deref(), Some("mock"));
    assert_eq!(report.workload, Workload::W1);
    assert_eq!(report.runs.len(), 1);
    let run = &report.runs[0];
    assert_eq!(run.clients, 4);
    assert!(run.origin.starts_with("Cbench-"), "{}", run.origin);
    assert_eq!(run.ae_id, format!("{}-assigned", run.origin));
    assert_eq!(run.cleanup, Cleanup::Deleted);
    let phases: Vec<_> = run
        .phases
        .iter()
        .map(|p| (p.phase, p.ok, p.errors))
        .collect();
    assert_eq!(phases, [(Phase::Create, 50, 0), (Phase::Retrieve, 50, 0)]);
    for p in &run.phases {
        assert!(p.error_kinds.is_empty());
        assert!(p.req_per_s > 0.0 && p.elapsed_ms > 0.0);
        let l = p.latency.unwrap();
        assert!(0.0 < l.p50_ms && l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
    }
    assert_eq!(report.errors(), 0);

    let c = &mock.counts;
    assert_eq!(get(&c.ae), 1);
    assert_eq!(get(&c.cnt), 1);
    assert_eq!(get(&c.cin), 50);
    assert_eq!(get(&c.la), 50);
    assert_eq!(get(&c.delete), 1);
    assert_eq!(get(&c.delete_admin), 0);
    assert_eq!(get(&c.bad), 0, "malformed requests reached the server");
    assert_eq!(get(&c.other), 0);
    // Keep-alive: 102 requests over a handful of connections. The pool hands a connection back
    // asynchronously after the body is read, so a client may now and then open a second one.
    let connections = get(&c.connections);
    assert!((1..=8).contains(&connections), "{connections} connections");
    assert_eq!(
        run.connections, connections,
        "the report counts what the server accepted"
    );
    let in_phases: u64 = run.phases.iter().map(|p| p.connections).sum();
    assert!(
        in_phases < connections,
        "setup opened one before the phases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comma_list_runs_once_per_clients_value() {
    let (url, mock) = start(Mode::default()).await;
    let report = bench(&url, &["-n", "20", "-c", "1,3"]).await.unwrap();

    let clients: Vec<u32> = report.runs.iter().map(|r| r.clients).collect();
    assert_eq!(clients, [1, 3]);
    for run in &report.runs {
        assert_eq!(run.phases[0].ok, 20);
        assert_eq!(run.phases[1].ok, 20);
    }
    assert_ne!(report.runs[0].origin, report.runs[1].origin);
    assert_ne!(report.runs[0].ae_name, report.runs[1].ae_name);
    let c = &mock.counts;
    assert_eq!(
        (get(&c.ae), get(&c.cin), get(&c.la), get(&c.delete)),
        (2, 40, 40, 2)
    );
    assert_eq!(get(&c.bad), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_creates_are_counted_by_rsc() {
    let (url, mock) = start(Mode {
        refuse_cin: true,
        ..Mode::default()
    })
    .await;
    let report = bench(&url, &["-n", "30", "-c", "2", "--json"])
        .await
        .unwrap();

    let create = &report.runs[0].phases[0];
    assert_eq!((create.ok, create.errors), (0, 30));
    assert!(create.latency.is_none());
    assert_eq!(create.error_kinds.len(), 1);
    assert_eq!(create.error_kinds[0].kind, "HTTP 403 RSC 4103");
    assert_eq!(create.error_kinds[0].count, 30);
    assert_eq!(
        create.error_kinds[0].example.as_deref(),
        Some("no privilege for cin")
    );
    let retrieve = &report.runs[0].phases[1];
    assert_eq!((retrieve.ok, retrieve.errors), (30, 0));
    assert_eq!(report.errors(), 30);
    assert_eq!(get(&mock.counts.cin), 30);
    assert_eq!(report.runs[0].cleanup, Cleanup::Deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_failure_names_rsc_and_dbg() {
    let (url, mock) = start(Mode {
        refuse_ae: true,
        ..Mode::default()
    })
    .await;
    let err = bench(&url, &["-n", "5"]).await.unwrap_err();

    assert!(matches!(err, BenchError::Refused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("registering the AE"), "{msg}");
    assert!(msg.contains("HTTP 400, RSC 4000"), "{msg}");
    assert!(msg.contains("srv is missing"), "{msg}");
    assert_eq!(get(&mock.counts.cin), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_requests_failing_is_an_error_after_cleanup() {
    let (url, mock) = start(Mode {
        refuse_cin: true,
        refuse_la: true,
        ..Mode::default()
    })
    .await;
    let err = bench(&url, &["-n", "10", "-c", "2"]).await.unwrap_err();

    assert!(
        matches!(err, BenchError::AllFailed { clients: 2, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("create: 10 x HTTP 403 RSC 4103"), "{msg}");
    assert!(msg.contains("retrieve: 10 x HTTP 404 RSC 4004"), "{msg}");
    assert_eq!(get(&mock.counts.delete), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_the_ae() {
    let (url, mock) = start(Mode::default()).await;
    let report = bench(&url, &["-n", "3", "--keep"]).await.unwrap();
    assert_eq!(report.runs[0].cleanup, Cleanup::Kept);
    assert_eq!(get(&mock.counts.delete) + get(&mock.counts.delete_admin), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_when_the_ae_cannot() {
    let (url, mock) = start(Mode {
        refuse_self_delete: true,
        ..Mode::default()
    })
    .await;
    let report = bench(&url, &["-n", "3"]).await.unwrap();
    assert_eq!(report.runs[0].cleanup, Cleanup::DeletedByAdmin);
    assert_eq!(get(&mock.counts.delete), 1);
    assert_eq!(get(&mock.counts.delete_admin), 1);

    let report = bench(&url, &["-n", "3", "--admin", "Cnobody"])
        .await
        .unwrap();
    let Cleanup::Failed { reason } = &report.runs[0].cleanup else {
        panic!("{:?}", report.runs[0].cleanup);
    };
    assert!(reason.contains("as Cnobody: HTTP 403 RSC 4103"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_responses_time_out_as_errors() {
    let (url, _mock) = start(Mode {
        slow_la: true,
        ..Mode::default()
    })
    .await;
    let report = bench(&url, &["-n", "2", "--timeout", "200ms"])
        .await
        .unwrap();
    let retrieve = &report.runs[0].phases[1];
    assert_eq!((retrieve.ok, retrieve.errors), (0, 2));
    assert!(
        retrieve.error_kinds[0]
            .kind
            .contains("no complete response within 200ms"),
        "{:?}",
        retrieve.error_kinds
    );
}

#[tokio::test]
async fn unreachable_cse_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cse-in", listener.local_addr().unwrap());
    drop(listener);
    let err = bench(&url, &["-n", "1"]).await.unwrap_err();
    assert!(matches!(err, BenchError::Transport { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("registering the AE got no response from"),
        "{msg}"
    );
    assert!(msg.contains(&url), "{msg}");
}

#[tokio::test]
async fn other_schemes_are_refused() {
    let err = bench("ftp://127.0.0.1:1/cse-in", &[]).await.unwrap_err();
    assert!(
        matches!(err, BenchError::UnsupportedScheme { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("only http and https"), "{err}");
}

#[test]
fn flags_parse_as_documented() {
    let a = args("http://h/cse-in", &[]);
    assert_eq!(a.count, 1000);
    assert_eq!(a.clients, [1]);
    assert_eq!(a.workload, Workload::W1);
    assert_eq!(a.admin, "CAdmin");
    assert_eq!(a.rvi, "3");
    assert_eq!(a.timeout, Duration::from_secs(30));
    assert!(a.origin.is_none() && a.label.is_none() && !a.keep && !a.json);

    let a = args(
        "http://h/cse-in",
        &[
            "-c",
            "1,8",
            "-c",
            "16",
            "--workload",
            "w1",
            "--timeout",
            "500ms",
            "--count",
            "7",
        ],
    );
    assert_eq!(a.clients, [1, 8, 16]);
    assert_eq!(a.timeout, Duration::from_millis(500));
    assert_eq!(a.count, 7);

    assert!(Cmd::try_parse_from(["bench", "-c", "0"]).is_err());
    assert!(Cmd::try_parse_from(["bench", "-n", "0"]).is_err());
    assert!(Cmd::try_parse_from(["bench", "--workload", "W9"]).is_err());
}
