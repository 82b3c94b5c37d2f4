//! Identity through real Mounts: pod-level RRSA (fail-closed), the provider's
//! own identities in the upstream order, the strict policy, cross-account
//! roles, and the credential cache (one STS call per credential lifetime).

use std::time::Duration;

use integration_tests::emulator::ImdsMode;
use integration_tests::*;
use provider::config::IdentityPolicy;
use tonic::Code;

async fn rrsa_cluster() -> (FakeCloud, TestProvider) {
    let cloud = FakeCloud::start(identity_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    (cloud, provider)
}

fn read(name: &str) -> Mount {
    Mount::objects(&format!("- objectName: {name}\n  objectAlias: out\n"))
}

#[tokio::test]
async fn each_pod_reads_with_its_own_role_and_only_that() {
    let (cloud, provider) = rrsa_cluster().await;
    let a = provider
        .mount(
            read("team-a/db")
                .for_pod("team-a", "app-1", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap();
    assert_eq!(files(&a)["out"], "team-a-password");
    let denied = provider
        .mount(
            read("team-b/db")
                .for_pod("team-a", "app-1", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "{}",
        denied.message()
    );
    let b = provider
        .mount(
            read("team-b/db")
                .for_pod("team-b", "app-1", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap();
    assert_eq!(files(&b)["out"], "team-b-password");
    // the node's role may read `test`, but a pod asking for its own identity never gets it
    let status = provider
        .mount(
            read("test")
                .for_pod("team-a", "app-1", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(cloud.emulator.stats().requests("AssumeRoleWithOIDC"), 2);
    provider.stop().await;
}

#[tokio::test]
async fn pod_identity_errors_fail_the_mount_under_both_policies() {
    // What stopped upstream's pod identity link with an error (a token for
    // another audience, STS refusing) fails here under either policy, and so
    // does what is ours (a token of another account, a bad podRoleArn,
    // podRoleArn without a token): never another identity.
    for policy in [IdentityPolicy::Upstream, IdentityPolicy::Strict] {
        let cloud = FakeCloud::start(identity_seed()).await;
        let mut config = cloud.config();
        config.identity.policy = policy;
        let provider = TestProvider::start(config, cloud.rrsa_env()).await;
        let pod = |m: Mount| m.for_pod("team-a", "app-1", "app");
        let token_a = pod_token("team-a", "app");
        let cases = [
            (
                pod(read("test"))
                    .attribute("usePodServiceAccountToken", "true")
                    .attribute(
                        "csi.storage.k8s.io/serviceAccount.tokens",
                        &tokens_json("vault", &token_a),
                    ),
                "no service account token for audience sts.aliyuncs.com (audiences present: vault)",
            ),
            (
                pod(read("test"))
                    .attribute("usePodServiceAccountToken", "true")
                    .attribute(
                        "csi.storage.k8s.io/serviceAccount.tokens",
                        &tokens_json("sts.aliyuncs.com", &pod_token("team-b", "app")),
                    ),
                "the service account token is for \"system:serviceaccount:team-b:app\", not for this pod's service account \"system:serviceaccount:team-a:app\"",
            ),
            (
                pod(read("test"))
                    .with_pod_identity()
                    .attribute("podRoleArn", TEAM_B_ROLE),
                "AuthenticationFail",
            ),
            (
                pod(read("test"))
                    .with_pod_identity()
                    .attribute("podRoleArn", "team-a-app"),
                "podRoleArn: \"team-a-app\" is not a RAM role ARN",
            ),
            (
                pod(read("test"))
                    .attribute("usePodServiceAccountToken", "true")
                    .attribute("podRoleArn", TEAM_A_ROLE),
                "the driver sent no service account token; add {audience: sts.aliyuncs.com} to tokenRequests",
            ),
        ];
        for (mount, want) in cases {
            let status = provider.mount(mount).await.unwrap_err();
            let message = status.message();
            assert!(message.contains(want), "{policy:?}: {want}: {message}");
            assert!(
                message.contains("no other identity is used for this Mount"),
                "{message}"
            );
            assert!(!message.contains(&token_a[..20]));
        }
        // nothing was read with the node's role instead
        assert_eq!(cloud.emulator.imds_stats().requests("credentials"), 0);
        assert_eq!(cloud.emulator.stats().successes("GetSecretValue"), 0);
        provider.stop().await;
    }
}

#[tokio::test]
async fn pod_identity_falls_back_where_upstream_did_only_under_the_upstream_policy() {
    let logs = captured_logs();
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut broken_api = cloud.config();
    // nothing listens there: every ServiceAccount lookup fails
    broken_api.identity.kubernetes_url = "http://127.0.0.1:9".into();
    let no_token = || {
        read("test")
            .for_pod("team-a", "fallback-no-token", "app")
            .attribute("usePodServiceAccountToken", "true")
    };
    let no_annotation = || {
        read("test")
            .for_pod("team-c", "fallback-no-annotation", "app")
            .with_pod_identity()
    };
    let lookup_failed = || {
        read("test")
            .for_pod("team-a", "fallback-lookup-failed", "app")
            .with_pod_identity()
    };

    // upstream: the node's role (the provider's identity here) reads, as
    // it would for a Mount that does not ask for pod identity; a warning
    // names the reason
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    for mount in [no_token(), no_annotation()] {
        let response = provider.mount(mount).await.unwrap();
        assert!(files(&response)["out"].contains("testpassword"));
    }
    provider.stop().await;
    let provider = TestProvider::start(broken_api.clone(), cloud.rrsa_env()).await;
    let response = provider.mount(lookup_failed()).await.unwrap();
    assert!(files(&response)["out"].contains("testpassword"));
    provider.stop().await;
    assert_eq!(cloud.emulator.stats().requests("AssumeRoleWithOIDC"), 0);
    assert!(cloud.emulator.imds_stats().successes("credentials") >= 1);
    let text = logs.text();
    for (pod, reason) in [
        ("fallback-no-token", "no token"),
        ("fallback-no-annotation", "no annotation"),
        ("fallback-lookup-failed", "lookup failed"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(pod) && l.contains("falling back to the provider's identity"))
            .unwrap_or_else(|| panic!("no warning for {pod}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
    }
    // a fallback identity that may not read the object: the error says why
    // it was used
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let status = provider
        .mount(
            read("team-a/db")
                .for_pod("team-c", "fallback-denied", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &[
            "team-a/db",
            "note: pod identity (usePodServiceAccountToken) was skipped (service account team-c/app has no ack.alibabacloud.com/role-arn annotation",
            "the provider's identity was used",
        ],
    );
    provider.stop().await;
    // a fallback that ends nowhere says where it started
    let mut env = cloud.rrsa_env();
    env.push(("ALIBABA_CLOUD_ECS_METADATA_DISABLED".into(), "true".into()));
    let provider = TestProvider::start(cloud.config(), env).await;
    let status = provider.mount(no_annotation()).await.unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &[
            "pod identity: service account team-c/app has no ack.alibabacloud.com/role-arn annotation",
            "fell back to the provider's identities, as upstream",
            "ECS RAM role: ",
        ],
    );
    provider.stop().await;

    // strict: each fails, saying why and that strict does not fall back
    let before = cloud.emulator.stats().successes("GetSecretValue");
    let mut strict = cloud.config();
    strict.identity.policy = IdentityPolicy::Strict;
    let mut strict_broken = broken_api;
    strict_broken.identity.policy = IdentityPolicy::Strict;
    let provider = TestProvider::start(strict, cloud.rrsa_env()).await;
    for (mount, want) in [
        (no_token(), "the driver sent no service account token"),
        (
            no_annotation(),
            "service account team-c/app has no ack.alibabacloud.com/role-arn annotation",
        ),
    ] {
        let status = provider.mount(mount).await.unwrap_err();
        assert_status(
            &status,
            Code::PermissionDenied,
            &[
                want,
                "identity.policy = \"strict\" does not fall back to the provider's identity",
            ],
        );
    }
    provider.stop().await;
    let provider = TestProvider::start(strict_broken, cloud.rrsa_env()).await;
    let status = provider.mount(lookup_failed()).await.unwrap_err();
    // the API may answer later: the driver retries
    assert_status(
        &status,
        Code::Unavailable,
        &[
            "reading the role of service account team-a/app",
            "does not fall back",
        ],
    );
    provider.stop().await;
    assert_eq!(cloud.emulator.stats().successes("GetSecretValue"), before);
}

#[tokio::test]
async fn pod_role_from_the_secret_provider_class_and_tokens_from_secrets() {
    let (cloud, provider) = rrsa_cluster().await;
    // Kubernetes >= 1.35 sends the tokens in `secrets`; podRoleArn skips the API
    let token = pod_token("team-a", "app");
    let mount = read("team-a/db")
        .for_pod("team-a", "app-1", "app")
        .attribute("usePodServiceAccountToken", "true")
        .attribute("podRoleArn", TEAM_A_ROLE)
        .secret(
            "csi.storage.k8s.io/serviceAccount.tokens",
            &tokens_json("sts.aliyuncs.com", &token),
        );
    let response = provider.mount(mount).await.unwrap();
    assert_eq!(files(&response)["out"], "team-a-password");
    assert_eq!(cloud.service_account_gets(), 0);
    provider.stop().await;
}

#[tokio::test]
async fn one_sts_call_per_credential_lifetime_for_many_mounts() {
    let (cloud, provider) = rrsa_cluster().await;
    let provider = std::sync::Arc::new(provider);
    // 50 concurrent Mounts of one identity on a cold cache: one STS call
    let mut tasks = Vec::new();
    for i in 0..50 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            provider
                .mount(
                    read("team-a/db")
                        .for_pod("team-a", &format!("app-{i}"), "app")
                        .with_pod_identity(),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for i in 0..200 {
        provider
            .mount(
                read("team-a/db")
                    .for_pod("team-a", &format!("app-{i}"), "app")
                    .with_pod_identity(),
            )
            .await
            .unwrap();
    }
    assert_eq!(cloud.emulator.stats().requests("AssumeRoleWithOIDC"), 1);
    assert_eq!(cloud.service_account_gets(), 1);
    let stats = provider.provider.credential_chain().cache().stats();
    assert_eq!(stats.loads, 1, "{stats:?}");
}

#[tokio::test]
async fn credentials_are_refreshed_before_they_expire_and_never_used_after() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    config.identity.refresh_margin = Duration::from_secs(600);
    let provider = TestProvider::start(config, cloud.rrsa_env()).await;
    // credentials that live an hour: used while more than 10 minutes
    // remain, then refreshed
    cloud
        .emulator
        .set_credential_lifetime(Some(Duration::from_secs(3600)));
    let mount = || {
        read("team-a/db")
            .for_pod("team-a", "app-1", "app")
            .with_pod_identity()
    };
    provider.mount(mount()).await.unwrap();
    provider.mount(mount()).await.unwrap();
    assert_eq!(cloud.emulator.stats().requests("AssumeRoleWithOIDC"), 1);
    // 55 minutes pass for the cached credentials (instead of waiting them
    // out): 5 minutes remain, inside the margin.
    provider
        .provider
        .credential_chain()
        .cache()
        .age(Duration::from_secs(55 * 60));
    provider.mount(mount()).await.unwrap();
    assert_eq!(cloud.emulator.stats().requests("AssumeRoleWithOIDC"), 2);
    provider.stop().await;
}

#[tokio::test]
async fn the_providers_identities_in_the_upstream_order() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    // (2) provider RRSA, with the token file named by ALICLOUD_OIDC_TOKEN_FILE
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        pod_token("kube-system", "csi-secrets-store-provider-alibabacloud"),
    )
    .unwrap();
    let mut env = cloud.rrsa_env();
    env.push(("ALICLOUD_ROLE_ARN".into(), PROVIDER_ROLE.into()));
    env.push((
        "ALICLOUD_OIDC_TOKEN_FILE".into(),
        token_file.display().to_string(),
    ));
    let rrsa = TestProvider::start(cloud.config(), env).await;
    rrsa.mount(read("test")).await.unwrap();
    assert_eq!(cloud.emulator.stats().successes("AssumeRoleWithOIDC"), 1);
    rrsa.stop().await;

    // (3) access key + AssumeRole
    let mut env = cloud.env();
    env.push(("ALICLOUD_ROLE_ARN".into(), PROVIDER_ROLE.into()));
    env.push(("ALICLOUD_ROLE_SESSION_EXPIRATION".into(), "1800".into()));
    let ram = TestProvider::start(cloud.config(), env).await;
    ram.mount(read("test")).await.unwrap();
    let denied = ram.mount(read("binary-test")).await.unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "the role, not the key, was used"
    );
    assert_eq!(cloud.emulator.stats().successes("AssumeRole"), 1);
    ram.stop().await;

    // (6) the ECS worker role, when nothing else applies
    let node = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    node.mount(read("node/bootstrap")).await.unwrap();
    node.mount(read("test")).await.unwrap();
    assert_eq!(cloud.emulator.imds_stats().successes("credentials"), 1);
    node.stop().await;
}

#[tokio::test]
async fn metadata_server_v2_with_v1_fallback_and_its_disabling() {
    let cloud = FakeCloud::start(identity_seed()).await;
    cloud.emulator.set_imds_mode(ImdsMode {
        hardened: false,
        tokens_unavailable: true,
    });
    let v1 = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    v1.mount(read("node/bootstrap")).await.unwrap();
    v1.stop().await;

    let mut env = cloud.rrsa_env();
    env.push(("ALIBABA_CLOUD_IMDSV1_DISABLED".into(), "true".into()));
    let v2_only = TestProvider::start(cloud.config(), env).await;
    let status = v2_only.mount(read("node/bootstrap")).await.unwrap_err();
    assert!(
        status.message().contains("ECS RAM role: "),
        "{}",
        status.message()
    );
    v2_only.stop().await;

    let mut env = cloud.rrsa_env();
    env.push(("ALIBABA_CLOUD_ECS_METADATA_DISABLED".into(), "true".into()));
    let disabled = TestProvider::start(cloud.config(), env).await;
    let status = disabled.mount(read("node/bootstrap")).await.unwrap_err();
    assert!(
        status
            .message()
            .contains("disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"),
        "{}",
        status.message()
    );
    disabled.stop().await;
}

#[tokio::test]
async fn the_strict_policy_refuses_what_the_node_role_could_read() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    config.identity.policy = IdentityPolicy::Strict;
    let provider = TestProvider::start(config, cloud.env()).await;
    let status = provider.mount(read("test")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("not allowed by identity.policy = \"strict\""),
        "{}",
        status.message()
    );
    assert_eq!(cloud.emulator.imds_stats().requests("credentials"), 0);
    // pod identity and nodePublishSecretRef still work
    provider
        .mount(
            read("team-a/db")
                .for_pod("team-a", "app-1", "app")
                .with_pod_identity()
                .attribute("podRoleArn", TEAM_A_ROLE),
        )
        .await
        .unwrap_err(); // no OIDC provider in cloud.env(): fails closed
    provider
        .mount(
            read("test")
                .secret("access_key", ACCESS_KEY_ID)
                .secret("access_secret", ACCESS_KEY_SECRET),
        )
        .await
        .unwrap();
    provider.stop().await;
}

#[tokio::test]
async fn cross_account_roles_build_on_the_pods_identity() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    config.identity.cross_account_external_id = EXTERNAL_ID.into();
    let provider = TestProvider::start(config, cloud.rrsa_env()).await;
    let mount = Mount::objects(&format!(
        "- objectName: team-a/db\n- objectName: shared/config\n  crossAccountRoleArn: {SHARED_ROLE}\n"
    ))
    .for_pod("team-a", "app-7d9c", "app")
    .with_pod_identity();
    let response = provider.mount(mount.clone()).await.unwrap();
    assert_eq!(files(&response)["shared_config"], "shared-value");
    assert_eq!(files(&response)["team-a_db"], "team-a-password");
    // the session name tells pods apart in audit logs
    let issued = cloud.emulator.issued_credentials();
    assert!(
        issued
            .iter()
            .any(|c| c.role_arn == SHARED_ROLE && c.session_name == "team-a.app-7d9c"),
        "{issued:?}"
    );
    provider.mount(mount).await.unwrap();
    assert_eq!(cloud.emulator.stats().requests("AssumeRole"), 1, "cached");

    // team-b's role is not trusted by the shared role
    let status = provider
        .mount(
            Mount::objects(&format!(
                "- objectName: shared/config\n  crossAccountRoleArn: {SHARED_ROLE}\n"
            ))
            .for_pod("team-b", "app-1", "app")
            .with_pod_identity(),
        )
        .await
        .unwrap_err();
    assert!(
        status
            .message()
            .contains("crossAccountRoleArn: STS AssumeRole of"),
        "{}",
        status.message()
    );
    provider.stop().await;

    // without the ExternalId the role refuses
    let no_external = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let status = no_external
        .mount(
            Mount::objects(&format!(
                "- objectName: shared/config\n  crossAccountRoleArn: {SHARED_ROLE}\n"
            ))
            .for_pod("team-a", "app-1", "app")
            .with_pod_identity(),
        )
        .await
        .unwrap_err();
    assert!(
        status.message().contains("NoPermission"),
        "{}",
        status.message()
    );
    no_external.stop().await;
}

#[tokio::test]
async fn the_region_comes_from_the_metadata_server_when_nothing_sets_it() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    config.cloud.region = String::new();
    let provider = TestProvider::start(config, cloud.env()).await;
    provider.mount(read("test")).await.unwrap();
    provider.mount(read("test")).await.unwrap();
    assert_eq!(
        cloud.emulator.imds_stats().successes("region-id"),
        1,
        "looked up once"
    );
    provider.stop().await;
}

#[tokio::test]
async fn slow_sts_is_bounded_by_the_mount_deadline() {
    let (cloud, provider) = rrsa_cluster().await;
    // An STS that does not answer (until the test is over).
    let _held = cloud.emulator.hold("AssumeRoleWithOIDC");
    let status = provider
        .mount(
            read("team-a/db")
                .for_pod("team-a", "app-1", "app")
                .with_pod_identity()
                .timeout(Some(Duration::from_millis(2500))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::DeadlineExceeded,
        "{}",
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn a_throttled_sts_is_unavailable_and_a_refusing_one_is_not() {
    let (cloud, provider) = rrsa_cluster().await;
    let pod_read = |name: &str| {
        read(name)
            .for_pod("team-a", "app-1", "app")
            .with_pod_identity()
    };
    // Throttled on every attempt: a later Mount may succeed, so the driver
    // should retry it.
    cloud
        .emulator
        .inject_fault(integration_tests::emulator::Fault::throttling(
            "AssumeRoleWithOIDC",
        ));
    let status = provider.mount(pod_read("team-a/db")).await.unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &["AssumeRoleWithOIDC", "Throttling"],
    );
    cloud.emulator.clear_faults();
    let response = provider.mount(pod_read("team-a/db")).await.unwrap();
    assert_eq!(files(&response)["out"], "team-a-password");

    // A role whose trust policy does not name the pod: final.
    let status = provider
        .mount(
            read("team-a/db")
                .for_pod("team-b", "app-1", "app")
                .with_pod_identity()
                .attribute("podRoleArn", TEAM_A_ROLE),
        )
        .await
        .unwrap_err();
    assert_status(&status, Code::PermissionDenied, &["AssumeRoleWithOIDC"]);
    provider.stop().await;
}

#[tokio::test]
async fn session_names_are_upstreams_when_alicloud_role_session_name_is_set() {
    let cloud = FakeCloud::start(identity_seed()).await;
    let mut config = cloud.config();
    config.identity.cross_account_external_id = EXTERNAL_ID.into();
    let pod_mount = Mount::objects(&format!(
        "- objectName: team-a/db\n- objectName: shared/config\n  crossAccountRoleArn: {SHARED_ROLE}\n"
    ))
    .for_pod("team-a", "app-7d9c", "app")
    .with_pod_identity();
    let sessions = || -> Vec<(String, String)> {
        cloud
            .emulator
            .issued_credentials()
            .into_iter()
            .map(|c| (c.role_arn, c.session_name))
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(r, s)| (r.to_string(), s.to_string()))
            .collect()
    };

    // unset: pod identity names the workload, cross-account the pod, the
    // provider's own links upstream's default
    let provider = TestProvider::start(config.clone(), cloud.rrsa_env()).await;
    provider.mount(pod_mount.clone()).await.unwrap();
    provider.stop().await;
    let mut env = cloud.env();
    env.push(("ALICLOUD_ROLE_ARN".into(), PROVIDER_ROLE.into()));
    let provider = TestProvider::start(config.clone(), env.clone()).await;
    provider.mount(read("test")).await.unwrap();
    provider.stop().await;
    assert_eq!(
        sessions(),
        pairs(&[
            (TEAM_A_ROLE, "team-a.app"),
            (SHARED_ROLE, "team-a.app-7d9c"),
            (PROVIDER_ROLE, "csi-secrets-store-provider-alibaba"),
        ])
    );

    // set: every session is named as upstream named it, so RAM policies and
    // audit queries keyed on the name keep matching
    let mut rrsa_env = cloud.rrsa_env();
    rrsa_env.push(("ALICLOUD_ROLE_SESSION_NAME".into(), "audit-key".into()));
    let provider = TestProvider::start(config.clone(), rrsa_env).await;
    provider.mount(pod_mount).await.unwrap();
    provider.stop().await;
    env.push(("ALICLOUD_ROLE_SESSION_NAME".into(), "audit-key".into()));
    let provider = TestProvider::start(config, env).await;
    provider.mount(read("test")).await.unwrap();
    provider.stop().await;
    assert_eq!(
        sessions()[3..],
        pairs(&[
            (TEAM_A_ROLE, "audit-key"),
            (SHARED_ROLE, "csi-secrets-store-cross-account"),
            (PROVIDER_ROLE, "audit-key"),
        ])
    );
}

#[tokio::test]
async fn upstream_settings_that_fail_per_mount_warn_at_start_up_instead_of_stopping_it() {
    let logs = captured_logs();
    let cloud = FakeCloud::start(identity_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints: Vec<(String, String)> = cloud
        .env()
        .into_iter()
        .filter(|(k, _)| k.ends_with("_ENDPOINT"))
        .collect();
    let with = |base: &[(String, String)], extra: &[(&str, &str)]| {
        let mut env = base.to_vec();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let pod_read = || {
        read("team-a/db")
            .for_pod("team-a", "app-1", "app")
            .with_pod_identity()
    };

    // A role ARN that is not one: pod identity works; the links that use it
    // send it to STS, which refuses, as upstream's did.
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        pod_token("kube-system", "csi-secrets-store-provider-alibabacloud"),
    )
    .unwrap();
    let provider = TestProvider::start(
        cloud.config(),
        with(
            &cloud.rrsa_env(),
            &[
                ("ALICLOUD_ROLE_ARN", "csi-provider-role-7a1"),
                ("ALICLOUD_OIDC_TOKEN_FILE", token_file.to_str().unwrap()),
            ],
        ),
    )
    .await;
    provider.mount(pod_read()).await.unwrap();
    let status = provider.mount(read("test")).await.unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &["provider RRSA", "InvalidParameter.RoleArn"],
    );
    provider.stop().await;

    // Only ALICLOUD_ACCOUNT_ID: no OIDC provider ARN, as upstream: pod
    // identity fails, the rest works.
    let provider = TestProvider::start(
        cloud.config(),
        with(&endpoints, &[("ALICLOUD_ACCOUNT_ID", "1234567890123456")]),
    )
    .await;
    let status = provider.mount(pod_read()).await.unwrap_err();
    assert!(
        status
            .message()
            .contains("the cluster's OIDC provider ARN is not configured"),
        "{}",
        status.message()
    );
    provider.mount(read("test")).await.unwrap();
    provider.stop().await;

    // An OIDC provider ARN that is not one: STS refuses it for pod identity.
    let provider = TestProvider::start(
        cloud.config(),
        with(
            &endpoints,
            &[("ALICLOUD_OIDC_PROVIDER_ARN", "ack-rrsa-c0ffee")],
        ),
    )
    .await;
    let status = provider.mount(pod_read()).await.unwrap_err();
    assert!(
        status.message().contains("OIDCProviderArn is not valid"),
        "{}",
        status.message()
    );
    provider.mount(read("test")).await.unwrap();
    provider.stop().await;

    // ALICLOUD_ROLE_SESSION_EXPIRATION below 900: access key + AssumeRole
    // fails, before any call.
    let assume_role_calls = cloud.emulator.stats().requests("AssumeRole");
    let provider = TestProvider::start(
        cloud.config(),
        with(
            &cloud.env(),
            &[
                ("ALICLOUD_ROLE_ARN", PROVIDER_ROLE),
                ("ALICLOUD_ROLE_SESSION_EXPIRATION", "600"),
            ],
        ),
    )
    .await;
    let status = provider.mount(read("test")).await.unwrap_err();
    assert!(
        status.message().contains(
            "access key + AssumeRole: ALICLOUD_ROLE_SESSION_EXPIRATION=\"600\" is below 900 seconds"
        ),
        "{}",
        status.message()
    );
    assert_eq!(
        cloud.emulator.stats().requests("AssumeRole"),
        assume_role_calls
    );
    provider.stop().await;

    // A metadata role name that is not one: the node's role fails, nothing
    // is asked of the metadata server.
    let credentials_asked = cloud.emulator.imds_stats().requests("credentials");
    let provider = TestProvider::start(
        cloud.config(),
        with(&endpoints, &[("ALIBABA_CLOUD_ECS_METADATA", "../admin")]),
    )
    .await;
    let status = provider.mount(read("test")).await.unwrap_err();
    assert!(
        status.message().contains("is not a RAM role name"),
        "{}",
        status.message()
    );
    assert_eq!(
        cloud.emulator.imds_stats().requests("credentials"),
        credentials_asked
    );
    provider.stop().await;

    // An in-cluster Kubernetes client that cannot be set up: each lookup
    // fails, so pod identity falls back (policy upstream).
    let mut config = cloud.config();
    config.identity.kubernetes_url = String::new();
    let provider = TestProvider::start(
        config,
        with(
            &cloud.rrsa_env(),
            &[
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", "https"),
            ],
        ),
    )
    .await;
    let response = provider
        .mount(
            read("test")
                .for_pod("team-a", "app-kube-broken", "app")
                .with_pod_identity(),
        )
        .await
        .unwrap();
    assert!(files(&response)["out"].contains("testpassword"));
    provider.stop().await;

    let text = logs.text();
    for warning in [
        "ALICLOUD_ROLE_ARN: \"csi-provider-role-7a1\" is not a RAM role ARN",
        "only one of ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID is set",
        "the OIDC provider ARN \"ack-rrsa-c0ffee\" does not look like acs:ram::",
        "ALICLOUD_ROLE_SESSION_EXPIRATION=\"600\" is below 900 seconds",
        "ALIBABA_CLOUD_ECS_METADATA=\"../admin\" is not a RAM role name",
        "the Kubernetes client cannot be set up",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(" WARN ") && l.contains(warning)),
            "no warning {warning:?}"
        );
    }
    assert!(
        text.lines().any(|l| l.contains("app-kube-broken")
            && l.contains("reason=\"lookup failed\"")
            && l.contains("KUBERNETES_SERVICE_PORT")),
        "the fallback names the lookup's failure"
    );
}

#[tokio::test]
async fn a_node_publish_secret_with_one_key_is_skipped_as_upstream_skips_it() {
    let logs = captured_logs();
    let cloud = FakeCloud::start(identity_seed()).await;
    let half = || {
        read("test")
            .for_pod("team-a", "np-half-1", "app")
            .secret("access_key", "np-half-key-id")
    };
    // upstream: the next link (here the environment's access key) reads
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider.mount(half()).await.unwrap();
    assert!(files(&response)["out"].contains("testpassword"));
    provider.stop().await;
    let line = logs
        .text()
        .lines()
        .find(|l| l.contains("np-half-1") && l.contains("nodePublishSecretRef"))
        .map(str::to_string)
        .expect("a warning");
    assert!(
        line.contains(" WARN ") && line.contains("missing=\"access_secret\""),
        "{line}"
    );
    assert!(!line.contains("np-half-key-id"), "{line}");

    // strict: nothing else may serve it, and the error names the missing key
    let mut config = cloud.config();
    config.identity.policy = IdentityPolicy::Strict;
    let provider = TestProvider::start(config, cloud.env()).await;
    let status = provider
        .mount(
            read("test")
                .for_pod("team-a", "np-half-2", "app")
                .secret("access_secret", "np-half-secret-value"),
        )
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &["nodePublishSecretRef: the Secret has access_secret but no (or an empty) access_key"],
    );
    assert!(!status.message().contains("np-half-secret-value"));
    provider.stop().await;
    assert!(!logs.text().contains("np-half-secret-value"));
}
