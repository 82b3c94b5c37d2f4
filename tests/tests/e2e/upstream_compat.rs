//! The upstream Go provider's own SecretProviderClasses, Mounted for real:
//! over the provider's socket, through the built-in plugins, against the
//! emulator seeded with the secrets those classes name, with the identity
//! each one was written for. Every case is named after its source in
//! upstream's repository (`AliyunContainerService/secrets-store-csi-driver-
//! provider-alibaba-cloud` v0.6.0) or the seed document (Alibaba Cloud's ACK
//! guide), with the test data rewritten here. Each one either mounts what
//! upstream mounts (the same files, names, modes and KMS versions) or fails
//! with a difference the README's "What changed, on purpose" table lists,
//! asserted here.
//!
//! Upstream's own messages are kept as a prefix or a part of ours wherever
//! upstream had one for the same condition: `upstream_error_texts_are_kept`
//! pins each. Pure parsing cases are in `contract/tests/upstream_inputs.rs`.

use integration_tests::emulator::{
    AccessKey, ImdsSeed, KmsSecret, OidcProvider, OosParameter, Role, Seed, ServiceAccount,
};
use integration_tests::*;
use provider::proto::MountResponse;
use tonic::Code;

/// The account id upstream's examples use.
const ACCOUNT: &str = "123456789012";
/// A RAM user's key that may read nothing itself (upstream's examples give
/// KMS permissions to the role, not to the user).
const USER_KEY: &str = "ram-user-key";
const USER_SECRET: &str = "ram-user-secret-0123456789";
/// A key for nodePublishSecretRef that may read `app/*`.
const NODE_PUBLISH_KEY: &str = "node-publish-key";
const NODE_PUBLISH_SECRET: &str = "node-publish-secret-0123456789";

fn role(name: &str) -> String {
    format!("acs:ram::{ACCOUNT}:role/{name}")
}

/// The secrets and parameters upstream's README, examples and e2e suite
/// name, with the values their verification steps expect, and the roles
/// and service accounts their authentication examples set up.
fn upstream_seed() -> Seed {
    let text = KmsSecret::text;
    default_seed()
        // README.md Usage, step 2: `aliyun kms CreateSecret --SecretName
        // test-kms --SecretData 1234 --VersionId v1` and `aliyun oos
        // CreateSecretParameter --Value SecretParameter --Name test-oos`
        .with_kms_secret(text("test-kms", "1234"))
        .with_oos_parameter(OosParameter::new("test-oos", "SecretParameter"))
        // examples/*-secretproviderclass.yaml
        .with_kms_secret(text("app/database-password", "app-db-password"))
        .with_kms_secret(text("app/api-key", "app-api-key"))
        .with_kms_secret(text("my-secret", "my-secret-value"))
        .with_kms_secret(text("prod/database-password", "prod-db-password"))
        .with_kms_secret(text("prod/api-key", "prod-api-key"))
        .with_kms_secret(text("staging/app-secret", "staging-value"))
        .with_kms_secret(text("my-db-secret", "my-db-password"))
        // README.md "JMESPath JSON Parsing"
        .with_kms_secret(text(
            "app-config",
            r#"{"username": "admin", "password": "s3cret", "host": "db.example.com"}"#,
        ))
        // README.md "Tips": one name in KMS and in OOS
        .with_kms_secret(text("MySecret", "from-kms"))
        .with_oos_parameter(OosParameter::new("MySecret", "from-oos"))
        // tests/e2e/feature_test.go and auth_test.go (names without the
        // run's suffix)
        .with_kms_secret(text(
            "jmespath-test",
            r#"{"username":"testUser","password":"testPassword"}"#,
        ))
        .with_kms_secret(text("rotation-test", "before-rotation"))
        .with_kms_secret(text("sync-test", "sync-test-value"))
        .with_kms_secret(text("pod-sa-test", "pod-sa-test-value"))
        .with_kms_secret(text("cross-account-test", "cross-account-value"))
        // tests/BasicTestMountSPC.yaml (the bats suite before v0.6.0)
        .with_kms_secret(text("testBasic", "basic"))
        .with_kms_secret(text("testSync", "sync"))
        .with_kms_secret(text("testRotation", "rotation"))
        .with_kms_secret(text(
            "testJson",
            r#"{"username":"bats-user","password":"bats-password"}"#,
        ))
        .with_access_key(AccessKey::new(USER_KEY, USER_SECRET).allowing(Vec::<String>::new()))
        .with_access_key(
            AccessKey::new(NODE_PUBLISH_KEY, NODE_PUBLISH_SECRET).allowing(["kms:secret/app/*"]),
        )
        // pod-sa-secretproviderclass.yaml: the pod's role, trusted for
        // default/app-pod-sa through the cluster's OIDC provider
        .with_oidc_provider(OidcProvider::new(OIDC_PROVIDER, OIDC_ISSUER))
        .with_role(
            Role::new(role("pod-sa-kms-access-role"))
                .allowing(["kms:secret/test-kms", "kms:secret/pod-sa-test"])
                .trusting_oidc(OIDC_PROVIDER, ["system:serviceaccount:default:app-pod-sa"]),
        )
        .with_service_account(
            ServiceAccount::new("default", "app-pod-sa")
                .with_role_arn(role("pod-sa-kms-access-role")),
        )
        // README.md "Example: Pod SA + Cross-Account": the pod's role may
        // only assume the target account's role, which reads staging/*
        .with_role(
            Role::new(role("staging-app"))
                .trusting_oidc(OIDC_PROVIDER, ["system:serviceaccount:staging:app"]),
        )
        .with_service_account(
            ServiceAccount::new("staging", "app").with_role_arn(role("staging-app")),
        )
        .with_role(
            Role::new("acs:ram::210987654321:role/cross-account-kms-role")
                .allowing(["kms:secret/staging/*"])
                .trusting_roles([role("staging-app")]),
        )
        // provider-rrsa-secretproviderclass.yaml: the provider's own role
        .with_role(
            Role::new(role("provider-rrsa-role"))
                .allowing(["kms:secret/my-secret"])
                .trusting_oidc(
                    OIDC_PROVIDER,
                    ["system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud"],
                ),
        )
        // ram-role-secretproviderclass.yaml: the RAM user assumes the role
        .with_role(
            Role::new(role("kms-read-role"))
                .allowing(["kms:secret/app/*"])
                .trusting_access_keys([USER_KEY]),
        )
        // cross-account-secretproviderclass.yaml and test-cross-account-spc.yaml:
        // the source key may only assume the target role
        .with_role(
            Role::new(role("cross-account-kms-access-role"))
                .allowing(["kms:secret/prod/*", "kms:secret/cross-account-test"])
                .trusting_access_keys([USER_KEY]),
        )
        // ecs-ram-role-secretproviderclass.yaml: the worker nodes' role
        .with_role(Role::new(role("worker-role")).allowing(["kms:secret/app/*"]))
        .with_imds(ImdsSeed::with_role(role("worker-role")))
}

