//! The emulator's request decoding, signature verification and JWT reading,
//! without its servers (the crate is built with `default-features = false`).
//!
//! Input, HTTP mode: `METHOD URI` on the first line, `Name: value` header
//! lines up to an empty line, then the body. JWT mode: `JWT` on the first
//! line, then the token, then the HS256 key.
//!
//! Invariants, HTTP: no panic in decoding or verification; the query is the
//! form-decoding of the URI's query; parameters come from the query before
//! the form; a request built from the same method, path, query and body and
//! signed by the signature crate (V3, and V1) is accepted, with its
//! signature changed is refused as `SignatureDoesNotMatch`, and replayed is
//! refused as `SignatureNonceUsed`.
//! JWT: decoding never panics; a decoded token's claims minted again (HS256
//! and unsigned) decode to the same claims and the HS256 one verifies.
#![no_main]

use alibabacloud_emulator::AccessKey;
use alibabacloud_emulator::fuzzing::{self, Request, Verifier};
use alibabacloud_emulator::jwt;
use alibabacloud_signature::{sha256_hex, v1, v3};
use libfuzzer_sys::fuzz_target;

const KEY_ID: &str = "testid";
const KEY_SECRET: &str = "testsecret";
/// 2024-01-01T00:00:00Z, the clock of every verification.
const NOW: i64 = 1_704_067_200;
const NOW_TEXT: &str = "2024-01-01T00:00:00Z";
const V1_NAMES: &[&str] = &[
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "SecurityToken",
];

fn verifier() -> Verifier {
    Verifier::new(&[AccessKey::new(KEY_ID, KEY_SECRET)])
}

fn form_encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn with_query(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", form_encode(pairs))
    }
}

/// The request a client would send; `None` if the `http` crate refuses the
/// URI rebuilt from the path and the encoded query (e.g. a path of `*`).
fn send(method: &str, uri: &str, headers: &[(String, String)], body: &[u8]) -> Option<Request> {
    let headers: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    fuzzing::request(method.as_bytes(), uri, &headers, body)
}

fn expect_refused(verifier: &Verifier, request: &Request, code: &str) {
    match verifier.authenticate(request, NOW) {
        Ok(_) => panic!("accepted, expected {code}"),
        Err(refusal) => assert_eq!(refusal.code, code, "{}", refusal.message),
    }
}

