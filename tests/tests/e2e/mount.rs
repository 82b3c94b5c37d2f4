//! Successful Mounts: KMS (text, binary, pinned, labelled), OOS (latest,
//! pinned), jmesPath, modes, credentials, endpoints and custom routing.

use integration_tests::*;

const SEED_EXAMPLE: &str = r#"
- objectName: "test"
  objectType: "kms"
  jmesPath:
    - path: "username"
      objectAlias: "username"
    - path: "password"
      objectAlias: "password"
- objectName: "db/password"
  objectType: "oos"
"#;

#[tokio::test]
async fn the_seed_documents_example_mounts_files_and_versions() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider.mount(Mount::objects(SEED_EXAMPLE)).await.unwrap();

    let files = files(&response);
    assert_eq!(
        files["test"],
        r#"{"username":"testuser","password":"testpassword"}"#
    );
    assert_eq!(files["username"], "testuser");
    assert_eq!(files["password"], "testpassword");
    assert_eq!(files["db_password"], "second-password");
    assert_eq!(files.len(), 4);
    assert!(response.files.iter().all(|f| f.mode == 0o644));
    // one version per file, sorted by id; jmesPath files inherit the parent's
    assert_eq!(
        versions(&response),
        [
            ("db_password".to_string(), "2".to_string()),
            ("password".into(), "v1".into()),
            ("test".into(), "v1".into()),
            ("username".into(), "v1".into()),
        ]
    );
    assert!(response.error.is_none());
    assert_eq!(cloud.emulator.stats().successes("GetSecretValue"), 1);
    assert_eq!(cloud.emulator.stats().successes("GetSecretParameter"), 1);
    provider.stop().await;
}

#[tokio::test]
async fn kms_binary_pinned_and_labelled_versions_and_oos_versions() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider
        .mount(Mount::objects(
            r#"
- objectName: binary-test
- objectName: test
  objectAlias: pinned
  objectVersion: v0
- objectName: test
  objectAlias: previous
  objectVersionLabel: ACSPrevious
- objectName: db/password
  objectType: oos
  objectAlias: first
  objectVersion: 1
"#,
        ))
        .await
        .unwrap();
    let binary = response
        .files
        .iter()
        .find(|f| f.path == "binary-test")
        .unwrap();
    assert_eq!(binary.contents, [0, 159, 146, 150, 255]);
    let files = files(&response);
    assert!(files["pinned"].contains("oldpassword"));
    assert!(files["previous"].contains("oldpassword"));
    assert_eq!(files["first"], "first-password");
    let versions = versions(&response);
    assert!(
        versions.contains(&("pinned".into(), "v0".into())),
        "{versions:?}"
    );
    assert!(versions.contains(&("previous".into(), "v0".into())));
    assert!(versions.contains(&("first".into(), "1".into())));
    provider.stop().await;
}

#[tokio::test]
async fn modes_translation_and_nested_paths() {
    let cloud = FakeCloud::start(default_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let mut mount = Mount::objects(
        r#"
- objectName: test
  objectAlias: app/db/credentials
  filePermission: "0600"
  jmesPath:
    - path: username
      objectAlias: app/db/user
"#,
    )
    .attribute("pathTranslation", "False");
    mount.permission = "416".into(); // 0640
    let response = provider.mount(mount).await.unwrap();
    let paths: Vec<(&str, i32)> = response
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode))
        .collect();
    assert_eq!(
        paths,
        [("app/db/user", 0o600), ("app/db/credentials", 0o600)]
    );

    let response = provider
        .mount(Mount::objects("- objectName: test\n  objectAlias: a/b\n"))
        .await
        .unwrap();
    assert_eq!(response.files[0].path, "a_b");
    assert_eq!(response.files[0].mode, 0o644);
    provider.stop().await;
}

