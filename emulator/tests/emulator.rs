//! End-to-end tests of the emulator over HTTP, with requests signed by the
//! project's signature crate.

mod common;

use std::time::{Duration, Instant};

use alibabacloud_emulator::{
    AccessKey, Emulator, Fault, KmsSecret, Latency, OosParameter, SUCCESS, Seed,
};
use common::{AK, LIMITED_AK, Req, STS_AK, admin, timestamp};
use serde_json::json;
use time::OffsetDateTime;

fn example_seed() -> Seed {
    Seed::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/emulator-seed.toml"
    ))
    .unwrap()
}

async fn start() -> Emulator {
    Emulator::start(example_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

// === Success paths ===

#[tokio::test]
async fn v3_get_secret_value_returns_the_current_version() {
    let emu = start().await;
    let reply = Req::kms("test").v3(&emu.endpoint()).send(emu.addr()).await;
    let body = reply.assert_ok();
    assert_eq!(body["SecretName"], "test");
    assert_eq!(body["VersionId"], "v1");
    assert_eq!(
        body["SecretData"],
        r#"{"username":"testuser","password":"testpassword"}"#
    );
    assert_eq!(body["SecretDataType"], "text");
    assert_eq!(body["SecretType"], "Generic");
    assert_eq!(
        body["VersionStages"],
        json!({"VersionStage": ["ACSCurrent"]})
    );
    assert_eq!(body["CreateTime"], "2024-01-02T03:04:05Z");
    assert_eq!(
        reply.headers["content-type"],
        "application/json;charset=utf-8"
    );
    assert!(body.get("ExtendedConfig").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn v3_accepts_the_python_sdk_quirks() {
    let emu = start().await;
    let name = "my secret+*~/中文";
    emu.put_kms_secret(
        KmsSecret::text(name, "quirky").with_extended_config(r#"{"SecretSubType":"SingleUser"}"#),
    )
    .unwrap();
    // Space arrives as `+`, booleans as `True`, and every sent header is
    // signed, including an empty-body content-type.
    let reply = Req::kms(name)
        .param("FetchExtendedConfig", "True")
        .header("accept", "application/json")
        .header("user-agent", "AlibabaCloud (Linux) Python/3.11 TeaDSL/2")
        .header("x-acs-credentials-provider", "static_ak")
        .header("content-type", "application/x-www-form-urlencoded")
        .v3(&emu.endpoint());
    assert!(
        reply.path_and_query.contains("=my+secret%2B"),
        "{}",
        reply.path_and_query
    );
    let reply = reply.send(emu.addr()).await;
    let body = reply.assert_ok();
    assert_eq!(body["SecretName"], name);
    assert_eq!(body["SecretData"], "quirky");
    assert_eq!(body["ExtendedConfig"], r#"{"SecretSubType":"SingleUser"}"#);
}

#[tokio::test]
async fn v3_query_names_signed_unencoded_as_the_python_sdk_does() {
    let emu = start().await;
    // A parameter name with a space: the Python SDK leaves names unencoded in
    // its canonical query. Re-sign by hand to produce exactly that.
    let req = Req::kms("test").param("odd name", "x y");
    let raw = req.v3(&emu.endpoint());
    let body_sha = alibabacloud_signature::EMPTY_SHA256;
    let headers: Vec<(String, String)> = raw
        .headers
        .iter()
        .filter(|(k, _)| k != "authorization")
        .cloned()
        .collect();
    let input = alibabacloud_signature::v3::CanonicalInput {
        method: "POST",
        uri: "/",
        query: &req.params,
        headers: &headers,
        payload_sha256: body_sha,
    };
    let (canonical, signed_headers) = alibabacloud_signature::v3::canonical_request(&input);
    let python_canonical = canonical.replace("odd%20name=", "odd name=");
    assert_ne!(python_canonical, canonical);
    let signature = alibabacloud_signature::v3::signature(
        &alibabacloud_signature::v3::string_to_sign(&python_canonical),
        AK.1,
    );
    let authorization = format!(
        "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed_headers},Signature={signature}",
        AK.0
    );
    let reply = raw
        .set_header("authorization", &authorization)
        .send(emu.addr())
        .await;
    reply.assert_ok();
}

#[tokio::test]
async fn v3_form_body_parameters_are_covered_by_the_content_hash() {
    let emu = start().await;
    let req = Req::kms("test").form("VersionStage", "ACSPrevious");
    let reply = req.v3(&emu.endpoint()).send(emu.addr()).await;
    assert_eq!(reply.assert_ok()["VersionId"], "v0");

    let mut tampered = req.nonce("other-nonce").v3(&emu.endpoint());
    tampered.body = b"VersionStage=ACSCurrent".to_vec();
    let reply = tampered.send(emu.addr()).await;
    reply.assert_error("SignatureDoesNotMatch", 400);
    assert!(reply.message().contains("x-acs-content-sha256"));
}

#[tokio::test]
async fn v1_get_post_and_form_body_are_accepted() {
    let emu = start().await;
    let get = Req::kms("test").method("GET").v1();
    assert!(get.body.is_empty());
    assert_eq!(get.send(emu.addr()).await.assert_ok()["VersionId"], "v1");

    let post = Req::kms("test").param("VersionStage", "ACSPrevious").v1();
    assert_eq!(post.send(emu.addr()).await.assert_ok()["VersionId"], "v0");

    let form = Req::oos("db/password")
        .without_param("Name")
        .form("Name", "db/password")
        .form("WithDecryption", "true")
        .v1();
    assert!(!form.body.is_empty());
    let reply = form.send(emu.addr()).await;
    assert_eq!(reply.assert_ok()["Parameter"]["Value"], "second-password");
}

#[tokio::test]
async fn kms_versions_stages_arns_and_binary() {
    let emu = start().await;
    let host = emu.endpoint();
    let addr = emu.addr();
    let version = |req: Req| {
        let raw = req.v3(&host);
        async move { raw.send(addr).await }
    };

    let reply = version(Req::kms("test").param("VersionId", "v0")).await;
    let body = reply.assert_ok();
    assert_eq!(body["VersionId"], "v0");
    assert_eq!(
        body["VersionStages"]["VersionStage"],
        json!(["ACSPrevious"])
    );
    assert!(body["SecretData"].as_str().unwrap().contains("oldpassword"));

    let reply = version(Req::kms("test").param("VersionStage", "ACSPrevious")).await;
    assert_eq!(reply.assert_ok()["VersionId"], "v0");

    let reply = version(
        Req::kms("test")
            .param("VersionId", "v1")
            .param("VersionStage", "ACSCurrent"),
    )
    .await;
    assert_eq!(reply.assert_ok()["VersionId"], "v1");

    let arn = "acs:kms:cn-hangzhou:1234567890123456:secret/test";
    let reply = version(Req::kms(arn)).await;
    assert_eq!(reply.assert_ok()["SecretName"], "test");

    let reply = version(Req::kms("binary-test")).await;
    let body = reply.assert_ok();
    assert_eq!(body["SecretDataType"], "binary");
    assert_eq!(body["SecretData"], "AAECAwQFBgf//iBiaW5hcnk=");

    for req in [
        Req::kms("nope"),
        Req::kms("test").param("VersionId", "v9"),
        Req::kms("test").param("VersionStage", "ACSPending"),
        Req::kms("test")
            .param("VersionId", "v1")
            .param("VersionStage", "ACSPrevious"),
        Req::kms("acs:kms:cn-beijing:1234567890123456:secret/test"),
        Req::kms("acs:kms:cn-hangzhou:999:secret/test"),
    ] {
        let reply = version(req.clone()).await;
        reply.assert_error("Forbidden.ResourceNotFound", 404);
        assert_eq!(reply.message(), "Resource not found.", "{req:?}");
    }
}

#[tokio::test]
async fn oos_get_secret_parameter() {
    let emu = start().await;
    let send = |req: Req| {
        let raw = req.v3(&emu.endpoint());
        let addr = emu.addr();
        async move { raw.send(addr).await }
    };

    let reply = send(Req::oos("db/password").param("WithDecryption", "True")).await;
    let parameter = &reply.assert_ok()["Parameter"];
    assert_eq!(parameter["Name"], "db/password");
    assert_eq!(parameter["ParameterVersion"], 2);
    assert_eq!(parameter["Type"], "Secret");
    assert_eq!(parameter["Value"], "second-password");
    assert!(parameter["Id"].as_str().unwrap().starts_with("p-"));

    let reply = send(
        Req::oos("db/password")
            .param("WithDecryption", "true")
            .param("ParameterVersion", "1"),
    )
    .await;
    let parameter = &reply.assert_ok()["Parameter"];
    assert_eq!(parameter["ParameterVersion"], 1);
    assert_eq!(parameter["Value"], "first-password");

    let reply = send(Req::oos("db/password")).await;
    assert!(reply.assert_ok()["Parameter"].get("Value").is_none());

    send(Req::oos("db/nope"))
        .await
        .assert_error("EntityNotExists.Parameter", 404);
    send(Req::oos("db/password").param("ParameterVersion", "7"))
        .await
        .assert_error("EntityNotExists.Parameter", 404);
    send(Req::oos("db/password").param("ParameterVersion", "two"))
        .await
        .assert_error("InvalidParameter", 400);
    send(Req::oos("db/password").param("WithDecryption", "yes"))
        .await
        .assert_error("InvalidParameter", 400);
}

// === Authentication errors ===

#[tokio::test]
async fn wrong_secrets_give_signature_does_not_match_with_the_string_to_sign() {
    let emu = start().await;
    let reply = Req::kms("test")
        .key(AK.0, "wrong")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    reply.assert_error("SignatureDoesNotMatch", 400);
    assert!(
        reply
            .message()
            .starts_with("Specified signature is not matched with our calculation. server string to sign is:ACS3-HMAC-SHA256\n"),
        "{}",
        reply.message()
    );

    let reply = Req::kms("test")
        .key(AK.0, "wrong")
        .v1()
        .send(emu.addr())
        .await;
    reply.assert_error("SignatureDoesNotMatch", 400);
    assert!(
        reply
            .message()
            .contains("server string to sign is:POST&%2F&AccessKeyId%3Dtestid")
    );

    // A parameter changed after signing.
    let mut raw = Req::kms("test").v3(&emu.endpoint());
    raw.path_and_query = raw.path_and_query.replace("test", "binary-test");
    raw.send(emu.addr())
        .await
        .assert_error("SignatureDoesNotMatch", 400);
    let mut raw = Req::kms("test").method("GET").v1();
    raw.method = "POST";
    raw.send(emu.addr())
        .await
        .assert_error("SignatureDoesNotMatch", 400);
}

#[tokio::test]
async fn incomplete_signatures() {
    let emu = start().await;
    let host = emu.endpoint();
    let reply = Req::kms("test")
        .unsigned("x-acs-signature-nonce")
        .v3(&host)
        .send(emu.addr())
        .await;
    reply.assert_error("IncompleteSignature", 400);
    assert!(reply.message().contains("x-acs-signature-nonce"));

    let reply = Req::kms("test")
        .v3(&host)
        .set_header("authorization", "ACS3-HMAC-SHA256 Credential=testid")
        .send(emu.addr())
        .await;
    reply.assert_error("IncompleteSignature", 400);

    let reply = Req::kms("test")
        .v3(&host)
        .set_header("authorization", "ACS4-HMAC-SHA256 Credential=testid/x")
        .send(emu.addr())
        .await;
    reply.assert_error("IncompleteSignature", 400);
}

#[tokio::test]
async fn unknown_access_keys_are_not_found() {
    let emu = start().await;
    for raw in [
        Req::kms("test").key("nobody", "x").v3(&emu.endpoint()),
        Req::kms("test").key("nobody", "x").v1(),
    ] {
        let reply = raw.send(emu.addr()).await;
        reply.assert_error("InvalidAccessKeyId.NotFound", 404);
        assert_eq!(reply.message(), "Specified access key is not found.");
    }
}

#[tokio::test]
async fn timestamps_out_of_window_or_unparseable_are_refused() {
    let emu = start().await;
    let stale = timestamp(OffsetDateTime::now_utc() - time::Duration::minutes(16));
    let future = timestamp(OffsetDateTime::now_utc() + time::Duration::minutes(16));
    for raw in [
        Req::kms("test").at(&stale).v3(&emu.endpoint()),
        Req::kms("test").at(&future).v1(),
    ] {
        raw.send(emu.addr())
            .await
            .assert_error("InvalidTimeStamp.Expired", 400);
    }
    let nearly = timestamp(OffsetDateTime::now_utc() - time::Duration::minutes(14));
    Req::kms("test")
        .at(&nearly)
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    for raw in [
        Req::kms("test").at("yesterday").v3(&emu.endpoint()),
        Req::kms("test").at("2024-13-45").v1(),
    ] {
        raw.send(emu.addr())
            .await
            .assert_error("IllegalTimestamp", 400);
    }
}

#[tokio::test]
async fn nonces_cannot_be_replayed() {
    let emu = start().await;
    let raw = Req::kms("test").nonce("once").v3(&emu.endpoint());
    raw.send(emu.addr()).await.assert_ok();
    raw.send(emu.addr())
        .await
        .assert_error("SignatureNonceUsed", 400);

    let v1 = Req::kms("test").nonce("once-v1").v1();
    v1.send(emu.addr()).await.assert_ok();
    v1.send(emu.addr())
        .await
        .assert_error("SignatureNonceUsed", 400);

    // A badly signed request does not burn its nonce.
    Req::kms("test")
        .nonce("kept")
        .key(AK.0, "wrong")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("SignatureDoesNotMatch", 400);
    Req::kms("test")
        .nonce("kept")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
}

#[tokio::test]
async fn missing_parameters() {
    let emu = start().await;
    let reply = Req::kms("test")
        .drop_common("Timestamp")
        .v1()
        .send(emu.addr())
        .await;
    reply.assert_error("MissingParameter", 400);
    assert!(reply.message().contains("\"Timestamp\""));

    let reply = Req::kms("test")
        .without_param("SecretName")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    reply.assert_error("MissingParameter", 400);
    assert!(reply.message().contains("\"SecretName\""));

    let reply = common::send(emu.addr(), "POST", "/", &[], Vec::new()).await;
    reply.assert_error("MissingParameter", 400);
    assert!(reply.message().contains("\"Action\""));
}

#[tokio::test]
async fn unknown_actions_versions_and_paths() {
    let emu = start().await;
    let reply = Req::new("DescribeRegions", "2014-05-26")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    reply.assert_error("InvalidAction.NotFound", 404);

    let reply = Req::new("GetSecretValue", "2099-01-01")
        .param("SecretName", "test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    reply.assert_error("InvalidVersion", 400);

    let reply = common::send(emu.addr(), "GET", "/some/path", &[], Vec::new()).await;
    reply.assert_error("InvalidAction.NotFound", 404);
}

#[tokio::test]
async fn sts_keys_need_their_token_and_expire() {
    let emu = start().await;
    let host = emu.endpoint();
    Req::kms("test")
        .sts()
        .v3(&host)
        .send(emu.addr())
        .await
        .assert_ok();
    Req::kms("test")
        .sts()
        .v1()
        .send(emu.addr())
        .await
        .assert_ok();

    let no_token = Req::kms("test").key(STS_AK.0, STS_AK.1);
    no_token
        .v3(&host)
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Malformed", 400);
    no_token
        .v1()
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Malformed", 400);
    Req::kms("test")
        .sts()
        .token("another-token")
        .v3(&host)
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.MismatchWithAccessKey", 400);
    Req::kms("test")
        .token("a-token-for-a-long-term-key")
        .v1()
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.MismatchWithAccessKey", 400);

    emu.put_access_key(
        AccessKey::new("STS.old", "oldsecret")
            .with_security_token("old-token")
            .expiring_at(OffsetDateTime::now_utc() - time::Duration::seconds(1)),
    )
    .unwrap();
    Req::kms("test")
        .key("STS.old", "oldsecret")
        .token("old-token")
        .v3(&host)
        .send(emu.addr())
        .await
        .assert_error("InvalidSecurityToken.Expired", 400);
}

#[tokio::test]
async fn permissions_limit_what_a_key_reads() {
    let emu = start().await;
    let limited = |req: Req| req.key(LIMITED_AK.0, LIMITED_AK.1).v3(&emu.endpoint());
    limited(Req::kms("test")).send(emu.addr()).await.assert_ok();

    let reply = limited(Req::kms("binary-test")).send(emu.addr()).await;
    reply.assert_error("Forbidden.NoPermission", 403);
    assert_eq!(
        reply.message(),
        "This operation is forbidden by permission system."
    );
    // Denied before existence is revealed.
    limited(Req::kms("does-not-exist"))
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
    limited(Req::oos("db/password"))
        .send(emu.addr())
        .await
        .assert_error("Forbidden.RAM", 403);

    emu.put_access_key(AccessKey::new("dbonly", "s").allowing(["oos:parameter/db/*"]))
        .unwrap();
    let db_only = |req: Req| req.key("dbonly", "s").v1();
    db_only(Req::oos("db/password"))
        .send(emu.addr())
        .await
        .assert_ok();
    db_only(Req::kms("test"))
        .send(emu.addr())
        .await
        .assert_error("Forbidden.NoPermission", 403);
}

// === Faults, latency, stats ===

#[tokio::test]
async fn first_n_faults_then_success() {
    let emu = start().await;
    emu.inject_fault(Fault::throttling("GetSecretValue").times(2));
    for _ in 0..2 {
        let reply = Req::kms("test").v3(&emu.endpoint()).send(emu.addr()).await;
        reply.assert_error("Rejected.Throttling", 429);
        assert_eq!(reply.message(), "QPS Limit Exceeded");
        assert!(
            reply.json["Recommend"]
                .as_str()
                .unwrap()
                .contains("q=Rejected.Throttling&product=Kms")
        );
        assert_eq!(reply.json["HostId"], emu.endpoint());
    }
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    let faults = emu.faults();
    assert_eq!((faults[0].remaining, faults[0].fired), (Some(0), 2));
    let stats = emu.stats();
    assert_eq!(stats.count("GetSecretValue", "Rejected.Throttling"), 2);
    assert_eq!(stats.successes("GetSecretValue"), 1);
}

#[tokio::test]
async fn answer_faults_send_their_body_as_is() {
    let emu = start().await;
    emu.inject_fault(Fault::answer("GetSecretValue", "{\"SecretData\": 1").for_object("test"));
    emu.inject_fault(Fault::answer("GetSecretParameter", r#"{"Parameter":"x"}"#).times(1));
    let reply = Req::kms("test").v3(&emu.endpoint()).send(emu.addr()).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (200, "{\"SecretData\": 1")
    );
    assert!(reply.headers.contains_key("x-acs-request-id"));
    Req::kms("binary-test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    let reply = Req::oos("db/password")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await;
    assert_eq!(reply.text, r#"{"Parameter":"x"}"#);
    Req::oos("db/password")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    // still after authentication
    Req::kms("test")
        .key(AK.0, "wrong-secret")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_error("SignatureDoesNotMatch", 400);
    assert_eq!(emu.stats().successes("GetSecretValue"), 2);
}

#[tokio::test]
async fn probability_faults_match_objects_and_can_be_cleared() {
    let emu = start().await;
    emu.inject_fault(
        Fault::unavailable("*")
            .for_object("db/password")
            .with_probability(1.0)
            .with_retry_after(3),
    );
    emu.inject_fault(
        Fault::new("GetSecretValue", "Forbidden.KmsServiceNotEnabled")
            .with_status(403)
            .for_object("test"),
    );
    for _ in 0..3 {
        let reply = Req::oos("db/password")
            .v3(&emu.endpoint())
            .send(emu.addr())
            .await;
        reply.assert_error("ServiceUnavailableTemporary", 503);
        assert_eq!(reply.headers["x-acs-retry-after"], "3");
    }
    // By name or by ARN, the object is the secret name.
    Req::kms("acs:kms:cn-hangzhou:1234567890123456:secret/test")
        .v1()
        .send(emu.addr())
        .await
        .assert_error("Forbidden.KmsServiceNotEnabled", 403);
    Req::kms("binary-test")
        .v1()
        .send(emu.addr())
        .await
        .assert_ok();

    emu.clear_faults();
    Req::oos("db/password")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
}

#[tokio::test]
async fn latency_delays_each_request() {
    let emu = start().await;
    // Not a wait: the latency is the behaviour measured (a lower bound the
    // sleep guarantees, so no timing can fail it).
    emu.set_latency(Latency::fixed(Duration::from_millis(150)));
    let started = Instant::now();
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(emu.latency(), Latency::fixed(Duration::from_millis(150)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_overlap_their_latency() {
    const REQUESTS: usize = 1000;
    let emu = start().await;
    // Not a wait: the latency is the behaviour measured (overlapping, 1000
    // requests finish far below the 300 s they would take in series).
    emu.set_latency(Latency::fixed(Duration::from_millis(300)));
    let host = emu.endpoint();
    let started = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let raw = if i % 2 == 0 {
                Req::kms("test").v3(&host)
            } else {
                Req::oos("db/password").v1()
            };
            let addr = emu.addr();
            tokio::spawn(async move { raw.send(addr).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Serialised, this would take 300 s.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let stats = emu.stats();
    assert_eq!(stats.total, REQUESTS as u64);
    assert_eq!(stats.successes("GetSecretValue"), REQUESTS as u64 / 2);
    assert_eq!(stats.successes("GetSecretParameter"), REQUESTS as u64 / 2);
}

#[tokio::test]
async fn stats_count_per_action_and_outcome() {
    let emu = start().await;
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(emu.addr())
        .await
        .assert_ok();
    Req::kms("nope").v1().send(emu.addr()).await;
    Req::oos("db/password")
        .v1()
        .send(emu.addr())
        .await
        .assert_ok();
    Req::new("Nope", "1").v1().send(emu.addr()).await;
    let stats = emu.stats();
    assert_eq!(stats.total, 4);
    assert_eq!(stats.requests("GetSecretValue"), 2);
    assert_eq!(stats.count("GetSecretValue", SUCCESS), 1);
    assert_eq!(
        stats.count("GetSecretValue", "Forbidden.ResourceNotFound"),
        1
    );
    assert_eq!(stats.successes("GetSecretParameter"), 1);
    assert_eq!(stats.count("Nope", "InvalidAction.NotFound"), 1);
    emu.reset_stats();
    assert_eq!(emu.stats().total, 0);
}

// === Admin endpoints and runtime changes ===

#[tokio::test]
async fn admin_endpoints_drive_faults_latency_and_stats() {
    let emu = start().await;
    let addr = emu.addr();

    let reply = admin(
        addr,
        "PUT",
        "/__emulator/faults",
        Some(json!([{"action": "GetSecretValue", "code": "InternalFailure", "times": 1}])),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(addr)
        .await
        .assert_error("InternalFailure", 500);
    let listed = admin(addr, "GET", "/__emulator/faults", None).await;
    assert_eq!(listed.json[0]["fired"], 1);
    assert_eq!(listed.json[0]["remaining"], 0);

    let reply = admin(
        addr,
        "POST",
        "/__emulator/faults",
        Some(json!({"action": "*", "code": "Rejected.Throttling", "times": 1, "probability": 0.5})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.json["error"].as_str().unwrap().contains("not both"));
    let reply = admin(addr, "DELETE", "/__emulator/faults", None).await;
    assert_eq!(reply.status, 204);
    assert!(emu.faults().is_empty());

    let reply = admin(
        addr,
        "PUT",
        "/__emulator/latency",
        Some(json!({"latency": "10ms..20ms"})),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(
        emu.latency(),
        Latency::range(Duration::from_millis(10), Duration::from_millis(20))
    );
    let reply = admin(addr, "GET", "/__emulator/latency", None).await;
    assert_eq!(reply.json, json!({"latency": "10ms..20ms"}));
    let reply = admin(
        addr,
        "PUT",
        "/__emulator/latency",
        Some(json!({"latency": "soon"})),
    )
    .await;
    assert!(reply.status >= 400);
    admin(addr, "DELETE", "/__emulator/latency", None).await;
    assert_eq!(emu.latency(), Latency::NONE);

    let stats = admin(addr, "GET", "/__emulator/stats", None).await;
    assert_eq!(stats.json["total"], 1);
    assert_eq!(
        stats.json["actions"]["GetSecretValue"]["outcomes"]["InternalFailure"],
        1
    );
    assert_eq!(
        serde_json::from_value::<alibabacloud_emulator::Stats>(stats.json.clone()).unwrap(),
        emu.stats()
    );
    admin(addr, "DELETE", "/__emulator/stats", None).await;
    assert_eq!(emu.stats().total, 0);
}

#[tokio::test]
async fn secrets_parameters_and_keys_change_at_run_time() {
    let emu = Emulator::start(
        Seed::default()
            .with_access_key(AccessKey::new(AK.0, AK.1))
            .with_kms_secret(KmsSecret::text("app", "one")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = emu.addr();
    let fetch = |req: Req| {
        let raw = req.v3(&emu.endpoint());
        async move { raw.send(addr).await }
    };

    emu.rotate_kms_secret("app", "v2", "two").unwrap();
    let body = fetch(Req::kms("app")).await.assert_ok().clone();
    assert_eq!(
        (body["VersionId"].as_str(), body["SecretData"].as_str()),
        (Some("v2"), Some("two"))
    );
    let previous = fetch(Req::kms("app").param("VersionStage", "ACSPrevious")).await;
    assert_eq!(previous.assert_ok()["SecretData"], "one");
    assert!(emu.rotate_kms_secret("app", "v2", "dup").is_err());
    assert!(emu.rotate_kms_secret("missing", "v1", "x").is_err());

    let reply = admin(
        addr,
        "POST",
        "/__emulator/kms/secrets/app/rotate",
        Some(json!({"version_id": "v3", "data": "three"})),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(
        fetch(Req::kms("app")).await.assert_ok()["SecretData"],
        "three"
    );

    let reply = admin(
        addr,
        "PUT",
        "/__emulator/kms/secrets",
        Some(json!({"name": "new/secret", "versions": [{"id": "a", "stages": ["ACSCurrent"], "data": "fresh"}]})),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(
        fetch(Req::kms("new/secret")).await.assert_ok()["SecretData"],
        "fresh"
    );

    emu.put_oos_parameter(OosParameter::new("p", "v1").with_version(3, "v3"))
        .unwrap();
    let reply = fetch(Req::oos("p").param("WithDecryption", "true")).await;
    assert_eq!(reply.assert_ok()["Parameter"]["ParameterVersion"], 3);
    let reply = admin(
        addr,
        "PUT",
        "/__emulator/oos/parameters",
        Some(json!({"name": "p", "versions": [{"version": 1, "value": "only"}]})),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let reply = fetch(Req::oos("p").param("WithDecryption", "true")).await;
    assert_eq!(reply.assert_ok()["Parameter"]["Value"], "only");

    let reply = admin(
        addr,
        "PUT",
        "/__emulator/access-keys",
        Some(json!({"id": "late", "secret": "comer"})),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    fetch(Req::kms("app").key("late", "comer"))
        .await
        .assert_ok();

    let reply = admin(
        addr,
        "PUT",
        "/__emulator/kms/secrets",
        Some(json!({"name": "bad", "type": "binary", "versions": [{"id": "a", "stages": [], "data": "%%%"}]})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let emu = start().await;
    let addr = emu.addr();
    drop(emu);
    // The servers stop on their own tasks: wait until the listener is gone
    // (the timeout only turns a listener that stays open into a failure).
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .is_ok();
    assert!(refused, "the listener is still open");
}

#[tokio::test]
async fn held_requests_wait_at_the_emulator_until_released() {
    let emu = start().await;
    let hold = emu.hold_object("GetSecretValue", "test");
    let (host, addr) = (emu.endpoint(), emu.addr());
    let held = tokio::spawn(async move { Req::kms("test").v3(&host).send(addr).await.status });
    hold.arrivals(1).await;
    assert_eq!(hold.arrived(), 1);
    // Other requests go through meanwhile.
    Req::oos("db/password").v1().send(addr).await.assert_ok();
    assert_eq!(emu.stats().requests("GetSecretValue"), 0, "still held");
    assert!(!held.is_finished());
    hold.release();
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(emu.stats().successes("GetSecretValue"), 1);
    // Released: later requests are not held.
    Req::kms("test")
        .v3(&emu.endpoint())
        .send(addr)
        .await
        .assert_ok();
}

// === The binary ===

const BINARY: &str = env!("CARGO_BIN_EXE_alibabacloud-emulator");
const EXAMPLE_SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/emulator-seed.toml"
);

#[tokio::test]
async fn the_binary_announces_its_port_serves_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(BINARY)
        .args(["--seed", EXAMPLE_SEED, "--listen", "127.0.0.1:0"])
        .args(["--latency", "5ms", "--region", "cn-beijing"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the binary announced itself in time")
        .unwrap()
        .unwrap();
    let port: u16 = first
        .strip_prefix("alibabacloud-emulator listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    Req::kms("test")
        .v3(&addr.to_string())
        .send(addr)
        .await
        .assert_ok();
    Req::kms("acs:kms:cn-beijing:1234567890123456:secret/test")
        .v1()
        .send(addr)
        .await
        .assert_ok();
    let latency = admin(addr, "GET", "/__emulator/latency", None).await;
    assert_eq!(latency.json, json!({"latency": "5ms"}));

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the binary stopped on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_binary_refuses_a_bad_seed_with_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, "[[access_keys]]\nid = \"a\"\n").unwrap();
    let output = std::process::Command::new(BINARY)
        .args(["--seed".as_ref(), seed.as_os_str()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid seed TOML"), "{stderr}");
    assert!(stderr.contains("secret"), "{stderr}");
}
