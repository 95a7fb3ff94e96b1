//! `m2mtrust up` and `m2mtrust cse`: start the services and serve until a signal arrives.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use m2mtrust_cse::{Cse, Notifier};
use m2mtrust_store::Store;
use tracing_subscriber::EnvFilter;

use crate::ServeArgs;
use crate::config::{FileConfig, Overrides, Settings};
use crate::datadir::DataDir;
use crate::tls::{StoreCredentials, TlsServerAcceptor};

/// Where `up` runs the MEF unless told otherwise (DESIGN: MEF 8444).
const DEFAULT_MEF: &str = "127.0.0.1:8444";
/// Where `up` runs the MAF unless told otherwise (DESIGN: MAF 8445).
const DEFAULT_MAF: &str = "127.0.0.1:8445";

/// Which server command is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything, embedded defaults.
    Up,
    /// The CSE alone.
    Cse,
}

pub(crate) fn init_logging(filter: Option<&str>, format: Option<&str>) -> Result<(), String> {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| format!("--log: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.unwrap_or("text") {
        "text" => builder.try_init().map_err(|e| e.to_string()),
        "json" => builder.json().try_init().map_err(|e| e.to_string()),
        other => Err(format!("--log-format: {other:?} is not one of text, json")),
    }
}

pub async fn run(args: ServeArgs, mode: Mode) -> ExitCode {
    let file = match &args.config {
        Some(path) => match FileConfig::load(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let log_filter = args.log.clone().or(file.log.filter.clone());
    let log_format = args.log_format.clone().or(file.log.format.clone());
    if let Err(e) = init_logging(log_filter.as_deref(), log_format.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let overrides = Overrides {
        data: args.data,
        http: args.http,
        https: args.https,
        cse_id: args.cse_id,
        cse_base_name: args.cse_name,
        sp_id: args.sp_id,
        admin_originator: args.admin,
        no_admin_bypass: args.no_admin_bypass,
        max_body: args.max_body,
        durability: args.durability,
        mef: args.mef,
        maf: args.maf,
        das: args.das,
    };
    let default_data = Path::new("m2mtrust-data");
    let settings = match Settings::resolve(file, overrides, default_data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(settings, mode).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(mut settings: Settings, mode: Mode) -> Result<(), String> {
    // Bind first: the points of access the CSE publishes are the addresses actually bound.
    let https_listener = match settings.https {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--https): {e}"))?,
        ),
        None => None,
    };
    let mef_addr = match (settings.mef_listen, mode) {
        (crate::config::MefListen::At(a), _) => Some(a),
        (crate::config::MefListen::Default, Mode::Up) => Some(
            DEFAULT_MEF
                .parse()
                .map_err(|e| format!("default MEF address: {e}"))?,
        ),
        _ => None,
    };
    let mef_listener = match mef_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--mef): {e}"))?,
        ),
        None => None,
    };
    let maf_addr = match (settings.maf_listen, mode) {
        (crate::config::MefListen::At(a), _) => Some(a),
        (crate::config::MefListen::Default, Mode::Up) => Some(
            DEFAULT_MAF
                .parse()
                .map_err(|e| format!("default MAF address: {e}"))?,
        ),
        _ => None,
    };
    let maf_listener = match maf_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--maf): {e}"))?,
        ),
        None => None,
    };
    let das_addr = match (settings.das_listen, mode) {
        (crate::config::MefListen::At(a), _) => Some(a),
        (crate::config::MefListen::Default, Mode::Up) => Some(
            crate::das_serve::DEFAULT_DAS
                .parse()
                .map_err(|e| format!("default DAS address: {e}"))?,
        ),
        _ => None,
    };
    let das_listener = match das_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--das): {e}"))?,
        ),
        None => None,
    };
    let maf_fqdn = settings
        .maf_fqdn
        .clone()
        .unwrap_or_else(|| format!("maf.{}", settings.cse.home.sp_id.domain()));
    let local_maf = match &maf_listener {
        Some(l) => Some((l.local_addr().map_err(|e| e.to_string())?, maf_fqdn.clone())),
        None => None,
    };
    let http_listener = match settings.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--http): {e}"))?,
        ),
        None => None,
    };
    let mut poa = Vec::new();
    for (scheme, l) in [("https", &https_listener), ("http", &http_listener)] {
        if let Some(l) = l {
            poa.push(format!(
                "{scheme}://{}",
                l.local_addr().map_err(|e| e.to_string())?
            ));
        }
    }
    settings.cse.poa = poa;
    let dir = DataDir::open(&settings.data)?;
    let sqlite = Arc::new(dir.store(settings.durability)?);
    let store: Arc<dyn Store> = sqlite.clone();
    let sealer = Arc::new(dir.sealer()?);
    let home = settings.cse.home.clone();
    let ca = dir.dev_ca(&sealer, &home)?;
    // The data folder's DAS issues roles and tokens this CSE accepts; Token-IDs it issued are
    // resolved at its listener.
    let das_issuer = crate::das_admin::das_issuer(home.sp_id.domain());
    settings.cse.role_issuers.push(das_issuer.clone());
    if let Some(l) = &das_listener {
        let local = l.local_addr().map_err(|e| e.to_string())?;
        let uri = format!("https://{local}/das");
        settings
            .cse
            .token_issuer_das
            .insert(das_issuer, uri.clone());
        settings.cse.das_uris.push(uri);
    }
    let notifier = Notifier::new(Arc::new(m2mtrust_cse::HttpNotificationTransport::new()));
    let cse = Cse::start(settings.cse.clone(), store.clone(), notifier)
        .await
        .map_err(|e| format!("cannot start the CSE: {e}"))?;
    let expiry = cse.spawn_expiry();
    // Tokens issued by the data folder's DAS (`m2mtrust das token issue`) are accepted.
    cse.set_token_verifier(crate::das_admin::cse_verifier(
        &settings.data,
        home.sp_id.domain(),
    )?);
    // End-to-end protected requests (ESPrim) under the data folder's pairwiseESPrimKeys.
    // Keys named by a Key Identifier of the MAF are retrieved from it (MAF framework).
    let mut esprim_keys =
        crate::esprim_keys::StoreEsPrimKeys::new(store.clone(), sealer.clone(), home.clone());
    if let Some(maf) = maf_retriever(&settings, &dir, &sealer, &ca, local_maf.as_ref())? {
        esprim_keys = esprim_keys.with_maf(maf);
    }
    // Keys named by a KeID (SUID 23): from the MEF next to this CSE, or the remote one.
    if mef_listener.is_some() {
        esprim_keys = esprim_keys.with_local_mef(m2mtrust_channel::cse_public_domain_name(
            &home.cse_id,
            &home.cse_id,
            home.sp_id.domain(),
        ));
    }
    if let Some(mef) = mef_retriever(&settings, &dir, &sealer, &ca)? {
        esprim_keys = esprim_keys.with_remote_mef(mef);
    }
    cse.set_esprim_keys(Arc::new(esprim_keys));
    // ESCertKE (TS-0003 §8.7): this CSE is a Terminating End-Point with its own certificate; the
    // pairwise keys it establishes join the pairwiseESPrimKeys above.
    cse.set_escertke(crate::escertke::CseTerminator::build(
        &settings,
        server_identity(&settings, &dir, &sealer, &ca)?,
        &ca,
        store.clone(),
        sealer.clone(),
    )?);
    // Dynamic Authorization Systems are consulted as this CSE, with its certificate.
    {
        let (chain, key) = server_identity(&settings, &dir, &sealer, &ca)?;
        cse.set_das_client(Arc::new(crate::das_client::CseDasClient::new(
            chain.into_bytes(),
            key,
            crate::datadir::trust_anchors_pem(&ca, &settings.trust_anchors)?,
            settings.cse.das_timeout,
        )));
    }
    // Requests for other CSEs go to the registrar, or to a <remoteCSE> registered here.
    cse.set_forwarder(Arc::new(crate::forwarder::CseForwarder::new(
        settings.registrar.as_ref(),
        store.clone(),
        server_identity(&settings, &dir, &sealer, &ca)?,
        crate::datadir::trust_anchors_pem(&ca, &settings.trust_anchors)?,
    )));
    let example = ensure_example_psk(&dir, &sealer, &store, &home).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopper = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let limits = m2mtrust_binding_http::Limits {
        max_body: settings.max_body,
    };
    let mut servers = Vec::new();
    println!(
        "m2mtrust {} ({})",
        env!("CARGO_PKG_VERSION"),
        if mode == Mode::Up { "up" } else { "cse" }
    );
    println!(
        "  CSE-ID       {}  SP-ID {}  CSEBase {}",
        home.cse_id, home.sp_id, home.cse_base_name
    );
    println!(
        "  admin        {}{}",
        settings.cse.admin_originator,
        if settings.cse.admin_bypass {
            ""
        } else {
            " (no bypass)"
        }
    );
    println!("  data         {}", settings.data.display());
    if let Some(listener) = https_listener {
        let acceptor = tls_acceptor(&settings, &dir, &sealer, &ca, &store, local_maf.as_ref())?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("  https        https://{local}/{}", home.cse_base_name);
        println!(
            "  CA           {}   (trust anchor for clients; `m2mtrust cert issue` makes client certificates)",
            dir.ca_path().display()
        );
        match dir.admin_certificate(&ca, &home, &settings.cse.admin_originator) {
            Ok((cert, key)) => println!(
                "  admin cert   curl --cacert {} --cert {} --key {} -H 'X-M2M-Origin: {}' -H 'X-M2M-RI: 1' https://localhost:{}/{}",
                dir.ca_path().display(),
                cert.display(),
                key.display(),
                settings.cse.admin_originator,
                local.port(),
                home.cse_base_name
            ),
            Err(e) => tracing::warn!(error = %e, "no admin certificate"),
        }
        println!(
            "  example PSK  identity {} bound to AE {}, key in {}",
            example.kpsa_id,
            example.ae_id,
            example.key_file.display()
        );
        println!(
            "               openssl s_client -connect {local} -tls1_2 -cipher PSK-AES128-CBC-SHA256 -psk_identity {} -psk $(cat {})",
            example.kpsa_id,
            example.key_file.display()
        );
        servers.push(tokio::spawn(m2mtrust_server::serve(
            listener,
            Arc::new(TlsServerAcceptor(acceptor)),
            cse.clone(),
            limits,
            stopper(),
        )));
    }
    if let Some(listener) = http_listener {
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "  http         http://{local}/{}   (plain HTTP: development only, no security association)",
            home.cse_base_name
        );
        tracing::warn!(%local, "plain HTTP listener enabled: requests carry no security association");
        servers.push(tokio::spawn(m2mtrust_server::serve_http(
            listener,
            cse.clone(),
            limits,
            stopper(),
        )));
    }
    let mut mef_task = None;
    if let Some(listener) = mef_listener {
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let mef =
            crate::mef_serve::build(&settings, &dir, &sealer, &store, local, local_maf.as_ref())?;
        println!(
            "  mef          https://{local}   (FQDN {}; enrolees: `m2mtrust mef enrollee add`, devices: `m2mtrust enrol`)",
            mef.fqdn()
        );
        let mut rx = stop_rx.clone();
        mef_task = Some(tokio::spawn(std::sync::Arc::new(mef).serve(
            listener,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        )));
    }
    let mut maf_task = None;
    if let Some(listener) = maf_listener {
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let maf = crate::mef_serve::build_maf(&settings, &dir, &sealer, &store, local, &maf_fqdn)?;
        println!(
            "  maf          https://{local}   (FQDN {maf_fqdn}; clients: `m2mtrust maf client add`, or enrolees of the MEF)"
        );
        let mut rx = stop_rx.clone();
        maf_task = Some(tokio::spawn(std::sync::Arc::new(maf).serve(
            listener,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        )));
    }
    if let Some(listener) = das_listener {
        // The DAS Server accepts the same TLS credentials as the CSE.
        let acceptor = tls_acceptor(&settings, &dir, &sealer, &ca, &store, local_maf.as_ref())?;
        let das = crate::das_serve::service(&dir, &home)?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("{}", crate::das_serve::endpoint_line(local));
        servers.push(tokio::spawn(m2mtrust_server::serve(
            listener,
            Arc::new(TlsServerAcceptor(acceptor)),
            Arc::new(das),
            limits,
            stopper(),
        )));
    }
    if servers.is_empty() && mef_task.is_none() {
        println!("  no listener configured (--https ADDR, --http ADDR)");
    }
    println!("ready");
    let registration = settings.registrar.clone().map(|registrar| {
        let me = crate::register::Registree {
            cse: cse.clone(),
            poa: settings.cse.poa.clone(),
        };
        tokio::spawn(crate::register::register_until_done(me, registrar))
    });

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "listener failed"),
            Err(e) => tracing::error!(error = %e, "listener task failed"),
        }
    }
    if let Some(t) = maf_task {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "MAF listener failed"),
            Err(e) => tracing::error!(error = %e, "MAF task failed"),
        }
    }
    if let Some(t) = mef_task {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "MEF listener failed"),
            Err(e) => tracing::error!(error = %e, "MEF task failed"),
        }
    }
    expiry.abort();
    if let Some(r) = registration {
        r.abort();
    }
    sqlite.close();
    Ok(())
}

