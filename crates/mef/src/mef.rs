//! The MEF side of the bootstrap handshake (TS-0003 §8.3.2.1 / §8.3.2.2).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use m2mtrust_channel::{
    Binding, CertifiedKey, CredentialKind, Credentials, DEFAULT_CIPHERS, HandshakeError,
    IdentityRules, KpsaId, PskCredential, ServerConfig, TlsAcceptor, TlsStream, TrustAnchors,
};
use m2mtrust_crypto::{CredentialTypeId, Fqdn, SecretKey};
use tokio::net::TcpStream;

use m2mtrust_channel::{LABEL_CONNECTION, export_keying_material};
use m2mtrust_crypto::kdf::split_exporter_output;

use crate::enrollees::{Assignment, Enrollee, Enrollees};
use crate::error::BootstrapError;
use crate::wire::Session;

/// What a successful bootstrap established at the MEF (TS-0003 §8.3.2.1 Enrolment Key
/// Generation step 3: "Both store Ke, KeID").
#[derive(Debug)]
pub struct Enrolment {
    /// The enrolee's Credential-ID (`10-<KpmID>` for the PPSK RSPF, the certificate's
    /// Credential-ID for the certificate RSPF).
    pub enrolee: String,
    /// Ke, 32 bytes (zeroized on drop, redacted in `Debug`).
    pub ke: SecretKey,
    /// KeID = `hexBinary(RelativeKeID)@MEF-FQDN` (§10.3.4).
    pub ke_id: KpsaId,
    /// What the enrolee will be assigned.
    pub assignment: Assignment,
    /// Enrolment Expiry (lifetime of Ke, §10.7).
    pub expires: DateTime<Utc>,
}

/// What the MEF Handshake established on one connection.
#[derive(Debug)]
pub struct Accepted {
    /// The authenticated MEF client.
    pub session: Session,
    /// Present when the client is an enrolee: its Ke, KeID and assignment.
    pub enrolment: Option<Enrolment>,
}

/// Adapts [`Enrollees`] to the channel's credential lookup: KpmIDs are looked up as PSK
/// identities, and certificates without a CSE-ID/AE-ID are mapped by Credential-ID. Expired
/// enrolments are refused inside the handshake.
struct EnrolleeCredentials(Arc<dyn Enrollees>);

impl Credentials for EnrolleeCredentials {
    fn psk(&self, kpm_id: &KpsaId) -> Option<PskCredential> {
        let e = self.0.kpm(kpm_id)?;
        if e.is_expired(Utc::now()) {
            return None;
        }
        Some(PskCredential {
            key: e.kpm?,
            bound: e.assignment.binding(),
        })
    }

    fn certificate(&self, credential_id: &str) -> Option<Binding> {
        let e = self.0.by_certificate(credential_id)?;
        if e.is_expired(Utc::now()) {
            return None;
        }
        Some(e.assignment.binding())
    }
}

/// The MEF end of the bootstrap handshake: one acceptor for PPSK and certificate enrolees.
pub struct Bootstrap {
    acceptor: TlsAcceptor,
    fqdn: Fqdn,
    enrollees: Arc<dyn Enrollees>,
    maf: bool,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("fqdn", &self.fqdn)
            .field("acceptor", &self.acceptor)
            .finish_non_exhaustive()
    }
}

impl Bootstrap {
    /// The MEF named `fqdn`, presenting `certificate` (an FQDN certificate, §10.1.1.6), accepting
    /// PPSK enrolees and, when `device_trust` is given, certificate enrolees whose chain ends in
    /// it. `identity` says how CSE-ID/AE-ID certificates are read.
    pub fn new(
        fqdn: Fqdn,
        certificate: CertifiedKey,
        device_trust: Option<TrustAnchors>,
        identity: IdentityRules,
        enrollees: Arc<dyn Enrollees>,
    ) -> Result<Self, BootstrapError> {
        Self::with_timeout(
            fqdn,
            certificate,
            device_trust,
            identity,
            enrollees,
            m2mtrust_channel::DEFAULT_HANDSHAKE_TIMEOUT,
        )
    }

