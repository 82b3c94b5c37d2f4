//! Failed Mounts: each backend error reaches the caller as the right gRPC code
//! with a message naming the object, and nothing secret in it.

use std::time::Duration;

use integration_tests::emulator::{AccessKey, Fault};
use integration_tests::*;
use tonic::Code;

async fn started() -> (FakeCloud, TestProvider) {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    (cloud, provider)
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let (_cloud, provider) = started().await;
    let status = provider
        .mount(Mount::objects("- objectName: missing\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().starts_with(
            "objects[0] (objectName \"missing\") objectType kms: not found: failed fetching secret missing: Forbidden.ResourceNotFound"
        ),
        "{}",
        status.message()
    );
    let status = provider
        .mount(Mount::objects("- objectName: nope\n  objectType: oos\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("EntityNotExists.Parameter"),
        "{}",
        status.message()
    );
    let status = provider
        .mount(Mount::objects("- objectName: test\n  objectVersion: v9\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    provider.stop().await;
}

#[tokio::test]
async fn refused_identities_are_permission_denied_without_secrets_in_the_message() {
    let seed = default_seed().with_access_key(
        AccessKey::new("limited", "limited-secret-value").allowing(["kms:secret/other"]),
    );
    let cloud = FakeCloud::start(seed).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let limited = Mount::objects("- objectName: test\n")
        .secret("access_key", "limited")
        .secret("access_secret", "limited-secret-value");
    let status = provider.mount(limited).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("Forbidden.NoPermission"),
        "{}",
        status.message()
    );

    let wrong = Mount::objects("- objectName: test\n")
        .secret("access_key", "limited")
        .secret("access_secret", "not-the-right-secret");
    let status = provider.mount(wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("SignatureDoesNotMatch"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("not-the-right-secret"));
    assert!(
        !status.message().to_lowercase().contains("string to sign"),
        "{}",
        status.message()
    );

    let unknown = Mount::objects("- objectName: test\n")
        .secret("access_key", "nobody")
        .secret("access_secret", "whatever-secret");
    let status = provider.mount(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("InvalidAccessKeyId.NotFound"),
        "{}",
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn throttling_is_retried_then_reported_as_unavailable() {
    let (cloud, provider) = started().await;
    cloud
        .emulator
        .inject_fault(Fault::throttling("GetSecretValue").times(2));
    provider
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap();
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), 3);

    cloud.emulator.reset_stats();
    cloud
        .emulator
        .inject_fault(Fault::throttling("GetSecretValue"));
    let status = provider
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("Rejected.Throttling"),
        "{}",
        status.message()
    );
    let attempts = provider.provider.config().cloud.max_attempts as u64;
    assert_eq!(cloud.emulator.stats().requests("GetSecretValue"), attempts);

    cloud.emulator.clear_faults();
    cloud
        .emulator
        .inject_fault(Fault::unavailable("GetSecretParameter").times(1));
    provider
        .mount(Mount::objects(
            "- objectName: db/password\n  objectType: oos\n",
        ))
        .await
        .unwrap();
    provider.stop().await;
}

#[tokio::test]
async fn every_failed_object_is_listed() {
    let (_cloud, provider) = started().await;
    let status = provider
        .mount(Mount::objects(
            "- objectName: test\n- objectName: gone-1\n- objectName: gone-2\n  objectType: oos\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let message = status.message();
    assert!(
        message.starts_with("2 of 3 objects failed: objects[1] (objectName \"gone-1\")"),
        "{message}"
    );
    assert!(
        message.contains("; objects[2] (objectName \"gone-2\") objectType oos: not found"),
        "{message}"
    );
    provider.stop().await;
}

#[tokio::test]
async fn bad_secret_provider_classes_are_invalid_arguments() {
    let (cloud, provider) = started().await;
    for (mount, want) in [
        (
            Mount::objects("- objectAlias: x\n"),
            "object name must be specified",
        ),
        (
            Mount::objects("- objectName: a\n  objectAlais: b\n"),
            "unknown field \"objectAlais\"",
        ),
        (
            Mount::objects("- objectName: a\n- objectName: b\n  objectAlias: a\n"),
            "file name collision",
        ),
        (
            Mount::objects("- objectName: ../../etc\n").attribute("pathTranslation", "False"),
            "contains '..'",
        ),
        (
            Mount::objects("- objectName: test\n").attribute("region", "cn-hangzhou.evil.io"),
            "not an Alibaba Cloud region id",
        ),
        (
            Mount::objects("- objectName: test\n  crossAccountRoleArn: acs:ram::1:role/r\n"),
            "crossAccountRoleArn",
        ),
        (
            Mount::objects("- objectName: test\n")
                .attribute("usePodServiceAccountToken", "true")
                .attribute("podRoleArn", "acs:ram::1234567890123456:role/app"),
            "no other identity is used for this Mount",
        ),
        (
            Mount::objects(
                "- objectName: test\n  jmesPath:\n    - path: nothere\n      objectAlias: x\n",
            ),
            "jmes path - nothere for object alias - x does not point to a valid object",
        ),
        (
            Mount::objects(
                "- objectName: db/password\n  objectType: oos\n  jmesPath:\n    - path: a\n      objectAlias: x\n",
            ),
            "invalid JSON used with jmesPath in secret: db/password",
        ),
        (
            Mount::objects(
                "- objectName: db/password\n  objectType: oos\n  objectVersion: \"0\"\n",
            ),
            "must be a ParameterVersion number",
        ),
    ] {
        let status = provider.mount(mount).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::PermissionDenied
            ),
            "{want}: {status:?}"
        );
        assert!(
            status.message().contains(want),
            "{want}: {}",
            status.message()
        );
    }
    // the SPC errors above were caught before any fetch except the jmesPath ones
    assert!(
        cloud.emulator.stats().total <= 3,
        "{:?}",
        cloud.emulator.stats()
    );
    provider.stop().await;
}

#[tokio::test]
async fn a_mount_without_a_region_on_a_node_without_metadata_uses_the_upstream_default() {
    // No SecretProviderClass region, no --region, no cloud.region, and no
    // metadata server: cn-hangzhou, the default of the upstream provider's
    // --region, as the upstream provider would.
    let cloud = FakeCloud::start(default_seed()).await;
    let mut env = cloud.env();
    env.push(("ALIBABA_CLOUD_ECS_METADATA_DISABLED".into(), "true".into()));
    let provider = TestProvider::start(provider::config::Config::default(), env).await;
    provider
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap();
    provider
        .mount(Mount::objects("- objectName: test\n").attribute("region", "cn-hangzhou"))
        .await
        .unwrap();
    provider.stop().await;
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let cloud = FakeCloud::start(default_seed()).await;
    let mut config = cloud.config();
    config.limits.response_warn_bytes = 10;
    config.limits.response_max_bytes = 40;
    let provider = TestProvider::start(config, cloud.env()).await;
    let status = provider
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("limits.response_max_bytes"),
        "{}",
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn the_callers_deadline_is_answered_with_a_clear_message() {
    let (cloud, provider) = started().await;
    // A backend that does not answer (until the test is over).
    let _held = cloud.emulator.hold("GetSecretValue");
    let started = std::time::Instant::now();
    let status = provider
        .mount(Mount::objects("- objectName: test\n").timeout(Some(Duration::from_millis(2500))))
        .await
        .unwrap_err();
    // the provider answers (margin 1s) before the caller's 2.5s deadline cuts it off
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status
            .message()
            .contains("objects[0] (objectName \"test\")"),
        "{}",
        status.message()
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    provider.stop().await;
}

/// The host's own failures are classified by the host: a plugin that reports
/// every failed call as "not found" cannot turn missing credentials into
/// `NOT_FOUND` (kubelet would then report a missing secret), nor a throttled
/// STS (worth retrying) into anything but `UNAVAILABLE`.
#[tokio::test]
async fn the_host_classifies_its_own_failures_whatever_the_plugin_says() {
    let cloud = FakeCloud::start(default_seed()).await;
    let mut config = cloud.config();
    config.plugins.insert("testing".into(), testing_route());
    let provider = TestProvider::start(config, cloud.env()).await;
    let object = |role: &str| {
        Mount::objects(&format!(
            "- objectName: \"misread:kms:GetSecretValue:2016-01-20\"\n  objectType: testing\n  parameters:\n    SecretName: test\n  crossAccountRoleArn: {role}\n"
        ))
    };
    let missing_role = "acs:ram::1234567890123456:role/no-such-role";

    // The plugin's own reading stands when the host did not fail.
    let status = provider
        .mount(Mount::objects(
            "- objectName: \"misread:kms:GetSecretValue:2016-01-20\"\n  objectType: testing\n  parameters:\n    SecretName: no-such-secret\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());

    // STS refuses the role: permission denied, with the plugin's context.
    let status = provider.mount(object(missing_role)).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .contains("kms GetSecretValue: no credentials: failed to assume cross account role"),
        "{}",
        status.message()
    );

    // STS is throttled: unavailable, so that the driver retries.
    cloud.emulator.inject_fault(Fault::throttling("AssumeRole"));
    let status = provider.mount(object(missing_role)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    provider.stop().await;
}
