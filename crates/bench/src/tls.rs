//! HTTPS: a hyper connector that opens TLS 1.2 security associations (TS-0003 §8.2.2) with
//! the channel crate, authenticated by a PSK or a client certificate.
//!
//! The connector only opens connections; the pooled client of [`crate::client`] keeps them
//! alive exactly as over http, so a client pays for one handshake, not one per request.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::rt::ReadBufCursor;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use m2mtrust_channel::{
    CertifiedKey, ClientConfig, KpsaId, PskKey, TlsConnector, TlsStream, TrustAnchors,
};
use tokio::net::TcpStream;
use tower::Service;

use crate::args::TlsArgs;
use crate::client::{Scheme, Target, host_name};
use crate::error::BenchError;

/// What the arguments ask for: plain http, or https with these TLS settings.
pub(crate) enum Security {
    Plain,
    Tls(TlsSettings),
}

/// A checked client configuration; the PSK inside prints as `<redacted>`.
#[derive(Debug)]
pub(crate) struct TlsSettings {
    config: ClientConfig,
    server_name: Option<String>,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidArgument {
        what,
        reason: reason.into(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|e| invalid(what, format!("cannot read {}: {e}", path.display())))
}

impl Security {
    /// Checks the TLS flags against the URL scheme and reads keys and certificates, so every
    /// mistake is reported before the first request.
    pub fn from_args(tls: &TlsArgs, target: &Target) -> Result<Self, BenchError> {
        if target.scheme == Scheme::Http {
            return match tls.first_given() {
                Some(flag) => Err(invalid(
                    flag,
                    "TLS options need an https:// URL; drop them or use https",
                )),
                None => Ok(Security::Plain),
            };
        }
        let psk = tls.psk_id.is_some() || tls.psk_key_hex.is_some() || tls.psk_key_file.is_some();
        let certificate = tls.cert.is_some() || tls.key.is_some();
        let config = match (psk, certificate) {
            (false, false) if tls.ca.is_some() => {
                return Err(invalid(
                    "--ca",
                    "certificate mode also needs the client certificate: --cert and --key",
                ));
            }
            (false, false) => {
                return Err(invalid(
                    "--url",
                    "https needs a credential: a PSK (--psk-id with --psk-key-hex or \
                     --psk-key-file) or a client certificate (--cert, --key and --ca)",
                ));
            }
            (true, true) => {
                return Err(invalid(
                    "--psk-id",
                    "give either a PSK or a client certificate (--cert/--key), not both",
                ));
            }
            (true, false) => psk_config(tls)?,
            (false, true) => certificate_config(tls)?,
        };
        Ok(Security::Tls(TlsSettings {
            config,
            server_name: tls.server_name.clone(),
        }))
    }
}

fn psk_config(tls: &TlsArgs) -> Result<ClientConfig, BenchError> {
    if tls.ca.is_some() {
        return Err(invalid(
            "--ca",
            "only used with --cert: in PSK mode the key authenticates the server and its \
             certificate is not checked",
        ));
    }
    let Some(id) = &tls.psk_id else {
        return Err(invalid(
            "--psk-id",
            "required with --psk-key-hex or --psk-key-file",
        ));
    };
    let kpsa_id = KpsaId::parse(id).map_err(|e| invalid("--psk-id", format!("{id:?}: {e}")))?;
    let key = match (&tls.psk_key_hex, &tls.psk_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "--psk-key-hex",
                "give the key either inline or as --psk-key-file, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "--psk-id",
                "needs its key: --psk-key-hex HEX or --psk-key-file FILE",
            ));
        }
        (Some(hex), None) => PskKey::from_hex(hex.expose_secret().trim())
            .map_err(|e| invalid("--psk-key-hex", e.to_string()))?,
        (None, Some(path)) => key_file("--psk-key-file", path)?,
    };
    Ok(ClientConfig::psk(kpsa_id, key))
}

/// Reads a PSK kept in `path` as hex (surrounding whitespace ignored); errors name the flag
/// `what` and the file, never the key.
pub(crate) fn key_file(what: &'static str, path: &Path) -> Result<PskKey, BenchError> {
    let text = read(what, path)?;
    let hex = std::str::from_utf8(&text)
        .map_err(|_| invalid(what, format!("{} does not hold hex text", path.display())))?;
    PskKey::from_hex(hex.trim()).map_err(|e| invalid(what, format!("{}: {e}", path.display())))
}

