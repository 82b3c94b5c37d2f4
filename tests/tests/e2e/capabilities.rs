//! Capabilities through real Mounts: each one granted and refused, and the
//! egress rules (allowlist, redirects, internal addresses, size and time
//! caps, host-call budget) held against a hostile plugin.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use integration_tests::*;
use provider::config::{Capabilities, PluginRoute};
use tonic::Code;

/// A local web server: `/ok`, `/big`, `/slow`, `/redirect-to/<port>` (to
/// `http://127.0.0.1:<port>/ok`), `/hop` (to its own `/ok`).
async fn web_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/big", get(|| async { "x".repeat(2 << 20) }))
        .route(
            "/slow",
            // Never answers: only the plugin's time cap ends the request.
            get(std::future::pending::<&'static str>),
        )
        .route(
            "/redirect-to/{port}",
            get(
                |axum::extract::Path(port): axum::extract::Path<u16>| async move {
                    Redirect::temporary(&format!("http://127.0.0.1:{port}/ok"))
                },
            ),
        )
        .route("/hop", get(|| async { Redirect::temporary("/ok") }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A testing-plugin route with `capabilities`; as the plugin imports http and
/// identity, a harmless grant of each is added where the test grants none.
fn route(mut capabilities: Capabilities) -> PluginRoute {
    if capabilities.http.is_empty() {
        capabilities.http = vec!["https://example.invalid".into()];
    }
    if !capabilities.pod_info
        && capabilities.service_account_audiences.is_empty()
        && capabilities.node_publish_secret_keys.is_empty()
    {
        capabilities.service_account_audiences = vec!["unused-audience".into()];
    }
    PluginRoute {
        path: Some(built_plugin("testing_plugin.wasm")),
        enabled: true,
        max_host_calls: Some(10),
        http_timeout: Some(Duration::from_millis(500)),
        http_max_response_bytes: Some(1 << 20),
        capabilities: Capabilities {
            alibaba_cloud: Some(true),
            ..capabilities
        },
        ..PluginRoute::default()
    }
}

async fn provider_with(cloud: &FakeCloud, capabilities: Capabilities) -> TestProvider {
    let mut config = cloud.config();
    config.plugins.insert("testing".into(), route(capabilities));
    TestProvider::start(config, cloud.env()).await
}

async fn fetch(provider: &TestProvider, name: &str) -> Result<String, tonic::Status> {
    fetch_mount(
        provider,
        Mount::objects(&format!(
            "- objectName: {name:?}\n  objectType: testing\n  objectAlias: out\n"
        )),
    )
    .await
}

async fn fetch_mount(provider: &TestProvider, mount: Mount) -> Result<String, tonic::Status> {
    provider
        .mount(mount)
        .await
        .map(|r| files(&r)["out"].clone())
}

#[tokio::test]
async fn http_goes_only_to_allowed_origins() {
    let cloud = FakeCloud::start(default_seed()).await;
    let web = web_server().await;
    let other = web_server().await;
    let provider = provider_with(
        &cloud,
        Capabilities {
            http: vec![format!("http://127.0.0.1:{}", web.port())],
            allow_internal_addresses: true,
            ..Capabilities::default()
        },
    )
    .await;
    assert_eq!(
        fetch(
            &provider,
            &format!("http:http://127.0.0.1:{}/ok", web.port())
        )
        .await
        .unwrap(),
        "200 fine"
    );
    // a redirect within the allowlist is followed
    assert_eq!(
        fetch(
            &provider,
            &format!("http:http://127.0.0.1:{}/hop", web.port())
        )
        .await
        .unwrap(),
        "200 fine"
    );

    for (url, want) in [
        (
            format!("http://127.0.0.1:{}/ok", other.port()),
            "is not an allowed origin of this plugin",
        ),
        (
            format!("https://127.0.0.1:{}/ok", web.port()),
            "is not an allowed origin",
        ),
        (
            "https://attacker.example/".to_string(),
            "is not an allowed origin",
        ),
        (
            format!(
                "http://127.0.0.1:{}/redirect-to/{}",
                web.port(),
                other.port()
            ),
            "a redirect leaves the allowlist",
        ),
        (
            format!("http://127.0.0.1:{}/big", web.port()),
            "larger than 1048576 bytes",
        ),
        (format!("http://127.0.0.1:{}/slow", web.port()), "timed out"),
        ("file:///etc/passwd".to_string(), "not HTTP(S)"),
    ] {
        let status = fetch(&provider, &format!("http:{url}")).await.unwrap_err();
        assert!(
            status.message().contains(want),
            "{url}: {}",
            status.message()
        );
    }
    provider.stop().await;
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let cloud = FakeCloud::start(default_seed()).await;
    let web = web_server().await;
    let provider = provider_with(
        &cloud,
        Capabilities {
            http: vec![
                format!("http://127.0.0.1:{}", web.port()),
                format!("http://localhost:{}", web.port()),
                "http://100.100.100.200".into(),
                "http://169.254.169.254".into(),
                "http://10.0.0.1".into(),
            ],
            allow_internal_addresses: false,
            ..Capabilities::default()
        },
    )
    .await;
    for (url, want) in [
        (
            format!("http://127.0.0.1:{}/ok", web.port()),
            "127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122); plugins.testing.capabilities.allow_internal_addresses is false",
        ),
        (
            "http://100.100.100.200/latest/meta-data/".to_string(),
            "100.100.100.200 is in 100.100.100.200/32 (the Alibaba Cloud ECS metadata server)",
        ),
        (
            "http://169.254.169.254/".to_string(),
            "169.254.169.254 is in 169.254.0.0/16 (link-local",
        ),
        (
            "http://10.0.0.1/".to_string(),
            "10.0.0.1 is in 10.0.0.0/8 (private, RFC 1918)",
        ),
        // a name that resolves to an internal address (DNS rebinding) goes nowhere
        (
            format!("http://localhost:{}/ok", web.port()),
            "localhost resolves to no address the plugin may reach: ",
        ),
    ] {
        let status = fetch(&provider, &format!("http:{url}")).await.unwrap_err();
        assert!(
            status.message().contains(want),
            "{url}: {}",
            status.message()
        );
    }
    // the resolver's refusal names the ranges and the grant
    let status = fetch(
        &provider,
        &format!("http:http://localhost:{}/ok", web.port()),
    )
    .await
    .unwrap_err();
    for want in [
        "(loopback, RFC 1122)",
        "plugins.testing.capabilities.allow_internal_addresses is false",
    ] {
        assert!(status.message().contains(want), "{}", status.message());
    }
    provider.stop().await;
}

#[tokio::test]
async fn identity_items_only_when_granted() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = provider_with(
        &cloud,
        Capabilities {
            service_account_audiences: vec!["vault".into()],
            node_publish_secret_keys: vec!["vault_token".into()],
            pod_info: true,
            ..Capabilities::default()
        },
    )
    .await;
    let token = pod_token_for("team-a", "app", "vault");
    let mount = |name: &str| {
        Mount::objects(&format!(
            "- objectName: {name:?}\n  objectType: testing\n  objectAlias: out\n"
        ))
        .for_pod("team-a", "app-1", "app")
        .attribute(
            "csi.storage.k8s.io/serviceAccount.tokens",
            &tokens_json("vault", &token),
        )
        .secret("vault_token", "s.vault-token")
        .secret("other_key", "not-for-the-plugin")
    };
    assert_eq!(
        fetch_mount(&provider, mount("token:vault")).await.unwrap(),
        token
    );
    assert_eq!(
        fetch_mount(&provider, mount("secret:vault_token"))
            .await
            .unwrap(),
        "s.vault-token"
    );
    assert_eq!(
        fetch_mount(&provider, mount("pod")).await.unwrap(),
        "team-a/app-1 0b6c2f1e-7d9c app"
    );
    for (name, code, want) in [
        (
            "token:sts.aliyuncs.com",
            Code::PermissionDenied,
            "not granted tokens for audience \"sts.aliyuncs.com\"",
        ),
        (
            "secret:other_key",
            Code::PermissionDenied,
            "not granted the nodePublishSecretRef key \"other_key\"",
        ),
    ] {
        let status = fetch_mount(&provider, mount(name)).await.unwrap_err();
        assert_eq!(status.code(), code, "{name}: {}", status.message());
        assert!(
            status.message().contains(want),
            "{name}: {}",
            status.message()
        );
    }
    // granted, but the driver sent no token for the audience
    let status = fetch(&provider, "token:vault").await.unwrap_err();
    assert!(
        status.message().contains("tokenRequests"),
        "{}",
        status.message()
    );
    provider.stop().await;

    let no_pod = provider_with(
        &cloud,
        Capabilities {
            service_account_audiences: vec!["vault".into()],
            ..Capabilities::default()
        },
    )
    .await;
    let status = fetch(&no_pod, "pod").await.unwrap_err();
    assert!(
        status.message().contains("not granted the pod's identity"),
        "{}",
        status.message()
    );
    no_pod.stop().await;
}

#[tokio::test]
async fn a_call_storm_is_stopped_at_the_host_call_budget() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = provider_with(
        &cloud,
        Capabilities {
            pod_info: true,
            ..Capabilities::default()
        },
    )
    .await;
    assert_eq!(fetch(&provider, "calls:10").await.unwrap(), "called");
    let status = fetch(&provider, "calls:100000").await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains(
            "made more than 10 host calls in one fetch (config key plugins.testing.max_host_calls)"
        ),
        "{}",
        status.message()
    );
    assert_eq!(
        fetch(&provider, "echo:still-serving").await.unwrap(),
        "still-serving"
    );
    provider.stop().await;
}

