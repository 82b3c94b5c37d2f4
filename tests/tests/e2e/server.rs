//! The gRPC server: Version, health, concurrency and graceful shutdown over
//! the real socket.

use std::time::Duration;

use integration_tests::*;
use provider::proto::VersionRequest;

#[tokio::test]
async fn version_and_health() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let version = provider
        .client()
        .await
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.version, "v1alpha1");
    // The upstream provider's name (its auth.ProviderName).
    assert_eq!(
        version.runtime_name,
        "secrets-store-csi-driver-provider-alibabacloud"
    );
    assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));

    let channel = provider::client::connect(&provider.socket).await.unwrap();
    let health = tonic_health_check(channel).await;
    assert_eq!(health, 1, "SERVING");
    provider.stop().await;
}

async fn tonic_health_check(channel: tonic::transport::Channel) -> i32 {
    // grpc.health.v1.Health/Check, as a generic client would call it
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let request = tonic::Request::new(HealthCheckRequest {
        service: "v1alpha1.CSIDriverProvider".into(),
    });
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    client
        .unary(request, path, codec)
        .await
        .unwrap()
        .into_inner()
        .status
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

#[tokio::test]
async fn many_concurrent_mounts() {
    let cloud = FakeCloud::start(default_seed()).await;
    // The KMS call waits at the emulator until every Mount has asked for its
    // objects.
    let held = cloud.emulator.hold("GetSecretValue");
    let provider = std::sync::Arc::new(TestProvider::start(cloud.config(), cloud.env()).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            provider
                .mount(Mount::objects(
                    "- objectName: test\n  jmesPath:\n    - path: username\n      objectAlias: u\n- objectName: db/password\n  objectType: oos\n",
                ))
                .await
        }));
    }
    // Each Mount asks for its two objects once (starting a shared fetch or
    // joining one); the timeout only turns a hang into a failure.
    let asked = || {
        let stats = provider.provider.fetches().stats();
        stats.started.load(std::sync::atomic::Ordering::Relaxed)
            + stats.joined.load(std::sync::atomic::Ordering::Relaxed)
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while asked() < 100 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every Mount asked for its objects");
    held.release();
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        assert_eq!(files(&response)["u"], "testuser");
    }
    // The 50 Mounts ask for the same object with the same identity while a
    // fetch of it is in flight (held): they share backend calls.
    let calls = cloud.emulator.stats().successes("GetSecretValue");
    assert!(
        (1..=10).contains(&calls),
        "{calls} GetSecretValue for 50 Mounts"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_mounts_finish() {
    let cloud = FakeCloud::start(default_seed()).await;
    // The Mount's backend call waits at the emulator until released.
    let held = cloud.emulator.hold("GetSecretValue");
    let mut provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let mut client = provider.client().await;
    let in_flight = tokio::spawn(async move {
        client
            .mount(Mount::objects("- objectName: test\n").request())
            .await
    });
    // In flight: its call has reached the emulator.
    tokio::time::timeout(Duration::from_secs(30), held.arrivals(1))
        .await
        .expect("the Mount's call reached the emulator");
    let stopping = provider.begin_stop();
    // Stopping: the socket no longer accepts connections (the timeout only
    // turns a server that never stops accepting into a failure).
    tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::UnixStream::connect(&provider.socket)
            .await
            .is_ok()
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server stops accepting connections");
    assert!(!in_flight.is_finished());
    held.release();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight Mount completes");
    assert_eq!(files(&response.into_inner())["test"].len(), 49);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the server stops once the Mount is done")
        .unwrap();
    // no new connections after the stop
    assert!(
        provider::client::connect(&provider.socket).await.is_err() || {
            let mut client = provider::client::provider_client(&provider.socket)
                .await
                .unwrap();
            client.version(VersionRequest::default()).await.is_err()
        }
    );
}
