//! Metrics over HTTP: Mounts through the real socket, then a scrape of the
//! health server's `/metrics`, in both formats, to see the counters move.

use std::time::Duration;

use integration_tests::*;
use provider::health::{self, HealthSettings};
use tonic::Code;

/// The value of the sample `name` whose labels include every `labels`
/// pair (`key="value"`), if any.
/// An assertion that the scrape `text` has `name{labels}` at `value`.
fn expect_in(text: &str) -> impl Fn(&str, &[&str], f64) + '_ {
    move |name, labels, value| {
        assert_eq!(
            sample(text, name, labels),
            Some(value),
            "{name}{labels:?} in\n{text}"
        );
    }
}

fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| rest.contains(l)))
                .then(|| value.parse().ok())
                .flatten()
        })
}

struct Scraper {
    url: String,
    client: reqwest::Client,
}

impl Scraper {
    async fn scrape(&self, openmetrics: bool) -> (String, String) {
        let mut request = self.client.get(&self.url);
        if openmetrics {
            request = request.header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            );
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        (content_type, response.text().await.unwrap())
    }
}

async fn serve_metrics(provider: &TestProvider) -> (Scraper, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, serve) = health::bind(
        HealthSettings {
            bind: Some("127.0.0.1".parse().unwrap()),
            port: 0,
            path: "/healthz".into(),
            timeout: Duration::from_secs(2),
            socket: provider.socket.clone(),
            metrics: Some(provider.provider.metrics().clone()),
        },
        async {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    tokio::spawn(serve);
    provider::install_crypto_provider();
    let scraper = Scraper {
        url: format!("http://{addr}/metrics"),
        client: reqwest::Client::new(),
    };
    (scraper, stop)
}

#[tokio::test]
async fn a_mount_moves_the_mount_backend_and_fetch_counters() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let (scraper, stop) = serve_metrics(&provider).await;

    let (_, before) = scraper.scrape(false).await;
    assert_eq!(
        sample(
            &before,
            "alibabacloud_provider_mounts_total",
            &[r#"grpc_code="OK""#]
        ),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "alibabacloud_provider_build_info", &["version="]),
        Some(1.0)
    );

    provider
        .mount(Mount::objects(
            "- objectName: test\n- objectName: db/password\n  objectType: oos\n",
        ))
        .await
        .unwrap();
    let missing = provider
        .mount(Mount::objects("- objectName: no-such-secret\n"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let (content_type, text) = scraper.scrape(false).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let expect = expect_in(&text);
    expect(
        "alibabacloud_provider_mounts_total",
        &[r#"grpc_code="OK""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_mounts_total",
        &[r#"grpc_code="NotFound""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_mount_duration_seconds_count",
        &[r#"grpc_code="OK""#],
        1.0,
    );
    expect("alibabacloud_provider_mounts_in_flight", &[], 0.0);
    expect(
        "alibabacloud_provider_backend_calls_total",
        &[
            r#"product="kms""#,
            r#"action="GetSecretValue""#,
            r#"code="ok""#,
        ],
        1.0,
    );
    expect(
        "alibabacloud_provider_backend_calls_total",
        &[
            r#"product="kms""#,
            r#"action="GetSecretValue""#,
            r#"code="Forbidden.ResourceNotFound""#,
        ],
        1.0,
    );
    expect(
        "alibabacloud_provider_backend_calls_total",
        &[
            r#"product="oos""#,
            r#"action="GetSecretParameter""#,
            r#"code="ok""#,
        ],
        1.0,
    );
    expect(
        "alibabacloud_provider_object_fetches_total",
        &[r#"object_type="kms""#, r#"result="ok""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_object_fetches_total",
        &[r#"object_type="kms""#, r#"result="not_found""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_object_fetches_total",
        &[r#"object_type="oos""#, r#"result="ok""#],
        1.0,
    );
    expect("alibabacloud_provider_object_fetches_in_flight", &[], 0.0);
    expect(
        "alibabacloud_provider_credential_resolutions_total",
        &[r#"link="environment_access_key""#],
        2.0,
    );
    expect(
        "alibabacloud_provider_plugin_instantiation_seconds_count",
        &[r#"plugin="kms""#],
        2.0,
    );
    // No pod, namespace or object name in any sample.
    for name in [
        "team-a",
        "app-7d9c",
        "db/password",
        "no-such-secret",
        "test-spc",
    ] {
        assert!(
            !text.contains(name),
            "{name} appears in the metrics:\n{text}"
        );
    }

    let (content_type, open) = scraper.scrape(true).await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"));
    assert_eq!(
        sample(
            &open,
            "alibabacloud_provider_mounts_total",
            &[r#"grpc_code="OK""#]
        ),
        Some(1.0)
    );
    let _ = stop.send(());
    provider.stop().await;
}

#[tokio::test]
async fn pod_identity_counts_credential_cache_misses_then_hits() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let (scraper, stop) = serve_metrics(&provider).await;
    for _ in 0..2 {
        provider
            .mount(
                Mount::objects("- objectName: team-a/db\n  objectAlias: out\n")
                    .for_pod("team-a", "app-1", "app")
                    .with_pod_identity(),
            )
            .await
            .unwrap();
    }
    let (_, text) = scraper.scrape(false).await;
    let value = |name: &str, labels: &[&str]| sample(&text, name, labels);
    assert_eq!(
        value(
            "alibabacloud_provider_credential_cache_requests_total",
            &[r#"link="pod_identity""#, r#"result="miss""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "alibabacloud_provider_credential_cache_requests_total",
            &[r#"link="pod_identity""#, r#"result="hit""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "alibabacloud_provider_credential_refreshes_total",
            &[r#"link="pod_identity""#, r#"result="ok""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "alibabacloud_provider_backend_calls_total",
            &[
                r#"product="sts""#,
                r#"action="AssumeRoleWithOIDC""#,
                r#"code="ok""#
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "alibabacloud_provider_credential_resolutions_total",
            &[r#"link="pod_identity""#]
        ),
        Some(2.0),
        "{text}"
    );
    for name in ["team-a", "app-1", "team-a/db", "role/"] {
        assert!(!text.contains(name), "{name} appears in:\n{text}");
    }
    let _ = stop.send(());
    provider.stop().await;
}

fn wat_plugin(dir: &std::path::Path, name: &str) -> provider::config::PluginRoute {
    let wat = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.wat"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_file(&wat).unwrap()).unwrap();
    provider::config::PluginRoute {
        path: Some(path),
        enabled: true,
        timeout: Some(Duration::from_millis(300)),
        ..provider::config::PluginRoute::default()
    }
}

#[tokio::test]
async fn traps_timeouts_throttling_retries_and_the_value_cache_are_counted() {
    let cloud = FakeCloud::start(default_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = cloud.config();
    config.cache.enabled = true;
    config
        .plugins
        .insert("wat-trap".into(), wat_plugin(dir.path(), "trap"));
    config
        .plugins
        .insert("wat-loop".into(), wat_plugin(dir.path(), "loop"));
    let provider = TestProvider::start(config, cloud.env()).await;
    let (scraper, stop) = serve_metrics(&provider).await;

    for (kind, code) in [
        ("wat-trap", Code::Internal),
        ("wat-loop", Code::DeadlineExceeded),
    ] {
        let status = provider
            .mount(Mount::objects(&format!(
                "- objectName: x\n  objectType: {kind}\n"
            )))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
    }
    cloud
        .emulator
        .inject_fault(emulator::Fault::throttling("GetSecretValue").times(2));
    for _ in 0..2 {
        // The second is answered by the value cache.
        provider
            .mount(Mount::objects("- objectName: test\n"))
            .await
            .unwrap();
    }

    let (_, text) = scraper.scrape(false).await;
    let expect = expect_in(&text);
    expect(
        "alibabacloud_provider_plugin_traps_total",
        &[r#"plugin="custom""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_plugin_timeouts_total",
        &[r#"plugin="custom""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_plugin_traps_total",
        &[r#"plugin="kms""#],
        0.0,
    );
    expect(
        "alibabacloud_provider_object_fetches_total",
        &[r#"object_type="wat-trap""#, r#"result="internal""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_mounts_total",
        &[r#"grpc_code="DeadlineExceeded""#],
        1.0,
    );
    let kms = [r#"product="kms""#, r#"action="GetSecretValue""#];
    expect("alibabacloud_provider_backend_throttled_total", &kms, 2.0);
    expect("alibabacloud_provider_backend_retries_total", &kms, 2.0);
    expect(
        "alibabacloud_provider_backend_calls_total",
        &[kms[0], kms[1], r#"code="ok""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_value_cache_requests_total",
        &[r#"result="miss""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_value_cache_requests_total",
        &[r#"result="hit""#],
        1.0,
    );
    expect(
        "alibabacloud_provider_object_fetches_total",
        &[r#"object_type="kms""#, r#"result="ok""#],
        2.0,
    );
    let _ = stop.send(());
    provider.stop().await;
}
