//! End-to-end tests of the identity side of the emulator over HTTP: STS
//! `AssumeRole` / `AssumeRoleWithOIDC`, per-role permissions on KMS and OOS,
//! credential expiry, the ECS metadata server and the Kubernetes API.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use alibabacloud_emulator::jwt::{self, Claims};
use alibabacloud_emulator::{
    CredentialSource, Emulator, Fault, ImdsMode, KubernetesMode, OidcProvider, Role, Seed,
    ServiceAccount, StartOptions,
};
use common::{AK, LIMITED_AK, Reply, Req, admin, send};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ACCOUNT: &str = "1234567890123456";
const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee";
const ISSUER: &str = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c0ffee";
const TEAM_A: &str = "acs:ram::1234567890123456:role/team-a-app";
const TEAM_B: &str = "acs:ram::1234567890123456:role/team-b-app";
const NODE: &str = "acs:ram::1234567890123456:role/ack-worker-node";
const PROVIDER_ROLE: &str = "acs:ram::1234567890123456:role/csi-secrets-store-provider";
const CROSS: &str = "acs:ram::6543210987654321:role/shared-secrets-reader";
const CROSS_EXTERNAL_ID: &str = "c0ffee-external-id";
const K8S_TOKEN: &str = "emulator-kubernetes-token";

fn example_seed() -> Seed {
    Seed::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/emulator-seed.toml"
    ))
    .unwrap()
}

async fn start() -> Emulator {
    start_seed(example_seed()).await
}

async fn start_seed(seed: Seed) -> Emulator {
    Emulator::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Temporary credentials from a successful STS reply.
#[derive(Debug, Clone)]
struct Creds {
    id: String,
    secret: String,
    token: String,
    expiration: OffsetDateTime,
}

impl Creds {
    fn from_sts(reply: &Reply) -> Self {
        Creds::from_json(&reply.assert_ok()["Credentials"])
    }

    fn from_json(json: &serde_json::Value) -> Self {
        let field = |name: &str| {
            json[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} missing in {json}"))
                .to_string()
        };
        Creds {
            id: field("AccessKeyId"),
            secret: field("AccessKeySecret"),
            token: field("SecurityToken"),
            expiration: OffsetDateTime::parse(&field("Expiration"), &Rfc3339).unwrap(),
        }
    }

    /// Signs `req` with these credentials.
    fn sign(&self, req: Req) -> Req {
        req.key(&self.id, &self.secret).token(&self.token)
    }
}

fn assume_role(role: &str, session: &str) -> Req {
    Req::new("AssumeRole", "2015-04-01")
        .param("RoleArn", role)
        .param("RoleSessionName", session)
}

fn token_for(namespace: &str, name: &str) -> String {
    jwt::mint(&Claims::service_account(ISSUER, namespace, name), None)
}

/// `AssumeRoleWithOIDC` the way credentials-python sends it: GET, everything
/// in the query, no signature.
async fn oidc_get(addr: SocketAddr, params: &[(&str, &str)]) -> Reply {
    let mut all = vec![
        ("Action", "AssumeRoleWithOIDC"),
        ("Format", "JSON"),
        ("Version", "2015-04-01"),
        ("Timestamp", "2024-01-02T03:04:05Z"),
    ];
    all.extend_from_slice(params);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&all)
        .finish();
    send(addr, "GET", &format!("/?{query}"), &[], Vec::new()).await
}

/// `AssumeRoleWithOIDC` the way credentials-go sends it: POST, the common
/// parameters in the query, the rest in a form body.
async fn oidc_post(addr: SocketAddr, params: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    send(
        addr,
        "POST",
        "/?Action=AssumeRoleWithOIDC&Version=2015-04-01&Format=JSON&Timestamp=2024-01-02T03%3A04%3A05Z",
        &headers,
        body.into_bytes(),
    )
    .await
}

async fn pod_creds(emu: &Emulator, role: &str, namespace: &str) -> Creds {
    let token = token_for(namespace, "app");
    let reply = oidc_post(
        emu.addr(),
        &[
            ("RoleArn", role),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &token),
            ("RoleSessionName", &format!("{namespace}.pod-1")),
        ],
    )
    .await;
    Creds::from_sts(&reply)
}

/// Whether `at` is about `seconds` after now on the emulator's clock.
fn near(emu: &Emulator, at: OffsetDateTime, seconds: i64) -> bool {
    let want = emu.clock().now() + time::Duration::seconds(seconds);
    (at - want).abs() <= time::Duration::seconds(3)
}

// === STS AssumeRole ===