/// The emulator's endpoints and nothing else: no identity of the provider's
/// own (the ECS worker role is the chain's last link).
fn endpoints_only(cloud: &FakeCloud) -> Vec<(String, String)> {
    cloud
        .env()
        .into_iter()
        .filter(|(k, _)| k.ends_with("_ENDPOINT"))
        .collect()
}

/// The RAM user's access key in the provider's environment
/// (envVarsFromSecret ACCESS_KEY_ID / SECRET_ACCESS_KEY).
fn ram_user_env(cloud: &FakeCloud) -> Vec<(String, String)> {
    let mut env = endpoints_only(cloud);
    env.push(("ACCESS_KEY_ID".into(), USER_KEY.into()));
    env.push(("SECRET_ACCESS_KEY".into(), USER_SECRET.into()));
    env
}

/// A Mount of an upstream SecretProviderClass: its `parameters` (the
/// objects text as the class's block scalar holds it), for a pod of
/// `namespace` running as `service_account`.
fn upstream_mount(
    objects: &str,
    parameters: &[(&str, &str)],
    namespace: &str,
    service_account: &str,
) -> Mount {
    let mut mount =
        Mount::objects(objects).for_pod(namespace, &format!("{namespace}-pod"), service_account);
    for (key, value) in parameters {
        mount = mount.attribute(key, value);
    }
    mount
}

/// `(path, contents, mode)` of every file, in response order.
fn file_list(response: &MountResponse) -> Vec<(String, String, i32)> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.contents).into_owned(),
                f.mode,
            )
        })
        .collect()
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// examples/secretproviderclass.yaml: one KMS secret and one OOS parameter,
// no region (the provider's --region), files named after the objects.
#[tokio::test]
async fn upstream_example_secretproviderclass_kms_and_oos() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let objects = r#"- objectName: "test-kms"
  objectType: "kms"
- objectName: "test-oos"
  objectType: "oos"  # support kms and oos, default is kms
