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

#[tokio::test]
async fn pod_identity_tokens_stay_in_memory_and_out_of_logs_and_errors() {
    let logs = captured_logs();
    let before = files_under(&std::env::temp_dir());
    let cloud = FakeCloud::start(identity_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let token = pod_token("team-a", "app");
    let mount = |namespace: &str| {
        Mount::objects("- objectName: team-a/db\n")
            .for_pod(namespace, "app-1", "app")
            .attribute("usePodServiceAccountToken", "true")
            .attribute(
                "csi.storage.k8s.io/serviceAccount.tokens",
                &tokens_json("sts.aliyuncs.com", &token),
            )
    };
    provider.mount(mount("team-a")).await.unwrap();
    // a token for another pod's account, and a role that does not trust it
    let wrong = provider.mount(mount("team-b")).await.unwrap_err();
    let untrusted = provider
        .mount(mount("team-a").attribute("podRoleArn", TEAM_B_ROLE))
        .await
        .unwrap_err();
    provider.stop().await;

    let issued = cloud.emulator.issued_credentials();
    let sts_secrets: Vec<&str> = issued
        .iter()
        .flat_map(|c| [c.access_key_secret.as_str(), c.security_token.as_str()])
        .collect();
    assert!(!sts_secrets.is_empty());
    let text = logs.text();
    for error in [wrong.message(), untrusted.message()] {
        assert!(!error.contains(&token), "{error}");
    }
    assert!(
        !text.contains(&token),
        "the pod's token appears in the logs"
    );
    for secret in sts_secrets {
        assert!(
            !text.contains(secret),
            "an STS secret or token appears in the logs"
        );
    }
    // no file anywhere under the temp dir holds the token (upstream wrote pod-sa-token-*)
    for path in files_under(&std::env::temp_dir()).difference(&before) {
        if let Ok(bytes) = std::fs::read(path) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&token),
                "{} holds the token",
                path.display()
            );
        }
    }
}

fn files_under(dir: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut found = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    found.insert(path);
                }
                _ => {}
            }
        }
    }
    found
}