/// The TLS server: the data folder's server certificate, client certificates checked against
/// the development CA plus the configured anchors and CRLs, PSKs from the credential table.
/// The CSE's and the DAS's listeners each build one.
pub(crate) fn tls_acceptor(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<m2mtrust_crypto::Sealer>,
    ca: &m2mtrust_crypto::DevCa,
    store: &Arc<dyn Store>,
    local_maf: Option<&(std::net::SocketAddr, String)>,
) -> Result<m2mtrust_channel::TlsAcceptor, String> {
    use m2mtrust_channel::{CertifiedKey, IdentityRules, ServerConfig};
    let home = &settings.cse.home;
    let (chain, key) = server_identity(settings, dir, sealer, ca)?;
    let rules = IdentityRules::new(
        home.sp_id.domain(),
        home.cse_id.clone(),
        home.cse_id.clone(),
    )
    .map_err(|e| format!("TLS identity rules: {e}"))?;
    let mut config = ServerConfig::new(rules);
    config.certificate = Some(
        CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
            .map_err(|e| format!("server certificate: {e}"))?,
    );
    for sni in &settings.sni_certificates {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("https.sni {}: {}: {e}", sni.name, p.display()))
        };
        let certified = CertifiedKey::from_pem(&read(&sni.certificate)?, &read(&sni.private_key)?)
            .map_err(|e| format!("https.sni {}: {e}", sni.name))?;
        config.sni_certificates.push((sni.name.clone(), certified));
    }
    config.client_trust = Some(client_trust(settings, ca)?);
    config.psk_identity_hint = Some(home.cse_id.bare().to_string());
    let mut credentials = StoreCredentials::new(store.clone(), sealer.clone());
    // Keys of devices enrolled at a MEF, or distributed by a MAF, are fetched from it.
    if let Some(mef) = mef_retriever(settings, dir, sealer, ca)? {
        credentials = credentials.with_remote_mef(mef);
    }
    if let Some(maf) = maf_retriever(settings, dir, sealer, ca, local_maf)? {
        credentials = credentials.with_maf(maf);
    }
    m2mtrust_channel::TlsAcceptor::new(config, Arc::new(credentials))
        .map_err(|e| format!("TLS: {e}"))
}

