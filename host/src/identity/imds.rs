//! ECS instance metadata client: the node's region and its RAM role's
//! credentials, over IMDSv2 tokens with an IMDSv1 fallback.
//!
//! Settings follow the official SDKs' variables (`ALIBABA_CLOUD_ECS_METADATA`,
//! `ALIBABA_CLOUD_ECS_METADATA_DISABLED`, `ALIBABA_CLOUD_IMDSV1_DISABLED`).
//! Unlike the SDKs, which ask for a token before every GET, one token is kept
//! and reused until shortly before its TTL runs out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use super::Credentials;
use crate::net::{BaseUrl, ClearText};
use crate::region::Region;
use crate::spc::Sensitive;

/// The metadata server's address on every ECS instance.
pub const DEFAULT_BASE_URL: &str = "http://100.100.100.200";
/// Names the instance's RAM role, which skips discovery.
pub const ENV_ROLE_NAME: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// `true` turns the metadata server off for this process.
pub const ENV_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
/// `true` forbids token-less (IMDSv1) requests.
pub const ENV_IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";
/// The IMDSv2 token lifetime we ask for (the largest allowed, as the SDKs do).
pub const TOKEN_TTL_SECONDS: u64 = 21600;

/// A token is replaced this long before its TTL ends, so that a GET never
/// races the server's expiry.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(300);
const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const REGION_PATH: &str = "/latest/meta-data/region-id";
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";
/// Which link produced the credentials (see [`ImdsCredentials::role_name`]
/// for the role).
const SOURCE: &str = "ECS RAM role";

/// How to reach the metadata server and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsSettings {
    /// Base URL, `http://100.100.100.200` on ECS (`identity.metadata_url`,
    /// parsed by `Identity::metadata_base_url`).
    pub base_url: BaseUrl,
    /// The RAM role name from `ALIBABA_CLOUD_ECS_METADATA` (skips discovery).
    pub role_name: Option<String>,
    /// `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`: every call fails.
    pub disabled: bool,
    /// `ALIBABA_CLOUD_IMDSV1_DISABLED=true`: no token-less fallback.
    pub imds_v1_disabled: bool,
    /// TCP connect timeout (the SDKs use 1 s).
    pub connect_timeout: Duration,
    /// Timeout of each read (the SDKs use 1 s); a whole request is bounded
    /// by `connect_timeout + 2 × read_timeout`.
    pub read_timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
}

impl Default for ImdsSettings {
    fn default() -> Self {
        ImdsSettings {
            base_url: BaseUrl::parse(DEFAULT_BASE_URL, ClearText::Allowed)
                .expect("the default metadata URL is a base URL"),
            role_name: None,
            disabled: false,
            imds_v1_disabled: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl ImdsSettings {
    /// Defaults, with the SDK variables read through `lookup` (tests pass a
    /// map). Flags are on only for `true` (any case), as in the SDKs.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> ImdsSettings {
        let flag = |name: &str| {
            let value = lookup(name).unwrap_or_default();
            let value = value.trim();
            let on = value.eq_ignore_ascii_case("true");
            if !on && !value.is_empty() && !value.eq_ignore_ascii_case("false") {
                tracing::warn!(
                    variable = name,
                    value,
                    "ignored: only \"true\" turns this setting on"
                );
            }
            on
        };
        ImdsSettings {
            role_name: lookup(ENV_ROLE_NAME)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            disabled: flag(ENV_DISABLED),
            imds_v1_disabled: flag(ENV_IMDSV1_DISABLED),
            ..ImdsSettings::default()
        }
    }
}

/// Why a metadata call failed. Messages name the step and the cause, never a
/// token or a secret, and can go into a pod event as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImdsError {
    /// Turned off by the environment; no request was made.
    #[error("the ECS metadata server is disabled by {}=true", ENV_DISABLED)]
    Disabled,
    /// The settings are unusable.
    #[error("ECS metadata settings: {0}")]
    Config(String),
    /// The token request failed and token-less requests are forbidden.
    #[error(
        "ECS metadata, {step}: the IMDSv2 token request failed ({cause}) and IMDSv1 is disabled by {}=true",
        ENV_IMDSV1_DISABLED
    )]
    TokenRequired {
        /// What was being read.
        step: String,
        /// Why the token request failed.
        cause: String,
    },
    /// The server refuses token-less requests and no token could be had.
    #[error(
        "ECS metadata, {step}: the instance accepts only IMDSv2 (a request without a token got HTTP 403), but the IMDSv2 token request failed: {cause}"
    )]
    V2Only {
        /// What was being read.
        step: String,
        /// Why the token request failed.
        cause: String,
    },
    /// The instance has no RAM role.
    #[error("ECS metadata: no RAM role attached to this instance")]
    NoRole,
    /// The metadata server did not answer (connect error or timeout).
    #[error("ECS metadata, {step}: {cause}")]
    Unreachable {
        /// What was being read.
        step: String,
        /// The transport error.
        cause: String,
    },
    /// The server answered with an error or something unusable.
    #[error("ECS metadata, {step}: {cause}")]
    Failed {
        /// What was being read.
        step: String,
        /// What was wrong.
        cause: String,
    },
}