    /// As [`Bootstrap::new`], with a handshake deadline.
    pub fn with_timeout(
        fqdn: Fqdn,
        certificate: CertifiedKey,
        device_trust: Option<TrustAnchors>,
        identity: IdentityRules,
        enrollees: Arc<dyn Enrollees>,
        handshake_timeout: Duration,
    ) -> Result<Self, BootstrapError> {
        let config = ServerConfig {
            identity,
            certificate: Some(certificate),
            sni_certificates: Vec::new(),
            client_trust: device_trust,
            ciphers: DEFAULT_CIPHERS.iter().map(|s| s.to_string()).collect(),
            psk_identity_hint: None,
            handshake_timeout,
        };
        let creds = Arc::new(EnrolleeCredentials(Arc::clone(&enrollees)));
        Ok(Self {
            acceptor: TlsAcceptor::new(config, creds)?,
            fqdn,
            enrollees,
            maf: false,
        })
    }

    /// The same handshake for a MAF (TS-0003 §8.8.2.2): PSK clients are named by KmID
    /// (Credential-ID `11-<KmID>`), and a client whose key is bound to one CSE-ID or AE-ID is
    /// known by it (the "MAF Client ID" that targets bind the security association to).
    pub fn for_maf(mut self) -> Self {
        self.maf = true;
        self
    }

    /// The MEF's FQDN (the issuer part of every KeID).
    pub fn fqdn(&self) -> &Fqdn {
        &self.fqdn
    }

    /// Runs the Bootstrap Security Handshake on an accepted connection, refuses unknown and
    /// expired enrolees, and derives Ke and KeID (Enrolment Key Generation). On error nothing is
    /// kept and the connection is closed.
    pub async fn accept(&self, tcp: TcpStream) -> Result<(TlsStream, Enrolment), BootstrapError> {
        let (stream, accepted) = self.accept_any(tcp).await?;
        match accepted.enrolment {
            Some(e) => Ok((stream, e)),
            None => Err(BootstrapError::UnknownCertificate(
                accepted.session.credential_id,
            )),
        }
    }

