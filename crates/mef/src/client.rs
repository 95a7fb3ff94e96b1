//! The MEF client (enrolee) side over the MEF's TLS session: the Enrolment Exchange, EST and
//! any MEF procedure request (`docs/mef.md`).

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use m2mtrust_channel::{KpsaId, TrustAnchors};
use m2mtrust_crypto::{CertProfile, Fqdn, PrivateKeyPem, SecretKey, kdf};
use m2mtrust_model::{Response, ResponseStatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::enrolee::{EnroleeCredential, EnroleeKeys, bootstrap};
use crate::error::BootstrapError;
use crate::est;
use crate::exchange::{
    Acknowledgement, ENROLMENT_ACK, ENROLMENT_END, ENROLMENT_INSTRUCTION, ENROLMENT_REQUEST,
    EnrolmentRequest, Instruction, InstructionType, SecurityProfile,
};
use crate::server::SUID_RSPF_SAEF;

/// Why an enrolment failed on the device side.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The bootstrap handshake failed.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The HTTP exchange on the session failed (the MEF closed it, or sent something that is
    /// not HTTP).
    #[error("MEF session: {0}")]
    Transport(String),
    /// The MEF answered with an error Response Status Code.
    #[error("the MEF refused {what}: {rsc} {message}")]
    Refused {
        /// The request refused.
        what: &'static str,
        /// Its Response Status Code.
        rsc: u16,
        /// The MEF's `m2m:dbg`.
        message: String,
    },
    /// The MEF's answer does not follow the protocol.
    #[error("unexpected MEF answer to {what}: {detail}")]
    Protocol {
        /// The request.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Certificate enrolment (EST) failed.
    #[error("certificate enrolment: {0}")]
    Est(String),
    /// A key derivation failed.
    #[error("key derivation: {0}")]
    Kdf(#[from] kdf::KdfError),
}

/// A HTTP/1.1 session with the MEF over the authenticated TLS stream.
pub struct MefConnection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    next_ri: u64,
}

impl fmt::Debug for MefConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MefConnection")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl MefConnection {
    /// Starts HTTP/1.1 on an established MEF session; `host` is the MEF's FQDN.
    pub async fn open(stream: m2mtrust_channel::TlsStream, host: &str) -> Result<Self, EnrolError> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| EnrolError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "MEF session ended");
            }
        });
        Ok(Self {
            sender,
            host: HeaderValue::from_str(host).map_err(|e| EnrolError::Transport(e.to_string()))?,
            next_ri: 1,
        })
    }

    /// Sends one request on the session (with `Host`) and reads the whole answer.
    async fn round_trip(
        &mut self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes), EnrolError> {
        req.headers_mut().insert(HOST, self.host.clone());
        self.sender
            .ready()
            .await
            .map_err(|e| EnrolError::Transport(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| EnrolError::Transport(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| EnrolError::Transport(e.to_string()))?
            .to_bytes();
        Ok((parts, body))
    }

    /// Sends one raw HTTP request and returns the status, content type and body.
    pub async fn raw(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Option<String>, Bytes), EnrolError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EnrolError::Transport(e.to_string()))?;
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let (parts, body) = self.round_trip(req).await?;
        let ct = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((parts.status, ct, body))
    }

    /// Sends a oneM2M-style request (`X-M2M-RI`, JSON body) and decodes the response primitive.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content: Option<&Value>,
    ) -> Result<Response, EnrolError> {
        let ri = self.next_ri.to_string();
        self.next_ri += 1;
        let body = match content {
            Some(v) => serde_json::to_vec(v).map_err(|e| EnrolError::Transport(e.to_string()))?,
            None => Vec::new(),
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-m2m-ri", &ri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EnrolError::Transport(e.to_string()))?;
        if content.is_some() {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let (parts, body) = self.round_trip(req).await?;
        let rsc = parts
            .headers
            .get("x-m2m-rsc")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok());
        let Some(rsc) = rsc else {
            return Err(EnrolError::Transport(
                "the response carries no X-M2M-RSC".into(),
            ));
        };
        let content = if body.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice::<Value>(&body)
                    .map_err(|e| EnrolError::Transport(format!("response body: {e}")))?,
            )
        };
        let mut r = Response::new(ResponseStatusCode(rsc), content);
        r.request_id = ri;
        Ok(r)
    }
}

