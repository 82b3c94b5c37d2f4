//! Load generator: N Mounts of M KMS objects each, C at a time, over the
//! provider's real Unix socket, against the emulator with injected latency.
//! Prints latency percentiles, Mounts/s and backend calls, per wave.
//!
//! `cargo run --release -p integration-tests --bin mount-load -- --mounts 100 --objects 10 --latency 20ms`
//!
//! `--compare-upstream` runs the same Mounts, in the same run and against
//! the same emulator, through the upstream provider's algorithm (see
//! `integration_tests::upstream`) and prints both and their ratio.
//! `--waves 3 --mounts 500 --concurrency 500 --objects 5` is a rollout storm:
//! 500 Mounts of the same 5 objects of one identity at once, three times.

use std::time::{Duration, Instant};

use clap::Parser;
use integration_tests::emulator::{KmsSecret, Latency};
use integration_tests::*;

/// The role the upstream algorithm assumes.
const UPSTREAM_ROLE: &str = "acs:ram::1234567890123456:role/upstream-algorithm";

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
    /// Run the measured Mounts this many times, one wave after another.
    #[arg(long, default_value_t = 1)]
    waves: usize,
    /// Also run Mounts through the upstream provider's algorithm and print
    /// the ratio.
    #[arg(long)]
    compare_upstream: bool,
    /// Mounts run through the upstream algorithm (it is slow: 10 requests/s
    /// for the whole process).
    #[arg(long, default_value_t = 10)]
    upstream_mounts: usize,
    /// Turn the value cache on with this TTL (e.g. 30s); default: off, so
    /// only fetches in flight at the same time are shared.
    #[arg(long, value_parser = humantime::parse_duration)]
    cache: Option<std::time::Duration>,
    /// One connection per Mount instead of one shared connection (the
    /// driver keeps one connection per provider and multiplexes Mounts).
    #[arg(long)]
    connection_per_mount: bool,
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
    // The upstream algorithm's identity: the access key assumes a role that
    // may read the load's objects (upstream's AccessKey + RAM role mode).
    seed = seed.with_role(
        integration_tests::emulator::Role::new(UPSTREAM_ROLE)
            .allowing(["kms:secret/team-a/*"])
            .trusting_access_keys([ACCESS_KEY_ID]),
    );
    let cloud = FakeCloud::start(seed).await;
    cloud.emulator.set_latency(Latency::fixed(args.latency));
    let env = if args.pod_identity {
        cloud.rrsa_env()
    } else {
        cloud.env()
    };
    let mut config = cloud.config();
    if let Some(ttl) = args.cache {
        config.cache.enabled = true;
        config.cache.ttl = ttl;
        config.cache.pinned_ttl = config.cache.pinned_ttl.max(ttl);
    }
    let provider = std::sync::Arc::new(TestProvider::start(config, env).await);
    let shared = (!args.connection_per_mount).then(|| provider.clone());
    let client = match &shared {
        Some(provider) => Some(provider.client().await),
        None => None,
    };
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

    println!(
        "mount-load: {} Mounts x {} objects, concurrency {}, backend latency {}, {} wave(s), value cache {}, {}",
        args.mounts,
        args.objects,
        args.concurrency,
        humantime::format_duration(args.latency),
        args.waves,
        args.cache.map_or("off".to_string(), |ttl| format!(
            "ttl {}",
            humantime::format_duration(ttl)
        )),
        if args.connection_per_mount {
            "a connection per Mount"
        } else {
            "one shared connection"
        }
    );
    let mut our_p50 = 0.0;
    let mut stats = cloud.emulator.stats();
    for wave in 1..=args.waves {
        cloud.emulator.reset_stats();
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(args.mounts);
        for i in 0..args.mounts {
            let permit = semaphore.clone().acquire_owned().await?;
            let provider = provider.clone();
            let mount = mount(i);
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let result = match client {
                    Some(client) => TestProvider::mount_on(client, mount).await,
                    None => provider.mount(mount).await,
                };
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
        stats = cloud.emulator.stats();
        let backend = stats.requests("GetSecretValue");
        let attempts = provider
            .provider
            .cloud()
            .stats()
            .attempts
            .load(std::sync::atomic::Ordering::Relaxed)
            - attempts_before;
        println!("  wave {wave}:");
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
        our_p50 = pct(0.50);
        let _ = wave;
    }
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
    if args.compare_upstream {
        compare_upstream(&args, &cloud, our_p50).await?;
    }
    Ok(())
}

/// The same Mounts through the upstream algorithm, in this run.
async fn compare_upstream(args: &Args, cloud: &FakeCloud, our_p50: f64) -> anyhow::Result<()> {
    let upstream = std::sync::Arc::new(integration_tests::upstream::UpstreamAlgorithm::new(
        &cloud.emulator.url(),
        ACCESS_KEY_ID,
        ACCESS_KEY_SECRET,
        UPSTREAM_ROLE,
    ));
    let names: Vec<String> = (0..args.objects)
        .map(|i| format!("team-a/load-{i}"))
        .collect();
    cloud.emulator.reset_stats();
    let mounts = args.upstream_mounts.max(1);
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..mounts {
        let permit = semaphore.clone().acquire_owned().await?;
        let (upstream, names) = (upstream.clone(), names.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let values = upstream.mount(&names).await;
            drop(permit);
            values.map(|_| t.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await??);
    }
    let wall = started.elapsed();
    latencies.sort();
    let p50 = ms(latencies[(latencies.len() - 1) / 2]);
    let stats = cloud.emulator.stats();
    let calls = stats.requests("GetSecretValue");
    println!(
        "  upstream algorithm, same run: {mounts} Mounts x {} objects, concurrency {}: p50 {p50:.1} ms, {:.2} Mounts/s, {calls} GetSecretValue + {} STS calls ({:.1} backend calls per Mount)",
        args.objects,
        args.concurrency,
        mounts as f64 / wall.as_secs_f64(),
        stats.sts_calls(),
        (calls + stats.sts_calls()) as f64 / mounts as f64,
    );
    println!(
        "  ratio: a Mount takes {:.1}x less time here (p50 {our_p50:.1} ms vs {p50:.1} ms)",
        p50 / our_p50.max(0.001)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