/// What certificates of peers are checked against: the development CA, `https.trust_anchors`
/// and the CRLs of `https.crls`.
pub(crate) fn client_trust(
    settings: &Settings,
    ca: &m2mtrust_crypto::DevCa,
) -> Result<m2mtrust_channel::TrustAnchors, String> {
    let mut trust =
        crate::datadir::trust_anchors(ca, &settings.trust_anchors, "https.trust_anchors")?;
    for path in &settings.crls {
        let pem =
            std::fs::read(path).map_err(|e| format!("https.crls: {}: {e}", path.display()))?;
        trust
            .add_crl_pem(&pem)
            .map_err(|e| format!("https.crls: {}: {e}", path.display()))?;
    }
    Ok(trust)
}

/// The MAF this CSE retrieves MAF-distributed keys from (TS-0003 §8.8.2.8), authenticated by
/// its own certificate: the MAF next to it (which trusts the data folder's CA), or the remote
/// one of `[maf] remote_url`.
fn maf_retriever(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<m2mtrust_crypto::Sealer>,
    ca: &m2mtrust_crypto::DevCa,
    local_maf: Option<&(std::net::SocketAddr, String)>,
) -> Result<Option<Arc<m2mtrust_mef::remote::RemoteMef>>, String> {
    let (addr, fqdn, trust) = match (local_maf, &settings.remote_maf) {
        (Some((addr, fqdn)), _) => (
            addr.to_string(),
            fqdn.clone(),
            m2mtrust_channel::TrustAnchors::from_pem(ca.cert_pem().as_bytes())
                .map_err(|e| format!("development CA: {e}"))?,
        ),
        (None, Some(remote)) => (
            remote.addr.clone(),
            remote.fqdn.clone(),
            remote_ca(&remote.ca, "maf.remote_ca")?,
        ),
        (None, None) => return Ok(None),
    };
    retriever(settings, dir, sealer, ca, addr, fqdn, trust).map(Some)
}

