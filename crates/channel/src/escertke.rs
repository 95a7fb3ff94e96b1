//! End-to-End Certificate-based Key Establishment (TS-0003 §8.7): two end-points run a TLS 1.2
//! handshake over four ESCertKE Messages and export a pairwiseE2EKey from it (§10.3.1).
//!
//! | message | sender | TLS 1.2 content (Table 8.7.2.2-1) |
//! |---|---|---|
//! | 1 | [`Initiator::start`] | ClientHello |
//! | 2 | [`Terminator::respond`] | ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone |
//! | 3 | [`Initiator::finish`] | Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec, Finished |
//! | 4 | [`Terminator::finish`] | ChangeCipherSpec, Finished |
//!
//! Each message is the concatenation of the TLS records OpenSSL writes for that flight (record
//! layer included, so ChangeCipherSpec and the encrypted Finished fit); the end-points drive an
//! [`SslStream`] over an in-memory buffer instead of a socket. Only TLS 1.2 with the ECDHE-ECDSA
//! suites of §10.2.3 is offered, both sides present a certificate and verify the other's chain
//! against their trust anchors, and the peer's identity is read from its subjectAltName as
//! [`IdentityRules`] reads CSE-ID and AE-ID certificates (§8.1.2.5); a certificate naming no
//! CSE-ID or AE-ID, or another identity than the expected one, aborts the handshake.
//!
//! C.2: once the handshake succeeded, both ends export 48 bytes with the label
//! `EXPORTER-oneM2M-ESCertKE` and no context: pairwiseE2EKeyID = the 16 most significant bytes,
//! pairwiseE2EKey = the 32 least significant ([`KeyingMaterial::split`]). The Initiator takes
//! the key only after the Terminator's Finished (message 4) verified. No application data is
//! exchanged; the TLS session is dropped with the end-point value.
//!
//! The "indicator to export pairwiseE2EKey" of message 1 has no TLS 1.2 counterpart and is not
//! sent. Every refusal is an [`EsCertKeError`]; nothing here panics on peer input.
//!
//! [`KeyingMaterial::split`]: crate::KeyingMaterial::split

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use m2mtrust_model::CseId;
use openssl::error::ErrorStack;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslStream,
    SslVerifyMode, SslVersion,
};
use openssl::x509::X509VerifyResult;

use crate::config::{CERTIFICATE_CIPHERS, CertifiedKey, TrustAnchors, tls12_builder};
use crate::error::{ConfigError, HandshakeError, classify};
use crate::export::{LABEL_ESCERTKE, export_keying_material};
use crate::identity::{Binding, CertIdentity, IdentityRules, is_fqdn};
use crate::secret::SymmetricKey;

/// TS-0003 §10.2.3 suites offered for ESCertKE: the mandatory
/// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256` first, then AES-128-GCM.
pub const ESCERTKE_CIPHERS: &[&str] =
    &["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"];

/// The largest ESCertKE Message accepted or produced. A flight with a certificate chain of a few
/// P-256 certificates takes 2-4 KiB.
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;

/// TLS record content types (RFC 5246 §6.2.1).
const RECORD_CHANGE_CIPHER_SPEC: u8 = 20;
const RECORD_HANDSHAKE: u8 = 22;
/// Handshake message types (RFC 5246 §7.4).
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const HANDSHAKE_CERTIFICATE: u8 = 11;
const HANDSHAKE_SERVER_HELLO_DONE: u8 = 14;
/// Largest TLS 1.2 record body (RFC 5246 §6.2.3: 2^14 + 2048).
const MAX_RECORD_BODY: usize = (1 << 14) + 2048;

