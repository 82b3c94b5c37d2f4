//! Benchmark: how long the provider binary takes from exec to a socket that
//! accepts connections (what a restarted DaemonSet pod waits for), and its
//! resident memory then. Three cases: the built-in plugins only (loaded from
//! the native code build.rs embedded), a custom plugin compiled at start, and
//! the same custom plugin loaded from a warm `[plugin_cache]`.
//!
//! ```sh
//! cargo build --release -p csi-secrets-store-provider-alibabacloud
//! cargo run --release -p integration-tests --bin start-time -- [RUNS]
//! ```
//!
//! The binary measured is the provider built next to this one (the same
//! profile), or `--binary PATH`.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

const BINARY: &str = "csi-secrets-store-provider-alibabacloud";

fn main() -> anyhow::Result<()> {
    let mut runs = 20usize;
    let mut binary = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--binary" => binary = Some(PathBuf::from(args.next().context("--binary PATH")?)),
            n => {
                runs = n
                    .parse()
                    .context("usage: start-time [RUNS] [--binary PATH]")?
            }
        }
    }
    let binary = match binary {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's directory")?
            .join(BINARY),
    };
    if !binary.is_file() {
        bail!(
            "{} does not exist: build it first (cargo build --release -p {BINARY}) or pass --binary PATH",
            binary.display()
        );
    }
    let work = tempfile::tempdir()?;
    let plugin = PathBuf::from(format!(
        "{}/testing_plugin.wasm",
        provider::plugin::BUILT_PLUGIN_DIR
    ));
    let cache = work.path().join("plugin-cache");
    let custom = |cache_dir: &str| {
        format!(
            "[plugin_cache]\ndir = {cache_dir:?}\n[plugins.testing]\npath = {:?}\n[plugins.testing.capabilities]\nalibaba_cloud = true\npod_info = true\nhttp = [\"https://vault.internal:8200\"]\n",
            plugin.display().to_string()
        )
    };
    println!("{} ({runs} runs each)", binary.display());
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "start to socket ready", "min", "p50", "p90", "max", "RSS p50"
    );
    let cases: [(&str, String, bool); 3] = [
        ("built-in plugins (precompiled)", String::new(), false),
        ("+ a custom plugin, compiled", custom(""), false),
        (
            "+ a custom plugin, from [plugin_cache]",
            custom(&cache.display().to_string()),
            true,
        ),
    ];
    for (name, config, warm) in cases {
        let config_path = work.path().join("config.toml");
        std::fs::write(&config_path, &config)?;
        if warm {
            // One start fills the cache.
            start(&binary, work.path(), &config_path)?;
        }
        let mut times = Vec::with_capacity(runs);
        let mut rss = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (time, kib) = start(&binary, work.path(), &config_path)?;
            times.push(time);
            rss.push(kib);
        }
        times.sort();
        rss.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<40} {:>9} {:>9} {:>9} {:>9} {:>6} MiB",
            ms(times[0]),
            ms(at(0.5)),
            ms(at(0.9)),
            ms(times[times.len() - 1]),
            rss[rss.len() / 2] / 1024
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// One start: exec to the first accepted connection on the socket, and the
/// resident memory then (KiB). The process is stopped afterwards.
fn start(binary: &Path, work: &Path, config: &Path) -> anyhow::Result<(Duration, u64)> {
    let providers = work.join("providers");
    let _ = std::fs::remove_dir_all(&providers);
    std::fs::create_dir_all(&providers)?;
    let socket = providers.join("alibabacloud.sock");
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["serve", "--healthz-port", "0", "--region", "cn-hangzhou"])
        .arg("--provider-volume")
        .arg(&providers)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut child = Stop(child);
    loop {
        if UnixStream::connect(&socket).is_ok() {
            break;
        }
        if let Some(status) = child.0.try_wait()? {
            let mut err = String::new();
            if let Some(mut stderr) = child.0.stderr.take() {
                std::io::Read::read_to_string(&mut stderr, &mut err)?;
            }
            bail!("the provider exited ({status}) before its socket was ready: {err}");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no socket after 30 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id()))?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Ok((elapsed, rss))
}

/// Stops the provider however the measurement ends (SIGKILL: what happens
/// after start-up is not measured).
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
