//! The server side of TS-0003 §8.2.2.1 (TLS-PSK) and §8.2.2.2 (certificates) on one port.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use m2mtrust_model::{Authentication, PeerIdentity};
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    NameType, SniError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions,
    SslSessionCacheMode, SslVerifyMode,
};
use openssl::x509::X509VerifyResult;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::TlsStream;
use crate::config::{CertifiedKey, ServerConfig, is_psk_suite, tls12_builder};
use crate::error::{ConfigError, HandshakeError, classify};
use crate::ffi;
use crate::identity::{Binding, CertIdentity, CredentialKind, IdentityRules, KpsaId};
use crate::secret::PskKey;

/// Where the server finds keys and identity mappings. Called from inside the handshake, so
/// implementations must not block for long (an in-memory map or a cache, not a network call).
pub trait Credentials: Send + Sync + 'static {
    /// TS-0003 §8.2.2.1 step 3: the Kpsa for a KpsaID, and what the association binds to
    /// (step 4; [`Binding::Unbound`] binds it to the Credential-ID `12-<KpsaID>` only).
    /// `None` refuses the handshake with `unknown_psk_identity`.
    fn psk(&self, kpsa_id: &KpsaId) -> Option<PskCredential>;

    /// TS-0003 §8.2.1 "all other cases": maps the Credential-ID of a verified certificate that
    /// names no CSE-ID or AE-ID (`30-ni:///sha-256;…`). `None` refuses the handshake; return
    /// `Some(Binding::Unbound)` to accept it unbound. The default refuses.
    fn certificate(&self, credential_id: &str) -> Option<Binding> {
        let _ = credential_id;
        None
    }
}

/// A provisioned PSK and its binding.
#[derive(Clone, Debug)]
pub struct PskCredential {
    /// Kpsa.
    pub key: PskKey,
    /// What the association binds to.
    pub bound: Binding,
}

/// What an accepted handshake established about the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established {
    /// TS-0003 §10.4 Credential-ID (`12-<KpsaID>`, `32-<CSE-ID>`, `33-<AE-ID>`, `30-ni:…`).
    pub credential_id: String,
    /// PSK or certificate.
    pub kind: CredentialKind,
    /// The bound CSE-ID/AE-ID(s) (TS-0003 §8.2.1).
    pub binding: Binding,
    /// The KpsaID, for PSK associations.
    pub kpsa_id: Option<KpsaId>,
    /// The SNI host name the client sent.
    pub sni: Option<String>,
    /// The negotiated suite (OpenSSL name).
    pub cipher: String,
    /// The client's socket address.
    pub peer_addr: Option<SocketAddr>,
}

impl Established {
    /// The identity handed to bindings and handlers.
    pub fn peer_identity(&self) -> PeerIdentity {
        PeerIdentity {
            addr: self.peer_addr,
            authentication: Authentication::Credential {
                credential_id: self.credential_id.clone(),
                bound_ids: self.binding.bound_ids(),
            },
        }
    }
}

/// What the PSK callback decided, kept in the `Ssl` ex_data (TLS 1.3 would not report the
/// identity through `SSL_get_psk_identity`, so the callback records it itself).
#[derive(Clone, Debug)]
enum PskOutcome {
    Accepted { kpsa_id: KpsaId, binding: Binding },
    Malformed(String),
    Unknown(String),
}

/// What the verify callback decided about the leaf certificate.
#[derive(Clone, Debug)]
enum CertOutcome {
    Accepted {
        credential_id: String,
        binding: Binding,
    },
    Unmapped(String),
}

fn psk_index() -> Result<Index<Ssl, PskOutcome>, ErrorStack> {
    static IDX: OnceLock<Index<Ssl, PskOutcome>> = OnceLock::new();
    if let Some(i) = IDX.get() {
        return Ok(*i);
    }
    let fresh = Ssl::new_ex_index()?;
    Ok(*IDX.get_or_init(|| fresh))
}