/// Why an ESCertKE Message was refused or could not be produced. [`EsCertKeError::reason`] gives
/// a short stable code for audit records.
#[derive(Debug, thiserror::Error)]
pub enum EsCertKeError {
    /// The message is not a sequence of complete TLS records of one flight (empty, too long,
    /// truncated, application data, bytes after the flight, an incomplete flight).
    #[error("not an ESCertKE message: {0}")]
    Malformed(String),
    /// A step was called out of order, or after the end-point failed.
    #[error("ESCertKE step out of order: {0}")]
    OutOfOrder(&'static str),
    /// The TLS handshake failed: a refused certificate, a bad Finished, no common suite or
    /// version, an alert from the peer.
    #[error("ESCertKE handshake failed: {0}")]
    Handshake(#[source] HandshakeError),
    /// The peer's certificate is valid but names another identity than the expected one.
    #[error("the peer's certificate names {found}, not {expected}")]
    UnexpectedPeer {
        /// The identity the end-point was configured to accept.
        expected: String,
        /// The identity in the certificate.
        found: String,
    },
    /// The peer's certificate names no CSE-ID or AE-ID (or several); raw public keys and
    /// certificates mapped by configuration are not supported here.
    #[error("the peer's certificate names no single CSE-ID or AE-ID ({0})")]
    UnnamedPeer(String),
    /// The key export failed.
    #[error("pairwiseE2EKey export failed: {0}")]
    Export(#[source] ErrorStack),
    /// Local OpenSSL setup failed.
    #[error("ESCertKE setup failed: {0}")]
    Setup(#[from] ErrorStack),
}

impl EsCertKeError {
    /// A stable short code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::OutOfOrder(_) => "out_of_order",
            Self::Handshake(e) => e.reason(),
            Self::UnexpectedPeer { .. } => "unexpected_peer",
            Self::UnnamedPeer(_) => "unnamed_peer",
            Self::Export(_) => "export_failed",
            Self::Setup(_) => "setup_error",
        }
    }

    /// Whether the peer was refused for what it presented (a certificate, an identity, a
    /// CertificateVerify or Finished that does not verify, an alert) rather than for the form of
    /// its message.
    pub fn is_authentication_failure(&self) -> bool {
        match self {
            Self::UnexpectedPeer { .. } | Self::UnnamedPeer(_) => true,
            Self::Handshake(e) => {
                matches!(
                    e,
                    HandshakeError::Certificate { .. }
                        | HandshakeError::UnknownCertificate(_)
                        | HandshakeError::BadKeyOrMac
                        | HandshakeError::NoClientCredential
                        | HandshakeError::PeerAlert(_)
                ) || matches!(e, HandshakeError::Protocol(t) if t.contains("signature"))
            }
            _ => false,
        }
    }

    /// Whether the peer offered nothing this end-point supports (another TLS version, no common
    /// cipher suite).
    pub fn is_unsupported(&self) -> bool {
        match self {
            Self::Handshake(HandshakeError::NoSharedCipher) => true,
            Self::Handshake(HandshakeError::Protocol(text)) => {
                let t = text.to_ascii_lowercase();
                t.contains("unsupported protocol") || t.contains("version too low")
            }
            _ => false,
        }
    }
}

/// Whose certificate an end-point accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedPeer {
    /// Exactly this identity, in the canonical form [`IdentityRules`] gives it: a CSE-ID
    /// (`/id-in`), an AE-ID of this CSE (`Cae1`), of another CSE (`/id-mn/Cae1`) or S-type
    /// (`Sapp`).
    Identity(String),
    /// Any certificate that names one CSE-ID or AE-ID; the caller decides from
    /// [`Outcome::peer`].
    AnyNamed,
}

/// One end-point's credentials and trust (TS-0003 §8.7.2.2 A and B).
#[derive(Clone, Debug)]
pub struct EsCertKeConfig {
    /// The end-point's CSE-ID or AE-ID certificate and key (§10.1).
    pub certificate: CertifiedKey,
    /// CAs (and CRLs) the peer's chain must end in.
    pub trust_anchors: TrustAnchors,
    /// How the peer's identity is read from its certificate.
    pub identity: IdentityRules,
    /// OpenSSL suite names, in preference order; only suites of §10.2.3.
    pub ciphers: Vec<String>,
}

impl EsCertKeConfig {
    /// A configuration offering [`ESCERTKE_CIPHERS`].
    pub fn new(
        certificate: CertifiedKey,
        trust_anchors: TrustAnchors,
        identity: IdentityRules,
    ) -> Self {
        Self {
            certificate,
            trust_anchors,
            identity,
            ciphers: ESCERTKE_CIPHERS.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn context(&self, server: bool) -> Result<SslContext, ConfigError> {
        if let Some(c) = self
            .ciphers
            .iter()
            .find(|c| !CERTIFICATE_CIPHERS.contains(&c.as_str()))
        {
            return Err(ConfigError::Invalid {
                what: "ESCertKE ciphers",
                why: format!("{c:?} is not a certificate suite of TS-0003 §10.2.3"),
            });
        }
        let method = if server {
            SslMethod::tls_server()
        } else {
            SslMethod::tls_client()
        };
        let mut b = tls12_builder(method, &self.ciphers)?;
        let mut options = SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION;
        if server {
            options |= SslOptions::CIPHER_SERVER_PREFERENCE;
        }
        b.set_options(options);
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        self.certificate.install(&mut b)?;
        self.trust_anchors.install(&mut b, server)?;
        Ok(b.build())
    }
}

/// The Initiating End-Point's prepared context; one per configuration, any number of
/// [`Initiator`]s.
#[derive(Clone)]
pub struct InitiatorContext {
    ctx: SslContext,
    rules: Arc<IdentityRules>,
}

/// The Terminating End-Point's prepared context; one per configuration, any number of
/// [`Terminator`]s.
#[derive(Clone)]
pub struct TerminatorContext {
    ctx: SslContext,
    rules: Arc<IdentityRules>,
}

impl InitiatorContext {
    /// Builds the TLS 1.2 client context.
    pub fn new(config: &EsCertKeConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            ctx: config.context(false)?,
            rules: Arc::new(config.identity.clone()),
        })
    }
}

impl TerminatorContext {
    /// Builds the TLS 1.2 server context; it sends a CertificateRequest naming the trust anchors.
    pub fn new(config: &EsCertKeConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            ctx: config.context(true)?,
            rules: Arc::new(config.identity.clone()),
        })
    }
}

impl fmt::Debug for InitiatorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiatorContext")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TerminatorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminatorContext")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The result of a successful ESCertKE Procedure at one end-point.
pub struct Outcome {
    /// pairwiseE2EKeyID: the 16 most significant exported bytes.
    pub key_id: [u8; 16],
    /// pairwiseE2EKey: the 32 least significant exported bytes.
    pub key: SymmetricKey,
    /// The peer's identity from its certificate (`Binding::Cse` or `Binding::Ae`).
    pub peer: Binding,
    /// The peer's Credential-ID (`32-<CSE-ID>`, `33-<AE-ID>`).
    pub peer_credential_id: String,
    /// The peer's leaf certificate, DER.
    pub peer_certificate_der: Vec<u8>,
    /// The negotiated suite (OpenSSL name).
    pub cipher: String,
    /// The M2M SP domain of the identity rules, which names the key (see [`Outcome::esprim_kid`]).
    sp_domain: String,
}