/// The remote MEF of `[mef] remote_url` this CSE fetches enrolees' keys from (TS-0003
/// §8.3.2.1), authenticated by its own certificate.
fn mef_retriever(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<m2mtrust_crypto::Sealer>,
    ca: &m2mtrust_crypto::DevCa,
) -> Result<Option<Arc<m2mtrust_mef::remote::RemoteMef>>, String> {
    let Some(remote) = &settings.remote_mef else {
        return Ok(None);
    };
    let trust = remote_ca(&remote.ca, "mef.remote_ca")?;
    retriever(
        settings,
        dir,
        sealer,
        ca,
        remote.addr.clone(),
        remote.fqdn.clone(),
        trust,
    )
    .map(Some)
}

/// A MEF or MAF at `addr` named `fqdn`, reached with this CSE's certificate (which names its
/// CSE-ID), its certificate checked against `trust`.
fn retriever(
    settings: &Settings,
    dir: &DataDir,
    sealer: &Arc<m2mtrust_crypto::Sealer>,
    ca: &m2mtrust_crypto::DevCa,
    addr: String,
    fqdn: String,
    trust: m2mtrust_channel::TrustAnchors,
) -> Result<Arc<m2mtrust_mef::remote::RemoteMef>, String> {
    let (chain, key) = server_identity(settings, dir, sealer, ca)?;
    let me =
        m2mtrust_channel::CertifiedKey::from_pem(chain.as_bytes(), key.expose_pem().as_bytes())
            .map_err(|e| format!("server certificate: {e}"))?;
    Ok(Arc::new(m2mtrust_mef::remote::RemoteMef::new(
        addr,
        fqdn,
        me,
        trust,
        std::time::Duration::from_secs(5),
    )))
}

