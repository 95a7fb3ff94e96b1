//! The HTTP/1.1 listener and per-connection serving: TS-0009 binding over any byte stream.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use m2mtrust_binding_http::{DecodeError, Limits, decode_request, encode_response};
use m2mtrust_model::{PeerIdentity, Response, ResponseStatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Handler;

/// How long a peer may take to send a request's headers; bounds idle and slow connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The outcome of reading a request body.
enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads the body, keeping at most `max_body` bytes: a longer body fails as soon as it is
/// known to be too long, from `Content-Length` before reading or while streaming.
async fn read_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    max_body: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(BodyError::Read)?.into_data() {
            if buf.len() + data.len() > max_body {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// One request through the pipeline: body → decode → handler → encode.
async fn process<H: Handler>(
    req: http::Request<Incoming>,
    peer: PeerIdentity,
    handler: Arc<H>,
    limits: Limits,
) -> http::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let rvi = parts
        .headers
        .get(m2mtrust_binding_http::HEADER_RVI)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ri = || {
        parts
            .headers
            .get(m2mtrust_binding_http::HEADER_RI)
            .and_then(|v| v.to_str().ok())
    };
    let mut close = false;
    let mut allow = false;
    let (originator, response) = match read_body(&parts.headers, body, limits.max_body).await {
        Err(BodyError::TooLarge) => {
            // The rest of the body stays unread, so the connection cannot be reused.
            close = true;
            (
                None,
                DecodeError::BodyTooLarge(limits.max_body).to_response(ri()),
            )
        }
        Err(BodyError::Read(e)) => {
            tracing::debug!(error = %e, "reading request body failed");
            close = true;
            let resp = Response::error(
                ResponseStatusCode::BAD_REQUEST,
                "request body could not be read",
            );
            (
                None,
                Response {
                    request_id: ri().unwrap_or_default().to_owned(),
                    ..resp
                },
            )
        }
        Ok(bytes) => match decode_request(&parts, &bytes, &limits) {
            Err(resp) => {
                allow = resp.status == ResponseStatusCode::OPERATION_NOT_ALLOWED;
                (None, resp)
            }
            Ok(request) => {
                let from = request.from.clone();
                (from, handler.handle(request, peer.clone()).await)
            }
        },
    };
    let mut out = encode_response(&response, rvi.as_deref());
    if close {
        out.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if allow {
        // RFC 9110 §15.5.6: a 405 lists the methods the target supports.
        out.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST, PUT, DELETE"));
    }
    tracing::debug!(
        method = %parts.method,
        path = %parts.uri.path(),
        originator = originator.as_deref().unwrap_or("-"),
        rsc = response.status.0,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        peer = ?peer.addr,
        "request"
    );
    out
}

/// Serves HTTP/1.1 (with keep-alive) on one established connection until the peer closes it or
/// `shutdown` completes; then the request in flight finishes and the connection closes.
///
/// `io` is any byte stream (a TCP socket, or a TLS stream whose handshake authenticated `peer`);
/// every request on it is handled as coming from `peer`.
pub async fn serve_connection<IO, H>(
    io: IO,
    peer: PeerIdentity,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let service = service_fn(move |req| {
        let handler = Arc::clone(&handler);
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(process(req, peer, handler, limits).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::pin!(shutdown);
    tokio::select! {
        result = conn.as_mut() => result,
        () = &mut shutdown => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// Turns an accepted TCP connection into a byte stream and the identity it authenticated:
/// nothing for plain HTTP, a (D)TLS handshake for the secure listeners.
pub trait Acceptor: Send + Sync + 'static {
    /// The stream requests are read from.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Runs in the connection's own task, never on the accept loop. `None` refuses the
    /// connection; the acceptor logs why.
    fn accept(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> impl Future<Output = Option<(Self::Io, PeerIdentity)>> + Send;
}

/// Plain TCP: no security association, every peer is [`PeerIdentity::unauthenticated`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainAcceptor;

impl Acceptor for PlainAcceptor {
    type Io = TcpStream;
    async fn accept(&self, tcp: TcpStream, addr: SocketAddr) -> Option<(TcpStream, PeerIdentity)> {
        Some((tcp, PeerIdentity::unauthenticated(Some(addr))))
    }
}

/// Accepts plain HTTP connections on `listener` and serves them until `shutdown` completes;
/// then stops accepting and waits (up to 30 s) for in-flight requests to finish.
///
/// Plain HTTP authenticates nobody: every peer is [`PeerIdentity::unauthenticated`].
pub async fn serve_http<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, Arc::new(PlainAcceptor), handler, limits, shutdown).await
}

/// Accepts connections on `listener`, lets `acceptor` establish each one (in the connection's
/// task), and serves HTTP/1.1 on it until `shutdown` completes; then stops accepting and waits
/// (up to 30 s) for in-flight requests to finish.
pub async fn serve<A: Acceptor, H: Handler>(
    listener: TcpListener,
    acceptor: Arc<A>,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow with the server's lifetime.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                // A panic in a handler ends its connection only; it is a bug worth an error.
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "connection task panicked");
                }
            }
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, %addr, "TCP_NODELAY not set");
                }
                let handler = Arc::clone(&handler);
                let acceptor = Arc::clone(&acceptor);
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let Some((io, peer)) = acceptor.accept(stream, addr).await else { return };
                    // A closed channel also means stop: the listener is gone.
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(e) = serve_connection(io, peer, handler, limits, stopped).await {
                        tracing::debug!(error = %e, %addr, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "shutdown: closing connections still busy after {DRAIN_TIMEOUT:?}"
        );
        connections.shutdown().await;
    }
    Ok(())
}