impl Outcome {
    /// The peer's canonical identity (`/id-in`, `Cae1`, `/id-mn/Cae1`, `Sapp`).
    pub fn peer_id(&self) -> &str {
        match &self.peer {
            Binding::Cse(id) | Binding::Ae(id) => id,
            Binding::AeList(ids) => ids.first().map(String::as_str).unwrap_or(""),
            Binding::Unbound => "",
        }
    }

    /// The identifier under which the pairwiseE2EKey serves as pairwiseESPrimKey:
    /// `<lower-case hex of pairwiseE2EKeyID>@<M2M SP domain>`, a `relative@FQDN` KpsaID form
    /// both end-points compute alike.
    pub fn esprim_kid(&self) -> String {
        esprim_kid(&self.key_id, &self.sp_domain)
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("kid", &self.esprim_kid())
            .field("key", &self.key)
            .field("peer", &self.peer)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// `<lower-case hex of pairwiseE2EKeyID>@<sp_domain>`.
pub fn esprim_kid(key_id: &[u8; 16], sp_domain: &str) -> String {
    let mut s = String::with_capacity(33 + sp_domain.len());
    for b in key_id {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('@');
    s.push_str(sp_domain.strip_prefix("//").unwrap_or(sp_domain));
    s
}

/// Whether `msg` starts a new ESCertKE Procedure: its first record is a handshake record
/// beginning with a ClientHello. A Terminator uses it to tell message 1 from message 3.
pub fn is_first_message(msg: &[u8]) -> bool {
    matches!(
        msg,
        [RECORD_HANDSHAKE, 3, _, _, _, HANDSHAKE_CLIENT_HELLO, ..]
    )
}

/// Identity rules for an Initiating End-Point that names itself with `certificate` and expects
/// the Terminating End-Point to be the CSE `terminator`.
///
/// The M2M SP domain comes from the end-point's own certificate: the host of an AE-ID
/// certificate's URI (`https://<sp>/…`), or for a CSE-ID certificate its dNSName without the
/// first label and without a following `<terminator>.` label (`id-mn.id-in.<sp>`,
/// `id-mn.<sp>`). The Terminator is expected to be named `<terminator>.<sp>`, the form of an
/// IN-CSE and of the server certificates m2mtrust CSEs issue themselves.
pub fn initiator_rules(
    certificate: &CertifiedKey,
    terminator: &CseId,
) -> Result<IdentityRules, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        what: "ESCertKE certificate",
        why,
    };
    let leaf = certificate
        .leaf()
        .ok_or_else(|| invalid("no certificate".into()))?;
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Some(names) = leaf.subject_alt_names() {
        for name in &names {
            if let Some(u) = name.uri() {
                uris.push(u.to_string());
            } else if let Some(d) = name.dnsname() {
                dns.push(d.to_ascii_lowercase());
            }
        }
    }
    let sp = match (uris.as_slice(), dns.as_slice()) {
        ([uri], _) => uri
            .strip_prefix("https://")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("the URI {uri:?} is not an AE-ID URI")))?,
        ([], [name]) => {
            let rest = name
                .split_once('.')
                .map(|(_, rest)| rest)
                .ok_or_else(|| invalid(format!("{name:?} is not a CSE-ID name")))?;
            let t = terminator.bare().to_ascii_lowercase();
            match rest.strip_prefix(&format!("{t}.")) {
                Some(sp) if is_fqdn(sp) => sp.to_string(),
                _ => rest.to_string(),
            }
        }
        _ => {
            return Err(invalid(
                "an AE-ID certificate (one URI) or a CSE-ID certificate (one dNSName) is needed"
                    .into(),
            ));
        }
    };
    IdentityRules::new(&sp, terminator.clone(), terminator.clone())
}

/// The in-memory "socket": what the peer sent for this flight, and what OpenSSL writes.
#[derive(Default)]
struct Flight {
    incoming: Vec<u8>,
    read: usize,
    outgoing: Vec<u8>,
}

impl Read for Flight {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.incoming.get(self.read..).unwrap_or_default();
        if rest.is_empty() {
            // Nothing more in this flight: OpenSSL reports WANT_READ.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.read += n;
        Ok(n)
    }
}

impl Write for Flight {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outgoing.len() + buf.len() > MAX_MESSAGE_LEN {
            return Err(io::Error::other("ESCertKE message too long"));
        }
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the verify callback decided about the peer's leaf certificate.
#[derive(Clone, Debug)]
enum PeerCheck {
    Accepted(CertIdentity),
    Unnamed(String),
    Unexpected { expected: String, found: String },
}

type PeerSlot = Arc<Mutex<Option<PeerCheck>>>;

/// Which flight a message must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlightKind {
    /// Message 1: ClientHello.
    ClientHello,
    /// Message 2: ServerHello … ServerHelloDone.
    ServerHello,
    /// Message 3: Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec, Finished.
    ClientFinished,
    /// Message 4: ChangeCipherSpec, Finished.
    ServerFinished,
}

