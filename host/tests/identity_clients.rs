//! The ECS metadata client and the ServiceAccount role lookup against the
//! emulator's metadata server and Kubernetes API, over HTTP on 127.0.0.1.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use alibabacloud_emulator::{
    Emulator, ImdsMode, ImdsSeed, KubernetesMode, Role, Seed, ServiceAccount,
};
use provider::identity::imds::{
    ENV_DISABLED, ENV_IMDSV1_DISABLED, ENV_ROLE_NAME, ImdsClient, ImdsError, ImdsSettings,
};
use provider::identity::kube::{
    KubeClient, KubeConfig, KubeError, LookupSettings, ROLE_ARN_ANNOTATION, RoleArnLookup,
};
use provider::net::{BaseUrl, ClearText};

const NODE_ROLE: &str = "acs:ram::1234567890123456:role/node";
const TEAM_A_ROLE: &str = "acs:ram::1234567890123456:role/team-a-app";
const K8S_TOKEN: &str = "k8s-bearer-token-value";

fn seed() -> Seed {
    Seed::default()
        .with_role(Role::new(NODE_ROLE).allowing(["kms:secret/node/*"]))
        .with_imds(ImdsSeed::with_role(NODE_ROLE).in_region("cn-beijing"))
        .with_kubernetes_token(K8S_TOKEN)
        .with_service_account(ServiceAccount::new("team-a", "app").with_role_arn(TEAM_A_ROLE))
        .with_service_account(ServiceAccount::new("team-a", "plain"))
}