/// What the enrolee asks for.
#[derive(Clone, Debug, Default)]
pub struct EnrolOptions {
    /// The M2M-Node-ID of the device (seed 001).
    pub node_id: Option<String>,
    /// Its location, informative.
    pub location: Option<String>,
    /// Prepared to enrol a certificate through EST (CertificateEnrolmentIndication).
    pub certificate: bool,
    /// Prepared for MAF enrolment (MAFEnrolmentIndication): the network address (`host:port`)
    /// of the MAF, whose FQDN the MEF names in its instruction.
    pub maf_address: Option<String>,
}

/// The master credential a MAF assigned during the Enrolment Exchange (§8.8.2.3 with a
/// remotely provisioned credential).
pub struct MafCredential {
    /// The MAF's FQDN.
    pub maf_fqdn: String,
    /// The administrating stakeholder registered with.
    pub admin_fqdn: String,
    /// The MAF Client Registration ID.
    pub registration_id: String,
    /// KmID (`assignedSymmKeyID`).
    pub km_id: KpsaId,
    /// Km: the usage-constrained key of Ke for SUID 21 and the MAF's FQDN (§10.3.7).
    pub km: SecretKey,
}

impl fmt::Debug for MafCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MafCredential")
            .field("maf_fqdn", &self.maf_fqdn)
            .field("registration_id", &self.registration_id)
            .field("km_id", &self.km_id)
            .finish_non_exhaustive()
    }
}

/// A certificate obtained through EST.
pub struct EnrolledCertificate {
    /// The certificate chain (leaf first), PEM.
    pub chain_pem: String,
    /// Its private key, generated on the device.
    pub key_pem: PrivateKeyPem,
    /// The MEF CA certificates from `/cacerts`, PEM: trust anchors for the MEF and the SP.
    pub ca_pem: String,
}

impl fmt::Debug for EnrolledCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolledCertificate")
            .field("chain_pem", &self.chain_pem)
            .finish_non_exhaustive()
    }
}

