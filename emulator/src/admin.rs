//! Admin endpoints under `/__emulator/`, so that scripts can drive the binary.
//!
//! | Method and path | Body | Effect |
//! |---|---|---|
//! | `GET /__emulator/stats` | | counters ([`crate::Stats`]) |
//! | `DELETE /__emulator/stats` | | zeroes the counters |
//! | `GET /__emulator/faults` | | installed faults with `remaining` and `fired` |
//! | `PUT /__emulator/faults` | a [`crate::Fault`] or a list | replaces the faults |
//! | `POST /__emulator/faults` | a [`crate::Fault`] | adds one |
//! | `DELETE /__emulator/faults` | | removes all |
//! | `GET /__emulator/latency` | | `{"latency":"20ms"}` |
//! | `PUT /__emulator/latency` | `{"latency":"10ms..50ms"}` | sets it |
//! | `DELETE /__emulator/latency` | | no latency |
//! | `PUT /__emulator/kms/secrets` | a [`crate::KmsSecret`] | adds or replaces it |
//! | `POST /__emulator/kms/secrets/{name}/rotate` | `{"version_id":"v2","data":".."}` | `PutSecretValue`-style rotation |
//! | `PUT /__emulator/oos/parameters` | an [`crate::OosParameter`] | adds or replaces it |
//! | `PUT /__emulator/access-keys` | an [`crate::AccessKey`] | adds or replaces it |
//! | `PUT /__emulator/roles` | a [`crate::Role`] | adds or replaces it |
//! | `PUT /__emulator/oidc-providers` | an [`crate::OidcProvider`] | adds or replaces it |
//! | `GET /__emulator/credentials` | | issued credentials (no secrets or tokens) |
//! | `POST /__emulator/credentials/expire` | none, or `{"role_arn":".."}` | expires live issued credentials now: `{"expired":N}` |
//! | `GET /__emulator/credentials/lifetime` | | `{"lifetime":"5s"}` or `{"lifetime":null}` |
//! | `PUT /__emulator/credentials/lifetime` | `{"lifetime":"5s"}` | issued credentials last that long |
//! | `DELETE /__emulator/credentials/lifetime` | | back to `DurationSeconds` |
//! | `POST /__emulator/oidc/token` | see [`TokenRequest`] | `{"token":".."}`: a service-account JWT |
//! | `GET /__emulator/imds`, `PUT /__emulator/imds` | `{"hardened":true,"tokens_unavailable":false}` | metadata-server mode |
//! | `PUT /__emulator/imds/role` | `{"role_arn":".."}` or `{"role_arn":null}` | attach or detach the instance role |
//! | `GET /__emulator/imds/stats` | | [`crate::ImdsStats`] |
//! | `GET /__emulator/kubernetes`, `PUT /__emulator/kubernetes` | `{"forbidden":false,"unavailable":false}` | Kubernetes API mode |
//! | `GET /__emulator/kubernetes/stats` | | counters, as `/stats` |
//! | `PUT /__emulator/kubernetes/serviceaccounts` | a [`crate::ServiceAccount`] | adds or replaces it |
//! | `DELETE /__emulator/kubernetes/serviceaccounts/{ns}/{name}` | | removes it (404 if absent) |
//! | `GET /__emulator/clock` | | `{"now":"2024-01-02T03:04:05.6Z","frozen":false}`: the emulator's clock |
//! | `POST /__emulator/clock` | `{"advance":"3s"}` and/or `{"freeze":true}` | advances (or stops) it; answers as `GET` |
//! | `DELETE /__emulator/clock` | | back to the wall clock |
//!
//! A fault with an `answer` instead of a `code` answers HTTP 200 with that
//! body as is (malformed answers, for clients' error paths).
//!
//! `DELETE /__emulator/stats` zeroes the metadata-server and Kubernetes
//! counters too. Errors are `400 {"error": "..."}`.
//!
//! The clock is what every expiry and timestamp check reads (credentials,
//! metadata-server tokens, OIDC tokens, signature timestamps): advancing it
//! stands for waiting.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::{Fault, Latency};
use crate::imds::ImdsMode;
use crate::jwt;
use crate::kubernetes::KubernetesMode;
use crate::seed::{
    AccessKey, KmsSecret, OidcProvider, OosParameter, Role, ServiceAccount, duration_text,
};
use crate::server::AppState;

