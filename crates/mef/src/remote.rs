//! The enrolment target's side of "Use of Remotely Provisioned Credential" (TS-0003 §8.3.2.1
//! steps c-g): a CSE that meets an unknown `psk_identity` whose FQDN is its MEF's fetches the
//! key with `RETRIEVE /fetchCredentials/<KeID>/<SUID>` over its own MEF session, authenticated
//! with its CSE-ID certificate.
//!
//! The lookup happens inside the TLS handshake, which cannot wait asynchronously, so
//! [`RemoteMef::fetch_blocking`] runs the exchange on a helper thread and waits at most the
//! configured timeout. At most [`MAX_CONCURRENT_FETCHES`] fetches run at once (others wait for a
//! slot within the timeout) and KeIDs the MEF refused are not asked for again for a while, so
//! unknown identities cannot turn the CSE into a load generator for its MEF.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use http::Method;
use m2mtrust_channel::{CertifiedKey, KpsaId, TrustAnchors};
use m2mtrust_crypto::SecretKey;
use m2mtrust_model::{ResponseStatusCode, Timestamp};

use crate::client::MefConnection;
use crate::enrolee::{EnroleeCredential, bootstrap};
use crate::exchange::{FETCH_CREDENTIALS, FetchCredentialsResponse};
use crate::server::SUID_RSPF_SAEF;

/// How long a refused KeID is not asked for again.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Bound of the refused-KeID memory.
const NEGATIVE_MAX: usize = 10_000;
/// Fetches that may run at once; further handshakes wait (within the timeout) for a slot.
pub const MAX_CONCURRENT_FETCHES: usize = 8;

/// A fetch slot, returned on drop.
struct Slot<'a>(&'a RemoteMef);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.0.slot_freed.notify_one();
    }
}

/// A credential fetched from the MEF (Table 8.3.2.1-5).
pub struct Fetched {
    /// The usage-constrained key.
    pub key: SecretKey,
    /// The Enrolee-ID: CSE-ID or AE-IDs.
    pub enrolee_id: Vec<String>,
    /// When the key stops working.
    pub expires: Option<DateTime<Utc>>,
    /// The Security Usage Identifier the key was registered for.
    pub suid: Option<u32>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("enrolee_id", &self.enrolee_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a fetch gave no key.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The MEF answered with Status False (Table 8.3.2.1-6).
    #[error("the MEF refused: {0}")]
    Refused(String),
    /// Every fetch slot stayed taken for the whole timeout.
    #[error("too many credential fetches in progress")]
    Busy,
    /// The KeID was refused recently.
    #[error("recently refused")]
    RecentlyRefused,
    /// The MEF could not be reached or spoke nonsense, or the timeout passed.
    #[error("MEF unreachable: {0}")]
    Unreachable(String),
}

/// The MEF a CSE fetches enrolees' keys from.
pub struct RemoteMef {
    addr: String,
    fqdn: String,
    certificate: CertifiedKey,
    trust: TrustAnchors,
    timeout: Duration,
    /// Fetches in flight, at most [`MAX_CONCURRENT_FETCHES`].
    in_flight: Mutex<usize>,
    slot_freed: std::sync::Condvar,
    refused: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for RemoteMef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteMef")
            .field("addr", &self.addr)
            .field("fqdn", &self.fqdn)
            .finish_non_exhaustive()
    }
}

impl RemoteMef {
    /// The MEF at `addr` (`host:port`) named `fqdn`, reached with this CSE's CSE-ID
    /// `certificate`, its certificate verified against `trust`.
    pub fn new(
        addr: String,
        fqdn: String,
        certificate: CertifiedKey,
        trust: TrustAnchors,
        timeout: Duration,
    ) -> Self {
        Self {
            addr,
            fqdn,
            certificate,
            trust,
            timeout,
            in_flight: Mutex::new(0),
            slot_freed: std::sync::Condvar::new(),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// True when keys named `ke_id` come from this MEF (the FQDN part of the KeID).
    pub fn issues(&self, ke_id: &KpsaId) -> bool {
        ke_id.issuer().eq_ignore_ascii_case(&self.fqdn)
    }

    /// Fetches the key of `ke_id`, waiting at most the timeout. Callable from any thread,
    /// including a runtime worker inside a TLS callback.
    pub fn fetch_blocking(&self, ke_id: &KpsaId) -> Result<Fetched, FetchError> {
        let path = format!("/fetchCredentials/{ke_id}/{SUID_RSPF_SAEF}");
        self.blocking(ke_id.to_string(), path, Answer::FetchCredentials)
    }

    /// The ESPrim key of `ke_id` (SUID 23): the usage-constrained key the MEF derives for
    /// end-to-end security with this CSE.
    pub fn fetch_esprim_blocking(&self, ke_id: &KpsaId) -> Result<Fetched, FetchError> {
        let path = format!(
            "/fetchCredentials/{ke_id}/{}",
            crate::server::SUID_RSPF_ESPRIM
        );
        self.blocking(format!("esprim:{ke_id}"), path, Answer::FetchCredentials)
    }

    /// MAF Key Retrieval (TS-0003 §8.8.2.8) of the key named `key_id` (a Key Identifier
    /// `RelativeKeyID@MAF-FQDN`, §10.3.5), as Entity B of the MAF-based SAEF (§8.2.2.3 step
    /// c): the key, its expirationTime, its SUID (in `Fetched::suid`) and the Source MAF
    /// Client ID (in `Fetched::enrolee_id`).
    pub fn retrieve_key_blocking(&self, key_id: &KpsaId) -> Result<Fetched, FetchError> {
        let path = format!("/maf/keys/{}", key_id.relative());
        self.blocking(key_id.to_string(), path, Answer::KeyRegistration)
    }

    /// Waits (at most the timeout) for one of the [`MAX_CONCURRENT_FETCHES`] slots.
    fn acquire_slot(&self) -> Result<Slot<'_>, FetchError> {
        let deadline = Instant::now() + self.timeout;
        let wait = || {
            let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            while *n >= MAX_CONCURRENT_FETCHES {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(FetchError::Busy);
                }
                n = self
                    .slot_freed
                    .wait_timeout(n, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            *n += 1;
            Ok(Slot(self))
        };
        waiting(wait)
    }

    fn blocking(&self, key: String, path: String, answer: Answer) -> Result<Fetched, FetchError> {
        {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            refused.retain(|_, at| now.duration_since(*at) < NEGATIVE_TTL);
            if refused.contains_key(&key) {
                return Err(FetchError::RecentlyRefused);
            }
        }
        let _slot = self.acquire_slot()?;
        let (tx, rx) = mpsc::channel();
        let addr = self.addr.clone();
        let fqdn = self.fqdn.clone();
        let certificate = self.certificate.clone();
        let trust = self.trust.clone();
        let timeout = self.timeout;
        std::thread::spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(async move {
                    tokio::time::timeout(
                        timeout,
                        fetch(addr, fqdn, certificate, trust, path, answer),
                    )
                    .await
                    .unwrap_or_else(|_| Err(FetchError::Unreachable("timed out".into())))
                }),
                Err(e) => Err(FetchError::Unreachable(e.to_string())),
            };
            let _ = tx.send(result);
        });
        let wait = || {
            rx.recv_timeout(self.timeout + Duration::from_millis(200))
                .unwrap_or_else(|_| Err(FetchError::Unreachable("timed out".into())))
        };
        let result = waiting(wait);
        if let Err(FetchError::Refused(_)) = &result {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() >= NEGATIVE_MAX {
                refused.clear();
            }
            refused.insert(key, Instant::now());
        }
        result
    }
}

