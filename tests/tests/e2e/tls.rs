//! The provider's HTTPS paths against the emulator behind TLS: the Kubernetes
//! API verified with the cluster CA only (as client-go does), and the cloud
//! endpoints with an extra CA bundle (`cloud.ca_file`). A server that the CA
//! does not vouch for never sees the bearer token or a signed request.

use integration_tests::tls::{TestCa, TlsFront};
use integration_tests::*;
use tonic::Code;

fn pod_read(name: &str) -> Mount {
    Mount::objects(&format!("- objectName: {name}\n  objectAlias: out\n"))
        .for_pod("team-a", "app-1", "app")
        .with_pod_identity()
}

#[tokio::test]
async fn the_kubernetes_api_is_reached_over_tls_with_the_cluster_ca_only() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = TestCa::new("cluster CA");
    let front = TlsFront::start(&cluster_ca, &cloud.emulator.kubernetes_url()).await;

    // The role comes from the ServiceAccount's annotation, read over TLS.
    let mut config = cloud.config();
    config.identity.kubernetes_url = front.url();
    config.identity.kubernetes_ca_file = cluster_ca
        .write_pem(dir.path(), "ca.crt")
        .to_string_lossy()
        .into_owned();
    let provider = TestProvider::start(config.clone(), cloud.rrsa_env()).await;
    let response = provider.mount(pod_read("team-a/db")).await.unwrap();
    assert_eq!(files(&response)["out"], "team-a-password");
    assert_eq!(cloud.service_account_gets(), 1);
    assert_eq!(front.forwarded(), 1);
    provider.stop().await;

    // Another CA: the handshake fails, nothing is forwarded, and the Mount
    // says why (under the strict policy: the upstream one falls back to the
    // provider's identity, as upstream's did, and logs why).
    let logs = captured_logs();
    let other_ca = TestCa::new("some other CA");
    config.identity.kubernetes_ca_file = other_ca
        .write_pem(dir.path(), "other.crt")
        .to_string_lossy()
        .into_owned();
    config.identity.policy = provider::config::IdentityPolicy::Strict;
    let provider = TestProvider::start(config.clone(), cloud.rrsa_env()).await;
    let status = provider.mount(pod_read("team-a/db")).await.unwrap_err();
    let message = status.message();
    assert!(
        message.contains("ServiceAccount team-a/app")
            && message.contains("put its CA in identity.kubernetes_ca_file"),
        "{message}"
    );
    assert!(!message.contains(KUBERNETES_TOKEN), "{message}");
    provider.stop().await;
    config.identity.policy = provider::config::IdentityPolicy::Upstream;
    let provider = TestProvider::start(config, cloud.rrsa_env()).await;
    let status = provider
        .mount(pod_read("team-a/db").for_pod("team-a", "app-tls-fallback", "app"))
        .await
        .unwrap_err();
    // the node's role, which may not read team-a's secret; the event says
    // why it was used
    assert_status(
        &status,
        Code::PermissionDenied,
        &[
            "pod identity (usePodServiceAccountToken) was skipped",
            "put its CA in identity.kubernetes_ca_file",
        ],
    );
    assert!(logs.text().lines().any(|l| l.contains("app-tls-fallback")
        && l.contains("reason=\"lookup failed\"")
        && l.contains("put its CA in identity.kubernetes_ca_file")));
    assert!(!logs.text().contains(KUBERNETES_TOKEN));
    assert_eq!(front.forwarded(), 1, "a connection got past the handshake");
    assert_eq!(cloud.service_account_gets(), 1);
    provider.stop().await;
}

#[tokio::test]
async fn cloud_endpoints_over_tls_trust_the_extra_ca_bundle() {
    let cloud = FakeCloud::start(default_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("private endpoint CA");
    let front = TlsFront::start(&ca, &cloud.emulator.url()).await;
    let env: Vec<(String, String)> = cloud
        .env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "ALIBABACLOUD_KMS_ENDPOINT" => (k, front.url()),
            _ => (k, v),
        })
        .collect();
    let yaml = "- objectName: test\n  objectAlias: out\n";

    // Without the bundle the emulator's certificate is refused: no request
    // is signed and sent, and the error is the certificate's.
    let provider = TestProvider::start(cloud.config(), env.clone()).await;
    let status = provider.mount(Mount::objects(yaml)).await.unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &["test", "put its CA in cloud.ca_file"],
    );
    assert!(!status.message().contains(ACCESS_KEY_SECRET));
    assert_eq!(front.forwarded(), 0);
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), 0);
    provider.stop().await;

    let mut config = cloud.config();
    config.cloud.ca_file = ca
        .write_pem(dir.path(), "ca.pem")
        .to_string_lossy()
        .into_owned();
    let provider = TestProvider::start(config, env).await;
    let response = provider.mount(Mount::objects(yaml)).await.unwrap();
    assert!(files(&response)["out"].contains("testpassword"));
    assert_eq!(front.forwarded(), 1);
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), 1);
    provider.stop().await;
}

#[tokio::test]
async fn kms_instance_endpoints_trust_the_regions_built_in_ca_and_the_extra_bundle() {
    let cloud = FakeCloud::start(default_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    // Alibaba's KMS instance CA cannot sign a test certificate, so the front
    // presents one from a test CA under a KMS instance name.
    let ca = TestCa::new("test KMS instance CA");
    let host = "kst-hzz0e2e0000000000.cryptoservice.kms.aliyuncs.com";
    let front = TlsFront::start_for(&ca, &cloud.emulator.url(), &[host]).await;
    let resolve = vec![(host.to_string(), front.addr())];
    let read = |region: &str| {
        Mount::objects(&format!(
            "- objectName: test\n  objectAlias: out\n  kmsEndpoint: {host}\n"
        ))
        .attribute("region", region)
    };

    // The Mount's region selects the built-in CA (cn-hangzhou's), which does
    // not vouch for the test certificate: refused before any byte is sent,
    // and the message says which CA was trusted.
    let provider =
        TestProvider::start_resolving(cloud.config(), cloud.env(), resolve.clone()).await;
    let status = provider.mount(read("cn-hangzhou")).await.unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &[
            "test",
            "built-in CA of KMS instances in cn-hangzhou",
            "put its CA in cloud.ca_file",
        ],
    );
    assert!(!status.message().contains(ACCESS_KEY_SECRET));
    // a region with no built-in CA: the system roots, which do not vouch either
    let status = provider.mount(read("xx-test-1")).await.unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &["no KMS instance CA is built in for region \"xx-test-1\""],
    );
    assert_eq!(front.forwarded(), 0);
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), 0);
    provider.stop().await;

    // cloud.ca_file adds to the region's built-in CA, and to the system
    // roots for a region without one.
    let mut config = cloud.config();
    config.cloud.ca_file = ca
        .write_pem(dir.path(), "ca.pem")
        .to_string_lossy()
        .into_owned();
    let provider = TestProvider::start_resolving(config, cloud.env(), resolve).await;
    for region in ["cn-hangzhou", "ap-southeast-1", "xx-test-1"] {
        let response = provider.mount(read(region)).await.unwrap();
        assert!(files(&response)["out"].contains("testpassword"), "{region}");
    }
    assert_eq!(front.forwarded(), 3);
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), 3);
    provider.stop().await;
}