/// Why no IMDSv2 token could be had. Messages never hold the token.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    /// The request failed: no connection, no answer in time, or a broken one.
    #[error("{message}")]
    Transport {
        /// The server and what went wrong ([`ImdsClient::describe`]).
        message: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// HTTP 404.
    #[error("HTTP 404: the metadata server offers no IMDSv2 tokens")]
    NotOffered,
    /// HTTP 403.
    #[error("HTTP 403: the token request was refused")]
    Refused,
    /// Another status than 200, 403 or 404.
    #[error("HTTP {0}")]
    Status(u16),
    /// The answer could not be read.
    #[error(transparent)]
    Body(#[from] crate::http::BodyError),
    /// Not UTF-8 (no source: `FromUtf8Error` would carry the token's bytes).
    #[error("the token is not UTF-8")]
    NotUtf8,
    /// Empty.
    #[error("the server answered an empty token")]
    Empty,
    /// Unusable as a header value.
    #[error("the token has characters not allowed in an HTTP header")]
    NotHeaderValue,
}

/// Why the credentials JSON cannot be used ([`parse_credentials`]). Names a
/// field, never its value (except `Code`, which is not secret).
#[derive(Debug, thiserror::Error)]
enum AnswerError {
    /// Not JSON. The parser's error has a position and a reason, no input
    /// (the body is parsed into a `Value`, which accepts any type).
    #[error("the answer is not JSON (line {}, column {})", .0.line(), .0.column())]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("the answer is not a JSON object")]
    NotObject,
    /// `Code` other than `Success` (quoted and shortened).
    #[error("the server answered Code {0}, not \"Success\"")]
    Code(String),
    /// No `Code` string.
    #[error("the answer has no Code (expected \"Success\")")]
    NoCode,
    /// A field is an empty string.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A field is not a string.
    #[error("{0} is not a string")]
    NotString(&'static str),
    /// A field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A field cannot go into a header or the string to sign.
    #[error("{0} has characters other than visible ASCII")]
    NotVisibleAscii(&'static str),
}

/// The instance role's credentials as the metadata server gave them.
#[derive(Debug, Clone)]
pub struct ImdsCredentials {
    /// The access key, secret and STS token (source `ECS RAM role`).
    pub credentials: Credentials,
    /// `Expiration` as sent (`yyyy-MM-ddTHH:mm:ssZ`), for the cache to parse.
    pub expiration: String,
    /// The RAM role's name.
    pub role_name: String,
}

/// Counters of the client's requests, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ImdsStats {
    /// `PUT /latest/api/token` requests.
    pub token_requests: AtomicU64,
    /// GET requests (with or without a token; retries included).
    pub requests: AtomicU64,
    /// GET requests sent without a token (IMDSv1).
    pub v1_requests: AtomicU64,
}

/// A kept IMDSv2 token.
struct Token {
    value: Sensitive<String>,
    renew_at: Instant,
}

/// How the GETs of one operation authenticate.
enum Access {
    Token(Sensitive<String>),
    /// Token-less; keeps why the token request failed, for a later 403.
    V1 {
        token_failure: TokenError,
    },
}

/// A client of the ECS instance metadata server.
pub struct ImdsClient {
    settings: ImdsSettings,
    base: String,
    http: reqwest::Client,
    /// Held across the token PUT, so concurrent callers share one request.
    token: tokio::sync::Mutex<Option<Token>>,
    warned_v1: AtomicBool,
    stats: ImdsStats,
    /// Why `ALIBABA_CLOUD_ECS_METADATA` cannot be used, if it cannot.
    role_problem: Option<String>,
}

impl std::fmt::Debug for ImdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImdsClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ImdsClient {
    /// Builds the client (the base URL was checked when it was parsed, by
    /// `contract::net::BaseUrl`). A role name that is not one
    /// does not stop start-up (upstream started with it): see
    /// [`ImdsClient::problem`]; every request for role credentials then fails
    /// with it, and nothing is sent.
    pub fn new(settings: ImdsSettings) -> Result<ImdsClient, ImdsError> {
        let base = settings.base_url.as_str().to_string();
        let role_problem = match &settings.role_name {
            Some(role) if !is_role_name(role) => Some(format!(
                "{ENV_ROLE_NAME}={} is not a RAM role name (1 to 64 letters, digits, '.', '-' or '_'), so the ECS RAM role's credentials are not requested",
                printable(role)
            )),
            _ => None,
        };
        let http = crate::http::client_builder()
            // The metadata address must never be sent to a proxy: the proxy
            // would get the instance's credentials, and answer for its own host.
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .timeout(settings.connect_timeout + settings.read_timeout * 2)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(2)
            .user_agent(concat!(
                "csi-secrets-store-provider-alibabacloud/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ImdsError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ImdsClient {
            settings,
            base,
            http,
            token: tokio::sync::Mutex::new(None),
            warned_v1: AtomicBool::new(false),
            stats: ImdsStats::default(),
            role_problem,
        })
    }

    /// A setting that makes every request for role credentials fail, for a
    /// warning at start-up.
    pub fn problem(&self) -> Option<&str> {
        self.role_problem.as_deref()
    }

    /// The settings in use.
    pub fn settings(&self) -> &ImdsSettings {
        &self.settings
    }

    /// The client's counters.
    pub fn stats(&self) -> &ImdsStats {
        &self.stats
    }

    /// The instance's region (`/latest/meta-data/region-id`).
    pub async fn region(&self) -> Result<Region, ImdsError> {
        let step = "region-id";
        let mut access = self.access(step).await?;
        let body = self
            .get(REGION_PATH, step, &mut access)
            .await?
            .ok_or_else(|| ImdsError::Failed {
                step: step.into(),
                cause: "HTTP 404 Not Found".into(),
            })?;
        let region = body.trim();
        Region::parse(region).map_err(|_| ImdsError::Failed {
            step: step.into(),
            cause: format!("the server answered {}, not a region id", printable(region)),
        })
    }

    /// The instance RAM role's credentials: the role from
    /// `ALIBABA_CLOUD_ECS_METADATA` or discovered, then its credentials.
    pub async fn role_credentials(&self) -> Result<ImdsCredentials, ImdsError> {
        if let Some(problem) = &self.role_problem {
            return Err(ImdsError::Config(problem.clone()));
        }
        let mut access = self.access("RAM role credentials").await?;
        let role = match &self.settings.role_name {
            Some(role) => role.clone(),
            None => self.discover_role(&mut access).await?,
        };
        let step = format!("credentials of RAM role {role}");
        let body = self
            .get(&format!("{ROLE_PATH}{role}"), &step, &mut access)
            .await?
            .ok_or_else(|| ImdsError::Failed {
                step: step.clone(),
                cause: format!(
                    "HTTP 404: the role is not attached to this instance{}",
                    if self.settings.role_name.is_some() {
                        format!(" (check {ENV_ROLE_NAME})")
                    } else {
                        String::new()
                    }
                ),
            })?;
        let (credentials, expiration) =
            parse_credentials(&body).map_err(|cause| ImdsError::Failed {
                step: step.clone(),
                cause: cause.to_string(),
            })?;
        tracing::debug!(
            role = %role,
            access_key_id = %credentials.access_key_id,
            expiration = %expiration,
            "ECS RAM role credentials from the metadata server"
        );
        Ok(ImdsCredentials {
            credentials,
            expiration,
            role_name: role,
        })
    }

    async fn discover_role(&self, access: &mut Access) -> Result<String, ImdsError> {
        let step = "RAM role name";
        let body = self
            .get(ROLE_PATH, step, access)
            .await?
            .ok_or(ImdsError::NoRole)?;
        let role = body.lines().next().unwrap_or_default().trim();
        if role.is_empty() {
            return Err(ImdsError::NoRole);
        }
        if !is_role_name(role) {
            return Err(ImdsError::Failed {
                step: step.into(),
                cause: format!("the server answered {}, not a role name", printable(role)),
            });
        }
        Ok(role.to_string())
    }

    /// Decides how one operation's GETs authenticate: a token if one can be
    /// had, else IMDSv1 unless it is disabled.
    async fn access(&self, step: &str) -> Result<Access, ImdsError> {
        if self.settings.disabled {
            return Err(ImdsError::Disabled);
        }
        match self.token(None).await {
            Ok(token) => Ok(Access::Token(token)),
            Err(cause) if self.settings.imds_v1_disabled => Err(ImdsError::TokenRequired {
                step: step.into(),
                cause: cause.to_string(),
            }),
            Err(cause) => {
                // Once at warn (it is a setting of the instance, not an
                // incident), then at debug.
                if !self.warned_v1.swap(true, Ordering::Relaxed) {
                    tracing::warn!(cause = %cause, "IMDSv2 token unavailable; using IMDSv1 (set ALIBABA_CLOUD_IMDSV1_DISABLED=true to forbid)");
                } else {
                    tracing::debug!(cause = %cause, "IMDSv2 token unavailable; using IMDSv1");
                }
                Ok(Access::V1 {
                    token_failure: cause,
                })
            }
        }
    }

    /// The kept token, or a new one when there is none, it is near its end,
    /// or it is `rejected` (the server answered 401 to it).
    async fn token(&self, rejected: Option<&str>) -> Result<Sensitive<String>, TokenError> {
        let mut slot = self.token.lock().await;
        if let (Some(rejected), Some(kept)) = (rejected, slot.as_ref())
            && kept.value.0 == rejected
        {
            *slot = None;
        }
        let now = Instant::now();
        if let Some(kept) = slot.as_ref().filter(|t| t.renew_at > now) {
            return Ok(Sensitive(kept.value.0.clone()));
        }
        *slot = None;
        // Measured from before the request, so the server's clock for the
        // TTL never starts earlier than ours.
        let requested_at = Instant::now();
        let value = self.put_token().await?;
        let ttl = Duration::from_secs(TOKEN_TTL_SECONDS);
        *slot = Some(Token {
            value: Sensitive(value.clone()),
            renew_at: requested_at + ttl.saturating_sub(TOKEN_RENEW_MARGIN),
        });
        Ok(Sensitive(value))
    }

    async fn put_token(&self) -> Result<String, TokenError> {
        self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .put(format!("{}{TOKEN_PATH}", self.base))
            .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS.to_string())
            .send()
            .await
            .map_err(|source| TokenError::Transport {
                message: self.describe(&source),
                source,
            })?;
        let status = response.status();
        tracing::debug!(status = status.as_u16(), "IMDSv2 token request");
        if status != StatusCode::OK {
            return Err(match status.as_u16() {
                404 => TokenError::NotOffered,
                403 => TokenError::Refused,
                code => TokenError::Status(code),
            });
        }
        let body = crate::http::read_capped(response, self.settings.max_body_bytes).await?;
        let token = String::from_utf8(body)
            .map_err(|_| TokenError::NotUtf8)?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if HeaderValue::from_str(&token).is_err() {
            return Err(TokenError::NotHeaderValue);
        }
        Ok(token)
    }

    /// One GET (`None`: HTTP 404); on a 401 to a kept token, retries once
    /// with a new token.
    async fn get(
        &self,
        path: &str,
        step: &str,
        access: &mut Access,
    ) -> Result<Option<String>, ImdsError> {
        let mut renewed = false;
        loop {
            let mut request = self.http.get(format!("{}{path}", self.base));
            if let Access::Token(token) = &*access {
                request = request.header(TOKEN_HEADER, token.0.as_str());
            } else {
                self.stats.v1_requests.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = request.send().await.map_err(|e| ImdsError::Unreachable {
                step: step.into(),
                cause: self.describe(&e),
            })?;
            let status = response.status();
            tracing::debug!(
                step,
                status = status.as_u16(),
                with_token = matches!(access, Access::Token(_)),
                "metadata request"
            );
            match (status.as_u16(), &*access) {
                (200, _) => {
                    let body = crate::http::read_capped(response, self.settings.max_body_bytes)
                        .await
                        .map_err(|cause| ImdsError::Failed {
                            step: step.into(),
                            cause: cause.to_string(),
                        })?;
                    return String::from_utf8(body)
                        .map(Some)
                        .map_err(|_| ImdsError::Failed {
                            step: step.into(),
                            cause: "the answer is not UTF-8 text".into(),
                        });
                }
                (404, _) => return Ok(None),
                (401, Access::Token(rejected)) if !renewed => {
                    // The server forgot our token (restart, or its clock ran
                    // ahead): one retry with a new one.
                    tracing::debug!(step, "IMDSv2 token rejected; requesting a new one");
                    let fresh =
                        self.token(Some(&rejected.0))
                            .await
                            .map_err(|cause| ImdsError::Failed {
                                step: step.into(),
                                cause: format!(
                                    "the IMDSv2 token was rejected (HTTP 401) and a new one could not be had: {cause}"
                                ),
                            })?;
                    *access = Access::Token(fresh);
                    renewed = true;
                }
                (401, Access::Token(_)) => {
                    return Err(ImdsError::Failed {
                        step: step.into(),
                        cause: "HTTP 401: the metadata server rejected a new IMDSv2 token".into(),
                    });
                }
                (403, Access::V1 { token_failure }) => {
                    return Err(ImdsError::V2Only {
                        step: step.into(),
                        cause: token_failure.to_string(),
                    });
                }
                (code, _) => {
                    return Err(ImdsError::Failed {
                        step: step.into(),
                        cause: match status.canonical_reason() {
                            Some(reason) => format!("HTTP {code} {reason}"),
                            None => format!("HTTP {code}"),
                        },
                    });
                }
            }
        }
    }

    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            format!(
                "{} did not answer in time (connect timeout {:?}, read timeout {:?})",
                self.base, self.settings.connect_timeout, self.settings.read_timeout
            )
        } else if error.is_connect() {
            format!(
                "cannot connect to {}: {}",
                self.base,
                crate::http::transport_cause(error)
            )
        } else {
            format!("{}: {}", self.base, crate::http::transport_cause(error))
        }
    }
}

