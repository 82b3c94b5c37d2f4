//! The example custom backend, `plugins/vault`, through a real Mount: the
//! provider routes `objectType: vault` to `vault_plugin.wasm`, which reads
//! KV v2 secrets from a local fake Vault, logging in with the pod's
//! service-account token or using a token from the nodePublishSecretRef.

use std::path::Path;

use integration_tests::fake_vault::{FakeVault, VaultRole};
use integration_tests::*;
use provider::config::Config;
use serde_json::{Value, json};
use tonic::Code;

/// The token an operator hands out through a nodePublishSecretRef.
const STATIC_TOKEN: &str = "hvs.STATIC-TOKEN-CANARY-4e1b";

/// A Vault with `app/db` at versions 1 and 2, role `app` for team-a's `app`
/// service account reading `app/`, and [`STATIC_TOKEN`] reading `app/`.
async fn vault() -> FakeVault {
    FakeVault::start()
        .await
        .with_secret(
            "app/db",
            json!({"user": "app", "password": "OLD-PASSWORD-1"}),
        )
        .with_secret(
            "app/db",
            json!({"user": "app", "password": "NEW-PASSWORD-2", "port": 5432}),
        )
        .with_secret("other/db", json!({"password": "OTHER-PASSWORD"}))
        .with_role(
            VaultRole::new("app")
                .bound_to(["team-a"], ["app"])
                .reading(["app/"]),
        )
        .with_token(STATIC_TOKEN, ["app/"])
}

/// A provider config routing `vault` to the example plugin, as an operator
/// writes it: `config` and `capabilities` are the inline tables' contents.
fn vault_config(config: &str, capabilities: &str) -> Config {
    let text = format!(
        "[plugins.vault]\npath = {:?}\nconfig = {{ {config} }}\ncapabilities = {{ {capabilities} }}\n",
        built_plugin("vault_plugin.wasm")
    );
    Config::parse(&text, Path::new("config.toml")).unwrap()
}

/// Everything granted, for `vault`.
fn grants(vault: &FakeVault) -> String {
    format!(
        r#"http = ["{}"], allow_internal_addresses = true, service_account_audiences = ["vault"], node_publish_secret_keys = ["vault_token"]"#,
        vault.url()
    )
}