"#;
    let response = provider
        .mount(upstream_mount(objects, &[], "kube-system", "default"))
        .await
        .unwrap();
    assert_eq!(
        file_list(&response),
        [
            ("test-kms".into(), "1234".into(), 0o644),
            ("test-oos".into(), "SecretParameter".into(), 0o644),
        ]
    );
    // KMS: the VersionId, as upstream. OOS: the ParameterVersion where
    // upstream always said "v1" (README: "What changed, on purpose").
    assert_eq!(
        versions(&response),
        owned(&[("test-kms", "v1"), ("test-oos", "1")])
    );
    provider.stop().await;
}

// README.md Usage step 6 and examples/pod-sa-secretproviderclass.yaml: pod
// identity with `usePodServiceAccountToken: "true"`, the role from the
// ServiceAccount's ack.alibabacloud.com/role-arn annotation; the provider
// itself has only the cluster's OIDC provider ARN (tests/e2e TC-001's
// "rrsa_oidc_only").
#[tokio::test]
async fn upstream_example_pod_sa_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let objects = r#"- objectName: "test-kms"
  objectType: "kms"
  objectAlias: "test-kms"
"#;
    let response = provider
        .mount(
            upstream_mount(
                objects,
                &[
                    ("region", "cn-hangzhou"),
                    ("usePodServiceAccountToken", "true"),
                ],
                "default",
                "app-pod-sa",
            )
            .with_pod_identity(),
        )
        .await
        .unwrap();
    assert_eq!(files(&response)["test-kms"], "1234");
    assert_eq!(versions(&response), owned(&[("test-kms", "v1")]));
    assert_eq!(cloud.emulator.stats().successes("AssumeRoleWithOIDC"), 1);

    // tests/fixtures/spc/test-pod-sa-auth-spc.yaml (TC-001)
    let response = provider
        .mount(
            upstream_mount(
                "- objectName: \"pod-sa-test\"\n  objectType: \"kms\"\n",
                &[("usePodServiceAccountToken", "true")],
                "default",
                "app-pod-sa",
            )
            .with_pod_identity(),
        )
        .await
        .unwrap();
    assert_eq!(files(&response)["pod-sa-test"], "pod-sa-test-value");
    provider.stop().await;
}

// usePodServiceAccountToken: "True" was off upstream (only the exact string
// "true" turns it on): the Mount uses the provider's identity, as upstream,
// and the log says why pod identity was not used.
#[tokio::test]
async fn upstream_use_pod_service_account_token_is_exactly_true() {
    let logs = captured_logs();
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    for value in ["True", "yes", "1", "false"] {
        let response = provider
            .mount(
                upstream_mount(
                    "- objectName: test-kms\n",
                    &[("usePodServiceAccountToken", value)],
                    "default",
                    "app-pod-sa",
                )
                .with_pod_identity()
                .attribute("usePodServiceAccountToken", value),
            )
            .await
            .unwrap();
        assert_eq!(files(&response)["test-kms"], "1234", "{value}");
    }
    assert_eq!(
        cloud.emulator.stats().requests("AssumeRoleWithOIDC"),
        0,
        "pod identity stayed off"
    );
    provider.stop().await;
    let text = logs.text();
    for value in ["True", "yes", "1"] {
        assert!(
            text.contains(&format!(
                "usePodServiceAccountToken is \"{value}\", not \"true\": pod identity is off"
            )),
            "no warning for {value:?} in the log"
        );
    }
    assert!(!text.contains("usePodServiceAccountToken is \"false\""));
}

// README.md "Example: Pod SA + Cross-Account": pod identity as the base of a
// crossAccountRoleArn; the pod's own role reads nothing.
#[tokio::test]
async fn upstream_readme_pod_sa_cross_account() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.rrsa_env()).await;
    let objects = r#"- objectName: "staging/app-secret"
  objectType: "kms"
  objectAlias: "app-secret"
  crossAccountRoleArn: "acs:ram::210987654321:role/cross-account-kms-role"
"#;
    let response = provider
        .mount(
            upstream_mount(
                objects,
                &[
                    ("region", "cn-hangzhou"),
                    ("usePodServiceAccountToken", "true"),
                ],
                "staging",
                "app",
            )
            .with_pod_identity(),
        )
        .await
        .unwrap();
    assert_eq!(files(&response)["app-secret"], "staging-value");
    provider.stop().await;
}