async fn emulator() -> Emulator {
    Emulator::start(seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn imds(emu: &Emulator, vars: &[(&str, &str)]) -> ImdsClient {
    ImdsClient::new(ImdsSettings {
        base_url: BaseUrl::parse(&emu.imds_url(), ClearText::Allowed).unwrap(),
        ..ImdsSettings::from_env(env(vars))
    })
    .expect("client")
}

/// No issued secret or token may appear in `text`.
fn assert_no_secrets(emu: &Emulator, text: &str) {
    for issued in emu.issued_credentials() {
        assert!(!text.contains(&issued.access_key_secret), "{text}");
        assert!(!text.contains(&issued.security_token), "{text}");
    }
    assert!(!text.contains(K8S_TOKEN), "{text}");
}

#[tokio::test]
async fn imds_v2_reuses_one_token() {
    let emu = emulator().await;
    let client = imds(&emu, &[]);
    let first = client.role_credentials().await.unwrap();
    assert_eq!(first.role_name, "node");
    assert_eq!(first.credentials.source, "ECS RAM role");
    assert!(first.credentials.access_key_id.starts_with("STS."));
    assert!(first.credentials.security_token.is_some());
    assert!(first.expiration.ends_with('Z'), "{}", first.expiration);
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].access_key_id, first.credentials.access_key_id);
    assert_eq!(
        issued[0].access_key_secret,
        first.credentials.access_key_secret.0
    );

    let again = client.role_credentials().await.unwrap();
    assert_eq!(
        again.credentials.access_key_id,
        first.credentials.access_key_id
    );
    assert_eq!(client.region().await.unwrap(), "cn-beijing");

    let stats = emu.imds_stats();
    assert_eq!(stats.requests("token"), 1, "one token for every call");
    assert_eq!(stats.successes("role-name"), 2);
    assert_eq!(stats.successes("credentials"), 2);
    assert_eq!(stats.successes("region-id"), 1);
    assert_eq!(
        stats.without_token("role-name") + stats.without_token("credentials"),
        0
    );
    assert_eq!(
        client
            .stats()
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_hardened_mode_works_with_tokens() {
    let emu = emulator().await;
    emu.set_imds_mode(ImdsMode {
        hardened: true,
        tokens_unavailable: false,
    });
    let client = imds(&emu, &[(ENV_IMDSV1_DISABLED, "true")]);
    assert_eq!(client.role_credentials().await.unwrap().role_name, "node");
    assert_eq!(client.region().await.unwrap(), "cn-beijing");
    let stats = emu.imds_stats();
    assert_eq!(stats.requests("token"), 1);
    assert_eq!(stats.count("credentials", "403"), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_falls_back_to_v1_without_tokens() {
    let emu = emulator().await;
    emu.set_imds_mode(ImdsMode {
        hardened: false,
        tokens_unavailable: true,
    });
    let client = imds(&emu, &[]);
    let credentials = client.role_credentials().await.unwrap();
    assert_eq!(credentials.role_name, "node");
    assert_eq!(client.region().await.unwrap(), "cn-beijing");
    let stats = emu.imds_stats();
    assert_eq!(stats.without_token("role-name"), 1);
    assert_eq!(stats.without_token("credentials"), 1);
    assert_eq!(stats.without_token("region-id"), 1);
    // One token attempt per operation, not per GET.
    assert_eq!(stats.count("token", "404"), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_v1_disabled_without_tokens_fails() {
    let emu = emulator().await;
    emu.set_imds_mode(ImdsMode {
        hardened: false,
        tokens_unavailable: true,
    });
    let client = imds(&emu, &[(ENV_IMDSV1_DISABLED, "true")]);
    let error = client.role_credentials().await.unwrap_err();
    assert!(
        matches!(error, ImdsError::TokenRequired { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("IMDSv2 token request failed"), "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(
        text.contains("ALIBABA_CLOUD_IMDSV1_DISABLED=true"),
        "{text}"
    );
    let stats = emu.imds_stats();
    assert_eq!(stats.requests("token"), 1);
    assert_eq!(stats.total, 1, "no token-less GET");
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_v2_only_without_tokens_says_so() {
    let emu = emulator().await;
    emu.set_imds_mode(ImdsMode {
        hardened: true,
        tokens_unavailable: true,
    });
    let error = imds(&emu, &[]).region().await.unwrap_err();
    assert!(matches!(error, ImdsError::V2Only { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("accepts only IMDSv2"), "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_disabled_by_env_sends_nothing() {
    let emu = emulator().await;
    let client = imds(&emu, &[(ENV_DISABLED, "true")]);
    let error = client.role_credentials().await.unwrap_err();
    assert_eq!(error, ImdsError::Disabled);
    assert!(
        error
            .to_string()
            .contains("disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED")
    );
    assert_eq!(client.region().await.unwrap_err(), ImdsError::Disabled);
    assert_eq!(emu.imds_stats().total, 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_role_name_from_env_skips_discovery() {
    let emu = emulator().await;
    let client = imds(&emu, &[(ENV_ROLE_NAME, "node")]);
    let credentials = client.role_credentials().await.unwrap();
    assert_eq!(credentials.role_name, "node");
    let stats = emu.imds_stats();
    assert_eq!(stats.requests("role-name"), 0);
    assert_eq!(stats.successes("credentials"), 1);

    let wrong = imds(&emu, &[(ENV_ROLE_NAME, "other")]);
    let text = wrong.role_credentials().await.unwrap_err().to_string();
    assert!(text.contains("credentials of RAM role other"), "{text}");
    assert!(
        text.contains("not attached") && text.contains(ENV_ROLE_NAME),
        "{text}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_without_a_role_says_so() {
    let emu = emulator().await;
    emu.set_imds_role(None).unwrap();
    let error = imds(&emu, &[]).role_credentials().await.unwrap_err();
    assert_eq!(error, ImdsError::NoRole);
    assert_eq!(
        error.to_string(),
        "ECS metadata: no RAM role attached to this instance"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn imds_unreachable_is_reported_with_the_step() {
    // A port that was just free: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = ImdsClient::new(ImdsSettings {
        base_url: BaseUrl::parse(&format!("http://{addr}"), ClearText::Allowed).unwrap(),
        ..ImdsSettings::default()
    })
    .unwrap();
    let error = client.region().await.unwrap_err();
    assert!(matches!(error, ImdsError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("region-id"), "{error}");
}

#[tokio::test]
async fn imds_errors_hold_no_secret() {
    let emu = emulator().await;
    let client = imds(&emu, &[(ENV_ROLE_NAME, "node")]);
    client.role_credentials().await.unwrap();
    let mut texts = Vec::new();
    emu.set_imds_mode(ImdsMode {
        hardened: true,
        tokens_unavailable: true,
    });
    // The kept token still works; a fresh client cannot get one.
    assert!(client.role_credentials().await.is_ok());
    texts.push(
        imds(&emu, &[])
            .role_credentials()
            .await
            .unwrap_err()
            .to_string(),
    );
    texts.push(
        imds(&emu, &[(ENV_ROLE_NAME, "x")])
            .role_credentials()
            .await
            .unwrap_err()
            .to_string(),
    );
    for text in texts {
        assert_no_secrets(&emu, &text);
    }
    emu.shutdown().await;
}

struct Kube {
    _dir: tempfile::TempDir,
    token_file: PathBuf,
}

fn token_file(token: &str) -> Kube {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    Kube {
        _dir: dir,
        token_file,
    }
}

fn kube_client(emu: &Emulator, files: &Kube) -> KubeClient {
    KubeClient::new(KubeConfig::new(
        BaseUrl::parse(&emu.kubernetes_url(), ClearText::LoopbackOnly).unwrap(),
        &files.token_file,
        None,
    ))
    .expect("client")
}

fn lookup(emu: &Emulator, files: &Kube, ttl: Duration) -> RoleArnLookup {
    RoleArnLookup::new(
        Some(kube_client(emu, files)),
        LookupSettings {
            ttl,
            ..LookupSettings::default()
        },
    )
}

#[tokio::test]
async fn service_account_annotations_are_read() {
    let emu = emulator().await;
    let files = token_file(K8S_TOKEN);
    let client = kube_client(&emu, &files);
    let annotations = client
        .service_account_annotations("team-a", "app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(annotations[ROLE_ARN_ANNOTATION], TEAM_A_ROLE);
    let plain = client
        .service_account_annotations("team-a", "plain")
        .await
        .unwrap()
        .unwrap();
    assert!(plain.is_empty());
    assert_eq!(
        client
            .service_account_annotations("team-a", "missing")
            .await,
        Ok(None)
    );

    let lookup = lookup(&emu, &files, Duration::from_secs(60));
    assert_eq!(
        lookup.role_arn("team-a", "app").await.unwrap().as_deref(),
        Some(TEAM_A_ROLE)
    );
    assert_eq!(lookup.role_arn("team-a", "plain").await, Ok(None));
    assert_eq!(lookup.role_arn("team-a", "missing").await, Ok(None));
    // All three answers, the negative ones too, are cached.
    for _ in 0..3 {
        lookup.role_arn("team-a", "app").await.unwrap();
        lookup.role_arn("team-a", "plain").await.unwrap();
        lookup.role_arn("team-a", "missing").await.unwrap();
    }
    assert_eq!(emu.kubernetes_stats().requests("serviceaccounts"), 6);
    let stats = lookup.stats();
    assert_eq!((stats.fetches, stats.hits, stats.requests), (3, 9, 3));
    emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_gets_the_rbac_advice_and_a_rotated_file_is_picked_up() {
    let emu = emulator().await;
    let files = token_file("wrong-token");
    let lookup = lookup(&emu, &files, Duration::from_secs(60));
    let error = lookup.role_arn("team-a", "app").await.unwrap_err();
    assert!(matches!(error, KubeError::Unauthorized { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("`get` on `serviceaccounts`"), "{text}");
    assert!(text.contains("podRoleArn"), "{text}");
    assert!(!text.contains("wrong-token"), "{text}");

    // Kubelet rotates the projected token: the next lookup uses the new one.
    std::fs::write(&files.token_file, K8S_TOKEN).unwrap();
    assert_eq!(
        lookup.role_arn("team-a", "app").await.unwrap().as_deref(),
        Some(TEAM_A_ROLE)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn forbidden_gets_the_rbac_advice() {
    let emu = emulator().await;
    emu.set_kubernetes_mode(KubernetesMode {
        forbidden: true,
        unavailable: false,
    });
    let files = token_file(K8S_TOKEN);
    let error = lookup(&emu, &files, Duration::from_secs(60))
        .role_arn("team-a", "app")
        .await
        .unwrap_err();
    assert!(matches!(error, KubeError::Forbidden { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("403") && text.contains("cannot get resource"),
        "{text}"
    );
    assert!(
        text.contains("`get` on `serviceaccounts`") && text.contains("podRoleArn"),
        "{text}"
    );
    assert_no_secrets(&emu, &text);
    emu.shutdown().await;
}

#[tokio::test]
async fn five_hundred_concurrent_lookups_are_one_get() {
    let emu = emulator().await;
    let files = token_file(K8S_TOKEN);
    let lookup = lookup(&emu, &files, Duration::from_secs(60));
    let results =
        futures::future::join_all((0..500).map(|_| lookup.role_arn("team-a", "app"))).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().as_deref() == Some(TEAM_A_ROLE))
    );
    assert_eq!(emu.kubernetes_stats().requests("serviceaccounts"), 1);
    let stats = lookup.stats();
    assert_eq!(stats.lookups, 500);
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.hits + stats.joined, 499);
    emu.shutdown().await;
}

#[tokio::test]
async fn answers_expire_after_the_ttl() {
    let emu = emulator().await;
    let files = token_file(K8S_TOKEN);
    let lookup = lookup(&emu, &files, Duration::from_millis(500));
    assert!(lookup.role_arn("team-a", "app").await.unwrap().is_some());
    assert!(lookup.role_arn("team-a", "app").await.unwrap().is_some());
    assert_eq!(emu.kubernetes_stats().requests("serviceaccounts"), 1);
    // The annotation changes; the cache shows it once the TTL has passed.
    emu.put_service_account(ServiceAccount::new("team-a", "app"))
        .unwrap();
    // 700 ms pass for the cached answer (instead of waiting them out).
    lookup.age(Duration::from_millis(700));
    assert_eq!(lookup.role_arn("team-a", "app").await, Ok(None));
    assert_eq!(emu.kubernetes_stats().requests("serviceaccounts"), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn errors_are_not_cached() {
    let emu = emulator().await;
    emu.set_kubernetes_mode(KubernetesMode {
        forbidden: false,
        unavailable: true,
    });
    let files = token_file(K8S_TOKEN);
    let lookup = lookup(&emu, &files, Duration::from_secs(60));
    for _ in 0..2 {
        let error = lookup.role_arn("team-a", "app").await.unwrap_err();
        assert!(
            matches!(error, KubeError::Status { status: 503, .. }),
            "{error:?}"
        );
    }
    emu.set_kubernetes_mode(KubernetesMode::default());
    assert!(lookup.role_arn("team-a", "app").await.unwrap().is_some());
    assert!(lookup.role_arn("team-a", "app").await.unwrap().is_some());
    assert_eq!(emu.kubernetes_stats().requests("serviceaccounts"), 3);
    assert_eq!(lookup.stats().errors, 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn invalid_names_never_reach_the_api() {
    let emu = emulator().await;
    let files = token_file(K8S_TOKEN);
    let lookup = lookup(&emu, &files, Duration::from_secs(60));
    for (ns, name) in [
        ("team-a", "../../secrets"),
        ("Team-A", "app"),
        ("team-a", "app?x=1"),
    ] {
        assert!(matches!(
            lookup.role_arn(ns, name).await,
            Err(KubeError::InvalidName { .. })
        ));
    }
    assert_eq!(emu.kubernetes_stats().total, 0);
    emu.shutdown().await;
}
