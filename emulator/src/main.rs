//! `alibabacloud-emulator`: serves a seed file until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use alibabacloud_emulator::{Emulator, Latency, Seed, StartOptions};
use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Exit status for a bad seed or bad flags (`EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// Local Alibaba Cloud emulator: KMS GetSecretValue, OOS GetSecretParameter
/// and STS AssumeRole/AssumeRoleWithOIDC with real signature checks, plus an
/// ECS metadata server and a minimal Kubernetes API on their own listeners.
/// Prints `alibabacloud-emulator listening on http://HOST:PORT` as its first
/// stdout line, then `alibabacloud-emulator imds listening on http://..` and
/// `alibabacloud-emulator kubernetes listening on http://..`; logs go to
/// stderr (RUST_LOG).
#[derive(Debug, Parser)]
#[command(name = "alibabacloud-emulator", version)]
struct Args {
    /// Seed file (TOML): access keys, KMS secrets, OOS parameters.
    #[arg(long, value_name = "FILE")]
    seed: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Address of the ECS metadata server (stands for 100.100.100.200:80).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    imds_listen: SocketAddr,
    /// Address of the minimal Kubernetes API (plain HTTP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    kubernetes_listen: SocketAddr,
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
    let options = StartOptions::new(args.listen)
        .with_imds(args.imds_listen)
        .with_kubernetes(args.kubernetes_listen);
    match run(seed, options, args.latency).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("alibabacloud-emulator: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(seed: Seed, options: StartOptions, latency: Latency) -> anyhow::Result<()> {
    for listen in [options.api, options.imds, options.kubernetes] {
        if !listen.ip().is_loopback() {
            tracing::warn!(%listen, "listening beyond loopback: the emulator serves test secrets and credentials to anyone who can reach it");
        }
    }
    let emulator = Emulator::start_with(seed, options).await?;
    emulator.set_latency(latency);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "alibabacloud-emulator listening on {}", emulator.url())
            .and_then(|()| {
                writeln!(
                    out,
                    "alibabacloud-emulator imds listening on {}",
                    emulator.imds_url()
                )
            })
            .and_then(|()| {
                writeln!(
                    out,
                    "alibabacloud-emulator kubernetes listening on {}",
                    emulator.kubernetes_url()
                )
            })
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    tracing::info!(url = %emulator.url(), imds = %emulator.imds_url(),
        kubernetes = %emulator.kubernetes_url(), %latency, "ready");
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
