//! The HTTP listener on a loopback port, driven with raw HTTP/1.1 and with the binding's client.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use m2mtrust_binding_http::{ClientError, HttpClient, Limits};
use m2mtrust_model::{
    FilterUsage, Operation, PeerIdentity, Request, ResourceType, Response, ResponseStatusCode,
};
use m2mtrust_server::{Handler, serve_http};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Echoes what it received; CREATE answers 2001 with a Content-Location; `to` ending in
/// `slow` waits 300 ms first; `to` ending in `big` returns a large body.
#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
}

impl Handler for Echo {
    async fn handle(&self, req: Request, peer: PeerIdentity) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if req.to.ends_with("slow") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let op = format!("{:?}", req.operation);
        let mut content = json!({
            "op": op,
            "to": req.to,
            "from": req.from,
            "peer": peer.addr.map(|a| a.ip().to_string()),
            "ty": req.resource_type.map(|t| t.0),
            "pc": req.content,
            "fu": format!("{:?}", req.filter.filter_usage),
            "tys": req.filter.resource_types.iter().map(|t| t.0).collect::<Vec<_>>(),
            "lim": req.filter.limit,
        });
        if req.to.ends_with("big") {
            content["pad"] = Value::String("x".repeat(1000));
        }
        let status = match req.operation {
            Operation::Create => ResponseStatusCode::CREATED,
            _ => ResponseStatusCode::OK,
        };
        let mut resp = Response::new(status, Some(content));
        resp.request_id = req.request_id;
        if req.operation == Operation::Create {
            resp.content_location = Some(format!("{}/created", req.to));
        }
        resp
    }
}

struct Server {
    addr: SocketAddr,
    echo: Arc<Echo>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(max_body: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = Arc::new(Echo::default());
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(serve_http(
            listener,
            Arc::clone(&echo),
            Limits { max_body },
            shutdown,
        ));
        Self {
            addr,
            echo,
            stop: Some(tx),
            task,
        }
    }

    fn calls(&self) -> usize {
        self.echo.calls.load(Ordering::SeqCst)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("graceful shutdown completes")
            .unwrap()
            .unwrap();
    }
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn rsc(&self) -> u16 {
        self.header("x-m2m-rsc").unwrap().parse().unwrap()
    }

    fn dbg(&self) -> String {
        self.json()["m2m:dbg"].as_str().unwrap().to_owned()
    }
}

/// A connection that sends raw requests and reads Content-Length-framed responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &[u8]) -> RawResponse {
        self.stream.write_all(raw).await.unwrap();
        self.read_response().await
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    async fn read_response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill().await > 0, "connection closed before a response");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: HashMap<String, String> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers["content-length"].parse().unwrap();
        while self.buf.len() < len {
            assert!(self.fill().await > 0, "connection closed inside a body");
        }
        let body = self.buf.drain(..len).collect();
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// True when the server closed the connection (EOF or reset).
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

