//! The M2M Enrolment Function next to the CSE (`m2mtrust up`, `m2mtrust cse --mef ADDR`): it
//! shares the data folder, so the CSE is its enrolment target and receives every enrolee's key
//! in its credential table at the end of the Enrolment Exchange.

use std::net::SocketAddr;
use std::sync::Arc;

use m2mtrust_channel::{CertifiedKey, IdentityRules};
use m2mtrust_crypto::{Fqdn, Sealer};
use m2mtrust_mef::est::EstServer;
use m2mtrust_mef::procedures::{AdminPolicy, Policy, Procedures, SqliteRegistry};
use m2mtrust_mef::server::{MafTarget, MefConfig, MefService, Role, TargetCse};
use m2mtrust_mef::target::StoreProvisioning;
use m2mtrust_mef::{Bootstrap, StoreEnrollees};
use m2mtrust_store::Store;

use crate::config::Settings;
use crate::datadir::DataDir;

/// What a MEF is built from.
pub struct MefParams {
    /// The MEF's FQDN.
    pub fqdn: String,
    /// The M2M SP domain.
    pub sp_domain: String,
    /// The enrolment target (the IN-CSE).
    pub target: TargetCse,
    /// Extra trust anchors for client certificates (besides the data folder's CA).
    pub trust_anchors: Vec<std::path::PathBuf>,
    /// Validity of EST certificates, days.
    pub certificate_days: u32,
    /// Whether the target CSE reads credentials from this data folder's store.
    pub local_target: bool,
    /// The MAF enrolees may be enrolled for.
    pub maf: Option<MafTarget>,
}

/// Builds the MEF of the data folder next to its CSE (`up`, `cse --mef`), listening at `local`;
/// with `local_maf` (address and FQDN of the MAF next to it), enrolees prepared for MAF
/// enrolment are instructed to register there.
pub fn build(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<Sealer>,
    store: &Arc<dyn Store>,
    local: SocketAddr,
    local_maf: Option<&(SocketAddr, String)>,
) -> Result<MefService, String> {
    let home = &settings.cse.home;
    let sp_domain = home.sp_id.domain().to_string();
    let cse_base_uri = match settings.cse.poa.iter().find(|p| p.starts_with("https://")) {
        Some(p) => format!("{p}/{}", home.cse_base_name),
        None => format!("https://{}:8443/{}", sp_domain, home.cse_base_name),
    };
    let params = MefParams {
        fqdn: settings
            .mef_fqdn
            .clone()
            .unwrap_or_else(|| format!("mef.{sp_domain}")),
        sp_domain: sp_domain.clone(),
        target: TargetCse {
            cse_id: home.cse_id.clone(),
            sp_domain,
            cse_base_uri,
        },
        trust_anchors: settings.trust_anchors.clone(),
        certificate_days: settings.mef_certificate_days,
        local_target: true,
        maf: local_maf.map(|(addr, fqdn)| MafTarget {
            fqdn: fqdn.clone(),
            base_uri: format!("https://{fqdn}:{}", addr.port()),
        }),
    };
    let ca = dir.dev_ca(sealer, home)?;
    build_with(&params, dir, ca, sealer, store, local)
}

