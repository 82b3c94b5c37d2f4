//! Secrets never reach the logs, even at trace level: not the values, not
//! the access key secret, not the nodePublishSecretRef data, not the tokens.

use integration_tests::emulator::{AccessKey, KmsSecret};
use integration_tests::*;

#[tokio::test]
async fn a_trace_level_mount_logs_no_secret() {
    let logs = captured_logs();
    let seed = default_seed()
        .with_kms_secret(KmsSecret::text("canary", r#"{"k":"CANARY-VALUE-7f3a"}"#))
        .with_access_key(AccessKey::new("np-key", "NP-SECRET-9c1e"));
    let cloud = FakeCloud::start(seed).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let tokens = r#"{"sts.aliyuncs.com":{"token":"eyJTOKEN-CANARY.payload.sig","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;

    let ok =
        Mount::objects("- objectName: canary\n  jmesPath:\n    - path: k\n      objectAlias: k\n")
            .attribute("csi.storage.k8s.io/serviceAccount.tokens", tokens)
            .secret("access_key", "np-key")
            .secret("access_secret", "NP-SECRET-9c1e");
    let response = provider.mount(ok).await.unwrap();
    assert_eq!(files(&response)["k"], "CANARY-VALUE-7f3a");

    // failures too: a wrong secret (the service echoes its string to sign),
    // bad JSON in attributes, a jmesPath error on the secret's content
    let wrong = Mount::objects("- objectName: canary\n")
        .secret("access_key", "np-key")
        .secret("access_secret", "WRONG-SECRET-5b2d");
    assert!(provider.mount(wrong).await.is_err());
    let mut bad = Mount::objects("- objectName: canary\n");
    bad.attributes.insert(
        "csi.storage.k8s.io/serviceAccount.tokens".into(),
        tokens.into(),
    );
    let mut request = bad.request();
    request.attributes = request.attributes.replacen('{', "{\"broken\": ", 1);
    let mut client = provider.client().await;
    assert!(client.mount(request).await.is_err());
    let jmes = Mount::objects(
        "- objectName: canary\n  jmesPath:\n    - path: k.x\n      objectAlias: x\n",
    );
    assert!(provider.mount(jmes).await.is_err());
    provider.stop().await;

    let text = logs.text();
    assert!(
        text.contains("plugin calls Alibaba Cloud"),
        "the capture works at trace level"
    );
    for secret in [
        "CANARY-VALUE-7f3a",
        ACCESS_KEY_SECRET,
        "NP-SECRET-9c1e",
        "WRONG-SECRET-5b2d",
        "eyJTOKEN-CANARY",
    ] {
        assert!(!text.contains(secret), "{secret} appears in the logs");
    }
}