fn request(method: &str, path: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

async fn once(addr: SocketAddr, raw: &[u8]) -> RawResponse {
    Conn::open(addr).await.send(raw).await
}

#[tokio::test]
async fn create_maps_status_headers_and_location() {
    let server = Server::start(1024).await;
    let resp = once(
        server.addr,
        &request(
            "POST",
            "/cse-in",
            &[
                "X-M2M-Origin: Cmyapp",
                "X-M2M-RI: rq-42",
                "X-M2M-RVI: 3",
                "Content-Type: application/json;ty=2",
            ],
            r#"{"m2m:ae":{"rn":"app"}}"#,
        ),
    )
    .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.rsc(), 2001);
    assert_eq!(resp.header("x-m2m-ri"), Some("rq-42"));
    assert_eq!(resp.header("x-m2m-rvi"), Some("3"));
    assert_eq!(resp.header("content-location"), Some("/cse-in/created"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["op"], "Create");
    assert_eq!(body["to"], "cse-in");
    assert_eq!(body["from"], "Cmyapp");
    assert_eq!(body["peer"], "127.0.0.1");
    assert_eq!(body["ty"], 2);
    assert_eq!(body["pc"], json!({"m2m:ae": {"rn": "app"}}));
    assert_eq!(server.calls(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn sp_relative_and_absolute_targets() {
    let server = Server::start(1024).await;
    let cases = [
        ("/~/id-in/cse-in/ae", "/id-in/cse-in/ae"),
        (
            "/_/m2mtrust.example/id-in/cse-in",
            "//m2mtrust.example/id-in/cse-in",
        ),
        ("/cse-in/a%20b?fu=1&ty=3+4&lim=5", "cse-in/a b"),
    ];
    for (path, to) in cases {
        let resp = once(server.addr, &request("GET", path, &["X-M2M-RI: r"], "")).await;
        assert_eq!((resp.status, resp.rsc()), (200, 2000), "{path}");
        assert!(resp.header("x-m2m-rvi").is_none());
        let body = resp.json();
        assert_eq!(body["to"], to, "{path}");
        assert_eq!(body["op"], "Retrieve");
        assert_eq!(body["from"], Value::Null);
    }
    let body = once(
        server.addr,
        &request("GET", "/cse-in?fu=1&ty=3+4&lim=5", &["X-M2M-RI: r"], ""),
    )
    .await
    .json();
    assert_eq!(body["fu"], "Discovery");
    assert_eq!(body["tys"], json!([3, 4]));
    assert_eq!(body["lim"], 5);
    server.shutdown().await;
}

#[tokio::test]
async fn failures_never_reach_the_handler() {
    let server = Server::start(64).await;
    let json_ty = "Content-Type: application/json;ty=3";
    let big = format!(r#"{{"m2m:cnt":{{"lbl":["{}"]}}}}"#, "x".repeat(100));
    let cases: Vec<(Vec<u8>, u16, u16, &str)> = vec![
        (
            request("POST", "/cse-in", &["X-M2M-RI: r1", json_ty], "{"),
            400,
            4000,
            "malformed JSON",
        ),
        (
            request(
                "POST",
                "/cse-in",
                &["X-M2M-RI: r1", "Content-Type: application/xml;ty=3"],
                "<cnt/>",
            ),
            415,
            4015,
            "unsupported media type",
        ),
        (
            request("POST", "/cse-in", &["X-M2M-RI: r1", json_ty], &big),
            400,
            4000,
            "exceeds 64 bytes",
        ),
        (request("GET", "/cse-in", &[], ""), 400, 4000, "X-M2M-RI"),
        (
            request("PATCH", "/cse-in", &["X-M2M-RI: r1"], ""),
            405,
            4005,
            "PATCH",
        ),
        (
            request("GET", "/cse-in?nope=1", &["X-M2M-RI: r1"], ""),
            400,
            4000,
            "nope",
        ),
        (
            request("POST", "/cse-in", &["X-M2M-RI: r1", json_ty], ""),
            400,
            4000,
            "needs a body",
        ),
    ];
    for (raw, http, rsc, msg) in cases {
        let resp = once(server.addr, &raw).await;
        assert_eq!((resp.status, resp.rsc()), (http, rsc), "{msg}");
        assert!(resp.dbg().contains(msg), "{} lacks {msg}", resp.dbg());
        if rsc == 4005 {
            assert_eq!(resp.header("allow"), Some("GET, POST, PUT, DELETE"));
        } else {
            assert!(resp.header("allow").is_none(), "{msg}");
        }
        if msg != "X-M2M-RI" {
            assert_eq!(resp.header("x-m2m-ri"), Some("r1"), "{msg}");
        }
    }
    assert_eq!(server.calls(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn chunked_body_over_limit_is_stopped_while_streaming() {
    let server = Server::start(64).await;
    let mut conn = Conn::open(server.addr).await;
    let head = "POST /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-RI: c1\r\n\
                Content-Type: application/json;ty=3\r\nTransfer-Encoding: chunked\r\n\r\n";
    conn.stream.write_all(head.as_bytes()).await.unwrap();
    // 40 + 40 bytes: the second chunk crosses the limit; the final chunk is never sent.
    for _ in 0..2 {
        let chunk = format!("28\r\n{}\r\n", " ".repeat(40));
        conn.stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    let resp = conn.read_response().await;
    assert_eq!((resp.status, resp.rsc()), (400, 4000));
    assert_eq!(resp.dbg(), "request body exceeds 64 bytes");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.closed().await);
    assert_eq!(server.calls(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::start(1024).await;
    let mut conn = Conn::open(server.addr).await;
    let first = conn
        .send(&request(
            "GET",
            "/cse-in",
            &["X-M2M-RI: a", "X-M2M-Origin: CAdmin"],
            "",
        ))
        .await;
    let second = conn
        .send(&request(
            "PUT",
            "/cse-in/ae",
            &["X-M2M-RI: b", "Content-Type: application/json"],
            r#"{"m2m:ae":{"lbl":["x"]}}"#,
        ))
        .await;
    assert_eq!(first.header("x-m2m-ri"), Some("a"));
    assert_eq!(first.json()["from"], "CAdmin");
    assert_eq!(second.header("x-m2m-ri"), Some("b"));
    assert_eq!(second.json()["op"], "Update");
    // An error response on the same connection keeps it usable too.
    let third = conn.send(&request("GET", "/cse-in", &[], "")).await;
    assert_eq!(third.rsc(), 4000);
    let fourth = conn
        .send(&request("DELETE", "/cse-in/ae", &["X-M2M-RI: d"], ""))
        .await;
    assert_eq!(fourth.json()["op"], "Delete");
    assert_eq!(server.calls(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let server = Server::start(1024).await;
    let addr = server.addr;
    let idle = Conn::open(addr).await;
    let slow = tokio::spawn(async move {
        once(addr, &request("GET", "/cse-in/slow", &["X-M2M-RI: s"], "")).await
    });
    // Let the slow request reach the handler before shutting down.
    while server.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
    let resp = slow.await.unwrap();
    assert_eq!((resp.status, resp.rsc()), (200, 2000));
    assert_eq!(resp.header("x-m2m-ri"), Some("s"));
    let mut idle = idle;
    assert!(idle.closed().await, "idle keep-alive connection is closed");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener is closed"
    );
}

#[tokio::test]
async fn http_client_round_trip() {
    let server = Server::start(4096).await;
    let base = format!("http://{}", server.addr);
    let client = HttpClient::new(Duration::from_secs(5));

    let mut create = Request::new(Operation::Create, "cse-in", Some("Cmyapp".into()));
    create.request_id = "c-1".into();
    create.resource_type = Some(ResourceType::AE);
    create.content = Some(json!({"m2m:ae": {"rn": "app"}}));
    let resp = client.send(&base, &create).await.unwrap();
    assert_eq!(resp.status, ResponseStatusCode::CREATED);
    assert_eq!(resp.request_id, "c-1");
    assert_eq!(resp.content_location.as_deref(), Some("cse-in/created"));
    let pc = resp.content.unwrap();
    assert_eq!(
        (pc["op"].as_str(), pc["ty"].as_u64()),
        (Some("Create"), Some(2))
    );

    let mut get = Request::new(Operation::Retrieve, "/id-in/cse-in", None);
    get.request_id = "g-1".into();
    get.filter.filter_usage = FilterUsage::Discovery;
    get.filter.resource_types = vec![ResourceType::CONTAINER, ResourceType::CONTENT_INSTANCE];
    get.filter.limit = Some(7);
    let pc = client.send(&base, &get).await.unwrap().content.unwrap();
    assert_eq!(pc["to"], "/id-in/cse-in");
    assert_eq!(pc["fu"], "Discovery");
    assert_eq!(pc["tys"], json!([3, 4]));
    assert_eq!(pc["lim"], 7);

    // A notification goes to the nu URL as is, whatever `to` says.
    let mut notify = Request::new(Operation::Notify, "ignored", Some("/id-in".into()));
    notify.request_id = "n-1".into();
    notify.content = Some(json!({"m2m:sgn": {"vrq": true}}));
    let resp = client
        .send(&format!("{base}/~/id-in/cse-in/ae"), &notify)
        .await
        .unwrap();
    let pc = resp.content.unwrap();
    assert_eq!(
        (pc["op"].as_str(), pc["to"].as_str()),
        (Some("Notify"), Some("/id-in/cse-in/ae"))
    );

    // An error response is a response, not a client error.
    let mut bad = Request::new(Operation::Update, "cse-in", None);
    bad.request_id = "u-1".into();
    let resp = client.send(&base, &bad).await.unwrap();
    assert_eq!(resp.status, ResponseStatusCode::BAD_REQUEST);

    let small = HttpClient::new(Duration::from_secs(5)).with_max_body(100);
    let mut big = Request::new(Operation::Retrieve, "cse-in/big", None);
    big.request_id = "b-1".into();
    let e = small.send(&base, &big).await.unwrap_err();
    assert!(
        matches!(e, ClientError::ResponseTooLarge { limit: 100, .. }),
        "{e}"
    );
    assert_eq!(server.calls(), 4);
    server.shutdown().await;
}
