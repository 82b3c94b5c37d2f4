//! Load generator: N Mounts of M KMS objects each, C at a time, over the
//! provider's real Unix socket, against the emulator with injected latency.
//! Prints latency percentiles, Mounts/s and backend calls.
//!
//! `cargo run --release -p integration-tests --bin mount-load -- --mounts 100 --objects 10 --latency 20ms`

use std::time::{Duration, Instant};

use clap::Parser;
use integration_tests::emulator::{KmsSecret, Latency};
use integration_tests::*;

#[derive(Parser)]
#[command(about = "Mount load generator against the local emulator")]
struct Args {
    /// Mounts to run (after the warm-up).
    #[arg(long, default_value_t = 100)]
    mounts: usize,
    /// KMS objects per Mount.
    #[arg(long, default_value_t = 10)]
    objects: usize,
    /// Mounts in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Latency the emulator adds to every request.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Mounts run first and not measured (connection set-up, lazy init).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Mount with pod identity (RRSA: the pod's token → STS
    /// AssumeRoleWithOIDC) and report STS calls per 1,000 Mounts.
    #[arg(long)]
    pod_identity: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut seed = identity_seed();
    // team-a's pod role may read team-a/*
    for i in 0..args.objects {
        seed = seed.with_kms_secret(KmsSecret::text(
            format!("team-a/load-{i}"),
            format!("value-{i}"),
        ));
    }
    let cloud = FakeCloud::start(seed).await;
    cloud.emulator.set_latency(Latency::fixed(args.latency));
    let env = if args.pod_identity {
        cloud.rrsa_env()
    } else {
        cloud.env()
    };
    let provider = std::sync::Arc::new(TestProvider::start(cloud.config(), env).await);
    let yaml: String = (0..args.objects)
        .map(|i| format!("- objectName: team-a/load-{i}\n"))
        .collect();
    let pod_identity = args.pod_identity;
    let mount = move |i: usize| {
        let mount = Mount::objects(&yaml).for_pod("team-a", &format!("app-{}", i % 50), "app");
        if pod_identity {
            mount.with_pod_identity()
        } else {
            mount
        }
    };

    for i in 0..args.warmup {
        provider.mount(mount(i)).await?;
    }
    let warmup_sts = cloud.emulator.stats().sts_calls();
    let warmup_gets = cloud.service_account_gets();
    cloud.emulator.reset_stats();
    let attempts_before = provider
        .provider
        .cloud()
        .stats()
        .attempts
        .load(std::sync::atomic::Ordering::Relaxed);

    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.mounts);
    for i in 0..args.mounts {
        let permit = semaphore.clone().acquire_owned().await?;
        let provider = provider.clone();
        let mount = mount(i);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = provider.mount(mount).await;
            drop(permit);
            (t.elapsed(), result.is_ok())
        }));
    }
    let mut latencies = Vec::with_capacity(args.mounts);
    let mut failures = 0;
    for task in tasks {
        let (elapsed, ok) = task.await?;
        latencies.push(elapsed);
        if !ok {
            failures += 1;
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[i])
    };
    let stats = cloud.emulator.stats();
    let backend = stats.requests("GetSecretValue");
    let attempts = provider
        .provider
        .cloud()
        .stats()
        .attempts
        .load(std::sync::atomic::Ordering::Relaxed)
        - attempts_before;
    println!(
        "mount-load: {} Mounts x {} objects, concurrency {}, backend latency {}",
        args.mounts,
        args.objects,
        args.concurrency,
        humantime::format_duration(args.latency)
    );
    println!(
        "  latency per Mount: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        ms(*latencies.last().unwrap())
    );
    println!(
        "  throughput: {:.1} Mounts/s ({} in {:.2} s), {} failed",
        args.mounts as f64 / wall.as_secs_f64(),
        args.mounts,
        wall.as_secs_f64(),
        failures
    );
    println!(
        "  backend calls: {} GetSecretValue ({:.1} per Mount), {} HTTP attempts",
        backend,
        backend as f64 / args.mounts as f64,
        attempts
    );
    if args.pod_identity {
        let (sts, mounts) = (warmup_sts + stats.sts_calls(), args.warmup + args.mounts);
        println!(
            "  pod identity: {} STS AssumeRoleWithOIDC calls for {} Mounts of one identity ({:.1} per 1,000 Mounts; the upstream provider makes 1 per Mount), {} ServiceAccount GETs",
            sts,
            mounts,
            sts as f64 * 1000.0 / mounts as f64,
            warmup_gets + cloud.service_account_gets(),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
