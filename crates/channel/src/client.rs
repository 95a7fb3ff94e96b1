//! The client side (Entity A) of TS-0003 §8.2.2.1 and §8.2.2.2.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode};
use openssl::x509::verify::X509CheckFlags;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::TlsStream;
use crate::config::{ClientConfig, is_psk_suite, tls12_builder};
use crate::error::{ConfigError, HandshakeError, classify};

/// Opens TLS 1.2 security associations to a server named by its host name or CSE-ID public
/// domain name.
pub struct TlsConnector {
    ctx: SslContext,
    verify_server: bool,
    psk_only: bool,
    timeout: Duration,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("verify_server", &self.verify_server)
            .field("psk_only", &self.psk_only)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Builds the client context. PSK suites are offered only with a PSK, certificate suites only
    /// with trust anchors for the server certificate.
    pub fn new(config: ClientConfig) -> Result<Self, ConfigError> {
        let ciphers: Vec<String> = config
            .ciphers
            .iter()
            .filter(|c| {
                if is_psk_suite(c) {
                    config.psk.is_some()
                } else {
                    config.trust_anchors.is_some()
                }
            })
            .cloned()
            .collect();
        if ciphers.is_empty() {
            return Err(ConfigError::Invalid {
                what: "client configuration",
                why: "no usable suite: PSK suites need a PSK, certificate suites need trust \
                      anchors for the server certificate"
                    .into(),
            });
        }
        if config.certificate.is_some() && config.trust_anchors.is_none() {
            return Err(ConfigError::Invalid {
                what: "client configuration",
                why: "a client certificate needs trust anchors for the server certificate".into(),
            });
        }
        let psk_only = ciphers.iter().all(|c| is_psk_suite(c));
        let mut b = tls12_builder(SslMethod::tls_client(), &ciphers)?;
        b.set_options(SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION);
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        if let Some(psk) = config.psk.clone() {
            let psk = Arc::new(psk);
            b.set_psk_client_callback(move |_ssl, _hint, id_out, psk_out| {
                // TS-0003 §8.2.2.1 step 3: psk_identity = KpsaID, written NUL-terminated.
                let id = psk.kpsa_id.as_str().as_bytes();
                let key = psk.key.expose_secret();
                let (Some(id_dst), Some(key_dst)) =
                    (id_out.get_mut(..=id.len()), psk_out.get_mut(..key.len()))
                else {
                    return Ok(0);
                };
                let (text, nul) = id_dst.split_at_mut(id.len());
                text.copy_from_slice(id);
                nul.fill(0);
                key_dst.copy_from_slice(key);
                Ok(key.len())
            });
        }
        if let Some(cert) = &config.certificate {
            cert.install(&mut b)?;
        }
        let verify_server = match &config.trust_anchors {
            Some(trust) => {
                trust.install(&mut b, false)?;
                b.set_verify(SslVerifyMode::PEER);
                true
            }
            None => {
                // Only PSK suites are offered: the key authenticates the server.
                b.set_verify(SslVerifyMode::NONE);
                false
            }
        };
        Ok(Self {
            ctx: b.build(),
            verify_server,
            psk_only,
            timeout: config.handshake_timeout,
        })
    }

    /// Runs the client handshake. `server_name` (IdB, TS-0003 §8.2.1) goes into SNI and, when the
    /// server presents a certificate, must equal a dNSName SAN of it (an FQDN certificate, or
    /// the CSE-ID public domain name of a CSE-ID certificate; wildcards are refused,
    /// §10.1.1.6/§10.1.1.7). An IP address is matched against iPAddress SANs and sends no SNI.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        server_name: &str,
    ) -> Result<TlsStream, HandshakeError> {
        let mut ssl = Ssl::new(&self.ctx)?;
        let ip = server_name.parse::<IpAddr>().ok();
        if ip.is_none() {
            if !crate::identity::is_fqdn(server_name) {
                return Err(HandshakeError::ServerName(
                    server_name.chars().take(64).collect(),
                ));
            }
            ssl.set_hostname(server_name)?;
        }
        if self.verify_server {
            let param = ssl.param_mut();
            param.set_hostflags(X509CheckFlags::NO_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT);
            match ip {
                Some(ip) => param.set_ip(ip)?,
                None => param.set_host(server_name)?,
            }
        }
        let mut stream = SslStream::new(ssl, tcp)?;
        match tokio::time::timeout(self.timeout, Pin::new(&mut stream).connect()).await {
            Err(_) => Err(HandshakeError::Timeout(self.timeout)),
            Ok(Err(e)) => {
                let psk_suite = self.psk_only
                    || stream
                        .ssl()
                        .current_cipher()
                        .is_some_and(|c| is_psk_suite(c.name()));
                Err(classify(&e, stream.ssl(), psk_suite))
            }
            Ok(Ok(())) => Ok(stream),
        }
    }
}