/// The trust anchors of a remote trust function, from the PEM file of configuration key `key`.
fn remote_ca(path: &std::path::Path, key: &str) -> Result<m2mtrust_channel::TrustAnchors, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    m2mtrust_channel::TrustAnchors::from_pem(&pem)
        .map_err(|e| format!("{key}: {}: {e}", path.display()))
}

/// The CSE's certificate chain and key: `https.certificate`/`https.private_key`, or the one the
/// development CA issued for the data folder.
fn server_identity(
    settings: &Settings,
    dir: &DataDir,
    sealer: &m2mtrust_crypto::Sealer,
    ca: &m2mtrust_crypto::DevCa,
) -> Result<(String, m2mtrust_crypto::PrivateKeyPem), String> {
    match &settings.server_certificate {
        Some((cert, key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("https.certificate: {}: {e}", p.display()))
            };
            Ok((read(cert)?, m2mtrust_crypto::PrivateKeyPem::new(read(key)?)))
        }
        None => dir.server_credentials(sealer, ca, &settings.cse.home),
    }
}

/// The example PSK credential `up` creates once, so a client can connect at once.
struct ExamplePsk {
    kpsa_id: String,
    ae_id: String,
    key_file: std::path::PathBuf,
}

async fn ensure_example_psk(
    dir: &DataDir,
    sealer: &m2mtrust_crypto::Sealer,
    store: &Arc<dyn Store>,
    home: &m2mtrust_model::Home,
) -> Result<ExamplePsk, String> {
    use m2mtrust_store::StoreExt;
    let kpsa_id = format!("example-ae@{}", home.sp_id.domain());
    let ae_id = "Cexample".to_string();
    let key_file = dir.root().join("keys/example-psk.hex");
    let id = format!("12-{kpsa_id}");
    let lookup = id.clone();
    if store
        .read(move |r| r.credential(&lookup))
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let key = m2mtrust_crypto::SecretKey::generate(16).map_err(|e| e.to_string())?;
        crate::datadir::write_private(&key_file, key.expose_hex().as_bytes())?;
        let sealed = sealer
            .seal(key.expose_bytes(), id.as_bytes())
            .map_err(|e| e.to_string())?;
        let record = m2mtrust_store::CredentialRecord {
            id,
            kind: "psk".into(),
            sealed_secret: Some(sealed),
            binding: "ae".into(),
            bound_ids: vec![ae_id.clone()],
            created: m2mtrust_model::Timestamp::now(),
            expires: None,
        };
        store
            .write(move |w| w.put_credential(&record))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(ExamplePsk {
        kpsa_id,
        ae_id,
        key_file,
    })
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
