//! Request authentication as the real gateway does it: signature V3
//! (`ACS3-HMAC-SHA256`) or V1 (HMAC-SHA1), timestamp window, nonce replay,
//! STS security tokens and key expiry.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use alibabacloud_signature::{constant_time_eq, percent_encode, sha256_hex, v1, v3};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::iam::{Credential, Identities};
use crate::request::ApiRequest;

/// How far a request's timestamp may be from the server clock.
pub(crate) const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// How long nonces are remembered: a request is accepted while its timestamp
/// is within [`MAX_CLOCK_SKEW`] either way, so it could be replayed for up to
/// twice that.
pub(crate) const NONCE_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Upper bound on remembered nonces; beyond it the oldest are forgotten early.
pub(crate) const NONCE_CAPACITY: usize = 200_000;

/// Headers every V3 request must sign (the V3 document's common headers).
const V3_REQUIRED_SIGNED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// Parameters every V1 request must carry, in the order they are checked.
const V1_REQUIRED: [&str; 6] = [
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
];

/// Verifies the request's signature and returns the credential that signed it.
pub(crate) fn authenticate(
    request: &ApiRequest,
    identities: &Identities,
    nonces: &mut NonceCache,
    now: OffsetDateTime,
) -> Result<Arc<Credential>, ApiError> {
    match request.header("authorization") {
        Some(authorization) => verify_v3(request, authorization, identities, nonces, now),
        None => verify_v1(request, identities, nonces, now),
    }
}

fn verify_v3(
    request: &ApiRequest,
    authorization: &str,
    identities: &Identities,
    nonces: &mut NonceCache,
    now: OffsetDateTime,
) -> Result<Arc<Credential>, ApiError> {
    let auth =
        v3::parse_authorization(authorization).map_err(|e| ApiError::incomplete_signature(&e))?;
    for required in V3_REQUIRED_SIGNED {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(ApiError::incomplete_signature(&format!(
                "The header {required} must be signed."
            )));
        }
    }
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = request.header(name).ok_or_else(|| {
            ApiError::incomplete_signature(&format!("The signed header {name} is missing."))
        })?;
        headers.push((name.clone(), value.to_string()));
    }
    let header = |name: &str| request.header(name).unwrap_or_default();
    check_timestamp("x-acs-date", header("x-acs-date"), now)?;
    let credential = identities
        .get(&auth.access_key_id)
        .ok_or_else(ApiError::access_key_not_found)?;
    check_security_token(&credential, request.header("x-acs-security-token"), now)?;
    let content_sha256 = header("x-acs-content-sha256");
    if !content_sha256.eq_ignore_ascii_case(&sha256_hex(&request.body)) {
        return Err(ApiError::content_sha256_mismatch());
    }

    let input = v3::CanonicalInput {
        method: request.method.as_str(),
        uri: &request.path,
        query: &request.query,
        headers: &headers,
        payload_sha256: content_sha256,
    };
    let (canonical, _) = v3::canonical_request(&input);
    let string_to_sign = v3::string_to_sign(&canonical);
    let matches = |canonical: &str| {
        let expected = v3::signature(&v3::string_to_sign(canonical), &credential.secret);
        constant_time_eq(&expected, &auth.signature)
    };
    let verified = matches(&canonical)
        || raw_name_canonical_request(&canonical, &request.query).is_some_and(|c| matches(&c));
    if !verified {
        return Err(ApiError::signature_does_not_match(&string_to_sign));
    }
    if !nonces.insert(
        &credential.access_key_id,
        header("x-acs-signature-nonce"),
        now,
    ) {
        return Err(ApiError::nonce_used());
    }
    Ok(credential)
}

/// The Python SDK (tea-openapi 0.4.6) percent-encodes query values but not
/// names in its V3 canonical query. For names where that differs, this is the
/// canonical request it signs: `canonical` with its query line rebuilt.
pub(crate) fn raw_name_canonical_request(
    canonical: &str,
    query: &[(String, String)],
) -> Option<String> {
    if query.iter().all(|(k, _)| percent_encode(k) == *k) {
        return None;
    }
    let mut pairs: Vec<(&str, String)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), percent_encode(v)))
        .collect();
    pairs.sort();
    let raw_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut lines = canonical.splitn(4, '\n');
    let (method, uri, _, rest) = (lines.next()?, lines.next()?, lines.next()?, lines.next()?);
    Some(format!("{method}\n{uri}\n{raw_query}\n{rest}"))
}