/// The records of a message: (content type, body).
fn records(msg: &[u8]) -> Result<Vec<(u8, &[u8])>, EsCertKeError> {
    let bad = |why: &str| EsCertKeError::Malformed(why.to_string());
    if msg.is_empty() {
        return Err(bad("empty message"));
    }
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(bad("message too long"));
    }
    let mut out = Vec::new();
    let mut rest = msg;
    while !rest.is_empty() {
        let [kind, major, minor, hi, lo, tail @ ..] = rest else {
            return Err(bad("truncated TLS record header"));
        };
        if !matches!(*kind, RECORD_CHANGE_CIPHER_SPEC | RECORD_HANDSHAKE) {
            return Err(bad(
                "not a TLS handshake or ChangeCipherSpec record (no alerts or application data)",
            ));
        }
        if *major != 3 || !(1..=3).contains(minor) {
            return Err(bad("not a TLS 1.x record"));
        }
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if len == 0 || len > MAX_RECORD_BODY {
            return Err(bad("TLS record length out of range"));
        }
        let (Some(body), Some(next)) = (tail.get(..len), tail.get(len..)) else {
            return Err(bad("truncated TLS record"));
        };
        out.push((*kind, body));
        rest = next;
    }
    Ok(out)
}

/// The types of the plaintext handshake messages carried by `records`, which must split exactly
/// into complete messages.
fn handshake_types(records: &[(u8, &[u8])]) -> Result<Vec<u8>, EsCertKeError> {
    let mut data = Vec::new();
    for (kind, body) in records {
        if *kind != RECORD_HANDSHAKE {
            return Err(EsCertKeError::Malformed(
                "a ChangeCipherSpec out of place".into(),
            ));
        }
        data.extend_from_slice(body);
    }
    let mut types = Vec::new();
    let mut rest = data.as_slice();
    while !rest.is_empty() {
        let [t, a, b, c, tail @ ..] = rest else {
            return Err(EsCertKeError::Malformed(
                "truncated handshake message".into(),
            ));
        };
        let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
        let Some(next) = tail.get(len..) else {
            return Err(EsCertKeError::Malformed(
                "incomplete handshake message".into(),
            ));
        };
        types.push(*t);
        rest = next;
    }
    Ok(types)
}

/// Checks that `msg` is exactly one flight of `kind` (Table 8.7.2.2-1): complete TLS records,
/// complete handshake messages, the flight's first and last messages in place and nothing after
/// them. OpenSSL then checks everything else.
fn check_flight(msg: &[u8], kind: FlightKind) -> Result<(), EsCertKeError> {
    let recs = records(msg)?;
    let wrong = |what: &str| Err(EsCertKeError::Malformed(format!("not message {what}")));
    let ccs_then_finished = |tail: &[(u8, &[u8])]| {
        matches!(
            tail,
            [(RECORD_CHANGE_CIPHER_SPEC, [1]), (RECORD_HANDSHAKE, _)]
        )
    };
    match kind {
        FlightKind::ClientHello => {
            if handshake_types(&recs)? != [HANDSHAKE_CLIENT_HELLO] {
                return wrong("1 (one ClientHello)");
            }
        }
        FlightKind::ServerHello => {
            let types = handshake_types(&recs)?;
            if types.first() != Some(&HANDSHAKE_SERVER_HELLO)
                || types.last() != Some(&HANDSHAKE_SERVER_HELLO_DONE)
            {
                return wrong("2 (ServerHello … ServerHelloDone)");
            }
        }
        FlightKind::ClientFinished => {
            let split = recs.len().saturating_sub(2);
            let (head, tail) = recs.split_at(split);
            if head.is_empty()
                || !ccs_then_finished(tail)
                || handshake_types(head)?.first() != Some(&HANDSHAKE_CERTIFICATE)
            {
                return wrong(
                    "3 (Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec, \
                     Finished)",
                );
            }
        }
        FlightKind::ServerFinished => {
            if !ccs_then_finished(&recs) {
                return wrong("4 (ChangeCipherSpec, Finished)");
            }
        }
    }
    Ok(())
}

/// Where an end-point is in the procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Initiator: before message 1. Terminator: before message 1 arrived.
    New,
    /// Initiator: message 1 sent. Terminator: message 2 sent.
    FirstFlight,
    /// Initiator: message 3 sent.
    SecondFlight,
    /// Finished or failed: no further step.
    Over,
}

/// One end of the TLS session over [`Flight`]s.
struct Engine {
    stream: SslStream<Flight>,
    slot: PeerSlot,
    rules: Arc<IdentityRules>,
    step: Step,
}

