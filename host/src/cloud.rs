//! The Alibaba Cloud API client: signs RPC-style calls (V3 `ACS3-HMAC-SHA256`),
//! sends them over one shared connection pool, retries throttling and
//! temporary failures with jittered exponential backoff inside the caller's
//! deadline, and maps POP error bodies to typed errors.

pub mod endpoint;
pub mod kms_instance_ca;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alibabacloud_signature::{EMPTY_SHA256, canonical_query, v3};
use rand::Rng as _;

use crate::config;
use crate::http::BodyError;
pub use crate::http::CaBundleError;
use crate::spc::Sensitive;
use endpoint::{Endpoint, EndpointResolver};

/// One RPC-style API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// Product code, e.g. `kms`.
    pub product: String,
    /// API name, e.g. `GetSecretValue`.
    pub action: String,
    /// API version, e.g. `2016-01-20`.
    pub version: String,
    /// Query parameters.
    pub parameters: Vec<(String, String)>,
    /// Requested endpoint, checked against the network policy.
    pub endpoint: Option<String>,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The JSON body.
    pub body: Vec<u8>,
    /// The service's request id.
    pub request_id: String,
}

/// An error answer from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status.
    pub http_status: u16,
    /// `Code` of the error body.
    pub code: String,
    /// `Message` of the error body, with secrets removed.
    pub message: String,
    /// `RequestId`.
    pub request_id: String,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error (after retries, if retryable).
    #[error("{} {} (HTTP {}, request id {})", .0.code, .0.message, .0.http_status, .0.request_id)]
    Service(ServiceError),
    /// The call was not sent: endpoint not allowed or request malformed.
    #[error("{0}")]
    Denied(String),
    /// Timed out (per attempt or by the Mount's deadline).
    #[error("{0}")]
    Timeout(String),
    /// Connection or read failure.
    #[error("{0}")]
    Transport(String),
}

impl ApiError {
    /// Whether the client tries the call again (within the deadline).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ApiError::Service(e) => is_retryable_code(&e.code, e.http_status),
            ApiError::Transport(_) => true,
            ApiError::Timeout(_) | ApiError::Denied(_) => false,
        }
    }
}

/// Error codes that mean "try again later" (KMS, OOS, STS and generic POP):
/// the rule the plugin SDK uses too ([`alibabacloud_api_errors`]).
pub fn is_retryable_code(code: &str, http_status: u16) -> bool {
    alibabacloud_api_errors::is_retryable(code, http_status)
}

/// Counters of the client's work, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct CloudStats {
    /// Calls made by plugins.
    pub calls: AtomicU64,
    /// HTTP attempts (calls plus retries).
    pub attempts: AtomicU64,
    /// Calls that ended in an error.
    pub failures: AtomicU64,
}

