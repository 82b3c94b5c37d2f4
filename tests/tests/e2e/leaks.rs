//! No error path lets a byte of a secret out: every way the built-in plugins
//! (kms, oos) and the host's response building can fail is driven through a
//! real Mount — the emulator over signed HTTP (with `Fault::answer` for the
//! answers a healthy service never sends), the provider on its Unix socket,
//! the real WebAssembly plugins — with secrets made of characters that no
//! legitimate message contains. The gRPC status message (the pod's
//! FailedMount event) and every captured log line, trace level included, are
//! then searched for any of them: raw, escaped, or as the number of one of
//! their bytes (base64's old `Invalid symbol 194, offset 4`).
//!
//! Each case also checks that its error path was the one taken, so a case
//! that stopped failing the intended way cannot pass silently.

use integration_tests::emulator::{Fault, KmsSecret, OosParameter, Seed};
use integration_tests::*;
use tonic::Code;

/// The characters secrets are made of here. None appears in any message the
/// provider writes.
const MARKS: [char; 6] = ['§', '¤', 'Ж', '¶', 'ꙮ', 'Ѫ'];
/// Every mark once (13 bytes).
const M: &str = "§¤Ж¶ꙮѪ";
/// Bytes that are never UTF-8, for binary secrets.
const NOT_UTF8: [u8; 4] = [0xFF, 0xFE, 0xC0, 0xC1];
/// A number held by a secret.
const NUMBER: &str = "8675309123";
/// Runs of secret ASCII that must not appear either.
const FRAGMENTS: &[&str] = &["8675309", "QUJD", "RUZH", "QU+="];

/// Every secret byte that is not ASCII: the marks' UTF-8 and [`NOT_UTF8`].
fn secret_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = M.bytes().chain(NOT_UTF8).collect();
    bytes.sort_unstable();
    bytes.dedup();
    bytes
}

/// Every form in which a byte of a secret could appear in `text`; `numbers`
/// also looks for a secret byte's value as a decimal number (for status
/// messages; logs hold timings and counters).
fn leaks(text: &str, numbers: bool, extra: &[&str], extra_bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for c in MARKS.iter().copied().chain(['\u{FFFD}']) {
        if text.contains(c) {
            found.push(format!("the character {c}"));
        }
    }
    for fragment in FRAGMENTS.iter().chain(extra) {
        if text.contains(fragment) {
            found.push(format!("the fragment {fragment:?}"));
        }
    }
    let lower = text.to_lowercase();
    let bytes: Vec<u8> = secret_bytes()
        .into_iter()
        .chain(extra_bytes.iter().copied())
        .collect();
    for b in &bytes {
        for escaped in [
            format!("\\x{b:02x}"),
            format!("0x{b:02x}"),
            format!("%{b:02x}"),
        ] {
            if lower.contains(&escaped) {
                found.push(format!("the byte {b} as {escaped}"));
            }
        }
    }
    for c in MARKS {
        for escaped in [
            format!("\\u{{{:x}}}", c as u32),
            format!("\\u{:04x}", c as u32),
        ] {
            if lower.contains(&escaped) {
                found.push(format!("{c} as {escaped}"));
            }
        }
    }
    if numbers {
        // Whole words only: a request id's hex holds runs of digits.
        for token in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            if token.bytes().all(|b| b.is_ascii_digit())
                && let Ok(n) = token.parse::<u16>()
                && !token.starts_with('0')
                && bytes.iter().any(|b| u16::from(*b) == n)
            {
                found.push(format!("the byte value {n}"));
            }
        }
    }
    found
}

#[test]
fn the_detector_sees_every_form_of_a_leak() {
    for leaked in [
        "Invalid symbol 194, offset 4.",
        "invalid type: string \"§\", expected a string",
        "invalid type: integer `8675309123`, expected a string",
        "escaped \\u{a7} or \\u00A7",
        "bytes \\xC2\\xA7",
        "as a list [208, 150]",
        "lossy \u{FFFD}",
        "hex 0xff",
        "from_utf8: invalid utf-8 sequence of 1 bytes from index 6: 255",
    ] {
        assert!(!leaks(leaked, true, &[], &[]).is_empty(), "{leaked}");
    }
    for clean in [
        "objects[0] (objectName \"leak/b64-symbol\") objectType kms: decode binary data error: not valid base64: invalid character at byte offset 4 of 21",
        "Forbidden.ResourceNotFound: Resource not found. (request id 34E3D254-53B6-4ABD-B087-7DD243C7C633)",
        "KMS GetSecretValue to 127.0.0.1:43211: HTTP 404",
    ] {
        assert_eq!(
            leaks(clean, true, &[], &[]),
            Vec::<String>::new(),
            "{clean}"
        );
    }
}

