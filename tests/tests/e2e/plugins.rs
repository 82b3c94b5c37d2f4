//! The plugin sandbox: hostile plugins (traps, loops, blocking, memory and
//! output bombs, log floods) fail their object with a clear error while the
//! provider keeps serving; bad components are refused at start-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::*;
use provider::config::{Config, PluginRoute};
use tonic::Code;

fn route(path: &Path) -> PluginRoute {
    PluginRoute {
        path: Some(path.to_path_buf()),
        enabled: true,
        ..PluginRoute::default()
    }
}

fn fixture(dir: &Path, name: &str) -> PathBuf {
    let wat = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.wat"));
    let bytes = wat::parse_file(&wat).unwrap_or_else(|e| panic!("{}: {e}", wat.display()));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A provider with the testing plugin at `testing`, small limits.
async fn hostile_provider(cloud: &FakeCloud) -> TestProvider {
    let mut config = cloud.config();
    let mut testing = testing_route();
    testing.timeout = Some(Duration::from_millis(400));
    testing.memory_limit_mib = Some(16);
    testing.max_output_bytes = Some(100_000);
    config.plugins.insert("testing".into(), testing);
    TestProvider::start(config, cloud.env()).await
}

async fn still_serves(provider: &TestProvider) {
    let response = provider
        .mount(Mount::objects(
            "- objectName: echo:alive\n  objectType: testing\n- objectName: test\n",
        ))
        .await
        .expect("the provider still serves after a hostile plugin");
    assert_eq!(files(&response)["echo:alive"], "alive");
}

#[tokio::test]
async fn hostile_plugins_fail_their_mount_and_nothing_else() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = hostile_provider(&cloud).await;
    for (name, code, want) in [
        ("panic", Code::Internal, "the testing plugin crashed: "),
        ("loop", Code::DeadlineExceeded, "did not finish within"),
        (
            "sleep:10000",
            Code::DeadlineExceeded,
            "config key plugins.testing.timeout",
        ),
        (
            "alloc:64",
            Code::ResourceExhausted,
            "memory limit of 16 MiB",
        ),
        (
            "big:200000",
            Code::ResourceExhausted,
            "returned 200000 bytes; the limit is 100000",
        ),
        (
            "error:not-found",
            Code::NotFound,
            "requested not-found error",
        ),
        (
            "error:denied",
            Code::PermissionDenied,
            "requested denied error",
        ),
        (
            "error:invalid",
            Code::InvalidArgument,
            "requested invalid error",
        ),
        (
            "error:unavailable",
            Code::Unavailable,
            "requested unavailable error",
        ),
        ("error:other", Code::Internal, "requested other error"),
    ] {
        let started = std::time::Instant::now();
        let status = provider
            .mount(Mount::objects(&format!(
                "- objectName: \"{name}\"\n  objectType: testing\n"
            )))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{name}: {}", status.message());
        assert!(
            status.message().contains(want),
            "{name}: {}",
            status.message()
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        still_serves(&provider).await;
    }
    // a panic's message is part of the error
    let status = provider
        .mount(Mount::objects(
            "- objectName: panic\n  objectType: testing\n",
        ))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("testing plugin asked to panic"),
        "{}",
        status.message()
    );
    // a log flood is capped, not fatal
    provider
        .mount(Mount::objects(
            "- objectName: log:5000\n  objectType: testing\n",
        ))
        .await
        .unwrap();
    provider.stop().await;
}

#[tokio::test]
async fn wat_fixtures_trap_loop_and_memory_bomb_are_contained() {
    let cloud = FakeCloud::start(default_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = cloud.config();
    for name in ["good", "trap", "loop", "memory-bomb"] {
        let mut r = route(&fixture(dir.path(), name));
        r.timeout = Some(Duration::from_millis(300));
        r.memory_limit_mib = Some(8);
        config.plugins.insert(format!("wat-{name}"), r);
    }
    let provider = TestProvider::start(config, cloud.env()).await;
    let response = provider
        .mount(Mount::objects(
            "- objectName: anything\n  objectType: wat-good\n",
        ))
        .await
        .unwrap();
    assert_eq!(files(&response)["anything"], "from-wat");
    assert_eq!(
        versions(&response),
        [("anything".to_string(), "w1".to_string())]
    );
    for (kind, code, want) in [
        ("wat-trap", Code::Internal, "the wat-trap plugin crashed"),
        (
            "wat-loop",
            Code::DeadlineExceeded,
            "the wat-loop plugin did not finish within 300ms",
        ),
        (
            "wat-memory-bomb",
            Code::ResourceExhausted,
            "memory limit of 8 MiB",
        ),
    ] {
        let status = provider
            .mount(Mount::objects(&format!(
                "- objectName: x\n  objectType: {kind}\n"
            )))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{kind}: {}", status.message());
        assert!(
            status.message().contains(want),
            "{kind}: {}",
            status.message()
        );
    }
    provider
        .mount(Mount::objects(
            "- objectName: anything\n  objectType: wat-good\n",
        ))
        .await
        .unwrap();
    provider.stop().await;
}

#[tokio::test]
async fn concurrent_hostile_and_normal_mounts() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = std::sync::Arc::new(hostile_provider(&cloud).await);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let yaml = if i % 3 == 0 {
                "- objectName: loop\n  objectType: testing\n"
            } else {
                "- objectName: test\n- objectName: db/password\n  objectType: oos\n"
            };
            (i, provider.mount(Mount::objects(yaml)).await)
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        assert_eq!(result.is_ok(), i % 3 != 0, "mount {i}: {result:?}");
    }
}