/// Builds a MEF from `params` on the data folder `dir` (its CA issues the MEF certificate and
/// EST certificates).
pub fn build_with(
    params: &MefParams,
    dir: &DataDir,
    ca: m2mtrust_crypto::DevCa,
    sealer: &Arc<Sealer>,
    store: &Arc<dyn Store>,
    local: SocketAddr,
) -> Result<MefService, String> {
    let fqdn = Fqdn::parse(&params.fqdn).map_err(|e| format!("MEF FQDN {:?}: {e}", params.fqdn))?;
    let (chain, key) = dir.function_credentials(sealer, &ca, "mef", fqdn.as_str())?;
    let certificate = CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
        .map_err(|e| format!("MEF certificate: {e}"))?;
    // Device, CSE-ID and AE-ID certificates of enrolees and targets chain to the data folder's
    // CA or to an operator trust anchor.
    let trust = crate::datadir::trust_anchors(&ca, &params.trust_anchors, "trust anchor")?;
    let target_cse = params.target.cse_id.clone();
    let rules = IdentityRules::new(&params.sp_domain, target_cse.clone(), target_cse)
        .map_err(|e| format!("TLS identity rules: {e}"))?;
    let enrollees = Arc::new(StoreEnrollees::new(store.clone(), sealer.clone()));
    let bootstrap = Bootstrap::new(fqdn.clone(), certificate, Some(trust), rules, enrollees)
        .map_err(|e| format!("MEF TLS: {e}"))?;
    let est =
        EstServer::new(Arc::new(ca), params.certificate_days).map_err(|e| format!("EST: {e}"))?;
    let registry_path = dir.root().join("mef.sqlite");
    let registry = SqliteRegistry::open(&registry_path, sealer.clone())
        .map_err(|e| format!("{}: {e}", registry_path.display()))?;
    // The service provider is the administrating stakeholder of its devices' registrations; the
    // configuration they retrieve names the CSE to register with.
    let admin = Fqdn::parse(&params.sp_domain)
        .map_err(|e| format!("SP domain {:?}: {e}", params.sp_domain))?;
    let policy = Policy::default().with_admin(
        admin,
        AdminPolicy {
            client_config: Some(serde_json::json!({
                "targetID": params.target.cse_id.as_str(),
                "cseBaseURI": params.target.cse_base_uri,
            })),
            initial_commands: Vec::new(),
            allow_updates: true,
        },
    );
    let procedures = Procedures::new(fqdn.clone(), Arc::new(registry), policy);
    let config = MefConfig {
        role: Role::Mef,
        maf: params.maf.clone(),
        target: params.target.clone(),
        base_uri: format!("https://{}:{}", fqdn.as_str(), local.port()),
        est: Some(Arc::new(est)),
        procedures: Some(Arc::new(procedures)),
    };
    let provisioning = Arc::new(StoreProvisioning::new(
        store.clone(),
        sealer.clone(),
        params.local_target,
    ));
    Ok(MefService::new(bootstrap, config, provisioning))
}

/// What a MAF is built from.
pub struct MafParams {
    /// The MAF's FQDN.
    pub fqdn: String,
    /// The M2M SP domain (also the administrating stakeholder it serves).
    pub sp_domain: String,
    /// The IN-CSE's CSE-ID (how CSE-ID certificates are read).
    pub in_cse: m2mtrust_model::CseId,
    /// Extra trust anchors for client certificates.
    pub trust_anchors: Vec<std::path::PathBuf>,
    /// The MEF sharing the data folder, whose enrolees register with their KeID.
    pub mef: Option<String>,
}

/// Builds the MAF of the data folder next to its CSE and MEF (`up`, `cse --maf`), listening at
/// `local` and named `fqdn`: clients are the pre-provisioned Km of `m2mtrust maf client add` and
/// the enrolees of the MEF of the same data folder (registering with their KeID, §8.8.2.3).
pub fn build_maf(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<Sealer>,
    store: &Arc<dyn Store>,
    local: SocketAddr,
    fqdn: &str,
) -> Result<MefService, String> {
    let home = &settings.cse.home;
    let sp_domain = home.sp_id.domain().to_string();
    let params = MafParams {
        fqdn: fqdn.to_owned(),
        sp_domain: sp_domain.clone(),
        in_cse: home.cse_id.clone(),
        trust_anchors: settings.trust_anchors.clone(),
        mef: Some(
            settings
                .mef_fqdn
                .clone()
                .unwrap_or_else(|| format!("mef.{sp_domain}")),
        ),
    };
    let ca = dir.dev_ca(sealer, home)?;
    build_maf_with(&params, dir, ca, sealer, store, local)
}

