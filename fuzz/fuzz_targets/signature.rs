//! Request canonicalisation and signing (RPC V1, V3), and V3 `Authorization`
//! header parsing.
//!
//! Input, as text lines: method, AccessKeyId, AccessKeySecret, URI path;
//! then `key=value` parameters up to an empty line; then `name:value`
//! headers up to an empty line; then the body. The whole text is also
//! given to `v3::parse_authorization`.
//!
//! Invariants: `percent_encode` keeps only unreserved bytes and `%XX` with
//! uppercase hex, and decodes back; `canonical_query` is deterministic and
//! independent of parameter order; the V1 string to sign has the documented
//! shape and its signature is base64 of 20 bytes; a V3 `Authorization` header
//! built by `authorization` parses back to its key id, the sorted lowercase
//! signed headers and the signature over the canonical request (for key ids
//! and header names as HTTP allows them); `constant_time_eq` is `==`.
#![no_main]

use alibabacloud_signature::{
    canonical_query, constant_time_eq, percent_encode, sha256_hex, v1, v3,
};
use libfuzzer_sys::fuzz_target;

fn check_percent_encode(input: &str) {
    let encoded = percent_encode(input);
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = &encoded[i + 1..i + 3];
            assert!(
                hex.bytes()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)),
                "{encoded:?}"
            );
            decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            assert!(
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'),
                "{encoded:?} keeps {:?}",
                b as char
            );
            decoded.push(b);
            i += 1;
        }
    }
    assert_eq!(decoded, input.as_bytes());
}

/// An HTTP header name or an access key id as a client sends it.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = v3::parse_authorization(&text);

    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let access_key_id = lines.next().unwrap_or_default();
    let secret = lines.next().unwrap_or_default();
    let uri = lines.next().unwrap_or_default();
    let mut params: Vec<(String, String)> = Vec::new();
    for line in lines.by_ref().take_while(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        params.push((k.to_string(), v.to_string()));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines.by_ref().take_while(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        headers.push((k.to_string(), v.to_string()));
    }
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");

    for s in [method, access_key_id, secret, uri, body.as_str()] {
        check_percent_encode(s);
    }
    for (k, v) in &params {
        check_percent_encode(k);
        check_percent_encode(v);
    }

    // Order independence.
    let query = canonical_query(&params);
    assert_eq!(query, canonical_query(&params));
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(query, canonical_query(&reversed));
    let mut rotated = params.clone();
    if !rotated.is_empty() {
        rotated.rotate_left(1);
    }
    assert_eq!(query, canonical_query(&rotated));
    assert_eq!(query.is_empty(), params.is_empty());
    assert_eq!(query.matches('&').count(), params.len().saturating_sub(1));

    // V1.
    let to_sign = v1::string_to_sign(method, &params);
    assert_eq!(
        to_sign,
        format!(
            "{}&%2F&{}",
            method.to_ascii_uppercase(),
            percent_encode(&query)
        )
    );
    let signature = v1::sign(method, &params, secret);
    assert_eq!(signature.len(), 28, "{signature}");
    assert_eq!(signature, v1::sign(method, &reversed, secret));

    // V3.
    let payload = sha256_hex(body.as_bytes());
    let input = v3::CanonicalInput {
        method,
        uri,
        query: &params,
        headers: &headers,
        payload_sha256: &payload,
    };
    let (canonical, signed_headers) = v3::canonical_request(&input);
    assert!(canonical.starts_with(&format!("{}\n{uri}\n", method.to_ascii_uppercase())));
    assert!(canonical.ends_with(&format!("\n{signed_headers}\n{payload}")));
    let expected_signature = v3::signature(&v3::string_to_sign(&canonical), secret);
    assert_eq!(expected_signature.len(), 64);
    let authorization = v3::authorization(&input, access_key_id, secret);
    let parsed = v3::parse_authorization(&authorization);
    if is_token(access_key_id) && !headers.is_empty() && headers.iter().all(|(k, _)| is_token(k)) {
        let parsed = parsed.unwrap_or_else(|e| panic!("{authorization:?}: {e}"));
        let mut names: Vec<String> = headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        names.sort();
        assert_eq!(parsed.access_key_id, access_key_id);
        assert_eq!(parsed.signed_headers, names, "{authorization:?}");
        assert_eq!(parsed.signature, expected_signature);
    }

    assert_eq!(
        constant_time_eq(method, access_key_id),
        method == access_key_id
    );
    assert!(constant_time_eq(secret, secret));
});