fn verify_v1(
    request: &ApiRequest,
    identities: &Identities,
    nonces: &mut NonceCache,
    now: OffsetDateTime,
) -> Result<Arc<Credential>, ApiError> {
    let mut required = [""; V1_REQUIRED.len()];
    for (slot, name) in required.iter_mut().zip(V1_REQUIRED) {
        *slot = request
            .param(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing_parameter(name))?;
    }
    let [access_key_id, signature, method, version, nonce, timestamp] = required;
    if method != "HMAC-SHA1" {
        return Err(ApiError::incomplete_signature(
            "SignatureMethod must be HMAC-SHA1.",
        ));
    }
    if version != "1.0" {
        return Err(ApiError::incomplete_signature(
            "SignatureVersion must be 1.0.",
        ));
    }
    check_timestamp("Timestamp", timestamp, now)?;
    let credential = identities
        .get(access_key_id)
        .ok_or_else(ApiError::access_key_not_found)?;
    check_security_token(&credential, request.param("SecurityToken"), now)?;

    // The signature covers the query and the form body as one set.
    let params: Vec<(&str, &str)> = request
        .query
        .iter()
        .chain(&request.form)
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let method = request.method.as_str();
    let expected = v1::sign(method, &params, &credential.secret);
    // A client that forgot to percent-encode the signature sent its `+` raw,
    // which form decoding turned into a space.
    let sent = signature.replace(' ', "+");
    if !constant_time_eq(&expected, &sent) {
        return Err(ApiError::signature_does_not_match(&v1::string_to_sign(
            method, &params,
        )));
    }
    if !nonces.insert(&credential.access_key_id, nonce, now) {
        return Err(ApiError::nonce_used());
    }
    Ok(credential)
}

fn check_timestamp(name: &str, value: &str, now: OffsetDateTime) -> Result<(), ApiError> {
    let at = OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| ApiError::illegal_timestamp(name, value))?;
    if (now - at).abs() > MAX_CLOCK_SKEW {
        return Err(ApiError::timestamp_expired(value));
    }
    Ok(())
}

fn check_security_token(
    credential: &Credential,
    sent: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    match (&credential.security_token, sent.filter(|t| !t.is_empty())) {
        (Some(_), None) => return Err(ApiError::security_token_malformed()),
        (Some(want), Some(got)) if !constant_time_eq(want, got) => {
            return Err(ApiError::security_token_mismatch());
        }
        (None, Some(_)) => return Err(ApiError::security_token_mismatch()),
        _ => {}
    }
    if credential.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::security_token_expired());
    }
    Ok(())
}

/// Nonces seen recently (on the emulator's clock), per access key, with
/// bounded memory.
pub(crate) struct NonceCache {
    window: time::Duration,
    capacity: usize,
    seen: HashSet<Arc<str>>,
    order: VecDeque<(OffsetDateTime, Arc<str>)>,
}

impl NonceCache {
    pub fn new(window: std::time::Duration, capacity: usize) -> Self {
        NonceCache {
            window: time::Duration::try_from(window).unwrap_or(time::Duration::MAX),
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records the nonce; `false` if `access_key_id` already used it within the window.
    pub fn insert(&mut self, access_key_id: &str, nonce: &str, now: OffsetDateTime) -> bool {
        let key: Arc<str> = format!("{access_key_id}\n{nonce}").into();
        while let Some((at, _)) = self.order.front() {
            if now - *at <= self.window && self.order.len() < self.capacity {
                break;
            }
            let (_, old) = self.order.pop_front().expect("front exists");
            self.seen.remove(&old);
        }
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back((now, key));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nonces_are_refused_once_and_forgotten_after_the_window() {
        let mut cache = NonceCache::new(Duration::from_secs(60), 10);
        let t0 = OffsetDateTime::now_utc();
        assert!(cache.insert("ak", "n1", t0));
        assert!(!cache.insert("ak", "n1", t0 + Duration::from_secs(59)));
        assert!(cache.insert("other", "n1", t0), "nonces are per access key");
        assert!(cache.insert("ak", "n1", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn nonce_memory_is_bounded() {
        let mut cache = NonceCache::new(Duration::from_secs(3600), 3);
        let now = OffsetDateTime::now_utc();
        for n in ["a", "b", "c", "d"] {
            assert!(cache.insert("ak", n, now));
        }
        assert_eq!(cache.seen.len(), 3);
        assert!(cache.insert("ak", "a", now), "the oldest was evicted");
        assert!(!cache.insert("ak", "d", now));
    }

    #[test]
    fn timestamps_are_checked_for_format_and_skew() {
        let now = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        assert!(check_timestamp("Timestamp", "2024-01-02T03:18:05Z", now).is_ok());
        assert!(check_timestamp("Timestamp", "2024-01-02T02:50:05Z", now).is_ok());
        let expired = check_timestamp("Timestamp", "2024-01-02T03:20:06Z", now).unwrap_err();
        assert_eq!(expired.code, "InvalidTimeStamp.Expired");
        let illegal = check_timestamp("x-acs-date", "yesterday", now).unwrap_err();
        assert_eq!(illegal.code, "IllegalTimestamp");
        assert!(illegal.message.contains("x-acs-date"));
    }

    #[test]
    fn raw_name_variant_only_when_names_need_encoding() {
        let plain = vec![("SecretName".to_string(), "a b".to_string())];
        assert!(raw_name_canonical_request("POST\n/\nq\nh", &plain).is_none());
        let odd = vec![("a b".to_string(), "x y".to_string())];
        assert_eq!(
            raw_name_canonical_request("POST\n/\na%20b=x%20y\nh:1\n\nh\nabc", &odd).unwrap(),
            "POST\n/\na b=x%20y\nh:1\n\nh\nabc"
        );
    }
}