#[tokio::test]
async fn imports_that_are_not_granted_stop_start_up() {
    let mut config = provider::config::Config::default();
    config.plugins.insert(
        "testing".into(),
        PluginRoute {
            path: Some(built_plugin("testing_plugin.wasm")),
            enabled: true,
            ..PluginRoute::default()
        },
    );
    let error = provider::app::provider(config, None, Vec::new())
        .await
        .unwrap_err()
        .to_string();
    for want in [
        "plugins.testing: cannot load ",
        "it imports alibabacloud-csi:plugin/alibaba-cloud@0.1.0: not granted: set plugins.testing.capabilities.alibaba_cloud = true",
        "it imports alibabacloud-csi:plugin/http@0.1.0: not granted: list the origins it may reach in plugins.testing.capabilities.http",
        "it imports alibabacloud-csi:plugin/identity@0.1.0: not granted",
    ] {
        assert!(error.contains(want), "{want}: {error}");
    }
}

#[tokio::test]
async fn a_plugin_validates_its_configuration_at_start_up() {
    let mut config = provider::config::Config::default();
    let mut route = testing_route();
    route
        .config
        .insert("reject".into(), "address must be https".into());
    config.plugins.insert("testing".into(), route);
    let error = provider::app::provider(config, None, Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("plugins.testing: cannot load")
            && error.contains("its configuration is refused: address must be https"),
        "{error}"
    );
}