type Shared = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/stats", get(stats).delete(reset_stats))
        .route(
            "/faults",
            get(list_faults)
                .put(replace_faults)
                .post(add_fault)
                .delete(clear_faults),
        )
        .route(
            "/latency",
            get(latency).put(set_latency).delete(clear_latency),
        )
        .route("/kms/secrets", put(put_kms_secret))
        .route("/kms/secrets/{name}/rotate", post(rotate_kms_secret))
        .route("/oos/parameters", put(put_oos_parameter))
        .route("/access-keys", put(put_access_key))
        .route("/roles", put(put_role))
        .route("/oidc-providers", put(put_oidc_provider))
        .route("/credentials", get(list_credentials))
        .route("/credentials/expire", post(expire_credentials))
        .route(
            "/credentials/lifetime",
            get(lifetime).put(set_lifetime).delete(clear_lifetime),
        )
        .route("/oidc/token", post(mint_token))
        .route("/imds", get(imds_mode).put(set_imds_mode))
        .route("/imds/role", put(set_imds_role))
        .route("/imds/stats", get(imds_stats))
        .route("/kubernetes", get(kubernetes_mode).put(set_kubernetes_mode))
        .route("/kubernetes/stats", get(kubernetes_stats))
        .route("/kubernetes/serviceaccounts", put(put_service_account))
        .route(
            "/kubernetes/serviceaccounts/{namespace}/{name}",
            delete(remove_service_account),
        )
        .route("/clock", get(clock).post(change_clock).delete(reset_clock))
}

fn bad_request(error: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error.to_string() })),
    )
        .into_response()
}

fn done<E: std::fmt::Display>(result: Result<(), E>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(e),
    }
}

async fn stats(State(state): Shared) -> Response {
    Json(state.lock().stats.snapshot()).into_response()
}

async fn reset_stats(State(state): Shared) -> StatusCode {
    state.lock().reset_stats();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(state): Shared) -> Response {
    Json(state.lock().faults.list()).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Fault>),
    One(Box<Fault>),
}

async fn replace_faults(State(state): Shared, Json(faults): Json<OneOrMany>) -> Response {
    let faults = match faults {
        OneOrMany::Many(list) => list,
        OneOrMany::One(fault) => vec![*fault],
    };
    done(state.lock().faults.replace(faults))
}

async fn add_fault(State(state): Shared, Json(fault): Json<Fault>) -> Response {
    done(state.lock().faults.add(fault))
}

async fn clear_faults(State(state): Shared) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    latency: Latency,
}

async fn latency(State(state): Shared) -> Response {
    Json(LatencyBody {
        latency: state.lock().latency,
    })
    .into_response()
}

async fn set_latency(State(state): Shared, Json(body): Json<LatencyBody>) -> StatusCode {
    state.lock().latency = body.latency;
    StatusCode::NO_CONTENT
}

async fn clear_latency(State(state): Shared) -> StatusCode {
    state.lock().latency = Latency::NONE;
    StatusCode::NO_CONTENT
}

async fn put_kms_secret(State(state): Shared, Json(secret): Json<KmsSecret>) -> Response {
    done(state.lock().put_kms_secret(secret))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    version_id: String,
    data: String,
}

async fn rotate_kms_secret(
    State(state): Shared,
    Path(name): Path<String>,
    Json(rotation): Json<Rotation>,
) -> Response {
    done(
        state
            .lock()
            .rotate_kms_secret(&name, &rotation.version_id, &rotation.data),
    )
}

async fn put_oos_parameter(State(state): Shared, Json(parameter): Json<OosParameter>) -> Response {
    done(state.lock().put_oos_parameter(parameter))
}

async fn put_access_key(State(state): Shared, Json(key): Json<AccessKey>) -> Response {
    done(state.lock().put_access_key(key))
}

async fn put_role(State(state): Shared, Json(role): Json<Role>) -> Response {
    done(state.lock().iam.put_role(role))
}

async fn put_oidc_provider(State(state): Shared, Json(provider): Json<OidcProvider>) -> Response {
    done(state.lock().iam.put_oidc_provider(provider))
}

async fn list_credentials(State(state): Shared) -> Response {
    Json(state.lock().iam.issued()).into_response()
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireBody {
    #[serde(default)]
    role_arn: Option<String>,
}

async fn expire_credentials(State(state): Shared, body: axum::body::Bytes) -> Response {
    let body: ExpireBody = if body.iter().all(u8::is_ascii_whitespace) {
        ExpireBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return bad_request(e),
        }
    };
    let expired = state.lock().expire_credentials(body.role_arn.as_deref());
    Json(json!({ "expired": expired })).into_response()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifetimeBody {
    #[serde(with = "duration_text::option")]
    lifetime: Option<Duration>,
}

async fn lifetime(State(state): Shared) -> Response {
    Json(LifetimeBody {
        lifetime: state.lock().iam.lifetime_override(),
    })
    .into_response()
}

async fn set_lifetime(State(state): Shared, Json(body): Json<LifetimeBody>) -> Response {
    if body.lifetime.is_some_and(|d| d.as_secs() == 0) {
        return bad_request("lifetime must be at least 1s");
    }
    state.lock().iam.set_lifetime_override(body.lifetime);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_lifetime(State(state): Shared) -> StatusCode {
    state.lock().iam.set_lifetime_override(None);
    StatusCode::NO_CONTENT
}

/// `POST /__emulator/oidc/token`: mints a service-account JWT.
///
/// Fields (all optional except the subject): `provider_arn` (default: the
/// only provider), `namespace` + `name` (kubelet-like token) or `subject`,
/// `audiences` (default: the provider's first), `expires_in` (default
/// `"1h"`) or `expired_since` (e.g. `"10s"`: an expired token), `issuer`
/// (default: the provider's), `sign` (default `true`: HS256 with the
/// provider's key when it has one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    #[serde(default)]
    provider_arn: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default, with = "duration_text::option")]
    expires_in: Option<Duration>,
    #[serde(default, with = "duration_text::option")]
    expired_since: Option<Duration>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    sign: Option<bool>,
}

