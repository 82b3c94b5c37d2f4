//! JSON Web Tokens as `AssumeRoleWithOIDC` receives them: minting
//! kubelet-like service-account tokens for tests, and reading them back.
//!
//! The emulator checks a token's claims (`iss`, `aud`, `exp`, `nbf`, `sub`)
//! against the OIDC provider and the role. It checks the signature only when
//! the provider has an `hmac_key`: then the token must be `HS256` with that
//! key. Without a key the signature is ignored, so unsigned tokens from
//! [`mint`] (`alg: none`) and real RS256 tokens are read alike.
//!
//! ```
//! use alibabacloud_emulator::jwt::{self, Claims};
//! use std::time::Duration;
//!
//! let claims = Claims::service_account("https://oidc.example", "team-a", "app")
//!     .expiring_in(Duration::from_secs(600));
//! let unsigned = jwt::mint(&claims, None);
//! let signed = jwt::mint(&claims, Some("hmac-key"));
//! assert_eq!(unsigned.split('.').count(), 3);
//! assert_eq!(jwt::decode(&signed).unwrap().1.sub, "system:serviceaccount:team-a:app");
//! ```

use std::time::Duration;

use alibabacloud_signature::{constant_time_eq, v3};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::seed::STS_AUDIENCE;

/// base64url without padding on output; padding tolerated on input.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The claims of a token. Unknown claims are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the OIDC provider's issuer URL.
    pub iss: String,
    /// Subject, e.g. `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Audiences; written as a list (as Kubernetes does), read from a list
    /// or a single string.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Any other claims (`kubernetes.io`, `jti`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(deserializer)? {
        Aud::One(a) => vec![a],
        Aud::Many(list) => list,
    })
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Claims {
    /// `iss`, `sub` and one audience, issued now, valid for an hour.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let now = unix_now();
        Claims {
            iss: issuer.into(),
            sub: subject.into(),
            aud: vec![audience.into()],
            exp: now + 3600,
            iat: Some(now),
            nbf: Some(now),
            extra: Map::new(),
        }
    }

    /// What the kubelet projects for a pod's service account with audience
    /// `sts.aliyuncs.com`: `sub` `system:serviceaccount:<ns>:<name>` and the
    /// `kubernetes.io` claim naming the namespace and service account.
    pub fn service_account(issuer: impl Into<String>, namespace: &str, name: &str) -> Self {
        let mut claims = Claims::new(
            issuer,
            format!("system:serviceaccount:{namespace}:{name}"),
            STS_AUDIENCE,
        );
        let uid = uuid::Uuid::new_v4().to_string();
        claims.extra.insert(
            "kubernetes.io".into(),
            json!({
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            }),
        );
        claims.extra.insert(
            "jti".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        claims
    }

    /// Adds the pod to the `kubernetes.io` claim, as a pod-bound token has it.
    pub fn for_pod(mut self, pod_name: &str) -> Self {
        let entry = self
            .extra
            .entry("kubernetes.io")
            .or_insert_with(|| json!({}));
        if let Value::Object(map) = entry {
            map.insert(
                "pod".into(),
                json!({"name": pod_name, "uid": uuid::Uuid::new_v4().to_string()}),
            );
        }
        self
    }

    /// Replaces the audiences.
    pub fn with_audiences<S: Into<String>>(
        mut self,
        audiences: impl IntoIterator<Item = S>,
    ) -> Self {
        self.aud = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Moves `exp`, `iat` and `nbf` by `seconds`: claims made on the wall
    /// clock, restated on a clock that many seconds ahead.
    pub(crate) fn shifted(mut self, seconds: i64) -> Self {
        self.exp = self.exp.saturating_add(seconds);
        self.iat = self.iat.map(|t| t.saturating_add(seconds));
        self.nbf = self.nbf.map(|t| t.saturating_add(seconds));
        self
    }

    /// Expires `ttl` from now.
    pub fn expiring_in(mut self, ttl: Duration) -> Self {
        self.exp = unix_now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self
    }

    /// Expired `ago` ago (issued an hour before that).
    pub fn expired_since(mut self, ago: Duration) -> Self {
        let ago = i64::try_from(ago.as_secs()).unwrap_or(0);
        self.exp = unix_now() - ago;
        self.iat = Some(self.exp - 3600);
        self.nbf = self.iat;
        self
    }

    /// Sets `nbf` (not before), seconds since the epoch.
    pub fn not_before(mut self, at: i64) -> Self {
        self.nbf = Some(at);
        self
    }

    /// Adds or replaces another claim.
    pub fn with_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }
}