/// One error path: the Mount, the code and a piece of the message that
/// proves the path was taken, and what else must not appear.
struct Case {
    what: &'static str,
    objects: String,
    code: Code,
    says: &'static str,
    also_forbidden: &'static [&'static str],
    also_bytes: &'static [u8],
}

fn case(what: &'static str, objects: &str, code: Code, says: &'static str) -> Case {
    Case {
        what,
        objects: objects.to_string(),
        code,
        says,
        also_forbidden: &[],
        also_bytes: &[],
    }
}

/// Mounts every case on `provider` and checks its status message.
async fn run(provider: &TestProvider, cases: Vec<Case>) {
    for case in cases {
        let status = provider
            .mount(Mount::objects(&case.objects))
            .await
            .expect_err(case.what);
        let message = status.message();
        assert_eq!(status.code(), case.code, "{}: {message}", case.what);
        assert!(
            message.contains(case.says),
            "{}: the error path changed: {message}",
            case.what
        );
        let found = leaks(message, true, case.also_forbidden, case.also_bytes);
        assert!(
            found.is_empty(),
            "{}: the status message leaks {found:?}: {message}",
            case.what
        );
    }
}

/// The captured logs hold the failures (so the capture works) and no byte of
/// any secret.
fn assert_clean_logs(failures: usize) {
    let text = captured_logs().text();
    assert!(
        text.matches("mount failed").count() >= failures,
        "the capture misses failed Mounts"
    );
    assert!(
        text.contains("plugin calls Alibaba Cloud"),
        "debug lines are captured"
    );
    let found = leaks(&text, false, &["QU+="], &[]);
    assert!(found.is_empty(), "the logs leak {found:?}");
}

/// Every answer fault fired: each malformed answer reached a plugin.
fn assert_every_answer_served(cloud: &FakeCloud) {
    for fault in cloud.emulator.faults() {
        assert!(fault.fired > 0, "{:?} never fired", fault.fault.object);
    }
}