/// Builds a MAF from `params` on the data folder `dir`.
pub fn build_maf_with(
    params: &MafParams,
    dir: &DataDir,
    ca: m2mtrust_crypto::DevCa,
    sealer: &Arc<Sealer>,
    store: &Arc<dyn Store>,
    local: SocketAddr,
) -> Result<MefService, String> {
    let sp_domain = params.sp_domain.clone();
    let fqdn = Fqdn::parse(&params.fqdn).map_err(|e| format!("MAF FQDN {:?}: {e}", params.fqdn))?;
    let mef = match &params.mef {
        Some(m) => Some(Fqdn::parse(m).map_err(|e| format!("MEF FQDN {m:?}: {e}"))?),
        None => None,
    };
    let (chain, key) = dir.function_credentials(sealer, &ca, "maf", fqdn.as_str())?;
    let certificate = CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
        .map_err(|e| format!("MAF certificate: {e}"))?;
    let trust = crate::datadir::trust_anchors(&ca, &params.trust_anchors, "trust anchor")?;
    let rules = IdentityRules::new(&sp_domain, params.in_cse.clone(), params.in_cse.clone())
        .map_err(|e| format!("TLS identity rules: {e}"))?;
    let clients = Arc::new(m2mtrust_maf::MafClients::new(
        store.clone(),
        sealer.clone(),
        fqdn.clone(),
        mef,
    ));
    let bootstrap = Bootstrap::new(fqdn.clone(), certificate, Some(trust), rules, clients)
        .map_err(|e| format!("MAF TLS: {e}"))?
        .for_maf();
    let registry_path = dir.root().join("maf.sqlite");
    let registry = SqliteRegistry::open(&registry_path, sealer.clone())
        .map_err(|e| format!("{}: {e}", registry_path.display()))?;
    let admin = Fqdn::parse(&sp_domain).map_err(|e| format!("SP domain {sp_domain:?}: {e}"))?;
    let policy = Policy::default().with_admin(
        admin,
        AdminPolicy {
            client_config: Some(serde_json::json!({
                "targetID": params.in_cse.as_str(),
            })),
            initial_commands: Vec::new(),
            allow_updates: true,
        },
    );
    let procedures = Procedures::maf(fqdn.clone(), Arc::new(registry), policy)
        .with_km_assigner(Arc::new(m2mtrust_maf::KmFromKe::new(fqdn.clone())));
    let config = MefConfig {
        role: Role::Maf,
        maf: None,
        target: TargetCse {
            cse_id: params.in_cse.clone(),
            sp_domain,
            cse_base_uri: String::new(),
        },
        base_uri: format!("https://{}:{}", fqdn.as_str(), local.port()),
        est: None,
        procedures: Some(Arc::new(procedures)),
    };
    let provisioning = Arc::new(StoreProvisioning::new(store.clone(), sealer.clone(), false));
    Ok(MefService::new(bootstrap, config, provisioning))
}

/// What a trust function running alone (`mef serve`, `maf serve`) starts from: its bound
/// listener and its own data folder, store and sealer ([`Alone::open`] also gives its CA).
pub struct Alone {
    /// The bound listener.
    pub listener: tokio::net::TcpListener,
    /// Its address.
    pub local: SocketAddr,
    /// The data folder.
    pub dir: DataDir,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// Its sealer.
    pub sealer: Arc<Sealer>,
}

/// An opened [`Alone`] with its CA, SP-ID and IN-CSE-ID.
pub type Opened = (
    Alone,
    m2mtrust_crypto::DevCa,
    m2mtrust_model::SpId,
    m2mtrust_model::CseId,
);

impl Alone {
    /// Parses the SP-ID and the IN-CSE-ID (naming the flags in errors), binds `listen` and
    /// opens `data`. Usage errors come with exit code 2, runtime ones with 1.
    pub async fn open(
        data: &std::path::Path,
        listen: SocketAddr,
        sp_id: (&str, &str),
        cse_id: (&str, &str),
    ) -> Result<Opened, (String, u8)> {
        let sp =
            m2mtrust_model::SpId::parse(sp_id.1).map_err(|e| (format!("{}: {e}", sp_id.0), 2))?;
        let cse = m2mtrust_model::CseId::parse(cse_id.1)
            .map_err(|e| (format!("{}: {e}", cse_id.0), 2))?;
        let runtime = |e: String| (e, 1);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| runtime(format!("cannot listen on {listen}: {e}")))?;
        let local = listener.local_addr().map_err(|e| runtime(e.to_string()))?;
        let dir = DataDir::open(data).map_err(runtime)?;
        let store = crate::admin::open_store(&dir).map_err(runtime)?;
        let sealer = Arc::new(dir.sealer().map_err(runtime)?);
        let home = m2mtrust_model::Home {
            cse_id: cse.clone(),
            sp_id: sp.clone(),
            cse_base_name: "cse-in".into(),
        };
        let ca = dir.dev_ca(&sealer, &home).map_err(runtime)?;
        Ok((
            Self {
                listener,
                local,
                dir,
                store,
                sealer,
            },
            ca,
            sp,
            cse,
        ))
    }

    /// Prints the endpoint and `ready`, then serves `service` until a signal.
    pub async fn run(self, name: &str, fqdn: &str, service: MefService) -> Result<(), String> {
        println!("m2mtrust {} ({name})", env!("CARGO_PKG_VERSION"));
        println!("  {name:<12} https://{}   (FQDN {fqdn})", self.local);
        println!("  CA           {}", self.dir.ca_path().display());
        println!("  data         {}", self.dir.root().display());
        println!("ready");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(Arc::new(service).serve(self.listener, async move {
            let _ = rx.await;
        }));
        crate::serve::wait_for_signal().await;
        let _ = tx.send(());
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}
