//! Workload W1 against an in-process mock CSE that counts what it actually receives.
#![allow(
    clippy::unwrap_used,
    reason = "mock server scaffolding: a panic fails the test"
)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use m2mtrust_bench::{BenchArgs, BenchError, Cleanup, Phase, Report, Workload};
use serde_json::json;
use tokio::net::TcpListener;

/// How the mock misbehaves.
#[derive(Clone, Copy, Default)]
struct Mode {
    refuse_ae: bool,
    refuse_cin: bool,
    refuse_la: bool,
    refuse_self_delete: bool,
    slow_la: bool,
}

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    ae: AtomicU64,
    cnt: AtomicU64,
    cin: AtomicU64,
    la: AtomicU64,
    delete: AtomicU64,
    delete_admin: AtomicU64,
    /// Requests missing a oneM2M header, with a wrong RVI or content type, or from an
    /// originator other than the AE-ID the mock assigned.
    bad: AtomicU64,
    other: AtomicU64,
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

struct MockCse {
    mode: Mode,
    counts: Counts,
    /// AE-IDs handed out; deliberately different from the registering originator.
    aeis: Mutex<Vec<String>>,
}

async fn start(mode: Mode) -> (String, Arc<MockCse>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = Arc::new(MockCse {
        mode,
        counts: Counts::default(),
        aeis: Mutex::new(Vec::new()),
    });
    let server = mock.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            server.counts.connections.fetch_add(1, Ordering::SeqCst);
            let mock = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(mock.clone(), req));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/cse-in"), mock)
}

fn reply(status: u16, rsc: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("X-M2M-RSC", rsc.to_string())
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    mock: Arc<MockCse>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let c = &mock.counts;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let origin = header("X-M2M-Origin").unwrap_or_default();
    let content_type = header("Content-Type").unwrap_or_default();
    if origin.is_empty()
        || header("X-M2M-RI").is_none_or(|ri| ri.is_empty())
        || header("X-M2M-RVI").as_deref() != Some("3")
        || header("Accept").as_deref() != Some("application/json")
    {
        c.bad.fetch_add(1, Ordering::SeqCst);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(json!(null));
    let Some(rest) = path.strip_prefix("/cse-in") else {
        c.other.fetch_add(1, Ordering::SeqCst);
        return Ok(reply(404, 4004, json!({"m2m:dbg": "not found"})));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let known_ae = mock.aeis.lock().unwrap().contains(&origin);
    let check = |ok: bool| {
        if !ok {
            c.bad.fetch_add(1, Ordering::SeqCst);
        }
    };

    let response = match (&method, segments.as_slice()) {
        (&Method::POST, []) => {
            c.ae.fetch_add(1, Ordering::SeqCst);
            check(content_type == "application/json;ty=2");
            let ae = &body["m2m:ae"];
            check(ae["api"] == "Nbench" && ae["rr"] == false && ae["srv"] == json!(["3"]));
            if mock.mode.refuse_ae {
                reply(400, 4000, json!({"m2m:dbg": "srv is missing"}))
            } else {
                let aei = format!("{origin}-assigned");
                mock.aeis.lock().unwrap().push(aei.clone());
                reply(
                    201,
                    2001,
                    json!({"m2m:ae": {"rn": ae["rn"], "aei": aei, "api": "Nbench"}}),
                )
            }
        }
        (&Method::POST, [_ae]) => {
            c.cnt.fetch_add(1, Ordering::SeqCst);
            check(content_type == "application/json;ty=3" && known_ae);
            check(body["m2m:cnt"]["rn"] == "cnt");
            reply(201, 2001, json!({"m2m:cnt": {"rn": "cnt"}}))
        }
        (&Method::POST, [_ae, "cnt"]) => {
            c.cin.fetch_add(1, Ordering::SeqCst);
            check(content_type == "application/json;ty=4" && known_ae);
            check(body["m2m:cin"]["con"].is_string());
            if mock.mode.refuse_cin {
                reply(403, 4103, json!({"m2m:dbg": "no privilege for cin"}))
            } else {
                reply(201, 2001, json!({"m2m:cin": body["m2m:cin"]}))
            }
        }
        (&Method::GET, [_ae, "cnt", "la"]) => {
            c.la.fetch_add(1, Ordering::SeqCst);
            check(known_ae);
            if mock.mode.slow_la {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            if mock.mode.refuse_la {
                reply(404, 4004, json!({"m2m:dbg": "no instance"}))
            } else {
                reply(200, 2000, json!({"m2m:cin": {"con": "x"}}))
            }
        }
        (&Method::DELETE, [_ae]) if origin == "CAdmin" => {
            c.delete_admin.fetch_add(1, Ordering::SeqCst);
            reply(200, 2002, json!({}))
        }
        (&Method::DELETE, [_ae]) => {
            c.delete.fetch_add(1, Ordering::SeqCst);
            check(known_ae);
            if mock.mode.refuse_self_delete {
                reply(403, 4103, json!({"m2m:dbg": "no delete privilege"}))
            } else {
                reply(200, 2002, json!({}))
            }
        }
        _ => {
            c.other.fetch_add(1, Ordering::SeqCst);
            reply(404, 4004, json!({"m2m:dbg": "not found"}))
        }
    };
    Ok(response)
}

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(url: &str, extra: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench", "--quiet", "--url", url];
    argv.extend_from_slice(extra);
    Cmd::try_parse_from(argv).unwrap().bench
}

async fn bench(url: &str, extra: &[&str]) -> Result<Report, BenchError> {
    m2mtrust_bench::run(&args(url, extra)).await
}

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
async fn https_is_not_supported_yet() {
    let err = bench("https://127.0.0.1:1/cse-in", &[]).await.unwrap_err();
    assert!(
        matches!(err, BenchError::UnsupportedScheme { .. }),
        "{err:?}"
    );
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
