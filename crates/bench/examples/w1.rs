//! Runs a bench workload standalone: `cargo run -p m2mtrust-bench --example w1 -- --url ... -n 200 -c 1,8`.

use clap::Parser;
use m2mtrust_bench::BenchArgs;

/// Bench a oneM2M HTTP(S) CSE.
#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cmd = Cmd::parse();
    match m2mtrust_bench::run(&cmd.bench).await {
        Ok(report) if report.errors() == 0 => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}