async fn load_error(config: Config) -> String {
    provider::app::provider(config, None, Vec::new())
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn bad_components_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.plugins.insert(
        "custom".into(),
        route(&fixture(dir.path(), "bad-signature")),
    );
    let e = load_error(config).await;
    assert!(e.starts_with("plugins.custom: cannot load "), "{e}");
    assert!(
        e.contains("does not fit this host's plugin interface"),
        "{e}"
    );

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let mut config = Config::default();
    config.plugins.insert("custom".into(), route(&core));
    assert!(
        load_error(config)
            .await
            .contains("core WebAssembly module, not a component")
    );

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let mut config = Config::default();
    config.plugins.insert("custom".into(), route(&garbage));
    assert!(
        load_error(config)
            .await
            .contains("not a valid WebAssembly component")
    );

    let mut config = Config::default();
    config
        .plugins
        .insert("custom".into(), route(Path::new("/nonexistent/x.wasm")));
    let e = load_error(config).await;
    assert!(e.contains("cannot read the file"), "{e}");
}

#[tokio::test]
async fn custom_plugins_cannot_starve_the_builtins() {
    // Every custom slot is held by a component that instantiates the most
    // core modules a custom component may and then loops until its timeout.
    // The built-in KMS plugin has slots, instances and memory of its own, so
    // its Mounts are served in one round trip meanwhile.
    let cloud = FakeCloud::start(default_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = cloud.config();
    config.limits.fetch_concurrency = 4;
    config.limits.fetch_concurrency_per_namespace = 4;
    config.limits.custom_fetch_concurrency = 4;
    let mut hog = route(&fixture(dir.path(), "many-instances"));
    hog.timeout = Some(Duration::from_secs(3));
    config.plugins.insert("hog".into(), hog);
    let provider = std::sync::Arc::new(TestProvider::start(config, cloud.env()).await);

    let mut hogs = Vec::new();
    for i in 0..8 {
        let provider = provider.clone();
        hogs.push(tokio::spawn(async move {
            provider
                .mount(
                    Mount::objects(&format!("- objectName: h{i}\n  objectType: hog\n")).for_pod(
                        "hogs",
                        &format!("hog-{i}"),
                        "app",
                    ),
                )
                .await
        }));
    }
    // Every custom slot is held: four hogs have been instantiated (in
    // their slots) and are looping (the timeout only turns a hang into a
    // failure).
    let hogs_running = || {
        let text = provider.provider.metrics().encode(false);
        text.lines()
            .find_map(|line| {
                line.strip_prefix(
                    "alibabacloud_provider_plugin_instantiation_seconds_count{plugin=\"custom\"} ",
                )
            })
            .and_then(|count| count.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while hogs_running() < 4.0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("four hogs hold the custom slots");
    let started = std::time::Instant::now();
    let mut builtin = Vec::new();
    for i in 0..8 {
        let provider = provider.clone();
        builtin.push(tokio::spawn(async move {
            provider
                .mount(
                    Mount::objects(
                        "- objectName: test\n- objectName: db/password\n  objectType: oos\n",
                    )
                    .for_pod("quiet", &format!("app-{i}"), "app"),
                )
                .await
        }));
    }
    for task in builtin {
        let response = task
            .await
            .unwrap()
            .expect("a built-in Mount beside the hogs");
        assert_eq!(files(&response).len(), 2);
    }
    let builtin_took = started.elapsed();
    assert!(
        builtin_took < Duration::from_millis(2500),
        "built-in Mounts waited for the custom plugin: {builtin_took:?}"
    );
    for task in hogs {
        let status = task.await.unwrap().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{}",
            status.message()
        );
    }
    std::sync::Arc::into_inner(provider).unwrap().stop().await;
}

#[tokio::test]
async fn host_resources_a_plugin_holds_are_capped() {
    // Each leaked stream is an entry in the instance's host resource table;
    // past provider::plugin::MAX_HOST_RESOURCES the plugin is stopped instead
    // of growing the host's memory.
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = hostile_provider(&cloud).await;
    let fine = provider
        .mount(Mount::objects(
            "- objectName: leak:1000\n  objectType: testing\n",
        ))
        .await
        .unwrap();
    assert_eq!(files(&fine)["leak:1000"], "leaked");
    let status = provider
        .mount(Mount::objects(
            "- objectName: leak:100000\n  objectType: testing\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    assert!(
        status.message().contains("the testing plugin crashed"),
        "{}",
        status.message()
    );
    provider
        .mount(Mount::objects(
            "- objectName: echo:ok\n  objectType: testing\n",
        ))
        .await
        .unwrap();
    provider.stop().await;
}