/// Accepts TLS 1.2 connections from PSK and certificate clients and reports who they are.
pub struct TlsAcceptor {
    ctx: SslContext,
    credentials: Arc<dyn Credentials>,
    rules: Arc<IdentityRules>,
    verify_clients: bool,
    timeout: Duration,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("rules", &self.rules)
            .field("verify_clients", &self.verify_clients)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Builds the OpenSSL contexts (one default, one per SNI name).
    pub fn new(
        config: ServerConfig,
        credentials: Arc<dyn Credentials>,
    ) -> Result<Self, ConfigError> {
        psk_index()?;
        let mut by_name = HashMap::new();
        for (name, cert) in &config.sni_certificates {
            let name = name.to_ascii_lowercase();
            if !crate::identity::is_fqdn(&name) {
                return Err(ConfigError::Invalid {
                    what: "SNI name",
                    why: format!("{name:?} is not a host name"),
                });
            }
            let ctx = build_context(&config, &credentials, Some(cert))?.build();
            by_name.insert(name, ctx);
        }
        let mut b = build_context(&config, &credentials, config.certificate.as_ref())?;
        if !by_name.is_empty() {
            // TS-0003 §10.2.1: the client names its server in SNI; the server answers with the
            // credentials for that name. Every per-name context is built by the same function, so
            // switching changes only the certificate (the PSK callback and trust store that
            // OpenSSL then takes from the new context are identical).
            b.set_servername_callback(move |ssl, _alert| {
                let name = ssl
                    .servername(NameType::HOST_NAME)
                    .map(|n| n.to_ascii_lowercase());
                if let Some(ctx) = name.and_then(|n| by_name.get(&n)) {
                    ssl.set_ssl_context(ctx)
                        .map_err(|_| SniError::ALERT_FATAL)?;
                }
                Ok(())
            });
        }
        Ok(Self {
            ctx: b.build(),
            credentials,
            rules: Arc::new(config.identity.clone()),
            verify_clients: config.client_trust.is_some(),
            timeout: config.handshake_timeout,
        })
    }

