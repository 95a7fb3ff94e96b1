//! `m2mtrust up` and `m2mtrust cse`: start the services and serve until a signal arrives.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use m2mtrust_cse::{Cse, Notifier};
use m2mtrust_store::{SqliteStore, Store};
use tracing_subscriber::EnvFilter;

use crate::ServeArgs;
use crate::config::{FileConfig, Overrides, Settings};

/// Which server command is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything, embedded defaults.
    Up,
    /// The CSE alone.
    Cse,
}

fn init_logging(filter: Option<&str>, format: Option<&str>) -> Result<(), String> {
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
        cse_id: args.cse_id,
        cse_base_name: args.cse_name,
        sp_id: args.sp_id,
        admin_originator: args.admin,
        no_admin_bypass: args.no_admin_bypass,
        max_body: args.max_body,
        durability: args.durability,
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

async fn serve(settings: Settings, mode: Mode) -> Result<(), String> {
    std::fs::create_dir_all(&settings.data).map_err(|e| {
        format!(
            "cannot create the data folder {}: {e}",
            settings.data.display()
        )
    })?;
    let db = settings.data.join("m2mtrust.sqlite");
    let sqlite = Arc::new(
        SqliteStore::open(&db, settings.durability)
            .map_err(|e| format!("cannot open {}: {e}", db.display()))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let notifier = Notifier::new(Arc::new(m2mtrust_cse::HttpNotificationTransport::new()));
    let cse_cfg = settings.cse.clone();
    let cse = Cse::start(cse_cfg, store, notifier)
        .await
        .map_err(|e| format!("cannot start the CSE: {e}"))?;
    let expiry = cse.spawn_expiry();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let home = &settings.cse.home;
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
    if let Some(addr) = settings.http {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--http): {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "  http         http://{local}/{}   (plain HTTP: development only, no security association)",
            home.cse_base_name
        );
        tracing::warn!(%local, "plain HTTP listener enabled: requests carry no security association");
        let limits = m2mtrust_binding_http::Limits {
            max_body: settings.max_body,
        };
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        servers.push(tokio::spawn(m2mtrust_server::serve_http(
            listener,
            cse.clone(),
            limits,
            shutdown,
        )));
    } else {
        println!("  no listener configured (--http ADDR)");
    }
    println!("ready");

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
    expiry.abort();
    sqlite.close();
    Ok(())
}

async fn wait_for_signal() {
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