/// Runs a blocking wait. Inside a multi-threaded runtime (a TLS callback on a worker), this
/// worker's other tasks are handed to the rest of the runtime meanwhile: the function that
/// answers may be served by the same runtime.
fn waiting<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// Which answer a request expects.
#[derive(Clone, Copy)]
enum Answer {
    /// Tables 8.3.2.1-5/-6.
    FetchCredentials,
    /// `sec:keyReg` of a Key Retrieval.
    KeyRegistration,
}

async fn fetch(
    addr: String,
    fqdn: String,
    certificate: CertifiedKey,
    trust: TrustAnchors,
    path: String,
    answer: Answer,
) -> Result<Fetched, FetchError> {
    let unreachable = |e: &dyn std::fmt::Display| FetchError::Unreachable(e.to_string());
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| unreachable(&e))?;
    let (stream, _) = bootstrap(
        tcp,
        &fqdn,
        EnroleeCredential::Certificate(certificate),
        Some(trust),
    )
    .await
    .map_err(|e| unreachable(&e))?;
    let mut conn = MefConnection::open(stream, &fqdn)
        .await
        .map_err(|e| unreachable(&e))?;
    let resp = conn
        .send(Method::GET, &path, None)
        .await
        .map_err(|e| unreachable(&e))?;
    if let Answer::KeyRegistration = answer {
        return key_registration(&resp);
    }
    let body: FetchCredentialsResponse = resp
        .content
        .as_ref()
        .and_then(|c| c.get(FETCH_CREDENTIALS))
        .and_then(|b| serde_json::from_value(b.clone()).ok())
        .ok_or_else(|| {
            FetchError::Unreachable(format!(
                "answer {} without {FETCH_CREDENTIALS}",
                resp.status
            ))
        })?;
    if resp.status != ResponseStatusCode::OK || !body.status {
        return Err(FetchError::Refused(
            body.error_string.unwrap_or_else(|| resp.status.to_string()),
        ));
    }
    let key = body
        .credential
        .as_deref()
        .and_then(|c| B64.decode(c).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| FetchError::Unreachable("no credential in the answer".into()))?;
    let enrolee_id = body.enrolee_id.unwrap_or_default();
    let expires = body
        .lifetime
        .as_deref()
        .and_then(Timestamp::parse)
        .and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.0));
    Ok(Fetched {
        key: SecretKey::from_slice(&key),
        enrolee_id,
        expires,
        suid: Some(SUID_RSPF_SAEF),
    })
}

/// Reads a Key Retrieval answer: `{"sec:keyReg": {"kv", "exp", "suid", "srcID", ...}}`.
fn key_registration(resp: &m2mtrust_model::Response) -> Result<Fetched, FetchError> {
    let body = resp.content.as_ref().and_then(|c| c.get("sec:keyReg"));
    if resp.status != ResponseStatusCode::OK {
        let why = resp
            .content
            .as_ref()
            .and_then(|c| c.get("m2m:dbg"))
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        return Err(FetchError::Refused(format!("{} {why}", resp.status)));
    }
    let body = body.ok_or_else(|| FetchError::Unreachable("answer without sec:keyReg".into()))?;
    let key = body
        .get("kv")
        .and_then(|v| v.as_str())
        .and_then(|c| B64.decode(c).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| FetchError::Unreachable("no key value in the answer".into()))?;
    let source = body
        .get("srcID")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .into_iter()
        .collect();
    let expires = body
        .get("exp")
        .and_then(|v| v.as_str())
        .and_then(Timestamp::parse)
        .and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.0));
    let suid = body
        .get("suid")
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok());
    Ok(Fetched {
        key: SecretKey::from_slice(&key),
        enrolee_id: source,
        expires,
        suid,
    })
}
