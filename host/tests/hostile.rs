//! The hostile-input suite: a tenant's worst SecretProviderClasses, sent as
//! the CSI driver sends them over the provider binary's real Unix socket.
//! Each must fail fast with a clear status, the process must keep serving (a
//! good Mount right after each), and its peak memory must stay under the
//! chart's container limit. The figures (time per case, peak RSS) are
//! printed: `cargo test -p csi-secrets-store-provider-alibabacloud --test
//! hostile -- --nocapture`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alibabacloud_emulator::{AccessKey, Emulator, KmsSecret, Seed};
use provider::proto::MountRequest;
use provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_csi-secrets-store-provider-alibabacloud");
/// The chart's default `linux.resources.limits.memory`.
const CHART_MEMORY_LIMIT: u64 = 256 << 20;
/// A hostile case must be answered within this (debug build, shared
/// machine); the figures printed are what to read.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

struct Provider {
    child: Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    async fn start(emulator: &Emulator) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("providers");
        std::fs::create_dir(&providers).unwrap();
        let config = dir.path().join("config.toml");
        // Small per-namespace shares so that the flood case reaches them.
        std::fs::write(
            &config,
            "[limits]\nmounts_in_flight = 16\nmounts_in_flight_per_namespace = 4\n",
        )
        .unwrap();
        let url = emulator.url();
        let mut child = Command::new(BIN)
            .args(["serve", "--healthz-port", "0", "--region", "cn-hangzhou"])
            .arg("--provider-volume")
            .arg(&providers)
            .arg("--config")
            .arg(&config)
            .env("ALIBABACLOUD_KMS_ENDPOINT", &url)
            .env("ALIBABACLOUD_OOS_ENDPOINT", &url)
            .env("ACCESS_KEY_ID", "hostile-test-id")
            .env("SECRET_ACCESS_KEY", "hostile-test-secret")
            .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
            // Its "provider ready" line is logged at info.
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the provider binary");
        // Ready when its log (on stderr) says so; the rest is drained.
        let log = child.stderr.take().expect("piped stderr");
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut ready = Some(ready);
            for line in std::io::BufReader::new(log).lines() {
                let Ok(line) = line else { break };
                if line.contains("provider ready")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), is_ready)
            .await
            .expect("the provider did not say it was ready")
            .expect("the provider stopped before it was ready");
        let socket = providers.join("alibabacloud.sock");
        assert!(socket.exists(), "ready without its socket");
        Provider {
            child,
            socket,
            _dir: dir,
        }
    }

    async fn client(&self) -> CsiDriverProviderClient<Channel> {
        provider::client::provider_client(&self.socket)
            .await
            .expect("connecting to the socket")
            .max_decoding_message_size(8 << 20)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident memory of the provider process (VmHWM).
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib << 10)
            .expect("VmHWM in /proc/<pid>/status")
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(namespace: &str, objects: &str) -> MountRequest {
    let attributes: BTreeMap<&str, &str> = [
        ("csi.storage.k8s.io/pod.name", "app-0"),
        ("csi.storage.k8s.io/pod.namespace", namespace),
        ("csi.storage.k8s.io/pod.uid", "0b6c2f1e-7d9c"),
        ("csi.storage.k8s.io/serviceAccount.name", "app"),
        ("objects", objects),
    ]
    .into();
    MountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        secrets: "{}".into(),
        target_path: "/var/lib/kubelet/pods/0b6c2f1e-7d9c/volumes/kubernetes.io~csi/secrets/mount"
            .into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    }
}

fn raw_request(attributes: String) -> MountRequest {
    MountRequest {
        attributes,
        secrets: "{}".into(),
        target_path: "/t".into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    }
}

const GOOD: &str =
    "- objectName: test\n  jmesPath:\n    - path: username\n      objectAlias: username\n";

/// [`GOOD`] for another secret of the same content (the flood's).
const FLOOD: &str =
    "- objectName: flood\n  jmesPath:\n    - path: username\n      objectAlias: username\n";

fn jmes(path: &str) -> String {
    format!(
        "- objectName: test\n  jmesPath:\n    - path: {}\n      objectAlias: out\n",
        serde_json::to_string(path).unwrap()
    )
}

fn alias_bomb() -> String {
    format!(
        "- &a [{}]\n- &b [{}]\n- [{}]\n",
        vec!["x"; 300].join(","),
        vec!["*a"; 300].join(","),
        vec!["*b"; 300].join(",")
    )
}