/// Signs method, path, query and body with V3 as a client would.
fn check_v3_round_trip(request: &Request, method: &str, body: &[u8]) {
    let query = request.query().to_vec();
    let mut headers: Vec<(String, String)> = [
        ("host", "kms.cn-hangzhou.aliyuncs.com"),
        ("x-acs-action", "GetSecretValue"),
        ("x-acs-version", "2016-01-20"),
        ("x-acs-date", NOW_TEXT),
        ("x-acs-signature-nonce", "nonce-v3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    headers.push(("x-acs-content-sha256".into(), sha256_hex(body)));
    let input = v3::CanonicalInput {
        method,
        uri: request.path(),
        query: &query,
        headers: &headers,
        payload_sha256: &headers[5].1,
    };
    let authorization = v3::authorization(&input, KEY_ID, KEY_SECRET);
    let uri = with_query(request.path(), &query);
    let verifier = verifier();

    let mut tampered = headers.clone();
    let flipped = match authorization.as_bytes()[authorization.len() - 1] {
        b'0' => '1',
        _ => '0',
    };
    tampered.push((
        "authorization".into(),
        format!("{}{flipped}", &authorization[..authorization.len() - 1]),
    ));
    let Some(tampered) = send(method, &uri, &tampered, body) else {
        return;
    };
    expect_refused(&verifier, &tampered, "SignatureDoesNotMatch");

    headers.push(("authorization".into(), authorization));
    let signed = send(method, &uri, &headers, body).expect("parsed with another signature");
    assert_eq!(signed.query(), &query[..], "{uri}");
    match verifier.authenticate(&signed, NOW) {
        Ok(id) => assert_eq!(id, KEY_ID),
        Err(refusal) => panic!("V3 {method} {uri}: {} {}", refusal.code, refusal.message),
    }
    expect_refused(&verifier, &signed, "SignatureNonceUsed");
}

/// Signs method, path and query with V1 as a client would.
fn check_v1_round_trip(request: &Request, method: &str) {
    let mut params: Vec<(String, String)> = request
        .query()
        .iter()
        .filter(|(k, _)| !V1_NAMES.contains(&k.as_str()))
        .cloned()
        .collect();
    for (k, v) in [
        ("AccessKeyId", KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", "nonce-v1"),
        ("Timestamp", NOW_TEXT),
    ] {
        params.push((k.to_string(), v.to_string()));
    }
    let signature = v1::sign(method, &params, KEY_SECRET);
    let verifier = verifier();
    let mut tampered = params.clone();
    tampered.push(("Signature".into(), format!("A{}", &signature[1..])));
    params.push(("Signature".into(), signature.clone()));
    let uri = with_query(request.path(), &params);
    let Some(signed) = send(method, &uri, &[], b"") else {
        return;
    };
    if !signature.starts_with('A') {
        let tampered = send(method, &with_query(request.path(), &tampered), &[], b"")
            .expect("parsed with another signature");
        expect_refused(&verifier, &tampered, "SignatureDoesNotMatch");
    }
    match verifier.authenticate(&signed, NOW) {
        Ok(id) => assert_eq!(id, KEY_ID),
        Err(refusal) => panic!("V1 {method} {uri}: {} {}", refusal.code, refusal.message),
    }
    expect_refused(&verifier, &signed, "SignatureNonceUsed");
}

fn http_mode(text: &str, raw: &[u8]) {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &raw[i + 2..]),
        None => (text, &b""[..]),
    };
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, uri) = request_line.split_once(' ').unwrap_or((request_line, "/"));
    let headers: Vec<(&[u8], &[u8])> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            (k.trim().as_bytes(), v.trim_start().as_bytes())
        })
        .collect();
    let Some(request) = fuzzing::request(method.as_bytes(), uri, &headers, body) else {
        return;
    };

    if let Ok(parsed) = uri.parse::<http::Uri>() {
        assert_eq!(
            request.query(),
            &fuzzing::decode_form(parsed.query().unwrap_or(""))[..]
        );
    }
    for (k, _) in request.query() {
        let first = request.query().iter().find(|(q, _)| q == k).map(|(_, v)| v);
        assert_eq!(request.param(k), first.map(String::as_str));
    }
    for (k, _) in request.form() {
        assert!(request.param(k).is_some());
    }
    let _ = (
        request.action(),
        request.version(),
        request.host_id(),
        request.header("authorization"),
    );

    let verifier = verifier();
    if let Ok(id) = verifier.authenticate(&request, NOW) {
        assert_eq!(id, KEY_ID);
    }
    let _ = fuzzing::raw_name_canonical_request(&String::from_utf8_lossy(body), request.query());

    check_v3_round_trip(&request, method, body);
    check_v1_round_trip(&request, method);
}

fn has_float(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(items) => items.iter().any(has_float),
        serde_json::Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn jwt_mode(text: &str) {
    let (token, key) = text.split_once('\n').unwrap_or((text, "k"));
    let Ok((header, claims)) = jwt::decode(token) else {
        return;
    };
    let _ = fuzzing::verify_hs256(token, &header, key);
    let signed = jwt::mint(&claims, Some(key));
    let (signed_header, again) = jwt::decode(&signed).expect("a minted token decodes");
    assert_eq!(
        fuzzing::verify_hs256(&signed, &signed_header, key),
        Some(true)
    );
    let (_, unsigned) = jwt::decode(&jwt::mint(&claims, None)).expect("a minted token decodes");
    if !claims.extra.values().any(has_float) {
        assert_eq!(again, claims);
        assert_eq!(unsigned, claims);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match text.strip_prefix("JWT\n") {
        Some(rest) => jwt_mode(rest),
        None if text.len() == data.len() => http_mode(&text, data),
        None => http_mode(&text, text.as_bytes()),
    }
});