// examples/provider-rrsa-secretproviderclass.yaml, README.md "Provider RRSA"
// step 5 and tests/fixtures/spc/test-backward-compat-spc.yaml (TC-002): no
// authentication parameter; the provider's own RRSA role
// (ALICLOUD_ROLE_ARN + the OIDC provider ARN + its projected token).
#[tokio::test]
async fn upstream_example_provider_rrsa_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("csi-secrets-store-provider-alibabacloud");
    std::fs::write(
        &token_file,
        pod_token("kube-system", "csi-secrets-store-provider-alibabacloud"),
    )
    .unwrap();
    let mut env = cloud.rrsa_env();
    env.push(("ALICLOUD_ROLE_ARN".into(), role("provider-rrsa-role")));
    env.push((
        "ALICLOUD_OIDC_TOKEN_FILE".into(),
        token_file.display().to_string(),
    ));
    let provider = TestProvider::start(cloud.config(), env).await;
    let objects = r#"- objectName: "my-secret"
  objectType: "kms"
  objectAlias: "my-secret"
  # (OPTIONAL) Cross-account access: uncomment crossAccountRoleArn
  # if the KMS secrets are in a different Alibaba Cloud account
  # crossAccountRoleArn: "acs:ram::<TARGET_ACCOUNT_ID>:role/<TARGET_ROLE_NAME>"