#[tokio::test]
async fn assume_role_v3_issues_credentials_that_read_what_the_role_may() {
    let emu = start().await;
    let reply = assume_role(PROVIDER_ROLE, "provider@node-1")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    let body = reply.assert_ok();
    let creds = Creds::from_sts(&reply);
    assert!(creds.id.starts_with("STS."), "{}", creds.id);
    assert!(creds.token.len() > 100);
    assert!(near(&emu, creds.expiration, 3600), "{:?}", creds.expiration);
    assert!(
        body["Credentials"]["Expiration"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        body["AssumedRoleUser"]["Arn"],
        format!("acs:ram::{ACCOUNT}:role/csi-secrets-store-provider/provider@node-1")
    );
    let assumed_id = body["AssumedRoleUser"]["AssumedRoleId"].as_str().unwrap();
    let (role_id, session) = assumed_id.split_once(':').unwrap();
    assert_eq!(session, "provider@node-1");
    assert_eq!(role_id.len(), 17);
    assert!(role_id.bytes().all(|b| b.is_ascii_digit()));

    // The role may read `test`, `binary-test` and `db/password`, nothing else.
    let kms = |name: &str| creds.sign(Req::kms(name));
    kms("test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    kms("binary-test").v1().send(emu.addr()).await.assert_ok();
    creds
        .sign(Req::oos("db/password"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    kms("team-a/db")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
    creds
        .sign(Req::oos("team-a/api-key"))
        .v1()
        .send(emu.addr())
        .await
        .assert_error("Forbidden.RAM", 403);
    // The token is required and must match.
    Req::kms("test")
        .key(&creds.id, &creds.secret)
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Malformed", 400);
    Req::kms("test")
        .key(&creds.id, &creds.secret)
        .token("CAIS-other")
        .v1()
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.MismatchWithAccessKey", 400);

    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].access_key_id, creds.id);
    assert_eq!(issued[0].security_token, creds.token);
    assert_eq!(issued[0].role_arn, PROVIDER_ROLE);
    assert_eq!(issued[0].session_name, "provider@node-1");
    assert_eq!(issued[0].source, CredentialSource::AssumeRole);
    assert_eq!(issued[0].caller.as_deref(), Some("access-key/testid"));
    let debug = format!("{:?}", issued[0]);
    assert!(!debug.contains(&creds.secret) && !debug.contains(&creds.token));
    emu.shutdown().await;
}

#[tokio::test]
async fn assume_role_v1_get_and_post_with_duration_and_policy() {
    let emu = start().await;
    let get = assume_role(PROVIDER_ROLE, "v1-get")
        .param("DurationSeconds", "900")
        .method("GET")
        .v1()
        .send(emu.addr())
        .await;
    assert!(near(&emu, Creds::from_sts(&get).expiration, 900));
    let policy =
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    let post = Req::new("AssumeRole", "2015-04-01")
        .form("RoleArn", PROVIDER_ROLE)
        .form("RoleSessionName", "v1-post")
        .form("Policy", policy)
        .form("SourceIdentity", "alice")
        .v1()
        .send(emu.addr())
        .await;
    assert_eq!(post.assert_ok()["SourceIdentity"], "alice");
    let creds = Creds::from_sts(&post);
    creds
        .sign(Req::kms("test"))
        .v1()
        .send(emu.addr())
        .await
        .assert_ok();
    let issued = emu.issued_credentials();
    assert_eq!(issued[1].policy.as_deref(), Some(policy));
    assert_eq!(emu.stats().successes("AssumeRole"), 2);
    assert_eq!(emu.stats().sts_calls(), 2);
}

#[tokio::test]
async fn assume_role_errors_carry_the_real_codes() {
    let emu = start().await;
    let long_name = "x".repeat(65);
    let long_policy = format!(r#"{{"a":"{}"}}"#, "y".repeat(2048));
    let cases: Vec<(Req, &str, u16)> = vec![
        (
            Req::new("AssumeRole", "2015-04-01").param("RoleSessionName", "s1"),
            "MissingParameter",
            400,
        ),
        (
            Req::new("AssumeRole", "2015-04-01").param("RoleArn", PROVIDER_ROLE),
            "MissingParameter",
            400,
        ),
        (
            assume_role("acs:ram::1:user/x", "s1"),
            "InvalidParameter.RoleArn",
            400,
        ),
        (
            assume_role("acs:ram::1234567890123456:role/nope", "s1"),
            "EntityNotExist.Role",
            404,
        ),
        (
            assume_role(PROVIDER_ROLE, "s"),
            "InvalidParameter.RoleSessionName",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, &long_name),
            "InvalidParameter.RoleSessionName",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "has space"),
            "InvalidParameter.RoleSessionName",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("DurationSeconds", "899"),
            "InvalidParameter.DurationSeconds",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("DurationSeconds", "3601"),
            "InvalidParameter.DurationSeconds",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("DurationSeconds", "1h"),
            "InvalidParameter.DurationSeconds",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("Policy", "not json"),
            "InvalidParameter.PolicyGrammar",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("Policy", &long_policy),
            "InvalidParameter.PolicySize",
            400,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").param("ExternalId", "has space"),
            "InvalidParameter.ExternalId",
            400,
        ),
        // `limitedid` is not in the role's trust list.
        (
            assume_role(PROVIDER_ROLE, "s1").key(LIMITED_AK.0, LIMITED_AK.1),
            "NoPermission",
            403,
        ),
        // Long-term keys are not trusted by the cross-account role.
        (
            assume_role(CROSS, "s1").param("ExternalId", CROSS_EXTERNAL_ID),
            "NoPermission",
            403,
        ),
        (
            assume_role(PROVIDER_ROLE, "s1").key(AK.0, "wrong"),
            "SignatureDoesNotMatch",
            400,
        ),
    ];
    for (req, code, status) in cases {
        let reply = req.v3(&emu.endpoint()).send(emu.addr()).await;
        reply.assert_error(code, status);
        assert!(
            reply.json["Recommend"]
                .as_str()
                .unwrap()
                .contains("product=Sts")
        );
    }
    // Unsigned AssumeRole is refused.
    let reply = send(
        emu.addr(),
        "GET",
        &format!(
            "/?Action=AssumeRole&Version=2015-04-01&RoleArn={PROVIDER_ROLE}&RoleSessionName=s1"
        ),
        &[],
        Vec::new(),
    )
    .await;
    reply.assert_error("MissingParameter", 400);
    assert!(emu.issued_credentials().is_empty());
    assert_eq!(emu.stats().successes("AssumeRole"), 0);
}

#[tokio::test]
async fn role_chaining_and_cross_account_with_external_id() {
    let emu = start().await;
    let team_a = pod_creds(&emu, TEAM_A, "team-a").await;
    let team_b = pod_creds(&emu, TEAM_B, "team-b").await;

    let cross = |creds: &Creds, external_id: Option<&str>| {
        let mut req = assume_role(CROSS, "team-a.pod-1");
        if let Some(id) = external_id {
            req = req.param("ExternalId", id);
        }
        creds.sign(req)
    };
    let reply = cross(&team_a, Some(CROSS_EXTERNAL_ID))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    assert_eq!(
        reply.assert_ok()["AssumedRoleUser"]["Arn"],
        "acs:ram::6543210987654321:role/shared-secrets-reader/team-a.pod-1"
    );
    let shared = Creds::from_sts(&reply);
    shared
        .sign(Req::kms("test"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    shared
        .sign(Req::kms("team-a/db"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);

    for (creds, external_id) in [
        (&team_a, None),
        (&team_a, Some("wrong-external-id")),
        (&team_b, Some(CROSS_EXTERNAL_ID)),
    ] {
        cross(creds, external_id)
            .v1()
            .send(emu.addr())
            .await
            .assert_error("NoPermission", 403);
    }
    let last = emu.issued_credentials().pop().unwrap();
    assert_eq!(last.role_arn, CROSS);
    assert_eq!(
        last.caller.as_deref(),
        Some("assumed-role/team-a-app/team-a.pod-1")
    );
    assert_eq!(last.external_id.as_deref(), Some(CROSS_EXTERNAL_ID));
}

// === STS AssumeRoleWithOIDC ===

#[tokio::test]
async fn oidc_pod_roles_read_only_their_own_secrets() {
    let emu = start().await;
    // Pod A, as credentials-python sends it (GET, query only).
    let token_a = token_for("team-a", "app");
    let reply = oidc_get(
        emu.addr(),
        &[
            ("RoleArn", TEAM_A),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &token_a),
            ("RoleSessionName", "team-a.pod-1"),
            ("DurationSeconds", "1800"),
        ],
    )
    .await;
    let body = reply.assert_ok();
    let a = Creds::from_sts(&reply);
    assert!(near(&emu, a.expiration, 1800));
    let info = &body["OIDCTokenInfo"];
    assert_eq!(info["Subject"], "system:serviceaccount:team-a:app");
    assert_eq!(info["Issuer"], ISSUER);
    assert_eq!(info["ClientIds"], "sts.aliyuncs.com");
    assert!(info["ExpirationTime"].as_str().unwrap().ends_with('Z'));
    assert!(info["IssuanceTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body["AssumedRoleUser"]["Arn"],
        format!("acs:ram::{ACCOUNT}:role/team-a-app/team-a.pod-1")
    );
    // Pod B, as credentials-go sends it (POST form).
    let b = pod_creds(&emu, TEAM_B, "team-b").await;

    let read = |creds: &Creds, name: &str| creds.sign(Req::kms(name)).v3(&emu.endpoint());
    let body = read(&a, "team-a/db").send(emu.addr()).await;
    assert_eq!(
        body.assert_ok()["SecretData"],
        r#"{"password":"team-a-password"}"#
    );
    read(&a, "team-b/db")
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
    read(&b, "team-b/db").send(emu.addr()).await.assert_ok();
    read(&b, "team-a/db")
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
    // Neither pod may read what the node role reads.
    for creds in [&a, &b] {
        read(creds, "node/bootstrap")
            .send(emu.addr())
            .await
            .assert_error("Forbidden.NoPermission", 403);
    }
    a.sign(Req::oos("team-a/api-key"))
        .v1()
        .send(emu.addr())
        .await
        .assert_ok();
    b.sign(Req::oos("team-a/api-key"))
        .v1()
        .send(emu.addr())
        .await
        .assert_error("Forbidden.RAM", 403);

    let issued = emu.issued_credentials();
    assert_eq!(issued[0].source, CredentialSource::AssumeRoleWithOIDC);
    assert_eq!(
        issued[0].caller.as_deref(),
        Some("system:serviceaccount:team-a:app")
    );
    assert_eq!(emu.stats().successes("AssumeRoleWithOIDC"), 2);
    assert_eq!(emu.stats().sts_calls(), 2);
}

#[tokio::test]
async fn oidc_tokens_are_checked_claim_by_claim() {
    let emu = start().await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = || Claims::service_account(ISSUER, "team-a", "app");
    let unsigned = |c: Claims| jwt::mint(&c, None);
    let valid = unsigned(claims());
    let cases: Vec<(&str, String, &str, u16, Option<&str>)> = vec![
        (
            TEAM_A,
            String::new(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("can not empty"),
        ),
        (
            TEAM_A,
            "abc".into(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("4 to 20000"),
        ),
        (
            TEAM_A,
            "abc.def".into(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("3 parts"),
        ),
        (
            TEAM_A,
            "a.b.c.d".into(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("3 parts"),
        ),
        (
            TEAM_A,
            "!!!.???.x".into(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("base64"),
        ),
        (
            TEAM_A,
            "e30.bm90IGpzb24.x".into(),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("cannot be recognized"),
        ),
        (
            TEAM_A,
            unsigned(Claims::service_account(
                "https://other-issuer",
                "team-a",
                "app",
            )),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("issuer"),
        ),
        (
            TEAM_A,
            unsigned(claims().with_audiences(["kubernetes.default.svc"])),
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
            401,
            None,
        ),
        (
            TEAM_A,
            unsigned(claims().expired_since(Duration::from_secs(5))),
            "AuthenticationFail.OIDCToken.Expired",
            401,
            Some("This JsonWebToken is expired."),
        ),
        (
            TEAM_A,
            unsigned(claims().not_before(now + 600)),
            "AuthenticationFail.OIDCToken.Invalid",
            401,
            Some("nbf"),
        ),
        // Pod B's token for pod A's role: the subject is not trusted.
        (
            TEAM_A,
            token_for("team-b", "app"),
            "AuthenticationFail.NoPermission",
            401,
            Some("There is no permission"),
        ),
        // Another service account of the same namespace.
        (
            TEAM_A,
            token_for("team-a", "default"),
            "AuthenticationFail.NoPermission",
            401,
            None,
        ),
        // A role without OIDC trust at all.
        (
            NODE,
            valid.clone(),
            "AuthenticationFail.NoPermission",
            401,
            None,
        ),
        (
            "acs:ram::1234567890123456:role/missing",
            valid.clone(),
            "EntityNotExist.Role",
            404,
            None,
        ),
        (
            "not-an-arn",
            valid.clone(),
            "InvalidParameter.RoleArn",
            400,
            None,
        ),
    ];
    for (role, token, code, status, message) in cases {
        let mut params = vec![
            ("RoleArn", role),
            ("OIDCProviderArn", PROVIDER),
            ("RoleSessionName", "s1"),
        ];
        if !token.is_empty() {
            params.push(("OIDCToken", &token));
        }
        let reply = oidc_post(emu.addr(), &params).await;
        reply.assert_error(code, status);
        if let Some(message) = message {
            assert!(reply.message().contains(message), "{code}: {}", reply.text);
        }
        assert!(
            !reply.text.contains(&token) || token.len() < 8,
            "token echoed"
        );
    }

    for provider in [
        "acs:ram::1234567890123456:oidc-provider/unknown",
        "not-an-arn",
    ] {
        let reply = oidc_post(
            emu.addr(),
            &[
                ("RoleArn", TEAM_A),
                ("OIDCProviderArn", provider),
                ("OIDCToken", &valid),
            ],
        )
        .await;
        reply.assert_error("AuthenticationFail.NoPermission", 401);
        assert_eq!(reply.message(), "Parameter OIDCProviderArn is not valid");
    }
    let reply = oidc_post(emu.addr(), &[("RoleArn", TEAM_A), ("OIDCToken", &valid)]).await;
    reply.assert_error("MissingParameter", 400);
    let reply = oidc_post(
        emu.addr(),
        &[
            ("RoleArn", TEAM_A),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &valid),
            ("DurationSeconds", "7200"),
        ],
    )
    .await;
    reply.assert_error("InvalidParameter.DurationSeconds", 400);

    // Without an HMAC key the signature is not checked: a forged one passes,
    // and RoleSessionName may be left out.
    let forged = format!("{valid}forged-signature");
    let reply = oidc_post(
        emu.addr(),
        &[
            ("RoleArn", TEAM_A),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &forged),
        ],
    )
    .await;
    reply.assert_ok();
    assert!(
        emu.issued_credentials()[0]
            .session_name
            .starts_with("oidc-")
    );
    assert_eq!(emu.stats().successes("AssumeRoleWithOIDC"), 1);
}

#[tokio::test]
async fn oidc_providers_with_an_hmac_key_require_hs256_signatures() {
    let provider = "acs:ram::1:oidc-provider/signed";
    let role = "acs:ram::1:role/signed-pod";
    let seed = Seed::default()
        .with_oidc_provider(
            OidcProvider::new(provider, "https://issuer.example")
                .with_audiences(["sts.aliyuncs.com", "other-client"])
                .with_hmac_key("hmac-secret"),
        )
        .with_role(
            Role::new(role)
                .allowing(["*"])
                .trusting_oidc(provider, ["system:serviceaccount:ns:*"]),
        );
    let emu = start_seed(seed).await;
    let claims = Claims::service_account("https://issuer.example", "ns", "sa");
    let addr = emu.addr();
    let attempt = |token: String| async move {
        oidc_post(
            addr,
            &[
                ("RoleArn", role),
                ("OIDCProviderArn", provider),
                ("OIDCToken", &token),
                ("RoleSessionName", "sess"),
            ],
        )
        .await
    };
    attempt(jwt::mint(&claims, None))
        .await
        .assert_error("AuthenticationFail.OIDCToken.Invalid", 401);
    attempt(jwt::mint(&claims, Some("wrong-key")))
        .await
        .assert_error("AuthenticationFail.OIDCToken.InvalidSignature", 401);
    let signed = attempt(jwt::mint(&claims, Some("hmac-secret"))).await;
    signed.assert_ok();
    // Any of the provider's audiences will do.
    let other = claims.clone().with_audiences(["other-client"]);
    attempt(jwt::mint(&other, Some("hmac-secret")))
        .await
        .assert_ok();
    // The emulator mints the same for a service account.
    let token = emu
        .service_account_token(provider, "ns", "pod-sa", Duration::from_secs(60))
        .unwrap();
    let reply = attempt(token).await;
    assert_eq!(
        reply.assert_ok()["OIDCTokenInfo"]["Subject"],
        "system:serviceaccount:ns:pod-sa"
    );
    assert!(
        emu.service_account_token(
            "acs:ram::1:oidc-provider/none",
            "ns",
            "sa",
            Duration::from_secs(60)
        )
        .is_err()
    );
}

#[tokio::test]
async fn the_admin_endpoint_mints_tokens() {
    let emu = start().await;
    let addr = emu.addr();
    let mint = |body: serde_json::Value| async move {
        admin(addr, "POST", "/__emulator/oidc/token", Some(body)).await
    };
    let reply = mint(json!({"namespace": "team-a", "name": "app", "expires_in": "10m"})).await;
    let token = reply.json["token"].as_str().unwrap().to_string();
    let (_, claims) = jwt::decode(&token).unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, ["sts.aliyuncs.com"]);
    assert!((claims.exp - OffsetDateTime::now_utc().unix_timestamp() - 600).abs() <= 2);
    oidc_post(
        emu.addr(),
        &[
            ("RoleArn", TEAM_A),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &token),
        ],
    )
    .await
    .assert_ok();

    let reply =
        mint(json!({"subject": "system:serviceaccount:team-a:app", "expired_since": "1m"})).await;
    let expired = reply.json["token"].as_str().unwrap().to_string();
    oidc_post(
        emu.addr(),
        &[
            ("RoleArn", TEAM_A),
            ("OIDCProviderArn", PROVIDER),
            ("OIDCToken", &expired),
        ],
    )
    .await
    .assert_error("AuthenticationFail.OIDCToken.Expired", 401);

    for bad in [
        json!({"name": "app"}),
        json!({"namespace": "a", "name": "b", "subject": "c"}),
        json!({"subject": "s", "expires_in": "1m", "expired_since": "1m"}),
        json!({"subject": "s", "provider_arn": "acs:ram::1:oidc-provider/none"}),
    ] {
        assert_eq!(mint(bad).await.status, 400);
    }
}

// === Expiry and the lifetime knobs ===

#[tokio::test]
async fn the_clock_is_advanced_frozen_and_reset_over_admin() {
    let emu = start().await;
    let clock_at = |reply: &Reply| {
        OffsetDateTime::parse(reply.json["now"].as_str().unwrap(), &Rfc3339).unwrap()
    };
    let reply = admin(
        emu.addr(),
        "POST",
        "/__emulator/clock",
        // Within the 15 minutes of signature-timestamp skew the API allows.
        Some(json!({"advance": "10m", "freeze": true})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["frozen"], true);
    let ahead = clock_at(&reply) - OffsetDateTime::now_utc();
    assert!((ahead - time::Duration::minutes(10)).abs() < time::Duration::seconds(3));
    let frozen = admin(emu.addr(), "GET", "/__emulator/clock", None).await;
    assert_eq!(clock_at(&frozen), clock_at(&reply), "frozen");
    // Credentials are issued on the emulator's clock.
    let creds = Creds::from_sts(
        &assume_role(PROVIDER_ROLE, "ahead")
            .param("DurationSeconds", "900")
            .v3(&emu.endpoint())
            .send(emu.addr())
            .await,
    );
    let issued_at = clock_at(&reply).replace_nanosecond(0).unwrap();
    assert_eq!(creds.expiration, issued_at + time::Duration::seconds(900));
    assert!(near(&emu, creds.expiration, 900));
    let bad = admin(
        emu.addr(),
        "POST",
        "/__emulator/clock",
        Some(json!({"advance": "soon"})),
    )
    .await;
    assert!(bad.status >= 400);
    let reset = admin(emu.addr(), "DELETE", "/__emulator/clock", None).await;
    assert_eq!(reset.status, 204);
    let now = admin(emu.addr(), "GET", "/__emulator/clock", None).await;
    assert_eq!(now.json["frozen"], false);
    assert!((clock_at(&now) - OffsetDateTime::now_utc()).abs() < time::Duration::seconds(3));
}

#[tokio::test]
async fn short_lifetimes_expire_and_expired_credentials_are_refused() {
    let emu = start().await;
    emu.set_credential_lifetime(Some(Duration::from_secs(2)));
    assert_eq!(emu.credential_lifetime(), Some(Duration::from_secs(2)));
    let reply = assume_role(PROVIDER_ROLE, "short")
        .param("DurationSeconds", "3600")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    let creds = Creds::from_sts(&reply);
    assert!(near(&emu, creds.expiration, 2), "{:?}", creds.expiration);
    creds
        .sign(Req::kms("test"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    emu.clock().advance(Duration::from_millis(3100));
    creds
        .sign(Req::kms("test"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);
    // Expired credentials cannot assume roles either.
    creds
        .sign(assume_role(CROSS, "chained"))
        .v1()
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);

    emu.set_credential_lifetime(None);
    let fresh = Creds::from_sts(
        &assume_role(PROVIDER_ROLE, "long")
            .param("DurationSeconds", "1000")
            .v3(&emu.endpoint())
            .send(emu.addr())
            .await,
    );
    assert!(near(&emu, fresh.expiration, 1000));
}

#[tokio::test]
async fn a_role_credential_lifetime_and_expire_now() {
    let emu = start().await;
    let role = example_seed()
        .roles
        .into_iter()
        .find(|r| r.arn == TEAM_A)
        .unwrap()
        .with_credential_lifetime(Duration::from_secs(30));
    emu.put_role(role).unwrap();
    let a = pod_creds(&emu, TEAM_A, "team-a").await;
    assert!(near(&emu, a.expiration, 30));
    let b = pod_creds(&emu, TEAM_B, "team-b").await;
    assert!(near(&emu, b.expiration, 3600));

    assert_eq!(emu.expire_role_credentials(TEAM_A), 1);
    let read = |c: &Creds, name: &str| c.sign(Req::kms(name)).v3(&emu.endpoint());
    read(&a, "team-a/db")
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);
    read(&b, "team-b/db").send(emu.addr()).await.assert_ok();
    // Through the admin endpoint.
    let reply = admin(emu.addr(), "POST", "/__emulator/credentials/expire", None).await;
    assert_eq!(reply.json, json!({"expired": 1}));
    read(&b, "team-b/db")
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);
    let listed = admin(emu.addr(), "GET", "/__emulator/credentials", None).await;
    let list = listed.json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["role_arn"], TEAM_A);
    assert_eq!(list[0]["source"], "AssumeRoleWithOIDC");
    assert!(!listed.text.contains(&a.secret) && !listed.text.contains(&a.token));
}

#[tokio::test]
async fn admin_endpoints_set_the_lifetime_and_count_sts() {
    let emu = start().await;
    let lifetime = |body| admin(emu.addr(), "PUT", "/__emulator/credentials/lifetime", body);
    assert_eq!(lifetime(Some(json!({"lifetime": "7s"}))).await.status, 204);
    let reply = admin(emu.addr(), "GET", "/__emulator/credentials/lifetime", None).await;
    assert_eq!(reply.json, json!({"lifetime": "7s"}));
    let creds = pod_creds(&emu, TEAM_A, "team-a").await;
    assert!(near(&emu, creds.expiration, 7));
    assert_eq!(lifetime(Some(json!({"lifetime": "0s"}))).await.status, 400);
    assert_eq!(
        lifetime(Some(json!({"lifetime": "soon"}))).await.status,
        422
    );
    let reply = admin(
        emu.addr(),
        "DELETE",
        "/__emulator/credentials/lifetime",
        None,
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(emu.credential_lifetime(), None);

    emu.inject_fault(Fault::new("AssumeRole", "Throttling.User").times(1));
    assume_role(PROVIDER_ROLE, "throttled")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("Throttling.User", 400);
    let stats = admin(emu.addr(), "GET", "/__emulator/stats", None)
        .await
        .json;
    assert_eq!(
        stats["actions"]["AssumeRole"]["outcomes"]["Throttling.User"],
        1
    );
    assert_eq!(
        stats["actions"]["AssumeRoleWithOIDC"]["outcomes"]["Success"],
        1
    );
    assert_eq!(emu.stats().sts_calls(), 2);

    // Roles and providers can be added at run time.
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/roles",
        Some(json!({"arn": "acs:ram::1:role/new", "allow": ["*"], "trusted_access_keys": ["testid"]})),
    )
    .await;
    assert_eq!(reply.status, 204);
    assume_role("acs:ram::1:role/new", "s1")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/roles",
        Some(json!({"arn": "acs:ram::1:role/x", "oidc_trust": [{"provider_arn": "acs:ram::1:oidc-provider/nope", "subjects": ["s"]}]})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/oidc-providers",
        Some(json!({"arn": "acs:ram::1:oidc-provider/nope", "issuer": "https://i"})),
    )
    .await;
    assert_eq!(reply.status, 204);
}

// === The ECS metadata server ===

const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn imds_token(emu: &Emulator, ttl: &str) -> Reply {
    send(
        emu.imds_addr(),
        "PUT",
        "/latest/api/token",
        &headers(&[(TTL_HEADER, ttl)]),
        Vec::new(),
    )
    .await
}

async fn imds_get(emu: &Emulator, path: &str, token: Option<&str>) -> Reply {
    let headers = match token {
        Some(token) => headers(&[(TOKEN_HEADER, token)]),
        None => Vec::new(),
    };
    send(emu.imds_addr(), "GET", path, &headers, Vec::new()).await
}

const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";

#[tokio::test]
async fn imds_v2_serves_metadata_and_node_role_credentials() {
    let emu = start().await;
    let token = imds_token(&emu, "21600").await;
    assert_eq!(token.status, 200);
    assert!(
        token.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let token = token.text;
    assert!(token.len() >= 32);
    let get = |path: &'static str| imds_get(&emu, path, Some(&token));
    for (path, want) in [
        ("/latest/meta-data/region-id", "cn-hangzhou"),
        ("/latest/meta-data/instance-id", "i-bp1emulator0000001"),
        ("/latest/meta-data/zone-id", "cn-hangzhou-h"),
        ("/latest/meta-data/owner-account-id", ACCOUNT),
        (ROLE_PATH, "ack-worker-node"),
        (
            "/latest/meta-data/ram/security-credentials",
            "ack-worker-node",
        ),
    ] {
        let reply = get(path).await;
        assert_eq!((reply.status, reply.text.as_str()), (200, want), "{path}");
    }
    let reply = get("/latest/meta-data/ram/security-credentials/ack-worker-node").await;
    assert_eq!(reply.status, 200);
    let body: serde_json::Value = serde_json::from_str(&reply.text).unwrap();
    assert_eq!(body["Code"], "Success");
    let creds = Creds::from_json(&body);
    assert!(near(&emu, creds.expiration, 6 * 3600));
    let updated = OffsetDateTime::parse(body["LastUpdated"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(near(&emu, updated, 0));
    // Reused on the next request.
    let again = get("/latest/meta-data/ram/security-credentials/ack-worker-node").await;
    let again: serde_json::Value = serde_json::from_str(&again.text).unwrap();
    assert_eq!(again["AccessKeyId"], creds.id.as_str());

    // The node role's permissions, not a pod's.
    let read = |name: &str| creds.sign(Req::kms(name)).v3(&emu.endpoint());
    read("node/bootstrap").send(emu.addr()).await.assert_ok();
    read("test").send(emu.addr()).await.assert_ok();
    read("team-a/db")
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].source, CredentialSource::Imds);
    assert_eq!(issued[0].role_arn, NODE);
    assert_eq!(issued[0].session_name, "i-bp1emulator0000001");

    for (path, status) in [
        ("/latest/meta-data/ram/security-credentials/other-role", 404),
        ("/latest/meta-data/hostname", 404),
        ("/", 404),
    ] {
        assert_eq!(get(path).await.status, status, "{path}");
    }
    let stats = emu.imds_stats();
    assert_eq!(stats.successes("token"), 1);
    assert_eq!(stats.successes("credentials"), 2);
    assert_eq!(stats.count("credentials", "404"), 1);
    assert_eq!(stats.successes("role-name"), 2);
    assert_eq!(stats.without_token("credentials"), 0);
    assert_eq!(stats.requests("other"), 2);
    assert_eq!(stats.total, 12);
    // API stats are separate.
    assert_eq!(emu.stats().sts_calls(), 0);
}

#[tokio::test]
async fn imds_token_requests_are_validated() {
    let emu = start().await;
    for ttl in ["0", "21601", "-1", "abc", ""] {
        assert_eq!(imds_token(&emu, ttl).await.status, 400, "ttl {ttl:?}");
    }
    for ttl in ["1", "21600"] {
        assert_eq!(imds_token(&emu, ttl).await.status, 200, "ttl {ttl:?}");
    }
    let no_ttl = send(emu.imds_addr(), "PUT", "/latest/api/token", &[], Vec::new()).await;
    assert_eq!(no_ttl.status, 400);
    let forwarded = send(
        emu.imds_addr(),
        "PUT",
        "/latest/api/token",
        &headers(&[(TTL_HEADER, "60"), ("x-forwarded-for", "10.0.0.1")]),
        Vec::new(),
    )
    .await;
    assert_eq!(forwarded.status, 403);
    let get = send(emu.imds_addr(), "GET", "/latest/api/token", &[], Vec::new()).await;
    assert_eq!(get.status, 405);
    let post = send(emu.imds_addr(), "POST", ROLE_PATH, &[], Vec::new()).await;
    assert_eq!(post.status, 405);

    // A wrong or expired token is 401 even when v1 is allowed.
    assert_eq!(
        imds_get(&emu, ROLE_PATH, Some("not-a-token")).await.status,
        401
    );
    let short = imds_token(&emu, "1").await.text;
    assert_eq!(imds_get(&emu, ROLE_PATH, Some(&short)).await.status, 200);
    emu.clock().advance(Duration::from_millis(1100));
    assert_eq!(imds_get(&emu, ROLE_PATH, Some(&short)).await.status, 401);
    // Token-less (IMDSv1) works by default.
    assert_eq!(imds_get(&emu, ROLE_PATH, None).await.status, 200);
    let stats = emu.imds_stats();
    assert_eq!(stats.count("token", "400"), 6);
    assert_eq!(stats.count("token", "403"), 1);
    assert_eq!(stats.count("role-name", "401"), 2);
    assert_eq!(
        stats.without_token("role-name"),
        2,
        "the POST and the v1 GET"
    );
}

#[tokio::test]
async fn imds_hardened_and_v1_only_modes() {
    let emu = start().await;
    let creds_path = "/latest/meta-data/ram/security-credentials/ack-worker-node";
    emu.set_imds_mode(ImdsMode {
        hardened: true,
        tokens_unavailable: false,
    });
    assert_eq!(imds_get(&emu, creds_path, None).await.status, 403);
    let token = imds_token(&emu, "60").await.text;
    assert_eq!(imds_get(&emu, creds_path, Some(&token)).await.status, 200);

    // No IMDSv2: the PUT is 404 and clients fall back to v1.
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/imds",
        Some(json!({"tokens_unavailable": true})),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        emu.imds_mode(),
        ImdsMode {
            hardened: false,
            tokens_unavailable: true
        }
    );
    assert_eq!(imds_token(&emu, "60").await.status, 404);
    assert_eq!(imds_get(&emu, creds_path, None).await.status, 200);
    let mode = admin(emu.addr(), "GET", "/__emulator/imds", None).await;
    assert_eq!(
        mode.json,
        json!({"hardened": false, "tokens_unavailable": true})
    );
    let stats = admin(emu.addr(), "GET", "/__emulator/imds/stats", None)
        .await
        .json;
    assert_eq!(stats["paths"]["credentials"]["outcomes"]["403"], 1);
    assert_eq!(stats["paths"]["credentials"]["without_token"], 2);
    assert_eq!(stats["paths"]["token"]["outcomes"]["404"], 1);

    // The seed can start in these modes.
    let seed = example_seed();
    let hardened = Seed {
        imds: seed.imds.clone().hardened().without_tokens(),
        ..seed
    };
    let emu = start_seed(hardened).await;
    assert_eq!(imds_token(&emu, "60").await.status, 404);
    assert_eq!(imds_get(&emu, ROLE_PATH, None).await.status, 403);
}

#[tokio::test]
async fn imds_without_a_role_and_with_rotation() {
    let emu = start().await;
    emu.set_imds_role(None).unwrap();
    assert_eq!(imds_get(&emu, ROLE_PATH, None).await.status, 404);
    let creds_path = "/latest/meta-data/ram/security-credentials/ack-worker-node";
    assert_eq!(imds_get(&emu, creds_path, None).await.status, 404);
    assert!(emu.set_imds_role(Some("acs:ram::1:role/missing")).is_err());
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/imds/role",
        Some(json!({"role_arn": NODE})),
    )
    .await;
    assert_eq!(reply.status, 204);

    // Credentials are replaced once half their lifetime has passed.
    emu.set_credential_lifetime(Some(Duration::from_secs(4)));
    let fetch = || async {
        let reply = imds_get(&emu, creds_path, None).await;
        Creds::from_json(&serde_json::from_str(&reply.text).unwrap())
    };
    let first = fetch().await;
    assert!(near(&emu, first.expiration, 4));
    assert_eq!(fetch().await.id, first.id);
    emu.clock().advance(Duration::from_millis(2100));
    let second = fetch().await;
    assert_ne!(second.id, first.id);
    // Lifting the override does not replace live credentials...
    emu.set_credential_lifetime(None);
    assert_eq!(fetch().await.id, second.id);
    // ...expiring them does, at once.
    assert_eq!(emu.expire_credentials(), 2);
    let third = fetch().await;
    assert_ne!(third.id, second.id);
    assert!(near(&emu, third.expiration, 6 * 3600));
    second
        .sign(Req::kms("test"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);
    third
        .sign(Req::kms("test"))
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
}

// === The Kubernetes API ===

async fn get_sa(emu: &Emulator, namespace: &str, name: &str, bearer: Option<&str>) -> Reply {
    let headers = match bearer {
        Some(token) => headers(&[("authorization", &format!("Bearer {token}"))]),
        None => Vec::new(),
    };
    send(
        emu.kubernetes_addr(),
        "GET",
        &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"),
        &headers,
        Vec::new(),
    )
    .await
}

#[tokio::test]
async fn kubernetes_serves_annotated_service_accounts() {
    let emu = start().await;
    let reply = get_sa(&emu, "team-a", "app", Some(K8S_TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json["kind"], "ServiceAccount");
    assert_eq!(reply.json["apiVersion"], "v1");
    let metadata = &reply.json["metadata"];
    assert_eq!(metadata["name"], "app");
    assert_eq!(metadata["namespace"], "team-a");
    assert_eq!(
        metadata["annotations"]["ack.alibabacloud.com/role-arn"],
        TEAM_A
    );
    assert_eq!(metadata["uid"].as_str().unwrap().len(), 36);
    assert!(metadata["resourceVersion"].is_string());
    let plain = get_sa(&emu, "team-c", "app", Some(K8S_TOKEN)).await;
    assert_eq!(plain.status, 200);
    assert!(plain.json["metadata"].get("annotations").is_none());

    let missing = get_sa(&emu, "team-a", "nobody", Some(K8S_TOKEN)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["kind"], "Status");
    assert_eq!(missing.json["reason"], "NotFound");
    assert_eq!(missing.json["code"], 404);
    assert_eq!(
        missing.json["message"],
        "serviceaccounts \"nobody\" not found"
    );
    assert_eq!(missing.json["details"]["kind"], "serviceaccounts");

    for bearer in [None, Some("wrong-token")] {
        let reply = get_sa(&emu, "team-a", "app", bearer).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json["reason"], "Unauthorized");
    }
    let other = send(
        emu.kubernetes_addr(),
        "GET",
        "/api/v1/namespaces/team-a/pods/x",
        &headers(&[("authorization", &format!("Bearer {K8S_TOKEN}"))]),
        Vec::new(),
    )
    .await;
    assert_eq!(other.status, 404);

    let stats = emu.kubernetes_stats();
    assert_eq!(stats.requests("serviceaccounts"), 5);
    assert_eq!(stats.successes("serviceaccounts"), 2);
    assert_eq!(stats.count("serviceaccounts", "NotFound"), 1);
    assert_eq!(stats.count("serviceaccounts", "Unauthorized"), 2);
    assert_eq!(stats.requests("other"), 1);
    // Reset together with the other counters.
    let reply = admin(emu.addr(), "DELETE", "/__emulator/stats", None).await;
    assert_eq!(reply.status, 204);
    assert_eq!(emu.kubernetes_stats().total, 0);
}

#[tokio::test]
async fn kubernetes_accounts_and_modes_change_at_run_time() {
    let emu = start().await;
    emu.put_service_account(ServiceAccount::new("team-a", "app").with_role_arn(TEAM_B))
        .unwrap();
    let reply = get_sa(&emu, "team-a", "app", Some(K8S_TOKEN)).await;
    assert_eq!(
        reply.json["metadata"]["annotations"]["ack.alibabacloud.com/role-arn"],
        TEAM_B
    );
    assert!(emu.remove_service_account("team-a", "app"));
    assert_eq!(
        get_sa(&emu, "team-a", "app", Some(K8S_TOKEN)).await.status,
        404
    );

    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/kubernetes/serviceaccounts",
        Some(json!({"namespace": "team-d", "name": "app", "annotations": {"ack.alibabacloud.com/role-arn": TEAM_A}})),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        get_sa(&emu, "team-d", "app", Some(K8S_TOKEN)).await.status,
        200
    );
    let path = "/__emulator/kubernetes/serviceaccounts/team-d/app";
    assert_eq!(admin(emu.addr(), "DELETE", path, None).await.status, 204);
    assert_eq!(admin(emu.addr(), "DELETE", path, None).await.status, 404);

    emu.set_kubernetes_mode(KubernetesMode {
        forbidden: true,
        unavailable: false,
    });
    let reply = get_sa(&emu, "team-b", "app", Some(K8S_TOKEN)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json["reason"], "Forbidden");
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("cannot get resource \"serviceaccounts\"")
    );
    let reply = admin(
        emu.addr(),
        "PUT",
        "/__emulator/kubernetes",
        Some(json!({"unavailable": true})),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        get_sa(&emu, "team-b", "app", Some(K8S_TOKEN)).await.status,
        503
    );
    let mode = admin(emu.addr(), "GET", "/__emulator/kubernetes", None).await;
    assert_eq!(mode.json, json!({"forbidden": false, "unavailable": true}));
    let stats = admin(emu.addr(), "GET", "/__emulator/kubernetes/stats", None)
        .await
        .json;
    assert_eq!(
        stats["actions"]["serviceaccounts"]["outcomes"]["Forbidden"],
        1
    );
    assert_eq!(
        stats["actions"]["serviceaccounts"]["outcomes"]["ServiceUnavailable"],
        1
    );

    // Without a configured token any bearer token is accepted.
    let open =
        start_seed(Seed::default().with_service_account(ServiceAccount::new("a", "b"))).await;
    assert_eq!(get_sa(&open, "a", "b", Some("anything")).await.status, 200);
    assert_eq!(get_sa(&open, "a", "b", None).await.status, 401);
}

// === Listeners ===

#[tokio::test]
async fn listeners_can_be_placed_and_stop_together() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds_addr = probe.local_addr().unwrap();
    drop(probe);
    let options = StartOptions::new("127.0.0.1:0".parse().unwrap()).with_imds(imds_addr);
    let emu = Emulator::start_with(example_seed(), options).await.unwrap();
    assert_eq!(emu.imds_addr(), imds_addr);
    assert_eq!(emu.imds_url(), format!("http://{imds_addr}"));
    assert_ne!(emu.kubernetes_addr().port(), 0);
    assert!(emu.kubernetes_url().starts_with("http://127.0.0.1:"));
    let addrs = [emu.addr(), emu.imds_addr(), emu.kubernetes_addr()];
    emu.shutdown().await;
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr}"
        );
    }
}

