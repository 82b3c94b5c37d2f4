//! Plugin HTTP and the metadata server ignore proxy environment variables: a
//! proxy would resolve names itself, out of reach of the host's
//! internal-address check (a plugin could reach the metadata server through
//! it), and would answer metadata requests with its own host's credentials.
//! The cloud API follows them (here `NO_PROXY` exempts the emulator's
//! 127.0.0.1). Alone in its own test binary, because it sets process-wide
//! environment variables.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;
use integration_tests::*;
use provider::config::Capabilities;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn plugin_http_and_the_metadata_server_do_not_go_through_an_environment_proxy() {
    // A "proxy" that answers every request itself, and counts them.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(AtomicU64::new(0));
    let count = proxied.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = proxy.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied")
                .await;
        }
    });
    #[allow(unsafe_code)]
    // SAFETY: this binary's only test sets them before the provider, or any
    // thread of its own, starts; nothing reads the environment concurrently.
    unsafe {
        for name in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            std::env::set_var(name, &proxy_url);
        }
        std::env::set_var("NO_PROXY", "127.0.0.1");
        std::env::set_var("no_proxy", "127.0.0.1");
    }

    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = web.local_addr().unwrap().port();
    let app = Router::new().route("/ok", get(|| async { "direct" }));
    tokio::spawn(async move { axum::serve(web, app).await.unwrap() });

    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    let mut route = testing_route();
    route.capabilities = Capabilities {
        http: vec![format!("http://localhost:{port}")],
        allow_internal_addresses: true,
        ..route.capabilities
    };
    config.plugins.insert("testing".into(), route);
    let provider = TestProvider::start(config, cloud.env()).await;
    let response = provider
        .mount(Mount::objects(&format!(
            "- objectName: \"http:http://localhost:{port}/ok\"\n  objectType: testing\n  objectAlias: out\n"
        )))
        .await
        .unwrap();
    assert_eq!(files(&response)["out"], "200 direct");
    assert_eq!(
        proxied.load(Ordering::Relaxed),
        0,
        "the plugin's request went through the proxy"
    );
    provider.stop().await;

    // The node's RAM role from the metadata server, named so that NO_PROXY
    // does not exempt it.
    let mut config = cloud.config();
    config.identity.metadata_url = cloud.emulator.imds_url().replace("127.0.0.1", "localhost");
    let provider = TestProvider::start(config, cloud.rrsa_env()).await;
    let response = provider
        .mount(Mount::objects("- objectName: test\n  objectAlias: out\n"))
        .await
        .unwrap();
    assert!(files(&response)["out"].contains("testuser"));
    assert_eq!(
        proxied.load(Ordering::Relaxed),
        0,
        "a metadata request went through the proxy"
    );
    provider.stop().await;
}
