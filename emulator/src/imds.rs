//! The ECS instance metadata server (`http://100.100.100.200`) on its own
//! listener: IMDSv2 tokens, region/instance/zone ids, and the instance RAM
//! role's credentials, issued as temporary identities with the role's
//! permissions.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /latest/api/token` + `X-aliyun-ecs-metadata-token-ttl-seconds: 1..21600` | the token (400 bad TTL, 403 with `X-Forwarded-For`, 404 when tokens are unavailable) |
//! | `GET /latest/meta-data/region-id`, `instance-id`, `zone-id`, `owner-account-id` | text |
//! | `GET /latest/meta-data/ram/security-credentials/` | the role name (404 without a role) |
//! | `GET /latest/meta-data/ram/security-credentials/<role>` | credentials JSON |
//!
//! GETs may carry `X-aliyun-ecs-metadata-token` (unknown or expired: 401);
//! without one they get 403 in hardened mode. Credentials are reused until
//! half their lifetime has passed (or they were expired on purpose), then
//! replaced, as the real server rotates them ahead of expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alibabacloud_signature::constant_time_eq;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::api::format_time;
use crate::iam::{CredentialSource, IssueRequest, IssuedCredential};
use crate::seed::{ImdsSeed, Seed};
use crate::server::{AppState, State as EmulatorState};
use crate::stats::ImdsStatsRecorder;

/// Lifetime of the instance role's credentials (the real server's are
/// about six hours), unless a lifetime knob says otherwise.
pub const IMDS_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// Largest token TTL, in seconds.
const MAX_TOKEN_TTL: u64 = 21600;

/// Beyond this many outstanding tokens, expired ones are forgotten.
const TOKEN_SWEEP_THRESHOLD: usize = 10_000;

const TOKEN_PATH: &str = "/latest/api/token";
const META: &str = "/latest/meta-data/";
const CREDENTIALS: &str = "/latest/meta-data/ram/security-credentials";

/// How the metadata server behaves; changeable at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImdsMode {
    /// Hardened (IMDSv2-only): GETs without a token get 403.
    #[serde(default)]
    pub hardened: bool,
    /// The token endpoint answers 404, as a server without IMDSv2 would.
    #[serde(default)]
    pub tokens_unavailable: bool,
}

impl ImdsMode {
    fn from_seed(seed: &ImdsSeed) -> Self {
        ImdsMode {
            hardened: seed.hardened,
            tokens_unavailable: seed.tokens_unavailable,
        }
    }
}

/// The metadata server's state.
pub(crate) struct Imds {
    region: String,
    instance_id: String,
    zone_id: String,
    account_id: Option<String>,
    role_arn: Option<String>,
    mode: ImdsMode,
    /// Token → when it expires (on the emulator's clock).
    tokens: HashMap<String, OffsetDateTime>,
    /// The credentials currently handed out, per lower-cased role ARN.
    current: HashMap<String, IssuedCredential>,
    pub stats: ImdsStatsRecorder,
}

impl Imds {
    pub fn from_seed(seed: &Seed) -> Self {
        let imds = &seed.imds;
        let region = imds.region.clone().unwrap_or_else(|| seed.region.clone());
        Imds {
            zone_id: imds
                .zone_id
                .clone()
                .unwrap_or_else(|| format!("{region}-a")),
            region,
            instance_id: imds
                .instance_id
                .clone()
                .unwrap_or_else(|| "i-emulator000000000001".to_string()),
            account_id: seed.account_id.clone(),
            role_arn: imds.role_arn.clone(),
            mode: ImdsMode::from_seed(imds),
            tokens: HashMap::new(),
            current: HashMap::new(),
            stats: ImdsStatsRecorder::default(),
        }
    }