const BINARY: &str = env!("CARGO_BIN_EXE_alibabacloud-emulator");
const EXAMPLE_SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/emulator-seed.toml"
);

#[tokio::test]
async fn the_binary_announces_every_listener_and_logs_no_secrets() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(BINARY)
        .args(["--seed", EXAMPLE_SEED, "--listen", "127.0.0.1:0"])
        .args([
            "--imds-listen",
            "127.0.0.1:0",
            "--kubernetes-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "alibabacloud_emulator=trace")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("announced in time")
            .unwrap()
            .unwrap()
    };
    let port = |line: &str, prefix: &str| -> SocketAddr {
        let port: u16 = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .unwrap();
        ([127, 0, 0, 1], port).into()
    };
    let api = port(
        &next().await,
        "alibabacloud-emulator listening on http://127.0.0.1:",
    );
    let imds = port(
        &next().await,
        "alibabacloud-emulator imds listening on http://127.0.0.1:",
    );
    let kubernetes = port(
        &next().await,
        "alibabacloud-emulator kubernetes listening on http://127.0.0.1:",
    );

    let mut sensitive = vec![K8S_TOKEN.to_string()];
    let provider = Creds::from_sts(
        &assume_role(PROVIDER_ROLE, "binary")
            .v3(&api.to_string())
            .send(api)
            .await,
    );
    let oidc_token = token_for("team-a", "app");
    let pod = Creds::from_sts(
        &oidc_post(
            api,
            &[
                ("RoleArn", TEAM_A),
                ("OIDCProviderArn", PROVIDER),
                ("OIDCToken", &oidc_token),
            ],
        )
        .await,
    );
    let imds_token = send(
        imds,
        "PUT",
        "/latest/api/token",
        &headers(&[(TTL_HEADER, "60")]),
        Vec::new(),
    )
    .await
    .text;
    let node = send(
        imds,
        "GET",
        "/latest/meta-data/ram/security-credentials/ack-worker-node",
        &headers(&[(TOKEN_HEADER, &imds_token)]),
        Vec::new(),
    )
    .await;
    let node = Creds::from_json(&serde_json::from_str(&node.text).unwrap());
    pod.sign(Req::kms("team-a/db"))
        .v1()
        .send(api)
        .await
        .assert_ok();
    let region = send(imds, "GET", "/latest/meta-data/region-id", &[], Vec::new()).await;
    assert_eq!(region.text, "cn-hangzhou");
    let sa = send(
        kubernetes,
        "GET",
        "/api/v1/namespaces/team-b/serviceaccounts/app",
        &headers(&[("authorization", &format!("Bearer {K8S_TOKEN}"))]),
        Vec::new(),
    )
    .await;
    assert_eq!(
        sa.json["metadata"]["annotations"]["ack.alibabacloud.com/role-arn"],
        TEAM_B
    );
    for creds in [&provider, &pod, &node] {
        sensitive.push(creds.secret.clone());
        sensitive.push(creds.token.clone());
    }
    sensitive.push(oidc_token);
    sensitive.push(imds_token);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stopped on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("issued temporary credentials"), "{logs}");
    assert!(logs.contains(&pod.id), "AccessKeyIds may be logged");
    for secret in &sensitive {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} logged:\n{logs}"
        );
    }
}