/// Text and binary secrets and parameters made of marks.
fn leak_seed() -> Seed {
    let mut not_utf8 = br#"{"k":""#.to_vec();
    not_utf8.extend(NOT_UTF8);
    not_utf8.extend(br#""}"#);
    default_seed()
        .with_kms_secret(KmsSecret::text(
            "leak/json",
            format!(r#"{{"user":"{M}","num":{NUMBER},"obj":{{"k":"{M}"}},"list":["{M}"]}}"#),
        ))
        .with_kms_secret(KmsSecret::text("leak/text", format!("{M}{M}")))
        .with_kms_secret(KmsSecret::text("leak/truncated", format!(r#"{{"k":"{M}"#)))
        .with_kms_secret(KmsSecret::text(
            "leak/escape",
            r#"{"k":"§¤\Ж¶"}"#.to_string(),
        ))
        .with_kms_secret(KmsSecret::binary("leak/not-utf8", &not_utf8))
        .with_oos_parameter(OosParameter::new("leak/param", M).with_version(2, format!("{M}{M}")))
}

/// Answers `GetSecretValue` for `name` with `body`.
fn kms_answer(name: &str, body: String) -> Fault {
    Fault::answer("GetSecretValue", body).for_object(name)
}

/// Answers `GetSecretParameter` for `name` with `body`.
fn oos_answer(name: &str, body: String) -> Fault {
    Fault::answer("GetSecretParameter", body).for_object(name)
}

#[tokio::test]
async fn kms_error_paths_leak_no_byte_of_the_secret() {
    captured_logs();
    let cloud = FakeCloud::start(leak_seed()).await;
    let binary = |data: &str| {
        format!(
            r#"{{"SecretName":"x","VersionId":"v1","SecretDataType":"binary","SecretData":"{data}"}}"#
        )
    };
    for (name, body) in [
        ("b64-symbol", binary("QUJD§¤Ж¶ꙮѪRUZH")),
        ("b64-leading", binary(M)),
        ("b64-last", binary("QU+=")),
        ("b64-length", binary("QUJDRUZHR")),
        ("b64-padding", binary("QUJDRUZ")),
        (
            "number",
            format!(r#"{{"VersionId":"v1","SecretData":{NUMBER}}}"#),
        ),
        (
            "object",
            format!(r#"{{"VersionId":"v1","SecretData":{{"k":"{M}"}}}}"#),
        ),
        (
            "array",
            format!(r#"{{"VersionId":"v1","SecretData":["{M}"]}}"#),
        ),
        ("body-string", format!(r#""{M}""#)),
        ("not-json", format!("{M} <xml/>")),
        (
            "truncated",
            format!(r#"{{"VersionId":"v1","SecretData":"{M}"#),
        ),
        (
            "bad-escape",
            r#"{"VersionId":"v1","SecretData":"§¤\Ж¶"}"#.to_string(),
        ),
        ("no-data", r#"{"VersionId":"v1"}"#.to_string()),
        ("no-version", format!(r#"{{"SecretData":"{M}"}}"#)),
        (
            "empty-version",
            format!(r#"{{"VersionId":"","SecretData":"{M}"}}"#),
        ),
        (
            "long-version",
            format!(r#"{{"VersionId":"{}","SecretData":"{M}"}}"#, M.repeat(100)),
        ),
    ] {
        cloud
            .emulator
            .inject_fault(kms_answer(&format!("leak/{name}"), body));
    }
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let object = |name: &str| format!("- objectName: leak/{name}\n");
    let invalid_base64 = "decode binary data error: not valid base64";
    let cases = vec![
        case(
            "an invalid base64 character",
            &object("b64-symbol"),
            Code::Internal,
            "decode binary data error: not valid base64: invalid character at byte offset 4 of 21, key: leak/b64-symbol",
        ),
        case(
            "no base64 at all",
            &object("b64-leading"),
            Code::Internal,
            "invalid character at byte offset 0 of 13",
        ),
        Case {
            also_forbidden: &["+"],
            also_bytes: b"+",
            ..case(
                "a last base64 character with stray bits",
                &object("b64-last"),
                Code::Internal,
                "the last character, at byte offset 2 of 4, has bits set",
            )
        },
        case(
            "a base64 length that cannot be",
            &object("b64-length"),
            Code::Internal,
            "not valid base64: invalid length",
        ),
        case(
            "missing base64 padding",
            &object("b64-padding"),
            Code::Internal,
            invalid_base64,
        ),
        case(
            "SecretData is a number",
            &object("number"),
            Code::Internal,
            "SecretData is a number, not a string",
        ),
        case(
            "SecretData is an object",
            &object("object"),
            Code::Internal,
            "SecretData is an object, not a string",
        ),
        case(
            "SecretData is an array",
            &object("array"),
            Code::Internal,
            "SecretData is an array, not a string",
        ),
        case(
            "the answer is a JSON string",
            &object("body-string"),
            Code::Internal,
            "the body is a string, not an object",
        ),
        case(
            "the answer is not JSON",
            &object("not-json"),
            Code::Internal,
            "not valid JSON: expected a value at line 1, column 1",
        ),
        case(
            "the answer ends inside SecretData",
            &object("truncated"),
            Code::Internal,
            "not valid JSON: unexpected end inside a string at line 1, column 45",
        ),
        case(
            "SecretData has an invalid escape",
            &object("bad-escape"),
            Code::Internal,
            "not valid JSON: invalid escape in a string",
        ),
        case(
            "no SecretData",
            &object("no-data"),
            Code::Internal,
            "returned no SecretData",
        ),
        case(
            "no VersionId",
            &object("no-version"),
            Code::Internal,
            "returned no VersionId",
        ),
        case(
            "an empty VersionId",
            &object("empty-version"),
            Code::Internal,
            "returned a version of 0 bytes",
        ),
        case(
            "a VersionId past the limit",
            &object("long-version"),
            Code::Internal,
            "returned a version of 1300 bytes",
        ),
        case(
            "a VersionId that does not exist",
            "- objectName: leak/json\n  objectVersion: v9\n",
            Code::NotFound,
            "Forbidden.ResourceNotFound",
        ),
        case(
            "a VersionStage that does not exist",
            "- objectName: leak/json\n  objectVersionLabel: NoSuchStage\n",
            Code::NotFound,
            "Forbidden.ResourceNotFound",
        ),
        case(
            "a parameter kms does not take",
            "- objectName: leak/json\n  parameters:\n    field: user\n",
            Code::InvalidArgument,
            "objectType kms takes no parameters",
        ),
        case(
            "a secret that does not exist",
            "- objectName: leak/missing\n",
            Code::NotFound,
            "failed fetching secret leak/missing: Forbidden.ResourceNotFound",
        ),
    ];
    let count = cases.len();
    run(&provider, cases).await;
    provider.stop().await;
    assert_every_answer_served(&cloud);
    assert_clean_logs(count);
    // the marks did reach the provider: the same secrets mount when well-formed
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let response = provider
        .mount(Mount::objects("- objectName: leak/text\n"))
        .await
        .unwrap();
    assert_eq!(files(&response)["leak_text"], format!("{M}{M}"));
    provider.stop().await;
}

#[tokio::test]
async fn oos_error_paths_leak_no_byte_of_the_parameter() {
    captured_logs();
    let cloud = FakeCloud::start(leak_seed()).await;
    let parameter = |fields: String| format!(r#"{{"RequestId":"r","Parameter":{{{fields}}}}}"#);
    for (name, body) in [
        ("string", format!(r#"{{"Parameter":"{M}"}}"#)),
        ("array", format!(r#"{{"Parameter":["{M}"]}}"#)),
        (
            "value-number",
            parameter(format!(r#""ParameterVersion":1,"Value":{NUMBER}"#)),
        ),
        (
            "value-object",
            parameter(format!(r#""ParameterVersion":1,"Value":{{"k":"{M}"}}"#)),
        ),
        ("no-value", parameter(r#""ParameterVersion":1"#.to_string())),
        (
            "version-bool",
            parameter(format!(r#""ParameterVersion":true,"Value":"{M}""#)),
        ),
        ("no-version", parameter(format!(r#""Value":"{M}""#))),
        ("no-parameter", r#"{"RequestId":"r"}"#.to_string()),
        ("body-array", format!(r#"["{M}"]"#)),
        ("not-json", M.to_string()),
        (
            "truncated",
            parameter(format!(r#""ParameterVersion":1,"Value":"{M}"#)),
        ),
    ] {
        cloud
            .emulator
            .inject_fault(oos_answer(&format!("leak/{name}"), body));
    }
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let object = |name: &str| format!("- objectName: leak/{name}\n  objectType: oos\n");
    let cases = vec![
        case(
            "Parameter is a string",
            &object("string"),
            Code::Internal,
            "Parameter is a string, not an object",
        ),
        case(
            "Parameter is an array",
            &object("array"),
            Code::Internal,
            "Parameter is an array, not an object",
        ),
        case(
            "Parameter.Value is a number",
            &object("value-number"),
            Code::Internal,
            "Parameter.Value is a number, not a string",
        ),
        case(
            "Parameter.Value is an object",
            &object("value-object"),
            Code::Internal,
            "Parameter.Value is an object, not a string",
        ),
        case(
            "no Parameter.Value",
            &object("no-value"),
            Code::Internal,
            "returned no Parameter.Value",
        ),
        case(
            "ParameterVersion is a boolean",
            &object("version-bool"),
            Code::Internal,
            "Parameter.ParameterVersion is a boolean, not a number",
        ),
        case(
            "no ParameterVersion",
            &object("no-version"),
            Code::Internal,
            "returned no Parameter.ParameterVersion",
        ),
        case(
            "no Parameter",
            &object("no-parameter"),
            Code::Internal,
            "returned no Parameter",
        ),
        case(
            "the answer is an array",
            &object("body-array"),
            Code::Internal,
            "the body is an array, not an object",
        ),
        case(
            "the answer is not JSON",
            &object("not-json"),
            Code::Internal,
            "not valid JSON: expected a value at line 1, column 1",
        ),
        case(
            "the answer ends inside the value",
            &object("truncated"),
            Code::Internal,
            "not valid JSON: unexpected end inside a string",
        ),
        case(
            "a version of zero",
            "- objectName: leak/param\n  objectType: oos\n  objectVersion: \"0\"\n",
            Code::InvalidArgument,
            "objectVersion \"0\" of OOS parameter leak/param must be a ParameterVersion number",
        ),
        case(
            "a version number out of range",
            "- objectName: leak/param\n  objectType: oos\n  objectVersion: \"101\"\n",
            Code::InvalidArgument,
            "must be a ParameterVersion number",
        ),
        case(
            "a version that does not exist",
            "- objectName: leak/param\n  objectType: oos\n  objectVersion: 9\n",
            Code::NotFound,
            "EntityNotExists.Parameter",
        ),
        case(
            "a parameter oos does not take",
            "- objectName: leak/param\n  objectType: oos\n  parameters:\n    field: user\n",
            Code::InvalidArgument,
            "objectType oos takes no parameters",
        ),
        case(
            "a parameter that does not exist",
            "- objectName: leak/missing\n  objectType: oos\n",
            Code::NotFound,
            "failed fetching secret leak/missing: EntityNotExists.Parameter",
        ),
    ];
    let count = cases.len();
    run(&provider, cases).await;
    provider.stop().await;
    assert_every_answer_served(&cloud);
    assert_clean_logs(count);
}

#[tokio::test]
async fn response_building_errors_leak_no_byte_of_the_secret() {
    captured_logs();
    let cloud = FakeCloud::start(leak_seed()).await;
    let provider = TestProvider::start(cloud.config(), cloud.env()).await;
    let jmes = |name: &str, path: &str| {
        format!("- objectName: {name}\n  jmesPath:\n    - path: '{path}'\n      objectAlias: out\n")
    };
    let not_json = "invalid JSON used with jmesPath in secret:";
    let cases = vec![
        case(
            "jmesPath on a secret that is not JSON",
            &jmes("leak/text", "k"),
            Code::InvalidArgument,
            "invalid JSON used with jmesPath in secret: leak/text (not valid JSON: expected a value at line 1, column 1)",
        ),
        case(
            "jmesPath on JSON that ends inside a value",
            &jmes("leak/truncated", "k"),
            Code::InvalidArgument,
            "(not valid JSON: unexpected end inside a string at line 1, column 19)",
        ),
        case(
            "jmesPath on JSON with an invalid escape",
            &jmes("leak/escape", "k"),
            Code::InvalidArgument,
            "(not valid JSON: invalid escape in a string",
        ),
        case(
            "jmesPath on a binary secret that is not UTF-8",
            &jmes("leak/not-utf8", "k"),
            Code::InvalidArgument,
            "(not valid JSON: it is not UTF-8 text (invalid byte sequence at byte offset 6 of 12))",
        ),
        case(
            "jmesPath on an OOS parameter that is not JSON",
            "- objectName: leak/param\n  objectType: oos\n  jmesPath:\n    - path: k\n      objectAlias: out\n",
            Code::InvalidArgument,
            not_json,
        ),
        case(
            "a jmesPath result that is a number",
            &jmes("leak/json", "num"),
            Code::InvalidArgument,
            "only string is allowed (the result is a number)",
        ),
        case(
            "a jmesPath result that is an object",
            &jmes("leak/json", "obj"),
            Code::InvalidArgument,
            "only string is allowed (the result is an object)",
        ),
        case(
            "a jmesPath result that is an array",
            &jmes("leak/json", "list"),
            Code::InvalidArgument,
            "only string is allowed (the result is an array)",
        ),
        case(
            "a jmesPath key that is missing",
            &jmes("leak/json", "password"),
            Code::InvalidArgument,
            "jmes path - password for object alias - out does not point to a valid object",
        ),
        case(
            "a jmesPath function given a secret of the wrong type",
            &jmes("leak/json", "abs(user)"),
            Code::InvalidArgument,
            "abs() argument 1 must be a number; it is a string",
        ),
        case(
            "a jmesPath function given a secret number",
            &jmes("leak/json", "length(num)"),
            Code::InvalidArgument,
            "length() argument 1 must be a string, an array or an object; it is a number",
        ),
    ];
    let mut count = cases.len();
    run(&provider, cases).await;
    provider.stop().await;

    // the size limits: a plugin's output, the Mount's files
    let mut config = cloud.config();
    config.plugins.get_mut("kms").unwrap().max_output_bytes = Some(8);
    config.limits.response_warn_bytes = 8;
    config.limits.response_max_bytes = 16;
    let provider = TestProvider::start(config, cloud.env()).await;
    let cases = vec![
        case(
            "a secret larger than the plugin's output limit",
            "- objectName: leak/json\n",
            Code::ResourceExhausted,
            "the kms plugin returned 94 bytes; the limit is 8",
        ),
        case(
            "files larger than the Mount's limit",
            "- objectName: leak/param\n  objectType: oos\n",
            Code::ResourceExhausted,
            "the Mount's files total more than 16 bytes (at least 36",
        ),
    ];
    count += cases.len();
    run(&provider, cases).await;
    provider.stop().await;

    // an answer larger than the cloud client reads
    let mut config = cloud.config();
    config.cloud.max_response_bytes = 64;
    config.cloud.max_attempts = 1;
    let provider = TestProvider::start(config, cloud.env()).await;
    let cases = vec![case(
        "an answer larger than cloud.max_response_bytes",
        "- objectName: leak/json\n",
        Code::Unavailable,
        "the answer is larger than 64 bytes (config key cloud.max_response_bytes)",
    )];
    count += cases.len();
    run(&provider, cases).await;
    provider.stop().await;
    assert_clean_logs(count);
}
