//! One HTTP/1.1 connection: a TCP or TLS stream driven by hyper in its own task.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use m2mtrust_channel::{KeyingMaterial, TlsStream, export_keying_material};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::ClientError;

/// A TLS stream shared between hyper (which reads and writes it) and the key exporter (which
/// needs the `Ssl` of the live connection). The lock is held only inside one poll call or one
/// export, never across an await.
#[derive(Clone)]
pub(crate) struct SharedTls(Arc<Mutex<TlsStream>>);

impl SharedTls {
    fn lock(&self) -> MutexGuard<'_, TlsStream> {
        // A poisoned lock only means a poll panicked; the stream is still a stream.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The byte stream under hyper.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(SharedTls),
}

impl Io {
    pub(crate) fn tls(stream: TlsStream) -> Self {
        Io::Tls(SharedTls(Arc::new(Mutex::new(stream))))
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut *s.lock()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut *s.lock()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut *s.lock()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut *s.lock()).poll_shutdown(cx),
        }
    }
}

/// An established HTTP/1.1 connection. Dropping it stops its driver task, which closes the
/// socket.
pub(crate) struct Connection {
    pub(crate) sender: http1::SendRequest<Full<Bytes>>,
    tls: Option<SharedTls>,
    driver: JoinHandle<()>,
    /// Requests started on this connection; more than zero means it is being reused.
    pub(crate) requests: u64,
}

impl Connection {
    /// Runs the HTTP/1.1 handshake on `io` and spawns the task driving the connection.
    pub(crate) async fn open(io: Io, url: &str) -> Result<Self, ClientError> {
        let shared = match &io {
            Io::Tls(s) => Some(s.clone()),
            Io::Plain(_) => None,
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|source| ClientError::Connection {
                url: url.to_owned(),
                source,
            })?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        Ok(Self {
            sender,
            tls: shared,
            driver,
            requests: 0,
        })
    }

    /// True when the peer or hyper has closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }

    /// RFC 5705 export with `label` on this connection (TS-0003 §10.3.1).
    pub(crate) fn export(&self, label: &str) -> Result<KeyingMaterial, ClientError> {
        let tls = self.tls.as_ref().ok_or(ClientError::NotTls)?;
        let stream = tls.lock();
        export_keying_material(stream.ssl(), label)
            .map_err(|e| ClientError::KeyExport(e.to_string()))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