"#;
    let response = provider
        .mount(upstream_mount(
            objects,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(
        file_list(&response),
        [("my-secret".into(), "my-secret-value".into(), 0o644)]
    );
    // TC-002's fixture: a commented-out kmsEndpoint inside the objects text
    let response = provider
        .mount(upstream_mount(
            "- objectName: \"my-secret\"\n  objectType: \"kms\"\n  # KMS Endpoint can be specified as needed\n  # kmsEndpoint: \"kms.cn-hangzhou.aliyuncs.com\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(files(&response)["my-secret"], "my-secret-value");
    assert_eq!(cloud.emulator.stats().successes("AssumeRoleWithOIDC"), 1);
    provider.stop().await;
}

/// The objects of examples/{ak-sk,ram-role,node-publish,ecs-ram-role}-
/// secretproviderclass.yaml (the same two secrets in each).
const APP_OBJECTS: &str = r#"- objectName: "app/database-password"
  objectType: "kms"
  objectAlias: "db-password"
  # (OPTIONAL) Cross-account access: uncomment crossAccountRoleArn
  # if the KMS secrets are in a different Alibaba Cloud account
  # crossAccountRoleArn: "acs:ram::<TARGET_ACCOUNT_ID>:role/<TARGET_ROLE_NAME>"

- objectName: "app/api-key"
  objectType: "kms"
  objectAlias: "api-key"
"#;

#[track_caller]
fn assert_app_files(response: &MountResponse) {
    assert_eq!(
        file_list(response),
        [
            ("db-password".into(), "app-db-password".into(), 0o644),
            ("api-key".into(), "app-api-key".into(), 0o644),
        ]
    );
    assert_eq!(
        versions(response),
        owned(&[("api-key", "v1"), ("db-password", "v1")])
    );
}

// examples/ak-sk-secretproviderclass.yaml and tests/fixtures/spc/
// test-ak-sk-spc.yaml (TC-005, with its unknown `env_auth_mode` parameter):
// the access key from the environment.
#[tokio::test]
async fn upstream_example_ak_sk_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider
        .mount(upstream_mount(
            APP_OBJECTS,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_app_files(&response);
    let response = provider
        .mount(upstream_mount(
            "- objectName: \"app/api-key\"\n  objectType: \"kms\"\n",
            &[("env_auth_mode", "aksk")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(files(&response)["app_api-key"], "app-api-key");
    provider.stop().await;
}

// examples/ram-role-secretproviderclass.yaml and tests/fixtures/spc/
// test-ram-role-spc.yaml (TC-003): the access key assumes ALICLOUD_ROLE_ARN,
// which holds the KMS permission (the key itself reads nothing).
#[tokio::test]
async fn upstream_example_ram_role_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let mut env = ram_user_env(&cloud);
    env.push(("ALICLOUD_ROLE_ARN".into(), role("kms-read-role")));
    let provider = TestProvider::start(cloud.config(), env).await;
    let response = provider
        .mount(upstream_mount(
            APP_OBJECTS,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_app_files(&response);
    assert_eq!(cloud.emulator.stats().successes("AssumeRole"), 1);
    provider.stop().await;
}

// examples/node-publish-secretproviderclass.yaml, README.md "Node Publish
// Secret" and tests/fixtures/spc/test-node-publish-spc.yaml (TC-004): the
// volume's nodePublishSecretRef holds access_key and access_secret.
#[tokio::test]
async fn upstream_example_node_publish_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), endpoints_only(&cloud)).await;
    let response = provider
        .mount(
            upstream_mount(
                APP_OBJECTS,
                &[("region", "cn-hangzhou")],
                "default",
                "default",
            )
            .secret("access_key", NODE_PUBLISH_KEY)
            .secret("access_secret", NODE_PUBLISH_SECRET),
        )
        .await
        .unwrap();
    assert_app_files(&response);
    assert_eq!(
        cloud.emulator.imds_stats().successes("credentials"),
        0,
        "the node's role was not used"
    );
    provider.stop().await;
}

// examples/ecs-ram-role-secretproviderclass.yaml and tests/fixtures/spc/
// test-ecs-ram-role-spc.yaml (TC-007): nothing configured, so the worker
// nodes' RAM role from the metadata server.
#[tokio::test]
async fn upstream_example_ecs_ram_role_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), endpoints_only(&cloud)).await;
    let response = provider
        .mount(upstream_mount(
            APP_OBJECTS,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_app_files(&response);
    assert_eq!(cloud.emulator.imds_stats().successes("credentials"), 1);
    provider.stop().await;
}

// examples/cross-account-secretproviderclass.yaml, README.md "Cross-Account
// KMS Access" and tests/fixtures/spc/test-cross-account-spc.yaml (TC-006):
// the source account's key may only AssumeRole the target account's role.
#[tokio::test]
async fn upstream_example_cross_account_secretproviderclass() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), ram_user_env(&cloud)).await;
    let objects = r#"- objectName: "prod/database-password"
  objectType: "kms"
  objectAlias: "db-password"
  # [CORE] Cross-account RAM Role ARN in Target Account (KMS account)
  # Format: acs:ram::<TARGET_ACCOUNT_ID>:role/<ROLE_NAME>
  crossAccountRoleArn: "acs:ram::123456789012:role/cross-account-kms-access-role"

- objectName: "prod/api-key"
  objectType: "kms"
  objectAlias: "api-key"
  crossAccountRoleArn: "acs:ram::123456789012:role/cross-account-kms-access-role"
"#;
    let response = provider
        .mount(upstream_mount(
            objects,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(
        file_list(&response),
        [
            ("db-password".into(), "prod-db-password".into(), 0o644),
            ("api-key".into(), "prod-api-key".into(), 0o644),
        ]
    );
    assert_eq!(
        cloud.emulator.stats().successes("AssumeRole"),
        1,
        "one AssumeRole for both objects"
    );

    // TC-006's fixture: a comment before the first item, env_auth_mode
    let fixture = r#"# Access target account's Secret
- objectName: "cross-account-test"
  objectType: "kms"
  # Target account RAM Role ARN for cross-account access
  crossAccountRoleArn: "acs:ram::123456789012:role/cross-account-kms-access-role"
  # KMS Endpoint can be specified if target account KMS is in a different region
  # kmsEndpoint: "kms.cn-hangzhou.aliyuncs.com"
"#;
    let response = provider
        .mount(upstream_mount(
            fixture,
            &[("env_auth_mode", "aksk")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(
        files(&response)["cross-account-test"],
        "cross-account-value"
    );

    // without the role, the key reads nothing (the role held the permission)
    let status = provider
        .mount(upstream_mount(
            "- objectName: \"prod/api-key\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    provider.stop().await;
}

// README.md "JMESPath JSON Parsing": three fields of a JSON secret; the
// secret's own file is written too, as upstream did, and every file carries
// the secret's version.
#[tokio::test]
async fn upstream_readme_jmespath_json_parsing() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let objects = r#"- objectName: "app-config"
  objectType: "kms"
  jmesPath:
    - path: "username"
      objectAlias: "db-username"
    - path: "password"
      objectAlias: "db-password"
    - path: "host"
      objectAlias: "db-host"
"#;
    let response = provider
        .mount(upstream_mount(
            objects,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    let files = files(&response);
    assert_eq!(files.len(), 4);
    assert_eq!(files["db-username"], "admin");
    assert_eq!(files["db-password"], "s3cret");
    assert_eq!(files["db-host"], "db.example.com");
    assert!(files["app-config"].contains("\"host\": \"db.example.com\""));
    assert_eq!(
        versions(&response),
        owned(&[
            ("app-config", "v1"),
            ("db-host", "v1"),
            ("db-password", "v1"),
            ("db-username", "v1"),
        ])
    );
    assert!(response.files.iter().all(|f| f.mode == 0o644));
    provider.stop().await;
}

// README.md "SecretProviderClass Options" (jmesPath) and the seed
// document's `test` secret: MySecretUsername and MySecretPassword; and
// tests/fixtures/spc/test-jmespath-spc.yaml with tests/e2e/feature_test.go
// TC-008 (myUsername = testUser, myPassword = testPassword).
#[tokio::test]
async fn upstream_e2e_jmespath_and_readme_options_example() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let readme = r#"- objectName: "test"
  jmesPath:
      - path: "username"
        objectAlias: "MySecretUsername"
      - path: "password"
        objectAlias: "MySecretPassword"
"#;
    let response = provider
        .mount(upstream_mount(readme, &[], "default", "default"))
        .await
        .unwrap();
    let readme_files = files(&response);
    assert_eq!(readme_files["MySecretUsername"], "testuser");
    assert_eq!(readme_files["MySecretPassword"], "testpassword");

    let fixture = r#"- objectName: "jmespath-test"
  jmesPath:
    - path: "username"
      objectAlias: "myUsername"
    - path: "password"
      objectAlias: "myPassword"
"#;
    let response = provider
        .mount(upstream_mount(fixture, &[], "default", "default"))
        .await
        .unwrap();
    let fixture_files = files(&response);
    assert_eq!(fixture_files["myUsername"], "testUser");
    assert_eq!(fixture_files["myPassword"], "testPassword");
    assert_eq!(fixture_files.len(), 3);
    provider.stop().await;
}

// tests/fixtures/spc/test-rotation-spc.yaml with tests/e2e/feature_test.go
// TC-009: the secret is updated (PutSecretValue, version v2) and the next
// republish (requiresRepublish) mounts the new value and version.
#[tokio::test]
async fn upstream_e2e_rotation() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let mount = upstream_mount(
        "- objectName: \"rotation-test\"\n",
        &[],
        "default",
        "default",
    );
    let before = provider.mount(mount.clone()).await.unwrap();
    assert_eq!(files(&before)["rotation-test"], "before-rotation");
    assert_eq!(versions(&before), owned(&[("rotation-test", "v1")]));
    cloud
        .emulator
        .rotate_kms_secret("rotation-test", "v2", "after-rotation")
        .unwrap();
    let after = provider.mount(mount).await.unwrap();
    assert_eq!(files(&after)["rotation-test"], "after-rotation");
    assert_eq!(versions(&after), owned(&[("rotation-test", "v2")]));
    provider.stop().await;
}

// tests/fixtures/spc/test-secret-sync-spc.yaml and test-cleanup-spc.yaml
// (TC-010, TC-011) and README.md "Kubernetes Secret Sync": the driver syncs
// secretObjects[].data[].objectName from the mounted file of that name, so
// the file must be named exactly as objectAlias (or objectName).
#[tokio::test]
async fn upstream_e2e_secret_sync_file_names() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider
        .mount(upstream_mount(
            "- objectName: \"sync-test\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(files(&response)["sync-test"], "sync-test-value");
    let readme = r#"- objectName: "my-db-secret"
  objectType: "kms"
  objectAlias: "db-password"
"#;
    let response = provider
        .mount(upstream_mount(
            readme,
            &[("region", "cn-hangzhou")],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(
        file_list(&response),
        [("db-password".into(), "my-db-password".into(), 0o644)]
    );
    provider.stop().await;
}

// tests/BasicTestMountSPC.yaml (the bats suite before v0.6.0): four secrets,
// one with jmesPath, indented 8 spaces in the block.
#[tokio::test]
async fn upstream_bats_basic_test_mount_spc() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let objects = r#"        - objectName: testBasic
        - objectName: testSync
        - objectName: testRotation
        - objectName: testJson
          jmesPath:
            - path: "username"
              objectAlias: "mySecretUsername"
            - path: "password"
              objectAlias: "mySecretPassword"
"#;
    let mut mount = upstream_mount(objects, &[], "default", "default");
    mount.permission = "384".into(); // 0600 from the volume's defaultMode
    let response = provider.mount(mount).await.unwrap();
    let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "testBasic",
            "testSync",
            "testRotation",
            "mySecretUsername",
            "mySecretPassword",
            "testJson"
        ]
    );
    assert!(response.files.iter().all(|f| f.mode == 0o600));
    assert_eq!(files(&response)["mySecretPassword"], "bats-password");
    provider.stop().await;
}

// README.md "Tips": one name in KMS and OOS, told apart by objectAlias; and
// the same without aliases, which upstream let "override" one file with the
// other and which is an error here.
#[tokio::test]
async fn upstream_readme_tips_same_object_name_in_kms_and_oos() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let objects = r#"- objectName: "MySecret"
  objectType: "kms"
  objectAlias: "MySecretKMS"
- objectName: "MySecret"
  objectType: "oos"
  objectAlias: "MySecretOOS"
"#;
    let response = provider
        .mount(upstream_mount(objects, &[], "default", "default"))
        .await
        .unwrap();
    assert_eq!(
        file_list(&response),
        [
            ("MySecretKMS".into(), "from-kms".into(), 0o644),
            ("MySecretOOS".into(), "from-oos".into(), 0o644),
        ]
    );
    let status = provider
        .mount(upstream_mount(
            "- objectName: \"MySecret\"\n  objectType: \"kms\"\n- objectName: \"MySecret\"\n  objectType: \"oos\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        &["both write the file \"MySecret\""],
    );
    provider.stop().await;
}

// The seed document's SecretProviderClass template (`- objectName:
// "MySecret"`) mounts; its "Configuration example" puts objectType in a
// second list item, an object without a name that upstream refused too.
#[tokio::test]
async fn seed_document_template_and_configuration_example() {
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider
        .mount(upstream_mount(
            "- objectName: \"MySecret\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap();
    assert_eq!(files(&response)["MySecret"], "from-kms");
    let status = provider
        .mount(upstream_mount(
            "- objectName: \"test\"\n- objectType: \"kms\"\n",
            &[],
            "default",
            "default",
        ))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        &["objects[1]: object name must be specified"],
    );
    assert_eq!(cloud.emulator.stats().total, 1, "nothing fetched for it");
    provider.stop().await;
}

// What upstream ignored for an OOS object (getOOSSecret sends only Name and
// WithDecryption): objectVersionLabel, kmsEndpoint, an objectVersion that is
// not a number. Ignored here too, each with a warning in the log; the
// kmsEndpoint is not even checked against the network policy, since it is
// not used.
#[tokio::test]
async fn upstream_oos_objects_ignore_kms_only_fields() {
    let logs = captured_logs();
    let cloud = FakeCloud::start(upstream_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let objects = r#"- objectName: "test-oos"
  objectType: "oos"
  objectVersionLabel: "ACSCurrent"
  kmsEndpoint: "kst-hzz65f1b5a1rr3v2e1c3.cryptoservice.kms.aliyuncs.com"
  objectVersion: "v1"
"#;
    let response = provider
        .mount(upstream_mount(objects, &[], "default", "default"))
        .await
        .unwrap();
    assert_eq!(files(&response)["test-oos"], "SecretParameter");
    assert_eq!(versions(&response), owned(&[("test-oos", "1")]));
    provider.stop().await;
    let text = logs.text();
    for warning in [
        "objectVersionLabel \"ACSCurrent\" is ignored for OOS parameter test-oos",
        "kmsEndpoint \"kst-hzz65f1b5a1rr3v2e1c3.cryptoservice.kms.aliyuncs.com\" is ignored for OOS parameter test-oos",
        "objectVersion \"v1\" is ignored for OOS parameter test-oos",
    ] {
        assert!(text.contains(warning), "{warning:?} is not in the log");
    }
}

/// A failed Mount's status.
async fn refused(provider: &TestProvider, mount: Mount) -> tonic::Status {
    provider.mount(mount).await.unwrap_err()
}

// Upstream's messages for the same conditions (server/server.go,
// provider/secret_object.go, provider/secret_manager_provider.go,
// provider/secret_value.go at v0.6.0), kept as a part of ours so that what
// operators grep for in FailedMount events still matches. (`decode binary
// data error: <why>, key: <name>` needs a malformed answer: it is pinned by
// leaks::kms_error_paths_leak_no_byte_of_the_secret.)
#[tokio::test]
async fn upstream_error_texts_are_kept() {
    let cloud = FakeCloud::start(
        upstream_seed()
            .with_kms_secret(KmsSecret::text("not-json", "plain text"))
            .with_kms_secret(KmsSecret::text("numbers", r#"{"port": 5432}"#)),
    )
    .await;
    let provider = TestProvider::start(cloud.config(), ram_user_env(&cloud)).await;
    let objects = |yaml: &str| upstream_mount(yaml, &[], "default", "default");
    let cases: Vec<(Mount, Code, &str)> = vec![
        (
            objects("- objectName: a\n").attribute("pathTranslation", "--"),
            Code::InvalidArgument,
            "pathTranslation must be either 'False' or a single character string",
        ),
        (
            objects("- objectName: 'a: b\n"),
            Code::InvalidArgument,
            "failed to load SecretProviderClass: ",
        ),
        (
            objects("- objectAlias: a\n"),
            Code::InvalidArgument,
            "object name must be specified",
        ),
        (
            objects("- objectName: acs:kms:cn-hangzhou:123456789012\n"),
            Code::InvalidArgument,
            "invalid ARN format in object name: acs:kms:cn-hangzhou:123456789012",
        ),
        (
            objects(
                "- objectName: acs:oos:cn-hangzhou:123456789012:secretparameter/p\n  objectType: oos\n",
            ),
            Code::InvalidArgument,
            "invalid service in ARN: oos",
        ),
        (
            objects("- objectName: ../etc/passwd\n").attribute("pathTranslation", "False"),
            Code::InvalidArgument,
            "path can not contain ../: ../etc/passwd",
        ),
        (
            objects("- objectName: a\n  jmesPath:\n    - objectAlias: x\n"),
            Code::InvalidArgument,
            "path must be specified for JMES object",
        ),
        (
            objects("- objectName: a\n  jmesPath:\n    - path: x\n"),
            Code::InvalidArgument,
            "object alias must be specified for JMES object",
        ),
        (
            objects("- objectName: a\n- objectName: a\n"),
            Code::InvalidArgument,
            "duplicate object name: a (type: kms)",
        ),
        (
            objects("- objectName: a\n  objectAlias: x\n- objectName: b\n  objectAlias: x\n"),
            Code::InvalidArgument,
            "duplicate object alias: x",
        ),
        (
            objects(
                "- objectName: a\n  jmesPath:\n    - {path: u, objectAlias: u}\n- objectName: b\n  jmesPath:\n    - {path: u, objectAlias: u}\n",
            ),
            Code::InvalidArgument,
            "duplicate JMES path object alias: u",
        ),
        (
            objects("- objectName: a\n  objectType: vault\n"),
            Code::InvalidArgument,
            "unsupported object type \"vault\", only support \"kms\" and \"oos\"",
        ),
        (
            objects("- objectName: a\n  jmesPath:\n    - path: '.x'\n      objectAlias: x\n"),
            Code::InvalidArgument,
            "invalid JMES Path: .x",
        ),
        (
            objects(
                "- objectName: prod/api-key\n  crossAccountRoleArn: acs:ram::123456789012:role/nobody\n",
            ),
            Code::PermissionDenied,
            "failed to assume cross account role acs:ram::123456789012:role/nobody for object prod/api-key: ",
        ),
        (
            objects(
                "- objectName: test-oos\n  objectType: oos\n  crossAccountRoleArn: acs:ram::123456789012:role/nobody\n",
            ),
            Code::PermissionDenied,
            "failed to assume cross account role acs:ram::123456789012:role/nobody for OOS object test-oos: ",
        ),
    ];
    for (mount, code, upstream) in cases {
        let status = refused(&provider, mount).await;
        assert_status(&status, code, &[upstream]);
    }
    provider.stop().await;

    // read with a key that may read everything: the content errors
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let jmes = |name: &str, path: &str| {
        objects(&format!(
            "- objectName: {name}\n  jmesPath:\n    - path: {path}\n      objectAlias: out\n"
        ))
    };
    for (mount, code, upstream) in [
        (
            objects("- objectName: missing\n"),
            Code::NotFound,
            "failed fetching secret missing: ",
        ),
        (
            objects("- objectName: missing\n  objectType: oos\n"),
            Code::NotFound,
            "failed fetching secret missing: ",
        ),
        (
            jmes("not-json", "a"),
            Code::InvalidArgument,
            "invalid JSON used with jmesPath in secret: not-json",
        ),
        (
            jmes("numbers", "host"),
            Code::InvalidArgument,
            "jmes path - host for object alias - out does not point to a valid object",
        ),
        (
            jmes("numbers", "port"),
            Code::InvalidArgument,
            "invalid JMES search result type for path port; only string is allowed",
        ),
    ] {
        let status = refused(&provider, mount).await;
        assert_status(&status, code, &[upstream]);
    }

    // the request envelope, sent as a broken driver would
    let mut client = provider.client().await;
    let mut request = objects("- objectName: a\n").request();
    request.target_path = String::new();
    let status = client.mount(request).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, &["missing mount path"]);
    let mut request = objects("- objectName: a\n").request();
    request.attributes = "{\"objects\": 5}".into();
    let status = client.mount(request).await.unwrap_err();
    assert!(
        status
            .message()
            .starts_with("failed to unmarshal attributes, error: "),
        "{}",
        status.message()
    );
    let mut request = objects("- objectName: a\n").request();
    request.permission = "\"rw\"".into();
    let status = client.mount(request).await.unwrap_err();
    assert!(
        status
            .message()
            .starts_with("failed to unmarshal file permission, error: "),
        "{}",
        status.message()
    );
    provider.stop().await;
}
