//! The benchmark binaries still run: a few iterations each, checking that
//! they print their figures (the figures themselves are not judged here).

use std::process::Command;

fn run(binary: &str, args: &[&str]) -> String {
    let output = Command::new(binary).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{binary} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn mount_load_prints_its_figures() {
    let out = run(
        env!("CARGO_BIN_EXE_mount-load"),
        &[
            "--mounts",
            "4",
            "--objects",
            "3",
            "--latency",
            "1ms",
            "--warmup",
            "1",
        ],
    );
    assert!(out.contains("latency per Mount: p50"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    assert!(out.contains(" GetSecretValue ("), "{out}");

    // Side by side with the upstream algorithm, in one run.
    let out = run(
        env!("CARGO_BIN_EXE_mount-load"),
        &[
            "--mounts",
            "3",
            "--objects",
            "2",
            "--latency",
            "1ms",
            "--warmup",
            "1",
            "--waves",
            "2",
            "--compare-upstream",
            "--upstream-mounts",
            "2",
        ],
    );
    assert!(out.contains("wave 2:"), "{out}");
    assert!(
        out.contains("upstream algorithm, same run: 2 Mounts x 2 objects"),
        "{out}"
    );
    assert!(out.contains("4 GetSecretValue + 2 STS calls"), "{out}");
    assert!(out.contains("ratio: a Mount takes"), "{out}");

    let out = run(
        env!("CARGO_BIN_EXE_mount-load"),
        &[
            "--mounts",
            "6",
            "--objects",
            "1",
            "--latency",
            "0ms",
            "--pod-identity",
        ],
    );
    assert!(out.contains("1 STS AssumeRoleWithOIDC calls"), "{out}");

    // The value cache from cold: the first wave fetches each object once,
    // the second none.
    let out = run(
        env!("CARGO_BIN_EXE_mount-load"),
        &[
            "--mounts",
            "4",
            "--objects",
            "2",
            "--latency",
            "1ms",
            "--warmup",
            "0",
            "--waves",
            "2",
            "--cache",
            "1m",
            "--connection-per-mount",
        ],
    );
    assert!(
        out.contains("value cache ttl 1m, a connection per Mount"),
        "{out}"
    );
    let waves: Vec<&str> = out.split("wave ").skip(1).collect();
    assert_eq!(waves.len(), 2, "{out}");
    assert!(
        waves[0].contains("backend calls: 2 GetSecretValue"),
        "{out}"
    );
    assert!(
        waves[1].contains("backend calls: 0 GetSecretValue"),
        "{out}"
    );
}

#[test]
fn start_time_prints_its_figures() {
    // The provider binary of this build (cargo builds the workspace's
    // binaries for integration tests).
    let provider = env!("CARGO_BIN_EXE_start-time")
        .replace("start-time", "csi-secrets-store-provider-alibabacloud");
    if !std::path::Path::new(&provider).is_file() {
        // Built by `cargo build --workspace --bins` (scripts/test) first.
        eprintln!("skipped: {provider} is not built");
        return;
    }
    let out = run(
        env!("CARGO_BIN_EXE_start-time"),
        &["2", "--binary", &provider],
    );
    for case in [
        "built-in plugins (precompiled)",
        "+ a custom plugin, compiled",
        "+ a custom plugin, from [plugin_cache]",
    ] {
        assert!(out.contains(case), "{out}");
    }
    assert!(out.contains(" MiB"), "{out}");
}

#[test]
fn plugin_cost_prints_its_figures() {
    let out = run(env!("CARGO_BIN_EXE_plugin-cost"), &["20"]);
    assert!(out.contains("p50") && out.contains("p99"), "{out}");
}
