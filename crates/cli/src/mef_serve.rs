//! The M2M Enrolment Function next to the CSE (`m2mtrust up`, `m2mtrust cse --mef ADDR`): it
//! shares the data folder, so the CSE is its enrolment target and receives every enrolee's key
//! in its credential table at the end of the Enrolment Exchange.

use std::net::SocketAddr;
use std::sync::Arc;

use m2mtrust_channel::{CertifiedKey, IdentityRules, TrustAnchors};
use m2mtrust_crypto::{Fqdn, Sealer};
use m2mtrust_mef::est::EstServer;
use m2mtrust_mef::procedures::{Policy, Procedures, SqliteRegistry};
use m2mtrust_mef::server::{MefConfig, MefService, TargetCse};
use m2mtrust_mef::target::StoreProvisioning;
use m2mtrust_mef::{Bootstrap, StoreEnrollees};
use m2mtrust_store::Store;

use crate::config::Settings;
use crate::datadir::DataDir;

/// Builds the MEF service of the data folder, listening at `local`.
pub fn build(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<Sealer>,
    store: &Arc<dyn Store>,
    local: SocketAddr,
) -> Result<MefService, String> {
    let home = &settings.cse.home;
    let sp_domain = home.sp_id.domain().to_string();
    let fqdn_text = settings
        .mef_fqdn
        .clone()
        .unwrap_or_else(|| format!("mef.{sp_domain}"));
    let fqdn = Fqdn::parse(&fqdn_text).map_err(|e| format!("mef.fqdn {fqdn_text:?}: {e}"))?;
    let ca = dir.dev_ca(sealer, home)?;
    let (chain, key) = dir.mef_credentials(sealer, &ca, fqdn.as_str())?;
    let certificate = CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
        .map_err(|e| format!("MEF certificate: {e}"))?;
    // Device, CSE-ID and AE-ID certificates of enrolees and targets chain to the development
    // CA or to an operator trust anchor.
    let mut trust = TrustAnchors::from_pem(ca.cert_pem().as_bytes())
        .map_err(|e| format!("development CA: {e}"))?;
    for path in &settings.trust_anchors {
        let pem = std::fs::read(path)
            .map_err(|e| format!("https.trust_anchors: {}: {e}", path.display()))?;
        trust
            .add_pem(&pem)
            .map_err(|e| format!("https.trust_anchors: {}: {e}", path.display()))?;
    }
    let rules = IdentityRules::new(&sp_domain, home.cse_id.clone(), home.cse_id.clone())
        .map_err(|e| format!("TLS identity rules: {e}"))?;
    let enrollees = Arc::new(StoreEnrollees::new(store.clone(), sealer.clone()));
    let bootstrap = Bootstrap::new(fqdn.clone(), certificate, Some(trust), rules, enrollees)
        .map_err(|e| format!("MEF TLS: {e}"))?;
    let est = EstServer::new(Arc::new(ca), settings.mef_certificate_days)
        .map_err(|e| format!("EST: {e}"))?;
    let registry = SqliteRegistry::open(&dir.root().join("mef.sqlite"), sealer.clone())
        .map_err(|e| format!("{}: {e}", dir.root().join("mef.sqlite").display()))?;
    let procedures = Procedures::new(fqdn.clone(), Arc::new(registry), Policy::default());
    let cse_base_uri = match settings.cse.poa.iter().find(|p| p.starts_with("https://")) {
        Some(p) => format!("{p}/{}", home.cse_base_name),
        None => format!("https://{}:8443/{}", sp_domain, home.cse_base_name),
    };
    let config = MefConfig {
        target: TargetCse {
            cse_id: home.cse_id.clone(),
            sp_domain,
            cse_base_uri,
        },
        base_uri: format!("https://{}:{}", fqdn.as_str(), local.port()),
        est: Some(Arc::new(est)),
        procedures: Some(Arc::new(procedures)),
    };
    let provisioning = Arc::new(StoreProvisioning::new(store.clone(), sealer.clone(), true));
    Ok(MefService::new(bootstrap, config, provisioning))
}
