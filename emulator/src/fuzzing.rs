//! Entry points for the fuzz targets in `fuzz/`: the crate-private request
//! decoding and signature verification, reachable without starting a
//! server. Not a stable API; hidden from the docs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use time::OffsetDateTime;

use crate::auth::{self, NonceCache};
use crate::iam::Identities;
use crate::request::ApiRequest;
use crate::seed::AccessKey;

/// A decoded request, as the handlers and verifiers see it.
#[derive(Debug)]
pub struct Request(ApiRequest);

/// Builds a request from raw parts the way the server receives one: the
/// method, URI and each header must first be accepted by the `http` crate
/// (as hyper does before axum sees anything); a header it refuses is left
/// out, a method or URI it refuses gives `None`.
pub fn request(
    method: &[u8],
    uri: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> Option<Request> {
    let method = Method::from_bytes(method).ok()?;
    let uri: Uri = uri.parse().ok()?;
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    Some(Request(ApiRequest::new(
        method,
        &uri,
        map,
        Bytes::copy_from_slice(body),
    )))
}

impl Request {
    /// The decoded query parameters.
    pub fn query(&self) -> &[(String, String)] {
        &self.0.query
    }

    /// The decoded form-body parameters.
    pub fn form(&self) -> &[(String, String)] {
        &self.0.form
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// A parameter from the query, else from the form body.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.0.param(name)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }

    /// The API name.
    pub fn action(&self) -> Option<&str> {
        self.0.action()
    }

    /// The API version.
    pub fn version(&self) -> Option<&str> {
        self.0.version()
    }

    /// The `HostId` of error envelopes.
    pub fn host_id(&self) -> &str {
        self.0.host_id()
    }
}

/// Form-decodes `text` (`+` is a space) as the query and form bodies are.
pub fn decode_form(text: &str) -> Vec<(String, String)> {
    crate::request::decode_form(text)
}

/// The gateway's signature check with a fixed set of access keys and its
/// own nonce memory.
pub struct Verifier {
    identities: Identities,
    nonces: std::sync::Mutex<NonceCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

/// Why [`Verifier::authenticate`] refused a request: the API error code and
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// E.g. `SignatureDoesNotMatch`.
    pub code: String,
    /// The message the client is sent.
    pub message: String,
}

impl Verifier {
    /// Accepts the given access keys.
    pub fn new(keys: &[AccessKey]) -> Self {
        Verifier {
            identities: Identities::from_access_keys(keys),
            nonces: std::sync::Mutex::new(NonceCache::new(Duration::from_secs(1800), 1024)),
        }
    }

    /// Verifies `request` (V3 if it has an `Authorization` header, else V1)
    /// at `now_unix` (seconds); returns the AccessKeyId that signed it.
    pub fn authenticate(&self, request: &Request, now_unix: i64) -> Result<String, Refusal> {
        let now = OffsetDateTime::from_unix_timestamp(now_unix).map_err(|e| Refusal {
            code: "FuzzClock".into(),
            message: e.to_string(),
        })?;
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        auth::authenticate(&request.0, &self.identities, &mut nonces, now)
            .map(|credential: Arc<_>| credential.access_key_id.clone())
            .map_err(|e| Refusal {
                code: e.code,
                message: e.message,
            })
    }
}

/// The canonical request the Python SDK signs when query names need
/// encoding (`None` when they do not).
pub fn raw_name_canonical_request(canonical: &str, query: &[(String, String)]) -> Option<String> {
    auth::raw_name_canonical_request(canonical, query)
}

/// Checks an HS256 token's signature: `None` if the header names another
/// algorithm, else whether it is valid under `key`.
pub fn verify_hs256(token: &str, header: &serde_json::Value, key: &str) -> Option<bool> {
    match crate::jwt::verify_hs256(token, header, key) {
        crate::jwt::SignatureCheck::Valid => Some(true),
        crate::jwt::SignatureCheck::Invalid => Some(false),
        crate::jwt::SignatureCheck::WrongAlgorithm => None,
    }
}