    pub fn mode(&self) -> ImdsMode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: ImdsMode) {
        self.mode = mode;
    }

    pub fn role_arn(&self) -> Option<String> {
        self.role_arn.clone()
    }

    pub fn set_role_arn(&mut self, arn: Option<String>) {
        self.role_arn = arn;
    }

    fn new_token(&mut self, ttl: Duration, now: OffsetDateTime) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if self.tokens.len() >= TOKEN_SWEEP_THRESHOLD {
            self.tokens.retain(|_, expires| *expires > now);
        }
        self.tokens.insert(token.clone(), now + ttl);
        token
    }

    fn token_valid(&self, token: &str, now: OffsetDateTime) -> bool {
        // Constant-time per comparison; the set is small in tests.
        self.tokens
            .iter()
            .any(|(t, expires)| *expires > now && constant_time_eq(t, token))
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(serve).with_state(state)
}

/// What a request is about, for the counters.
fn kind_of(path: &str) -> &'static str {
    if path == TOKEN_PATH {
        return "token";
    }
    if path == CREDENTIALS || path == format!("{CREDENTIALS}/") {
        return "role-name";
    }
    if path
        .strip_prefix(CREDENTIALS)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    {
        return "credentials";
    }
    match path.strip_prefix(META) {
        Some("region-id") => "region-id",
        Some("instance-id") => "instance-id",
        Some("zone-id") => "zone-id",
        Some("owner-account-id") => "owner-account-id",
        _ => "other",
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn status_text(status: StatusCode) -> Response {
    text(status, status.canonical_reason().unwrap_or("Error"))
}

async fn serve(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let kind = kind_of(path);
    let has_token = headers.contains_key("x-aliyun-ecs-metadata-token");
    let mut state = state.lock();
    let now = state.clock.now();
    let response = if kind == "token" {
        put_token(&mut state.imds, &method, &headers, now)
    } else if method != Method::GET && method != Method::HEAD {
        status_text(StatusCode::METHOD_NOT_ALLOWED)
    } else {
        get(&mut state, path, kind, &headers, now)
    };
    let status = response.status();
    state
        .imds
        .stats
        .record(kind, status, kind != "token" && !has_token);
    drop(state);
    tracing::debug!(
        kind,
        status = status.as_u16(),
        with_token = has_token,
        "metadata request"
    );
    response
}

fn put_token(
    imds: &mut Imds,
    method: &Method,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Response {
    if imds.mode().tokens_unavailable {
        return status_text(StatusCode::NOT_FOUND);
    }
    if method != Method::PUT {
        return status_text(StatusCode::METHOD_NOT_ALLOWED);
    }
    if headers.contains_key("x-forwarded-for") {
        return status_text(StatusCode::FORBIDDEN);
    }
    let ttl = headers
        .get("x-aliyun-ecs-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TOKEN_TTL).contains(ttl));
    match ttl {
        Some(ttl) => text(
            StatusCode::OK,
            imds.new_token(Duration::from_secs(ttl), now),
        ),
        None => status_text(StatusCode::BAD_REQUEST),
    }
}

fn get(
    state: &mut EmulatorState,
    path: &str,
    kind: &str,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Response {
    let imds = &state.imds;
    match headers
        .get("x-aliyun-ecs-metadata-token")
        .map(|v| v.to_str().unwrap_or(""))
    {
        Some(token) if !imds.token_valid(token, now) => {
            return status_text(StatusCode::UNAUTHORIZED);
        }
        Some(_) => {}
        None if imds.mode().hardened => return status_text(StatusCode::FORBIDDEN),
        None => {}
    }
    let role_arn = imds.role_arn();
    let role_name = role_arn
        .as_deref()
        .and_then(|arn| state.iam.role(arn))
        .map(|role| role.name().to_string());
    match kind {
        "region-id" => text(StatusCode::OK, imds.region.clone()),
        "instance-id" => text(StatusCode::OK, imds.instance_id.clone()),
        "zone-id" => text(StatusCode::OK, imds.zone_id.clone()),
        "owner-account-id" => match &imds.account_id {
            Some(account) => text(StatusCode::OK, account.clone()),
            None => status_text(StatusCode::NOT_FOUND),
        },
        "role-name" => match role_name {
            Some(name) => text(StatusCode::OK, name),
            None => status_text(StatusCode::NOT_FOUND),
        },
        "credentials" => {
            let asked = path.rsplit('/').next().unwrap_or("");
            match (role_arn, role_name) {
                (Some(arn), Some(name)) if name == asked => credentials(state, &arn, now),
                _ => status_text(StatusCode::NOT_FOUND),
            }
        }
        _ => status_text(StatusCode::NOT_FOUND),
    }
}

fn credentials(state: &mut EmulatorState, role_arn: &str, now: OffsetDateTime) -> Response {
    let Some(role) = state.iam.role(role_arn) else {
        return status_text(StatusCode::NOT_FOUND);
    };
    let EmulatorState { iam, imds, .. } = state;
    let current = &mut imds.current;
    let key = role_arn.to_ascii_lowercase();
    // Reuse while the credential is registered, not expired on purpose, and
    // has more than half of its lifetime left.
    let reusable = current.get(&key).filter(|issued| {
        let live_until = iam
            .identities
            .get(&issued.access_key_id)
            .and_then(|c| c.expires_at);
        let half = (issued.expires_at - issued.issued_at) / 2;
        live_until.is_some_and(|until| until == issued.expires_at && until - now > half)
    });
    let issued = match reusable {
        Some(issued) => issued.clone(),
        None => {
            let issued = iam.issue(
                IssueRequest {
                    role: &role,
                    session_name: imds.instance_id.clone(),
                    requested: IMDS_CREDENTIAL_LIFETIME,
                    source: CredentialSource::Imds,
                    caller: None,
                    external_id: None,
                    policy: None,
                },
                now,
            );
            current.insert(key, issued.clone());
            issued
        }
    };
    let body = json!({
        "AccessKeyId": issued.access_key_id,
        "AccessKeySecret": issued.access_key_secret,
        "Expiration": format_time(issued.expires_at),
        "SecurityToken": issued.security_token,
        "LastUpdated": format_time(issued.issued_at),
        "Code": "Success",
    });
    text(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        for (path, kind) in [
            ("/latest/api/token", "token"),
            ("/latest/meta-data/region-id", "region-id"),
            ("/latest/meta-data/instance-id", "instance-id"),
            ("/latest/meta-data/zone-id", "zone-id"),
            ("/latest/meta-data/owner-account-id", "owner-account-id"),
            ("/latest/meta-data/ram/security-credentials/", "role-name"),
            ("/latest/meta-data/ram/security-credentials", "role-name"),
            (
                "/latest/meta-data/ram/security-credentials/node",
                "credentials",
            ),
            ("/latest/meta-data/ram/security-credentials/a/b", "other"),
            ("/latest/meta-data/hostname", "other"),
            ("/", "other"),
        ] {
            assert_eq!(kind_of(path), kind, "{path}");
        }
    }

    #[test]
    fn tokens_expire_and_are_checked_exactly() {
        let mut imds = Imds::from_seed(&Seed::default());
        let now = OffsetDateTime::now_utc();
        let token = imds.new_token(Duration::from_secs(60), now);
        assert!(imds.token_valid(&token, now));
        assert!(!imds.token_valid(&format!("{token}x"), now));
        assert!(!imds.token_valid("", now));
        assert!(!imds.token_valid(&token, now + Duration::from_secs(60)));
        let short = imds.new_token(Duration::ZERO, now);
        assert!(!imds.token_valid(&short, now));
    }

    #[test]
    fn defaults_follow_the_seed_region() {
        let imds = Imds::from_seed(&Seed::default().with_region("cn-beijing"));
        assert_eq!(imds.region, "cn-beijing");
        assert_eq!(imds.zone_id, "cn-beijing-a");
        assert!(imds.instance_id.starts_with("i-"));
        assert_eq!(imds.mode(), ImdsMode::default());
    }
}