/// Everything an enrolment provisions on the device.
pub struct Enrolled {
    /// The securityProfile.
    pub profile: SecurityProfile,
    /// The usage-constrained key for the target (§10.3.7), computed locally from Ke; its
    /// identifier is `profile.key_id`.
    pub key: SecretKey,
    /// The usage-constrained key for ESPrim with the target (SUID 23, §10.3.7): the
    /// pairwiseESPrimKey, named by the same KeID; the target fetches the same key from the MEF.
    pub esprim_key: SecretKey,
    /// A certificate, when one was enrolled.
    pub certificate: Option<EnrolledCertificate>,
    /// The MAF master credential, when the device was enrolled for a MAF.
    pub maf: Option<MafCredential>,
    /// Why the MAF enrolment the MEF instructed failed (the exchange went on without it).
    pub maf_error: Option<String>,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("profile", &self.profile)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

fn refused(what: &'static str, r: &Response) -> EnrolError {
    let message = r
        .content
        .as_ref()
        .and_then(|c| c.get("m2m:dbg"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    EnrolError::Refused {
        what,
        rsc: r.status.0,
        message,
    }
}

fn body_of<'a>(what: &'static str, r: &'a Response, key: &str) -> Result<&'a Value, EnrolError> {
    r.content
        .as_ref()
        .and_then(|c| c.get(key))
        .ok_or_else(|| EnrolError::Protocol {
            what,
            detail: format!("no {key}"),
        })
}

/// Enrols with the MEF named `mef_name` over `tcp`: the bootstrap handshake, the Enrolment
/// Exchange and, when the MEF instructs it, certificate enrolment through EST on the same
/// session. Returns the securityProfile, the target key computed from Ke, and the certificate.
pub async fn enrol(
    tcp: TcpStream,
    mef_name: &str,
    credential: EnroleeCredential,
    mef_trust: Option<TrustAnchors>,
    options: &EnrolOptions,
) -> Result<Enrolled, EnrolError> {
    let (stream, EnroleeKeys { ke, ke_id }) =
        bootstrap(tcp, mef_name, credential, mef_trust).await?;
    let mut conn = MefConnection::open(stream, mef_name).await?;
    let request = EnrolmentRequest {
        node_id: options.node_id.clone(),
        location: options.location.clone(),
        certificate_enrolment_indication: options.certificate,
        maf_enrolment_indication: options.maf_address.is_some(),
        remote_management_indication: false,
    };
    let what = "the enrolment request";
    let mut resp = conn
        .send(
            Method::POST,
            "/mef/enrolment",
            Some(&json!({ ENROLMENT_REQUEST: request })),
        )
        .await?;
    let mut certificate = None;
    let mut maf = None;
    let mut maf_error = None;
    loop {
        if resp.status != ResponseStatusCode::OK {
            return Err(refused(what, &resp));
        }
        let content = resp.content.as_ref().and_then(Value::as_object);
        if let Some(instr) = content.and_then(|c| c.get(ENROLMENT_INSTRUCTION)) {
            let instr: Instruction =
                serde_json::from_value(instr.clone()).map_err(|e| EnrolError::Protocol {
                    what,
                    detail: e.to_string(),
                })?;
            let status = match instr.instruction_type {
                InstructionType::CertificateEnrolment if options.certificate => {
                    check_est_uri(&instr.uri, mef_name)?;
                    certificate = Some(est_enrol(&mut conn, &instr).await?);
                    true
                }
                InstructionType::MAFEnrolment => match &options.maf_address {
                    Some(addr) => match maf_enrol(addr, &ke, &ke_id, &instr).await {
                        Ok(m) => {
                            maf = Some(m);
                            true
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "MAF enrolment failed");
                            maf_error = Some(e.to_string());
                            false
                        }
                    },
                    None => false,
                },
                _ => false,
            };
            let ack = Acknowledgement {
                instruction_type: instr.instruction_type,
                status,
            };
            resp = conn
                .send(
                    Method::POST,
                    "/mef/enrolment",
                    Some(&json!({ ENROLMENT_ACK: ack })),
                )
                .await?;
            continue;
        }
        let end = body_of(what, &resp, ENROLMENT_END)?;
        let profile: SecurityProfile =
            serde_json::from_value(end.get("securityProfile").cloned().unwrap_or(Value::Null))
                .map_err(|e| EnrolError::Protocol {
                    what,
                    detail: format!("securityProfile: {e}"),
                })?;
        if profile.key_id != ke_id.to_string() {
            return Err(EnrolError::Protocol {
                what,
                detail: format!(
                    "the profile names key {} but this session's KeID is {ke_id}",
                    profile.key_id
                ),
            });
        }
        if profile.suid != SUID_RSPF_SAEF {
            return Err(EnrolError::Protocol {
                what,
                detail: format!("unsupported Security Usage Identifier {}", profile.suid),
            });
        }
        let key =
            kdf::derive_usage_constrained(&ke, &profile.suid.to_string(), &profile.target_fqdn)?;
        let esprim_key = kdf::derive_usage_constrained(
            &ke,
            &crate::server::SUID_RSPF_ESPRIM.to_string(),
            &profile.target_fqdn,
        )?;
        tracing::info!(
            target: "audit",
            event = "enrolled",
            key_id = %profile.key_id,
            enrolee = ?profile.enrolee_id,
            target = %profile.target_id,
        );
        return Ok(Enrolled {
            profile,
            key,
            esprim_key,
            certificate,
            maf,
            maf_error,
        });
    }
}

/// §8.3.9.7 / §8.3.6.2: the EST base URI's host must be the MEF's FQDN.
fn check_est_uri(uri: &str, mef_name: &str) -> Result<(), EnrolError> {
    let host = uri
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    let same = Fqdn::parse(host)
        .ok()
        .is_some_and(|h| h.as_str().eq_ignore_ascii_case(mef_name));
    if !same {
        return Err(EnrolError::Est(format!(
            "the EST base URI {uri} is not on the MEF {mef_name}"
        )));
    }
    Ok(())
}

/// RFC 7030 on the MEF session: cacerts, csrattrs, a CSR from a fresh key, simpleenroll.
async fn est_enrol(
    conn: &mut MefConnection,
    instr: &Instruction,
) -> Result<EnrolledCertificate, EnrolError> {
    let base = "/.well-known/est";
    let fail = |what: &str, status: StatusCode, body: &Bytes| {
        EnrolError::Est(format!(
            "{what}: HTTP {status}: {}",
            String::from_utf8_lossy(body).trim()
        ))
    };
    let (status, _, body) = conn
        .raw(Method::GET, &format!("{base}/cacerts"), None, Vec::new())
        .await?;
    if status != StatusCode::OK {
        return Err(fail("cacerts", status, &body));
    }
    let ca_der = est::parse_certs_only(&body).map_err(|e| EnrolError::Est(e.to_string()))?;
    let ca_pem = ders_to_pem(&ca_der)?;
    let (status, _, body) = conn
        .raw(Method::GET, &format!("{base}/csrattrs"), None, Vec::new())
        .await?;
    if status != StatusCode::OK {
        return Err(fail("csrattrs", status, &body));
    }
    let attrs = est::parse_csrattrs(&body).map_err(|e| EnrolError::Est(e.to_string()))?;
    let profile = csr_profile(&attrs, instr)?;
    let (csr, key_pem) = est::generate_csr(&profile, attrs.challenge_password.as_deref())
        .map_err(|e| EnrolError::Est(e.to_string()))?;
    let (status, _, body) = conn
        .raw(
            Method::POST,
            &format!("{base}/simpleenroll"),
            Some("application/pkcs10"),
            csr.into_bytes(),
        )
        .await?;
    if status != StatusCode::OK {
        return Err(fail("simpleenroll", status, &body));
    }
    let certs = est::parse_certs_only(&body).map_err(|e| EnrolError::Est(e.to_string()))?;
    let chain_pem = ders_to_pem(&certs)?;
    Ok(EnrolledCertificate {
        chain_pem,
        key_pem,
        ca_pem,
    })
}

fn ders_to_pem(ders: &[Vec<u8>]) -> Result<String, EnrolError> {
    crate::session::ders_to_pem(ders).map_err(EnrolError::Est)
}

/// The certificate profile the CSR must follow, from the identity attribute the MEF asked for
/// (§8.3.6.2.2 step e) and the certSubjectID of the instruction.
fn csr_profile(attrs: &est::CsrAttrs, instr: &Instruction) -> Result<CertProfile, EnrolError> {
    use m2mtrust_crypto::pki::{San, parse_ae_id_uri};
    let bad = |detail: String| EnrolError::Est(detail);
    match attrs.subject_alt_names.as_slice() {
        [San::Uri(uri)] => {
            let parsed =
                parse_ae_id_uri(uri).map_err(|e| bad(format!("csrattrs AE-ID {uri}: {e}")))?;
            if instr
                .cert_subject_id
                .as_deref()
                .is_some_and(|id| id != parsed.ae_id)
            {
                return Err(bad(format!(
                    "csrattrs names {uri}, the instruction {:?}",
                    instr.cert_subject_id
                )));
            }
            Ok(CertProfile::AeId {
                ae_id: parsed.ae_id,
                cse_id: parsed.cse_id.unwrap_or_default(),
                sp_domain: parsed.sp_domain,
            })
        }
        [San::Dns(dns)] => {
            let cse = instr
                .cert_subject_id
                .as_deref()
                .ok_or_else(|| bad("a CSE-ID certificate needs certSubjectID".into()))?;
            let bare = cse.trim_start_matches('/');
            let rest = dns
                .strip_prefix(bare)
                .and_then(|r| r.strip_prefix('.'))
                .ok_or_else(|| bad(format!("csrattrs names {dns}, not CSE-ID {cse}")))?;
            // `<cse>.<in-cse>.<sp>` for a CSE other than the IN-CSE, `<in-cse>.<sp>` for it.
            let (in_cse, sp) = match rest.split_once('.') {
                Some((in_cse, sp)) if sp.contains('.') => (format!("/{in_cse}"), sp.to_owned()),
                _ => (cse.to_owned(), rest.to_owned()),
            };
            Ok(CertProfile::CseId {
                cse_id: cse.to_owned(),
                in_cse_id: in_cse,
                sp_domain: sp,
            })
        }
        other => Err(bad(format!(
            "csrattrs must name exactly one AE-ID URI or CSE-ID dNSName, found {other:?}"
        ))),
    }
}

/// Table 8.3.2.1-3 carried out: MAF Client Registration (§8.8.2.3) with the remotely
/// provisioned credential. The handshake offers KeID with Km = the usage-constrained key of Ke
/// for SUID 21 and the MAF's FQDN; the MAF answers with `assignedSymmKeyID`, the KmID for
/// later MAF Handshakes.
async fn maf_enrol(
    addr: &str,
    ke: &SecretKey,
    ke_id: &KpsaId,
    instr: &Instruction,
) -> Result<MafCredential, EnrolError> {
    let what = "the MAF client registration";
    let protocol = |detail: String| EnrolError::Protocol { what, detail };
    let maf_fqdn = instr
        .maf_fqdn
        .clone()
        .ok_or_else(|| protocol("the MAF instruction names no MAF FQDN".into()))?;
    let admin = instr
        .admin_fqdn
        .clone()
        .ok_or_else(|| protocol("the MAF instruction names no adminFQDN".into()))?;
    let km = kdf::derive_usage_constrained(ke, "21", &maf_fqdn)?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| EnrolError::Transport(format!("MAF {addr}: {e}")))?;
    let psk = m2mtrust_channel::PskKey::new(km.expose_bytes().to_vec())
        .map_err(|e| EnrolError::Transport(e.to_string()))?;
    let (stream, _) = bootstrap(
        tcp,
        &maf_fqdn,
        EnroleeCredential::Psk {
            kpm_id: ke_id.clone(),
            kpm: psk,
        },
        None,
    )
    .await?;
    let fqdn = Fqdn::parse(&maf_fqdn).map_err(|e| protocol(format!("MAF FQDN: {e}")))?;
    let admin_fqdn = Fqdn::parse(&admin).map_err(|e| protocol(format!("adminFQDN: {e}")))?;
    let mut conn = MefConnection::open(stream, &maf_fqdn).await?;
    let request = crate::session::RegistrationRequest {
        admin_fqdn,
        expiration: chrono::Utc::now() + chrono::Duration::days(30),
        labels: None,
    };
    // The session checks the answer's adminFQDN against the request.
    let reg = crate::session::maf_register(&mut conn, &fqdn, &request)
        .await
        .map_err(|e| match e.rsc() {
            Some(rsc) => EnrolError::Refused {
                what,
                rsc: rsc.0,
                message: e.dbg().unwrap_or_default().to_owned(),
            },
            None => protocol(e.to_string()),
        })?;
    let km_id = reg
        .assigned_symm_key_id
        .as_deref()
        .and_then(|k| KpsaId::parse(k).ok())
        .ok_or_else(|| protocol("no assignedSymmKeyID in the answer".into()))?;
    if !km_id.issuer().eq_ignore_ascii_case(&maf_fqdn) {
        return Err(protocol(format!(
            "KmID {km_id} is not issued by {maf_fqdn}"
        )));
    }
    let registration_id = reg.id;
    tracing::info!(target: "audit", event = "maf_registered", maf = %maf_fqdn, km_id = %km_id);
    Ok(MafCredential {
        maf_fqdn,
        admin_fqdn: admin,
        registration_id,
        km_id,
        km,
    })
}