fn certificate_config(tls: &TlsArgs) -> Result<ClientConfig, BenchError> {
    let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
        return Err(invalid(
            if tls.cert.is_none() {
                "--cert"
            } else {
                "--key"
            },
            "certificate mode needs both the chain (--cert) and its private key (--key)",
        ));
    };
    let Some(ca) = &tls.ca else {
        return Err(invalid(
            "--ca",
            "required with --cert: the CA certificate the server certificate must chain to",
        ));
    };
    certified_config(&MAIN_CERT, cert, key, ca)
}

/// The flags a certificate and its key came from, for errors.
pub(crate) struct CertFlags {
    pub cert: &'static str,
    pub key: &'static str,
    /// Both, as `--cert/--key`, for errors about the pair.
    pub pair: &'static str,
}

const MAIN_CERT: CertFlags = CertFlags {
    cert: "--cert",
    key: "--key",
    pair: "--cert/--key",
};

/// Reads a certificate chain, its key and the CA certificates; errors name `flags`.
fn certified_config(
    flags: &CertFlags,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> Result<ClientConfig, BenchError> {
    let certified = CertifiedKey::from_pem(&read(flags.cert, cert)?, &read(flags.key, key)?)
        .map_err(|e| invalid(flags.pair, e.to_string()))?;
    let anchors = TrustAnchors::from_pem(&read("--ca", ca)?)
        .map_err(|e| invalid("--ca", format!("{}: {e}", ca.display())))?;
    Ok(ClientConfig::certificate(certified, anchors))
}

/// Certificate-mode settings of a second identity of the same run (the requester of
/// `--workload direct-authz`), checked against the same CA and server name as `--url`'s.
pub(crate) fn certificate_settings(
    flags: &CertFlags,
    cert: &Path,
    key: &Path,
    ca: &Path,
    server_name: Option<String>,
) -> Result<TlsSettings, BenchError> {
    Ok(TlsSettings {
        config: certified_config(flags, cert, key, ca)?,
        server_name,
    })
}

/// Opens TCP (nodelay), then runs the channel's client handshake. `Clone` shares the OpenSSL
/// context.
#[derive(Clone, Debug)]
pub(crate) struct HttpsConnector {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tls: TlsConnector,
    server_name: Option<String>,
    connect_timeout: Duration,
}

impl HttpsConnector {
    /// `timeout` bounds the TCP connect and, separately, the handshake.
    pub fn new(settings: TlsSettings, timeout: Duration) -> Result<Self, BenchError> {
        let TlsSettings {
            mut config,
            server_name,
        } = settings;
        config.handshake_timeout = timeout;
        let tls =
            TlsConnector::new(config).map_err(|e| invalid("TLS configuration", e.to_string()))?;
        Ok(Self {
            shared: Arc::new(Shared {
                tls,
                server_name,
                connect_timeout: timeout,
            }),
        })
    }
}

/// Why no connection could be handed to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("URI {0} has no host")]
    NoHost(String),
    #[error("TCP connect to {addr} failed: {reason}")]
    Tcp { addr: String, reason: io::Error },
    #[error("TCP connect to {addr} not finished within {timeout:?}")]
    TcpTimeout { addr: String, timeout: Duration },
    #[error("TLS handshake (server name {server_name}) failed: {reason}")]
    Handshake {
        server_name: String,
        reason: m2mtrust_channel::HandshakeError,
    },
}

impl Service<Uri> for HttpsConnector {
    type Response = TlsIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let Some(host) = uri.host().map(host_name) else {
                return Err(ConnectError::NoHost(uri.to_string()));
            };
            let port = uri.port_u16().unwrap_or(443);
            let addr = format!("{host}:{port}");
            let tcp =
                tokio::time::timeout(shared.connect_timeout, TcpStream::connect((host, port)))
                    .await
                    .map_err(|_| ConnectError::TcpTimeout {
                        addr: addr.clone(),
                        timeout: shared.connect_timeout,
                    })?
                    .map_err(|reason| ConnectError::Tcp {
                        addr: addr.clone(),
                        reason,
                    })?;
            tcp.set_nodelay(true)
                .map_err(|reason| ConnectError::Tcp { addr, reason })?;
            let server_name = shared.server_name.as_deref().unwrap_or(host);
            let stream = shared
                .tls
                .connect(tcp, server_name)
                .await
                .map_err(|reason| ConnectError::Handshake {
                    server_name: server_name.to_owned(),
                    reason,
                })?;
            Ok(TlsIo(TokioIo::new(stream)))
        })
    }
}