/// The shared client.
#[derive(Debug)]
pub struct CloudClient {
    /// System roots plus `cloud.ca_file`: every endpoint but KMS instances.
    http: reqwest::Client,
    /// Per region, the built-in CA of KMS instances plus `cloud.ca_file`,
    /// built at the first call to an instance of that region.
    kms_instance_http: std::sync::Mutex<std::collections::HashMap<&'static str, reqwest::Client>>,
    /// The certificates of `cloud.ca_file`.
    extra_roots: Vec<reqwest::Certificate>,
    /// Fixed DNS answers (tests).
    resolve: Vec<(String, std::net::SocketAddr)>,
    endpoints: EndpointResolver,
    settings: config::Cloud,
    stats: CloudStats,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Why the cloud client cannot be built (start-up).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An endpoint setting.
    #[error(transparent)]
    Endpoint(#[from] endpoint::SettingError),
    /// `cloud.ca_file` cannot be read or holds no certificate.
    #[error("cloud.ca_file: {0}")]
    CaFile(#[source] CaBundleError),
    /// The TLS stack refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl CloudClient {
    /// Builds the client: one connection pool for every call of the process
    /// (and one per region for dedicated KMS instances, whose CA is built in).
    pub fn new(
        settings: &config::Cloud,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<CloudClient, ClientError> {
        CloudClient::with_resolve(settings, env, Vec::new())
    }

    /// [`CloudClient::new`], with the addresses of some hosts fixed instead
    /// of looked up (as curl's `--resolve`; a port other than 0 replaces the
    /// URL's). For tests: a KMS instance host name on a local TLS front.
    pub fn with_resolve(
        settings: &config::Cloud,
        env: impl IntoIterator<Item = (String, String)>,
        resolve: Vec<(String, std::net::SocketAddr)>,
    ) -> Result<CloudClient, ClientError> {
        let endpoints = EndpointResolver::new(settings, env)?;
        if let Some(problem) = endpoints.problem() {
            tracing::warn!("{problem}: every STS call fails (as upstream's did)");
        }
        let extra_roots = if settings.ca_file.is_empty() {
            Vec::new()
        } else {
            crate::http::read_ca_bundle(settings.ca_file.as_ref()).map_err(ClientError::CaFile)?
        };
        let http = CloudClient::builder(settings, &resolve)
            .tls_certs_merge(extra_roots.iter().cloned())
            .build()
            .map_err(ClientError::Http)?;
        Ok(CloudClient {
            http,
            kms_instance_http: Default::default(),
            extra_roots,
            resolve,
            endpoints,
            settings: settings.clone(),
            stats: CloudStats::default(),
            metrics: crate::metrics::Metrics::detached(),
        })
    }

    /// The settings every HTTP client of the cloud API shares; the roots are
    /// the caller's.
    fn builder(
        settings: &config::Cloud,
        resolve: &[(String, std::net::SocketAddr)],
    ) -> reqwest::ClientBuilder {
        let mut builder = crate::http::client_builder()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "csi-secrets-store-provider-alibabacloud/",
                env!("CARGO_PKG_VERSION")
            ));
        for (host, addr) in resolve {
            builder = builder.resolve(host, *addr);
        }
        builder
    }

    /// The HTTP client for a call to `endpoint` for a Mount in `region`, and
    /// the hint for a server certificate that it does not trust.
    fn http_for(
        &self,
        endpoint: &Endpoint,
        region: &str,
    ) -> Result<(reqwest::Client, String), ApiError> {
        use kms_instance_ca::Trust;
        match kms_instance_ca::trust_for(&endpoint.host, region) {
            Trust::System => {
                let hint = if kms_instance_ca::is_kms_instance_host(&endpoint.host) {
                    format!(
                        "cloud.ca_file (no KMS instance CA is built in for region {region:?}: is the Mount's region, parameters.region or --region, the instance's?)"
                    )
                } else {
                    "cloud.ca_file".to_string()
                };
                Ok((self.http.clone(), hint))
            }
            Trust::KmsInstance { region, pem } => {
                let hint = format!(
                    "cloud.ca_file (this endpoint trusts the built-in CA of KMS instances in {region}, the Mount's region, and cloud.ca_file: is the instance in {region}?)"
                );
                let mut clients = self
                    .kms_instance_http
                    .lock()
                    .expect("KMS instance clients lock");
                if let Some(client) = clients.get(region) {
                    return Ok((client.clone(), hint));
                }
                let built_in = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                    ApiError::Denied(format!("the built-in CA of KMS instances in {region}: {e}"))
                })?;
                // Only the region's CA (and the operator's), as upstream: a
                // public CA never vouches for a KMS instance.
                let client = CloudClient::builder(&self.settings, &self.resolve)
                    .tls_certs_only(
                        std::iter::once(built_in).chain(self.extra_roots.iter().cloned()),
                    )
                    .build()
                    .map_err(|e| {
                        ApiError::Denied(format!(
                            "cannot build the HTTP client for KMS instances in {region}: {e}"
                        ))
                    })?;
                clients.insert(region, client.clone());
                Ok((client, hint))
            }
        }
    }

    /// The client's counters.
    pub fn stats(&self) -> &CloudStats {
        &self.stats
    }

    /// Counts into `metrics` (the provider's) instead of a set of its own.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> CloudClient {
        self.metrics = metrics;
        self
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Signs and sends `call` with `credentials` for `region`, retrying
    /// retryable errors while `deadline` allows.
    pub async fn call(
        &self,
        call: &ApiCall,
        credentials: &Credentials,
        region: &str,
        deadline: Instant,
    ) -> Result<ApiResponse, ApiError> {
        self.call_as(call, Auth::Signed(credentials), region, deadline)
            .await
    }

    /// Sends `call` signed or anonymously, retrying retryable errors while
    /// `deadline` allows.
    pub async fn call_as(
        &self,
        call: &ApiCall,
        auth: Auth<'_>,
        region: &str,
        deadline: Instant,
    ) -> Result<ApiResponse, ApiError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.call_with_retries(call, auth, region, deadline).await;
        if result.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        let code = result.as_ref().err().map(|error| match error {
            ApiError::Service(e) => e.code.as_str(),
            ApiError::Denied(_) => "denied",
            ApiError::Timeout(_) => "timeout",
            ApiError::Transport(_) => "transport",
        });
        self.metrics
            .backend_call(&call.product, &call.action, code, started.elapsed());
        result
    }

    async fn call_with_retries(
        &self,
        call: &ApiCall,
        auth: Auth<'_>,
        region: &str,
        deadline: Instant,
    ) -> Result<ApiResponse, ApiError> {
        let endpoint = self
            .endpoints
            .resolve(&call.product, region, call.endpoint.as_deref())
            .map_err(|e| ApiError::Denied(e.to_string()))?;
        let what = format!("{} {}", call.product.to_ascii_uppercase(), call.action);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(ApiError::Timeout(format!(
                    "{what} was not sent: the Mount's deadline has passed"
                )));
            }
            let budget = self.settings.request_timeout.min(deadline - now);
            self.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let result =
                match tokio::time::timeout(budget, self.send_once(&endpoint, region, call, auth))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(ApiError::Timeout(format!(
                        "{what} to {} did not answer within {budget:?}",
                        endpoint.authority()
                    ))),
                };
            let error = match result {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            if let ApiError::Service(e) = &error
                && crate::metrics::is_throttling(&e.code, e.http_status)
            {
                self.metrics.backend_throttled(&call.product, &call.action);
            }
            if !error.is_retryable() || attempt >= self.settings.max_attempts {
                return Err(error);
            }
            let backoff = self.backoff(attempt);
            if Instant::now() + backoff >= deadline {
                return Err(error);
            }
            tracing::debug!(
                product = %call.product,
                action = %call.action,
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                error = %error,
                "retrying a retryable error"
            );
            self.metrics.backend_retry(&call.product, &call.action);
            tokio::time::sleep(backoff).await;
        }
    }

    /// Full jitter: uniform in [0, min(max, initial * 2^(attempt-1))].
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .settings
            .initial_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(self.settings.max_backoff);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    async fn send_once(
        &self,
        endpoint: &Endpoint,
        region: &str,
        call: &ApiCall,
        auth: Auth<'_>,
    ) -> Result<ApiResponse, ApiError> {
        let (http, ca_hint) = self.http_for(endpoint, region)?;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let request = match auth {
            Auth::Signed(credentials) => {
                let signed = sign_v3(endpoint, call, credentials, &now_iso8601(), &nonce);
                let mut request = http.post(&signed.url);
                for (name, value) in &signed.headers {
                    if name != "host" {
                        request = request.header(name.as_str(), value.as_str());
                    }
                }
                request
            }
            Auth::Anonymous { .. } => {
                // The RPC layout without signature, as the credentials tools
                // send AssumeRoleWithOIDC: common parameters in the query,
                // API parameters (the token is long) in a form body.
                let common = [
                    ("Action", call.action.as_str()),
                    ("Version", call.version.as_str()),
                    ("Format", "JSON"),
                    ("Timestamp", &now_iso8601()),
                    ("SignatureNonce", &nonce),
                ];
                let url = format!("{}?{}", endpoint.base_url(), canonical_query(&common));
                let body: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(call.parameters.iter())
                    .finish();
                http.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        let response = request.send().await.map_err(|e| {
            ApiError::Transport(format!(
                "{} {} to {}: {}{}",
                call.product.to_ascii_uppercase(),
                call.action,
                endpoint.authority(),
                crate::http::transport_cause(&e),
                crate::http::certificate_hint(&e, &ca_hint)
            ))
        })?;
        let status = response.status().as_u16();
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = crate::http::read_capped(response, self.settings.max_response_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { .. } => format!("{e} (config key cloud.max_response_bytes)"),
                BodyError::TimedOut | BodyError::Read(_) => e.to_string(),
            })
            .map_err(|e| {
                ApiError::Transport(format!(
                    "{} {}: reading the response from {}: {e}",
                    call.product.to_ascii_uppercase(),
                    call.action,
                    endpoint.authority()
                ))
            })?;
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let field = |names: &[&str]| {
            json.as_ref()
                .and_then(|j| names.iter().find_map(|n| j.get(*n)))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let request_id = field(&["RequestId", "requestId"]).unwrap_or(header_request_id);
        if (200..300).contains(&status) {
            return Ok(ApiResponse { body, request_id });
        }
        let code = field(&["Code", "code"]).unwrap_or_else(|| format!("HTTP{status}"));
        let message = field(&["Message", "message"])
            .unwrap_or_else(|| "the service answered with an error and no error body".to_string());
        Err(ApiError::Service(ServiceError {
            http_status: status,
            message: sanitize_message(&message, auth),
            code,
            request_id,
        }))
    }
}

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// Signed (V3) with these credentials.
    Signed(&'a Credentials),
    /// Unsigned (STS `AssumeRoleWithOIDC`); API parameters go in a form
    /// body. `redact` lists values (the OIDC token) that must never appear in
    /// an error.
    Anonymous {
        /// Values to remove from error messages.
        redact: &'a [&'a str],
    },
}