    /// The MEF Handshake of any MEF client (TS-0003 §8.3.5.2.2): an enrolee (factory PSK or a
    /// registered certificate), which also gets Ke/KeID, or an entity holding a CSE-ID/AE-ID
    /// certificate from the MEF's trust anchors (an enrolment target fetching keys, a MEF
    /// client registering). PSK clients must be enrolees; device certificates must be
    /// registered.
    pub async fn accept_any(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream, Accepted), BootstrapError> {
        let peer = tcp
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "-".into());
        let result = self.run(tcp).await;
        match &result {
            Ok((
                _,
                Accepted {
                    enrolment: Some(e), ..
                },
            )) => tracing::info!(
                target: "audit",
                event = "enrolment_bootstrapped",
                peer = %peer,
                enrolee = %e.enrolee,
                ke_id = %e.ke_id,
                assignment = ?e.assignment,
                expires = %e.expires,
            ),
            Ok((_, Accepted { session, .. })) => tracing::info!(
                target: "audit",
                event = "mef_client_authenticated",
                peer = %peer,
                client = %session.client_id,
            ),
            Err(err) => tracing::warn!(
                target: "audit",
                event = "enrolment_refused",
                peer = %peer,
                reason = err.reason(),
                detail = %err,
            ),
        }
        result
    }

    async fn run(&self, tcp: TcpStream) -> Result<(TlsStream, Accepted), BootstrapError> {
        let (stream, est) = match self.acceptor.accept(tcp).await {
            Ok(ok) => ok,
            Err(e) => return Err(self.explain(e)),
        };
        let now = Utc::now();
        let (enrolee, found) = match (est.kind, &est.kpsa_id) {
            (CredentialKind::Psk, Some(kpm_id)) => (
                format!(
                    "{}-{kpm_id}",
                    if self.maf {
                        CredentialTypeId::KM_ID
                    } else {
                        CredentialTypeId::KPM_ID
                    }
                ),
                self.enrollees.kpm(kpm_id),
            ),
            (CredentialKind::Psk, None) => return Err(BootstrapError::NoCredential),
            (CredentialKind::Certificate, _) => (
                est.credential_id.clone(),
                self.enrollees.by_certificate(&est.credential_id),
            ),
        };
        let connection_export = export_keying_material(stream.ssl(), LABEL_CONNECTION)
            .ok()
            .map(|km| {
                let (id, key) = split_exporter_output(km.expose_secret());
                (id, key)
            });
        // Looked up again after the handshake: the enrolee may have been removed meanwhile, and
        // CSE-ID/AE-ID certificates are accepted by the channel without consulting the map.
        let Some(Enrollee {
            assignment,
            expires,
            ..
        }) = found
        else {
            return match (est.kind, &est.binding) {
                // A CSE-ID/AE-ID certificate from the trust anchors: a MEF client that is not
                // an enrolee (e.g. an enrolment target fetching credentials).
                (CredentialKind::Certificate, Binding::Cse(id) | Binding::Ae(id)) => {
                    let session = Session {
                        client_id: id.clone(),
                        credential_id: est.credential_id.clone(),
                        bound_ids: est.binding.bound_ids(),
                        certificate_authenticated: true,
                        connection_export,
                        remote_key_id: None,
                    };
                    Ok((
                        stream,
                        Accepted {
                            session,
                            enrolment: None,
                        },
                    ))
                }
                (CredentialKind::Psk, _) => Err(BootstrapError::UnknownKpmId(enrolee)),
                (CredentialKind::Certificate, _) => {
                    Err(BootstrapError::UnknownCertificate(enrolee))
                }
            };
        };
        if now >= expires {
            return Err(BootstrapError::Expired {
                enrolee,
                expired: expires,
            });
        }
        let (ke, ke_id) = crate::enrolment_key(&stream, &self.fqdn)?;
        let bound_ids = match &assignment {
            Assignment::CseId(c) => vec![c.clone()],
            Assignment::AeIds(ids) => ids.clone(),
        };
        let remote_key_id = match (&est.kpsa_id, est.kind) {
            (Some(id), CredentialKind::Psk) if self.enrollees.is_remote(id) => Some(id.to_string()),
            _ => None,
        };
        let session = Session {
            client_id: match (est.kind, &est.binding, bound_ids.as_slice()) {
                (CredentialKind::Certificate, Binding::Cse(id) | Binding::Ae(id), _) => id.clone(),
                (CredentialKind::Psk, _, [one]) if self.maf => one.clone(),
                _ => enrolee.clone(),
            },
            credential_id: enrolee.clone(),
            bound_ids,
            certificate_authenticated: est.kind == CredentialKind::Certificate,
            connection_export,
            remote_key_id,
        };
        Ok((
            stream,
            Accepted {
                session,
                enrolment: Some(Enrolment {
                    enrolee,
                    ke,
                    ke_id,
                    assignment,
                    expires,
                }),
            },
        ))
    }

    /// Turns a refusal inside the handshake into the bootstrap reason, telling an expired
    /// enrolment apart from an unknown one.
    fn explain(&self, e: HandshakeError) -> BootstrapError {
        let now = Utc::now();
        match &e {
            HandshakeError::UnknownIdentity(id) => {
                let expired = KpsaId::parse(id)
                    .ok()
                    .and_then(|k| self.enrollees.kpm(&k))
                    .filter(|en| en.kpm.is_some() && en.is_expired(now));
                if let Some(en) = expired {
                    return BootstrapError::Expired {
                        enrolee: format!("{}-{id}", CredentialTypeId::KPM_ID),
                        expired: en.expires,
                    };
                }
            }
            HandshakeError::UnknownCertificate(id) => {
                if let Some(en) = self
                    .enrollees
                    .by_certificate(id)
                    .filter(|en| en.is_expired(now))
                {
                    return BootstrapError::Expired {
                        enrolee: id.clone(),
                        expired: en.expires,
                    };
                }
            }
            _ => {}
        }
        BootstrapError::from_handshake(e)
    }
}