impl Engine {
    fn new(
        ctx: &SslContext,
        rules: &Arc<IdentityRules>,
        expected: ExpectedPeer,
        server: bool,
    ) -> Result<Self, EsCertKeError> {
        let mut ssl = Ssl::new(ctx)?;
        let slot: PeerSlot = Arc::default();
        let cb_slot = Arc::clone(&slot);
        let cb_rules = Arc::clone(rules);
        let mode = if server {
            // TS-0003 §8.7.2.2 / Table 8.7.2.2-1: CertificateRequest is sent and a client
            // certificate is mandatory.
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
        } else {
            SslVerifyMode::PEER
        };
        ssl.set_verify_callback(mode, move |ok, x509| {
            if !ok || x509.error_depth() != 0 {
                return ok;
            }
            let Some(leaf) = x509.current_cert() else {
                return false;
            };
            // §8.1.2.5: the identity in subjectAltName, then the expected one.
            let identity = cb_rules.certificate_identity(leaf);
            let check = match (&identity.binding, &expected) {
                (Some(Binding::Cse(id) | Binding::Ae(id)), ExpectedPeer::Identity(want))
                    if id != want =>
                {
                    PeerCheck::Unexpected {
                        expected: want.clone(),
                        found: id.clone(),
                    }
                }
                (Some(Binding::Cse(_) | Binding::Ae(_)), _) => PeerCheck::Accepted(identity),
                _ => PeerCheck::Unnamed(identity.credential_id),
            };
            let accept = matches!(check, PeerCheck::Accepted(_));
            if !accept {
                x509.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
            }
            *cb_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(check);
            accept
        });
        if server {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        Ok(Self {
            stream: SslStream::new(ssl, Flight::default())?,
            slot,
            rules: Arc::clone(rules),
            step: Step::New,
        })
    }

    /// Feeds one message of the given flight (none for the ClientHello) and runs the handshake
    /// until it waits for the peer (`done` false) or completes (`done` true); returns what
    /// OpenSSL wrote.
    fn run(
        &mut self,
        input: Option<(&[u8], FlightKind)>,
        done: bool,
    ) -> Result<Vec<u8>, EsCertKeError> {
        let result = self.run_inner(input, done);
        if result.is_err() {
            self.step = Step::Over;
        }
        result
    }

    fn run_inner(
        &mut self,
        input: Option<(&[u8], FlightKind)>,
        done: bool,
    ) -> Result<Vec<u8>, EsCertKeError> {
        if let Some((msg, kind)) = input {
            check_flight(msg, kind)?;
        }
        {
            let flight = self.stream.get_mut();
            flight.incoming = input.map(|(m, _)| m.to_vec()).unwrap_or_default();
            flight.read = 0;
            flight.outgoing.clear();
        }
        let result = self.stream.do_handshake();
        let consumed = {
            let f = self.stream.get_ref();
            f.read == f.incoming.len()
        };
        match result {
            Ok(()) if done => {
                if !consumed {
                    return Err(EsCertKeError::Malformed(
                        "data after the last flight".into(),
                    ));
                }
                if self.stream.ssl().version2() != Some(SslVersion::TLS1_2) {
                    return Err(EsCertKeError::Malformed("not TLS 1.2".into()));
                }
            }
            Ok(()) => {
                return Err(EsCertKeError::Malformed(
                    "the handshake completed before the last flight".into(),
                ));
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                if done || self.stream.get_ref().outgoing.is_empty() {
                    return Err(EsCertKeError::Malformed("incomplete flight".into()));
                }
                if !consumed {
                    return Err(EsCertKeError::Malformed("data after the flight".into()));
                }
            }
            Err(e) => return Err(self.failure(&e)),
        }
        Ok(std::mem::take(&mut self.stream.get_mut().outgoing))
    }

    fn failure(&self, e: &openssl::ssl::Error) -> EsCertKeError {
        let check = self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match check {
            Some(PeerCheck::Unexpected { expected, found }) => {
                EsCertKeError::UnexpectedPeer { expected, found }
            }
            Some(PeerCheck::Unnamed(id)) => EsCertKeError::UnnamedPeer(id),
            _ => EsCertKeError::Handshake(classify(e, self.stream.ssl(), false)),
        }
    }

    /// C.2: the exported key and the peer the handshake authenticated.
    fn outcome(&mut self) -> Result<Outcome, EsCertKeError> {
        self.step = Step::Over;
        let check = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let ssl = self.stream.ssl();
        let (Some(PeerCheck::Accepted(identity)), Some(cert)) = (check, ssl.peer_certificate())
        else {
            return Err(EsCertKeError::Handshake(HandshakeError::NoClientCredential));
        };
        let Some(peer) = identity.binding else {
            return Err(EsCertKeError::UnnamedPeer(identity.credential_id));
        };
        let exported = export_keying_material(ssl, LABEL_ESCERTKE)
            .map_err(EsCertKeError::Export)?
            .split();
        Ok(Outcome {
            key_id: exported.id,
            key: exported.key,
            peer,
            peer_credential_id: identity.credential_id,
            peer_certificate_der: cert.to_der()?,
            cipher: ssl
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
            sp_domain: self.rules.sp_domain().to_string(),
        })
    }
}

/// The ESCertKE Initiating End-Point (the TLS client).
pub struct Initiator {
    engine: Engine,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("step", &self.engine.step)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// An Initiator that accepts only a Terminator whose certificate names `expected`
    /// (§8.7.2.2 B: the Terminating End-Point's identity and certificate information).
    pub fn new(ctx: &InitiatorContext, expected: ExpectedPeer) -> Result<Self, EsCertKeError> {
        Ok(Self {
            engine: Engine::new(&ctx.ctx, &ctx.rules, expected, false)?,
        })
    }

    /// C.1a: ESCertKE Message 1 (ClientHello).
    pub fn start(&mut self) -> Result<Vec<u8>, EsCertKeError> {
        if self.engine.step != Step::New {
            return Err(EsCertKeError::OutOfOrder("message 1 was already produced"));
        }
        let msg = self.engine.run(None, false)?;
        self.engine.step = Step::FirstFlight;
        Ok(msg)
    }

    /// C.1e: processes message 2 (the Terminator's certificate is verified here) and produces
    /// message 3.
    pub fn finish(&mut self, msg2: &[u8]) -> Result<Vec<u8>, EsCertKeError> {
        if self.engine.step != Step::FirstFlight {
            return Err(EsCertKeError::OutOfOrder(
                "message 2 is expected after message 1",
            ));
        }
        let msg = self
            .engine
            .run(Some((msg2, FlightKind::ServerHello)), false)?;
        self.engine.step = Step::SecondFlight;
        Ok(msg)
    }