/// The cases: name, request, expected code, a part of the expected message.
fn cases() -> Vec<(&'static str, MountRequest, Code, &'static str)> {
    let objects =
        |n: usize| -> String { (0..n).map(|i| format!("- objectName: s{i}\n")).collect() };
    vec![
        (
            "jmesPath: 5,000 '!' then 'a'",
            request("tenant", &jmes(&format!("{}a", "!".repeat(5000)))),
            Code::InvalidArgument,
            "jmesPath[0]: path is 5001 bytes long",
        ),
        (
            "jmesPath: 500 '!' then 'a'",
            request("tenant", &jmes(&format!("{}a", "!".repeat(500)))),
            Code::InvalidArgument,
            "MAX_NESTING_DEPTH",
        ),
        (
            "jmesPath: 5,000 '(' + 'a' + 5,000 ')'",
            request(
                "tenant",
                &jmes(&format!("{}a{}", "(".repeat(5000), ")".repeat(5000))),
            ),
            Code::InvalidArgument,
            "jmesPath[0]: path is 10001 bytes long",
        ),
        (
            "jmesPath: a.a.a... (20,000 segments)",
            request("tenant", &jmes(&vec!["a"; 20_000].join("."))),
            Code::InvalidArgument,
            "jmesPath[0]: path is 39999 bytes long",
        ),
        (
            "jmesPath: a.a.a... (400 segments)",
            request("tenant", &jmes(&vec!["a"; 400].join("."))),
            Code::InvalidArgument,
            "MAX_AST_DEPTH",
        ),
        (
            "jmesPath: a.a.a... (100,000 segments)",
            request("tenant", &jmes(&vec!["a"; 100_000].join("."))),
            Code::OutOfRange,
            "message length too large",
        ),
        (
            "jmesPath: [@,@]| x30 then to_string(@)",
            request(
                "tenant",
                &jmes(&format!("{}to_string(@)", "[@,@]|".repeat(30))),
            ),
            Code::InvalidArgument,
            "EVAL_FUEL",
        ),
        (
            "YAML alias fan-out (2.4 KB)",
            request("tenant", &alias_bomb()),
            Code::InvalidArgument,
            "YAML nodes",
        ),
        (
            "objectName nested in 100,000 '[' ... ']'",
            request(
                "tenant",
                &format!(
                    "- objectName: {}a{}\n",
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
            ),
            Code::OutOfRange,
            "message length too large",
        ),
        (
            "objectName nested in 20,000 '[' ... ']'",
            request(
                "tenant",
                &format!(
                    "- objectName: {}a{}\n",
                    "[".repeat(20_000),
                    "]".repeat(20_000)
                ),
            ),
            Code::InvalidArgument,
            "'[' and '{' characters",
        ),
        (
            "flow mappings nested 5,000 deep",
            request(
                "tenant",
                &format!("{}{}", "{a: ".repeat(5000), "}".repeat(5000)),
            ),
            Code::InvalidArgument,
            "'[' and '{' characters",
        ),
        (
            "20,000 objects",
            request("tenant", &objects(20_000)),
            Code::OutOfRange,
            "message length too large",
        ),
        (
            "an objects text over limits.max_objects_bytes",
            request("tenant", &format!("- objectName: {}\n", "x".repeat(50_000))),
            Code::InvalidArgument,
            "limits.max_objects_bytes",
        ),
        (
            "257 objects",
            request("tenant", &objects(257)),
            Code::InvalidArgument,
            "limits.max_objects",
        ),
        (
            "attributes nested 25,000 deep",
            raw_request(format!("{}{}", "[".repeat(25_000), "]".repeat(25_000))),
            Code::InvalidArgument,
            "failed to unmarshal attributes",
        ),
        (
            "a 1 MiB request",
            request(
                "tenant",
                &format!("- objectName: {}\n", "x".repeat(1 << 20)),
            ),
            Code::OutOfRange,
            "",
        ),
        (
            "65 jmesPath entries",
            request(
                "tenant",
                &format!(
                    "- objectName: test\n  jmesPath:\n{}",
                    (0..65)
                        .map(|i| format!("    - {{path: username, objectAlias: u{i}}}\n"))
                        .collect::<String>()
                ),
            ),
            Code::InvalidArgument,
            "limit is 64 per object",
        ),
        (
            "a YAML tag",
            request("tenant", "- objectName: !vault secret/db\n"),
            Code::InvalidArgument,
            "YAML tag",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_fail_fast_and_the_provider_keeps_serving() {
    let seed = Seed::default()
        .with_access_key(AccessKey::new("hostile-test-id", "hostile-test-secret"))
        .with_kms_secret(KmsSecret::text(
            "test",
            r#"{"username":"testuser","password":"testpassword"}"#,
        ));
    let emulator = Emulator::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut provider = Provider::start(&emulator).await;
    let mut client = provider.client().await;
    let idle = provider.peak_rss();
    client
        .mount(request("tenant", GOOD))
        .await
        .expect("a good Mount before the suite");

    let mut report = Vec::new();
    for (name, hostile, code, want) in cases() {
        let started = Instant::now();
        let status = tokio::time::timeout(ANSWER_WITHIN * 2, client.mount(hostile))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer within {:?}", ANSWER_WITHIN * 2))
            .expect_err(name);
        let took = started.elapsed();
        assert!(provider.alive(), "{name}: the provider process died");
        assert_eq!(status.code(), code, "{name}: {}", status.message());
        assert!(
            status.message().contains(want),
            "{name}: {:?} lacks {want:?}",
            status.message()
        );
        assert!(took < ANSWER_WITHIN, "{name}: answered after {took:?}");
        let response = client
            .mount(request("tenant", GOOD))
            .await
            .unwrap_or_else(|e| panic!("{name}: the good Mount after it failed: {e}"));
        assert_eq!(response.into_inner().files.len(), 2);
        report.push((
            name,
            took,
            status.message().chars().take(110).collect::<String>(),
        ));
    }

    let peak = provider.peak_rss();
    println!("hostile-input suite against {BIN}");
    for (name, took, message) in &report {
        println!(
            "  {:>8.1} ms  {name:<42} {message}",
            took.as_secs_f64() * 1e3
        );
    }
    println!(
        "  provider RSS: idle {} MiB, peak over the suite {} MiB (chart limit {} MiB)",
        idle >> 20,
        peak >> 20,
        CHART_MEMORY_LIMIT >> 20
    );
    assert!(peak < CHART_MEMORY_LIMIT, "peak RSS {} MiB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_flooding_the_node_is_held_to_its_share() {
    let secret = r#"{"username":"testuser","password":"testpassword"}"#;
    let seed = Seed::default()
        .with_access_key(AccessKey::new("hostile-test-id", "hostile-test-secret"))
        .with_kms_secret(KmsSecret::text("test", secret))
        .with_kms_secret(KmsSecret::text("flood", secret));
    let emulator = Emulator::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // The flood's backend calls wait at the emulator until released: its
    // Mounts stay in flight for as long as the test needs them to.
    let held = emulator.hold_object("GetSecretValue", "flood");
    let mut provider = Provider::start(&emulator).await;
    // 40 Mounts at once from one namespace: 4 run, 4 wait, the rest are
    // turned away at once with UNAVAILABLE (the driver retries those).
    let (done, mut outcomes_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..40 {
        let mut client = provider.client().await;
        let done = done.clone();
        tokio::spawn(async move {
            let outcome = client
                .mount(request("flooder", FLOOD))
                .await
                .map(|_| ())
                .map_err(|s| s.code());
            let _ = done.send(outcome);
        });
    }
    drop(done);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |outcome: Result<(), Code>| {
        let key = match outcome {
            Ok(()) => "ok".to_string(),
            Err(code) => format!("{code:?}"),
        };
        *outcomes.entry(key).or_default() += 1;
    };
    // The running ones have reached the backend, and the ones turned away
    // have their answers (the timeouts only turn a hang into a failure).
    tokio::time::timeout(Duration::from_secs(30), held.arrivals(1))
        .await
        .expect("the flood's fetch reached the emulator");
    for _ in 0..32 {
        match tokio::time::timeout(Duration::from_secs(30), outcomes_rx.recv()).await {
            Ok(Some(outcome)) => count(outcome),
            _ => break,
        }
    }
    // Another namespace is served in one round trip meanwhile.
    let started = Instant::now();
    let mut client = provider.client().await;
    client
        .mount(request("quiet", GOOD))
        .await
        .expect("the quiet namespace's Mount");
    let quiet = started.elapsed();
    held.release();
    while let Some(outcome) = outcomes_rx.recv().await {
        count(outcome);
    }
    println!(
        "flood of 40 Mounts from one namespace: {outcomes:?}; another namespace's Mount took {quiet:?}"
    );
    assert!(provider.alive());
    assert_eq!(outcomes.get("ok"), Some(&8), "{outcomes:?}");
    assert_eq!(outcomes.get("Unavailable"), Some(&32), "{outcomes:?}");
    // The flood is still held at the emulator: queued behind it, the quiet
    // Mount could not have finished at all.
    assert!(quiet < Duration::from_millis(950), "{quiet:?}");
}