#[tokio::test]
async fn node_publish_secret_credentials_are_used_before_the_environment() {
    let seed = default_seed().with_access_key(
        emulator::AccessKey::new("tenant-key", "tenant-secret-value").allowing(["oos:parameter/*"]),
    );
    let cloud = FakeCloud::start(seed).await;
    // the environment's key may read everything; the tenant's key only OOS
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let tenant = |yaml: &str| {
        Mount::objects(yaml)
            .secret("access_key", "tenant-key")
            .secret("access_secret", "tenant-secret-value")
    };
    provider
        .mount(tenant("- objectName: db/password\n  objectType: oos\n"))
        .await
        .unwrap();
    let denied = provider
        .mount(tenant("- objectName: test\n"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    // without any credentials the error lists what each source lacked
    let bare = TestProvider::start(
        cloud.config(),
        cloud
            .env()
            .into_iter()
            .filter(|(k, _)| k.contains("ENDPOINT"))
            .collect(),
    )
    .await;
    let none = bare
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap_err();
    assert_eq!(none.code(), tonic::Code::PermissionDenied);
    // every link says what it lacked, in the chain's order
    let message = none.message();
    let mut at = 0;
    for link in [
        "no Alibaba Cloud credentials for this Mount: pod identity: not asked for",
        "; provider RRSA: ALICLOUD_ROLE_ARN and an OIDC provider ARN",
        "; access key + AssumeRole: ",
        "; nodePublishSecretRef: no Secret with access_key and access_secret keys",
        "; environment access key: neither ACCESS_KEY_ID",
        "; ECS RAM role: ",
    ] {
        let found = message[at..]
            .find(link)
            .unwrap_or_else(|| panic!("{link:?} missing in order: {message}"));
        at += found + link.len();
    }
    bare.mount(tenant("- objectName: db/password\n  objectType: oos\n"))
        .await
        .unwrap();
    provider.stop().await;
    bare.stop().await;
}

#[tokio::test]
async fn strict_identity_policy_refuses_the_providers_own_keys() {
    let cloud = FakeCloud::start(default_seed()).await;
    let mut config = cloud.config();
    config.identity.policy = provider::config::IdentityPolicy::Strict;
    let provider = TestProvider::start(config, cloud.env()).await;
    let status = provider
        .mount(Mount::objects("- objectName: test\n"))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("identity.policy = \"strict\""),
        "{}",
        status.message()
    );
    assert_eq!(cloud.emulator.stats().total, 0);
    provider.stop().await;
}

#[tokio::test]
async fn kms_endpoint_is_honoured_per_object_when_the_operator_allows_it() {
    let main = FakeCloud::start(default_seed()).await;
    let dedicated_seed =
        default_seed().with_kms_secret(emulator::KmsSecret::text("only-here", "dedicated"));
    let dedicated = FakeCloud::start(dedicated_seed).await;
    let mut config = main.config();
    config
        .cloud
        .endpoints
        .insert("kms-instance".into(), dedicated.emulator.url());
    let provider = TestProvider::start(config, main.env()).await;
    let yaml = format!(
        "- objectName: test\n- objectName: only-here\n  kmsEndpoint: {}\n",
        dedicated.emulator.url()
    );
    let response = provider.mount(Mount::objects(&yaml)).await.unwrap();
    assert_eq!(files(&response)["only-here"], "dedicated");
    assert_eq!(main.emulator.stats().successes("GetSecretValue"), 1);
    assert_eq!(dedicated.emulator.stats().successes("GetSecretValue"), 1);

    // an endpoint the operator did not allow is refused before any request
    let status = provider
        .mount(Mount::objects(
            "- objectName: test\n  kmsEndpoint: attacker.example.com\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("not allowed by the provider's network policy"),
        "{}",
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn a_custom_object_type_is_routed_to_a_component_file() {
    let cloud = FakeCloud::start(default_seed()).await;
    let mut config = cloud.config();
    let route: provider::config::PluginRoute = toml_route(&format!(
        "path = {:?}\n[config]\ngreeting = \"hello\"\n[capabilities]\nalibaba_cloud = true\nhttp = [\"https://example.invalid\"]\npod_info = true\n",
        built_plugin("testing_plugin.wasm")
    ));
    config.plugins.insert("testing".into(), route);
    let provider = TestProvider::start(config, cloud.env()).await;
    let response = provider
        .mount(Mount::objects(
            r#"
- objectName: "echo:from a plugin"
  objectType: testing
  objectAlias: echo
  objectVersion: "7"
- objectName: "config:greeting"
  objectType: testing
  objectAlias: greeting
- objectName: "call:kms:GetSecretValue:2016-01-20"
  objectType: testing
  objectAlias: raw-kms
  parameters:
    SecretName: test
- objectName: test
"#,
        ))
        .await
        .unwrap();
    let files = files(&response);
    assert_eq!(files["echo"], "from a plugin");
    assert_eq!(files["greeting"], "hello");
    // a custom plugin's Alibaba Cloud call is signed by the host
    assert!(
        files["raw-kms"].contains(r#""SecretName":"test""#),
        "{}",
        files["raw-kms"]
    );
    assert!(versions(&response).contains(&("echo".into(), "7".into())));

    let status = provider
        .mount(Mount::objects("- objectName: x\n  objectType: vault\n"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "objects[0] (objectName \"x\"): unsupported object type \"vault\", only support \"kms\", \"oos\" and \"testing\""
    );
    provider.stop().await;
}

/// Parses one `[plugins.<type>]` table body.
pub fn toml_route(text: &str) -> provider::config::PluginRoute {
    let config = provider::config::Config::parse(
        &format!(
            "[plugins.x]\n{}",
            text.replace("[config]", "[plugins.x.config]")
                .replace("[capabilities]", "[plugins.x.capabilities]")
        ),
        std::path::Path::new("test"),
    )
    .unwrap();
    config.plugins["x"].clone()
}