    /// C.1i and C.2: processes message 4 (the Terminator's Finished) and exports the key.
    pub fn confirm(mut self, msg4: &[u8]) -> Result<Outcome, EsCertKeError> {
        if self.engine.step != Step::SecondFlight {
            return Err(EsCertKeError::OutOfOrder(
                "message 4 is expected after message 3",
            ));
        }
        self.engine
            .run(Some((msg4, FlightKind::ServerFinished)), true)?;
        self.engine.outcome()
    }
}

/// The ESCertKE Terminating End-Point (the TLS server).
pub struct Terminator {
    engine: Engine,
}

impl fmt::Debug for Terminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminator")
            .field("step", &self.engine.step)
            .finish_non_exhaustive()
    }
}

impl Terminator {
    /// A Terminator that accepts only an Initiator whose certificate names `expected`
    /// (§8.7.2.2 B: the Initiating End-Point's certificate information).
    pub fn new(ctx: &TerminatorContext, expected: ExpectedPeer) -> Result<Self, EsCertKeError> {
        Ok(Self {
            engine: Engine::new(&ctx.ctx, &ctx.rules, expected, true)?,
        })
    }

    /// C.1c: processes message 1 and produces message 2.
    pub fn respond(&mut self, msg1: &[u8]) -> Result<Vec<u8>, EsCertKeError> {
        if self.engine.step != Step::New {
            return Err(EsCertKeError::OutOfOrder("message 1 was already processed"));
        }
        if !is_first_message(msg1) {
            self.engine.step = Step::Over;
            return Err(EsCertKeError::Malformed(
                "message 1 must start with a ClientHello".into(),
            ));
        }
        let msg = self
            .engine
            .run(Some((msg1, FlightKind::ClientHello)), false)?;
        self.engine.step = Step::FirstFlight;
        Ok(msg)
    }