/// Encodes `claims` as a compact JWT: `HS256` with `hmac_key`, else unsigned
/// (`alg: none`, empty signature part).
pub fn mint(claims: &Claims, hmac_key: Option<&str>) -> String {
    let header = match hmac_key {
        Some(_) => json!({"alg": "HS256", "typ": "JWT"}),
        None => json!({"alg": "none", "typ": "JWT"}),
    };
    let payload = serde_json::to_vec(claims).expect("claims serialise");
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(payload)
    );
    let signature = hmac_key.map_or_else(String::new, |key| hs256(&signing_input, key));
    format!("{signing_input}.{signature}")
}

/// The base64url HMAC-SHA256 of `input` under `key`.
fn hs256(input: &str, key: &str) -> String {
    // The signature crate computes HMAC-SHA256 as lowercase hex.
    let hex = v3::signature(input, key);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from the signer"))
        .collect();
    B64URL.encode(bytes)
}

/// Why a token could not be read; the messages are the real STS ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error("The number of Jwt field should be divided into 3 parts with '.' .")]
    Parts,
    /// A part is not base64url.
    #[error("Cannot decode base64 encoded response(format invalided).")]
    Base64,
    /// Header or claims are not the JSON expected.
    #[error("The Jwt content is invalid that cannot be recognized.")]
    Content,
}

/// Splits and decodes a compact JWT into its header and claims, without
/// checking anything else.
pub fn decode(token: &str) -> Result<(Value, Claims), JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, _signature] = parts[..] else {
        return Err(JwtError::Parts);
    };
    let header = B64URL.decode(header).map_err(|_| JwtError::Base64)?;
    let payload = B64URL.decode(payload).map_err(|_| JwtError::Base64)?;
    let header: Value = serde_json::from_slice(&header).map_err(|_| JwtError::Content)?;
    if !header.is_object() {
        return Err(JwtError::Content);
    }
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Content)?;
    Ok((header, claims))
}

/// The outcome of checking a token's HS256 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureCheck {
    Valid,
    /// The header names another algorithm.
    WrongAlgorithm,
    Invalid,
}

/// Checks `token`'s HS256 signature under `key`.
pub(crate) fn verify_hs256(token: &str, header: &Value, key: &str) -> SignatureCheck {
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return SignatureCheck::WrongAlgorithm;
    }
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return SignatureCheck::Invalid;
    };
    // Compare the canonical unpadded encodings.
    let sent = signature.trim_end_matches('=');
    if constant_time_eq(&hs256(signing_input, key), sent) {
        SignatureCheck::Valid
    } else {
        SignatureCheck::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_is_base64url_hmac_sha256() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        // is f7bc83f4...2d1a3cd8 (the Wikipedia HMAC example).
        assert_eq!(
            hs256("The quick brown fox jumps over the lazy dog", "key"),
            "97yD9DBThCSxMpjmqm-xQ-9NWaFJRhdZl0edvC0aPNg"
        );
    }

    #[test]
    fn minted_tokens_decode_and_verify() {
        let claims = Claims::service_account("https://issuer", "ns", "sa")
            .for_pod("pod-1")
            .with_audiences(["a", "b"]);
        let token = mint(&claims, Some("k"));
        let (header, decoded) = decode(&token).unwrap();
        assert_eq!(decoded, claims);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(verify_hs256(&token, &header, "k"), SignatureCheck::Valid);
        assert_eq!(
            verify_hs256(&token, &header, "other"),
            SignatureCheck::Invalid
        );
        assert_eq!(decoded.extra["kubernetes.io"]["pod"]["name"], "pod-1");

        let unsigned = mint(&claims, None);
        assert!(unsigned.ends_with('.'));
        let (header, _) = decode(&unsigned).unwrap();
        assert_eq!(header["alg"], "none");
        assert_eq!(
            verify_hs256(&unsigned, &header, "k"),
            SignatureCheck::WrongAlgorithm
        );
    }

    #[test]
    fn malformed_tokens_are_named() {
        assert_eq!(decode("abc").unwrap_err(), JwtError::Parts);
        assert_eq!(decode("a.b.c.d").unwrap_err(), JwtError::Parts);
        assert_eq!(decode("!!.e30.").unwrap_err(), JwtError::Base64);
        let not_json = format!("{}.{}.", B64URL.encode("{}"), B64URL.encode("nope"));
        assert_eq!(decode(&not_json).unwrap_err(), JwtError::Content);
        let no_exp = format!(
            "{}.{}.",
            B64URL.encode("{}"),
            B64URL.encode(r#"{"iss":"i","sub":"s","aud":"a"}"#)
        );
        assert_eq!(decode(&no_exp).unwrap_err(), JwtError::Content);
    }

    #[test]
    fn a_single_audience_may_be_a_string() {
        let token = format!(
            "{}.{}.",
            B64URL.encode("{}"),
            B64URL.encode(r#"{"iss":"i","sub":"s","aud":"one","exp":1}"#)
        );
        assert_eq!(decode(&token).unwrap().1.aud, ["one"]);
    }
}
