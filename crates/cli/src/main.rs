//! `m2mtrust`: the oneM2M security system's single binary.

mod admin;
mod config;
mod das_admin;
mod das_client;
mod das_serve;
mod datadir;
mod enrol;
mod escertke;
mod esprim_keys;
mod forwarder;
mod maf_admin;
mod mef_admin;
mod mef_serve;
mod register;
mod request;
mod role_admin;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// oneM2M CSE with the security functions of TS-0003: run it, or drive one with the load tool.
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
#[derive(Debug, Parser)]
#[command(name = "m2mtrust", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole stack in one process with embedded defaults (SQLite in the data folder).
    ///
    /// Prints every endpoint and the admin originator. Ready means: `GET /cse-in` with
    /// `X-M2M-Origin: CAdmin` answers 2000 (over HTTPS with the admin certificate the data folder
    /// holds, `pki/admin.pem` and `keys/admin-key.pem`, or over `--http`).
    Up(ServeArgs),
    /// Run a CSE alone, usually from a configuration file.
    Cse(ServeArgs),
    /// Load-test any oneM2M HTTP CSE with a named workload (w1), or a MEF with complete device
    /// enrolments (enrol), and print rates and latency percentiles.
    Bench(Box<m2mtrust_bench::BenchArgs>),
    /// Send one request primitive to a CSE over a security association and print the answer.
    ///
    /// Exit code 0 for a success Response Status Code, 1 otherwise.
    Request(request::RequestArgs),
    /// Manage credentials (pre-provisioned keys) of a data folder, also while the server runs.
    #[command(subcommand)]
    Credential(admin::CredentialCommand),
    /// Issue certificates from the data folder's development CA.
    #[command(subcommand)]
    Cert(admin::CertCommand),
    /// Enrol a device with a MEF (TS-0003 §8.3.2): bootstrap with the factory PSK or a device
    /// certificate, receive the identity, the key for the IN-CSE (named by its KeID) and,
    /// with --certificate, an EST-enrolled certificate; store them in the device's data folder
    /// for `m2mtrust request --data DEVDIR`.
    Enrol(enrol::EnrolArgs),
    /// The Dynamic Authorization System (TS-0003 §7.3): its server, its policies, and oneM2M
    /// tokens that the CSE of the same data folder accepts in `X-M2M-TKNS`.
    #[command(subcommand)]
    Das(das_admin::DasCommand),
    /// The M2M Authentication Function: master credentials of its clients, and the device side
    /// of MAF key registration.
    #[command(subcommand)]
    Maf(maf_admin::MafCommand),
    /// The M2M Enrolment Function's operator tools (factory credentials of enrolees).
    #[command(subcommand)]
    Mef(mef_admin::MefCommand),
}

/// Options shared by the server commands. Each has an environment variable; flags and variables
/// win over the configuration file, which wins over the defaults.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Data folder: the SQLite database, the master key sealing secrets at rest, the development CA
    /// and the server and admin certificates [default: m2mtrust-data].
    #[arg(long, env = "M2MTRUST_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// TOML configuration file (keys: data, [cse], [https], [http], [store], [log], [access],
    /// [registrar]; see README.md).
    #[arg(long, env = "M2MTRUST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTPS listener: TLS 1.2 with PSK (`m2mtrust credential add-psk`) or certificates (the
    /// data folder's development CA, `m2mtrust cert issue`) on one port [default:
    /// 127.0.0.1:8443]; `off` disables it.
    #[arg(long, env = "M2MTRUST_HTTPS", value_name = "ADDR")]
    https: Option<String>,
    /// The M2M Enrolment Function's TLS listener (factory-PSK and certificate bootstrap, the
    /// Enrolment Exchange, EST, MEF procedures) [default with `up`: 127.0.0.1:8444; `off`
    /// disables it; `cse` runs no MEF unless given].
    #[arg(long, env = "M2MTRUST_MEF", value_name = "ADDR")]
    mef: Option<String>,
    /// The M2M Authentication Function's TLS listener (MAF handshake with KmID/Km or
    /// certificates, client and key registration); the CSE retrieves MAF-distributed keys from
    /// it [default with `up`: 127.0.0.1:8445; `off` disables it; `cse` runs none unless given].
    #[arg(long, env = "M2MTRUST_MAF", value_name = "ADDR")]
    maf: Option<String>,
    /// The Dynamic Authorization System server's TLS listener (NOTIFY with `m2m:seci` at
    /// https://ADDR/das; policies: `m2mtrust das policy add`) [default with `up`:
    /// 127.0.0.1:8446; `off` disables it; `cse` runs none unless given].
    #[arg(long, env = "M2MTRUST_DAS", value_name = "ADDR")]
    das: Option<String>,
    /// Plain HTTP listener, for development only: requests carry no security association, so
    /// CSEs are refused (4107) and `rq_authn` is false. Off unless given.
    #[arg(long, env = "M2MTRUST_HTTP", value_name = "ADDR")]
    http: Option<String>,
    /// This CSE's CSE-ID [default: /id-in].
    #[arg(long, env = "M2MTRUST_CSE_ID", value_name = "ID")]
    cse_id: Option<String>,
    /// The resourceName of <CSEBase> [default: cse-in].
    #[arg(long, env = "M2MTRUST_CSE_NAME", value_name = "NAME")]
    cse_name: Option<String>,
    /// The M2M Service Provider ID [default: //m2mtrust.example].
    #[arg(long, env = "M2MTRUST_SP_ID", value_name = "SP-ID")]
    sp_id: Option<String>,
    /// The admin originator [default: CAdmin].
    #[arg(long, env = "M2MTRUST_ADMIN", value_name = "ORIGINATOR")]
    admin: Option<String>,
    /// Subject the admin originator to access control like anyone else.
    #[arg(long, env = "M2MTRUST_NO_ADMIN_BYPASS")]
    no_admin_bypass: bool,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "M2MTRUST_MAX_BODY", value_name = "BYTES")]
    max_body: Option<usize>,
    /// `full`: fsync every group commit (survives power loss). `process`: survives a killed
    /// process only [default: full].
    #[arg(long, env = "M2MTRUST_DURABILITY", value_name = "MODE")]
    durability: Option<String>,
    /// Log filter, e.g. `info` or `info,audit=debug` [default: info; RUST_LOG also works].
    #[arg(long, env = "M2MTRUST_LOG", value_name = "FILTER")]
    log: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "M2MTRUST_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => serve::run(args, serve::Mode::Up).await,
            Command::Cse(args) => serve::run(args, serve::Mode::Cse).await,
            Command::Request(args) => request::run(args).await,
            Command::Credential(cmd) => admin::credential(cmd).await,
            Command::Cert(cmd) => admin::cert(cmd),
            Command::Mef(cmd) => mef_admin::run(cmd).await,
            Command::Enrol(args) => enrol::run(args).await,
            Command::Maf(cmd) => maf_admin::run(cmd).await,
            Command::Das(cmd) => das_admin::run(cmd).await,
            Command::Bench(args) => match m2mtrust_bench::run(&args).await {
                Ok(report) if report.errors() == 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
        }
    })
}
