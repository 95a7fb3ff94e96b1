//! The Dynamic Authorization System server (TS-0003 §7.3) on a data folder: inside
//! `m2mtrust up` (`--das ADDR`) or alone (`m2mtrust das serve`).
//!
//! It signs tokens with the data folder's DAS key (`keys/das-key.sealed`, public half in
//! `pki/das-public.pem`), keeps policies and issued tokens in `das.sqlite`, and accepts the same
//! TLS credentials as the CSE: the server certificate, client certificates of the data folder's
//! CA and the PSKs of the credential table.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use m2mtrust_das::{DasService, DasStore};
use m2mtrust_model::Home;

use crate::admin::fail;
use crate::config::{FileConfig, Overrides, Settings};
use crate::datadir::DataDir;
use crate::tls::TlsServerAcceptor;

/// The default DAS listener (DESIGN: DAS 8446).
pub const DEFAULT_DAS: &str = "127.0.0.1:8446";

/// The DAS store of a data folder.
pub fn open_store(dir: &DataDir) -> Result<DasStore, String> {
    let path = dir.root().join("das.sqlite");
    DasStore::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The DAS Server of the data folder for the SP and CSE of `home`.
pub fn service(dir: &DataDir, home: &Home) -> Result<DasService, String> {
    let issuer = crate::das_admin::das_key(dir)?
        .with_issuer(crate::das_admin::das_issuer(home.sp_id.domain()));
    Ok(DasService::new(
        home.clone(),
        issuer,
        Arc::new(open_store(dir)?),
    ))
}

/// The line `up` and `das serve` print for the DAS listener.
pub fn endpoint_line(local: SocketAddr) -> String {
    format!("  das          https://{local}/das   (policies: `m2mtrust das policy add`)")
}

/// `m2mtrust das serve`.
pub async fn serve_alone(args: &crate::das_admin::DasServeArgs) -> ExitCode {
    if let Err(e) = crate::serve::init_logging(args.log.as_deref(), None) {
        return fail(e, 2);
    }
    let (alone, ca, sp, cse) = match crate::mef_serve::Alone::open(
        &args.data.data,
        args.listen,
        ("--sp-id", &args.sp_id),
        ("--cse-id", &args.cse_id),
    )
    .await
    {
        Ok(a) => a,
        Err((e, code)) => return fail(e, code),
    };
    let overrides = Overrides {
        data: Some(args.data.data.clone()),
        sp_id: Some(sp.to_string()),
        cse_id: Some(cse.to_string()),
        ..Overrides::default()
    };
    let settings = match Settings::resolve(FileConfig::default(), overrides, &args.data.data) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string(), 2),
    };
    let home = settings.cse.home.clone();
    let started = (|| {
        let acceptor = crate::serve::tls_acceptor(
            &settings,
            &alone.dir,
            &alone.sealer,
            &ca,
            &alone.store,
            None,
        )?;
        Ok::<_, String>((acceptor, service(&alone.dir, &home)?))
    })();
    let (acceptor, das) = match started {
        Ok(s) => s,
        Err(e) => return fail(e, 1),
    };
    println!("m2mtrust {} (das)", env!("CARGO_PKG_VERSION"));
    println!("{}", endpoint_line(alone.local));
    println!(
        "  issuer       {}   (public key {})",
        das.issuer(),
        alone.dir.root().join("pki/das-public.pem").display()
    );
    println!("  CA           {}", alone.dir.ca_path().display());
    println!("  data         {}", alone.dir.root().display());
    println!("ready");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(m2mtrust_server::serve(
        alone.listener,
        Arc::new(TlsServerAcceptor(acceptor)),
        Arc::new(das),
        m2mtrust_binding_http::Limits::default(),
        async move {
            let _ = rx.await;
        },
    ));
    crate::serve::wait_for_signal().await;
    let _ = tx.send(());
    match task.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(e.to_string(), 1),
        Err(e) => fail(e.to_string(), 1),
    }
}
