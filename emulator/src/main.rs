//! `alibabacloud-emulator`: serves a seed file until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use alibabacloud_emulator::{Emulator, Latency, Seed};
use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Exit status for a bad seed or bad flags (`EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// Local Alibaba Cloud emulator: KMS GetSecretValue and OOS GetSecretParameter
/// with real signature checks. Prints `alibabacloud-emulator listening on
/// http://HOST:PORT` as its first stdout line; logs go to stderr (RUST_LOG).
#[derive(Debug, Parser)]
#[command(name = "alibabacloud-emulator", version)]
struct Args {
    /// Seed file (TOML): access keys, KMS secrets, OOS parameters.
    #[arg(long, value_name = "FILE")]
    seed: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Delay added to every API request: "20ms", or a range "10ms..50ms".
    #[arg(long, value_name = "DURATION", default_value = "none")]
    latency: Latency,
    /// Region to emulate (overrides the seed's `region`).
    #[arg(long)]
    region: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut seed = match Seed::load(&args.seed) {
        Ok(seed) => seed,
        Err(error) => {
            eprintln!("alibabacloud-emulator: {:#}", anyhow::Error::from(error));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(region) = args.region {
        seed.region = region;
    }
    match run(seed, args.listen, args.latency).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("alibabacloud-emulator: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(seed: Seed, listen: SocketAddr, latency: Latency) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        tracing::warn!(%listen, "listening beyond loopback: the emulator serves test secrets to anyone who can reach it");
    }
    let emulator = Emulator::start(seed, listen).await?;
    emulator.set_latency(latency);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "alibabacloud-emulator listening on {}", emulator.url())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    tracing::info!(url = %emulator.url(), %latency, "ready");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