    /// Runs the server handshake on an accepted TCP connection. Every outcome is logged as an
    /// audit event (target `audit`) with the peer address; a refusal carries its reason.
    pub async fn accept(&self, tcp: TcpStream) -> Result<(TlsStream, Established), HandshakeError> {
        let peer = tcp.peer_addr().ok();
        let peer_text = peer.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        let result = self.handshake(tcp, peer).await;
        match &result {
            Ok((_, est)) => tracing::info!(
                target: "audit",
                event = "security_association_established",
                peer = %peer_text,
                credential_id = %est.credential_id,
                kind = ?est.kind,
                binding = ?est.binding,
                sni = est.sni.as_deref().unwrap_or("-"),
                cipher = %est.cipher,
            ),
            Err(e) => tracing::warn!(
                target: "audit",
                event = "security_association_refused",
                peer = %peer_text,
                reason = e.reason(),
                detail = %e,
            ),
        }
        result
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        peer: Option<SocketAddr>,
    ) -> Result<(TlsStream, Established), HandshakeError> {
        let mut ssl = Ssl::new(&self.ctx)?;
        let cert_outcome: Arc<Mutex<Option<CertOutcome>>> = Arc::default();
        if self.verify_clients {
            let slot = Arc::clone(&cert_outcome);
            let rules = Arc::clone(&self.rules);
            let creds = Arc::clone(&self.credentials);
            // FAIL_IF_NO_PEER_CERT applies only when a certificate suite was chosen: with PSK
            // suites OpenSSL sends no CertificateRequest (RFC 4279), so PSK clients are unaffected.
            ssl.set_verify_callback(
                SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
                move |ok, x509| {
                    if !ok || x509.error_depth() != 0 {
                        return ok;
                    }
                    let Some(leaf) = x509.current_cert() else {
                        return false;
                    };
                    // TS-0003 §8.2.2.2 step 3: CSE-ID/AE-ID from the certificate, else the
                    // Credential-ID mapped by the caller.
                    let CertIdentity {
                        credential_id,
                        binding,
                    } = rules.certificate_identity(leaf);
                    let binding = binding.or_else(|| creds.certificate(&credential_id));
                    let (outcome, accept) = match binding {
                        Some(binding) => (
                            CertOutcome::Accepted {
                                credential_id,
                                binding,
                            },
                            true,
                        ),
                        None => (CertOutcome::Unmapped(credential_id), false),
                    };
                    if !accept {
                        x509.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
                    }
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    accept
                },
            );
        }
        let mut stream = SslStream::new(ssl, tcp)?;
        let done = tokio::time::timeout(self.timeout, Pin::new(&mut stream).accept()).await;
        let psk = stream.ssl().ex_data(psk_index()?).cloned();
        let cert = cert_outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match done {
            Err(_) => Err(HandshakeError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(match (psk, cert) {
                (Some(PskOutcome::Malformed(id)), _) => HandshakeError::MalformedIdentity(id),
                (Some(PskOutcome::Unknown(id)), _) => HandshakeError::UnknownIdentity(id),
                (_, Some(CertOutcome::Unmapped(id))) => HandshakeError::UnknownCertificate(id),
                (psk, _) => {
                    let psk_suite = psk.is_some()
                        || stream
                            .ssl()
                            .current_cipher()
                            .is_some_and(|c| is_psk_suite(c.name()));
                    classify(&e, stream.ssl(), psk_suite)
                }
            }),
            Ok(Ok(())) => {
                let ssl = stream.ssl();
                let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
                let cipher = ssl
                    .current_cipher()
                    .map(|c| c.name().to_string())
                    .unwrap_or_default();
                let (credential_id, kind, binding, kpsa_id) = match (psk, cert) {
                    (Some(PskOutcome::Accepted { kpsa_id, binding }), _) => (
                        crate::identity::kpsa_credential_id(&kpsa_id),
                        CredentialKind::Psk,
                        binding,
                        Some(kpsa_id),
                    ),
                    (
                        _,
                        Some(CertOutcome::Accepted {
                            credential_id,
                            binding,
                        }),
                    ) if ssl.peer_certificate().is_some() => {
                        (credential_id, CredentialKind::Certificate, binding, None)
                    }
                    // A certificate suite without a client certificate (no trust anchors
                    // configured, so none was requested): nobody authenticated.
                    _ => return Err(HandshakeError::NoClientCredential),
                };
                let est = Established {
                    credential_id,
                    kind,
                    binding,
                    kpsa_id,
                    sni,
                    cipher,
                    peer_addr: peer,
                };
                Ok((stream, est))
            }
        }
    }
}

/// One server context: TLS 1.2, the configured suites, no resumption or renegotiation, the PSK
/// callback, optional hint, certificate and client trust store.
fn build_context(
    config: &ServerConfig,
    credentials: &Arc<dyn Credentials>,
    cert: Option<&CertifiedKey>,
) -> Result<SslContextBuilder, ConfigError> {
    let mut b = tls12_builder(SslMethod::tls_server(), &config.ciphers)?;
    b.set_options(
        SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE,
    );
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    if let Some(hint) = &config.psk_identity_hint {
        let hint = CString::new(hint.as_str()).map_err(|_| ConfigError::Invalid {
            what: "PSK identity hint",
            why: "contains NUL".into(),
        })?;
        ffi::set_psk_identity_hint(&mut b, &hint)?;
    }
    let creds = Arc::clone(credentials);
    b.set_psk_server_callback(move |ssl, identity, psk_out| {
        let Ok(idx) = psk_index() else { return Ok(0) };
        // TS-0003 §8.2.2.1 step 3: psk_identity = KpsaID (§10.5), checked before lookup.
        let raw = identity.unwrap_or_default();
        let kpsa_id = match crate::identity::kpsa_id_from_wire(raw) {
            Ok(id) => id,
            Err(_) => {
                let shown: String = String::from_utf8_lossy(raw).chars().take(64).collect();
                ssl.set_ex_data(idx, PskOutcome::Malformed(shown));
                return Ok(0);
            }
        };
        let found = creds.psk(&kpsa_id);
        let Some(PskCredential { key, bound }) = found else {
            ssl.set_ex_data(idx, PskOutcome::Unknown(kpsa_id.to_string()));
            return Ok(0);
        };
        let n = key.len();
        match psk_out.get_mut(..n) {
            Some(out) => out.copy_from_slice(key.expose_secret()),
            None => {
                ssl.set_ex_data(idx, PskOutcome::Unknown(kpsa_id.to_string()));
                return Ok(0);
            }
        }
        ssl.set_ex_data(
            idx,
            PskOutcome::Accepted {
                kpsa_id,
                binding: bound,
            },
        );
        Ok(n)
    });
    if let Some(cert) = cert {
        cert.install(&mut b)?;
    }
    if let Some(trust) = &config.client_trust {
        trust.install(&mut b, true)?;
    }
    Ok(b)
}
