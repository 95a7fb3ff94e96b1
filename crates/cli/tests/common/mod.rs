//! Test support: the real `m2mtrust` binary on an ephemeral loopback port, a small HTTP/1.1
//! client, and a notification receiver.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Runs `m2mtrust ARGS` to completion: (exit code, stdout, stderr).
pub fn m2mtrust(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_m2mtrust"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A trust function running alone (`m2mtrust mef serve` / `maf serve`), killed on drop.
pub struct Function(Child);

impl Function {
    /// Starts `m2mtrust ARGS` and waits until it prints `ready`.
    pub fn start(args: &[&str]) -> Function {
        let mut child = Command::new(env!("CARGO_BIN_EXE_m2mtrust"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start m2mtrust");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for line in lines.by_ref() {
            if line.expect("read stdout").trim() == "ready" {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Function(child)
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `m2mtrust up`, killed on drop.
pub struct Server {
    pub child: Child,
    /// The plain HTTP listener.
    pub addr: SocketAddr,
    /// The HTTPS listener.
    pub tls_addr: SocketAddr,
    /// The MEF listener, when one runs.
    pub mef_addr: Option<SocketAddr>,
    /// The MAF listener, when one runs.
    pub maf_addr: Option<SocketAddr>,
    /// The DAS listener, when one runs.
    pub das_addr: Option<SocketAddr>,
    pub data: PathBuf,
}

impl Server {
    /// Starts `m2mtrust up --data DIR --http 127.0.0.1:0` plus `extra` flags and waits for "ready".
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_command("up", data, extra)
    }

    /// Starts `m2mtrust COMMAND --data DIR ...` (`up` or `cse`); `up` gets its MEF on an
    /// ephemeral port unless `extra` says otherwise.
    pub fn start_command(command: &str, data: &Path, extra: &[&str]) -> Server {
        let mef: &[&str] = if command == "up" && !extra.contains(&"--mef") {
            &["--mef", "127.0.0.1:0"]
        } else {
            &[]
        };
        let maf: &[&str] = if command == "up" && !extra.contains(&"--maf") {
            &["--maf", "127.0.0.1:0"]
        } else {
            &[]
        };
        let das: &[&str] = if command == "up" && !extra.contains(&"--das") {
            &["--das", "127.0.0.1:0"]
        } else {
            &[]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_m2mtrust"))
            .args([command, "--data"])
            .arg(data)
            .args([
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--log",
                "warn",
            ])
            .args(mef)
            .args(maf)
            .args(das)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start m2mtrust");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut tls_addr = None;
        let mut mef_addr = None;
        let mut maf_addr = None;
        let mut das_addr = None;
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.trim().strip_prefix("maf ") {
                let url = rest.split_whitespace().next().unwrap();
                maf_addr = Some(url.trim_start_matches("https://").parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("das ") {
                let url = rest.split_whitespace().next().unwrap();
                let hostport = url
                    .trim_start_matches("https://")
                    .split('/')
                    .next()
                    .unwrap();
                das_addr = Some(hostport.parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("mef ") {
                let url = rest.split_whitespace().next().unwrap();
                mef_addr = Some(url.trim_start_matches("https://").parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("https ") {
                let url = rest.split_whitespace().next().unwrap();
                let hostport = url
                    .trim_start_matches("https://")
                    .split('/')
                    .next()
                    .unwrap();
                tls_addr = Some(hostport.parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("http ") {
                let url = rest.split_whitespace().next().unwrap();
                let hostport = url.trim_start_matches("http://").split('/').next().unwrap();
                addr = Some(hostport.parse().unwrap());
            }
            if line.trim() == "ready" {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr: addr.expect("no http address printed"),
            tls_addr: tls_addr.expect("no https address printed"),
            mef_addr,
            maf_addr,
            das_addr,
            data: data.to_path_buf(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        origin: Option<&str>,
        ty: Option<u16>,
        body: Option<&Value>,
    ) -> Resp {
        call(
            self.addr,
            method,
            path,
            origin,
            ty,
            body.map(|b| b.to_string()).as_deref(),
            &[],
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A decoded HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn rsc(&self) -> u16 {
        self.header("X-M2M-RSC")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn dbg(&self) -> String {
        self.json()["m2m:dbg"].as_str().unwrap_or("").to_string()
    }
}

static RI: AtomicU64 = AtomicU64::new(1);

/// One request on a fresh connection (`Connection: close`).
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    origin: Option<&str>,
    ty: Option<u16>,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    head.push_str(&format!(
        "X-M2M-RI: rq{}\r\n",
        RI.fetch_add(1, Ordering::Relaxed)
    ));
    if !extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("X-M2M-RVI"))
    {
        head.push_str("X-M2M-RVI: 3\r\n");
    }
    if let Some(o) = origin {
        head.push_str(&format!("X-M2M-Origin: {o}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            match ty {
                Some(t) => head.push_str(&format!("Content-Type: application/json;ty={t}\r\n")),
                None => head.push_str("Content-Type: application/json\r\n"),
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        // A server refusing an oversized body answers and closes before reading it all.
        let _ = s.write_all(b.as_bytes());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A notification receiver: answers every POST with 2000 and hands the body over.
pub struct Receiver {
    pub url: String,
    pub rx: mpsc::Receiver<Value>,
}

pub fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let reply = "HTTP/1.1 200 OK\r\nX-M2M-RSC: 2000\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Receiver { url, rx }
}

/// Registers an AE with originator `origin` and returns its AE-ID.
pub fn register(server: &Server, origin: &str, rn: &str) -> String {
    let r = server.call(
        "POST",
        "/cse-in",
        Some(origin),
        Some(2),
        Some(&serde_json::json!({"m2m:ae": {"rn": rn, "api": "Ntest", "rr": true, "srv": ["3"]}})),
    );
    assert_eq!(r.rsc(), 2001, "register {origin}: {}", r.body);
    r.json()["m2m:ae"]["aei"].as_str().unwrap().to_string()
}

/// An AE-ID certificate for `ae` from the CA of the data folder `data`, written under `dir`:
/// (certificate chain, private key) paths.
pub fn ae_cert(data: &Path, dir: &Path, ae: &str) -> (String, String) {
    let prefix = dir.join(ae);
    let (code, out, err) = m2mtrust(&[
        "cert",
        "issue",
        "--data",
        data.to_str().unwrap(),
        "--ae-id",
        ae,
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    (
        format!("{}.pem", prefix.display()),
        format!("{}-key.pem", prefix.display()),
    )
}
