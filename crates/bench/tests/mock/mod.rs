//! An in-process mock CSE, over http or behind the channel's TLS acceptor, that counts what
//! it actually receives. Shared by the test binaries, each of which uses part of it.
#![allow(dead_code, reason = "each test binary uses part of the mock")]

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
use m2mtrust_bench::{BenchArgs, BenchError, Report};
use m2mtrust_channel::TlsAcceptor;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// How the mock misbehaves.
#[derive(Clone, Copy, Default)]
pub struct Mode {
    pub refuse_ae: bool,
    pub refuse_cin: bool,
    pub refuse_la: bool,
    pub refuse_self_delete: bool,
    pub slow_la: bool,
}

#[derive(Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub ae: AtomicU64,
    pub cnt: AtomicU64,
    pub cin: AtomicU64,
    pub la: AtomicU64,
    pub delete: AtomicU64,
    pub delete_admin: AtomicU64,
    /// Requests missing a oneM2M header, with a wrong RVI or content type, or from an
    /// originator other than the AE-ID the mock assigned.
    pub bad: AtomicU64,
    pub other: AtomicU64,
    /// TLS handshakes the acceptor completed.
    pub handshakes: AtomicU64,
    /// TLS handshakes the acceptor refused.
    pub refused_handshakes: AtomicU64,
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

pub struct MockCse {
    pub mode: Mode,
    pub counts: Counts,
    /// AE-IDs handed out; deliberately different from the registering originator.
    aeis: Mutex<Vec<String>>,
}

/// A mock CSE over http.
pub async fn start(mode: Mode) -> (String, Arc<MockCse>) {
    start_with(mode, None).await
}

/// A mock CSE behind `acceptor`; the URL uses the 127.0.0.1 address, so certificate clients
/// need `--server-name`.
pub async fn start_tls(mode: Mode, acceptor: TlsAcceptor) -> (String, Arc<MockCse>) {
    start_with(mode, Some(Arc::new(acceptor))).await
}

async fn start_with(mode: Mode, tls: Option<Arc<TlsAcceptor>>) -> (String, Arc<MockCse>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = Arc::new(MockCse {
        mode,
        counts: Counts::default(),
        aeis: Mutex::new(Vec::new()),
    });
    let server = mock.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            server.counts.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(server.clone(), tls.clone(), stream));
        }
    });
    (format!("{scheme}://{addr}/cse-in"), mock)
}

async fn serve(mock: Arc<MockCse>, tls: Option<Arc<TlsAcceptor>>, stream: TcpStream) {
    let service = {
        let mock = mock.clone();
        service_fn(move |req| handle(mock.clone(), req))
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok((stream, _established)) => {
                mock.counts.handshakes.fetch_add(1, Ordering::SeqCst);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
            Err(_) => {
                mock.counts
                    .refused_handshakes
                    .fetch_add(1, Ordering::SeqCst);
            }
        },
    }
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
pub struct Cmd {
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// Arguments as the command line gives them, with `--quiet`.
pub fn args(url: &str, extra: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench", "--quiet", "--url", url];
    argv.extend_from_slice(extra);
    Cmd::try_parse_from(argv).unwrap().bench
}

pub async fn bench(url: &str, extra: &[&str]) -> Result<Report, BenchError> {
    m2mtrust_bench::run(&args(url, extra)).await
}