/// Removes what must not reach an event: the service's echo of the string to
/// sign (which holds the security token) and any copy of the secret or token.
fn sanitize_message(message: &str, auth: Auth<'_>) -> String {
    let lower = message.to_ascii_lowercase();
    let cut = lower.find("string to sign").map_or(message, |i| {
        message[..i]
            .trim_end_matches([' ', ':', ','])
            .trim_end_matches("server")
            .trim_end()
    });
    let mut text = match auth {
        Auth::Signed(credentials) => credentials.redact(cut),
        Auth::Anonymous { redact } => redact
            .iter()
            .filter(|secret| secret.len() >= 4)
            .fold(cut.to_string(), |text, secret| {
                text.replace(secret, "<redacted>")
            }),
    };
    if text.len() > 512 {
        let mut end = 512;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A signed request, ready to send.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Full URL with the canonical query.
    pub url: String,
    /// Headers to send (lowercase names), `host` included for reference.
    pub headers: Vec<(String, String)>,
}

/// Signs `call` with V3 for `endpoint` at `date` with `nonce`.
pub fn sign_v3(
    endpoint: &Endpoint,
    call: &ApiCall,
    credentials: &Credentials,
    date: &str,
    nonce: &str,
) -> SignedRequest {
    let mut headers = vec![
        ("host".to_string(), endpoint.authority()),
        ("x-acs-action".to_string(), call.action.clone()),
        ("x-acs-version".to_string(), call.version.clone()),
        ("x-acs-date".to_string(), date.to_string()),
        ("x-acs-signature-nonce".to_string(), nonce.to_string()),
        ("x-acs-content-sha256".to_string(), EMPTY_SHA256.to_string()),
    ];
    if let Some(token) = &credentials.security_token {
        headers.push(("x-acs-security-token".to_string(), token.0.clone()));
    }
    let authorization = v3::authorization(
        &v3::CanonicalInput {
            method: "POST",
            uri: "/",
            query: &call.parameters,
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        },
        &credentials.access_key_id,
        &credentials.access_key_secret.0,
    );
    headers.push(("authorization".to_string(), authorization));
    let query = canonical_query(&call.parameters);
    let url = if query.is_empty() {
        endpoint.base_url()
    } else {
        format!("{}?{query}", endpoint.base_url())
    };
    SignedRequest { url, headers }
}

/// The current UTC time as `yyyy-MM-ddTHH:mm:ssZ`.
pub fn now_iso8601() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// An access key, optionally with an STS security token.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not secret; may be logged).
    pub access_key_id: String,
    /// The access key secret.
    pub access_key_secret: Sensitive<String>,
    /// The STS security token, for temporary credentials.
    pub security_token: Option<Sensitive<String>>,
    /// Which link of the chain produced them (for logs).
    pub source: &'static str,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .field("security_token", &self.security_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Replaces any occurrence of the secret or the token in `text`, as a
    /// last line of defence for messages that echo a request.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in [Some(&self.access_key_secret), self.security_token.as_ref()]
            .into_iter()
            .flatten()
        {
            if secret.0.len() >= 4 {
                out = out.replace(secret.0.as_str(), "<redacted>");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: if token.is_some() {
                "STS.fakeid"
            } else {
                "testid"
            }
            .into(),
            access_key_secret: Sensitive(
                if token.is_some() {
                    "stssecret"
                } else {
                    "testsecret"
                }
                .into(),
            ),
            security_token: token.map(|t| Sensitive(t.into())),
            source: "test",
        }
    }

    fn kms_host() -> Endpoint {
        Endpoint {
            scheme: endpoint::Scheme::Https,
            host: "kms.cn-hangzhou.aliyuncs.com".into(),
            port: None,
        }
    }

    // The reference's computed V3 vectors, produced through our request builder.
    #[test]
    fn signed_requests_match_the_reference_vectors() {
        let call = ApiCall {
            product: "kms".into(),
            action: "GetSecretValue".into(),
            version: "2016-01-20".into(),
            parameters: vec![
                ("SecretName".into(), "my-secret".into()),
                ("VersionStage".into(), "ACSCurrent".into()),
            ],
            endpoint: None,
        };
        let signed = sign_v3(
            &kms_host(),
            &call,
            &creds(None),
            "2024-01-02T03:04:05Z",
            "fixed-nonce-0001",
        );
        assert_eq!(
            signed.url,
            "https://kms.cn-hangzhou.aliyuncs.com/?SecretName=my-secret&VersionStage=ACSCurrent"
        );
        let auth = &signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(
            auth.ends_with(
                "Signature=95efe376ea8cb26d8e92a18098fe8711d7d6eedb1b1f048da559eff36eaf3c9c"
            ),
            "{auth}"
        );

        let sts_call = ApiCall {
            parameters: vec![("SecretName".into(), "my-secret".into())],
            ..call
        };
        // The reference vector also signs x-acs-accesskey-id (the Python SDK
        // sends it); we do not, so check our own header set verifies instead.
        let signed = sign_v3(
            &kms_host(),
            &sts_call,
            &creds(Some("CAIS-token/+=")),
            "2024-01-02T03:04:05Z",
            "n",
        );
        let auth = &signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        let parsed = v3::parse_authorization(auth).unwrap();
        assert!(
            parsed
                .signed_headers
                .contains(&"x-acs-security-token".to_string())
        );
        let headers: Vec<(String, String)> = signed
            .headers
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect();
        let (request, _) = v3::canonical_request(&v3::CanonicalInput {
            method: "POST",
            uri: "/",
            query: &sts_call.parameters,
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        });
        assert_eq!(
            parsed.signature,
            v3::signature(&v3::string_to_sign(&request), "stssecret")
        );
    }

    #[test]
    fn query_values_are_percent_encoded_like_the_signature() {
        let call = ApiCall {
            product: "oos".into(),
            action: "GetSecretParameter".into(),
            version: "2019-06-01".into(),
            parameters: vec![("Name".into(), "db/pass word".into())],
            endpoint: None,
        };
        let signed = sign_v3(
            &kms_host(),
            &call,
            &creds(None),
            "2024-01-02T03:04:05Z",
            "n",
        );
        assert!(
            signed.url.ends_with("?Name=db%2Fpass%20word"),
            "{}",
            signed.url
        );
    }

    #[test]
    fn messages_lose_the_string_to_sign_and_secrets() {
        let c = creds(Some("CAIS-secret-token"));
        let m = sanitize_message(
            "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DSTS.fakeid%26SecurityToken%3DCAIS-secret-token",
            Auth::Signed(&c),
        );
        assert_eq!(
            m,
            "Specified signature is not matched with our calculation."
        );
        assert_eq!(
            sanitize_message("echo CAIS-secret-token", Auth::Signed(&c)),
            "echo <redacted>"
        );
        assert!(sanitize_message(&"x".repeat(2000), Auth::Signed(&c)).len() < 600);
        assert_eq!(
            sanitize_message(
                "bad token eyJhbGciOi.x.y",
                Auth::Anonymous {
                    redact: &["eyJhbGciOi.x.y"]
                }
            ),
            "bad token <redacted>"
        );
    }

    #[test]
    fn retryable_codes() {
        for (code, status) in [
            ("Rejected.Throttling", 429),
            ("ServiceUnavailableTemporary", 503),
            ("InternalFailure", 500),
            ("Throttling.User", 400),
            ("X", 503),
        ] {
            assert!(is_retryable_code(code, status), "{code}");
        }
        for (code, status) in [
            ("Forbidden.ResourceNotFound", 404),
            ("SignatureDoesNotMatch", 400),
            ("Forbidden.NoPermission", 403),
        ] {
            assert!(!is_retryable_code(code, status), "{code}");
        }
    }

    #[test]
    fn kms_instance_endpoints_get_a_client_per_region_with_its_ca() {
        let client = CloudClient::new(&config::Cloud::default(), std::iter::empty()).unwrap();
        let endpoint = |host: &str| Endpoint {
            scheme: endpoint::Scheme::Https,
            host: host.into(),
            port: None,
        };
        let instance = endpoint("kst-hzz1.cryptoservice.kms.aliyuncs.com");
        let count = || client.kms_instance_http.lock().unwrap().len();
        let (_, hint) = client.http_for(&instance, "cn-hangzhou").unwrap();
        assert!(
            hint.contains("built-in CA of KMS instances in cn-hangzhou"),
            "{hint}"
        );
        client.http_for(&instance, "cn-hangzhou").unwrap();
        assert_eq!(count(), 1, "built once per region");
        client.http_for(&instance, "cn-shanghai").unwrap();
        assert_eq!(count(), 2);
        let (_, hint) = client.http_for(&instance, "xx-test-1").unwrap();
        assert!(
            hint.contains("no KMS instance CA is built in for region \"xx-test-1\""),
            "{hint}"
        );
        let (_, hint) = client
            .http_for(&endpoint("kms-vpc.cn-hangzhou.aliyuncs.com"), "cn-hangzhou")
            .unwrap();
        assert_eq!(hint, "cloud.ca_file");
        assert_eq!(count(), 2, "the shared client serves the rest");
    }

    #[test]
    fn backoff_is_bounded() {
        let settings = config::Cloud {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..config::Cloud::default()
        };
        let client = CloudClient::new(&settings, std::iter::empty()).unwrap();
        for attempt in 1..20 {
            assert!(client.backoff(attempt) <= Duration::from_millis(300));
        }
        assert!(client.backoff(1) <= Duration::from_millis(100));
    }

    #[test]
    fn iso8601_shape() {
        let now = now_iso8601();
        assert_eq!(now.len(), 20);
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }
}