/// A RAM role name: 1 to 64 of letters, digits, `.`, `-`, `_`, and not only
/// dots (the name becomes a path segment).
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.bytes().all(|b| b == b'.')
}

/// Text from a server or the environment, quoted and bounded for a message.
fn printable(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// The credentials JSON → credentials and the raw `Expiration`. Errors name
/// the field, never its value (except `Code`, which is not secret).
fn parse_credentials(body: &str) -> Result<(Credentials, String), AnswerError> {
    // Through `Value`, not a typed struct: serde's type errors can quote the
    // offending value, and that value could be the secret.
    let json: serde_json::Value = serde_json::from_str(body).map_err(AnswerError::NotJson)?;
    let Some(object) = json.as_object() else {
        return Err(AnswerError::NotObject);
    };
    let field = |name: &'static str| -> Result<String, AnswerError> {
        match object.get(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(serde_json::Value::String(_)) => Err(AnswerError::Empty(name)),
            Some(_) => Err(AnswerError::NotString(name)),
            None => Err(AnswerError::Missing(name)),
        }
    };
    match object.get("Code") {
        Some(serde_json::Value::String(code)) if code == "Success" => {}
        Some(serde_json::Value::String(code)) => {
            return Err(AnswerError::Code(printable(code)));
        }
        _ => return Err(AnswerError::NoCode),
    }
    let access_key_id = field("AccessKeyId")?;
    let access_key_secret = field("AccessKeySecret")?;
    let security_token = field("SecurityToken")?;
    let expiration = field("Expiration")?;
    // They go into HTTP headers and the string to sign.
    for (name, value) in [
        ("AccessKeyId", &access_key_id),
        ("AccessKeySecret", &access_key_secret),
        ("SecurityToken", &security_token),
        ("Expiration", &expiration),
    ] {
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AnswerError::NotVisibleAscii(name));
        }
    }
    Ok((
        Credentials {
            access_key_id,
            access_key_secret: Sensitive(access_key_secret),
            security_token: Some(Sensitive(security_token)),
            source: SOURCE,
        },
        expiration,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_url(text: &str) -> BaseUrl {
        BaseUrl::parse(text, ClearText::Allowed).unwrap()
    }
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use crate::identity::test_env as env;

    const GOOD: &str = r#"{"AccessKeyId":"STS.id","AccessKeySecret":"sekret-value","Expiration":"2024-11-08T09:44:50Z","SecurityToken":"CAIStoken-value","LastUpdated":"2024-11-08T03:44:50Z","Code":"Success"}"#;

    #[test]
    fn settings_come_from_the_sdk_variables() {
        let s = ImdsSettings::from_env(env(&[]));
        assert_eq!(s, ImdsSettings::default());
        assert_eq!(s.base_url, "http://100.100.100.200");
        assert_eq!(s.connect_timeout, Duration::from_secs(1));
        let s = ImdsSettings::from_env(env(&[
            (ENV_ROLE_NAME, " node-role \n"),
            (ENV_DISABLED, "TRUE"),
            (ENV_IMDSV1_DISABLED, "true"),
        ]));
        assert_eq!(s.role_name.as_deref(), Some("node-role"));
        assert!(s.disabled && s.imds_v1_disabled);
        let s = ImdsSettings::from_env(env(&[
            (ENV_ROLE_NAME, "  "),
            (ENV_DISABLED, "1"),
            (ENV_IMDSV1_DISABLED, "false"),
        ]));
        assert_eq!(s.role_name, None);
        assert!(!s.disabled && !s.imds_v1_disabled);
    }

    #[test]
    fn credentials_are_parsed_and_checked() {
        let (c, expiration) = parse_credentials(GOOD).unwrap();
        assert_eq!(c.access_key_id, "STS.id");
        assert_eq!(c.access_key_secret.0, "sekret-value");
        assert_eq!(c.security_token.as_ref().unwrap().0, "CAIStoken-value");
        assert_eq!(c.source, "ECS RAM role");
        assert_eq!(expiration, "2024-11-08T09:44:50Z");

        let failed = GOOD.replace("\"Success\"", "\"Failed\"");
        assert_eq!(
            parse_credentials(&failed).unwrap_err().to_string(),
            "the server answered Code \"Failed\", not \"Success\""
        );
        for (body, want) in [
            (GOOD.replace(",\"Code\":\"Success\"", ""), "no Code"),
            (
                GOOD.replace("\"AccessKeySecret\":\"sekret-value\",", ""),
                "AccessKeySecret is missing",
            ),
            (
                GOOD.replace("\"sekret-value\"", "\"\""),
                "AccessKeySecret is empty",
            ),
            (
                GOOD.replace("\"CAIStoken-value\"", "42"),
                "SecurityToken is not a string",
            ),
            (
                GOOD.replace("sekret-value", "sekret value"),
                "AccessKeySecret has characters",
            ),
            ("sekret-value".to_string(), "not JSON"),
            ("[1]".to_string(), "not a JSON object"),
        ] {
            let error = parse_credentials(&body).unwrap_err().to_string();
            assert!(error.contains(want), "{error}");
            assert!(
                !error.contains("sekret") && !error.contains("CAIS"),
                "{error}"
            );
        }
    }

    #[test]
    fn names_and_urls_are_validated() {
        for ok in [
            "node",
            "KubernetesWorkerRole-1a2b",
            "a.b_c-d",
            &"r".repeat(64),
        ] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a%2f", &"r".repeat(65), "rôle"] {
            assert!(!is_role_name(bad), "{bad}");
        }
        // The base URL's rule is `contract::net::BaseUrl`'s (tested there).
        assert_eq!(ImdsSettings::default().base_url, "http://100.100.100.200");
    }

    #[tokio::test]
    async fn a_role_name_that_is_not_one_fails_each_request_not_start_up() {
        // Upstream started with it and failed at the node role only; and
        // "../admin" must never reach the metadata path.
        let client = ImdsClient::new(ImdsSettings {
            base_url: base_url("http://127.0.0.1:9"),
            role_name: Some("../admin".into()),
            ..ImdsSettings::default()
        })
        .unwrap();
        let problem = client.problem().unwrap().to_string();
        assert!(problem.contains(ENV_ROLE_NAME), "{problem}");
        let error = client.role_credentials().await.unwrap_err();
        assert_eq!(error, ImdsError::Config(problem));
        assert_eq!(client.stats().requests.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn disabled_fails_without_a_request() {
        let client = ImdsClient::new(ImdsSettings {
            disabled: true,
            ..ImdsSettings::default()
        })
        .unwrap();
        assert_eq!(client.region().await.unwrap_err(), ImdsError::Disabled);
        let error = client.role_credentials().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the ECS metadata server is disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"
        );
        assert_eq!(client.stats().token_requests.load(Ordering::Relaxed), 0);
        assert_eq!(client.stats().requests.load(Ordering::Relaxed), 0);
    }

    /// One scripted answer: status, body.
    type Script = Arc<std::sync::Mutex<Vec<(u16, String)>>>;

    /// A one-answer-per-connection HTTP server that records request heads
    /// and plays `script` in order (for cases the emulator cannot produce).
    async fn scripted(
        answers: Vec<(u16, &str)>,
    ) -> (String, Script, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script: Script = Arc::new(std::sync::Mutex::new(
            answers
                .into_iter()
                .rev()
                .map(|(s, b)| (s, b.to_string()))
                .collect(),
        ));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (script2, seen2) = (script.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                seen2
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_string());
                let (status, body) = script2
                    .lock()
                    .unwrap()
                    .pop()
                    .unwrap_or((500, String::new()));
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        (url, script, seen)
    }

    fn client_for(url: &str) -> ImdsClient {
        ImdsClient::new(ImdsSettings {
            base_url: base_url(url),
            ..ImdsSettings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once() {
        let (url, _, seen) = scripted(vec![
            (200, "tok-1"),
            (401, ""),
            (200, "tok-2"),
            (200, "cn-beijing"),
            (200, "cn-beijing"),
        ])
        .await;
        let client = client_for(&url);
        assert_eq!(client.region().await.unwrap(), "cn-beijing");
        // The new token is kept for the next call: no third PUT.
        assert_eq!(client.region().await.unwrap(), "cn-beijing");
        let seen = seen.lock().unwrap();
        let heads: Vec<String> = seen.iter().map(|h| h.to_ascii_lowercase()).collect();
        assert!(heads[0].starts_with("put /latest/api/token"));
        assert!(heads[0].contains("x-aliyun-ecs-metadata-token-ttl-seconds: 21600"));
        assert!(heads[1].contains("x-aliyun-ecs-metadata-token: tok-1"));
        assert!(heads[2].starts_with("put "));
        assert!(heads[3].contains("x-aliyun-ecs-metadata-token: tok-2"));
        assert!(heads[4].contains("x-aliyun-ecs-metadata-token: tok-2"));
        assert_eq!(heads.len(), 5);
    }

    #[tokio::test]
    async fn a_second_401_is_an_error_without_the_token() {
        let (url, _, _) =
            scripted(vec![(200, "tok-1"), (401, ""), (200, "tok-2"), (401, "")]).await;
        let error = client_for(&url).region().await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("region-id") && text.contains("401"), "{text}");
        assert!(!text.contains("tok-"), "{text}");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_region_id_is_refused() {
        // `Region`'s one rule: no trailing '-' (a DNS label of endpoints).
        let (url, _, _) = scripted(vec![(200, "tok-1"), (200, "cn-\n")]).await;
        let error = client_for(&url).region().await.unwrap_err().to_string();
        assert!(
            error.contains("the server answered \"cn-\", not a region id"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn redirects_and_large_bodies_are_refused() {
        let big = "x".repeat(70 * 1024);
        let (url, _, seen) = scripted(vec![(404, ""), (302, ""), (404, ""), (200, &big)]).await;
        let client = client_for(&url);
        let error = client.region().await.unwrap_err().to_string();
        assert!(error.contains("HTTP 302"), "{error}");
        let error = client.region().await.unwrap_err().to_string();
        assert!(error.contains("larger than 65536 bytes"), "{error}");
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = ImdsClient::new(ImdsSettings {
            base_url: base_url(&url),
            read_timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_millis(100),
            imds_v1_disabled: true,
            ..ImdsSettings::default()
        })
        .unwrap();
        let started = Instant::now();
        let error = client.region().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(error, ImdsError::TokenRequired { .. }), "{error}");
        assert!(
            error.to_string().contains("did not answer in time"),
            "{error}"
        );
        hold.abort();
    }
}