/// An established TLS connection as hyper's pooled client wants it.
#[derive(Debug)]
pub(crate) struct TlsIo(TokioIo<TlsStream>);

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::SecretText;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    fn err(tls: &TlsArgs, url: &str) -> String {
        match Security::from_args(tls, &target(url)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn scheme_and_flags_must_agree() {
        let none = TlsArgs::default();
        assert!(matches!(
            Security::from_args(&none, &target("http://h/cse-in")),
            Ok(Security::Plain)
        ));
        assert!(err(&none, "https://h/cse-in").contains("https needs a credential"));

        let psk = TlsArgs {
            psk_id: Some("bench@mef.m2mtrust.example".into()),
            psk_key_hex: Some(SecretText::new("00112233")),
            ..TlsArgs::default()
        };
        assert!(matches!(
            Security::from_args(&psk, &target("https://h/cse-in")),
            Ok(Security::Tls(_))
        ));
        assert!(err(&psk, "http://h/cse-in").starts_with("invalid --psk-id: TLS options need"));
        let name_only = TlsArgs {
            server_name: Some("h".into()),
            ..TlsArgs::default()
        };
        assert!(err(&name_only, "http://h/cse-in").starts_with("invalid --server-name"));
    }

    #[test]
    fn psk_mistakes_are_named_without_the_key() {
        let base = TlsArgs {
            psk_id: Some("bench@mef.m2mtrust.example".into()),
            ..TlsArgs::default()
        };
        let url = "https://h/cse-in";
        assert!(err(&base, url).contains("needs its key"));
        let bad_key = TlsArgs {
            psk_key_hex: Some(SecretText::new("secretzz")),
            ..base.clone()
        };
        let msg = err(&bad_key, url);
        assert!(msg.starts_with("invalid --psk-key-hex"), "{msg}");
        assert!(!msg.contains("secretzz"), "{msg}");
        let bad_id = TlsArgs {
            psk_id: Some("no-issuer".into()),
            psk_key_hex: Some(SecretText::new("00")),
            ..TlsArgs::default()
        };
        assert!(err(&bad_id, url).starts_with("invalid --psk-id"));
        let with_ca = TlsArgs {
            psk_key_hex: Some(SecretText::new("00")),
            ca: Some("ca.pem".into()),
            ..base.clone()
        };
        assert!(err(&with_ca, url).starts_with("invalid --ca: only used with --cert"));
        let both = TlsArgs {
            psk_key_hex: Some(SecretText::new("00")),
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..base.clone()
        };
        assert!(err(&both, url).contains("not both"));
        let no_id = TlsArgs {
            psk_key_hex: Some(SecretText::new("00")),
            ..TlsArgs::default()
        };
        assert!(err(&no_id, url).starts_with("invalid --psk-id: required"));
        assert!(!format!("{bad_key:?}").contains("secretzz"));
    }

    #[test]
    fn certificate_mode_needs_cert_key_and_ca() {
        let url = "https://h/cse-in";
        let cert_only = TlsArgs {
            cert: Some("c.pem".into()),
            ..TlsArgs::default()
        };
        assert!(err(&cert_only, url).starts_with("invalid --key"));
        let no_ca = TlsArgs {
            key: Some("k.pem".into()),
            ..cert_only.clone()
        };
        assert!(err(&no_ca, url).starts_with("invalid --ca: required with --cert"));
        let ca_only = TlsArgs {
            ca: Some("ca.pem".into()),
            ..TlsArgs::default()
        };
        assert!(err(&ca_only, url).contains("--cert and --key"));
        let missing = TlsArgs {
            ca: Some("/nonexistent/ca.pem".into()),
            ..no_ca
        };
        assert!(err(&missing, url).contains("cannot read c.pem"));
    }
}