async fn mint_token(State(state): Shared, Json(request): Json<TokenRequest>) -> Response {
    let (provider, clock) = {
        let state = state.lock();
        let provider = match &request.provider_arn {
            Some(arn) => Ok(state.iam.oidc_provider(arn)),
            None => match &state.iam.oidc_providers()[..] {
                [only] => Ok(Some(only.clone())),
                _ => Err(()),
            },
        };
        (provider, state.clock)
    };
    let provider = match provider {
        Ok(provider) => provider,
        Err(()) => {
            return bad_request("give provider_arn: there is not exactly one OIDC provider");
        }
    };
    let Some(provider) = provider else {
        return bad_request("no such OIDC provider");
    };
    let issuer = request.issuer.unwrap_or_else(|| provider.issuer.clone());
    let mut claims = match (&request.namespace, &request.name, request.subject) {
        (Some(namespace), Some(name), None) => {
            jwt::Claims::service_account(issuer, namespace, name)
        }
        (None, None, Some(subject)) => jwt::Claims::new(issuer, subject, crate::seed::STS_AUDIENCE),
        _ => return bad_request("give either namespace and name, or subject"),
    };
    claims = claims.with_audiences(
        request
            .audiences
            .unwrap_or_else(|| provider.audiences.iter().take(1).cloned().collect()),
    );
    claims = match (request.expires_in, request.expired_since) {
        (Some(_), Some(_)) => return bad_request("give expires_in or expired_since, not both"),
        (_, Some(ago)) => claims.expired_since(ago),
        (ttl, None) => claims.expiring_in(ttl.unwrap_or(Duration::from_secs(3600))),
    };
    let key = if request.sign.unwrap_or(true) {
        provider.hmac_key.as_deref()
    } else {
        None
    };
    // Made on the wall clock, restated on the emulator's.
    let claims = claims.shifted(clock.offset().whole_seconds());
    Json(json!({ "token": jwt::mint(&claims, key) })).into_response()
}

async fn imds_mode(State(state): Shared) -> Response {
    Json(state.lock().imds.mode()).into_response()
}

async fn set_imds_mode(State(state): Shared, Json(mode): Json<ImdsMode>) -> StatusCode {
    state.lock().imds.set_mode(mode);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImdsRole {
    role_arn: Option<String>,
}

async fn set_imds_role(State(state): Shared, Json(body): Json<ImdsRole>) -> Response {
    done(state.lock().set_imds_role(body.role_arn))
}

async fn imds_stats(State(state): Shared) -> Response {
    Json(state.lock().imds.stats.snapshot()).into_response()
}

async fn kubernetes_mode(State(state): Shared) -> Response {
    Json(state.lock().kubernetes.mode()).into_response()
}

async fn set_kubernetes_mode(State(state): Shared, Json(mode): Json<KubernetesMode>) -> StatusCode {
    state.lock().kubernetes.set_mode(mode);
    StatusCode::NO_CONTENT
}

async fn kubernetes_stats(State(state): Shared) -> Response {
    Json(state.lock().kubernetes.stats.snapshot()).into_response()
}

async fn put_service_account(
    State(state): Shared,
    Json(account): Json<ServiceAccount>,
) -> Response {
    done(state.lock().kubernetes.put(account))
}

async fn remove_service_account(
    State(state): Shared,
    Path((namespace, name)): Path<(String, String)>,
) -> StatusCode {
    if state.lock().kubernetes.remove(&namespace, &name) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Serialize)]
struct ClockBody {
    #[serde(with = "time::serde::rfc3339")]
    now: time::OffsetDateTime,
    frozen: bool,
}

fn clock_body(clock: &crate::clock::Clock) -> Response {
    Json(ClockBody {
        now: clock.now(),
        frozen: clock.frozen(),
    })
    .into_response()
}

async fn clock(State(state): Shared) -> Response {
    clock_body(&state.lock().clock)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    #[serde(default, with = "duration_text::option")]
    advance: Option<Duration>,
    #[serde(default)]
    freeze: bool,
}

async fn change_clock(State(state): Shared, Json(change): Json<ClockChange>) -> Response {
    let mut state = state.lock();
    if change.freeze {
        state.clock.freeze();
    }
    if let Some(by) = change.advance {
        state.clock.advance(by);
    }
    clock_body(&state.clock)
}

async fn reset_clock(State(state): Shared) -> StatusCode {
    state.lock().clock = crate::clock::Clock::default();
    StatusCode::NO_CONTENT
}
