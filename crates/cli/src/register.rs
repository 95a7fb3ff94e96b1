//! CSE registration as Entity A (TS-0001 §10.1.1.2.1 as changed by seed 003): establish a
//! security association with the registrar (step 000), CREATE our `<remoteCSE>` there
//! (steps 001/002), then create the registrar's `<remoteCSE>` here.

use std::sync::Arc;
use std::time::Duration;

use m2mtrust_client::{Client, ClientOptions};
use m2mtrust_cse::Cse;
use m2mtrust_model::{Authentication, CseId, Operation, PeerIdentity, Request, ResourceType};
use serde_json::json;

use crate::config::RegistrarSection;

/// What registration needs to know about this CSE.
pub struct Registree {
    /// The CSE.
    pub cse: Arc<Cse>,
    /// The point of access the registrar should use to reach us.
    pub poa: Vec<String>,
}

/// Registers until it succeeds (retrying with back-off while the registrar is unreachable).
pub async fn register_until_done(me: Registree, registrar: RegistrarSection) {
    let mut delay = Duration::from_millis(250);
    loop {
        match register_once(&me, &registrar).await {
            Ok(outcome) => {
                tracing::info!(registrar = %registrar.cse_id, url = %registrar.url, outcome, "registered with the registrar CSE");
                println!("registered with {} ({outcome})", registrar.cse_id);
                return;
            }
            Err(Fatal(e)) => {
                tracing::error!(registrar = %registrar.cse_id, error = %e, "registration refused; not retrying");
                eprintln!("error: registration with {} refused: {e}", registrar.cse_id);
                return;
            }
            Err(Retry(e)) => {
                tracing::warn!(registrar = %registrar.cse_id, error = %e, retry_in = ?delay, "registration failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

enum Failure {
    Retry(String),
    Fatal(String),
}
use Failure::{Fatal, Retry};

async fn register_once(me: &Registree, reg: &RegistrarSection) -> Result<&'static str, Failure> {
    let cfg = me.cse.config();
    let home = &cfg.home;
    let registrar_id =
        CseId::parse(&reg.cse_id).map_err(|e| Fatal(format!("registrar.cse_id: {e}")))?;
    let options = registrar_options(reg).map_err(Fatal)?;
    let client = Client::new(&reg.url, options).map_err(|e| Fatal(e.to_string()))?;
    // Step 001: From = our CSE-ID; csi and cb (absolute address of our <CSEBase>).
    let csr = json!({"m2m:csr": {
        "rn": home.cse_id.bare(),
        "csi": home.cse_id.as_str(),
        "cb": format!("{}{}/{}", home.sp_id, home.cse_id, home.cse_base_name),
        "cst": 2,
        "rr": true,
        "poa": me.poa,
        "srv": ["2a", "3", "4"],
    }});
    let mut req = Request::new(Operation::Create, "", Some(home.cse_id.to_string()));
    req.request_id = m2mtrust_client::request_id();
    req.resource_type = Some(ResourceType::REMOTE_CSE);
    req.content = Some(csr);
    let resp = client.send(&req).await.map_err(|e| Retry(e.to_string()))?;
    let outcome = match resp.status.0 {
        2001 => "registered",
        4105 => "already registered",
        5000..=5999 => {
            return Err(Retry(format!(
                "{}: {}",
                resp.status,
                resp.debug_message().unwrap_or("")
            )));
        }
        _ => {
            return Err(Fatal(format!(
                "{}: {}",
                resp.status,
                resp.debug_message().unwrap_or("")
            )));
        }
    };
    // The registrar's <remoteCSE> here, so that requests from it are recognised.
    let base = reg.url.trim_end_matches('/');
    let registrar_poa = base
        .rsplit_once('/')
        .map_or(base, |(host, _)| host)
        .to_string();
    let registrar_base = base.rsplit('/').next().unwrap_or("cse-in");
    let local = json!({"m2m:csr": {
        "rn": registrar_id.bare(),
        "csi": registrar_id.as_str(),
        "cb": format!("{}{}/{}", home.sp_id, registrar_id, registrar_base),
        "cst": reg.cse_type.unwrap_or(1),
        "rr": true,
        "poa": [registrar_poa],
    }});
    let mut create = Request::new(
        Operation::Create,
        home.cse_base_name.clone(),
        Some(registrar_id.to_string()),
    );
    create.request_id = m2mtrust_client::request_id();
    create.resource_type = Some(ResourceType::REMOTE_CSE);
    create.content = Some(local);
    // In-process: the association that vouches for the registrar is the one we just established.
    let peer = PeerIdentity {
        addr: None,
        authentication: Authentication::Credential {
            credential_id: format!("registrar:{}", reg.url),
            bound_ids: vec![registrar_id.to_string()],
        },
    };
    let local_resp = me.cse.handle(create, peer).await;
    match local_resp.status.0 {
        2001 | 4105 => Ok(outcome),
        _ => Err(Fatal(format!(
            "cannot create the registrar's <remoteCSE> here: {} {}",
            local_resp.status,
            local_resp.debug_message().unwrap_or("")
        ))),
    }
}

/// How this CSE authenticates to its registrar: the key `m2mtrust enrol` provisioned
/// (`registrar.enrolment`), or the PSK or certificate of `[registrar]`. Registration and
/// forwarding (`forwarder.rs`) use the same kind of security association.
pub(crate) fn registrar_options(reg: &RegistrarSection) -> Result<ClientOptions, String> {
    let key_hex = reg
        .psk_key_file
        .as_ref()
        .map(|f| format!("@{}", f.display()));
    match &reg.enrolment {
        Some(dir) => {
            let device =
                crate::enrol::load(dir).map_err(|e| format!("registrar.enrolment: {e}"))?;
            let (kpsa_id, key) = device
                .psk
                .ok_or_else(|| "registrar.enrolment holds no key".to_string())?;
            let mut options = ClientOptions::new(m2mtrust_client::Credential::Psk { kpsa_id, key });
            if let Some(name) = &reg.server_name {
                options = options.with_server_name(name);
            }
            Ok(options)
        }
        None => crate::request::client_options(
            reg.psk_id.as_deref(),
            key_hex.as_deref(),
            reg.cert.as_deref(),
            reg.key.as_deref(),
            reg.ca.as_deref(),
            reg.server_name.as_deref(),
        ),
    }
}