    /// C.1g and C.2: processes message 3 (the Initiator's certificate is verified here),
    /// produces message 4 and exports the key.
    pub fn finish(mut self, msg3: &[u8]) -> Result<(Vec<u8>, Outcome), EsCertKeError> {
        if self.engine.step != Step::FirstFlight {
            return Err(EsCertKeError::OutOfOrder(
                "message 3 is expected after message 2",
            ));
        }
        let msg = self
            .engine
            .run(Some((msg3, FlightKind::ClientFinished)), true)?;
        let outcome = self.engine.outcome()?;
        Ok((msg, outcome))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use m2mtrust_crypto::{CertProfile, DevCa};

    const SP: &str = "m2mtrust.example";

    fn cse_id(s: &str) -> CseId {
        CseId::parse(s).unwrap()
    }

    fn rules() -> IdentityRules {
        IdentityRules::new(SP, cse_id("/id-in"), cse_id("/id-in")).unwrap()
    }

    fn certified(ca: &DevCa, profile: CertProfile) -> CertifiedKey {
        let issued = ca.issue(&profile, 1).unwrap();
        CertifiedKey::from_pem(
            issued.chain_pem.as_bytes(),
            issued.key_pem.expose_pem().as_bytes(),
        )
        .unwrap()
    }

    fn cse_cert(ca: &DevCa) -> CertifiedKey {
        certified(
            ca,
            CertProfile::CseId {
                cse_id: "/id-in".into(),
                in_cse_id: "/id-in".into(),
                sp_domain: SP.into(),
            },
        )
    }

    fn ae_cert(ca: &DevCa, ae: &str, registrar: &str) -> CertifiedKey {
        certified(
            ca,
            CertProfile::AeId {
                ae_id: ae.into(),
                cse_id: registrar.into(),
                sp_domain: SP.into(),
            },
        )
    }

    fn anchors(ca: &DevCa) -> TrustAnchors {
        TrustAnchors::from_pem(ca.cert_pem().as_bytes()).unwrap()
    }

    struct Pair {
        initiator: Initiator,
        terminator: Terminator,
    }

    fn pair(
        ae: CertifiedKey,
        ae_trust: TrustAnchors,
        cse: CertifiedKey,
        cse_trust: TrustAnchors,
        ae_expects: ExpectedPeer,
        cse_expects: ExpectedPeer,
    ) -> Pair {
        let i_rules = initiator_rules(&ae, &cse_id("/id-in")).unwrap();
        let ictx = InitiatorContext::new(&EsCertKeConfig::new(ae, ae_trust, i_rules)).unwrap();
        let tctx = TerminatorContext::new(&EsCertKeConfig::new(cse, cse_trust, rules())).unwrap();
        Pair {
            initiator: Initiator::new(&ictx, ae_expects).unwrap(),
            terminator: Terminator::new(&tctx, cse_expects).unwrap(),
        }
    }

    fn default_pair(ca: &DevCa) -> Pair {
        pair(
            ae_cert(ca, "Cae1", "/id-in"),
            anchors(ca),
            cse_cert(ca),
            anchors(ca),
            ExpectedPeer::Identity("/id-in".into()),
            ExpectedPeer::Identity("Cae1".into()),
        )
    }

    #[test]
    fn full_exchange_exports_the_same_key() {
        let ca = DevCa::generate(SP).unwrap();
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let m1 = initiator.start().unwrap();
        assert!(is_first_message(&m1));
        let m2 = terminator.respond(&m1).unwrap();
        let m3 = initiator.finish(&m2).unwrap();
        assert!(!is_first_message(&m3));
        let (m4, at_terminator) = terminator.finish(&m3).unwrap();
        let at_initiator = initiator.confirm(&m4).unwrap();
        assert_eq!(at_initiator.key_id, at_terminator.key_id);
        assert_eq!(
            at_initiator.key.expose_secret(),
            at_terminator.key.expose_secret()
        );
        assert_eq!(at_initiator.peer, Binding::Cse("/id-in".into()));
        assert_eq!(at_initiator.peer_credential_id, "32-/id-in");
        assert_eq!(at_terminator.peer, Binding::Ae("Cae1".into()));
        assert_eq!(at_terminator.peer_credential_id, "33-/id-in/Cae1");
        assert_eq!(at_initiator.esprim_kid(), at_terminator.esprim_kid());
        let kid = at_terminator.esprim_kid();
        assert!(kid.ends_with("@m2mtrust.example"), "{kid}");
        assert_eq!(kid.split('@').next().unwrap().len(), 32);
        m2mtrust_crypto::KpsaId::parse(&kid).unwrap();
        assert_eq!(at_terminator.cipher, "ECDHE-ECDSA-AES128-SHA256");
        assert!(!format!("{at_terminator:?}").contains(&format!("{:?}", at_terminator.key_id)));
    }

    #[test]
    fn gcm_suite_and_remote_ae_identity() {
        let ca = DevCa::generate(SP).unwrap();
        let ae = ae_cert(&ca, "Cae1", "/id-mn");
        let i_rules = initiator_rules(&ae, &cse_id("/id-in")).unwrap();
        let mut config = EsCertKeConfig::new(ae, anchors(&ca), i_rules);
        config.ciphers = vec!["ECDHE-ECDSA-AES128-GCM-SHA256".into()];
        let ictx = InitiatorContext::new(&config).unwrap();
        let tctx =
            TerminatorContext::new(&EsCertKeConfig::new(cse_cert(&ca), anchors(&ca), rules()))
                .unwrap();
        let mut i = Initiator::new(&ictx, ExpectedPeer::AnyNamed).unwrap();
        let mut t = Terminator::new(&tctx, ExpectedPeer::AnyNamed).unwrap();
        let m2 = t.respond(&i.start().unwrap()).unwrap();
        let (m4, out) = t.finish(&i.finish(&m2).unwrap()).unwrap();
        let back = i.confirm(&m4).unwrap();
        assert_eq!(out.peer_id(), "/id-mn/Cae1");
        assert_eq!(back.peer_id(), "/id-in");
        assert_eq!(out.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
        assert_eq!(out.key_id, back.key_id);
    }

    #[test]
    fn terminator_refuses_an_untrusted_initiator() {
        let ca = DevCa::generate(SP).unwrap();
        let other = DevCa::generate(SP).unwrap();
        let Pair {
            mut initiator,
            mut terminator,
        } = pair(
            ae_cert(&other, "Cae1", "/id-in"),
            anchors(&ca),
            cse_cert(&ca),
            anchors(&ca),
            ExpectedPeer::Identity("/id-in".into()),
            ExpectedPeer::AnyNamed,
        );
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let m3 = initiator.finish(&m2).unwrap();
        let err = terminator.finish(&m3).unwrap_err();
        assert!(err.is_authentication_failure(), "{err}");
        assert_eq!(err.reason(), "certificate_untrusted", "{err}");
    }

    #[test]
    fn initiator_refuses_an_untrusted_terminator() {
        let ca = DevCa::generate(SP).unwrap();
        let other = DevCa::generate(SP).unwrap();
        let Pair {
            mut initiator,
            mut terminator,
        } = pair(
            ae_cert(&ca, "Cae1", "/id-in"),
            anchors(&ca),
            cse_cert(&other),
            anchors(&ca),
            ExpectedPeer::Identity("/id-in".into()),
            ExpectedPeer::AnyNamed,
        );
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let err = initiator.finish(&m2).unwrap_err();
        assert!(err.is_authentication_failure(), "{err}");
        // A failed end-point takes no further step.
        assert!(matches!(
            initiator.finish(&m2),
            Err(EsCertKeError::OutOfOrder(_))
        ));
    }

    #[test]
    fn wrong_expected_identity_is_refused() {
        let ca = DevCa::generate(SP).unwrap();
        // The Terminator expects Cae2.
        let Pair {
            mut initiator,
            mut terminator,
        } = pair(
            ae_cert(&ca, "Cae1", "/id-in"),
            anchors(&ca),
            cse_cert(&ca),
            anchors(&ca),
            ExpectedPeer::Identity("/id-in".into()),
            ExpectedPeer::Identity("Cae2".into()),
        );
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let m3 = initiator.finish(&m2).unwrap();
        match terminator.finish(&m3) {
            Err(EsCertKeError::UnexpectedPeer { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), ("Cae2", "Cae1"));
            }
            other => panic!("{other:?}"),
        }
        // The Initiator expects another CSE.
        let Pair {
            mut initiator,
            mut terminator,
        } = pair(
            ae_cert(&ca, "Cae1", "/id-in"),
            anchors(&ca),
            cse_cert(&ca),
            anchors(&ca),
            ExpectedPeer::Identity("/id-mn".into()),
            ExpectedPeer::AnyNamed,
        );
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let err = initiator.finish(&m2).unwrap_err();
        assert!(
            matches!(err, EsCertKeError::UnexpectedPeer { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn certificate_without_onem2m_identity_is_refused() {
        let ca = DevCa::generate(SP).unwrap();
        let Pair {
            mut initiator,
            mut terminator,
        } = pair(
            ae_cert(&ca, "Cae1", "/id-in"),
            anchors(&ca),
            certified(&ca, CertProfile::Fqdn("host.example.org".into())),
            anchors(&ca),
            ExpectedPeer::AnyNamed,
            ExpectedPeer::AnyNamed,
        );
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let err = initiator.finish(&m2).unwrap_err();
        assert_eq!(err.reason(), "unnamed_peer", "{err:?}");
    }

    #[test]
    fn tampered_message_3_is_refused() {
        let ca = DevCa::generate(SP).unwrap();
        for offset_from_end in [1usize, 20, 60] {
            let Pair {
                mut initiator,
                mut terminator,
            } = default_pair(&ca);
            let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
            let mut m3 = initiator.finish(&m2).unwrap();
            let at = m3.len() - offset_from_end;
            m3[at] ^= 0x01;
            let err = terminator.finish(&m3).unwrap_err();
            assert!(
                err.is_authentication_failure(),
                "{offset_from_end}: {err:?}"
            );
        }
        // A changed CertificateVerify signature (the last byte before ChangeCipherSpec and the
        // Finished record).
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let mut m3 = initiator.finish(&m2).unwrap();
        let recs = records(&m3).unwrap();
        let tail = 6 + 5 + recs.last().unwrap().1.len();
        let at = m3.len() - tail - 1;
        m3[at] ^= 0x01;
        let err = terminator.finish(&m3).unwrap_err();
        assert!(err.is_authentication_failure(), "{err:?}");
        // A tampered message 2 fails at the Initiator.
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let mut m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let at = m2.len() / 2;
        m2[at] ^= 0x01;
        assert!(initiator.finish(&m2).is_err());
    }

    #[test]
    fn garbage_and_wrong_flights_are_errors() {
        let ca = DevCa::generate(SP).unwrap();
        let garbage: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![22, 3, 3, 0, 5, 1, 0, 0],
            vec![22, 3, 3, 0, 4, 1, 0, 0, 9],
            vec![23, 3, 3, 0, 1, 0],
            vec![22, 3, 3, 0, 0],
            vec![0u8; 40_000],
            [22, 3, 3, 0, 3, 1, 0, 0].repeat(3),
        ];
        for g in &garbage {
            let Pair {
                mut initiator,
                mut terminator,
            } = default_pair(&ca);
            assert!(terminator.respond(g).is_err(), "{g:?}");
            let _ = initiator.start().unwrap();
            assert!(initiator.finish(g).is_err(), "{g:?}");
        }
        // Message 1 where message 3 belongs, and message 3 where message 1 belongs.
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let m1 = initiator.start().unwrap();
        let m2 = terminator.respond(&m1).unwrap();
        let m3 = initiator.finish(&m2).unwrap();
        assert!(terminator.finish(&m1).is_err());
        let Pair {
            initiator: _,
            mut terminator,
        } = default_pair(&ca);
        assert!(terminator.respond(&m3).is_err());
        // Message 2 twice, and trailing bytes after a flight.
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let m1 = initiator.start().unwrap();
        assert!(matches!(
            initiator.start(),
            Err(EsCertKeError::OutOfOrder(_))
        ));
        let mut m2 = terminator.respond(&m1).unwrap();
        assert!(matches!(
            terminator.respond(&m1),
            Err(EsCertKeError::OutOfOrder(_))
        ));
        m2.extend_from_slice(&[22, 3, 3, 0, 1, 0]);
        assert!(initiator.finish(&m2).is_err());
    }

    #[test]
    fn trailing_records_after_the_last_flight_are_refused() {
        let ca = DevCa::generate(SP).unwrap();
        let Pair {
            mut initiator,
            mut terminator,
        } = default_pair(&ca);
        let m2 = terminator.respond(&initiator.start().unwrap()).unwrap();
        let m3 = initiator.finish(&m2).unwrap();
        let (mut m4, _) = terminator.finish(&m3).unwrap();
        let copy = m4.clone();
        m4.extend_from_slice(&copy);
        assert!(initiator.confirm(&m4).is_err());
    }

    #[test]
    fn tls13_only_client_hello_is_refused() {
        let ca = DevCa::generate(SP).unwrap();
        let mut b = openssl::ssl::SslContextBuilder::new(SslMethod::tls_client()).unwrap();
        b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
        let ssl = Ssl::new(&b.build()).unwrap();
        let mut stream = SslStream::new(ssl, Flight::default()).unwrap();
        assert!(stream.connect().is_err());
        let hello = std::mem::take(&mut stream.get_mut().outgoing);
        assert!(is_first_message(&hello));
        let Pair {
            initiator: _,
            mut terminator,
        } = default_pair(&ca);
        let err = terminator.respond(&hello).unwrap_err();
        assert!(matches!(err, EsCertKeError::Handshake(_)), "{err:?}");
        assert!(err.is_unsupported(), "{err:?}");
    }

    #[test]
    fn initiator_rules_from_own_certificate() {
        let ca = DevCa::generate(SP).unwrap();
        let r = initiator_rules(&ae_cert(&ca, "Cae1", "/id-mn"), &cse_id("/id-in")).unwrap();
        assert_eq!(r.sp_domain(), SP);
        let mn = certified(
            &ca,
            CertProfile::CseId {
                cse_id: "/id-mn".into(),
                in_cse_id: "/id-in".into(),
                sp_domain: SP.into(),
            },
        );
        assert_eq!(
            initiator_rules(&mn, &cse_id("/id-in")).unwrap().sp_domain(),
            SP
        );
        let fqdn = certified(&ca, CertProfile::dev_server(&["a.example"], None));
        assert!(initiator_rules(&fqdn, &cse_id("/id-in")).is_err());
        assert_eq!(
            esprim_kid(&[0xab; 16], "//m2mtrust.example"),
            format!("{}@m2mtrust.example", "ab".repeat(16))
        );
    }
}