/// The usual route: `address` and `role = "app"`, everything granted.
async fn provider_for(vault: &FakeVault) -> TestProvider {
    let config = vault_config(
        &format!(r#"address = "{}", role = "app""#, vault.url()),
        &grants(vault),
    );
    TestProvider::start(config, Vec::new()).await
}

/// A kubelet-like token of service account `namespace/account` for `audience`.
fn sa_token(namespace: &str, account: &str, audience: &str) -> String {
    let claims = emulator::jwt::Claims::service_account(OIDC_ISSUER, namespace, account)
        .with_audiences([audience]);
    emulator::jwt::mint(&claims, None)
}

/// A Mount of `yaml` by pod `namespace/app-0` running as `account`, with its
/// token for audience `vault`, as kubelet sends it.
fn mount_as(namespace: &str, account: &str, yaml: &str) -> Mount {
    let token = sa_token(namespace, account, "vault");
    Mount::objects(yaml)
        .for_pod(namespace, "app-0", account)
        .attribute(provider::spc::SA_TOKENS_KEY, &tokens_json("vault", &token))
}

#[tokio::test]
async fn a_vault_secret_mounts_whole_by_field_by_version_and_through_jmespath() {
    let vault = vault().await;
    let provider = provider_for(&vault).await;
    let response = provider
        .mount(mount_as(
            "team-a",
            "app",
            r#"
- objectName: app/db
  objectType: vault
  objectAlias: db.json
  jmesPath:
    - path: user
      objectAlias: user
- objectName: app/db
  objectType: vault
  objectAlias: password
  parameters:
    field: password
- objectName: app/db
  objectType: vault
  objectAlias: old-password
  objectVersion: "1"
  parameters:
    field: password
"#,
        ))
        .await
        .unwrap();

    let files = files(&response);
    let whole: Value = serde_json::from_str(&files["db.json"]).unwrap();
    assert_eq!(
        whole,
        json!({"user": "app", "password": "NEW-PASSWORD-2", "port": 5432})
    );
    assert_eq!(files["user"], "app");
    assert_eq!(files["password"], "NEW-PASSWORD-2");
    assert_eq!(files["old-password"], "OLD-PASSWORD-1");
    assert_eq!(files.len(), 4);
    // the KV version is the object's version; jmesPath files inherit it
    assert_eq!(
        versions(&response),
        [
            ("db.json".to_string(), "2".to_string()),
            ("old-password".into(), "1".into()),
            ("password".into(), "2".into()),
            ("user".into(), "2".into()),
        ]
    );
    // every object is fetched on a fresh instance: one login and one read each
    let stats = vault.stats();
    assert_eq!((stats.logins, stats.reads), (3, 3), "{stats:?}");
    assert_eq!(stats.refused_logins + stats.denied_reads, 0, "{stats:?}");
    provider.stop().await;
}

#[tokio::test]
async fn a_token_from_the_node_publish_secret_ref_needs_no_login_and_is_never_logged() {
    let logs = captured_logs();
    let vault = vault().await;
    // no role: this route only serves volumes that bring their own token
    let config = vault_config(&format!(r#"address = "{}""#, vault.url()), &grants(&vault));
    let provider = TestProvider::start(config, Vec::new()).await;
    let yaml = "- objectName: app/db\n  objectType: vault\n  parameters:\n    field: password\n";

    let response = provider
        .mount(Mount::objects(yaml).secret("vault_token", STATIC_TOKEN))
        .await
        .unwrap();
    assert_eq!(files(&response)["app_db"], "NEW-PASSWORD-2");
    let stats = vault.stats();
    assert_eq!((stats.logins, stats.reads), (0, 1), "{stats:?}");

    // a token Vault does not know is refused, and the message does not echo it
    let status = provider
        .mount(Mount::objects(yaml).secret("vault_token", "hvs.WRONG-TOKEN-CANARY"))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &[r#"Vault secret "secret/app/db""#, "permission denied"],
    );
    // without a token and without a role there is no way to log in
    let status = provider.mount(Mount::objects(yaml)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains("config key \"role\""),
        "{}",
        status.message()
    );
    provider.stop().await;

    let text = logs.text();
    assert!(
        text.contains("plugin sends an HTTP request"),
        "the capture works at trace level"
    );
    for secret in [STATIC_TOKEN, "hvs.WRONG-TOKEN-CANARY", "NEW-PASSWORD-2"] {
        assert!(!text.contains(secret), "{secret} appears in the logs");
        assert!(!status.message().contains(secret));
    }
}

#[tokio::test]
async fn a_service_account_the_role_does_not_bind_is_permission_denied() {
    let vault = vault().await;
    let provider = provider_for(&vault).await;
    let yaml = "- objectName: app/db\n  objectType: vault\n";

    for (namespace, account, why) in [
        ("team-b", "app", "namespace not authorized"),
        ("team-a", "default", "service account name not authorized"),
    ] {
        let mount = mount_as(namespace, account, yaml);
        let token = sa_token(namespace, account, "vault");
        let status = provider.mount(mount).await.unwrap_err();
        let message = assert_status(
            &status,
            Code::PermissionDenied,
            &[r#"Vault secret "secret/app/db""#, why],
        );
        let claims = token.split('.').nth(1).unwrap();
        assert!(
            !message.contains(claims),
            "the pod's token leaks: {message}"
        );
    }
    assert_eq!(vault.stats().refused_logins, 2);

    // a role whose policy does not cover the path: Vault's 403 on the read
    let status = provider
        .mount(mount_as(
            "team-a",
            "app",
            "- objectName: other/db\n  objectType: vault\n",
        ))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        &[r#"Vault secret "secret/other/db""#, "permission denied"],
    );
    assert!(!status.message().contains("OTHER-PASSWORD"));
    assert_eq!(vault.stats().denied_reads, 1);
    provider.stop().await;
}

#[tokio::test]
async fn missing_secrets_versions_and_fields_are_not_found_and_bad_names_invalid() {
    let vault = vault().await;
    let provider = provider_for(&vault).await;
    for (yaml, code, want) in [
        (
            "- objectName: app/nope\n  objectType: vault\n",
            Code::NotFound,
            r#"Vault secret "secret/app/nope": HTTP 404"#,
        ),
        (
            "- objectName: app/db\n  objectType: vault\n  objectVersion: \"9\"\n",
            Code::NotFound,
            r#"Vault secret "secret/app/db": HTTP 404"#,
        ),
        (
            "- objectName: app/db\n  objectType: vault\n  parameters:\n    field: nope\n",
            Code::NotFound,
            r#"Vault secret "secret/app/db" has no field "nope" with a string value"#,
        ),
        (
            "- objectName: app/db\n  objectType: vault\n  parameters:\n    field: port\n",
            Code::NotFound,
            r#"has no field "port" with a string value"#,
        ),
        (
            "- objectName: app/../../sys/seal\n  objectType: vault\n",
            Code::InvalidArgument,
            "objectName must be /-separated names",
        ),
        (
            "- objectName: app/db\n  objectType: vault\n  objectVersion: latest\n",
            Code::InvalidArgument,
            r#"objectVersion "latest" is not a KV version number"#,
        ),
        (
            "- objectName: app/db\n  objectType: vault\n  parameters:\n    key: password\n",
            Code::InvalidArgument,
            r#"unknown parameter "key" for objectType vault; known parameters: field"#,
        ),
    ] {
        let status = provider
            .mount(mount_as("team-a", "app", yaml))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{yaml}: {}", status.message());
        assert!(
            status.message().contains(want),
            "{yaml}: {}",
            status.message()
        );
        assert!(
            !status.message().contains("PASSWORD"),
            "{}",
            status.message()
        );
    }
    assert_eq!(vault.stats().missing_reads, 2);
    provider.stop().await;
}

#[tokio::test]
async fn other_mounts_and_audiences_are_configured() {
    let vault = vault().await.with_mounts("k8s-prod", "kv");
    let config = vault_config(
        &format!(
            r#"address = "{}/", role = "app", auth_mount = "k8s-prod", kv_mount = "kv", audience = "vault-prod""#,
            vault.url()
        ),
        &format!(
            r#"http = ["{}"], allow_internal_addresses = true, service_account_audiences = ["vault-prod"]"#,
            vault.url()
        ),
    );
    let provider = TestProvider::start(config, Vec::new()).await;
    let token = sa_token("team-a", "app", "vault-prod");
    let mount = Mount::objects("- objectName: app/db\n  objectType: vault\n").attribute(
        provider::spc::SA_TOKENS_KEY,
        &tokens_json("vault-prod", &token),
    );
    let response = provider.mount(mount).await.unwrap();
    assert!(files(&response)["app_db"].contains("NEW-PASSWORD-2"));
    assert_eq!(vault.stats().logins, 1);

    // kubelet sent no token for the audience: the CSIDriver lacks it
    let mount = mount_as(
        "team-a",
        "app",
        "- objectName: app/db\n  objectType: vault\n",
    );
    let status = provider.mount(mount).await.unwrap_err();
    assert!(
        status.message().contains("vault-prod"),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn an_unreachable_vault_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let config = vault_config(
        &format!(r#"address = "{url}", role = "app""#),
        &format!(
            r#"http = ["{url}"], allow_internal_addresses = true, service_account_audiences = ["vault"]"#
        ),
    );
    let provider = TestProvider::start(config, Vec::new()).await;
    let status = provider
        .mount(mount_as(
            "team-a",
            "app",
            "- objectName: app/db\n  objectType: vault\n",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("Vault secret") && status.message().contains("login"),
        "{}",
        status.message()
    );
    provider.stop().await;
}

#[tokio::test]
async fn a_bad_route_stops_the_provider_at_start_up() {
    let vault = vault().await;
    let start = |config: Config| async move {
        provider::app::provider(config, None, Vec::new())
            .await
            .unwrap_err()
            .to_string()
    };

    // the plugin's own validation: `address` is required
    let e = start(vault_config(r#"role = "app""#, &grants(&vault))).await;
    assert!(
        e.starts_with("plugins.vault: ")
            && e.contains(r#"vault-kv2 needs the config key "address""#),
        "{e}"
    );
    // a typo in a key is caught too
    let e = start(vault_config(
        &format!(r#"address = "{}", rol = "app""#, vault.url()),
        &grants(&vault),
    ))
    .await;
    assert!(e.contains(r#"vault-kv2 has no config key "rol""#), "{e}");

    // the plugin imports http, which this route does not grant
    let e = start(vault_config(
        &format!(r#"address = "{}", role = "app""#, vault.url()),
        r#"service_account_audiences = ["vault"]"#,
    ))
    .await;
    assert!(
        e.contains("it imports alibabacloud-csi:plugin/http@0.1.0: not granted"),
        "{e}"
    );
}

#[tokio::test]
async fn a_vault_behind_a_private_ca_needs_the_routes_http_ca_file() {
    let vault = vault().await;
    let ca = integration_tests::tls::TestCa::new("Vault's private CA");
    let front = integration_tests::tls::TlsFront::start(&ca, &vault.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path(), "vault-ca.pem");
    let route = |ca_line: &str| {
        let text = format!(
            "[plugins.vault]\npath = {:?}\n{ca_line}\nconfig = {{ address = \"{url}\", role = \"app\" }}\ncapabilities = {{ http = [\"{url}\"], allow_internal_addresses = true, service_account_audiences = [\"vault\"] }}\n",
            built_plugin("vault_plugin.wasm"),
            url = front.url(),
        );
        Config::parse(&text, Path::new("config.toml")).unwrap()
    };
    let yaml = "- objectName: app/db\n  objectType: vault\n  objectAlias: db\n";

    // The system roots do not know the CA: refused before the login is sent.
    let provider = TestProvider::start(route(""), Vec::new()).await;
    let status = provider
        .mount(mount_as("team-a", "app", yaml))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &["login", "put its CA in this plugin route's http_ca_file"],
    );
    assert_eq!((front.forwarded(), vault.stats().logins), (0, 0));
    provider.stop().await;

    let provider =
        TestProvider::start(route(&format!("http_ca_file = {ca_file:?}")), Vec::new()).await;
    let response = provider
        .mount(mount_as("team-a", "app", yaml))
        .await
        .unwrap();
    assert!(files(&response)["db"].contains("NEW-PASSWORD-2"));
    assert_eq!(vault.stats().logins, 1);
    provider.stop().await;

    // A CA file that is not there, or a CA with nothing to trust it for,
    // stops the provider at start-up.
    let e = provider::app::provider(
        route("http_ca_file = \"/nonexistent/ca.pem\""),
        None,
        Vec::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("plugins.vault") && e.contains("http_ca_file: cannot read /nonexistent/ca.pem"),
        "{e}"
    );
    let text = format!(
        "[plugins.vault]\npath = {:?}\nhttp_ca_file = {ca_file:?}\n",
        built_plugin("vault_plugin.wasm")
    );
    let e = Config::parse(&text, Path::new("config.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("plugins.vault.http_ca_file")
            && e.contains("capabilities.http grants no origin"),
        "{e}"
    );
}
